"""Stream framing of GBP over TCP and QUIC (gbp_rfc.md §3; reference crates/gbp/transport).

Every message on a byte stream is a *record*: ``u32 little-endian length ‖ bytes``, length at most
``MAX_RECORD`` = 1 MiB (``1 << 20``; a record of exactly 1 MiB is allowed). Records usually hold a
CBOR GbpFrame, but MLS KeyPackage and Welcome blobs travel as raw records with the same prefix
(the CLI demo: the listener sends its KeyPackage, the connector a Welcome, then frames).

Sans-IO readers, fed arbitrary chunks (any split, any coalescing):

* :class:`RecordReader` — ``feed(chunk)`` returns the list of complete records (``bytes``) and
  report items (see below).
* :class:`FrameReader` — the same, with each record decoded by
  :func:`~gbp_lab.core.gbp.frame.decode_frame`. Set ``decode=False`` (constructor or attribute,
  switchable between feeds) to receive raw records, e.g. while the handshake blobs go by.

Items, in stream order: a record (``bytes``) or a decoded :class:`~gbp_lab.core.gbp.frame.GbpFrame`,
or an *exception instance* (never raised) describing a problem:

* a :class:`~gbp_lab.core.errors.DecodeError` for a record that is not a valid frame (strict
  mode); the stream stays in sync and the next record is read normally. ``error.offset`` is the
  stream offset of the record's length prefix, ``error.record`` the raw record.
* an :class:`~gbp_lab.core.errors.OversizeError` (vid ``GBP-RECORD-OVERSIZE``) when a length
  prefix exceeds ``max_record``. Nothing is buffered for it. The reference errors the connection
  here, and the stream cannot be resynchronised, so the reader becomes *failed*: ``failed`` holds
  the error, and later data is counted in ``discarded`` and otherwise ignored.
* at :meth:`RecordReader.close`, a :class:`~gbp_lab.core.errors.TruncatedError`
  (``GBP-RECORD-TRUNCATED``) if the stream ended inside a record.

Memory is bounded: at most one partial record (≤ 4 + ``max_record`` bytes) is buffered.
"""
from __future__ import annotations

import struct
from typing import List, Optional, Union

from ..errors import DecodeError, OversizeError, TruncatedError, UsageError
from .frame import GbpFrame, decode_frame

MAX_RECORD = 1 << 20
PREFIX_LENGTH = 4
_u32le = struct.Struct("<I")

Item = Union[bytes, GbpFrame, DecodeError]


def encode_record(data: bytes, *, max_record: int = MAX_RECORD) -> bytes:
    """``u32-LE len(data) ‖ data``; :class:`UsageError` above *max_record* (the reference refuses
    to write it too)."""
    if len(data) > max_record:
        raise UsageError(f"record of {len(data)} bytes exceeds {max_record}",
                         vid="GBP-RECORD-OVERSIZE")
    return _u32le.pack(len(data)) + data


class RecordReader:
    """Incremental reader of length-prefixed records (see the module docstring for the items)."""

    def __init__(self, *, max_record: int = MAX_RECORD) -> None:
        if not 0 <= max_record <= 0xFFFFFFFF:
            raise UsageError("max_record must fit in u32", vid="GBP-RECORD-MAX")
        self.max_record = max_record
        self._buf = bytearray()
        self._need: Optional[int] = None  # body length of the record being read
        self.offset = 0  #: stream offset of the first byte in the buffer
        self.records = 0  #: complete records returned so far
        self.failed: Optional[OversizeError] = None
        self.discarded = 0  #: bytes ignored after failure
        self.closed = False

    @property
    def buffered(self) -> int:
        """Bytes held for the record in progress."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> List[Item]:
        """Consume *chunk*; return the complete records (and report items) it finishes."""
        if self.closed:
            raise UsageError("feed() after close()", vid="GBP-RECORD-CLOSED")
        if self.failed is not None:
            self.discarded += len(chunk)
            return []
        out: List[Item] = []
        buf = self._buf
        buf += chunk
        pos = 0
        n = len(buf)
        need = self._need
        while True:
            if need is None:
                if n - pos < PREFIX_LENGTH:
                    break
                need = _u32le.unpack_from(buf, pos)[0]
                if need > self.max_record:
                    err = OversizeError(
                        f"record length {need} exceeds the maximum {self.max_record}",
                        vid="GBP-RECORD-OVERSIZE", where=self.offset + pos)
                    out.append(err)
                    self.failed = err
                    self.discarded += n - pos - PREFIX_LENGTH
                    self.offset += n
                    self._buf = bytearray()
                    self._need = None
                    return out
            if n - pos - PREFIX_LENGTH < need:
                break
            start = pos + PREFIX_LENGTH
            out.append(self._emit(bytes(buf[start:start + need]), self.offset + pos))
            pos = start + need
            need = None
        self._need = need
        if pos:
            del buf[:pos]
            self.offset += pos
        return out

    def _emit(self, record: bytes, offset: int) -> Item:
        self.records += 1
        return record

    def close(self) -> List[Item]:
        """End of stream: a :class:`TruncatedError` item if a record was cut short."""
        if self.closed:
            return []
        self.closed = True
        if self.failed is None and self._buf:
            have = len(self._buf)
            what = (f"{have} of {PREFIX_LENGTH} length-prefix bytes" if self._need is None
                    else f"{have - PREFIX_LENGTH} of {self._need} record bytes")
            self._buf = bytearray()
            return [TruncatedError(f"stream ended inside a record ({what})",
                                   vid="GBP-RECORD-TRUNCATED", where=self.offset)]
        return []


class FrameReader(RecordReader):
    """A :class:`RecordReader` that decodes each record as a GbpFrame (``decode=True``).

    Items are :class:`GbpFrame` (``strict`` as in ``decode_frame``; lenient frames carry their
    ``defects``), :class:`DecodeError` instances for undecodable records (``.record`` = raw bytes,
    ``.offset`` = stream offset of its prefix), raw ``bytes`` while ``decode`` is False, and the report items of
    :class:`RecordReader`.
    """

    def __init__(self, *, decode: bool = True, strict: bool = True,
                 max_record: int = MAX_RECORD) -> None:
        super().__init__(max_record=max_record)
        self.decode = decode
        self.strict = strict

    def _emit(self, record: bytes, offset: int) -> Item:
        self.records += 1
        if not self.decode:
            return record
        try:
            return decode_frame(record, strict=self.strict)
        except DecodeError as err:
            err.offset = offset  # type: ignore[attr-defined]
            err.record = record  # type: ignore[attr-defined]
            return err


__all__ = ["MAX_RECORD", "PREFIX_LENGTH", "encode_record", "RecordReader", "FrameReader", "Item"]
