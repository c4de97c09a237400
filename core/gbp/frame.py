"""The GBP frame (gbp_rfc.md §6, §12.1; reference crates/gbp/base/src/frame.rs).

On the wire a frame is a definite-length CBOR map (RFC 8949) with text keys written in this order::

    v u8 · gid bstr(16) · ep u64 · tid u32 · st u8 · sid u32 · fl u16 · seq u32 · psz u32 · pl bstr
    [· pf u8, omitted when 0]

Integers are in shortest form. This is serde field order, not RFC 8949 §4.2 sorted order, so
:meth:`GbpFrame.to_cbor` writes the keys in exactly this order and re-encoding a reference frame
gives back its bytes.

:func:`decode_frame` follows what the reference's decoder (serde + ciborium) rejects, in the order it
meets problems: invalid CBOR, not a map, then per entry in wire order a wrong type or an integer out
of its range, then a duplicate key (serde reports it where it meets it; we can only tell after the
map), then missing keys in field order, then ``psz != len(pl)``
(``GbpFrame::validate_payload_size``). In addition — the reference does *not* do this — bytes after
the map are rejected (:class:`~gbp_lab.core.errors.TrailingBytesError`). Keys in another order and
unknown keys are accepted, as the reference does (unknown keys are dropped). Version, group-id
length, stream type and epoch are *not* decode errors: the reference decodes them and its node
answers with ``ERR_UNSUPPORTED_VERSION`` / ``ERR_UNKNOWN_GROUP`` … (``GroupNode.on_wire``).

``strict=False`` (lenient) returns a frame even for a defective map: a missing or mistyped field
gets its zero value, an out-of-range integer is kept as is, and every problem is recorded in
``frame.defects`` as the typed error strict mode would have raised. Bytes that are not a CBOR map
at all still raise (there is no frame to return).

Speed: every frame a sender produces is in shortest form, and :func:`decode_frame` first tries a
one-step path for exactly that (``cbor2.loads``, then type/range checks, then a length check: the
input must be exactly as long as the shortest encoding of the decoded values, which proves there
are no trailing bytes or duplicate keys). Anything else goes through :func:`decode_map`, which
finds the first problem in the order above.

The CBOR helpers (:func:`decode_map`, :func:`enc_uint` …) are shared with :mod:`.control` and
:mod:`.error_object`, which use the same conventions.
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cbor2

from ..errors import DecodeError, TrailingBytesError, UsageError
from .registry import (GBP_VERSION, GROUP_ID_LENGTH, FrameFlags, PayloadCodec, StreamType,
                       sender_of)

# --- CBOR: shortest-form encoding helpers (RFC 8949 §3.1, §4.2.1 preferred serialization) ------
_pack_B = struct.Struct(">BB").pack
_pack_H = struct.Struct(">BH").pack
_pack_I = struct.Struct(">BI").pack
_pack_Q = struct.Struct(">BQ").pack


def enc_head(major: int, n: int) -> bytes:
    """CBOR initial byte(s) for major type *major* (already shifted, e.g. 0x40) and argument *n*."""
    if n < 24:
        return bytes((major | n,))
    if n < 0x100:
        return _pack_B(major | 24, n)
    if n < 0x10000:
        return _pack_H(major | 25, n)
    if n < 0x100000000:
        return _pack_I(major | 26, n)
    return _pack_Q(major | 27, n)


def enc_uint(n: int) -> bytes:
    """Shortest-form CBOR unsigned integer."""
    return enc_head(0x00, n)


def enc_bstr(b: bytes) -> bytes:
    """CBOR byte string."""
    return enc_head(0x40, len(b)) + b


def enc_tstr(s: str) -> bytes:
    """CBOR text string (UTF-8)."""
    b = s.encode("utf-8")
    return enc_head(0x60, len(b)) + b


def enc_key(k: str) -> bytes:
    """A text map key, pre-encoded."""
    return enc_tstr(k)


# --- CBOR: strict map decoding ----------------------------------------------------------------
UINT, BSTR, TSTR, BOOL = "uint", "bstr", "tstr", "bool"
_ZERO = {UINT: 0, BSTR: b"", TSTR: "", BOOL: False}
_RANGE_NAME = {0xFF: "u8", 0xFFFF: "u16", 0xFFFFFFFF: "u32", 0xFFFFFFFFFFFFFFFF: "u64"}


def _load_one(data: bytes, prefix: str) -> Tuple[Any, int]:
    """Decode one CBOR item from the start of *data*; returns (item, bytes consumed)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UsageError(f"expected bytes, got {type(data).__name__}", vid=f"{prefix}-INPUT")
    fp = io.BytesIO(data)
    try:
        obj = cbor2.load(fp)
    except Exception as exc:  # cbor2 raises CBORDecodeError/EOF, ValueError, RecursionError …
        raise DecodeError(f"invalid CBOR: {exc}", vid=f"{prefix}-CBOR", where=fp.tell()) from None
    return obj, fp.tell()


def _map_header_count(data: bytes) -> Optional[int]:
    """Number of entries a definite-length CBOR map header declares (``None`` if indefinite)."""
    b0 = data[0]
    n = b0 & 0x1F
    if n < 24:
        return n
    if n == 31:
        return None
    size = 1 << (n - 24)
    return int.from_bytes(data[1:1 + size], "big")


_SPEC_INDEX: Dict[Tuple[Tuple[str, str, int], ...], Dict[str, Tuple[str, int]]] = {}


def _spec_index(spec: Sequence[Tuple[str, str, int]]) -> Dict[str, Tuple[str, int]]:
    spec = tuple(spec)
    idx = _SPEC_INDEX.get(spec)
    if idx is None:
        idx = _SPEC_INDEX[spec] = {k: (kind, maxv) for k, kind, maxv in spec}
    return idx


def decode_map(data: bytes, spec: Sequence[Tuple[str, str, int]], prefix: str, what: str,
               strict: bool = True) -> Tuple[Dict[str, Any], List[DecodeError]]:
    """Decode *data* as one CBOR map with text keys described by *spec*.

    *spec* lists ``(key, kind, max)`` with kind one of ``uint bstr tstr bool``; keys with
    ``max < 0`` are optional. Returns ``(values, defects)``: *values* holds every spec key (zero
    value when missing/mistyped, in lenient mode), *defects* the typed errors found. In strict mode
    the first defect is raised instead. Not-CBOR and not-a-map always raise.
    """
    obj, used = _load_one(data, prefix)
    if type(obj) is not dict:
        raise DecodeError(f"{what}: expected a CBOR map, got {type(obj).__name__}",
                          vid=f"{prefix}-NOT-MAP")
    defects: List[DecodeError] = []

    def bad(err: DecodeError) -> None:
        if strict:
            raise err
        defects.append(err)

    if used != len(data):
        bad(TrailingBytesError(f"{what}: {len(data) - used} bytes after the CBOR map",
                               vid=f"{prefix}-TRAILING", where=used))
    out: Dict[str, Any] = {}
    kinds = _spec_index(spec)
    for key in obj:  # cbor2 keeps the wire order: check entries as serde meets them
        if type(key) is not str or key not in kinds:
            continue  # unknown keys are ignored, as by the reference
        kind, maxv = kinds[key]
        v = obj[key]
        if kind == UINT:
            if type(v) is not int:
                bad(DecodeError(f"{what}.{key}: expected unsigned integer, got {type(v).__name__}",
                                vid=f"{prefix}-TYPE", where=key))
                v = 0
            elif v < 0 or v > abs(maxv):
                bad(DecodeError(f"{what}.{key}: {v} out of range for {_RANGE_NAME.get(abs(maxv), 'uint')}",
                                vid=f"{prefix}-RANGE", where=key))
        elif kind == BSTR:
            if type(v) is not bytes:
                bad(DecodeError(f"{what}.{key}: expected byte string, got {type(v).__name__}",
                                vid=f"{prefix}-TYPE", where=key))
                v = b""
        elif kind == TSTR:
            if type(v) is not str:
                bad(DecodeError(f"{what}.{key}: expected text string, got {type(v).__name__}",
                                vid=f"{prefix}-TYPE", where=key))
                v = ""
        elif type(v) is not bool:
            bad(DecodeError(f"{what}.{key}: expected bool, got {type(v).__name__}",
                            vid=f"{prefix}-TYPE", where=key))
            v = False
        out[key] = v
    declared = _map_header_count(data)
    if declared is not None and declared != len(obj):
        bad(DecodeError(f"{what}: duplicate key in map ({declared} entries, {len(obj)} distinct)",
                        vid=f"{prefix}-DUPLICATE"))
    for key, kind, maxv in spec:
        if key not in out:
            if maxv >= 0:
                bad(DecodeError(f"{what}: missing key {key!r}", vid=f"{prefix}-MISSING", where=key))
            out[key] = _ZERO[kind]
    return out, defects


# --- the frame --------------------------------------------------------------------------------
_U8, _U16, _U32, _U64 = 0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
#: (key, kind, max) in wire order; negative max = optional key.
FRAME_SPEC = (
    ("v", UINT, _U8), ("gid", BSTR, 0), ("ep", UINT, _U64), ("tid", UINT, _U32),
    ("st", UINT, _U8), ("sid", UINT, _U32), ("fl", UINT, _U16), ("seq", UINT, _U32),
    ("psz", UINT, _U32), ("pl", BSTR, 0), ("pf", UINT, -_U8),
)
FRAME_KEYS = tuple(k for k, _, _ in FRAME_SPEC)

_K = {k: enc_key(k) for k in FRAME_KEYS}
_HEAD10 = b"\xaa" + _K["v"]
_HEAD11 = b"\xab" + _K["v"]
_KGID, _KEP, _KTID, _KST, _KSID, _KFL, _KSEQ, _KPSZ, _KPL, _KPF = (
    _K[k] for k in FRAME_KEYS[1:])


_new = object.__new__
_setattr = object.__setattr__  # fast construction of frozen instances (bypasses __init__)


@dataclass(frozen=True)
class GbpFrame:
    """One GBP frame (gbp_rfc.md §6). ``payload`` is the AEAD ciphertext ‖ tag (``pl``).

    ``defects`` is empty for a well-formed frame; :func:`decode_frame` in lenient mode records the
    typed errors it would otherwise have raised. It does not take part in equality.
    """

    version: int
    group_id: bytes
    epoch: int
    transition_id: int
    stream_type: int
    stream_id: int
    flags: int
    sequence_no: int
    payload_size: int
    payload: bytes
    payload_format: int = 0
    defects: Tuple[DecodeError, ...] = field(default=(), compare=False, repr=False)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def build(cls, group_id: bytes, epoch: int, transition_id: int, stream_type: int,
              stream_id: int, flags: int, sequence_no: int, payload: bytes,
              payload_format: int = 0, version: int = GBP_VERSION) -> "GbpFrame":
        """A frame with ``psz`` = ``len(payload)`` (reference ``GbpFrame::new``)."""
        if cls is not GbpFrame:
            return cls(version, bytes(group_id), epoch, transition_id, stream_type, stream_id,
                       flags, sequence_no, len(payload), bytes(payload), payload_format)
        f = _new(cls)
        _setattr(f, "__dict__", {
            "version": version, "group_id": bytes(group_id), "epoch": epoch,
            "transition_id": transition_id, "stream_type": stream_type, "stream_id": stream_id,
            "flags": flags, "sequence_no": sequence_no, "payload_size": len(payload),
            "payload": bytes(payload), "payload_format": payload_format, "defects": ()})
        return f

    # -- views ---------------------------------------------------------------------------------
    @property
    def sender(self) -> int:
        """Member id of the sender, from the reference's stream-id scheme (``sid // 100``)."""
        return sender_of(self.stream_id)

    @property
    def stream(self) -> Optional[StreamType]:
        """``st`` as :class:`StreamType`, ``None`` when unknown."""
        try:
            return StreamType(self.stream_type)
        except ValueError:
            return None

    @property
    def codec(self) -> PayloadCodec:
        """The codec a receiver uses (unknown ``pf`` values mean CBOR)."""
        return PayloadCodec.for_wire(self.payload_format)

    @property
    def frame_flags(self) -> FrameFlags:
        return FrameFlags(self.flags & 0xFFFF)

    @property
    def group_id16(self) -> bytes:
        """``gid`` zero-padded or truncated to 16 bytes, as the reference compares it."""
        return self.group_id[:GROUP_ID_LENGTH].ljust(GROUP_ID_LENGTH, b"\0")

    @property
    def ok(self) -> bool:
        """True when no defect was recorded."""
        return not self.defects

    # -- encoding ------------------------------------------------------------------------------
    def to_cbor(self) -> bytes:
        """The frame's CBOR bytes, in the reference's key order (``pf`` only when non-zero)."""
        for name, value, maxv in (("version", self.version, _U8), ("epoch", self.epoch, _U64),
                                  ("transition_id", self.transition_id, _U32),
                                  ("stream_type", self.stream_type, _U8),
                                  ("stream_id", self.stream_id, _U32), ("flags", self.flags, _U16),
                                  ("sequence_no", self.sequence_no, _U32),
                                  ("payload_size", self.payload_size, _U32),
                                  ("payload_format", self.payload_format, _U8)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maxv:
                raise UsageError(f"{name}={value!r} does not fit the wire type",
                                 vid="GBP-FRAME-ENCODE", where=name)
        if not isinstance(self.group_id, bytes) or not isinstance(self.payload, bytes):
            raise UsageError("group_id and payload must be bytes", vid="GBP-FRAME-ENCODE")
        pf = self.payload_format
        return b"".join((
            _HEAD11 if pf else _HEAD10, enc_uint(self.version),
            _KGID, enc_bstr(self.group_id), _KEP, enc_uint(self.epoch),
            _KTID, enc_uint(self.transition_id), _KST, enc_uint(self.stream_type),
            _KSID, enc_uint(self.stream_id), _KFL, enc_uint(self.flags),
            _KSEQ, enc_uint(self.sequence_no), _KPSZ, enc_uint(self.payload_size),
            _KPL, enc_bstr(self.payload),
            (_KPF + enc_uint(pf)) if pf else b"",
        ))


_loads = cbor2.loads
#: map header + the ten text keys of a frame without ``pf``
_FIXED10 = 1 + sum(len(_K[k]) for k in FRAME_KEYS[:10])
_PF_KEY_LEN = len(_KPF)


def _ulen(n: int) -> int:
    return 1 if n < 24 else 2 if n < 0x100 else 3 if n < 0x10000 else 5 if n < 0x100000000 else 9


def _frame_fast(obj: Any, data: bytes) -> Optional[GbpFrame]:
    """The common case in one step: a map with exactly the ten/eleven keys, right types, in range,
    ``psz`` consistent, and ``len(data)`` equal to the shortest encoding of those values — which
    rules out trailing bytes (the shortest form cannot leave room for them) and duplicate keys.
    Returns ``None`` when anything needs the careful path."""
    try:
        v = obj["v"]; gid = obj["gid"]; ep = obj["ep"]; tid = obj["tid"]; st = obj["st"]
        sid = obj["sid"]; fl = obj["fl"]; seq = obj["seq"]; psz = obj["psz"]; pl = obj["pl"]
    except (KeyError, TypeError):
        return None
    n = len(obj)
    if n == 10 and data[0] == 0xAA:
        pf = 0
        size = _FIXED10
    elif n == 11 and data[0] == 0xAB and type(obj.get("pf")) is int:
        pf = obj["pf"]
        if not 0 < pf < 0x100:
            return None
        size = _FIXED10 + _PF_KEY_LEN + _ulen(pf)
    else:
        return None
    i = int
    if not (type(v) is i and type(ep) is i and type(tid) is i and type(st) is i and type(sid) is i
            and type(fl) is i and type(seq) is i and type(psz) is i
            and type(gid) is bytes and type(pl) is bytes):
        return None
    if (v | st) >> 8 or fl >> 16 or (tid | sid | seq | psz) >> 32 or ep >> 64 or (
            v | st | fl | tid | sid | seq | psz | ep) < 0 or psz != len(pl):
        return None
    lg = len(gid)
    size += (_ulen(v) + _ulen(ep) + _ulen(tid) + _ulen(st) + _ulen(sid) + _ulen(fl) + _ulen(seq)
             + 2 * _ulen(psz) + psz + _ulen(lg) + lg)
    if size != len(data):
        return None
    f = _new(GbpFrame)
    _setattr(f, "__dict__", {
        "version": v, "group_id": gid, "epoch": ep, "transition_id": tid, "stream_type": st,
        "stream_id": sid, "flags": fl, "sequence_no": seq, "payload_size": psz, "payload": pl,
        "payload_format": pf, "defects": ()})
    return f


def decode_frame(data: bytes, *, strict: bool = True) -> GbpFrame:
    """Decode one CBOR GbpFrame (see the module docstring for the checks and their order).

    Raises :class:`~gbp_lab.core.errors.DecodeError` subclasses with vids ``GBP-FRAME-CBOR``,
    ``-NOT-MAP``, ``-TRAILING``, ``-TYPE``, ``-RANGE``, ``-DUPLICATE``, ``-MISSING``, ``-PSZ``.
    """
    # Fast path: a well-formed frame in shortest form (what every sender produces).
    if type(data) is bytes and data and 0xAA <= data[0] <= 0xAB:
        try:
            obj = _loads(data)
        except Exception:
            obj = None
        if type(obj) is dict:
            frame = _frame_fast(obj, data)
            if frame is not None:
                return frame
    return _decode_frame_slow(data, strict)


def _decode_frame_slow(data: bytes, strict: bool) -> GbpFrame:
    vals, defects = decode_map(data, FRAME_SPEC, "GBP-FRAME", "frame", strict)
    psz, pl = vals["psz"], vals["pl"]
    if psz != len(pl):
        err = DecodeError(f"frame: psz={psz} but pl has {len(pl)} bytes", vid="GBP-FRAME-PSZ",
                          where="psz")
        if strict:
            raise err
        defects.append(err)
    return GbpFrame(vals["v"], vals["gid"], vals["ep"], vals["tid"], vals["st"], vals["sid"],
                    vals["fl"], vals["seq"], psz, pl, vals["pf"], tuple(defects))


def encode_gbp_frame(version: int, group_id: bytes, epoch: int, transition_id: int,
                     stream_type: int, stream_id: int, flags: int, sequence_no: int,
                     payload: bytes) -> bytes:
    """CBOR bytes of a frame carrying *payload* as ``pl`` (no encryption, ``pf`` = 0).

    Same signature and bytes as ``gbp_stack.encode_gbp_frame``. Unlike the wheel (whose ctypes
    call silently truncates e.g. ``version=300`` to 44 and ``stream_type=256`` to 0), a value that
    does not fit its wire type raises :class:`~gbp_lab.core.errors.UsageError`.
    """
    if len(group_id) != GROUP_ID_LENGTH:
        raise UsageError("group_id must be 16 bytes", vid="GBP-FRAME-ENCODE", where="group_id")
    return GbpFrame.build(group_id, epoch, transition_id, stream_type, stream_id, flags,
                          sequence_no, payload, 0, version).to_cbor()


__all__ = ["GbpFrame", "decode_frame", "encode_gbp_frame", "FRAME_KEYS", "FRAME_SPEC",
           "decode_map", "enc_uint", "enc_bstr", "enc_tstr", "enc_head"]
