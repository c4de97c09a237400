"""GSP per-signal ``args`` (reference gsp_rfc.md §6, §11; ``crates/gsp/src/args.rs``;
reference-map §3).

``args`` is an integer-keyed CBOR map carried as opaque bytes inside the signal, always CBOR
whatever the envelope codec is:

============================  ==========================================
signal                        required keys (uint values)
============================  ==========================================
JOIN, LEAVE                   none (args may be empty; not inspected)
ROLE_CHANGE                   0 target_member_id, 1 new_role
MUTE, UNMUTE                  0 target_member_id
STREAM_START, STREAM_STOP     0 stream_type
CODEC_UPDATE                  0 codec_id
============================  ==========================================

:func:`validate_args` accepts exactly what the reference's ``validate_args`` accepts: for signals
with required keys the bytes must start with a CBOR map whose keys are all non-negative integers
and whose required keys hold unsigned integers; extra keys are allowed, the first occurrence of a
repeated key counts, and bytes after the map are not looked at (ciborium ``from_reader``).
:func:`parse_args` is the strict reader (duplicates and trailing bytes rejected).
Failures raise :class:`GspArgsError` with vid ``GSP-BAD-SCHEMA`` (the reference answers
``GSP_BAD_SCHEMA``, 0x3001) or ``GSP-UNKNOWN-SIGNAL`` (0x3003).

>>> role_change_args(target_member_id=5, new_role=2).hex()
'a200050102'
>>> validate_args(SignalType.MUTE, bytes.fromhex("a10003")).target_member_id
3
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

from ..cbor import Reader, bignum, encode_map
from ..errors import DecodeError, UsageError
from ..payload_codec import check_int
from .registry import SignalType

__all__ = [
    "GspArgsError",
    "SignalArgs",
    "KEY_TARGET_MEMBER_ID",
    "KEY_NEW_ROLE",
    "KEY_STREAM_TYPE",
    "KEY_CODEC_ID",
    "REQUIRED_KEYS",
    "build_args",
    "role_change_args",
    "mute_args",
    "unmute_args",
    "stream_args",
    "codec_update_args",
    "parse_args",
    "validate_args",
]

KEY_TARGET_MEMBER_ID = 0
KEY_NEW_ROLE = 1
KEY_STREAM_TYPE = 0
KEY_CODEC_ID = 0

#: Required integer keys (and the attribute of :class:`SignalArgs` they fill) per signal.
REQUIRED_KEYS: Dict[SignalType, Tuple[Tuple[int, str], ...]] = {
    SignalType.JOIN: (),
    SignalType.LEAVE: (),
    SignalType.ROLE_CHANGE: ((KEY_TARGET_MEMBER_ID, "target_member_id"), (KEY_NEW_ROLE, "new_role")),
    SignalType.MUTE: ((KEY_TARGET_MEMBER_ID, "target_member_id"),),
    SignalType.UNMUTE: ((KEY_TARGET_MEMBER_ID, "target_member_id"),),
    SignalType.STREAM_START: ((KEY_STREAM_TYPE, "stream_type"),),
    SignalType.STREAM_STOP: ((KEY_STREAM_TYPE, "stream_type"),),
    SignalType.CODEC_UPDATE: ((KEY_CODEC_ID, "codec_id"),),
}


class GspArgsError(DecodeError):
    """``args`` do not fit the signal's schema (reference ``GspError::BadSchema``)."""

    default_vid = "GSP-BAD-SCHEMA"


@dataclass(frozen=True)
class SignalArgs:
    """The validated arguments of one signal; ``entries`` keeps every decoded (key, value) pair
    in wire order (empty for JOIN/LEAVE, whose args are not inspected)."""

    signal: SignalType
    target_member_id: Optional[int] = None
    new_role: Optional[int] = None
    stream_type: Optional[int] = None
    codec_id: Optional[int] = None
    entries: Tuple[Tuple[int, Any], ...] = ()

    def to_bytes(self) -> bytes:
        """Canonical ``args`` for this signal (required keys only, in key order)."""
        return build_args(self.signal, **{attr: getattr(self, attr)
                                            for _k, attr in REQUIRED_KEYS[self.signal]})


def _signal(signal: Union[int, SignalType]) -> SignalType:
    try:
        return SignalType(signal)
    except ValueError:
        raise GspArgsError(f"unknown signal type {signal}", vid="GSP-UNKNOWN-SIGNAL",
                           where="signal_type") from None


# ---------------------------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------------------------
def build_args(signal: Union[int, SignalType], **values: int) -> bytes:
    """``args`` for *signal* from its named keys: ``build_args(ROLE_CHANGE, target_member_id=5,
    new_role=2)`` → ``A2 00 05 01 02``. JOIN/LEAVE give ``b""``. Values are u32 (member ids, role
    ids, stream types and codec ids are u32/u8 in the reference)."""
    try:
        sig = SignalType(signal)
    except ValueError:
        raise UsageError(f"unknown signal type {signal}", vid="GSP-ARGS-BUILD") from None
    spec = REQUIRED_KEYS[sig]
    wanted = {attr for _k, attr in spec}
    if set(values) != wanted:
        raise UsageError(f"{sig.name} args need exactly {sorted(wanted)}, got {sorted(values)}",
                         vid="GSP-ARGS-BUILD")
    if not spec:
        return b""
    return encode_map(
        (key, check_int(values[attr], 32, where=attr, decoding=False)) for key, attr in spec)


def role_change_args(target_member_id: int, new_role: int) -> bytes:
    """``{0: target_member_id, 1: new_role}``."""
    return build_args(SignalType.ROLE_CHANGE, target_member_id=target_member_id, new_role=new_role)


def mute_args(target_member_id: int) -> bytes:
    """``{0: target_member_id}`` (MUTE)."""
    return build_args(SignalType.MUTE, target_member_id=target_member_id)


def unmute_args(target_member_id: int) -> bytes:
    """``{0: target_member_id}`` (UNMUTE)."""
    return build_args(SignalType.UNMUTE, target_member_id=target_member_id)


def stream_args(stream_type: int) -> bytes:
    """``{0: stream_type}`` (STREAM_START / STREAM_STOP)."""
    return build_args(SignalType.STREAM_START, stream_type=stream_type)


def codec_update_args(codec_id: int) -> bytes:
    """``{0: codec_id}`` (CODEC_UPDATE)."""
    return build_args(SignalType.CODEC_UPDATE, codec_id=codec_id)


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def _int_map_entries(data: bytes, *, strict: bool) -> List[Tuple[int, Any]]:
    """(key, value) pairs of an integer-keyed CBOR map at the start of *data*."""
    if not data:
        raise GspArgsError("args are empty, a CBOR map is required", where="args")
    try:
        r = Reader(bytes(data), "GSP args")
        major, _ai, n = r.head()
        if major != 5:
            raise GspArgsError(f"args must be a CBOR map (major type {major})", where="args")
        # ciborium's Value turns a bignum into an integer; other tags stay (not unsigned ints)
        entries = [(bignum(k), bignum(v)) for k, v in r.map_entries(n)]
        if strict:
            r.expect_end()
    except GspArgsError:
        raise
    except DecodeError as e:
        raise GspArgsError(f"args are not valid CBOR: {e.message}", where="args") from None
    for k, _v in entries:
        if isinstance(k, bool) or not isinstance(k, int) or k < 0 or k >> 64:
            raise GspArgsError(f"args key {k!r} is not a u64", where="args")
    if strict:
        seen = set()
        for k, _v in entries:
            if k in seen:
                raise GspArgsError(f"args key {k} appears twice", where=k)
            seen.add(k)
    return entries


def parse_args(data: bytes) -> Dict[int, Any]:
    """Strictly decode ``args`` as an integer-keyed CBOR map (no duplicate keys, no trailing
    bytes). Values are decoded generically (int, bytes, str, list, dict, bool, None, float)."""
    return dict(_int_map_entries(data, strict=True))


def validate_args(signal: Union[int, SignalType], args: bytes) -> SignalArgs:
    """Check *args* for *signal* exactly as the reference receiver does and return them."""
    sig = _signal(signal)
    spec = REQUIRED_KEYS[sig]
    if not spec:
        return SignalArgs(sig)
    if not isinstance(args, (bytes, bytearray, memoryview)):
        raise UsageError("args must be bytes", vid="GSP-ARGS-INPUT")
    try:
        entries = _int_map_entries(bytes(args), strict=False)
    except GspArgsError as e:
        raise GspArgsError(f"{sig.name}: {e.message}", where=e.where) from None
    found: Dict[str, int] = {}
    for key, attr in spec:
        first = next((v for k, v in entries if k == key), None)
        if isinstance(first, bool) or not isinstance(first, int) or first < 0 or first >> 64:
            raise GspArgsError(f"{sig.name}: missing key {key} ({attr}) with an unsigned value",
                               where=key)
        found[attr] = first
    return SignalArgs(sig, entries=tuple(entries), **found)
