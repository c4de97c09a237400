"""Generate ``truncated.pcap``: a capture file cut in the middle of its last packet (as when
tcpdump is killed), classic pcap with **nanosecond** timestamps, Ethernet.

One connection on 7878, 6 client frames in 230-byte segments, no FIN; the file ends 30 bytes into
the last packet's data. Expected: the records complete in the packets that are whole; a
``CAP-TRUNCATED-RECORD`` issue; the record in progress reported as ``REC-TRUNCATED-END``.

Deterministic: ``python make_truncated.py [out.pcap]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Clock, TcpConn, complete_records, gbp_frames, split, stream_of  # noqa: E402

from scapy.utils import wrpcap  # noqa: E402

NAME = "truncated.pcap"
CUT = 30  # bytes of the last packet record kept after its 16-byte record header


def build():
    clock = Clock(step_us=1)
    c = TcpConn(("10.1.0.1", 41000), ("10.1.0.2", 7878), clock)
    frames = gbp_frames(6, seed=21, member=1, sizes=[100, 300, 50, 180, 90, 140])
    data, spans = stream_of(frames)
    pkts = c.handshake()
    segs = split(data, [230])
    for off, piece in segs:
        pkts.append(c.pkt("c", off, piece))
    whole_until = segs[-1][0]  # the last segment is cut
    kept = complete_records(data, spans, [(0, whole_until)])
    records = [("10.1.0.1", 41000, "10.1.0.2", 7878, "tcp", frames[i]) for i in kept]
    errors = ["CAP-TRUNCATED-RECORD"]
    if whole_until not in [a for a, _ in spans]:
        errors.append("REC-TRUNCATED-END")
    return pkts, {"records": records, "errors": errors, "packets": len(pkts) - 1}


def main(path=None):
    pkts, _ = build()
    out = Path(path) if path else Path(__file__).with_name(NAME)
    wrpcap(str(out), pkts, nano=True)
    last = len(bytes(pkts[-1]))
    raw = out.read_bytes()
    out.write_bytes(raw[:len(raw) - last + CUT])
    return out


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
