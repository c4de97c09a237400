"""Packet decoding: link layer → IPv4/IPv6 → TCP/UDP, the one decoder of the capture path.

Link types (:func:`link_supported`): NULL/loopback (0, host byte order family), Ethernet (1, with
802.1Q/802.1ad tags), raw IP (101, and DLT_RAW 12/14), OpenBSD loop (108, network order), Linux
cooked SLL (113) and SLL2 (276), raw IPv4 (228) and IPv6 (229). IPv4 (RFC 791 §3.1), IPv6
(RFC 8200 §3, extension headers §4, fragment header §4.5), TCP (RFC 9293 §3.1), UDP (RFC 768).

Two entry points, one set of rules:

* :func:`decode_packet` — any packet → :class:`Decoded` (or ``None``); IP fragments come back
  marked for :class:`~.defrag.IpDefragmenter`, which finishes them with :func:`decode_transport`;
* :func:`eth_ipv4_tcp` — the fast path of the commonest packet (Ethernet II / IPv4 without options,
  not a fragment / TCP, fully captured), parsed with one ``struct`` call into a plain
  :data:`FastTcp4` tuple with the flow's raw address/port bytes as a dictionary key (no text
  addresses, no object): the bulk reader's hot path (:meth:`.records.RecordPipeline`).
  :func:`decode_packet` takes it too, so both give the same answer for such a packet; every
  packet it declines (``None``) is one for the general path.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

__all__ = [
    "TCP_FIN",
    "TCP_SYN",
    "TCP_RST",
    "TCP_PSH",
    "TCP_ACK",
    "Decoded",
    "FastTcp4",
    "decode_packet",
    "decode_transport",
    "eth_ipv4_tcp",
    "flow_key_parts",
    "ip_text",
    "link_supported",
    "skip_ipv6_extensions",
]

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLAN = (0x8100, 0x88A8, 0x9100)
_AF_INET6_VALUES = (10, 24, 28, 30)


@dataclass(frozen=True, slots=True)
class Decoded:
    """The transport-level view of one packet (IPv4/IPv6 + TCP/UDP).

    For an IP fragment (``fragment`` True) ``payload`` is the fragment's share of the IP payload
    (transport header included in the first one), ``frag_*`` identify it and the ports are known
    only in the first fragment; :class:`IpDefragmenter` puts the datagram back together.
    """

    proto: int  #: 6 TCP, 17 UDP (for a fragment: the next header after the IP header)
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes
    missing: int = 0  #: payload bytes announced by the IP/UDP length but not captured
    seq: int = 0
    ack: int = 0
    flags: int = 0
    fragment: bool = False
    ip_version: int = 4
    frag_id: int = 0
    frag_offset: int = 0  #: in bytes
    frag_more: bool = False


_V4 = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBB")
_UDP = struct.Struct("!HHH")
_HH = struct.Struct("!H")
_PORTS = struct.Struct("!HH")

_addr_cache: Dict[bytes, str] = {}


def ip_text(raw: bytes) -> str:
    """An IPv4 (4 bytes) / IPv6 (16 bytes) address as text, cached (bounded)."""
    s = _addr_cache.get(raw)
    if s is None:
        s = socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
        if len(_addr_cache) > 65536:
            _addr_cache.clear()
        _addr_cache[raw] = s
    return s


#: Ethernet II + IPv4 (no options) + TCP up to the flags byte, in one go (:func:`eth_ipv4_tcp`):
#: ethertype, version/IHL, total length, flags/fragment offset, protocol, (addresses and ports
#: skipped: sliced once as the flow key), sequence and acknowledgment numbers, data offset, flags
_ETH_IPV4_TCP = struct.Struct("!12xHBxH2xH1xB14xIIBB")

#: :func:`eth_ipv4_tcp`'s result: ``(flow_key, seq, ack, flags, payload)`` — ``flow_key`` the raw
#: bytes source address ‖ destination address ‖ source port ‖ destination port (12 bytes, one per
#: direction of a flow; :func:`flow_key_parts` gives them as text and numbers)
FastTcp4 = Tuple[bytes, int, int, int, bytes]


def eth_ipv4_tcp(linktype: int, data: bytes) -> Optional[FastTcp4]:
    """The fast path of :func:`decode_packet` for its commonest packet: Ethernet II (no VLAN tag)
    / IPv4 without options (RFC 791 §3.1), not a fragment / TCP (RFC 9293 §3.1), every byte the IP
    length announces captured. Returns :data:`FastTcp4` — the same fields :func:`decode_packet`
    gives for it, but the addresses kept raw — or ``None`` for any other packet (then ask
    :func:`decode_packet`). One ``struct`` call; never raises."""
    if linktype != 1 or len(data) < 54:  # Ethernet 14 + IPv4 20 + TCP 20 bytes
        return None
    et, vihl, tot, frag, proto, seq, ack, doff, flags = _ETH_IPV4_TCP.unpack_from(data, 0)
    if et != 0x0800 or vihl != 0x45 or proto != 6 or frag & 0x3FFF:
        return None
    n = len(data)
    lend = 14 + tot if tot >= 20 else n  # tot 0: TSO, trust the capture
    hl = (doff >> 4) * 4
    if lend > n or hl < 20 or 34 + hl > lend:
        return None
    return data[26:38], seq, ack, flags, data[34 + hl:lend]


def flow_key_parts(key: bytes) -> Tuple[str, int, str, int]:
    """A :data:`FastTcp4` ``flow_key`` as ``(src, sport, dst, dport)`` (addresses as text, like
    :class:`Decoded`'s)."""
    sport, dport = _PORTS.unpack_from(key, 8)
    return ip_text(key[0:4]), sport, ip_text(key[4:8]), dport


def _l3_offset(linktype: int, data: bytes) -> Tuple[int, int]:
    """(ethertype-like protocol: 4 / 6 / 0 unknown, offset of the IP header); -1 = unsupported."""
    n = len(data)
    if linktype == 1:
        off = 12
        while True:
            if n < off + 2:
                return 0, 0
            (et,) = _HH.unpack_from(data, off)
            if et in _ETH_VLAN:
                off += 4
                continue
            off += 2
            if et == _ETH_IPV4:
                return 4, off
            if et == _ETH_IPV6:
                return 6, off
            return 0, off
    if linktype in (101, 12, 14):
        if not n:
            return 0, 0
        v = data[0] >> 4
        return (v if v in (4, 6) else 0), 0
    if linktype == 228:
        return 4, 0
    if linktype == 229:
        return 6, 0
    if linktype == 113:
        if n < 16:
            return 0, 0
        (et,) = _HH.unpack_from(data, 14)
        return (4 if et == _ETH_IPV4 else 6 if et == _ETH_IPV6 else 0), 16
    if linktype == 276:
        if n < 20:
            return 0, 0
        (et,) = _HH.unpack_from(data, 0)
        return (4 if et == _ETH_IPV4 else 6 if et == _ETH_IPV6 else 0), 20
    if linktype in (0, 108):
        if n < 4:
            return 0, 0
        if linktype == 108:
            (fam,) = struct.unpack_from("!I", data, 0)
        else:
            (fam,) = struct.unpack_from("<I", data, 0)
            if fam > 0xFFFF:  # written on a big-endian host
                (fam,) = struct.unpack_from(">I", data, 0)
        if fam == 2:
            return 4, 4
        if fam in _AF_INET6_VALUES:
            return 6, 4
        return 0, 4
    return -1, 0


def link_supported(linktype: int) -> bool:
    """Whether :func:`decode_packet` understands this link type."""
    return linktype in (0, 1, 12, 14, 101, 108, 113, 228, 229, 276)


_V6_EXT = (0, 43, 51, 60)  # hop-by-hop, routing, AH, destination options (fragment: 44)


def skip_ipv6_extensions(proto: int, data: bytes, pos: int, end: int) -> Tuple[int, int]:
    """Skip IPv6 extension headers (RFC 8200 §4: hop-by-hop, routing, destination options; AH,
    RFC 4302 §2.2 — not the fragment header) starting with header ``proto`` at ``pos``; returns
    ``(next header, offset)``, next header -1 if an extension header is cut by ``end``."""
    while proto in _V6_EXT:
        if end < pos + 8:
            return -1, pos
        nxt = data[pos]
        pos += (data[pos + 1] + 2) * 4 if proto == 51 else (data[pos + 1] + 1) * 8
        proto = nxt
    return proto, pos


def decode_transport(proto: int, src: str, dst: str, data: bytes, lstart: int, lend: int,
                     missing_ip: int, ver: int) -> Optional[Decoded]:
    """The TCP (RFC 9293 §3.1) or UDP (RFC 768) header at ``data[lstart:lend]`` of an IP packet
    (or a reassembled datagram) → :class:`Decoded`; ``None`` if it is neither or is truncated.
    ``missing_ip``: payload bytes the IP length announced but the capture lacks."""
    if proto == 6:
        if lend < lstart + 20:
            return None
        sport, dport, seq, ack, doff, flags = _TCP.unpack_from(data, lstart)
        hl = (doff >> 4) * 4
        if hl < 20 or lstart + hl > lend:
            return None
        return Decoded(6, src, sport, dst, dport, data[lstart + hl:lend], missing_ip, seq, ack,
                       flags, ip_version=ver)
    if proto == 17:
        if lend < lstart + 8:
            return None
        sport, dport, ulen = _UDP.unpack_from(data, lstart)
        pend = lstart + ulen if ulen >= 8 else lend
        missing = max(0, pend - lend) if not missing_ip else missing_ip
        return Decoded(17, src, sport, dst, dport, data[lstart + 8:min(pend, lend)], missing,
                       ip_version=ver)
    return None


def decode_packet(linktype: int, data: bytes) -> Optional[Decoded]:
    """Parse link + IP + TCP/UDP headers. Returns ``None`` for anything that is not (a parsable)
    TCP/UDP over IPv4/IPv6 — including unsupported link types (check :func:`link_supported`).

    Truncated headers return ``None``; a payload cut by the snap length is returned with
    ``missing`` set to the number of payload bytes the IP/UDP length announced but the capture
    lacks. IP fragments come back with ``fragment`` set (see :class:`Decoded`). Never raises on
    bad bytes. The commonest packet takes the fast path (:func:`eth_ipv4_tcp`).
    """
    fast = eth_ipv4_tcp(linktype, data)
    if fast is not None:
        key, seq, ack, flags, payload = fast
        src, sport, dst, dport = flow_key_parts(key)
        return Decoded(6, src, sport, dst, dport, payload, 0, seq, ack, flags)
    ver, off = _l3_offset(linktype, data)
    if ver <= 0:
        return None
    n = len(data)
    try:
        frag_id = frag_off = 0
        more = is_frag = False
        if ver == 4:
            if n < off + 20:
                return None
            vihl, _tos, tot, ident, frag, _ttl, proto, _ck, s, d = _V4.unpack_from(data, off)
            if vihl >> 4 != 4:
                return None
            ihl = (vihl & 0x0F) * 4
            if ihl < 20:
                return None
            lstart = off + ihl
            lend = off + tot if tot >= ihl else n  # tot 0: TSO, trust the capture
            src, dst = ip_text(s), ip_text(d)
            if frag & 0x3FFF:
                is_frag, frag_id, frag_off, more = True, ident, (frag & 0x1FFF) * 8, bool(frag & 0x2000)
        else:
            if n < off + 40:
                return None
            if data[off] >> 4 != 6:
                return None
            (plen,) = _HH.unpack_from(data, off + 4)
            src, dst = ip_text(data[off + 8:off + 24]), ip_text(data[off + 24:off + 40])
            lstart = off + 40
            lend = lstart + plen if plen else n
            proto, lstart = skip_ipv6_extensions(data[off + 6], data, lstart, n)
            while proto == 44:  # fragment header
                if n < lstart + 8:
                    return None
                fo, ident = struct.unpack_from("!HI", data, lstart + 2)
                proto = data[lstart]
                lstart += 8
                if fo & 0xFFF9:
                    is_frag, frag_id, frag_off, more = True, ident, fo & 0xFFF8, bool(fo & 1)
                    break
                proto, lstart = skip_ipv6_extensions(proto, data, lstart, n)  # atomic fragment
            if proto < 0:
                return None
        missing_ip = max(0, lend - n)
        lend = min(lend, n)
        if is_frag:
            if proto not in (6, 17) and not (ver == 6 and proto in _V6_EXT):
                return None
            sport = dport = 0
            if frag_off == 0 and proto in (6, 17) and lend >= lstart + 4:
                sport, dport = struct.unpack_from("!HH", data, lstart)
            return Decoded(proto, src, sport, dst, dport, data[lstart:lend], missing_ip,
                           fragment=True, ip_version=ver, frag_id=frag_id, frag_offset=frag_off,
                           frag_more=more)
        return decode_transport(proto, src, dst, data, lstart, lend, missing_ip, ver)
    except (struct.error, IndexError, ValueError):  # defensive: bad header bytes
        return None
