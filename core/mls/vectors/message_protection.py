"""Checker for ``message-protection.json`` (RFC 9420 §6.1–§6.3).

GroupContext from the case (no extensions), secret tree over 2 leaves, sender = leaf 1. For the
proposal, the commit and the application data:

* the given ``*_pub`` MLSMessage (proposal, commit) decodes, re-encodes to the same bytes, passes
  the membership tag and signature checks and carries the raw value; a PublicMessage we create
  from the raw value verifies too; application data is refused as a PublicMessage;
* the given ``*_priv`` MLSMessage decodes, re-encodes, unprotects with the secret tree and the
  sender data secret, verifies with ``signature_pub`` and carries the raw value; a PrivateMessage
  we protect from the raw value (fresh sender tree, padding) unprotects with a fresh receiver tree.
"""
from __future__ import annotations

from typing import Any, Optional

from . import VectorMismatch, body_as, expect, unhex
from ...errors import UsageError
from ..framing import (AuthenticatedContent, FramedContent, MLSMessage, PrivateMessage, PublicMessage,
                       Sender, create_private_message, create_public_message, unprotect_and_verify,
                       unprotect_public_message)
from ..registries import ContentType, WireFormat
from ..schedule import GroupContext
from ..secret_tree import SecretTree
from ..suites import CipherSuite

SENDER = 1


def _sig_priv(cs: CipherSuite, case: dict[str, Any]) -> bytes:
    """The vector's signature private key; ECDSA scalars may come without leading zero bytes
    (P-521 keys of 65 bytes occur), so left-pad to the scheme's fixed length."""
    priv = unhex(case["signature_priv"])
    return priv.rjust(cs.signature_private_key_length, b"\x00")


def _check_pub(cs: CipherSuite, case: dict[str, Any], name: str, ctype: ContentType, raw: bytes,
               gc: GroupContext, conf_tag: Optional[bytes]) -> AuthenticatedContent:
    data = unhex(case[f"{name}_pub"])
    m = MLSMessage.from_bytes(data)
    expect(f"{name}_pub wire_format", m.wire_format, WireFormat.MLS_PUBLIC_MESSAGE)
    expect(f"{name}_pub round trip", m.to_bytes(), case[f"{name}_pub"])
    ac = unprotect_public_message(cs, body_as(m.message, PublicMessage, f"{name}_pub"),
                                  unhex(case["signature_pub"]), gc,
                                  membership_key=unhex(case["membership_key"]))
    expect(f"{name}_pub body", ac.content.body, raw)
    expect(f"{name}_pub sender", ac.content.sender, Sender.member(SENDER))
    mine = create_public_message(cs, _content(case, ctype, raw), _sig_priv(cs, case), gc,
                                 membership_key=unhex(case["membership_key"]),
                                 confirmation_tag=conf_tag)
    again = body_as(MLSMessage.from_bytes(MLSMessage.public(mine).to_bytes()).message, PublicMessage,
                    f"{name} own PublicMessage")
    ac2 = unprotect_public_message(cs, again, unhex(case["signature_pub"]), gc,
                                   membership_key=unhex(case["membership_key"]))
    expect(f"{name} own PublicMessage body", ac2.content.body, raw)
    return ac


def _content(case: dict[str, Any], ctype: ContentType, raw: bytes) -> FramedContent:
    return FramedContent(unhex(case["group_id"]), case["epoch"], Sender.member(SENDER), b"",
                         ctype, raw)


def _check_priv(cs: CipherSuite, case: dict[str, Any], name: str, ctype: ContentType, raw: bytes,
                gc: GroupContext, conf_tag: Optional[bytes]) -> None:
    data = unhex(case[f"{name}_priv"])
    m = MLSMessage.from_bytes(data)
    expect(f"{name}_priv wire_format", m.wire_format, WireFormat.MLS_PRIVATE_MESSAGE)
    expect(f"{name}_priv round trip", m.to_bytes(), case[f"{name}_priv"])
    sig_pub = unhex(case["signature_pub"])
    enc, sds = unhex(case["encryption_secret"]), unhex(case["sender_data_secret"])
    ac = unprotect_and_verify(cs, body_as(m.message, PrivateMessage, f"{name}_priv"), SecretTree(cs, enc, 2),
                              sds, gc, lambda leaf: sig_pub)
    expect(f"{name}_priv body", ac.content.body, raw)
    expect(f"{name}_priv sender", ac.content.sender, Sender.member(SENDER))
    sender_tree, receiver_tree = SecretTree(cs, enc, 2), SecretTree(cs, enc, 2)
    for padding in (0, 7):
        mine = create_private_message(cs, _content(case, ctype, raw), _sig_priv(cs, case),
                                      gc, sender_tree, sds, confirmation_tag=conf_tag,
                                      padding=padding)
        again = body_as(MLSMessage.from_bytes(MLSMessage.private(mine).to_bytes()).message,
                        PrivateMessage, f"{name} own PrivateMessage")
        ac2 = unprotect_and_verify(cs, again, receiver_tree, sds, gc, lambda leaf: sig_pub)
        expect(f"{name} own PrivateMessage body (padding {padding})", ac2.content.body, raw)
        expect(f"{name} own PrivateMessage confirmation tag", ac2.auth.confirmation_tag, conf_tag)


def check(case: dict[str, Any]) -> None:
    cs = CipherSuite.get(case["cipher_suite"])
    gc = GroupContext(cs.id, unhex(case["group_id"]), case["epoch"], unhex(case["tree_hash"]),
                      unhex(case["confirmed_transcript_hash"]))
    _check_pub(cs, case, "proposal", ContentType.PROPOSAL, unhex(case["proposal"]), gc, None)
    commit_ac = _check_pub(cs, case, "commit", ContentType.COMMIT, unhex(case["commit"]), gc,
                           b"\x00" * cs.hash_length)
    tag = commit_ac.auth.confirmation_tag
    _check_priv(cs, case, "proposal", ContentType.PROPOSAL, unhex(case["proposal"]), gc, None)
    _check_priv(cs, case, "commit", ContentType.COMMIT, unhex(case["commit"]), gc, tag)
    _check_priv(cs, case, "application", ContentType.APPLICATION, unhex(case["application"]), gc, None)
    try:
        create_public_message(cs, _content(case, ContentType.APPLICATION, unhex(case["application"])),
                              _sig_priv(cs, case), gc,
                              membership_key=unhex(case["membership_key"]))
    except UsageError:
        pass
    else:
        raise VectorMismatch("application data was accepted as a PublicMessage")
