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
from typing import Any, List, Optional, Tuple, Union

from ..errors import DecodeError, OversizeError, TruncatedError, UsageError
from .frame import GbpFrame, decode_frame

MAX_RECORD = 1 << 20
PREFIX_LENGTH = 4
#: the one vid of a length prefix above ``max_record`` (a peer's reader and the capture path)
OVERSIZE_VID = "GBP-RECORD-OVERSIZE"
_u32le = struct.Struct("<I")

Item = Union[bytes, GbpFrame, DecodeError]


def encode_record(data: bytes, *, max_record: int = MAX_RECORD) -> bytes:
    """``u32-LE len(data) ‖ data``; :class:`UsageError` above *max_record* (the reference refuses
    to write it too)."""
    if len(data) > max_record:
        raise UsageError(f"record of {len(data)} bytes exceeds {max_record}",
                         vid="GBP-RECORD-OVERSIZE")
    return _u32le.pack(len(data)) + data


# ------------------------------------------------------------------------------------------------
# record headers: where a record plausibly starts (re-synchronisation after a gap or garbage)
# ------------------------------------------------------------------------------------------------
_MIN_FRAME = 16


def plausible_header(buf, pos: int, *, strict: bool = True) -> Optional[bool]:
    """Is there a plausible GBP record header at ``buf[pos:]`` (``u32-LE length ‖ CBOR GbpFrame``:
    a length ≤ ``MAX_RECORD``, a CBOR map header 0xA1–0xB7, first key ``"v"`` = 1, which the
    reference always writes first)?

    True/False, or ``None`` when more bytes are needed to decide (fewer than 8 available).
    ``strict`` requires the first map key to be ``"v"`` with value 1 (the reference's order);
    otherwise ``"v"`` may be any of the first keys (looked for in the first 48 bytes).
    """
    avail = len(buf) - pos
    if avail < 4:
        return None
    (length,) = _u32le.unpack_from(buf, pos)
    if length > MAX_RECORD or length < _MIN_FRAME:
        return False
    if avail < 5:
        return None
    m = buf[pos + 4]
    if not 0xA1 <= m <= 0xB7:
        return False
    if avail < 8:
        return None
    if buf[pos + 5] == 0x61 and buf[pos + 6] == 0x76 and buf[pos + 7] == 0x01:
        return True
    if strict:
        return False
    window = bytes(buf[pos + 5:pos + 5 + min(length, 48)])
    return b"\x61\x76\x01" in window


def plausible_start(buf, pos: int = 0) -> Optional[bool]:
    """Like :func:`plausible_header` (strict), but also accepts the raw MLS blobs the reference
    sends with the same prefix (KeyPackage ``00 01 00 01``, Commit ``00 01 00 02``, Welcome
    ``00 01 00 03``: version mls10 ‖ wire format, RFC 9420 §6)."""
    r = plausible_header(buf, pos)
    if r is not False:
        return r
    if len(buf) - pos < 8:
        return None
    (length,) = _u32le.unpack_from(buf, pos)
    if length > MAX_RECORD or length < 4:
        return False
    return bytes(buf[pos + 4:pos + 7]) == b"\x00\x01\x00" and buf[pos + 7] in (1, 2, 3)


def find_resync_point(buf, start: int = 0) -> Tuple[int, bool]:
    """Scan ``buf`` from ``start`` for a plausible (strict) record header.

    Returns ``(pos, found)``: if ``found``, a header starts at ``pos``; otherwise every byte before
    ``pos`` can be discarded (the tail from ``pos`` might still begin a header once more bytes
    arrive).
    """
    n = len(buf)
    i = start
    while True:
        j = buf.find(b"\x61\x76\x01", i + 5 if i + 5 <= n else n)
        if j < 0:
            return max(start, n - 7), False
        cand = j - 5
        if cand >= start:
            r = plausible_header(buf, cand)
            if r:
                return cand, True
        i = cand + 1


# ------------------------------------------------------------------------------------------------
# the record splitter
# ------------------------------------------------------------------------------------------------
#: a split result: ``(offset, body, error, vid, time)`` — ``offset`` = stream offset of the
#: length prefix (of the defect), ``body`` the record (None for a defect)
Split = Tuple[int, Optional[bytes], Optional[str], Optional[str], Any]


class RecordReader:
    """The one splitter of ``u32-LE length ‖ body`` records (see the module docstring).

    Two faces over the same state (buffer, stream offset, sync state):

    * a peer's: :meth:`feed` / :meth:`close` return records (``bytes``) and report items
      (exceptions); an oversize length fails the reader, as the reference fails the connection;
    * an observer's (``resync=True``, the capture path): :meth:`data` takes the chunk at a stream
      offset, :meth:`gap` a hole, :meth:`end` the stream's end, :meth:`set_start` whether offset 0
      is a true start (``syn``); they return :data:`Split` tuples. After a gap, garbage or an
      oversize length the reader re-synchronises on the next plausible record header
      (:func:`find_resync_point`; a stream joined without SYN is probed with
      :func:`plausible_start` first) and reports the bytes it skipped (``REC-RESYNC``), a record
      cut by a gap (``TCP-GAP``) or by the end (``REC-TRUNCATED-END``). :meth:`whole` is the
      fast path for a segment holding exactly one whole record at a record boundary.
    """

    PROBE, SYNCED, RESYNC = 0, 1, 2

    def __init__(self, *, max_record: int = MAX_RECORD, resync: bool = False,
                 syn: bool = True) -> None:
        if not 0 <= max_record <= 0xFFFFFFFF:
            raise UsageError("max_record must fit in u32", vid="GBP-RECORD-MAX")
        self.max_record = max_record
        self.resync = resync
        self._buf = bytearray()
        self.offset = 0  #: stream offset of the first byte in the buffer
        self._state = self.SYNCED if syn else self.PROBE
        self._reason = "stream joined without SYN"
        self._skip_start = 0
        self._skipped = 0
        self.records = 0  #: complete records returned so far (by :meth:`feed`)
        self.failed: Optional[OversizeError] = None
        self.discarded = 0  #: bytes ignored after failure
        self.closed = False

    @property
    def buffered(self) -> int:
        """Bytes held for the record in progress."""
        return len(self._buf)

    # -- a peer's reader -------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> List[Item]:
        """Consume *chunk*; return the complete records (and report items) it finishes."""
        if self.closed:
            raise UsageError("feed() after close()", vid="GBP-RECORD-CLOSED")
        if self.failed is not None:
            self.discarded += len(chunk)
            return []
        out: List[Item] = []
        for off, body, err, _vid, _t in self.data(self.offset + len(self._buf), chunk, None):
            if body is not None:
                out.append(self._emit(body, off))
            elif self.failed is not None:
                out.append(self.failed)
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
            what = (f"{have} of {PREFIX_LENGTH} length-prefix bytes" if have < PREFIX_LENGTH
                    else f"{have - PREFIX_LENGTH} of {_u32le.unpack_from(self._buf, 0)[0]} "
                         f"record bytes")
            self._buf = bytearray()
            return [TruncatedError(f"stream ended inside a record ({what})",
                                   vid="GBP-RECORD-TRUNCATED", where=self.offset)]
        return []

    # -- an observer's reader (the capture path) -------------------------------------------------
    def set_start(self, syn: bool) -> None:
        """Before any data: is offset 0 a true stream start (SYN seen)? If not, the first bytes
        are probed for a record start."""
        if not self._buf and self.offset == 0:
            self._state = self.SYNCED if syn else self.PROBE

    def whole(self, offset: int, segment: bytes) -> bool:
        """The fast path: if ``segment`` (at stream ``offset``) is exactly one whole record at
        a record boundary, consume it and return True (its body is ``segment[4:]``, its offset
        ``offset``); else False and nothing changed (use :meth:`data`)."""
        size = len(segment)
        if (self._state == 1 and self.offset == offset and not self._buf and size >= 4
                and _u32le.unpack_from(segment, 0)[0] + 4 == size
                and size - 4 <= self.max_record):
            self.offset = offset + size
            return True
        return False

    def data(self, offset: int, chunk: bytes, time: Any) -> List[Split]:
        """The chunk of the stream at ``offset`` → the records it completes and the defects it
        shows, as :data:`Split` tuples stamped with ``time``."""
        out: List[Split] = []
        pending = self._buf
        if offset != self.offset + len(pending):  # defensive: the reassembler is contiguous
            self.gap(self.offset + len(pending), offset, time, "discontinuity", out)
            pending = self._buf
        pos = 0
        buf: Any
        if pending:
            have = len(pending)
            if self._state == 1 and have >= 4:  # SYNCED with a partial record: complete it
                (length,) = _u32le.unpack_from(pending, 0)
                need = 4 + length - have
                if length <= self.max_record and need > 0:
                    if len(chunk) < need:
                        pending += chunk
                        return out
                    body = b"".join((memoryview(pending)[4:], memoryview(chunk)[:need]))
                    out.append((self.offset, body, None, None, time))
                    self.offset += have
                    self._buf = bytearray()
                    pos = need
                    buf = chunk
                else:
                    pending += chunk
                    buf = pending
            else:
                pending += chunk
                buf = pending
        else:
            buf = chunk
        n = len(buf)
        unpack = _u32le.unpack_from
        append = out.append
        while True:
            st = self._state
            if st == 1:  # SYNCED: the bulk split
                base = self.offset
                limit = self.max_record
                while n - pos >= 4:
                    (length,) = unpack(buf, pos)
                    if length > limit:
                        break
                    end = pos + 4 + length
                    if end > n:
                        break
                    append((base + pos, buf[pos + 4:end], None, None, time))
                    pos = end
                if n - pos < 4:
                    break
                (length,) = unpack(buf, pos)
                if length <= limit:
                    break  # record incomplete
                text = f"record length {length} exceeds the maximum {self.max_record}"
                if not self.resync:  # a peer: the connection fails here
                    self.failed = OversizeError(text, vid=OVERSIZE_VID, where=base + pos)
                    append((base + pos, None, text, OVERSIZE_VID, time))
                    self.discarded += n - pos - PREFIX_LENGTH
                    self.offset += n
                    self._buf = bytearray()
                    return self._bytes(out, buf)
                append((base + pos, None, text, OVERSIZE_VID, time))
                self._state = self.RESYNC
                self._reason = "after an oversize length"
                self._skip_start = base + pos
                self._skipped = 0
                continue
            if st == self.PROBE:
                r = plausible_start(buf, pos)
                if r is None:
                    break
                if r:
                    self._state = self.SYNCED
                else:
                    self._state = self.RESYNC
                    self._skip_start = self.offset + pos
                    self._skipped = 0
                continue
            # RESYNC
            p, found = find_resync_point(buf, pos)
            self._skipped += p - pos
            pos = p
            if not found:
                break
            if self._skipped:
                append((self._skip_start, None,
                        f"{self._reason}: skipped {self._skipped} bytes "
                        f"[{self._skip_start}, {self.offset + pos}) before the next "
                        f"plausible record header", "REC-RESYNC", time))
            self._skipped = 0
            self._state = self.SYNCED
        if pos:
            self.offset += pos
            self._buf = bytearray(buf[pos:]) if pos < n else bytearray()
        elif buf is chunk:
            self._buf = bytearray(chunk)
        return self._bytes(out, buf)

    @staticmethod
    def _bytes(out: List[Split], buf: Any) -> List[Split]:
        if type(buf) is not bytes:  # record bodies sliced from a bytearray: make them bytes
            for k, item in enumerate(out):
                if item[1] is not None and type(item[1]) is not bytes:
                    out[k] = (item[0], bytes(item[1]), None, None, item[4])
        return out

    def _drop(self, time: Any, what: str, out: List[Split], vid: str) -> None:
        """Report whatever is buffered (partial record / unsynced bytes) as lost."""
        have = len(self._buf)
        if self._state == self.SYNCED and have:
            if have >= 4:
                (length,) = _u32le.unpack_from(self._buf, 0)
                desc = (f"record at offset {self.offset} truncated by {what}: have {have} of "
                        f"{4 + length} bytes")
            else:
                desc = (f"record header at offset {self.offset} truncated by {what}: {have} of "
                        f"4 bytes")
            out.append((self.offset, None, desc, vid, time))
        elif self._state != self.SYNCED and (have or self._skipped):
            total = self._skipped + have
            out.append((self._skip_start, None,
                        f"{self._reason}: {total} bytes without a plausible record header "
                        f"before {what}", vid, time))

    def gap(self, start: int, end: int, time: Any, reason: str,
            out: Optional[List[Split]] = None) -> List[Split]:
        """Bytes ``[start, end)`` will never arrive (``reason``): a ``TCP-GAP`` split (with the
        record it cut, if any); the reader re-synchronises after it."""
        if out is None:
            out = []
        partial: List[Split] = []
        self._drop(time, "a gap", partial, "TCP-GAP")
        detail = f"; {partial[0][2]}" if partial else ""
        out.append((start, None, f"TCP gap of {end - start} bytes at stream offsets [{start}, "
                                 f"{end}) ({reason}); frames in it are lost{detail}", "TCP-GAP",
                    time))
        self._buf = bytearray()
        self.offset = end
        self._state = self.RESYNC
        self._reason = "after a gap"
        self._skip_start = end
        self._skipped = 0
        return out

    def end(self, time: Any, reason: str) -> List[Split]:
        """The stream ended (``fin``, ``rst``, ``eof`` …): a ``REC-TRUNCATED-END`` split for a
        record (or unsynced bytes) still buffered."""
        out: List[Split] = []
        what = {"fin": "FIN", "rst": "RST", "eof": "the end of the capture"}.get(reason, reason)
        self._drop(time, what, out, "REC-TRUNCATED-END")
        self._buf = bytearray()
        self._skipped = 0
        return out


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


__all__ = ["MAX_RECORD", "PREFIX_LENGTH", "OVERSIZE_VID", "encode_record", "RecordReader",
           "FrameReader", "Item", "Split", "plausible_header", "plausible_start",
           "find_resync_point"]
