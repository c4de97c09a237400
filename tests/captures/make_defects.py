"""Generate ``defects.pcap``: GBP over TCP 7878 with every stream defect we must survive.

* conn 1: 10 client frames in 100-byte segments, sent as: out-of-order (seg 2 before seg 1), an
  exact retransmission (seg 1 twice), an overlapping retransmission (half of seg 3 + half of
  seg 4, then seg 4), a late copy of seg 0 with one byte changed (``TCP-CONFLICT``; the first
  copy is kept), and one segment (seg 7) missing from the capture — the server's ACKs show it
  was received, so it is a gap; the records it touches are lost, the stream re-synchronises.
* conn 2: HTTP-like garbage on 7878 (its first 4 bytes read as an oversize length), then 3 frames,
  then a short well-formed record that is no frame (``hello`` — a record at this layer).
* conn 3: 2 frames and half a third, then RST: the partial record is reported.
* conn 4: the capture starts in the middle of a conversation (no SYN, first segment mid-record).

Deterministic: ``python make_defects.py [out.pcap]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Clock, TcpConn, complete_records, gbp_frames, record, split, stream_of  # noqa: E402

from scapy.utils import wrpcap  # noqa: E402

NAME = "defects.pcap"
SEG = 100
LOST_SEGMENT = 7


def build():
    clock = Clock()
    pkts, records, errors = [], [], []

    # -- conn 1: reordering, retransmissions, overlap, a capture gap ---------------------------
    c = TcpConn(("192.168.1.10", 50001), ("192.168.1.20", 7878), clock, 4_000_000_000, 10)
    frames = gbp_frames(10, seed=11, member=1, sizes=[60, 150, 90, 20, 210, 75, 130, 40, 99, 180])
    data, spans = stream_of(frames)
    segs = split(data, [SEG])
    ack_base = c.isn["c"] + 1

    def seg(i):
        off, piece = segs[i]
        return c.pkt("c", off, piece, ack=c.isn["s"] + 1)

    def server_ack(upto):
        return c.pkt("s", 0, flags="A", ack=(ack_base + upto) & 0xFFFFFFFF)

    pkts += c.handshake()
    pkts += [seg(0), seg(2), seg(1), seg(1), seg(3)]
    o3, p3 = segs[3]
    o4, p4 = segs[4]
    pkts.append(c.pkt("c", o3 + SEG // 2, p3[SEG // 2:] + p4[:SEG // 2]))  # overlap
    pkts += [seg(5), seg(4), seg(6), server_ack(segs[6][0] + SEG)]
    o0, p0 = segs[0]  # a late "retransmission" of seg 0 with one byte changed: reported, ignored
    pkts.append(c.pkt("c", o0, p0[:30] + bytes([p0[30] ^ 0xFF]) + p0[31:], ack=c.isn["s"] + 1))
    errors.append("TCP-CONFLICT")
    # seg 7 is not captured
    pkts += [seg(8), seg(9), server_ack(segs[9][0] + len(segs[9][1]))]
    for i in range(10, len(segs)):
        pkts.append(seg(i))
    pkts.append(c.fin("c", len(data)))
    pkts.append(c.pkt("s", 0, flags="FA", ack=(ack_base + len(data) + 1) & 0xFFFFFFFF))
    gap = (segs[LOST_SEGMENT][0], segs[LOST_SEGMENT][0] + SEG)
    kept = complete_records(data, spans, [(0, gap[0]), (gap[1], len(data))])
    records += [("192.168.1.10", 50001, "192.168.1.20", 7878, "tcp", frames[i]) for i in kept]
    errors.append("TCP-GAP")
    if gap[1] not in [a for a, _ in spans]:
        errors.append("REC-RESYNC")

    # -- conn 2: garbage, then frames, then a non-frame record ---------------------------------
    c2 = TcpConn(("192.168.1.11", 50002), ("192.168.1.20", 7878), clock)
    garbage = b"GET / HTTP/1.1\r\nHost: gbp\r\n\r\n"
    f2 = gbp_frames(3, seed=12, member=2)
    s2, _ = stream_of(f2)
    blob = record(b"hello")
    payload = garbage + s2 + blob
    pkts += c2.handshake()
    for off, piece in split(payload, [700]):
        pkts.append(c2.pkt("c", off, piece))
    pkts.append(c2.fin("c", len(payload)))
    records += [("192.168.1.11", 50002, "192.168.1.20", 7878, "tcp", f) for f in f2]
    records.append(("192.168.1.11", 50002, "192.168.1.20", 7878, "tcp", b"hello"))
    errors += ["GBP-RECORD-OVERSIZE", "REC-RESYNC"]

    # -- conn 3: RST inside a record ------------------------------------------------------------
    c3 = TcpConn(("192.168.1.12", 50003), ("192.168.1.20", 7878), clock)
    f3 = gbp_frames(3, seed=13, member=3, sizes=[50, 60, 200])
    s3, spans3 = stream_of(f3)
    cut = spans3[2][0] + 40
    pkts += c3.handshake()
    pkts.append(c3.pkt("c", 0, s3[:cut]))
    pkts.append(c3.pkt("c", cut, flags="R"))
    records += [("192.168.1.12", 50003, "192.168.1.20", 7878, "tcp", f) for f in f3[:2]]
    errors.append("REC-TRUNCATED-END")

    # -- conn 4: capture joins mid-stream -------------------------------------------------------
    c4 = TcpConn(("192.168.1.13", 50004), ("192.168.1.20", 7878), clock, 777_777)
    f4 = gbp_frames(4, seed=14, member=4, sizes=[120, 80, 80, 80])
    s4, spans4 = stream_of(f4)
    start = 50  # inside the first record
    for off, piece in split(s4[start:], [90]):
        pkts.append(c4.pkt("c", start + off, piece, ack=1))
    records += [("192.168.1.13", 50004, "192.168.1.20", 7878, "tcp", f) for f in f4[1:]]
    errors.append("REC-RESYNC")

    return pkts, {"records": records, "errors": errors, "gap": gap}


def main(path=None):
    pkts, _ = build()
    out = Path(path) if path else Path(__file__).with_name(NAME)
    wrpcap(str(out), pkts)
    return out


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
