"""Checker for ``tree-operations.json`` (mlswg/mls-implementations ``test-vectors.md``).

Each case: a ratchet tree (``tree_before``) and its hash, one proposal (Add, Update or Remove)
from leaf ``proposal_sender``, and the expected tree and hash after applying it (RFC 9420 §7.7,
§12.1.1–§12.1.3: Add fills the leftmost blank leaf, extending the tree, and is recorded as unmerged
on the direct path; Update replaces the sender's leaf and blanks its direct path; Remove blanks the
leaf and its direct path, then truncates).
"""
from __future__ import annotations

from typing import Any

from ..proposals import Proposal
from ..tree import RatchetTree
from . import expect, unhex


def check(case: dict[str, Any]) -> None:
    suite = case["cipher_suite"]
    tree = RatchetTree.from_bytes(unhex(case["tree_before"]), suite)
    expect("tree_before re-encoding", tree.to_bytes(), case["tree_before"])
    expect("tree_hash_before", tree.tree_hash(), case["tree_hash_before"])
    proposal = Proposal.from_bytes(unhex(case["proposal"]))
    expect("proposal re-encoding", proposal.to_bytes(), case["proposal"])
    tree.apply_proposal(proposal, case["proposal_sender"])
    expect("tree_after", tree.to_bytes(), case["tree_after"])
    expect("tree_hash_after (cached)", tree.tree_hash(), case["tree_hash_after"])
    fresh = RatchetTree.from_bytes(unhex(case["tree_after"]), suite)
    expect("tree_hash_after (fresh)", fresh.tree_hash(), case["tree_hash_after"])
