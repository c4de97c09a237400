"""The ``ratchet_tree`` extension body (RFC 9420 §12.4.3.3): decoded (``nodes.RatchetTree``),
built into a tree for a cipher suite (``tree.RatchetTree``: node types by position, non-empty),
then hashed and checked (§7.8 tree hash, §7.9 parent hashes, §7.1 structure).

Input: a selector byte (``% 3`` → suite 1/2/3), then the body. Oracle: an accepted body encodes
back to its input.
"""
from __future__ import annotations

from gbp_lab.core.mls.messages import RatchetTree as RatchetTreeExtension
from gbp_lab.core.mls.tree import RatchetTree

from ..common import Cursor, Limits
from .mls_oracle import round_trip

LIMITS = Limits(cpu_seconds=2.0)
MAX_LEN = 16384
SUITES = (1, 2, 3)


def check(data: bytes) -> None:
    cur = Cursor(data)
    suite = SUITES[cur.u8() % len(SUITES)]
    body = cur.rest()
    ext = round_trip(RatchetTreeExtension, body)
    tree = RatchetTree.from_extension_body(ext, suite)
    tree.tree_hash()
    tree.verify_structure()
    tree.verify_parent_hashes()
