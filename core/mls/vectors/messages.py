"""Checker for ``messages.json`` (mls-implementations ``test-vectors.md``, "Messages").

Every field holds one serialised structure; each must decode and re-encode to the identical bytes.
The public/private message fields are MLSMessages whose envelopes and bodies come from
``framing.py``; the Proposal / Commit inside a PublicMessage (kept there as raw bytes) is decoded
again with this package's structures and must re-encode to the same bytes.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Protocol, Tuple

from ..commit import Commit
from ..framing import PublicMessage
from ..mls_message import MLSMessage
from ..nodes import RatchetTree
from ..proposals import (Add, ExternalInit, GroupContextExtensions, PreSharedKey, Proposal, ReInit,
                         Remove, Update)
from ..registries import ContentType, WireFormat
from ..welcome import GroupSecrets
from . import VectorMismatch, body_as, expect


class Encodable(Protocol):
    """A decoded structure: it re-encodes to its TLS presentation."""

    def to_bytes(self) -> bytes: ...


class Decodable(Protocol):
    """A structure class: ``from_bytes(data)`` decodes a whole input."""

    def from_bytes(self, data: bytes) -> Encodable: ...


#: field → (structure, wire format an MLSMessage field must carry, or None for a bare structure)
FIELDS: Dict[str, Tuple[Decodable, Optional[WireFormat]]] = {
    "mls_welcome": (MLSMessage, WireFormat.MLS_WELCOME),
    "mls_group_info": (MLSMessage, WireFormat.MLS_GROUP_INFO),
    "mls_key_package": (MLSMessage, WireFormat.MLS_KEY_PACKAGE),
    "ratchet_tree": (RatchetTree, None),
    "group_secrets": (GroupSecrets, None),
    "add_proposal": (Add, None),
    "update_proposal": (Update, None),
    "remove_proposal": (Remove, None),
    "pre_shared_key_proposal": (PreSharedKey, None),
    "re_init_proposal": (ReInit, None),
    "external_init_proposal": (ExternalInit, None),
    "group_context_extensions_proposal": (GroupContextExtensions, None),
    "commit": (Commit, None),
    "public_message_application": (MLSMessage, WireFormat.MLS_PUBLIC_MESSAGE),
    "public_message_proposal": (MLSMessage, WireFormat.MLS_PUBLIC_MESSAGE),
    "public_message_commit": (MLSMessage, WireFormat.MLS_PUBLIC_MESSAGE),
    "private_message": (MLSMessage, WireFormat.MLS_PRIVATE_MESSAGE),
}

#: content type → structure of a PublicMessage body kept as raw bytes
_INNER: Dict[ContentType, Decodable] = {ContentType.PROPOSAL: Proposal, ContentType.COMMIT: Commit}


def check(case: dict[str, Any]) -> None:
    missing = set(FIELDS) - set(case)
    if missing:
        raise VectorMismatch(f"case lacks fields {sorted(missing)}")
    for name, (cls, wire_format) in FIELDS.items():
        data = bytes.fromhex(case[name])
        obj = cls.from_bytes(data)
        msg = None if wire_format is None else body_as(obj, MLSMessage, name)
        if msg is not None:
            expect(f"{name}.wire_format", msg.wire_format, wire_format)
        expect(name, obj.to_bytes(), case[name])
        if msg is not None and wire_format == WireFormat.MLS_PUBLIC_MESSAGE:
            content = body_as(msg.message, PublicMessage, name).content
            inner = _INNER.get(content.content_type)
            if inner is not None:
                expect(f"{name}.content", inner.from_bytes(content.body).to_bytes(), content.body.hex())
