"""Checker for ``messages.json`` (mls-implementations ``test-vectors.md``, "Messages").

Every field holds one serialised structure; each must decode and re-encode to the identical bytes.
The public/private message fields are MLSMessages whose envelopes and bodies come from
``framing.py``; the Proposal / Commit inside a PublicMessage (kept there as raw bytes) is decoded
again with this package's structures and must re-encode to the same bytes.
"""
from __future__ import annotations

from ..commit import Commit
from ..mls_message import MLSMessage
from ..nodes import RatchetTree
from ..proposals import (Add, ExternalInit, GroupContextExtensions, PreSharedKey, Proposal, ReInit,
                         Remove, Update)
from ..registries import ContentType, WireFormat
from ..welcome import GroupSecrets
from . import VectorMismatch, expect

#: field → (structure, wire format an MLSMessage field must carry, or None for a bare structure)
FIELDS = {
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


def check(case: dict) -> None:
    missing = set(FIELDS) - set(case)
    if missing:
        raise VectorMismatch(f"case lacks fields {sorted(missing)}")
    for name, (cls, wire_format) in FIELDS.items():
        data = bytes.fromhex(case[name])
        obj = cls.from_bytes(data)
        if wire_format is not None:
            expect(f"{name}.wire_format", obj.wire_format, wire_format)
        expect(name, obj.to_bytes(), case[name])
        if wire_format == WireFormat.MLS_PUBLIC_MESSAGE:
            content = obj.message.content
            inner = {ContentType.PROPOSAL: Proposal, ContentType.COMMIT: Commit}.get(content.content_type)
            if inner is not None:
                expect(f"{name}.content", inner.from_bytes(content.body).to_bytes(), content.body.hex())
