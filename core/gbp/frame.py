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

Speed: every frame a sender produces is in the canonical form, and :func:`decode_frame` first
tries :func:`frame_values`, an exact-shape matcher (:mod:`gbp_lab.core.cbor_shape`: regular
expressions over the bytes, no intermediate dict; no CBOR tag can pass it, so cbor2's RFC 8949
§9.2 shared references cannot hide trailing bytes). Anything else
goes through
:func:`gbp_lab.core.cbor.decode_map` with :attr:`~gbp_lab.core.cbor.Leniency.STRICT`, which finds
the first problem in the order above.

The CBOR codec itself is :mod:`gbp_lab.core.cbor` (shared with :mod:`.control`,
:mod:`.error_object` and the payload codecs); ``decode_map``, ``enc_uint`` … stay importable from
here for older callers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

from ..cbor import (BSTR, U8, U16, U32, U64, UINT, decode_map, enc_bstr, enc_head, enc_key,
                    enc_tstr, enc_uint)
from ..cbor_shape import compile_shape
from ..errors import DecodeError, UsageError
from .registry import (GBP_VERSION, GROUP_ID_LENGTH, FrameFlags, PayloadCodec, StreamType,
                       sender_of)


# --- the frame --------------------------------------------------------------------------------
_U8, _U16, _U32, _U64 = U8, U16, U32, U64
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
        return encode_frame(self.group_id, self.epoch, self.transition_id, self.stream_type,
                            self.stream_id, self.flags, self.sequence_no, self.payload,
                            self.payload_format, self.version, self.payload_size)


#: shortest-form heads of the unsigned integers 0..255 (most frame fields), by value
_UINTS = tuple(enc_uint(i) for i in range(256))
_GID16_HEAD = enc_head(0x40, GROUP_ID_LENGTH)


def encode_frame(group_id: bytes, epoch: int, transition_id: int, stream_type: int,
                 stream_id: int, flags: int, sequence_no: int, payload: bytes,
                 payload_format: int = 0, version: int = GBP_VERSION,
                 payload_size: Optional[int] = None) -> bytes:
    """The CBOR bytes of a frame from its values, in the reference's key order (``pf`` only when
    non-zero; ``psz`` = ``len(payload)`` unless *payload_size* is given) — the one frame encoder:
    :meth:`GbpFrame.to_cbor` (which checks the wire ranges first) and the node's sends (whose
    values are in range by construction) both write through it. Values are not range-checked
    here; an integer beyond 64 bits raises ``UsageError`` (``CBOR-RANGE``)."""
    u = _UINTS
    psz = len(payload) if payload_size is None else payload_size
    n = len(payload)
    return b"".join((
        _HEAD11 if payload_format else _HEAD10, u[version] if 0 <= version < 256 else enc_uint(version),
        _KGID, (_GID16_HEAD + group_id) if len(group_id) == GROUP_ID_LENGTH else enc_bstr(group_id),
        _KEP, u[epoch] if 0 <= epoch < 256 else enc_uint(epoch),
        _KTID, u[transition_id] if 0 <= transition_id < 256 else enc_uint(transition_id),
        _KST, u[stream_type] if 0 <= stream_type < 256 else enc_uint(stream_type),
        _KSID, u[stream_id] if 0 <= stream_id < 256 else enc_uint(stream_id),
        _KFL, u[flags] if 0 <= flags < 256 else enc_uint(flags),
        _KSEQ, u[sequence_no] if 0 <= sequence_no < 256 else enc_uint(sequence_no),
        _KPSZ, u[psz] if 0 <= psz < 256 else enc_uint(psz),
        _KPL, enc_head(0x40, n), payload,
        (_KPF + enc_uint(payload_format)) if payload_format else b"",
    ))


#: the canonical-form matchers (:mod:`gbp_lab.core.cbor_shape`) by the frame's first byte — a map
#: of 10 entries (no ``pf``) or 11 — each returning the 11 values of :func:`frame_values`. They
#: take 16-byte group ids only (any other length is decoded, and judged, by the careful path);
#: ``v`` … ``fl`` repeat within a stream and epoch, so their values are memoised by their bytes.
FRAME_MATCHERS = {
    0xAA: compile_shape(FRAME_SPEC[:10], fixed_lengths={"gid": GROUP_ID_LENGTH}, memo=7,
                        equal_lengths=[("psz", "pl")], defaults=(0,)),
    0xAB: compile_shape(FRAME_SPEC, fixed_lengths={"gid": GROUP_ID_LENGTH}, memo=7,
                        equal_lengths=[("psz", "pl")]),
}
_new = object.__new__
_setattr = object.__setattr__


def frame_values(data: bytes) -> Optional[tuple]:
    """``(v, gid, ep, tid, st, sid, fl, seq, psz, pl, pf)`` of a frame in the canonical form every
    sender writes (keys in wire order, shortest heads, 16-byte group id, ``psz == len(pl)``,
    nothing after the map), without building a :class:`GbpFrame`; ``None`` for anything else
    — :func:`decode_frame` then decodes it (or says what is wrong). The bulk capture reader's
    hot path; on the inputs where it returns values, :func:`decode_frame` returns a frame with
    the same values (the shape is a subset of what the strict decoder accepts)."""
    if type(data) is not bytes or not data:
        return None
    match = FRAME_MATCHERS.get(data[0])
    return None if match is None else match(data)


def decode_frame(data: bytes, *, strict: bool = True) -> GbpFrame:
    """Decode one CBOR GbpFrame (see the module docstring for the checks and their order).

    Raises :class:`~gbp_lab.core.errors.DecodeError` subclasses with vids ``GBP-FRAME-CBOR``,
    ``-NOT-MAP``, ``-TRAILING``, ``-TYPE``, ``-RANGE``, ``-DUPLICATE``, ``-MISSING``, ``-PSZ``.
    """
    vals = frame_values(data)  # the form every sender produces, in one step
    if vals is not None:
        f = _new(GbpFrame)
        _setattr(f, "__dict__", {
            "version": vals[0], "group_id": vals[1], "epoch": vals[2], "transition_id": vals[3],
            "stream_type": vals[4], "stream_id": vals[5], "flags": vals[6],
            "sequence_no": vals[7], "payload_size": vals[8], "payload": vals[9],
            "payload_format": vals[10], "defects": ()})
        return f
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


__all__ = ["GbpFrame", "decode_frame", "frame_values", "FRAME_MATCHERS", "encode_frame",
           "encode_gbp_frame", "FRAME_KEYS", "FRAME_SPEC",
           "decode_map", "enc_uint", "enc_bstr", "enc_tstr", "enc_head"]
