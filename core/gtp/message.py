"""GTP payloads: the text message envelope and the attachment manifest/chunk (reference gtp_rfc.md
§4, §6, §10-§11; ``crates/gtp/src/{message,attachment}.rs``; reference-map §2-§4).

CBOR keys in the order the reference writes them (serde field order):

* :class:`GtpMessage` — ``mid`` u64, ``sid`` u32, ``ts`` u64, ``rid`` u32, ``fl`` u8, ``ct`` u8,
  ``len`` u32 (= length of ``body``, checked on decode in every codec), ``body`` bstr.
* :class:`AttachmentManifest` — ``aid`` u64, ``name`` text, ``mime`` text, ``size`` u64, ``nc`` u32,
  ``hash`` bstr (SHA-256 of the whole attachment).
* :class:`AttachmentChunk` — ``aid`` u64, ``idx`` u32, ``nc`` u32, ``data`` bstr.

Protobuf ``gtp.GtpMessage`` 1..8 and FlatBuffers ``gtp.GtpMessage`` slots 0..7 follow the same
order (``flags``/``content_type`` are uint32 there). The reference sends attachments in CBOR only;
their Protobuf/FlatBuffers forms follow its schemas (``gtp.proto``/``gtp.fbs``).

>>> m = GtpMessage.plain(sender_id=1, message_id=7, text="hi")
>>> m.to_bytes().hex()
'a8636d696407637369640162747300637269640062666c0162637400636c656e0264626f6479426869'
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import ClassVar, List, Optional, Tuple

from ..errors import UsageError
from ..payload_codec import (
    FieldSpec,
    Kind,
    MessageSchema,
    PayloadMessage,
    register_protobuf,
    validate_fields,
)

__all__ = [
    "GtpContentType",
    "GtpFlags",
    "GtpMessage",
    "AttachmentManifest",
    "AttachmentChunk",
    "DEFAULT_CHUNK_SIZE",
    "split_attachment",
]

#: Default attachment chunk size of the reference sender (64 KiB, gtp_rfc §6).
DEFAULT_CHUNK_SIZE = 64 * 1024


class GtpContentType(IntEnum):
    """GTP ``ct`` registry (u8, gtp_rfc §4)."""

    PLAIN = 0
    MARKDOWN = 1
    BINARY = 2
    ATTACHMENT_REF = 3


class GtpFlags(IntFlag):
    """GTP ``fl`` bits (u8, gtp_rfc §4)."""

    NONE = 0
    URGENT = 0x01
    EPHEMERAL = 0x02
    PERSISTENT = 0x04


GTP_MESSAGE_SCHEMA = MessageSchema(
    name="GtpMessage",
    pb_package="gtp",
    fields=(
        FieldSpec("message_id", "mid", Kind.U64, 1),
        FieldSpec("sender_id", "sid", Kind.U32, 2),
        FieldSpec("timestamp_ms", "ts", Kind.U64, 3),
        FieldSpec("request_id", "rid", Kind.U32, 4),
        FieldSpec("flags", "fl", Kind.U8, 5, wire_bits=32),
        FieldSpec("content_type", "ct", Kind.U8, 6, wire_bits=32),
        FieldSpec("content_length", "len", Kind.U32, 7),
        FieldSpec("content", "body", Kind.BYTES, 8),
    ),
    length_checks=(("content_length", "content"),),
)

ATTACHMENT_MANIFEST_SCHEMA = MessageSchema(
    name="AttachmentManifest",
    pb_package="gtp",
    fields=(
        FieldSpec("attachment_id", "aid", Kind.U64, 1),
        FieldSpec("filename", "name", Kind.TEXT, 2),
        FieldSpec("mime_type", "mime", Kind.TEXT, 3),
        FieldSpec("total_size", "size", Kind.U64, 4),
        FieldSpec("chunk_count", "nc", Kind.U32, 5),
        FieldSpec("sha256", "hash", Kind.BYTES, 6),
    ),
)

ATTACHMENT_CHUNK_SCHEMA = MessageSchema(
    name="AttachmentChunk",
    pb_package="gtp",
    fields=(
        FieldSpec("attachment_id", "aid", Kind.U64, 1),
        FieldSpec("chunk_index", "idx", Kind.U32, 2),
        FieldSpec("chunk_count", "nc", Kind.U32, 3),
        FieldSpec("data", "data", Kind.BYTES, 4),
    ),
)

register_protobuf([GTP_MESSAGE_SCHEMA, ATTACHMENT_MANIFEST_SCHEMA, ATTACHMENT_CHUNK_SCHEMA])


@dataclass(frozen=True)
class GtpMessage(PayloadMessage):
    """A GTP text message envelope (gtp_rfc §4).

    ``content_length`` defaults to ``len(content)``; an explicit different value is kept as given
    (to craft bad messages) and is rejected by every decoder.
    """

    SCHEMA: ClassVar[MessageSchema] = GTP_MESSAGE_SCHEMA

    message_id: int
    sender_id: int
    timestamp_ms: int = 0
    request_id: int = 0
    flags: int = 0
    content_type: int = GtpContentType.PLAIN
    content_length: Optional[int] = None  # type: ignore[assignment]
    content: bytes = b""

    def __post_init__(self) -> None:
        if isinstance(self.content, (bytearray, memoryview)):
            object.__setattr__(self, "content", bytes(self.content))
        if self.content_length is None and isinstance(self.content, bytes):
            object.__setattr__(self, "content_length", len(self.content))
        for name in ("flags", "content_type"):  # IntEnum/IntFlag members → plain ints
            v = getattr(self, name)
            if isinstance(v, int) and not isinstance(v, bool) and type(v) is not int:
                object.__setattr__(self, name, int(v))
        validate_fields(self.SCHEMA, self)

    @classmethod
    def plain(cls, sender_id: int, message_id: int, text: str) -> "GtpMessage":
        """The message the reference's ``GtpClient.send`` builds: UTF-8 body, ``fl`` = URGENT
        (0x01), ``ct`` = PLAIN, ``ts`` = 0, ``rid`` = 0."""
        return cls(message_id=message_id, sender_id=sender_id, flags=GtpFlags.URGENT,
                   content_type=GtpContentType.PLAIN, content=text.encode("utf-8"))

    @property
    def text(self) -> Optional[str]:
        """The body as text when it is valid UTF-8, else ``None``."""
        try:
            return self.content.decode("utf-8")
        except UnicodeDecodeError:
            return None

    @property
    def kind(self) -> Optional[GtpContentType]:
        """``content_type`` as a registry member, ``None`` for unregistered values."""
        try:
            return GtpContentType(self.content_type)
        except ValueError:
            return None


@dataclass(frozen=True)
class AttachmentManifest(PayloadMessage):
    """Describes an attachment sent in chunks (gtp_rfc §6); the reference does not check the
    ``hash`` length on decode, neither do we (:meth:`verify` does)."""

    SCHEMA: ClassVar[MessageSchema] = ATTACHMENT_MANIFEST_SCHEMA

    attachment_id: int
    filename: str
    mime_type: str
    total_size: int
    chunk_count: int
    sha256: bytes

    def __post_init__(self) -> None:
        validate_fields(self.SCHEMA, self)

    def verify(self, data: bytes) -> bool:
        """True when *data* has the declared size and SHA-256."""
        return len(data) == self.total_size and hashlib.sha256(data).digest() == self.sha256


@dataclass(frozen=True)
class AttachmentChunk(PayloadMessage):
    """One chunk of an attachment (gtp_rfc §6); ``chunk_index`` is zero-based."""

    SCHEMA: ClassVar[MessageSchema] = ATTACHMENT_CHUNK_SCHEMA

    attachment_id: int
    chunk_index: int
    chunk_count: int
    data: bytes

    def __post_init__(self) -> None:
        validate_fields(self.SCHEMA, self)


def split_attachment(attachment_id: int, filename: str, mime_type: str, data: bytes,
                     chunk_size: int = DEFAULT_CHUNK_SIZE
                     ) -> Tuple[AttachmentManifest, List[AttachmentChunk]]:
    """Manifest + chunks for *data*, as the reference's ``AttachmentSender::new`` makes them
    (chunk size at least 1; empty data gives zero chunks)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UsageError("attachment data must be bytes", vid="GTP-ATTACHMENT-INPUT")
    data = bytes(data)
    size = max(int(chunk_size), 1)
    parts = [data[i:i + size] for i in range(0, len(data), size)]
    manifest = AttachmentManifest(attachment_id, filename, mime_type, len(data), len(parts),
                                  hashlib.sha256(data).digest())
    chunks = [AttachmentChunk(attachment_id, i, len(parts), p) for i, p in enumerate(parts)]
    return manifest, chunks
