"""A tap on the relay's sockets, and a pcap writer that replays it as Ethernet/IP/TCP packets.

:class:`Tap` records, per TCP connection, the bytes each side sent and when (the relay calls
:meth:`Tap.open` / :meth:`Tap.data` / :meth:`Tap.close`; tests and the simulator may call them
directly — the tap is sans-IO). Times come from the injected ``clock`` (default ``time.time``).

:func:`write_pcap` turns the recording into a classic libpcap file (draft-ietf-opsawg-pcap,
LINKTYPE_ETHERNET) of real-looking packets, built with :mod:`struct`:

* Ethernet II → IPv4 (RFC 791, DF, TTL 64, per-direction IP id, header checksum) or IPv6
  (RFC 8200) → TCP (RFC 9293) with the real addresses and ports of the connection;
* three-way handshake at ``open`` (SYN with an MSS option, SYN-ACK, ACK), initial sequence numbers
  derived from the connection's addresses (CRC-32) so the output is deterministic;
* each ``data`` call becomes segments of at most ``mss`` payload bytes (ACK, PSH on the last) with
  correct seq/ack numbers, answered by a pure ACK from the other side;
* ``close``: FIN/ACK from the closing side, ACK, FIN/ACK from the other side, ACK — or RST/ACK
  for a reset (the relay aborts slow readers);
* TCP checksums over the RFC 9293 §3.1 pseudo-header (``checksums=False`` leaves them zero).

Every packet of one tap event carries that event's timestamp (kept non-decreasing). The same tap
events always give the same file, byte for byte.

QUIC (:mod:`gbp_lab.sim.quic`): the relay also calls :meth:`Tap.datagram` for every UDP datagram
its socket received or sent, and :func:`write_udp_pcapng` writes those as they crossed the wire —
Ethernet II → IPv4/IPv6 → UDP (RFC 768, checksum over the pseudo-header) in a pcapng
(:class:`~gbp_lab.capture.pcapwriter.PcapngWriter`), optionally with the run's secrets embedded
up front (the TLS key log as the standard TLS secrets block, the MLS lines as our GBPK block), so
that :func:`~gbp_lab.capture.model.read_capture` decrypts both layers with no key log argument.
The TCP writer skips datagram events (it writes the relay's view of the member streams).

Limits: what the tap sees is what the relay handed to its transports; bytes still buffered when a
connection is aborted are recorded as sent. No retransmissions, window updates or delayed ACKs are
invented.
"""
from __future__ import annotations

import ipaddress
import os
import struct
import time
import zlib
from array import array
from dataclasses import dataclass
from enum import IntEnum
from typing import BinaryIO, Callable, Dict, List, Optional, Tuple, Union

from gbp_lab.capture.pcapwriter import PcapngWriter, owner_only_output
from gbp_lab.core.errors import UsageError
from gbp_lab.core.gbp.framing import RecordReader

__all__ = ["TapKind", "TapEvent", "Tap", "write_pcap", "pcap_bytes", "write_udp_pcapng",
           "DEFAULT_MSS", "LINKTYPE_ETHERNET"]

DEFAULT_MSS = 1460
LINKTYPE_ETHERNET = 1
PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
SNAPLEN = 262144

Addr = Tuple[str, int]


class TapKind(IntEnum):
    """What a :class:`TapEvent` is: a connection opened, bytes, a connection closed, or one UDP
    datagram (QUIC: ``client`` is its source, ``server`` its destination)."""

    OPEN = 0
    DATA = 1
    CLOSE = 2
    DATAGRAM = 3


@dataclass(frozen=True)
class TapEvent:
    """One thing the tap saw. ``from_client``: direction of DATA and DATAGRAM, closing side of
    CLOSE. A DATAGRAM's ``client`` / ``server`` are its source / destination address."""

    time: float
    conn: int
    kind: TapKind
    from_client: bool = True
    data: bytes = b""
    client: Optional[Addr] = None  #: OPEN only
    server: Optional[Addr] = None  #: OPEN only
    reset: bool = False  #: CLOSE only


class Tap:
    """Recorder of what crosses the sockets (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.events: List[TapEvent] = []
        self._open: Dict[int, TapEvent] = {}

    def open(self, conn: int, client: Addr, server: Addr) -> None:
        """A TCP connection from *client* to *server* was established."""
        if conn in self._open:
            raise UsageError(f"tap connection {conn} opened twice", vid="TAP-USAGE")
        ev = TapEvent(self.clock(), conn, TapKind.OPEN, True, b"", (str(client[0]), int(client[1])),
                      (str(server[0]), int(server[1])))
        self._open[conn] = ev
        self.events.append(ev)

    def data(self, conn: int, from_client: bool, data: bytes) -> None:
        """*data* was sent by the client (``from_client``) or by the server."""
        if conn not in self._open:
            raise UsageError(f"tap data on unknown connection {conn}", vid="TAP-USAGE")
        if data:
            self.events.append(TapEvent(self.clock(), conn, TapKind.DATA, bool(from_client),
                                        bytes(data)))

    def close(self, conn: int, by_client: bool, reset: bool = False) -> None:
        """The connection ended, closed by the client (``by_client``) or the server."""
        if conn not in self._open:
            raise UsageError(f"tap close on unknown connection {conn}", vid="TAP-USAGE")
        self.events.append(TapEvent(self.clock(), conn, TapKind.CLOSE, bool(by_client),
                                    reset=bool(reset)))

    def datagram(self, src: Addr, dst: Addr, data: bytes, *, from_client: bool) -> None:
        """One UDP datagram *data* from *src* to *dst* crossed the relay's socket (received from
        a client, ``from_client``, or sent to one)."""
        self.events.append(TapEvent(self.clock(), 0, TapKind.DATAGRAM, bool(from_client),
                                    bytes(data), (str(src[0]), int(src[1])),
                                    (str(dst[0]), int(dst[1]))))

    @property
    def datagrams(self) -> List[TapEvent]:
        """The DATAGRAM events, in order."""
        return [e for e in list(self.events) if e.kind is TapKind.DATAGRAM]

    # -- views -------------------------------------------------------------------------------
    @property
    def connections(self) -> Dict[int, Tuple[Addr, Addr]]:
        """conn → (client address, server address)."""
        return {c: (e.client, e.server) for c, e in self._open.items()}  # type: ignore[misc]

    def stream(self, conn: int, from_client: bool) -> bytes:
        """All bytes one side of *conn* sent, concatenated."""
        return b"".join(e.data for e in list(self.events)
                        if e.kind is TapKind.DATA and e.conn == conn and e.from_client == from_client)

    def records(self, conn: int, from_client: bool) -> List[bytes]:
        """The complete ``u32-LE length ‖ bytes`` records of one direction, in order."""
        return [r for r in RecordReader().feed(self.stream(conn, from_client))
                if isinstance(r, bytes)]

    def write_pcap(self, target: Union[str, os.PathLike, BinaryIO], **kw) -> int:
        """:func:`write_pcap` of this tap; returns the number of packets."""
        return write_pcap(self.events, target, **kw)


# --------------------------------------------------------------------------------------------
# packet synthesis
# --------------------------------------------------------------------------------------------
_FIN, _SYN, _RST, _PSH, _ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_WINDOW = 65535
_eth = struct.Struct("!6s6sH")
_ip4 = struct.Struct("!BBHHHBBH4s4s")
_ip6 = struct.Struct("!IHBB16s16s")
_tcp = struct.Struct("!HHIIHHHH")
_rec_us = struct.Struct("<IIII")


def _csum_native(data: bytes) -> int:
    """RFC 1071 one's-complement sum, computed on native-order 16-bit words (byte-order
    independent; the result must be stored with native order too)."""
    if len(data) & 1:
        data += b"\x00"
    s = sum(array("H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


_native = struct.Struct("=H")


class _Side:
    __slots__ = ("ip", "port", "mac", "next", "ipid")

    def __init__(self, ip: bytes, port: int, mac: bytes, isn: int) -> None:
        self.ip, self.port, self.mac, self.next, self.ipid = ip, port, mac, isn, 0


class _Writer:
    def __init__(self, mss: int, checksums: bool) -> None:
        self.mss = mss
        self.checksums = checksums
        self.out: List[bytes] = []
        self.ticks = 0
        self.packets = 0
        self.units = 1_000_000

    def packet(self, ticks: int, a: _Side, b: _Side, v6: bool, flags: int, payload: bytes = b"",
               seq: Optional[int] = None, ack: bool = True, opts: bytes = b"") -> None:
        seq = a.next if seq is None else seq
        hlen = 20 + len(opts)
        tcp = bytearray(_tcp.pack(a.port, b.port, seq & 0xFFFFFFFF, (b.next if ack else 0) & 0xFFFFFFFF,
                                  (hlen // 4) << 12 | flags, _WINDOW, 0, 0))
        tcp += opts
        tcp += payload
        tlen = len(tcp)
        if v6:
            if self.checksums:
                pseudo = a.ip + b.ip + struct.pack("!I3xB", tlen, 6)
                tcp[16:18] = _native.pack(_csum_native(pseudo + bytes(tcp)))
            ip = _ip6.pack(6 << 28, tlen, 6, 64, a.ip, b.ip)
            ethertype = 0x86DD
        else:
            if self.checksums:
                pseudo = a.ip + b.ip + struct.pack("!xBH", 6, tlen)
                tcp[16:18] = _native.pack(_csum_native(pseudo + bytes(tcp)))
            hdr = bytearray(_ip4.pack(0x45, 0, 20 + tlen, a.ipid & 0xFFFF, 0x4000, 64, 6, 0, a.ip, b.ip))
            hdr[10:12] = _native.pack(_csum_native(bytes(hdr)))
            ip = bytes(hdr)
            a.ipid += 1
            ethertype = 0x0800
        frame = _eth.pack(b.mac, a.mac, ethertype) + ip + tcp
        self.ticks = max(self.ticks, ticks)
        sec, frac = divmod(self.ticks, self.units)
        self.out.append(_rec_us.pack(sec, frac, len(frame), len(frame)))
        self.out.append(frame)
        self.packets += 1


def _ip_bytes(host: str) -> Tuple[bytes, bool]:
    try:
        addr = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        raise UsageError(f"tap address {host!r} is not an IP address", vid="TAP-ADDR") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.packed, addr.version == 6


def _isn(tag: str) -> int:
    return zlib.crc32(tag.encode())


def _events(src) -> List[TapEvent]:
    return list(src.events) if isinstance(src, Tap) else list(src)


def pcap_bytes(events, *, mss: int = DEFAULT_MSS, checksums: bool = True,
               nanoseconds: bool = False) -> bytes:
    """The pcap file for *events* (a :class:`Tap` or a list of :class:`TapEvent`) as bytes."""
    if not 1 <= mss <= 65495:
        raise UsageError("mss must be in 1..65495", vid="TAP-USAGE")
    w = _Writer(mss, checksums)
    if nanoseconds:
        w.units = 1_000_000_000
    conns: Dict[int, Tuple[_Side, _Side, bool]] = {}
    closed: Dict[int, bool] = {}
    for ev in _events(events):
        if ev.kind is TapKind.DATAGRAM:
            continue  # the UDP view is write_udp_pcapng's
        ticks = int(round(ev.time * w.units))
        if ev.kind is TapKind.OPEN:
            cip, v6c = _ip_bytes(ev.client[0])  # type: ignore[index]
            sip, v6s = _ip_bytes(ev.server[0])  # type: ignore[index]
            if v6c != v6s:
                raise UsageError("client and server of one connection differ in IP version",
                                 vid="TAP-ADDR")
            tag = f"{ev.client}|{ev.server}|{ev.conn}"
            c = _Side(cip, ev.client[1], b"\x02\x01" + cip[-4:], _isn("c" + tag))  # type: ignore[index]
            s = _Side(sip, ev.server[1], b"\x02\x00" + sip[-4:], _isn("s" + tag))  # type: ignore[index]
            conns[ev.conn] = (c, s, v6c)
            mss_opt = struct.pack("!BBH", 2, 4, mss)
            w.packet(ticks, c, s, v6c, _SYN, ack=False, opts=mss_opt)
            c.next += 1
            w.packet(ticks, s, c, v6c, _SYN | _ACK, opts=mss_opt)
            s.next += 1
            w.packet(ticks, c, s, v6c, _ACK)
            continue
        try:
            c, s, v6 = conns[ev.conn]
        except KeyError:
            raise UsageError(f"tap event for connection {ev.conn} before its OPEN",
                             vid="TAP-ORDER") from None
        a, b = (c, s) if ev.from_client else (s, c)
        if ev.kind is TapKind.DATA:
            data = ev.data
            n = len(data)
            for off in range(0, n, mss):
                seg = data[off:off + mss]
                last = off + mss >= n
                w.packet(ticks, a, b, v6, _ACK | (_PSH if last else 0), seg)
                a.next += len(seg)
            w.packet(ticks, b, a, v6, _ACK)
        elif ev.kind is TapKind.CLOSE:
            if closed.get(ev.conn):
                continue
            closed[ev.conn] = True
            if ev.reset:
                w.packet(ticks, a, b, v6, _RST | _ACK)
                continue
            w.packet(ticks, a, b, v6, _FIN | _ACK)
            a.next += 1
            w.packet(ticks, b, a, v6, _ACK)
            w.packet(ticks, b, a, v6, _FIN | _ACK)
            b.next += 1
            w.packet(ticks, a, b, v6, _ACK)
    magic = PCAP_MAGIC_NS if nanoseconds else PCAP_MAGIC_US
    header = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)
    return header + b"".join(w.out)


def write_pcap(events, target: Union[str, os.PathLike, BinaryIO], *, mss: int = DEFAULT_MSS,
               checksums: bool = True, nanoseconds: bool = False) -> int:
    """Write :func:`pcap_bytes` to a path or binary file object; return the packet count."""
    data = pcap_bytes(events, mss=mss, checksums=checksums, nanoseconds=nanoseconds)
    if hasattr(target, "write"):
        target.write(data)  # type: ignore[union-attr]
    else:
        with open(target, "wb") as f:  # type: ignore[arg-type]
            f.write(data)
    return _count(data)


def _count(data: bytes) -> int:
    pos, n = 24, 0
    while pos + 16 <= len(data):
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
        n += 1
    return n


_udp = struct.Struct("!HHHH")


def _udp_frame(src: Tuple[bytes, int], dst: Tuple[bytes, int], v6: bool, ipid: int,
               payload: bytes, checksums: bool) -> bytes:
    """Ethernet II + IPv4 (DF, TTL 64) or IPv6 + UDP (RFC 768) carrying *payload*."""
    (sip, sport), (dip, dport) = src, dst
    ulen = 8 + len(payload)
    udp = bytearray(_udp.pack(sport, dport, ulen, 0))
    udp += payload
    if v6:
        if checksums:
            pseudo = sip + dip + struct.pack("!I3xB", ulen, 17)
            udp[6:8] = _native.pack(_csum_native(pseudo + bytes(udp)) or 0xFFFF)
        ip = _ip6.pack(6 << 28, ulen, 17, 64, sip, dip)
        ethertype = 0x86DD
    else:
        if checksums:
            pseudo = sip + dip + struct.pack("!xBH", 17, ulen)
            udp[6:8] = _native.pack(_csum_native(pseudo + bytes(udp)) or 0xFFFF)
        hdr = bytearray(_ip4.pack(0x45, 0, 20 + ulen, ipid & 0xFFFF, 0x4000, 64, 17, 0, sip, dip))
        hdr[10:12] = _native.pack(_csum_native(bytes(hdr)))
        ip = bytes(hdr)
        ethertype = 0x0800
    return _eth.pack(b"\x02\x00" + dip[-4:], b"\x02\x00" + sip[-4:], ethertype) + ip + bytes(udp)


def write_udp_pcapng(events, target: Union[str, os.PathLike, BinaryIO], *,
                     keylog: Optional[str] = None, tls_keylog: Optional[str] = None,
                     checksums: bool = True, nanoseconds: bool = False) -> int:
    """Write the DATAGRAM events of *events* (a :class:`Tap` or a list of :class:`TapEvent`) as
    Ethernet/IP/UDP packets in a pcapng file (one interface, LINKTYPE_ETHERNET), each with its
    event's timestamp (kept non-decreasing). *tls_keylog* (SSLKEYLOGFILE lines) and *keylog*
    (our MLS key-log text) are embedded first as Decryption Secrets Blocks (TLS key log, GBPK).
    A path target is created owner-only when secrets are embedded. Returns the packet count."""
    units = 1_000_000_000 if nanoseconds else 1_000_000
    grams = [e for e in _events(events) if e.kind is TapKind.DATAGRAM]
    secret = bool(keylog or tls_keylog)

    def write(dst: Union[str, os.PathLike, BinaryIO]) -> None:
        ipids: Dict[bytes, int] = {}
        last = 0
        with PcapngWriter(dst) as w:
            w.add_interface(LINKTYPE_ETHERNET, snaplen=SNAPLEN, ts_units=units)
            if tls_keylog:
                w.add_tls_keylog(tls_keylog)
            if keylog:
                w.add_secrets(keylog)
            for ev in grams:
                sip, v6s = _ip_bytes(ev.client[0])  # type: ignore[index]
                dip, v6d = _ip_bytes(ev.server[0])  # type: ignore[index]
                if v6s != v6d:
                    raise UsageError("source and destination of a datagram differ in IP version",
                                     vid="TAP-ADDR")
                n = ipids.get(sip, 0)
                ipids[sip] = n + 1
                frame = _udp_frame((sip, ev.client[1]), (dip, ev.server[1]),  # type: ignore[index]
                                   v6s, n, ev.data, checksums)
                last = max(last, int(round(ev.time * units)))
                w.write_packet(frame, ticks=last, ts_units=units)

    if secret and isinstance(target, (str, os.PathLike)):
        with owner_only_output(str(target)) as tmp:
            write(tmp)
    else:
        write(target)
    return len(grams)
