"""GBP registries (reference gbp_rfc.md §2, §5, §6.1; gbp-errors-registry.md; crates/gbp/core/src).

Every registry is an IntEnum (or IntFlag for the frame flags). The error registry is kept as DATA in
one table, :data:`ERROR_SPECS`; :func:`lookup_error` turns an entry into the CBOR ErrorObject the
reference's ``gbp_error_lookup`` returns (byte-identical, checked for every code in
``tests/test_gbp_control.py``).

Facts that are not enums but belong to the registry live here too: the stream-id formula
(``base + member_id * 100``), the flag profiles the reference *sends* with, the normative timeouts
(gbp-state-machine §6) and the MLS-exporter labels of the per-stream AEAD keys
(gbp-mls-binding.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Dict, Mapping, Optional

from ..errors import UsageError


class StreamType(IntEnum):
    """GBP stream classes (frame key ``st``)."""

    CONTROL = 0
    AUDIO = 1
    TEXT = 2
    SIGNAL = 3


class PayloadCodec(IntEnum):
    """Sub-protocol payload encoding (frame key ``pf``); unknown values are read as CBOR."""

    CBOR = 0
    PROTOBUF = 1
    FLATBUFFERS = 2

    @classmethod
    def for_wire(cls, value: int) -> "PayloadCodec":
        """The codec a receiver uses for ``pf`` = *value*: unknown values fall back to CBOR
        (reference ``GbpFrame::payload_codec``)."""
        try:
            return cls(value)
        except ValueError:
            return cls.CBOR


class FrameFlags(IntFlag):
    """Frame delivery flags, u16 (frame key ``fl``; gbp_rfc.md §6.1, crates/gbp/core/src/flags.rs)."""

    NONE = 0
    ORDERED = 0x0001  #: O — keep in-stream order
    RELIABLE = 0x0002  #: R — retransmit until ACK/NACK/timeout
    ACK_REQUESTED = 0x0004  #: A — acknowledgement mandatory
    SYSTEM = 0x0008  #: S — control-plane frame, processed before application data
    CRITICAL = 0x0010  #: C — must match the receiver's last transition id


class ControlOpcode(IntEnum):
    """Control-plane opcodes, u16 (ControlMessage key ``op``; gbp-control-plane.md §3)."""

    PREPARE_TRANSITION = 0x0001
    READY_FOR_TRANSITION = 0x0002
    EXECUTE_TRANSITION = 0x0003
    ABORT_TRANSITION = 0x0004
    GROUP_STATE_DIGEST_REQUEST = 0x0005
    GROUP_STATE_DIGEST_RESPONSE = 0x0006
    REPORT_INVALID_COMMIT = 0x0007
    CAPABILITIES_ADVERTISE = 0x0008
    ACK = 0x0009
    NACK = 0x000A


class ErrorClass(IntEnum):
    """Error classes, u8 (ErrorObject key ``class``; crates/gbp/core/src/errors.rs)."""

    TRANSPORT = 0x01
    CRYPTO = 0x02
    STATE = 0x03
    POLICY = 0x04
    SCHEMA = 0x05
    AUTHZ = 0x06


class ErrorCode(IntEnum):
    """Every code of the error registry, u16 (gbp-errors-registry.md).

    Ranges: 0x0000-0x0FFF GBP, 0x1000 GAP, 0x2000 GTP, 0x3000 GSP, 0xF000-0xFFFF private.
    """

    UNSUPPORTED_VERSION = 0x0001
    UNKNOWN_GROUP = 0x0002
    EPOCH_MISMATCH = 0x0003
    TRANSITION_MISMATCH = 0x0004
    REPLAY_DETECTED = 0x0005
    DECRYPT_FAILED = 0x0006
    COMMIT_INVALID = 0x0007
    STREAM_POLICY_VIOLATION = 0x0008
    TRANSITION_IN_PROGRESS = 0x0009
    PREPARE_TIMEOUT = 0x0010
    READY_TIMEOUT = 0x0011
    EXECUTE_TIMEOUT = 0x0012
    COORDINATOR_GONE = 0x0013
    DIGEST_MISMATCH = 0x0014
    GAP_BAD_SOURCE_ID = 0x1001
    GAP_DECODE_FAILED = 0x1002
    GAP_AUTH_FAILED = 0x1003
    GAP_REPLAY_DETECTED = 0x1004
    GAP_EPOCH_STALE = 0x1005
    GAP_KEY_PHASE_UNKNOWN = 0x1006
    GTP_BAD_LENGTH = 0x2001
    GTP_UNSUPPORTED_CONTENT_TYPE = 0x2002
    GTP_DUPLICATE_MESSAGE = 0x2003
    GTP_POLICY_REJECTED = 0x2004
    GTP_ATTACHMENT_INTEGRITY = 0x2005
    GTP_REQUEST_TIMEOUT = 0x2006
    GSP_BAD_SCHEMA = 0x3001
    GSP_UNAUTHORIZED = 0x3002
    GSP_UNKNOWN_SIGNAL = 0x3003
    GSP_DUPLICATE_REQUEST = 0x3004
    GSP_STATE_CONFLICT = 0x3005
    GSP_PRECONDITION_FAILED = 0x3006


class NodeState(IntEnum):
    """Node FSM states, numbered as the reference's C ABI / Python binding (gbp-state-machine.md)."""

    IDLE = 0
    CONNECTING = 1
    ESTABLISHING_GROUP = 2
    ACTIVE = 3
    RESYNCING = 4
    FAILED = 5
    CLOSED = 6


class TransitionState(IntEnum):
    """Epoch-transition FSM states (gbp-state-machine.md §4). Never on the wire; numbered in
    declaration order of the reference."""

    T_IDLE = 0
    T_PREPARED = 1
    T_COMMIT_PROCESSED = 2
    T_READY = 3
    T_EXECUTED = 4
    T_ABORTED = 5


# --- error registry (data) -------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorSpec:
    """One row of the error registry: code, class, retryable, fatal and symbolic name."""

    code: ErrorCode
    error_class: ErrorClass
    retryable: bool
    fatal: bool

    @property
    def name(self) -> str:
        """Stable symbolic name, as the reference logs it and sends it as ``reason``."""
        return "ERR_" + self.code.name


_C, _S, _T, _P, _X, _A = (ErrorClass.CRYPTO, ErrorClass.STATE, ErrorClass.TRANSPORT,
                          ErrorClass.POLICY, ErrorClass.SCHEMA, ErrorClass.AUTHZ)
_E = ErrorCode
#: code -> (class, retryable, fatal); the one table (reference ``ErrorSpec::lookup``).
_ERROR_TABLE = {
    _E.UNSUPPORTED_VERSION: (_X, False, True),
    _E.UNKNOWN_GROUP: (_S, False, True),
    _E.EPOCH_MISMATCH: (_S, True, False),
    _E.TRANSITION_MISMATCH: (_S, True, False),
    _E.REPLAY_DETECTED: (_C, False, False),
    _E.DECRYPT_FAILED: (_C, True, False),
    _E.COMMIT_INVALID: (_C, False, True),
    _E.STREAM_POLICY_VIOLATION: (_P, False, False),
    _E.TRANSITION_IN_PROGRESS: (_S, False, False),
    _E.PREPARE_TIMEOUT: (_S, True, False),
    _E.READY_TIMEOUT: (_S, True, False),
    _E.EXECUTE_TIMEOUT: (_S, True, False),
    _E.COORDINATOR_GONE: (_S, True, False),
    _E.DIGEST_MISMATCH: (_S, False, True),
    _E.GAP_BAD_SOURCE_ID: (_X, False, False),
    _E.GAP_DECODE_FAILED: (_X, False, False),
    _E.GAP_AUTH_FAILED: (_C, False, False),
    _E.GAP_REPLAY_DETECTED: (_C, False, False),
    _E.GAP_EPOCH_STALE: (_C, False, False),
    _E.GAP_KEY_PHASE_UNKNOWN: (_C, False, False),
    _E.GTP_BAD_LENGTH: (_X, False, False),
    _E.GTP_UNSUPPORTED_CONTENT_TYPE: (_X, False, False),
    _E.GTP_DUPLICATE_MESSAGE: (_P, False, False),
    _E.GTP_POLICY_REJECTED: (_P, False, False),
    _E.GTP_ATTACHMENT_INTEGRITY: (_X, False, False),
    _E.GTP_REQUEST_TIMEOUT: (_S, True, False),
    _E.GSP_BAD_SCHEMA: (_X, False, False),
    _E.GSP_UNAUTHORIZED: (_A, False, False),
    _E.GSP_UNKNOWN_SIGNAL: (_X, False, False),
    _E.GSP_DUPLICATE_REQUEST: (_P, False, False),
    _E.GSP_STATE_CONFLICT: (_S, True, False),
    _E.GSP_PRECONDITION_FAILED: (_S, False, False),
}
del _C, _S, _T, _P, _X, _A, _E

#: The error registry: code -> :class:`ErrorSpec`.
ERROR_SPECS: Mapping[int, ErrorSpec] = {
    int(code): ErrorSpec(code, cls, retryable, fatal)
    for code, (cls, retryable, fatal) in _ERROR_TABLE.items()
}


def error_spec(code: int) -> Optional[ErrorSpec]:
    """The registry row for *code*, or ``None`` for a code outside the registry."""
    return ERROR_SPECS.get(code)


def lookup_error(code: int) -> Optional[bytes]:
    """The CBOR ErrorObject the reference returns for *code* (``gbp_stack.lookup_error``), or
    ``None`` when *code* is not in the registry.

    The reference fills ``reason`` with the symbolic name (``ERR_…``) and leaves ``det`` empty.
    """
    spec = ERROR_SPECS.get(code)
    if spec is None:
        return None
    from .error_object import ErrorObject  # local: error_object imports this module

    return ErrorObject.from_spec(spec).to_cbor()


# --- streams ---------------------------------------------------------------------------------
#: Per-member stream-id base by stream type (the reference's senders): control 0, text 1,
#: audio 2, signal 3 — note text and audio are *not* in StreamType order.
STREAM_ID_BASE: Mapping[StreamType, int] = {
    StreamType.CONTROL: 0,
    StreamType.TEXT: 1,
    StreamType.AUDIO: 2,
    StreamType.SIGNAL: 3,
}
STREAM_ID_STRIDE = 100
_BASE_TO_TYPE = {base: st for st, base in STREAM_ID_BASE.items()}


def stream_id(stream_type: int, member_id: int) -> int:
    """``stream_id = base(stream_type) + member_id * 100`` (crates/gbp/node ``member_stream_id``)."""
    try:
        base = STREAM_ID_BASE[StreamType(stream_type)]
    except ValueError:
        raise UsageError(f"unknown stream type {stream_type!r}", vid="GBP-STREAM-TYPE") from None
    if member_id < 0 or base + member_id * STREAM_ID_STRIDE > 0xFFFFFFFF:
        raise UsageError(f"member id {member_id} out of range", vid="GBP-STREAM-ID")
    return base + member_id * STREAM_ID_STRIDE


def sender_of(sid: int) -> int:
    """The member id encoded in a reference stream id (``sid // 100``)."""
    return sid // STREAM_ID_STRIDE


def stream_type_of_sid(sid: int) -> Optional[StreamType]:
    """The stream type the reference would use for *sid* (``sid % 100``), ``None`` if no base
    matches."""
    return _BASE_TO_TYPE.get(sid % STREAM_ID_STRIDE)


# --- flag profiles the reference sends -------------------------------------------------------
_F = FrameFlags
#: Flags the reference sets per stream type (GTP/GSP O|R|A, GAP O, control O|R|S).
SENT_FLAGS: Mapping[StreamType, FrameFlags] = {
    StreamType.CONTROL: _F.ORDERED | _F.RELIABLE | _F.SYSTEM,
    StreamType.AUDIO: _F.ORDERED,
    StreamType.TEXT: _F.ORDERED | _F.RELIABLE | _F.ACK_REQUESTED,
    StreamType.SIGNAL: _F.ORDERED | _F.RELIABLE | _F.ACK_REQUESTED,
}
#: Control opcodes the reference sends with the CRITICAL bit as well (O|R|S|C = 0x001B).
CRITICAL_OPCODES = frozenset({ControlOpcode.PREPARE_TRANSITION, ControlOpcode.READY_FOR_TRANSITION,
                              ControlOpcode.EXECUTE_TRANSITION})
del _F


def sent_flags(stream_type: int, opcode: Optional[int] = None) -> FrameFlags:
    """The flags the reference puts on a frame of *stream_type* (and control *opcode*)."""
    flags = SENT_FLAGS[StreamType(stream_type)]
    if stream_type == StreamType.CONTROL and opcode in CRITICAL_OPCODES:
        flags |= FrameFlags.CRITICAL
    return flags


# --- timeouts (gbp-state-machine §6; crates/gbp/core/src/state.rs) ---------------------------
#: Normative timeouts in milliseconds.
TIMEOUTS_MS: Mapping[str, int] = {
    "T_prepare_max": 5_000,
    "T_ready_max": 5_000,
    "T_execute_max": 10_000,
    "T_quorum_grace": 2_000,
    "T_coordinator_grace": 10_000,
    "T_overlap": 10_000,  # GAP key-phase overlap
}

# --- per-stream AEAD key labels (gbp-mls-binding.md; crates/gbp/mls ``StreamLabel``) ----------
STREAM_KEY_LABELS: Mapping[StreamType, bytes] = {
    StreamType.CONTROL: b"gbp/control",
    StreamType.AUDIO: b"gbp/audio",
    StreamType.TEXT: b"gbp/text",
    StreamType.SIGNAL: b"gbp/signal",
}

#: Conformance tokens (crates/gbp/core/src/conformance.rs).
CONFORMANCE_CLASSES: Dict[str, str] = {
    "gbp/class-a": "GBP + GSP",
    "gbp/class-b": "GBP + GSP + GTP",
    "gbp/class-c": "GBP + GSP + GTP + GAP",
}

GBP_VERSION = 1
GROUP_ID_LENGTH = 16

__all__ = [
    "StreamType", "PayloadCodec", "FrameFlags", "ControlOpcode", "ErrorClass", "ErrorCode",
    "NodeState", "TransitionState", "ErrorSpec", "ERROR_SPECS", "error_spec", "lookup_error",
    "STREAM_ID_BASE", "STREAM_ID_STRIDE", "stream_id", "sender_of", "stream_type_of_sid",
    "SENT_FLAGS", "CRITICAL_OPCODES", "sent_flags", "TIMEOUTS_MS", "STREAM_KEY_LABELS",
    "CONFORMANCE_CLASSES", "GBP_VERSION", "GROUP_ID_LENGTH",
]
