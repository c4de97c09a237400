"""Generate ``multi_if.pcapng`` with scapy's ``PcapNgWriter``: several interfaces, several link
types, one of them unknown to the lab.

* ``eth0`` Ethernet (1): TCP 7878, 4 frames, two per segment;
* ``any`` Linux cooked v2 (SLL2, 276): 3 GBP-over-UDP datagrams on 7878, one frame each;
* ``lo`` BSD loopback / NULL (0): TCP 7878 (IPv6), 3 frames in one segment;
* ``usb0`` link type 147 (USER0): opaque bytes — reported once as ``CAP-LINKTYPE``.

Deterministic: ``python make_multi_if.py [out.pcapng]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Clock, TcpConn, gbp_frames, split, stream_of  # noqa: E402

from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.l2 import CookedLinuxV2, Loopback  # noqa: E402
from scapy.packet import Raw  # noqa: E402
from scapy.utils import PcapNgWriter  # noqa: E402

NAME = "multi_if.pcapng"
USER0 = 147


def build():
    clock = Clock(step_us=1000)
    out = []  # (packet_or_bytes, ifname, linktype or None)
    records = []

    c = TcpConn(("10.2.0.1", 42000), ("10.2.0.2", 7878), clock)
    f1 = gbp_frames(4, seed=31, member=1)
    s1, spans1 = stream_of(f1)
    for p in c.handshake():
        out.append((p, "eth0", None))
    cuts = [spans1[1][1], spans1[3][1]]
    out.append((c.pkt("c", 0, s1[:cuts[0]]), "eth0", None))
    out.append((c.pkt("c", cuts[0], s1[cuts[0]:]), "eth0", None))
    records += [("10.2.0.1", 42000, "10.2.0.2", 7878, "tcp", f) for f in f1]

    f2 = gbp_frames(3, seed=32, member=2, stream_type=1)
    for f in f2:
        p = (CookedLinuxV2(proto=0x0800) / IP(src="10.2.0.3", dst="10.2.0.4")
             / UDP(sport=43000, dport=7878) / Raw(f))
        p.time = clock.tick()
        out.append((p, "any", None))
    records += [("10.2.0.3", 43000, "10.2.0.4", 7878, "udp", f) for f in f2]

    c3 = TcpConn(("::1", 44000), ("::1", 7878), clock, l2=False)
    f3 = gbp_frames(3, seed=33, member=3, stream_type=3)
    s3, _ = stream_of(f3)
    for p in c3.handshake() + [c3.pkt("c", 0, s3)]:
        lp = Loopback(type=24) / p  # BSD AF_INET6 value, host byte order
        lp.time = p.time
        out.append((lp, "lo", None))
    records += [("::1", 44000, "::1", 7878, "tcp", f) for f in f3]

    for i in range(2):
        out.append((bytes(range(i, 40 + i)), "usb0", USER0))

    return out, {"records": records, "errors": ["CAP-LINKTYPE"]}


def main(path=None):
    items, _ = build()
    dst = Path(path) if path else Path(__file__).with_name(NAME)
    t = 1_700_000_100.0
    with PcapNgWriter(str(dst)) as w:
        for pkt, ifname, linktype in items:
            if linktype is None:
                pkt.sniffed_on = ifname
                w.write(pkt)
            else:  # scapy has no layer for this link type: write the raw record
                if not w.header_present:
                    w.write_header(None)
                t += 0.001
                w._write_packet(pkt, linktype=linktype, sec=t, ifname=ifname.encode())
    return dst


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
