"""Capture files: a fast pcap / pcapng reader (:class:`CaptureReader`) and its records.

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

This module owns the file formats (magics, block types, byte-order magic); the writer is
:mod:`.pcapwriter`, the packet bytes are decoded by :mod:`.packets`.
"""
from __future__ import annotations

import math
import mmap
import os
import struct
from dataclasses import dataclass
from enum import IntEnum
from itertools import starmap as _starmap
from typing import Any, BinaryIO, Iterator, List, Optional, Tuple, Union

from gbp_lab.core.errors import DecodeError, UsageError

__all__ = [
    "Source",
    "CaptureFormatError",
    "LinkType",
    "SECRETS_TYPE_GBP_KEYLOG",
    "SECRETS_TYPE_TLS_KEYLOG",
    "BT_SHB",
    "BT_IDB",
    "BT_PB",
    "BT_SPB",
    "BT_EPB",
    "BT_DSB",
    "BYTE_ORDER_MAGIC",
    "MAX_CAPLEN",
    "MAX_BLOCK",
    "Interface",
    "Packet",
    "DecryptionSecrets",
    "CaptureIssue",
    "CaptureReader",
    "CaptureStream",
    "read_packets",
    "pcapng_blocks",
    "section_byte_order",
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

# pcapng block types (draft-ietf-opsawg-pcapng §4, §11.1) and the Section Header's byte-order magic
BT_SHB = 0x0A0D0D0A  #: Section Header Block
BT_IDB = 0x00000001  #: Interface Description Block
BT_PB = 0x00000002  #: obsolete Packet Block
BT_SPB = 0x00000003  #: Simple Packet Block
BT_EPB = 0x00000006  #: Enhanced Packet Block
BT_DSB = 0x0000000A  #: Decryption Secrets Block
BYTE_ORDER_MAGIC = 0x1A2B3C4D  #: SHB byte-order magic as written by the file's byte order

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
#: the largest pcapng block a stream waits for: a packet of MAX_CAPLEN plus its block's options
MAX_BLOCK = MAX_CAPLEN + (1 << 16)


@dataclass(frozen=True, slots=True)
class Interface:
    """One capture interface (pcapng IDB; a classic pcap file has exactly one)."""

    index: int  #: global index over all sections of the file
    linktype: int
    snaplen: int
    ts_units: int  #: timestamp ticks per second (10**n or 2**n)
    ts_offset: int = 0  #: seconds added to every timestamp (if_tsoffset)
    name: Optional[str] = None


NS_PER_SECOND = 1_000_000_000


def time_ns(ticks: int, units: int) -> Union[int, float]:
    """A packet timestamp (``ts_ticks`` of ``ts_units`` per second) as integer nanoseconds since
    the epoch — exact for the decimal resolutions up to 10**-9 s (pcap µs/ns, pcapng
    ``if_tsresol``), floored for finer or binary ones; NaN when the block has no timestamp
    (``ticks`` < 0, a Simple Packet Block)."""
    if ticks < 0:
        return math.nan
    return ticks * NS_PER_SECOND // units


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

    @property
    def is_tls_keylog(self) -> bool:
        """The standard TLS key-log type (SSLKEYLOGFILE text: QUIC decryption's secrets)."""
        return self.secrets_type == SECRETS_TYPE_TLS_KEYLOG


@dataclass(frozen=True, slots=True)
class CaptureIssue:
    """A defect of the file itself (truncation, corrupt block, unknown interface …)."""

    offset: int
    vid: str
    reason: str
    packet_index: Optional[int] = None  #: index the next packet would have had


#: compressed-file magic bytes → format (RFC 1952 gzip, xz, bzip2, RFC 8878 Zstandard)
COMPRESSED_MAGICS = ((b"\x1f\x8b", "gz"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bz2"),
                     (b"\x28\xb5\x2f\xfd", "zst"))


def compression_of(head: bytes) -> Optional[str]:
    """``"gz"``, ``"xz"``, ``"bz2"`` or ``"zst"`` when *head* (the file's first bytes) starts
    with that format's magic, else ``None`` — by content, never by file name."""
    for magic, kind in COMPRESSED_MAGICS:
        if head.startswith(magic):
            return kind
    return None


class _ZstdStream:
    """A Zstandard (RFC 8878) stream read in bounded pieces: ``read1`` feeds the decompressor
    at most 1 KiB of compressed input per call (so one call's output stays bounded even for
    highly compressible data), frames back to back are read one after the other, and input
    that ends inside a frame raises ``EOFError`` as the stdlib decompressors do."""

    def __init__(self, raw: BinaryIO) -> None:
        import zstandard  # a base dependency

        self._new = zstandard.ZstdDecompressor().decompressobj
        self._raw = raw
        self._d = self._new()
        self._fed = False  # the current frame got input

    def read1(self, _n: int = -1) -> bytes:
        while True:
            data = self._raw.read(1 << 10)
            if not data:
                if self._fed and not self._d.eof:
                    raise EOFError("Zstandard stream ends inside a frame")
                return b""
            out = []
            while data:
                self._fed = True
                out.append(self._d.decompress(data))
                data = b""
                if self._d.eof:  # a frame ended: the next one starts in the unused bytes
                    data = self._d.unused_data
                    self._d, self._fed = self._new(), False
            if any(out):
                return b"".join(out)

    read = read1

    def close(self) -> None:
        pass


def _decompressed(raw: BinaryIO, kind: str) -> Tuple[Any, Optional[Any], Optional[str]]:
    """Stream-decompress *raw* into an anonymous temporary file, 64 KiB at a time, and map it:
    memory stays bounded whatever the size. Returns ``(buffer, closer, cut)``: a stream cut
    short keeps what decompressed and ``cut`` says so (the reader then reports
    ``CAP-TRUNCATED-COMPRESSED`` after the last packet); a corrupt one is
    :class:`CaptureFormatError` (``CAP-COMPRESSED``)."""
    import bz2
    import gzip
    import lzma
    import tempfile

    import zstandard

    if kind == "gz":
        src: Any = gzip.GzipFile(fileobj=raw, mode="rb")
    elif kind == "xz":
        src = lzma.LZMAFile(raw, "rb")
    elif kind == "bz2":
        src = bz2.BZ2File(raw, "rb")
    else:
        src = _ZstdStream(raw)
    cut: Optional[str] = None
    tmp = tempfile.TemporaryFile()
    try:
        read = getattr(src, "read1", src.read)  # small reads: a cut keeps all but the last
        try:
            while True:
                block = read(1 << 16)
                if not block:
                    break
                tmp.write(block)
        except EOFError:  # cut short: keep what decompressed
            cut = (f"the {kind} stream ends early (file cut short) after {tmp.tell()} "
                   f"decompressed bytes")
        except (OSError, lzma.LZMAError, ValueError, zstandard.ZstdError) as exc:
            if tmp.tell() == 0:
                raise CaptureFormatError(f"corrupt {kind} stream: {exc}", vid="CAP-COMPRESSED",
                                         where=0) from None
            cut = f"corrupt {kind} stream after {tmp.tell()} decompressed bytes: {exc}"
        tmp.flush()
        if tmp.tell() == 0:
            if cut is not None:
                raise CaptureFormatError(cut, vid="CAP-COMPRESSED", where=0)
            return b"", None, None
        mm = mmap.mmap(tmp.fileno(), 0, access=mmap.ACCESS_READ)
        return mm, mm, cut
    finally:
        tmp.close()
        src.close()


def _load(source: Source) -> Tuple[Any, Optional[Any], Optional[str]]:
    """Return (buffer, closer, cut). Paths are mmapped (read-only), file objects read fully;
    compressed input (:func:`compression_of`) is decompressed by :func:`_decompressed` (``cut``:
    why the compressed stream ended early, else ``None``)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        kind = compression_of(bytes(source[:6]))
        if kind is not None:
            import io
            return _decompressed(io.BytesIO(source), kind)
        return bytes(source), None, None
    if isinstance(source, (str, os.PathLike)):
        f = open(source, "rb")
        kind = compression_of(f.read(6))
        if kind is not None:
            f.seek(0)
            try:
                return _decompressed(f, kind)
            finally:
                f.close()
        try:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                f.close()
                return b"", None, None
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except Exception:
            f.close()
            raise
        f.close()
        return mm, mm, None
    if hasattr(source, "read"):
        data = source.read()
        kind = compression_of(bytes(data[:6]))
        if kind is not None:
            import io
            return _decompressed(io.BytesIO(data), kind)
        return data, None, None
    raise UsageError(f"cannot read a capture from {type(source).__name__}", vid="CAP-SOURCE")


class CaptureReader:
    """Iterate over the packets of a pcap or pcapng capture.

    Attributes filled while iterating (reset when iteration starts again): :attr:`interfaces`,
    :attr:`secrets`, :attr:`issues` (:attr:`format` is known as soon as the reader is built).
    """

    def __init__(self, source: Source) -> None:
        self._buf, self._closer, self._cut = _load(source)
        self.size = len(self._buf)
        self._base = 0  # offset of _buf[0] in the capture (CaptureStream drops parsed bytes)
        self._partial = False  # an incomplete record/block at the end waits (CaptureStream)
        self._reset()
        try:
            self.format = _format_of(self._buf)
        except CaptureFormatError:
            self.close()
            raise

    def _reset(self) -> None:
        self.interfaces: List[Interface] = []
        self.secrets: List[DecryptionSecrets] = []
        self.issues: List[CaptureIssue] = []
        self.packet_count = 0
        # where the parse is: resumable by CaptureStream
        self._pos = 0
        self._index = 0
        self._halted = False  # a defect ended the parse
        self._pcap: Optional[Tuple[str, int, int, int]] = None  # endian, units, rec size, linktype
        self._endian = "<"
        self._section_ifaces: List[Interface] = []

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
        self._reset()
        it = self._iter_pcap() if self.format == "pcap" else self._iter_pcapng()
        return it if self._cut is None else self._then_cut(it)

    def _then_cut(self, it: Iterator[tuple]) -> Iterator[tuple]:
        """*it*, then the defect of a compressed stream that ended early (unless the parse
        already stopped at a defect of its own, e.g. the truncated record the cut made)."""
        yield from it
        if not self._halted and self._cut is not None:
            self._halted = True
            self._issue(self.size, "CAP-TRUNCATED-COMPRESSED", self._cut)

    # -- helpers -------------------------------------------------------------------------------
    def _issue(self, offset: int, vid: str, reason: str) -> None:
        self.issues.append(CaptureIssue(offset + self._base, vid, reason, self.packet_count))

    @property
    def gbp_keylog_text(self) -> str:
        """All GBPK secrets of the file concatenated (as text; undecodable bytes replaced)."""
        parts = [s.data.decode("utf-8", "replace") for s in self.secrets if s.is_gbp_keylog]
        return "".join(p if p.endswith("\n") or not p else p + "\n" for p in parts)

    # -- classic pcap ----------------------------------------------------------------------------
    def _iter_pcap(self) -> Iterator[tuple]:
        buf, size, partial = self._buf, self.size, self._partial
        if self._pcap is None:
            (magic,) = struct.unpack_from("<I", buf, 0)
            endian, units, rec_size = _PCAP_MAGICS[magic]
            if size < 24:
                if not partial:
                    self._halted = True
                    self._issue(0, "CAP-TRUNCATED-HEADER",
                                f"pcap file header truncated ({size} of 24 bytes)")
                return
            _maj, _min, _zone, _sig, snaplen, network = struct.unpack_from(endian + "HHiIII", buf, 4)
            linktype = network & 0xFFFF
            self.interfaces.append(Interface(0, linktype, snaplen, units))
            self._pcap = (endian, units, rec_size, linktype)
            self._pos = 24
        endian, units, rec_size, linktype = self._pcap
        rec = struct.Struct(endian + "IIII")
        pos = self._pos
        index = self._index
        fdiv = float(units)
        try:
            while pos < size:
                if pos + rec_size > size:
                    if not partial:
                        self._halted = True
                        self._issue(pos, "CAP-TRUNCATED-RECORD", f"record header truncated: "
                                    f"{size - pos} of {rec_size} bytes at end of file")
                    break
                sec, frac, caplen, origlen = rec.unpack_from(buf, pos)
                if caplen > MAX_CAPLEN:
                    self._halted = True
                    self._issue(pos, "CAP-CORRUPT-RECORD",
                                f"implausible caplen {caplen}; reading stopped")
                    break
                start = pos + rec_size
                end = start + caplen
                if end > size:
                    if not partial:
                        self._halted = True
                        self._issue(pos, "CAP-TRUNCATED-RECORD", f"packet data truncated: "
                                    f"{size - start} of {caplen} bytes at end of file")
                    break
                self.packet_count += 1
                yield (index, 0, linktype, sec + frac / fdiv, sec * units + frac, units,
                       origlen, buf[start:end])
                index += 1
                pos = end
        finally:
            self._pos, self._index = pos, index

    # -- pcapng ----------------------------------------------------------------------------------
    def _iter_pcapng(self) -> Iterator[tuple]:
        buf, size, partial = self._buf, self.size, self._partial
        pos = self._pos
        endian = self._endian
        section_ifaces = self._section_ifaces
        index = self._index
        while pos < size:
            if pos + 12 > size:
                if not partial:
                    self._halted = True
                    self._issue(pos, "CAP-TRUNCATED-BLOCK",
                                f"block header truncated: {size - pos} bytes at end of file")
                break
            (btype_le,) = struct.unpack_from("<I", buf, pos)
            if btype_le == BT_SHB:
                order = section_byte_order(buf, pos)
                if order is None:
                    self._halted = True
                    (bom,) = struct.unpack_from("<I", buf, pos + 8)
                    self._issue(pos, "CAP-CORRUPT-BLOCK", f"bad byte-order magic 0x{bom:08x} in SHB")
                    break
                endian = order
                section_ifaces = []
            btype, blen = struct.unpack_from(endian + "II", buf, pos)
            if blen < 12 or blen % 4:
                self._halted = True
                self._issue(pos, "CAP-CORRUPT-BLOCK", f"invalid block total length {blen}")
                break
            if blen > MAX_BLOCK and pos + blen > size:
                # a length no capture writes: a stream (CaptureStream) would otherwise buffer
                # everything that follows while it waits for the block's end
                self._halted = True
                self._issue(pos, "CAP-CORRUPT-BLOCK",
                            f"block type 0x{btype:x} claims {blen} bytes (more than {MAX_BLOCK})")
                break
            if pos + blen > size:
                if not partial:
                    self._halted = True
                    self._issue(pos, "CAP-TRUNCATED-BLOCK",
                                f"block type 0x{btype:x} truncated: {size - pos} of {blen} bytes")
                break
            (trail,) = struct.unpack_from(endian + "I", buf, pos + blen - 4)
            if trail != blen:
                self._halted = True
                self._issue(pos, "CAP-CORRUPT-BLOCK",
                            f"block trailer length {trail} != header length {blen}")
                break
            body = pos + 8
            body_end = pos + blen - 4
            if btype == BT_EPB or btype == BT_PB:
                if body_end - body < 20:
                    self._issue(pos, "CAP-CORRUPT-BLOCK", "packet block too short")
                else:
                    if btype == BT_EPB:
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
            elif btype == BT_SPB:
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
            elif btype == BT_IDB:
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
            elif btype == BT_DSB:
                if body_end - body < 8:
                    self._issue(pos, "CAP-CORRUPT-BLOCK", "decryption secrets block too short")
                else:
                    stype, slen = struct.unpack_from(endian + "II", buf, body)
                    if body + 8 + slen > body_end:
                        self._issue(pos, "CAP-CORRUPT-BLOCK",
                                    f"secrets length {slen} exceeds the block")
                    else:
                        self.secrets.append(DecryptionSecrets(
                            stype, bytes(buf[body + 8:body + 8 + slen]), pos + self._base))
            # SHB handled above; NRB, ISB, custom and unknown blocks are skipped.
            pos += blen
        # where the parse stopped (a CaptureStream resumes there with its next bytes)
        self._pos, self._endian, self._index = pos, endian, index
        self._section_ifaces = section_ifaces

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def _format_of(buf) -> str:
    """``"pcap"`` or ``"pcapng"`` by the first four bytes (pcap magics; pcapng SHB block type)."""
    if len(buf) < 4:
        raise CaptureFormatError(f"file too short for a capture header ({len(buf)} bytes)",
                                 vid="CAP-MAGIC", where=0)
    (magic,) = struct.unpack_from("<I", buf, 0)
    if magic == BT_SHB:
        return "pcapng"
    if magic in _PCAP_MAGICS:
        return "pcap"
    raise CaptureFormatError(f"unknown capture magic 0x{magic:08x}", vid="CAP-MAGIC", where=0)


class CaptureStream(CaptureReader):
    """A pcap/pcapng capture that arrives in pieces (a file still being written, a pipe from
    ``dumpcap -w -``): :meth:`feed` the new bytes and iterate over the packets (the tuples of
    :meth:`CaptureReader.iter_tuples`) whose record or block is complete; an incomplete one at
    the end waits for the next :meth:`feed`. :meth:`finish` says the capture ended: what is still
    incomplete is then the truncation issue :class:`CaptureReader` reports for the same bytes.

    State carries over from one feed to the next (packet indexes, the pcap header, pcapng
    sections with their byte order and interfaces, draft-ietf-opsawg-pcapng §4.1-4.2); parsed
    bytes are dropped, and :attr:`issues` / :attr:`secrets` offsets are those of the whole
    capture. Drain each iterator before the next call. Bytes that are not a capture raise
    :class:`CaptureFormatError` (as opening a :class:`CaptureReader` does); after a defect that
    ends the parse (:attr:`halted`), further bytes are ignored.
    """

    def __init__(self) -> None:  # noqa: D107 - no source: bytes come through feed()
        self._buf = b""
        self._closer = None
        self._cut: Optional[str] = None
        self.size = 0
        self._base = 0
        self._partial = True
        self._pending = bytearray()
        self.format: Optional[str] = None  # type: ignore[assignment]
        self._reset()

    @property
    def halted(self) -> bool:
        """Did a defect (or :meth:`finish`) end the parse?"""
        return self._halted

    @property
    def buffered(self) -> int:
        """Bytes received but not parsed yet (an incomplete record or block)."""
        return len(self._pending)

    def feed(self, data: bytes) -> Iterator[tuple]:
        """Add the next bytes; iterate over the packets they complete."""
        if not self._halted:
            self._pending += data
        return self._run()

    def finish(self) -> Iterator[tuple]:
        """The capture ended: the rest is parsed as a whole file's end would be."""
        self._partial = False
        return self._run()

    def _run(self) -> Iterator[tuple]:
        if self._halted:
            return
        if self.format is None:
            if len(self._pending) < 4 and self._partial:
                return
            self.format = _format_of(self._pending)
        self._buf = bytes(self._pending)
        self.size = len(self._buf)
        yield from (self._iter_pcap() if self.format == "pcap" else self._iter_pcapng())
        used = self._pos
        del self._pending[:used]
        self._base += used
        self._pos = 0
        self._buf = b""
        if not self._partial:
            self._halted = True


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


def section_byte_order(buf, pos: int) -> Optional[str]:
    """The byte order (``"<"`` or ``">"``, for :mod:`struct`) of the section whose SHB starts at
    ``buf[pos]``, from its byte-order magic (draft-ietf-opsawg-pcapng §4.1); ``None`` when the
    magic is neither (a corrupt block). Needs 12 bytes at ``pos``."""
    (bom,) = struct.unpack_from("<I", buf, pos + 8)
    if bom == BYTE_ORDER_MAGIC:
        return "<"
    if bom == 0x4D3C2B1A:  # the magic written in the other byte order
        return ">"
    return None


def pcapng_blocks(buf) -> Iterator[Tuple[int, int, int]]:
    """``(offset, block type, total length)`` of each block of a pcapng buffer, in file order
    (draft-ietf-opsawg-pcapng §3.1: each section's byte order from its SHB). Stops before the
    first block that is truncated or whose lengths are invalid (:class:`CaptureReader` reports
    it as an issue): a splitter cuts only between blocks it saw whole."""
    size = len(buf)
    pos, endian = 0, "<"
    while pos + 12 <= size:
        (btype_le,) = struct.unpack_from("<I", buf, pos)
        if btype_le == BT_SHB:
            order = section_byte_order(buf, pos)
            if order is None:
                return
            endian = order
        btype, blen = struct.unpack_from(endian + "II", buf, pos)
        if blen < 12 or blen % 4 or pos + blen > size:
            return
        if struct.unpack_from(endian + "I", buf, pos + blen - 4)[0] != blen:
            return
        yield pos, btype, blen
        pos += blen
