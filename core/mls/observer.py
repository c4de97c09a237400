"""Open a PrivateMessage as an observer: with the epoch's secrets (a key log) but without the
group's ratchet tree, so without its size (RFC 9420 §6.3.2, §9).

A member decrypts with the secret tree of its own ratchet tree. An observer holding only
``sender_data_secret`` and ``encryption_secret`` (``MLS_SENDER_DATA_SECRET`` /
``MLS_ENCRYPTION_SECRET`` key-log records) does not know the tree's leaf count. It does not need
it exactly:

* the sender data (§6.3.2) is keyed by ``sender_data_secret`` and a ciphertext sample only, so it
  opens without the tree and names the sender's ``leaf_index`` and ``generation``;
* the secret tree (§9) has the shape of the ratchet tree, whose array representation is padded
  to a full binary tree (§7.1 / Appendix C: ``root(n)`` is that of the next power of two). The
  leaf secrets therefore depend only on the padded width ``2^k``, not on ``n``;
* the ratchet tree holds the sender, so ``2^k > leaf_index``.

The one policy (:func:`open_private_message`): try the widths ``2^k`` from the smallest that
holds the sender's leaf, doubling, up to :data:`MAX_OBSERVED_LEAVES` (inclusive). The first width
whose content AEAD opens wins. Only a content-AEAD failure moves on to the next width; every other
error (malformed sender data or content, a generation out of range) does not depend on the width
and is raised at once.

Errors: :class:`~.framing.SenderDataDecryptError` (``MLS-SENDER-DATA-DECRYPT``: the
sender-data secret is wrong, no width can help) and :class:`NoTreeSizeOpensError`
(``MLS-OBSERVER-TREE-SIZE``: no width up to the bound opens the content — the encryption secret
is wrong or the tree is wider than the bound); both are :class:`~gbp_lab.core.errors.DecryptError`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .framing import (ContentDecryptError, FramedContent, FramedContentAuthData, PrivateMessage,
                      ReadBody, decrypt_sender_data, open_content)
from .secret_tree import DEFAULT_MAXIMUM_FORWARD_DISTANCE, SecretTree
from .secrets import BytesLike
from .suites import CipherSuite

#: The widest tree an observer tries: 2^20 leaves (21 widths at most; a try costs one
#: ExpandWithLabel pair per tree level plus the sender's ratchet up to its generation).
MAX_OBSERVED_LEAVES = 1 << 20


class NoTreeSizeOpensError(ContentDecryptError):
    """The sender data opened, but the content opens under no padded tree width up to the bound
    (wrong ``encryption_secret``, or a tree wider than :data:`MAX_OBSERVED_LEAVES`)."""

    default_vid = "MLS-OBSERVER-TREE-SIZE"


@dataclass(frozen=True)
class OpenedPrivateMessage:
    """A PrivateMessage opened by :func:`open_private_message` (signature not verified: an
    observer has no sender key).

    ``content`` is the FramedContent (sender = member ``leaf_index``), ``auth`` its signature and
    confirmation tag, ``generation`` the sender's ratchet generation and ``leaves`` the padded tree
    width (a power of two) whose secret tree opened it."""

    content: FramedContent
    auth: FramedContentAuthData
    leaf_index: int
    generation: int
    leaves: int


def candidate_widths(leaf_index: int, max_leaves: int = MAX_OBSERVED_LEAVES):
    """The padded tree widths the policy tries for a sender at ``leaf_index``: ``2^k`` from the
    smallest greater than ``leaf_index`` up to ``max_leaves`` (RFC 9420 §9, Appendix C)."""
    n = 1
    while n <= leaf_index:
        n *= 2
    while n <= max_leaves:
        yield n
        n *= 2


def open_private_message(message: PrivateMessage, suite: CipherSuite, sender_data_secret: BytesLike,
                         encryption_secret: BytesLike, *, max_leaves: int = MAX_OBSERVED_LEAVES,
                         maximum_forward_distance: int = DEFAULT_MAXIMUM_FORWARD_DISTANCE,
                         read_body: Optional[ReadBody] = None) -> OpenedPrivateMessage:
    """Decrypt ``message`` with the epoch's ``sender_data_secret`` and ``encryption_secret`` when
    the group's size is unknown (the policy is in the module docstring; RFC 9420 §6.3.2, §9).

    ``maximum_forward_distance`` bounds the sender's generation (as a receiver's secret tree does,
    §9.2). Raises :class:`~.framing.SenderDataDecryptError`, :class:`NoTreeSizeOpensError`, or the
    width-independent error of the first try (a :class:`~gbp_lab.core.errors.GbpLabError`)."""
    sd = decrypt_sender_data(suite, message, sender_data_secret)
    last: Optional[ContentDecryptError] = None
    tried = []
    for n in candidate_widths(sd.leaf_index, max_leaves):
        tree = SecretTree(suite, encryption_secret, n, maximum_forward_distance=maximum_forward_distance)
        try:
            ac = open_content(suite, message, sd, tree, read_body=read_body)
        except ContentDecryptError as exc:
            last = exc
            tried.append(n)
            continue
        return OpenedPrivateMessage(ac.content, ac.auth, sd.leaf_index, sd.generation, n)
    span = f"{tried[0]} … {tried[-1]}" if tried else "none"
    raise NoTreeSizeOpensError(
        f"the content of leaf {sd.leaf_index}'s generation {sd.generation} opens under no padded "
        f"tree width (tried {span} leaves): wrong encryption secret or a tree wider than "
        f"{max_leaves} leaves", where=f"leaf {sd.leaf_index} generation {sd.generation}") from last


__all__ = ["open_private_message", "OpenedPrivateMessage", "NoTreeSizeOpensError",
           "candidate_widths", "MAX_OBSERVED_LEAVES"]
