"""Scapy layers of GSP, the signalling protocol (gsp_rfc.md §4-§6, §10-§11; reference
crates/gsp/src/{signal,args}.rs).

:class:`GspSignal` is the decrypted payload of a GBP frame with ``st`` = 3 (``bind_layers``), in
the codec of the frame's ``pf``; dissection and building go through
:class:`gbp_lab.core.gsp.signal.GspSignal`. Fields carry the CBOR keys::

    t u32 (signal type) · rid u32 · sid u32 · rc u32 (role claim) · alen u32 · args bstr

``args`` (an integer-keyed CBOR map, always CBOR) is shown as the child layer :class:`GspArgs`,
validated by :func:`gbp_lab.core.gsp.args.validate_args` exactly as the reference receiver does;
a schema violation is the child's ``error`` annotation (the reference answers GSP_BAD_SCHEMA).
"""
from __future__ import annotations

from scapy.fields import IntEnumField, IntField, StrLenField
from scapy.packet import NoPayload, bind_layers

from gbp_lab.core.gbp.registry import StreamType
from gbp_lab.core.gsp.args import REQUIRED_KEYS, build_args, validate_args
from gbp_lab.core.gsp.signal import GspSignal as _CoreSignal
from gbp_lab.core.gsp.signal import SignalType

from ._common import CoreLayer, SchemaLayer, annotation, find_under
from .gbp import GbpFrame

__all__ = ["GspSignal", "GspArgs", "SIGNAL_NAMES"]

SIGNAL_NAMES = {int(s): s.name for s in SignalType}


class GspSignal(SchemaLayer):
    """One GSP signal envelope (gsp_rfc.md §4)."""

    name = "GSP Signal"
    core_class = _CoreSignal
    fields_desc = [
        IntEnumField("t", SignalType.JOIN, SIGNAL_NAMES),
        IntField("rid", 0),
        IntField("sid", 0),
        IntField("rc", 0),
        IntField("alen", None),
        StrLenField("args", b"", length_from=lambda p: p.alen),
        annotation("error"),
    ]

    def dissect_children(self) -> None:
        args = bytes(self.args or b"")
        if args:  # (a signal that needs args and has none fails here too: shown as GspArgs error)
            self.add_payload(GspArgs(args, _internal=1, _underlayer=self))
        elif int(self.t) in SIGNAL_NAMES and REQUIRED_KEYS[SignalType(int(self.t))]:
            self.fields["error"] = "[GSP-BAD-SCHEMA] args required by this signal type are empty"

    def core_values(self):
        v = super().core_values()
        if not v["args"] and not isinstance(self.payload, NoPayload):
            v["args"] = bytes(self.payload)  # GspSignal(t=…)/GspArgs(target_member_id=…)
            if self.getfieldval("alen") is None:
                v["args_length"] = None
        return v

    def build_trailer(self) -> bytes:
        return b""

    def describe(self) -> str:
        return f"GSP {SIGNAL_NAMES.get(int(self.t), self.t)} rid={self.rid} sid={self.sid} rc={self.rc}"


class GspArgs(CoreLayer):
    """The ``args`` of a GSP signal (gsp_rfc.md §6): the required keys of the signal type, as the
    reference validates them; ``entries`` lists every (key, value) pair in wire order."""

    name = "GSP Args"
    annotations = ("error", "entries")
    fields_desc = [
        IntField("target_member_id", None),
        IntField("new_role", None),
        IntField("stream_type", None),
        IntField("codec_id", None),
        annotation("entries"),
        annotation("error"),
    ]

    def signal_type(self) -> int:
        sig = find_under(self, GspSignal)
        return int(sig.t) if sig is not None else int(SignalType.MUTE)

    def decode_core(self, s: bytes):
        return validate_args(self.signal_type(), s)

    def fill(self, a) -> None:
        for name in ("target_member_id", "new_role", "stream_type", "codec_id"):
            value = getattr(a, name)
            if value is not None:
                self.fields[name] = value
        if a.entries:
            self.fields["entries"] = repr(list(a.entries))

    def encode_core(self) -> bytes:
        values = {name: int(self.getfieldval(name)) for name in
                  ("target_member_id", "new_role", "stream_type", "codec_id")
                  if self.getfieldval(name) is not None}
        return build_args(self.signal_type(), **values)

    def build_trailer(self) -> bytes:
        return b""

    def describe(self) -> str:
        shown = " ".join(f"{n}={self.getfieldval(n)}" for n in
                         ("target_member_id", "new_role", "stream_type", "codec_id")
                         if self.getfieldval(n) is not None)
        return f"GSP args {shown}".rstrip()


bind_layers(GbpFrame, GspSignal, st=int(StreamType.SIGNAL))
