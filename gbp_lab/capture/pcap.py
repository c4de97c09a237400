"""Capture files: a fast pcap / pcapng reader, a pcapng writer, and link/IP/TCP/UDP header parsing.

Formats (all parsed with :mod:`struct` on one in-memory/mmapped buffer — scapy is far too slow for
bulk reading; it is used only to cross-check in the tests):

* classic pcap (libpcap format, draft-ietf-opsawg-pcap): both byte orders, microsecond
  (``a1b2c3d4``) and nanosecond (``a1b23c4d``) magics, and the "modified" Kuznetzov variant
  (``a1b2cd34``, 8 extra bytes per record header);
* pcapng (draft-ietf-opsawg-pcapng): Section Header Blocks (each section may change byte order;
  interface ids restart per section), Interface Description Blocks with ``if_tsresol`` (option 9,
  10^-n or 2^-n) and ``if_tsoffset`` (option 14), Enhanced Packet Blocks, Simple Packet Blocks
  (no timestamp: ``time`` is NaN), the obsolete Packet Block, and **Decryption Secrets Blocks**
  (block type 0x0000000A, §4.7), whose secrets are exposed in :attr:`CaptureReader.secrets`.

Our DSB secrets type for the GBP key log is :data:`SECRETS_TYPE_GBP_KEYLOG` = ``0x4742504B``
(ASCII ``"GBPK"``), chosen like Wireshark's ``0x544c534b`` (``"TLSK"``) for TLS key logs; the
secrets data is the UTF-8 text of our key log (``gbp_lab.core.keylog``).

Defects never raise out of iteration: a truncated or corrupt file ends the iteration and is listed
in :attr:`CaptureReader.issues` (with a stable ``vid``). Only a file that is not a capture at all
(unknown magic) raises :class:`CaptureFormatError` when the reader is opened.

Link types decoded by :func:`decode_packet`: NULL/loopback (0, host byte order family), Ethernet (1,
with 802.1Q/802.1ad tags), raw IP (101, and DLT_RAW 12/14), OpenBSD loop (108, network order),
Linux cooked SLL (113) and SLL2 (276), raw IPv4 (228) and IPv6 (229).
"""
from __future__ import annotations

import math
import mmap
import os
import socket
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import starmap as _starmap
from typing import BinaryIO, Dict, Iterator, List, Optional, Tuple, Union

from gbp_lab.core.errors import DecodeError, UsageError

__all__ = [
    "ip_text",
    "CaptureFormatError",
    "LinkType",
    "SECRETS_TYPE_GBP_KEYLOG",
    "SECRETS_TYPE_TLS_KEYLOG",
    "Interface",
    "Packet",
    "DecryptionSecrets",
    "CaptureIssue",
    "CaptureReader",
    "read_packets",
    "PcapngWriter",
    "inject_secrets",
    "Decoded",
    "decode_packet",
    "IpDefragmenter",
    "PendingDatagram",
    "TCP_FIN",
    "TCP_SYN",
    "TCP_RST",
    "TCP_PSH",
    "TCP_ACK",
]

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]


class CaptureFormatError(DecodeError):
    """The bytes are not a pcap/pcapng capture (or a block is corrupt beyond recovery)."""

    default_vid = "CAP-FORMAT"


class LinkType(IntEnum):
    """LINKTYPE_* values (tcpdump.org link-layer header types) that we decode."""

    NULL = 0
    ETHERNET = 1
    DLT_RAW_12 = 12
    DLT_RAW_14 = 14
    RAW = 101
    LOOP = 108
    LINUX_SLL = 113
    IPV4 = 228
    IPV6 = 229
    LINUX_SLL2 = 276


#: DSB secrets type of the GBP key log (ASCII "GBPK"; our own value, not IANA-registered).
SECRETS_TYPE_GBP_KEYLOG = 0x4742504B
#: DSB secrets type of a TLS key log (NSS format), as written by Wireshark/editcap.
SECRETS_TYPE_TLS_KEYLOG = 0x544C534B

_BT_SHB = 0x0A0D0D0A
_BT_IDB = 0x00000001
_BT_PB = 0x00000002  # obsolete Packet Block
_BT_SPB = 0x00000003
_BT_EPB = 0x00000006
_BT_DSB = 0x0000000A
_BOM = 0x1A2B3C4D

_PCAP_MAGICS = {
    # magic as read little-endian -> (endian, ticks per second, record header size)
    0xA1B2C3D4: ("<", 1_000_000, 16),
    0xA1B23C4D: ("<", 1_000_000_000, 16),
    0xA1B2CD34: ("<", 1_000_000, 24),
    0xD4C3B2A1: (">", 1_000_000, 16),
    0x4D3CB2A1: (">", 1_000_000_000, 16),
    0x34CDB2A1: (">", 1_000_000, 24),
}

#: caplen sanity bound: a record claiming more than this is treated as corruption.
MAX_CAPLEN = 1 << 28


@dataclass(frozen=True, slots=True)
class Interface:
    """One capture interface (pcapng IDB; a classic pcap file has exactly one)."""

    index: int  #: global index over all sections of the file
    linktype: int
    snaplen: int
    ts_units: int  #: timestamp ticks per second (10**n or 2**n)
    ts_offset: int = 0  #: seconds added to every timestamp (if_tsoffset)
    name: Optional[str] = None


@dataclass(frozen=True, slots=True)
class Packet:
    """One captured packet.

    ``time`` is seconds since the epoch as a float (NaN for a Simple Packet Block); the exact value
    is ``ts_ticks / ts_units`` (``ts_ticks`` already includes ``if_tsoffset``).
    """

    index: int  #: 0-based ordinal among the packets of the file
    interface: int  #: global interface index
    linktype: int
    time: float
    ts_ticks: int
    ts_units: int
    origlen: int
    data: bytes

    @property
    def caplen(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class DecryptionSecrets:
    """A pcapng Decryption Secrets Block (type 0x0000000A)."""

    secrets_type: int
    data: bytes
    offset: int  #: file offset of the block

    @property
    def is_gbp_keylog(self) -> bool:
        return self.secrets_type == SECRETS_TYPE_GBP_KEYLOG


@dataclass(frozen=True, slots=True)
class CaptureIssue:
    """A defect of the file itself (truncation, corrupt block, unknown interface …)."""

    offset: int
    vid: str
    reason: str
    packet_index: Optional[int] = None  #: index the next packet would have had


def _load(source: Source) -> Tuple[object, Optional[object]]:
    """Return (buffer, closer). Paths are mmapped (read-only), file objects read fully."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    if isinstance(source, (str, os.PathLike)):
        f = open(source, "rb")
        try:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                f.close()
                return b"", None
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except Exception:
            f.close()
            raise
        f.close()
        return mm, mm
    if hasattr(source, "read"):
        return source.read(), None
    raise UsageError(f"cannot read a capture from {type(source).__name__}", vid="CAP-SOURCE")


class CaptureReader:
    """Iterate over the packets of a pcap or pcapng capture.

    Attributes filled while iterating (reset when iteration starts again): :attr:`interfaces`,
    :attr:`secrets`, :attr:`issues` (:attr:`format` is known as soon as the reader is built).
    """

    def __init__(self, source: Source) -> None:
        self._buf, self._closer = _load(source)
        self.size = len(self._buf)
        self.interfaces: List[Interface] = []
        self.secrets: List[DecryptionSecrets] = []
        self.issues: List[CaptureIssue] = []
        self.packet_count = 0
        if self.size < 4:
            self.close()
            raise CaptureFormatError(f"file too short for a capture header ({self.size} bytes)",
                                     vid="CAP-MAGIC", where=0)
        (magic,) = struct.unpack_from("<I", self._buf, 0)
        if magic == _BT_SHB:
            self.format = "pcapng"
        elif magic in _PCAP_MAGICS:
            self.format = "pcap"
        else:
            self.close()
            raise CaptureFormatError(f"unknown capture magic 0x{magic:08x}", vid="CAP-MAGIC", where=0)

    # -- context manager / cleanup -------------------------------------------------------------
    def close(self) -> None:
        if self._closer is not None:
            try:
                self._closer.close()
            except BufferError:  # pragma: no cover - a memoryview still alive
                pass
            self._closer = None

    def __enter__(self) -> "CaptureReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[Packet]:
        return _starmap(Packet, self.iter_tuples())

    def iter_tuples(self) -> Iterator[tuple]:
        """Like iterating the reader, but each packet is a plain tuple in :class:`Packet` field
        order ``(index, interface, linktype, time, ts_ticks, ts_units, origlen, data)`` — no
        object per packet (the bulk readers' hot path; ``Packet(*t)`` gives the object)."""
        if self._closer is None and not isinstance(self._buf, bytes):
            raise UsageError("the capture reader is closed", vid="CAP-CLOSED")
        self.interfaces, self.secrets, self.issues, self.packet_count = [], [], [], 0
        if self.format == "pcap":
            return self._iter_pcap()
        return self._iter_pcapng()

    # -- helpers -------------------------------------------------------------------------------
    def _issue(self, offset: int, vid: str, reason: str) -> None:
        self.issues.append(CaptureIssue(offset, vid, reason, self.packet_count))

    @property
    def gbp_keylog_text(self) -> str:
        """All GBPK secrets of the file concatenated (as text; undecodable bytes replaced)."""
        parts = [s.data.decode("utf-8", "replace") for s in self.secrets if s.is_gbp_keylog]
        return "".join(p if p.endswith("\n") or not p else p + "\n" for p in parts)

    # -- classic pcap ----------------------------------------------------------------------------
    def _iter_pcap(self) -> Iterator[tuple]:
        buf, size = self._buf, self.size
        (magic,) = struct.unpack_from("<I", buf, 0)
        endian, units, rec_size = _PCAP_MAGICS[magic]
        if size < 24:
            self._issue(0, "CAP-TRUNCATED-HEADER", f"pcap file header truncated ({size} of 24 bytes)")
            return
        _maj, _min, _zone, _sig, snaplen, network = struct.unpack_from(endian + "HHiIII", buf, 4)
        linktype = network & 0xFFFF
        self.interfaces.append(Interface(0, linktype, snaplen, units))
        rec = struct.Struct(endian + "IIII")
        pos = 24
        index = 0
        fdiv = float(units)
        while pos < size:
            if pos + rec_size > size:
                self._issue(pos, "CAP-TRUNCATED-RECORD",
                            f"record header truncated: {size - pos} of {rec_size} bytes at end of file")
                break
            sec, frac, caplen, origlen = rec.unpack_from(buf, pos)
            if caplen > MAX_CAPLEN:
                self._issue(pos, "CAP-CORRUPT-RECORD", f"implausible caplen {caplen}; reading stopped")
                break
            start = pos + rec_size
            end = start + caplen
            if end > size:
                self._issue(pos, "CAP-TRUNCATED-RECORD",
                            f"packet data truncated: {size - start} of {caplen} bytes at end of file")
                break
            self.packet_count += 1
            yield (index, 0, linktype, sec + frac / fdiv, sec * units + frac, units,
                   origlen, buf[start:end])
            index += 1
            pos = end

    # -- pcapng ----------------------------------------------------------------------------------
    def _iter_pcapng(self) -> Iterator[tuple]:
        buf, size = self._buf, self.size
        pos = 0
        endian = "<"
        section_ifaces: List[Interface] = []
        index = 0
        while pos < size:
            if pos + 12 > size:
                self._issue(pos, "CAP-TRUNCATED-BLOCK",
                            f"block header truncated: {size - pos} bytes at end of file")
                break
            (btype_le,) = struct.unpack_from("<I", buf, pos)
            if btype_le == _BT_SHB:
                (bom,) = struct.unpack_from("<I", buf, pos + 8)
                if bom == _BOM:
                    endian = "<"
                elif bom == 0x4D3C2B1A:
                    endian = ">"
                else:
                    self._issue(pos, "CAP-CORRUPT-BLOCK", f"bad byte-order magic 0x{bom:08x} in SHB")
                    break
                section_ifaces = []
            btype, blen = struct.unpack_from(endian + "II", buf, pos)
            if blen < 12 or blen % 4:
                self._issue(pos, "CAP-CORRUPT-BLOCK", f"invalid block total length {blen}")
                break
            if pos + blen > size:
                self._issue(pos, "CAP-TRUNCATED-BLOCK",
                            f"block type 0x{btype:x} truncated: {size - pos} of {blen} bytes")
                break
            (trail,) = struct.unpack_from(endian + "I", buf, pos + blen - 4)
            if trail != blen:
                self._issue(pos, "CAP-CORRUPT-BLOCK",
                            f"block trailer length {trail} != header length {blen}")
                break
            body = pos + 8
            body_end = pos + blen - 4
            if btype == _BT_EPB or btype == _BT_PB:
                if body_end - body < 20:
                    self._issue(pos, "CAP-CORRUPT-BLOCK", "packet block too short")
                else:
                    if btype == _BT_EPB:
                        ifid, hi, lo, caplen, origlen = struct.unpack_from(endian + "IIIII", buf, body)
                    else:
                        ifid, _drops, hi, lo, caplen, origlen = struct.unpack_from(
                            endian + "HHIIII", buf, body)
                    dstart = body + 20
                    if dstart + caplen > body_end:
                        self._issue(pos, "CAP-CORRUPT-BLOCK",
                                    f"captured length {caplen} exceeds the block")
                    elif ifid >= len(section_ifaces):
                        self._issue(pos, "CAP-UNKNOWN-INTERFACE",
                                    f"packet on undeclared interface {ifid}; skipped")
                    else:
                        iface = section_ifaces[ifid]
                        ticks = ((hi << 32) | lo) + iface.ts_offset * iface.ts_units
                        self.packet_count += 1
                        yield (index, iface.index, iface.linktype, ticks / iface.ts_units,
                               ticks, iface.ts_units, origlen, buf[dstart:dstart + caplen])
                        index += 1
            elif btype == _BT_SPB:
                if not section_ifaces:
                    self._issue(pos, "CAP-UNKNOWN-INTERFACE", "simple packet block before any IDB")
                elif body_end - body < 4:
                    self._issue(pos, "CAP-CORRUPT-BLOCK", "simple packet block too short")
                else:
                    (origlen,) = struct.unpack_from(endian + "I", buf, body)
                    iface = section_ifaces[0]
                    caplen = min(origlen, body_end - body - 4)
                    if iface.snaplen:
                        caplen = min(caplen, iface.snaplen)
                    self.packet_count += 1
                    yield (index, iface.index, iface.linktype, math.nan, -1, iface.ts_units,
                           origlen, buf[body + 4:body + 4 + caplen])
                    index += 1
            elif btype == _BT_IDB:
                if body_end - body < 8:
                    self._issue(pos, "CAP-CORRUPT-BLOCK", "interface description block too short")
                else:
                    linktype, _res, snaplen = struct.unpack_from(endian + "HHI", buf, body)
                    units, tsoff, name = 1_000_000, 0, None
                    for code, value in _options(buf, body + 8, body_end, endian):
                        if code == 9 and len(value) >= 1:
                            r = value[0]
                            units = (2 ** (r & 0x7F)) if r & 0x80 else (10 ** (r & 0x7F))
                        elif code == 14 and len(value) >= 8:
                            (tsoff,) = struct.unpack(endian + "q", value[:8])
                        elif code == 2:
                            name = value.decode("utf-8", "replace")
                    iface = Interface(len(self.interfaces), linktype, snaplen, units, tsoff, name)
                    self.interfaces.append(iface)
                    section_ifaces.append(iface)
            elif btype == _BT_DSB:
                if body_end - body < 8:
                    self._issue(pos, "CAP-CORRUPT-BLOCK", "decryption secrets block too short")
                else:
                    stype, slen = struct.unpack_from(endian + "II", buf, body)
                    if body + 8 + slen > body_end:
                        self._issue(pos, "CAP-CORRUPT-BLOCK",
                                    f"secrets length {slen} exceeds the block")
                    else:
                        self.secrets.append(DecryptionSecrets(stype, bytes(buf[body + 8:body + 8 + slen]),
                                                              pos))
            # SHB handled above; NRB, ISB, custom and unknown blocks are skipped.
            pos += blen

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def _options(buf, pos: int, end: int, endian: str) -> Iterator[Tuple[int, bytes]]:
    """pcapng options (code u16, length u16, value padded to 32 bits) up to opt_endofopt."""
    hdr = struct.Struct(endian + "HH")
    while pos + 4 <= end:
        code, length = hdr.unpack_from(buf, pos)
        if code == 0:
            return
        vstart = pos + 4
        if vstart + length > end:
            return
        yield code, bytes(buf[vstart:vstart + length])
        pos = vstart + length + (-length % 4)


def read_packets(source: Source) -> Tuple[List[Packet], CaptureReader]:
    """Read every packet; returns (packets, reader) — the reader holds interfaces/secrets/issues."""
    reader = CaptureReader(source)
    try:
        packets = list(reader)  # packet data are bytes copies (mmap slicing copies)
    finally:
        reader.close()
    return packets, reader


# ------------------------------------------------------------------------------------------------
# pcapng writer
# ------------------------------------------------------------------------------------------------
class PcapngWriter:
    """Write a little-endian pcapng file: SHB, IDBs, DSBs and EPBs.

    ``tsresol`` is the IDB ``if_tsresol`` exponent (decimal): 6 = microseconds, 9 = nanoseconds.
    Secrets should be added before the packets they decrypt (Wireshark reads DSBs in file order).
    """

    def __init__(self, target: Union[str, os.PathLike, BinaryIO], *, shb_options: bytes = b"") -> None:
        if isinstance(target, (str, os.PathLike)):
            self._f = open(target, "wb")
            self._own = True
        else:
            self._f = target
            self._own = False
        self._ifaces: List[int] = []  # ts units per interface
        self._block(_BT_SHB, struct.pack("<IHHq", _BOM, 1, 0, -1) + shb_options)

    def _block(self, btype: int, body: bytes) -> None:
        body += b"\x00" * (-len(body) % 4)
        blen = len(body) + 12
        self._f.write(struct.pack("<II", btype, blen) + body + struct.pack("<I", blen))

    @staticmethod
    def _opt(code: int, value: bytes) -> bytes:
        return struct.pack("<HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)

    def add_interface(self, linktype: int, *, snaplen: int = 0, tsresol: int = 6,
                      name: Optional[str] = None, ts_units: Optional[int] = None) -> int:
        """Write an IDB; returns its interface id. ``tsresol`` is a decimal exponent;
        ``ts_units`` (ticks per second, a power of 10 or of 2) overrides it."""
        if ts_units is not None:
            code = _tsresol_code(ts_units)
        elif 0 <= tsresol <= 0x7F:
            code = tsresol
        else:
            raise UsageError("tsresol exponent must be 0..127", vid="CAP-WRITER-TSRESOL")
        opts = b""
        if name is not None:
            opts += self._opt(2, name.encode())
        if code != 6:
            opts += self._opt(9, bytes([code]))
        if opts:
            opts += struct.pack("<HH", 0, 0)
        self._block(_BT_IDB, struct.pack("<HHI", linktype, 0, snaplen) + opts)
        self._ifaces.append(2 ** (code & 0x7F) if code & 0x80 else 10 ** code)
        return len(self._ifaces) - 1

    def add_secrets(self, data: Union[bytes, str], secrets_type: int = SECRETS_TYPE_GBP_KEYLOG) -> None:
        """Write a Decryption Secrets Block (default type "GBPK": our key-log text)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._block(_BT_DSB, struct.pack("<II", secrets_type, len(data)) + data)

    def write_packet(self, data: bytes, *, time: Optional[float] = None, ticks: Optional[int] = None,
                     ts_units: Optional[int] = None, interface: int = 0,
                     origlen: Optional[int] = None) -> None:
        """Write an EPB. Give ``time`` (float seconds) or exact ``ticks`` with their ``ts_units``
        (converted to the interface resolution)."""
        if not 0 <= interface < len(self._ifaces):
            raise UsageError(f"unknown interface {interface}", vid="CAP-WRITER-IFACE")
        units = self._ifaces[interface]
        if ticks is not None:
            src_units = ts_units or units
            t = ticks * units // src_units if src_units != units else ticks
        elif time is not None and not math.isnan(time):
            t = round(time * units)
        else:
            t = 0
        if origlen is None:
            origlen = len(data)
        self._block(_BT_EPB, struct.pack("<IIIII", interface, (t >> 32) & 0xFFFFFFFF, t & 0xFFFFFFFF,
                                         len(data), origlen) + bytes(data))

    def close(self) -> None:
        if self._own:
            self._f.close()
        else:
            self._f.flush()

    def __enter__(self) -> "PcapngWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def inject_secrets(src: Source, dst: Union[str, os.PathLike, BinaryIO], keylog_text: str) -> int:
    """Copy a pcap/pcapng capture to pcapng with a GBPK Decryption Secrets Block up front
    (like ``editcap --inject-secrets``). Existing secrets blocks are kept. Returns the packet count."""
    packets, reader = read_packets(src)
    with PcapngWriter(dst) as w:
        for iface in reader.interfaces:
            w.add_interface(iface.linktype, snaplen=iface.snaplen, ts_units=iface.ts_units,
                            name=iface.name)
        w.add_secrets(keylog_text, SECRETS_TYPE_GBP_KEYLOG)
        for s in reader.secrets:
            w.add_secrets(s.data, s.secrets_type)
        for p in packets:
            w.write_packet(p.data, ticks=p.ts_ticks if p.ts_ticks >= 0 else 0, ts_units=p.ts_units,
                           interface=p.interface, origlen=p.origlen)
    return len(packets)


def _tsresol_code(units: int) -> int:
    """The ``if_tsresol`` byte for ``units`` ticks per second (10**n → n, 2**n → 0x80 | n)."""
    for n in range(0x80):
        if 10 ** n == units:
            return n
        if 2 ** n == units:
            return 0x80 | n
        if 2 ** n > units:
            break
    raise UsageError(f"{units} ticks per second is neither a power of 10 nor of 2",
                     vid="CAP-WRITER-TSRESOL")


# ------------------------------------------------------------------------------------------------
# link / network / transport headers
# ------------------------------------------------------------------------------------------------
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


def _walk_v6(proto: int, data: bytes, pos: int, end: int) -> Tuple[int, int]:
    """Skip IPv6 extension headers (not the fragment header); returns (next header, offset)."""
    while proto in _V6_EXT:
        if end < pos + 8:
            return -1, pos
        nxt = data[pos]
        pos += (data[pos + 1] + 2) * 4 if proto == 51 else (data[pos + 1] + 1) * 8
        proto = nxt
    return proto, pos


def _l4(proto: int, src: str, dst: str, data: bytes, lstart: int, lend: int, missing_ip: int,
        ver: int) -> Optional[Decoded]:
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
    bad bytes.
    """
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
            proto, lstart = _walk_v6(data[off + 6], data, lstart, n)
            while proto == 44:  # fragment header
                if n < lstart + 8:
                    return None
                fo, ident = struct.unpack_from("!HI", data, lstart + 2)
                proto = data[lstart]
                lstart += 8
                if fo & 0xFFF9:
                    is_frag, frag_id, frag_off, more = True, ident, fo & 0xFFF8, bool(fo & 1)
                    break
                proto, lstart = _walk_v6(proto, data, lstart, n)  # atomic fragment
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
        return _l4(proto, src, dst, data, lstart, lend, missing_ip, ver)
    except (struct.error, IndexError, ValueError):  # defensive: bad header bytes
        return None


class IpDefragmenter:
    """Reassemble IPv4 (RFC 791 §3.2) and IPv6 (RFC 8200 §4.5) fragments into datagrams.

    :meth:`push` takes a fragment (:class:`Decoded` with ``fragment`` set) and returns
    ``(whole, dropped)``: the reassembled TCP/UDP :class:`Decoded` once the datagram is complete
    (else ``None``), and the incomplete datagrams given up on (timeout, memory bound) as
    :class:`PendingDatagram`. Overlaps keep the first copy. Bounded: ``max_datagrams`` pending,
    ``max_bytes`` buffered, ``timeout`` seconds of packet time.
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
            for k in [k for k, v in self._pending.items() if v.first_time < time - self.timeout]:
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
            proto, pos = _walk_v6(proto, data, 0, len(data))
        return _l4(proto, first.src, first.dst, data, pos, len(data), 0, first.ip_version)

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
