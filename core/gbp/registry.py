"""GBP registries (reference gbp_rfc.md §2, §5, §6.1; gbp-errors-registry.md; crates/gbp/core/src).

Every registry is an IntEnum (or IntFlag for the frame flags). The error registry is kept as DATA in
one table, :data:`ERROR_SPECS`; :func:`lookup_error` turns an entry into the CBOR ErrorObject the
reference's ``gbp_error_lookup`` returns (byte-identical, checked for every code in
``tests/test_gbp_control.py``).

Facts that are not enums but belong to the registry live here too: the stream-id formula
(``base + member_id * 100``), the flag profiles the reference *sends* with, the normative timeouts
(gbp-state-machine §6) and the one stream-type table, :data:`STREAM_TYPES` (name, protocol,
MLS-exporter label of the per-stream AEAD key (gbp-mls-binding.md), payload class), from which
:data:`STREAM_KEY_LABELS`, :func:`stream_name` and :func:`stream_protocol` are derived.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Dict, Mapping, Optional

from ..errors import UsageError
from .error_object import lookup_error
from .error_registry import ERROR_SPECS, ErrorClass, ErrorCode, ErrorSpec, error_spec


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

# --- the stream-type table (gbp_rfc.md §6; gbp-mls-binding.md; crates/gbp/mls ``StreamLabel``) --
@dataclass(frozen=True)
class StreamTypeInfo:
    """One row of the stream-type table: everything the stack knows about a stream type.

    ``name`` is the display name ("control" …), ``protocol`` the sub-protocol carried on it
    ("GBP" for the control plane, "GAP", "GTP", "GSP"), ``label`` the MLS-Exporter label of its
    AEAD key (RFC 9420 §8.5, gbp-mls-binding.md) and ``payload`` the name of the payload class
    (``payload_module`` is where it lives; kept as names so that the registry imports nothing
    of the sub-protocols, which import the registry).
    """

    stream_type: StreamType
    name: str
    protocol: str
    label: bytes
    payload: str
    payload_module: str


#: The one stream-type table: stream type -> :class:`StreamTypeInfo`.
STREAM_TYPES: Mapping[StreamType, StreamTypeInfo] = {
    info.stream_type: info for info in (
        StreamTypeInfo(StreamType.CONTROL, "control", "GBP", b"gbp/control", "ControlMessage",
                       "gbp_lab.core.gbp.control"),
        StreamTypeInfo(StreamType.AUDIO, "audio", "GAP", b"gbp/audio", "GapPayload",
                       "gbp_lab.core.gap.payload"),
        StreamTypeInfo(StreamType.TEXT, "text", "GTP", b"gbp/text", "GtpMessage",
                       "gbp_lab.core.gtp.message"),
        StreamTypeInfo(StreamType.SIGNAL, "signal", "GSP", b"gbp/signal", "GspSignal",
                       "gbp_lab.core.gsp.signal"),
    )
}
_INFO_BY_INT: Dict[int, StreamTypeInfo] = {int(st): info for st, info in STREAM_TYPES.items()}
#: Stream type (int) -> display name, for the stream types of the table.
STREAM_NAMES: Mapping[int, str] = {int(st): info.name for st, info in STREAM_TYPES.items()}
#: Stream type (int) -> protocol name ("GBP", "GAP", "GTP", "GSP").
STREAM_PROTOCOLS: Mapping[int, str] = {int(st): info.protocol for st, info in STREAM_TYPES.items()}
#: Per-stream AEAD key labels (derived from :data:`STREAM_TYPES`).
STREAM_KEY_LABELS: Mapping[StreamType, bytes] = {st: info.label for st, info in STREAM_TYPES.items()}


def stream_info(st: int) -> Optional[StreamTypeInfo]:
    """The table row of stream type *st*, ``None`` for a type outside the table."""
    return _INFO_BY_INT.get(st)


def stream_name(st: int) -> str:
    """Display name of stream type *st* ("control", "audio", "text", "signal"), "unknown(N)"
    for any other value."""
    name = STREAM_NAMES.get(st)
    return f"unknown({st})" if name is None else name


def stream_protocol(st: int) -> str:
    """The protocol carried on stream type *st* ("GAP", "GTP", "GSP"; "GBP" for the control
    stream and for unknown types)."""
    return STREAM_PROTOCOLS.get(st, "GBP")


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
    "StreamTypeInfo", "STREAM_TYPES", "STREAM_NAMES", "STREAM_PROTOCOLS", "stream_info",
    "stream_name", "stream_protocol",
    "CONFORMANCE_CLASSES", "GBP_VERSION", "GROUP_ID_LENGTH",
]
