"""Scapy layers of GTP, the text protocol (gtp_rfc.md §4, §6, §10-§11; reference
crates/gtp/src/{message,attachment}.rs).

:class:`GtpMessage` is the decrypted payload of a GBP frame with ``st`` = 2 (``bind_layers``), in
the codec of the frame's ``pf`` (CBOR, Protobuf or FlatBuffers); dissection and building go through
:class:`gbp_lab.core.gtp.message.GtpMessage`. Fields carry the CBOR keys::

    mid u64 · sid u32 · ts u64 · rid u32 · fl u8 (URGENT|EPHEMERAL|PERSISTENT) · ct u8 · len u32 · body

``len`` defaults to ``len(body)``; the ``text`` annotation shows the body when it is UTF-8.
A body of content type ATTACHMENT_REF that decodes as an attachment manifest or chunk
(gtp_rfc.md §6) gets the matching child layer.
"""
from __future__ import annotations

from scapy.fields import (ByteEnumField, FlagsField, IntField, LongField, StrField, StrLenField,
                          XStrField)
from scapy.packet import bind_layers

from gbp_lab.core.gbp.registry import StreamType
from gbp_lab.core.gtp.message import AttachmentChunk as _CoreChunk
from gbp_lab.core.gtp.message import AttachmentManifest as _CoreManifest
from gbp_lab.core.gtp.message import GtpContentType, GtpFlags
from gbp_lab.core.gtp.message import GtpMessage as _CoreGtp

from ._common import SchemaLayer, annotation, text_field
from .gbp import GbpFrame

__all__ = ["GtpMessage", "GtpAttachmentManifest", "GtpAttachmentChunk"]

GTP_FLAG_NAMES = [GtpFlags.URGENT.name, GtpFlags.EPHEMERAL.name, GtpFlags.PERSISTENT.name]
GTP_CONTENT_TYPES = {int(c): c.name for c in GtpContentType}


class GtpMessage(SchemaLayer):
    """GTP text message envelope (gtp_rfc.md §4)."""

    name = "GTP Message"
    core_class = _CoreGtp
    annotations = ("error", "text")
    fields_desc = [
        LongField("mid", 0),
        IntField("sid", 0),
        LongField("ts", 0),
        IntField("rid", 0),
        FlagsField("fl", 0, 8, GTP_FLAG_NAMES),
        ByteEnumField("ct", GtpContentType.PLAIN, GTP_CONTENT_TYPES),
        IntField("len", None),
        StrLenField("body", b"", length_from=lambda p: p.len),
        annotation("text"),
        annotation("error"),
    ]

    def fill(self, obj: _CoreGtp) -> None:
        super().fill(obj)
        text = obj.text
        if text is not None and obj.content:
            self.fields["text"] = text

    def dissect_children(self) -> None:
        if int(self.ct) != GtpContentType.ATTACHMENT_REF or not self.body:
            return
        for cls in (GtpAttachmentManifest, GtpAttachmentChunk):
            pkt = cls.dissect_as(bytes(self.body), self.codec)
            if pkt.getfieldval("error") is None:
                self.add_payload(pkt)
                return

    def build_trailer(self) -> bytes:
        return b""

    def describe(self) -> str:
        text = self.getfieldval("text")
        shown = repr(text) if text is not None else f"{len(self.body or b'')} bytes"
        return f"GTP mid={self.mid} sid={self.sid} ct={GTP_CONTENT_TYPES.get(int(self.ct), self.ct)} {shown}"


class GtpAttachmentManifest(SchemaLayer):
    """Attachment manifest (gtp_rfc.md §6)."""

    name = "GTP Attachment Manifest"
    core_class = _CoreManifest
    fields_desc = [
        LongField("aid", 0),
        text_field("name"),
        text_field("mime"),
        LongField("size", 0),
        IntField("nc", 0),
        XStrField("hash", b""),
        annotation("error"),
    ]

    def core_values(self):
        v = super().core_values()
        for attr in ("filename", "mime_type"):
            if isinstance(v[attr], bytes):
                v[attr] = v[attr].decode("utf-8")
        return v

    def describe(self) -> str:
        return f"GTP manifest aid={self.aid} name={self.name!r} size={self.size} nc={self.nc}"


class GtpAttachmentChunk(SchemaLayer):
    """Attachment chunk (gtp_rfc.md §6)."""

    name = "GTP Attachment Chunk"
    core_class = _CoreChunk
    fields_desc = [
        LongField("aid", 0),
        IntField("idx", 0),
        IntField("nc", 0),
        StrField("data", b""),
        annotation("error"),
    ]

    def describe(self) -> str:
        return f"GTP chunk aid={self.aid} {self.idx}/{self.nc}"


bind_layers(GbpFrame, GtpMessage, st=int(StreamType.TEXT))
