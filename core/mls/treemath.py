"""Array-based left-balanced binary tree arithmetic (RFC 9420 §4.1, §7.8, Appendix C).

Nodes of a tree with ``n`` leaves are numbered ``0 … 2n-2`` left to right; leaves sit at even
indices (leaf ``i`` is node ``2i``), parents at odd ones; a node's *level* is its number of trailing
one bits. RFC 9420 trees always have a power-of-two number of leaves (§7.8), so every function that
takes ``n_leaves`` and walks upward requires one.

Indices are typed: :class:`LeafIndex` and :class:`NodeIndex` are distinct ``int`` subclasses. The
functions accept plain ``int`` for node indices but refuse a :class:`LeafIndex` where a node is
expected (and vice versa), which catches the classic ``2*i`` slip.

API: :func:`log2`, :func:`level`, :func:`node_width`, :func:`root`, :func:`left`, :func:`right`,
:func:`parent`, :func:`sibling`, :func:`direct_path`, :func:`copath`, :func:`is_leaf`,
:func:`leaf_to_node`, :func:`node_to_leaf`, :func:`common_ancestor`, :func:`is_ancestor`,
:func:`subtree_leaves`, :func:`check_node`, :func:`check_leaf`.

Out-of-range arguments raise :class:`TreeMathError` (a :class:`UsageError`, vid
``MLS-TREEMATH-RANGE``): indices coming from a peer must be range-checked by the decoder first (use
:func:`check_leaf` / :func:`check_node` with the decoder's own error there).
"""
from __future__ import annotations

from typing import List, Tuple

from ..errors import UsageError


class TreeMathError(UsageError):
    """A tree-math function was called with an index or size outside the tree."""

    default_vid = "MLS-TREEMATH-RANGE"


class LeafIndex(int):
    """Index of a leaf among the leaves (``0 … n_leaves-1``); RFC 9420 ``uint32 leaf_index``."""

    __slots__ = ()

    def __new__(cls, value: int) -> "LeafIndex":
        if isinstance(value, NodeIndex):
            raise TreeMathError("a NodeIndex is not a LeafIndex; use node_to_leaf()", vid="MLS-TREEMATH-TYPE")
        v = int(value)
        if not 0 <= v < 1 << 32:
            raise TreeMathError(f"leaf index {v} out of uint32 range")
        return super().__new__(cls, v)

    def __repr__(self) -> str:
        return f"LeafIndex({int(self)})"

    def __str__(self) -> str:  # messages and f-strings show the number, as for a plain int
        return int.__repr__(self)


class NodeIndex(int):
    """Index of a node in the array representation (``0 … node_width(n)-1``)."""

    __slots__ = ()

    def __new__(cls, value: int) -> "NodeIndex":
        if isinstance(value, LeafIndex):
            raise TreeMathError("a LeafIndex is not a NodeIndex; use leaf_to_node()", vid="MLS-TREEMATH-TYPE")
        v = int(value)
        if not 0 <= v < 1 << 32:
            raise TreeMathError(f"node index {v} out of uint32 range")
        return super().__new__(cls, v)

    def __repr__(self) -> str:
        return f"NodeIndex({int(self)})"

    def __str__(self) -> str:  # messages and f-strings show the number, as for a plain int
        return int.__repr__(self)


# ------------------------------------------------------------------------------------------
# basics
# ------------------------------------------------------------------------------------------
def log2(x: int) -> int:
    """Largest ``k`` with ``2**k <= x`` (0 for ``x == 0``), as in RFC 9420 Appendix C."""
    if x < 0:
        raise TreeMathError(f"log2 of negative {x}")
    return max(int(x).bit_length() - 1, 0)


def level(x: int) -> int:
    """Level of node ``x``: its count of trailing one bits (leaves are level 0)."""
    x = NodeIndex(x)
    k = 0
    while (x >> k) & 1:
        k += 1
    return k


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def node_width(n_leaves: int) -> int:
    """Number of nodes in a tree of ``n_leaves`` leaves: ``2(n-1)+1`` (0 for an empty tree)."""
    if n_leaves < 0 or n_leaves > 1 << 31:
        raise TreeMathError(f"n_leaves {n_leaves} out of range")
    return 0 if n_leaves == 0 else 2 * (n_leaves - 1) + 1


def _check_n(n_leaves: int) -> int:
    if not _is_pow2(n_leaves) or n_leaves > 1 << 31:
        raise TreeMathError(f"n_leaves must be a power of two (RFC 9420 §7.8), got {n_leaves}",
                            vid="MLS-TREEMATH-WIDTH")
    return int(n_leaves)


def root(n_leaves: int) -> NodeIndex:
    """Root node of a tree of ``n_leaves`` leaves (``n_leaves`` ≥ 1)."""
    if n_leaves < 1:
        raise TreeMathError("an empty tree has no root")
    w = node_width(n_leaves)
    return NodeIndex((1 << log2(w)) - 1)


def check_node(x: int, n_leaves: int) -> NodeIndex:
    """``x`` as a :class:`NodeIndex` if it lies inside a tree of ``n_leaves`` leaves."""
    x = NodeIndex(x)
    if x >= node_width(n_leaves):
        raise TreeMathError(f"node {int(x)} outside a tree of {n_leaves} leaves")
    return x


def check_leaf(i: int, n_leaves: int) -> LeafIndex:
    """``i`` as a :class:`LeafIndex` if ``i < n_leaves``."""
    i = LeafIndex(i)
    if i >= n_leaves:
        raise TreeMathError(f"leaf {int(i)} outside a tree of {n_leaves} leaves")
    return i


def is_leaf(x: int) -> bool:
    """Leaves have even node indices."""
    return NodeIndex(x) % 2 == 0


def leaf_to_node(i: int) -> NodeIndex:
    """Node index of leaf ``i`` (``2i``)."""
    return NodeIndex(2 * LeafIndex(i))


def node_to_leaf(x: int) -> LeafIndex:
    """Leaf index of leaf node ``x`` (``x/2``); a parent node is an error."""
    x = NodeIndex(x)
    if x % 2:
        raise TreeMathError(f"node {int(x)} is a parent node, not a leaf", vid="MLS-TREEMATH-NOT-LEAF")
    return LeafIndex(x // 2)


# ------------------------------------------------------------------------------------------
# navigation
# ------------------------------------------------------------------------------------------
def left(x: int) -> NodeIndex:
    """Left child of parent node ``x``."""
    k = level(x)
    if k == 0:
        raise TreeMathError(f"leaf node {int(x)} has no children", vid="MLS-TREEMATH-LEAF")
    return NodeIndex(x ^ (0x01 << (k - 1)))


def right(x: int) -> NodeIndex:
    """Right child of parent node ``x``."""
    k = level(x)
    if k == 0:
        raise TreeMathError(f"leaf node {int(x)} has no children", vid="MLS-TREEMATH-LEAF")
    return NodeIndex(x ^ (0x03 << (k - 1)))


def parent(x: int, n_leaves: int) -> NodeIndex:
    """Parent of node ``x`` in a tree of ``n_leaves`` leaves; the root has none."""
    _check_n(n_leaves)
    x = check_node(x, n_leaves)
    if x == root(n_leaves):
        raise TreeMathError("the root has no parent", vid="MLS-TREEMATH-ROOT")
    k = level(x)
    b = (x >> (k + 1)) & 0x01
    return NodeIndex((x | (1 << k)) ^ (b << (k + 1)))


def sibling(x: int, n_leaves: int) -> NodeIndex:
    """The other child of ``x``'s parent."""
    p = parent(x, n_leaves)
    return right(p) if x < p else left(p)


def direct_path(x: int, n_leaves: int) -> List[NodeIndex]:
    """Parents of ``x`` from its parent up to and including the root (empty for the root)."""
    _check_n(n_leaves)
    x = check_node(x, n_leaves)
    r = root(n_leaves)
    out: List[NodeIndex] = []
    while x != r:
        x = parent(x, n_leaves)
        out.append(x)
    return out


def copath(x: int, n_leaves: int) -> List[NodeIndex]:
    """Siblings of ``x`` and of each node of its direct path except the root (§4.1)."""
    d = direct_path(x, n_leaves)
    if not d:
        return []
    path = [NodeIndex(x)] + d[:-1]
    return [sibling(y, n_leaves) for y in path]


def common_ancestor(x: int, y: int) -> NodeIndex:
    """Lowest common ancestor of nodes ``x`` and ``y`` (a node is its own ancestor)."""
    x, y = NodeIndex(x), NodeIndex(y)
    lx, ly = level(x) + 1, level(y) + 1
    if lx <= ly and x >> ly == y >> ly:
        return y
    if ly <= lx and x >> lx == y >> lx:
        return x
    xn, yn, k = int(x), int(y), 0
    while xn != yn:
        xn, yn, k = xn >> 1, yn >> 1, k + 1
    return NodeIndex((xn << k) + (1 << (k - 1)) - 1)


def subtree_leaves(x: int) -> Tuple[LeafIndex, LeafIndex]:
    """Leaves covered by node ``x`` as a half-open range ``(first, end)``."""
    k = level(x)
    first = (int(x) >> k) << k  # clear the k trailing ones → leftmost leaf node
    return LeafIndex(first // 2), LeafIndex(first // 2 + (1 << k))


def is_ancestor(a: int, x: int) -> bool:
    """True when node ``a`` is ``x`` or lies above it."""
    first, end = subtree_leaves(a)
    lo, hi = subtree_leaves(x)
    return first <= lo and hi <= end and level(a) >= level(x)


__all__ = ["TreeMathError", "LeafIndex", "NodeIndex", "log2", "level", "node_width", "root",
           "check_node", "check_leaf", "is_leaf", "leaf_to_node", "node_to_leaf", "left", "right",
           "parent", "sibling", "direct_path", "copath", "common_ancestor", "subtree_leaves",
           "is_ancestor"]
