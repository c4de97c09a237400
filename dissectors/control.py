"""Scapy layers of the GBP control plane (gbp-control-plane.md §3; reference
crates/gbp/base/src/{control,error_object}.rs).

:class:`GbpControl` is the decrypted payload of a GBP frame with ``st`` = 0 (``bind_layers``),
always CBOR; dissection and building go through :func:`gbp_lab.core.gbp.control.decode_control` /
:meth:`gbp_lab.core.gbp.control.ControlMessage.to_cbor`. Fields carry the CBOR keys::

    op u16 (opcode) · rid u32 · sid u32 (sender member id) · tid u32 · alen u32 · args bstr

Child layer of ``args`` by opcode: PREPARE_TRANSITION carries a TLS-serialised MLSMessage (the
Commit) → :mod:`gbp_lab.dissectors.mls`; other non-empty args are CBOR (the coordinator claim
``{0: true}``, the documented digest/report maps) → :class:`GbpCborArgs`.

:class:`GbpErrorObject` is the registry's ErrorObject (gbp_rfc.md §12), for bytes from
``lookup_error`` or captures that carry one.
"""
from __future__ import annotations

from scapy.fields import (ByteEnumField, IntField, ShortEnumField, StrField, StrLenField,
                          XStrField)
from scapy.packet import NoPayload, bind_layers

from gbp_lab.core.gbp.control import ControlMessage, decode_control
from gbp_lab.core.gbp.error_object import ErrorObject, decode_error_object
from gbp_lab.core.gbp.registry import ControlOpcode, ErrorClass, ErrorCode, StreamType
from gbp_lab.core.payload_codec import CborWriter, cbor_decode_item

from ._common import CoreLayer, annotation, text_field
from .gbp import GbpFrame

__all__ = ["GbpControl", "GbpCborArgs", "GbpErrorObject", "OPCODE_NAMES"]

OPCODE_NAMES = {int(o): o.name for o in ControlOpcode}
ERROR_CODE_NAMES = {int(c): c.name for c in ErrorCode}
ERROR_CLASS_NAMES = {int(c): c.name for c in ErrorClass}


class GbpControl(CoreLayer):
    """A control message (gbp-control-plane.md §3)."""

    name = "GBP Control"
    fields_desc = [
        ShortEnumField("op", ControlOpcode.ACK, OPCODE_NAMES),
        IntField("rid", 0),
        IntField("sid", 0),
        IntField("tid", 0),
        IntField("alen", None),
        StrLenField("args", b"", length_from=lambda p: p.alen),
        annotation("error"),
    ]

    def decode_core(self, s: bytes) -> ControlMessage:
        return decode_control(s)

    def fill(self, m: ControlMessage) -> None:
        for name, value in (("op", m.opcode), ("rid", m.request_id), ("sid", m.sender_id),
                            ("tid", m.transition_id), ("alen", m.args_length), ("args", m.args)):
            self.fields[name] = value

    def dissect_children(self) -> None:
        args = bytes(self.args or b"")
        if not args:
            return
        if int(self.op) == ControlOpcode.PREPARE_TRANSITION:
            from .mls import mls_layer

            self.add_payload(mls_layer(args, _underlayer=self))
        else:
            self.add_payload(GbpCborArgs(args, _internal=1, _underlayer=self))

    def _args(self) -> bytes:
        if self.args not in (None, b"") or isinstance(self.payload, NoPayload):
            return bytes(self.args or b"")
        return bytes(self.payload)

    def encode_core(self) -> bytes:
        args = self._args()
        alen = len(args) if self.alen is None else int(self.alen)
        return ControlMessage(int(self.op), int(self.rid), int(self.sid), int(self.tid), alen,
                              args).to_cbor()

    def build_trailer(self) -> bytes:
        return b""

    def describe(self) -> str:
        return (f"GBP control {OPCODE_NAMES.get(int(self.op), hex(int(self.op)))} rid={self.rid} "
                f"sid={self.sid} tid={self.tid} alen={self.alen}")


class GbpCborArgs(CoreLayer):
    """CBOR control args, decoded generically (``value`` is the Python value's ``repr``; build
    from a Python value with ``GbpCborArgs(value={0: True})``)."""

    name = "GBP CBOR args"
    fields_desc = [
        StrField("value", None),
        annotation("error"),
    ]

    def decode_core(self, s: bytes):
        return cbor_decode_item(s, context="control args")

    def fill(self, v) -> None:
        self.fields["value"] = repr(v)
        self._value = v

    def encode_core(self) -> bytes:
        v = self.getfieldval("value")
        if isinstance(v, (bytes, str)) and hasattr(self, "_value") and repr(self._value) == (
                v.decode() if isinstance(v, bytes) else v):
            v = self._value
        return CborWriter().value(v).getvalue()

    def build_trailer(self) -> bytes:
        return b""

    def describe(self) -> str:
        return f"CBOR {self.value}"


class GbpErrorObject(CoreLayer):
    """An ErrorObject (gbp_rfc.md §12): ``code`` · ``class`` · ``retryable`` · ``fatal`` ·
    ``reason`` · ``det``."""

    name = "GBP ErrorObject"
    fields_desc = [
        ShortEnumField("code", 0, ERROR_CODE_NAMES),
        ByteEnumField("cls", 0, ERROR_CLASS_NAMES),
        ByteEnumField("retryable", 0, {0: "false", 1: "true"}),
        ByteEnumField("fatal", 0, {0: "false", 1: "true"}),
        text_field("reason"),
        XStrField("det", b""),
        annotation("error"),
    ]

    def decode_core(self, s: bytes) -> ErrorObject:
        return decode_error_object(s)

    def fill(self, e: ErrorObject) -> None:
        self.fields.update(code=e.code, cls=e.error_class, retryable=int(e.retryable),
                           fatal=int(e.fatal), reason=e.reason, det=e.details)

    def encode_core(self) -> bytes:
        reason = self.reason
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8")
        return ErrorObject(int(self.code), int(self.cls), bool(self.retryable), bool(self.fatal),
                           reason, bytes(self.det)).to_cbor()

    def describe(self) -> str:
        return f"GBP error {ERROR_CODE_NAMES.get(int(self.code), hex(int(self.code)))}"


bind_layers(GbpFrame, GbpControl, st=int(StreamType.CONTROL))
