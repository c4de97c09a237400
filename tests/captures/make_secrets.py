"""Generate ``secrets.pcapng`` with the lab's own :class:`gbp_lab.capture.pcap.PcapngWriter`:
nanosecond ``if_tsresol``, a Decryption Secrets Block of type ``GBPK`` (0x4742504B) carrying a key
log, and the link types scapy cannot write for us in one file.

* if 0 raw IPv4 (228): TCP 7878, 3 encrypted text frames (epoch 1) in one segment pair;
* if 1 raw IPv6 (229): 2 encrypted audio frames as UDP datagrams on 7878, the second one with a
  ``u32-LE`` length prefix (accepted and stripped);
* if 2 Linux cooked SLL (113): TCP 7878, 2 encrypted signal frames, the second with a corrupted
  tag (decryption must fail), and 1 frame of epoch 2 (no key in the log);
* if 3 LINKTYPE_RAW (101): TCP 7878 (IPv4), 1 control frame.

Plaintexts are GTP/GAP/GSP/control messages in CBOR (``gbp_lab.core`` encoders, checked against
the wheel in their own tests), sealed with ChaCha20-Poly1305 under ``MLS-Exporter(gbp/<stream>,
"", 32)`` of a fixed exporter secret (``gbp_lab.core.gbp.aead``); the CBOR frames are encoded by
the reference wheel.
Deterministic: ``python make_secrets.py [out.pcapng]``.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import GID, T0, stream_of  # noqa: E402

import gbp_stack  # noqa: E402
from scapy.layers.inet import IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import CookedLinux  # noqa: E402
from scapy.packet import Raw  # noqa: E402

from gbp_lab.capture.pcap import LinkType, PcapngWriter  # noqa: E402
from gbp_lab.core.gap.payload import GapPayload  # noqa: E402
from gbp_lab.core.gbp.aead import seal_payload, stream_key  # noqa: E402
from gbp_lab.core.gbp.control import ControlMessage  # noqa: E402
from gbp_lab.core.gsp.args import mute_args  # noqa: E402
from gbp_lab.core.gsp.signal import GspSignal, SignalType  # noqa: E402
from gbp_lab.core.gtp.message import GtpMessage  # noqa: E402
from gbp_lab.core.payload_codec import encode  # noqa: E402

NAME = "secrets.pcapng"
EXPORTER_SECRET = bytes(range(0x40, 0x60))
KEYLOG = (f"# gbp-lab key log for secrets.pcapng\n"
          f"MLS_EXPORTER_SECRET {GID.hex()} 1 {EXPORTER_SECRET.hex()}\n")
FLAGS = {0: 0x000B, 1: 0x0001, 2: 0x0007, 3: 0x0007}
BASE = {0: 0, 1: 2, 2: 1, 3: 3}


def sealed(st: int, member: int, seq: int, text: bytes, epoch: int = 1, corrupt: bool = False):
    pl = seal_payload(stream_key(EXPORTER_SECRET, st), seq, text)
    if corrupt:
        pl = pl[:-1] + bytes([pl[-1] ^ 0x01])
    return gbp_stack.encode_gbp_frame(1, GID, epoch, 0, st, BASE[st] + member * 100, FLAGS[st],
                                      seq, pl)


def build():
    """Returns ([(interface, time_ns, bytes)], expected)."""
    pkts, records, plain = [], [], {}
    t = [T0 * 10**9]

    def at():
        t[0] += 123_457  # ns steps: not representable in microseconds
        return t[0]

    def tcp(ip, sport, dport, seq, data=b"", flags="PA"):
        p = ip / TCP(sport=sport, dport=dport, seq=seq, flags=flags)
        return bytes(p / Raw(data)) if data else bytes(p)

    # if 0: raw IPv4, TCP
    t0 = [encode(GtpMessage.plain(1, 10 + i, f"text message {i}")) for i in range(3)]
    f0 = [sealed(2, 1, i + 1, t0[i]) for i in range(3)]
    for f, m in zip(f0, t0):
        plain[f] = m
    s0, spans0 = stream_of(f0)
    ip4 = IP(src="172.16.0.1", dst="172.16.0.2")
    pkts.append((0, at(), tcp(ip4, 45000, 7878, 99, flags="S")))
    mid = spans0[1][0] + 10
    pkts.append((0, at(), tcp(ip4, 45000, 7878, 100, s0[:mid])))
    pkts.append((0, at(), tcp(ip4, 45000, 7878, 100 + mid, s0[mid:])))
    records += [("172.16.0.1", 45000, "172.16.0.2", 7878, "tcp", f) for f in f0]

    # if 1: raw IPv6, UDP
    t1 = [encode(GapPayload.opus_20ms(2, i, 1, bytes([0xF8, i]) * 20)) for i in range(2)]
    f1 = [sealed(1, 2, i + 1, t1[i]) for i in range(2)]
    for f, m in zip(f1, t1):
        plain[f] = m
    ip6 = IPv6(src="2001:db8::1", dst="2001:db8::2")
    pkts.append((1, at(), bytes(ip6 / UDP(sport=46000, dport=7878) / Raw(f1[0]))))
    pkts.append((1, at(), bytes(ip6 / UDP(sport=46000, dport=7878)
                                / Raw(struct.pack("<I", len(f1[1])) + f1[1]))))
    records += [("2001:db8::1", 46000, "2001:db8::2", 7878, "udp", f) for f in f1]

    # if 2: Linux SLL, TCP; one corrupted tag, one unknown epoch
    mute = encode(GspSignal(SignalType.MUTE, 1, 3, args=mute_args(4)))
    good = sealed(3, 3, 1, mute)
    bad = sealed(3, 3, 2, mute, corrupt=True)
    nokey = sealed(3, 3, 1, mute, epoch=2)
    plain[good] = mute
    f2 = [good, bad, nokey]
    s2, _ = stream_of(f2)
    sll = CookedLinux(pkttype=4, lladdrtype=1, lladdrlen=6, src=b"\x02\x00\x00\x00\x00\x07\x00\x00",
                      proto=0x0800)
    ip4b = IP(src="172.16.1.1", dst="172.16.1.2")
    pkts.append((2, at(), bytes(sll / IP(bytes(tcp(ip4b, 47000, 7878, 5, s2))))))
    records += [("172.16.1.1", 47000, "172.16.1.2", 7878, "tcp", f) for f in f2]

    # if 3: LINKTYPE_RAW, TCP, a control frame (cleartext control message bytes sealed)
    ready = ControlMessage.build(2, 0, 1, 1).to_cbor()  # READY_FOR_TRANSITION, tid 1
    ctl = sealed(0, 1, 1, ready)
    plain[ctl] = ready
    s3, _ = stream_of([ctl])
    pkts.append((3, at(), tcp(IP(src="172.16.2.1", dst="172.16.2.2"), 48000, 7878, 1, s3)))
    records.append(("172.16.2.1", 48000, "172.16.2.2", 7878, "tcp", ctl))

    return pkts, {"records": records, "errors": [], "keylog": KEYLOG, "plaintexts": plain,
                  "bad_tag": bad, "no_key": nokey}


def main(path=None):
    pkts, _ = build()
    dst = Path(path) if path else Path(__file__).with_name(NAME)
    with PcapngWriter(dst) as w:
        for lt, name in ((LinkType.IPV4, "raw4"), (LinkType.IPV6, "raw6"),
                         (LinkType.LINUX_SLL, "cooked"), (LinkType.RAW, "raw")):
            w.add_interface(lt, tsresol=9, name=name)
        w.add_secrets(KEYLOG)
        for iface, t_ns, data in pkts:
            w.write_packet(data, ticks=t_ns, ts_units=10**9, interface=iface)
    return dst


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
