"""Shared helpers of the capture generators in this directory (deterministic: fixed group id,
seeded payloads, fixed times).

GBP frame bytes come from the reference wheel (``gbp_stack.encode_gbp_frame``, gbp-stack 1.9.1);
packets are built with scapy layers. Each ``make_<name>.py`` exposes ``build()`` returning
``(packets_or_blocks, expected)`` and ``main(path=None)`` writing ``<name>.<ext>`` beside itself.
``expected`` is computed from the bytes the generator put on the wire, never from our reader.
"""
from __future__ import annotations

import random
import struct
from typing import Dict, List, Optional, Tuple

import gbp_stack
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

GID = bytes.fromhex("6762702d6c61622d636170747572652a")  # "gbp-lab-capture*"
T0 = 1_700_000_000


def gbp_frames(n: int, seed: int, *, member: int = 1, stream_type: int = 2, sizes=None,
               epoch: int = 0, tid: int = 0, first_seq: int = 1) -> List[bytes]:
    """``n`` CBOR frames encoded by the reference wheel, with seeded pseudo-random payloads."""
    rng = random.Random(seed)
    base = {0: 0, 1: 2, 2: 1, 3: 3}[stream_type]
    flags = {0: 0x000B, 1: 0x0001, 2: 0x0007, 3: 0x0007}[stream_type]
    out = []
    for i in range(n):
        size = sizes[i % len(sizes)] if sizes else rng.randrange(17, 300)
        payload = bytes(rng.randrange(256) for _ in range(size))
        out.append(gbp_stack.encode_gbp_frame(1, GID, epoch, tid, stream_type,
                                              base + member * 100, flags, first_seq + i, payload))
    return out


def record(body: bytes) -> bytes:
    """``u32-LE length ‖ body`` (reference TCP framing)."""
    return struct.pack("<I", len(body)) + body


def stream_of(frames: List[bytes]) -> Tuple[bytes, List[Tuple[int, int]]]:
    """The byte stream of records, and each record's ``(start, end)`` offsets."""
    spans, parts, off = [], [], 0
    for f in frames:
        r = record(f)
        spans.append((off, off + len(r)))
        parts.append(r)
        off += len(r)
    return b"".join(parts), spans


def split(data: bytes, sizes: List[int]) -> List[Tuple[int, bytes]]:
    """Cut ``data`` into consecutive pieces whose sizes cycle through ``sizes``."""
    out, off, i = [], 0, 0
    while off < len(data):
        n = sizes[i % len(sizes)]
        out.append((off, data[off:off + n]))
        off += n
        i += 1
    return out


class Clock:
    def __init__(self, start_us: int = 0, step_us: int = 250) -> None:
        self.us = start_us
        self.step = step_us

    def tick(self) -> float:
        self.us += self.step
        return T0 + self.us / 1e6


class TcpConn:
    """Builds the packets of one TCP connection (client side ``c``, server side ``s``)."""

    def __init__(self, client: Tuple[str, int], server: Tuple[str, int], clock: Clock,
                 isn_c: int = 1000, isn_s: int = 5000, l2: bool = True) -> None:
        self.ep = {"c": client, "s": server}
        self.isn = {"c": isn_c, "s": isn_s}
        self.clock = clock
        self.l2 = l2

    def _ip(self, side: str):
        src = self.ep[side][0]
        dst = self.ep["s" if side == "c" else "c"][0]
        return (IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst))

    def pkt(self, side: str, offset: int, data: bytes = b"", flags: str = "PA", *,
            seq: Optional[int] = None, ack: int = 0):
        """A segment of ``side`` carrying ``data`` at stream ``offset`` (SYN: offset -1)."""
        other = "s" if side == "c" else "c"
        if seq is None:
            seq = (self.isn[side] + 1 + offset) & 0xFFFFFFFF
        tcp = TCP(sport=self.ep[side][1], dport=self.ep[other][1], seq=seq, ack=ack, flags=flags,
                  window=65535)
        p = self._ip(side) / tcp
        if data:
            p = p / Raw(data)
        if self.l2:
            p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / p
        p.time = self.clock.tick()
        return p

    def handshake(self) -> list:
        return [self.pkt("c", -1, flags="S"),
                self.pkt("s", -1, flags="SA", ack=self.isn["c"] + 1),
                self.pkt("c", 0, flags="A", ack=self.isn["s"] + 1)]

    def fin(self, side: str, offset: int):
        return self.pkt(side, offset, flags="FA")


def udp_pkt(src: Tuple[str, int], dst: Tuple[str, int], data: bytes, clock: Clock, l2: bool = True):
    ip = IPv6(src=src[0], dst=dst[0]) if ":" in src[0] else IP(src=src[0], dst=dst[0])
    p = ip / UDP(sport=src[1], dport=dst[1]) / Raw(data)
    if l2:
        p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / p
    p.time = clock.tick()
    return p


def complete_records(stream: bytes, spans, have: List[Tuple[int, int]]) -> List[int]:
    """Indexes of the records entirely inside the byte ranges in ``have``."""
    out = []
    for i, (a, b) in enumerate(spans):
        if any(x <= a and b <= y for x, y in have):
            out.append(i)
    return out
