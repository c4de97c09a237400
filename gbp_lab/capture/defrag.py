"""IP defragmentation: :class:`IpDefragmenter` puts IPv4 (RFC 791 §3.2) and IPv6 (RFC 8200 §4.5)
fragments — :class:`~.packets.Decoded` with ``fragment`` set — back into TCP/UDP datagrams, bounded
in memory and time; the datagrams it gives up on are :class:`PendingDatagram`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .packets import Decoded, decode_transport, skip_ipv6_extensions

__all__ = ["IpDefragmenter", "PendingDatagram"]


class IpDefragmenter:
    """Reassemble IPv4 (RFC 791 §3.2) and IPv6 (RFC 8200 §4.5) fragments into datagrams.

    :meth:`push` takes a fragment (:class:`Decoded` with ``fragment`` set) and returns
    ``(whole, dropped)``: the reassembled TCP/UDP :class:`Decoded` once the datagram is complete
    (else ``None``), and the incomplete datagrams given up on (timeout, memory bound) as
    :class:`PendingDatagram`. Overlaps keep the first copy. Bounded: ``max_datagrams`` pending,
    ``max_bytes`` buffered, ``timeout`` seconds of packet time (times: integer nanoseconds).
    """

    def __init__(self, *, max_datagrams: int = 1024, max_bytes: int = 16 << 20,
                 timeout: float = 60.0) -> None:
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._pending: Dict[tuple, PendingDatagram] = {}
        self._bytes = 0

    def push(self, d: Decoded, time: float) -> Tuple[Optional[Decoded], List["PendingDatagram"]]:
        dropped: List[PendingDatagram] = []
        key = (d.ip_version, d.src, d.dst, d.proto if d.ip_version == 4 else 0, d.frag_id)
        e = self._pending.get(key)
        if e is None:
            e = self._pending[key] = PendingDatagram(d.src, d.dst, time)
        if d.frag_offset == 0:
            e.first = d
        if d.missing:
            e.truncated = True
        if d.frag_offset not in e.parts:
            e.parts[d.frag_offset] = d.payload
            e.size += len(d.payload)
            self._bytes += len(d.payload)
        if not d.frag_more:
            e.total = d.frag_offset + len(d.payload) + d.missing
        whole = self._complete(key, e)
        if time == time:  # not NaN
            for k in [k for k, v in self._pending.items() if v.first_time < time - self.timeout * 1e9]:
                dropped.append(self._drop(k, "timeout"))
        while self._pending and (len(self._pending) > self.max_datagrams
                                 or self._bytes > self.max_bytes):
            dropped.append(self._drop(next(iter(self._pending)), "memory bound"))
        return whole, dropped

    def _complete(self, key, e: "PendingDatagram") -> Optional[Decoded]:
        if e.total is None or e.first is None or e.truncated:
            return None
        pos = 0
        for o in sorted(e.parts):
            if o > pos:
                return None
            pos = max(pos, o + len(e.parts[o]))
        if pos < e.total:
            return None
        buf = bytearray(e.total)
        for o in sorted(e.parts, reverse=True):  # lower offsets last: earlier bytes win
            part = e.parts[o][:max(0, e.total - o)]
            buf[o:o + len(part)] = part
        del self._pending[key]
        self._bytes -= e.size
        first = e.first
        data = bytes(buf)
        proto, pos = first.proto, 0
        if first.ip_version == 6:
            proto, pos = skip_ipv6_extensions(proto, data, 0, len(data))
        return decode_transport(proto, first.src, first.dst, data, pos, len(data), 0, first.ip_version)

    def _drop(self, key, reason: str) -> "PendingDatagram":
        e = self._pending.pop(key)
        self._bytes -= e.size
        e.reason = reason
        return e

    def flush(self) -> List["PendingDatagram"]:
        """End of input: every datagram still incomplete."""
        return [self._drop(k, "end of capture") for k in list(self._pending)]


@dataclass(slots=True)
class PendingDatagram:
    """An IP datagram being reassembled (or given up: ``reason``)."""

    src: str
    dst: str
    first_time: float
    parts: Dict[int, bytes] = field(default_factory=dict)
    size: int = 0
    total: Optional[int] = None
    first: Optional[Decoded] = None
    truncated: bool = False
    reason: str = ""

    @property
    def ports(self) -> Tuple[int, int]:
        return (self.first.sport, self.first.dport) if self.first is not None else (0, 0)
