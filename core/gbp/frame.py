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
one-step path for exactly that (:func:`gbp_lab.core.cbor.fast_loads`, then type/range checks, then a length check: the
input must be exactly as long as the shortest encoding of the decoded values, which proves there
are no trailing bytes; the map head's count equal to the number of distinct keys rules out
duplicate keys; a value shared through cbor2's RFC 8949 §9.2 tags 28/29 — which could decode to
more than its bytes — sends the frame the careful way, see :func:`_frame_fast`). Anything else
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
                    enc_tstr, enc_uint, fast_loads, head_len)
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


_loads = fast_loads
#: map header + the ten text keys of a frame without ``pf``
_FIXED10 = 1 + sum(len(_K[k]) for k in FRAME_KEYS[:10])
_PF_KEY_LEN = len(_KPF)


_ulen = head_len


def _frame_fast(obj: Any, data: bytes) -> Optional[GbpFrame]:
    """The common case in one step: a map with exactly the ten/eleven keys, right types, in range,
    ``psz`` consistent, and ``len(data)`` equal to the shortest encoding of those values — which
    rules out trailing bytes (the shortest form cannot leave room for them); the map head's entry
    count equal to the number of distinct keys rules out duplicate keys. Returns ``None`` when
    anything needs the careful path.

    The length argument holds only if no item decodes to *more* than its own bytes: cbor2
    resolves shared references (RFC 8949 §9.2 tags 28/29: a 3-byte ``d81d00`` stands for a whole
    earlier value), which could hide trailing bytes behind a shorter-than-shortest map. A marker
    costs 2 bytes and a reference 3, so sharing saves bytes only for values of 4+ encoded bytes:
    byte strings of 3+ bytes and integers ≥ 2**16 — never cached by CPython, so a shared one is
    the *same object* in two fields. Such frames go the careful path. Head lengths are computed
    inline (no calls)."""
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
        size = _FIXED10 + _PF_KEY_LEN + (1 if pf < 24 else 2)
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
    # shortest head of each value: 1 byte below 24, else 2/3/5/9 (ranges checked above)
    size += (psz + lg
             + (1 if v < 24 else 2) + (1 if st < 24 else 2)
             + (1 if fl < 24 else 2 if fl < 0x100 else 3)
             + (1 if tid < 24 else 2 if tid < 0x100 else 3 if tid < 0x10000 else 5)
             + (1 if sid < 24 else 2 if sid < 0x100 else 3 if sid < 0x10000 else 5)
             + (1 if seq < 24 else 2 if seq < 0x100 else 3 if seq < 0x10000 else 5)
             + (2 if psz < 24 else 4 if psz < 0x100 else 6 if psz < 0x10000 else 10)
             + (1 if lg < 24 else 2 if lg < 0x100 else 3 if lg < 0x10000 else 5
                if lg < 0x100000000 else 9)
             + (1 if ep < 24 else 2 if ep < 0x100 else 3 if ep < 0x10000 else 5
                if ep < 0x100000000 else 9))
    if size != len(data) or gid is pl:
        return None
    if (ep | tid | sid | seq | psz) >> 16:  # rare: a shared reference needs an int >= 2**16
        big = [x for x in (ep, tid, sid, seq, psz) if x >> 16]
        if len(big) > 1 and len(set(map(id, big))) != len(big):
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
