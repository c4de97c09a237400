"""Checker for ``tree-validation.json`` (mlswg/mls-implementations ``test-vectors.md``).

Each case: a ratchet tree (``tree``), the ``group_id`` it belongs to, the tree hash of every node
(``tree_hashes``) and the resolution of every node (``resolutions``). Verification (RFC 9420 §4.1.1,
§7.8, §7.9.2, §12.4.3.1):

* the tree decodes and re-encodes to the same bytes;
* the tree hash of each node and the resolution of each node match;
* the tree is valid: parent-hash valid, leaf signatures (with ``group_id``), unique keys,
  consistent unmerged leaves.
"""
from __future__ import annotations

from typing import Any

from ..tree import RatchetTree
from . import expect, unhex


def check(case: dict[str, Any]) -> None:
    suite = case["cipher_suite"]
    raw = unhex(case["tree"])
    tree = RatchetTree.from_bytes(raw, suite)
    expect("tree re-encoding", tree.to_bytes(), case["tree"])
    expect("number of nodes", tree.n_nodes, len(case["tree_hashes"]))
    for i, want in enumerate(case["tree_hashes"]):
        expect(f"tree_hash[{i}]", tree.tree_hash(i), want)
    for i, want in enumerate(case["resolutions"]):
        expect(f"resolution[{i}]", tree.resolution(i), want)
    tree.validate(unhex(case["group_id"]))
