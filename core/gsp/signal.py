"""GSP signal envelope (reference gsp_rfc.md §4-§6, §10-§11; ``crates/gsp/src/signal.rs``,
``crates/gbp/core/src/signal.rs``; reference-map §2-§4).

CBOR keys in serde order: ``t`` u32 (signal type), ``rid`` u32 (request id), ``sid`` u32 (sender
member id), ``rc`` u32 (role claim), ``alen`` u32 (= length of ``args``, checked on decode in
every codec), ``args`` bstr. ``args`` holds an integer-keyed CBOR map whatever the envelope codec
is (see :mod:`gbp_lab.core.gsp.args`). Protobuf ``gsp.GspSignal`` 1..6 and FlatBuffers
``gsp.GspSignal`` slots 0..5 follow the same order; in FlatBuffers the reference leaves ``args``
out when it is empty, and a missing vector reads as empty.

Decoding keeps ``signal_type`` as the raw u32: an unregistered type is a well-formed envelope that
the GSP client (not the codec) rejects (``GSP_UNKNOWN_SIGNAL``, 0x3003); :attr:`GspSignal.signal`
gives the registry member or ``None``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from ..payload_codec import FieldSpec, Kind, MessageSchema, PayloadMessage, register_protobuf, validate_fields
from .args import SignalArgs, validate_args
from .registry import SignalType

__all__ = ["SignalType", "GspSignal"]


GSP_SIGNAL_SCHEMA = MessageSchema(
    name="GspSignal",
    pb_package="gsp",
    fields=(
        FieldSpec("signal_type", "t", Kind.U32, 1),
        FieldSpec("request_id", "rid", Kind.U32, 2),
        FieldSpec("sender_id", "sid", Kind.U32, 3),
        FieldSpec("role_claim", "rc", Kind.U32, 4),
        FieldSpec("args_length", "alen", Kind.U32, 5),
        FieldSpec("args", "args", Kind.BYTES, 6),
    ),
    length_checks=(("args_length", "args"),),
    fb_omit_empty=("args",),
)

register_protobuf([GSP_SIGNAL_SCHEMA])


@dataclass(frozen=True)
class GspSignal(PayloadMessage):
    """A GSP signal (gsp_rfc §4). ``args_length`` defaults to ``len(args)``; an explicit different
    value is kept (to craft bad signals) and rejected by every decoder."""

    SCHEMA: ClassVar[MessageSchema] = GSP_SIGNAL_SCHEMA

    signal_type: int
    request_id: int
    sender_id: int
    role_claim: int = 0
    args_length: Optional[int] = None  # type: ignore[assignment]
    args: bytes = b""

    def __post_init__(self) -> None:
        if isinstance(self.args, (bytearray, memoryview)):
            object.__setattr__(self, "args", bytes(self.args))
        if type(self.signal_type) is not int and isinstance(self.signal_type, int) \
                and not isinstance(self.signal_type, bool):
            object.__setattr__(self, "signal_type", int(self.signal_type))
        if self.args_length is None and isinstance(self.args, bytes):
            object.__setattr__(self, "args_length", len(self.args))
        validate_fields(self.SCHEMA, self)

    @classmethod
    def bare(cls, signal_type: int, request_id: int, sender_id: int) -> "GspSignal":
        """A signal without arguments and role claim 0 (reference ``GspSignal::bare``)."""
        return cls(int(signal_type), request_id, sender_id)

    @property
    def signal(self) -> Optional[SignalType]:
        """``signal_type`` as a registry member, ``None`` when unregistered."""
        try:
            return SignalType(self.signal_type)
        except ValueError:
            return None

    def parsed_args(self) -> "SignalArgs":
        """Validate ``args`` for this signal type as the reference receiver does
        (:func:`gbp_lab.core.gsp.args.validate_args`)."""
        return validate_args(self.signal_type, self.args)
