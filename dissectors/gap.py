"""Scapy layer of GAP, the audio protocol (gap_rfc.md §4, §10-§11; reference
crates/gap/src/payload.rs).

:class:`GapPayload` is the decrypted payload of a GBP frame with ``st`` = 1 (``bind_layers``), in
the codec of the frame's ``pf``; dissection and building go through
:class:`gbp_lab.core.gap.payload.GapPayload`. Fields carry the CBOR keys::

    msid u32 · seq u32 (16-bit RTP sequence) · ts u64 · kp u32 (key phase) · opus bstr

When ``opus`` holds an SFrame payload (RFC 9605; reference-map §7) the child layer is
:class:`gbp_lab.dissectors.sframe.SFrame` — decrypted when the key log has the epoch's exporter
secret, otherwise recognised by its header (KID epoch bits = the frame's epoch) and shown
encrypted. Plain Opus stays in the ``opus`` field.
"""
from __future__ import annotations

from scapy.fields import IntField, LongField, StrField
from scapy.packet import bind_layers

from gbp_lab.core.gap.payload import GapPayload as _CoreGap
from gbp_lab.core.gbp.registry import StreamType

from ._common import SchemaLayer, annotation
from .gbp import GbpFrame
from .sframe import sframe_layer_for

__all__ = ["GapPayload"]


class GapPayload(SchemaLayer):
    """One GAP audio frame (gap_rfc.md §4)."""

    name = "GAP Payload"
    core_class = _CoreGap
    fields_desc = [
        IntField("msid", 0),
        IntField("seq", 0),
        LongField("ts", 0),
        IntField("kp", 0),
        StrField("opus", b""),
        annotation("error"),
    ]

    def dissect_children(self) -> None:
        child = sframe_layer_for(self)
        if child is not None:
            self.add_payload(child)

    def build_trailer(self) -> bytes:
        return b""  # an SFrame child is the ``opus`` field itself

    def core_values(self):
        from scapy.packet import NoPayload

        v = super().core_values()
        if not v["opus_frame"] and not isinstance(self.payload, NoPayload):
            v["opus_frame"] = bytes(self.payload)  # GapPayload(...)/SFrame(...)
        return v

    def describe(self) -> str:
        return f"GAP msid={self.msid} seq={self.seq} ts={self.ts} kp={self.kp} opus={len(self.opus or b'')}B"


bind_layers(GbpFrame, GapPayload, st=int(StreamType.AUDIO))
