"""Generate ``segmented.pcap``: clean GBP-over-TCP conversations, classic pcap, Ethernet.

* conn 1 (IPv4, port 7878): 7 client frames (one of 3000 bytes) cut into segments of 1, 3, 50, 7,
  600 and 1460 bytes — frames split across segments and several per segment; the server answers
  with 4 frames coalesced into one segment; FIN from both sides.
* conn 2 (IPv6, port 7878): 3 control frames, one segment each.
* conn 3 (IPv4, port 9000 — not a GBP port): 3 frames, found by the heuristic.
* noise: an HTTP conversation on port 8080, a DNS datagram and an ARP frame (no items).

Deterministic: ``python make_segmented.py [out.pcap]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Clock, TcpConn, gbp_frames, split, stream_of  # noqa: E402

from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.l2 import ARP, Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402
from scapy.utils import wrpcap  # noqa: E402

NAME = "segmented.pcap"


def build():
    clock = Clock()
    pkts, records = [], []

    c1 = TcpConn(("10.0.0.1", 40001), ("10.0.0.2", 7878), clock, 1000, 900000)
    cf = gbp_frames(7, seed=1, member=1, sizes=[40, 3000, 17, 120, 64, 255, 33])
    sf = gbp_frames(4, seed=2, member=2)
    cs, _ = stream_of(cf)
    ss, _ = stream_of(sf)
    pkts += c1.handshake()
    for off, piece in split(cs, [1, 3, 50, 7, 600, 1460]):
        pkts.append(c1.pkt("c", off, piece))
    pkts.append(c1.pkt("s", 0, ss))
    pkts.append(c1.fin("c", len(cs)))
    pkts.append(c1.fin("s", len(ss)))
    records += [("10.0.0.1", 40001, "10.0.0.2", 7878, "tcp", f) for f in cf]
    records += [("10.0.0.2", 7878, "10.0.0.1", 40001, "tcp", f) for f in sf]

    # noise between the conversations
    pkts.append(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1", pdst="10.0.0.9"))
    pkts[-1].time = clock.tick()
    dns = Ether() / IP(src="10.0.0.1", dst="10.0.0.53") / UDP(sport=5353, dport=53) / Raw(b"\x12\x34" + bytes(10))
    dns.time = clock.tick()
    pkts.append(dns)

    c2 = TcpConn(("fd00::1", 40002), ("fd00::2", 7878), clock, 0xFFFFFFF0, 77)  # seq wraps
    f2 = gbp_frames(3, seed=3, member=1, stream_type=0)
    s2, spans2 = stream_of(f2)
    pkts += c2.handshake()
    for a, b in spans2:
        pkts.append(c2.pkt("c", a, s2[a:b]))
    pkts.append(c2.fin("c", len(s2)))
    records += [("fd00::1", 40002, "fd00::2", 7878, "tcp", f) for f in f2]

    c3 = TcpConn(("10.0.0.3", 40003), ("10.0.0.4", 9000), clock, 123, 456)
    f3 = gbp_frames(3, seed=4, member=3)
    s3, _ = stream_of(f3)
    pkts += c3.handshake()
    for off, piece in split(s3, [200]):
        pkts.append(c3.pkt("c", off, piece))
    records += [("10.0.0.3", 40003, "10.0.0.4", 9000, "tcp", f) for f in f3]

    c4 = TcpConn(("10.0.0.5", 40004), ("10.0.0.6", 8080), clock)
    req = b"GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n"
    pkts += c4.handshake()
    pkts.append(c4.pkt("c", 0, req))
    pkts.append(c4.pkt("s", 0, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))

    return pkts, {"records": records, "errors": []}


def main(path=None):
    pkts, _ = build()
    out = Path(path) if path else Path(__file__).with_name(NAME)
    wrpcap(str(out), pkts)
    return out


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
