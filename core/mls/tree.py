"""The MLS ratchet tree (RFC 9420 §4.2, §7): nodes, resolutions, tree hash, parent hash, validity.

A :class:`RatchetTree` is the *public* state every member shares: a left-balanced binary tree kept
as an array (§4.2, Appendix C) whose even indices hold :class:`LeafNode`\\ s, odd indices
:class:`ParentNode`\\ s, and any entry may be blank (``None``). It is mutable group state, not a
decoded message; every mutation goes through a method so that the cached tree hashes stay true.

What lives here, by RFC section:

* §7.7 add a leaf in the leftmost blank slot (extending the tree), blank a direct path,
  remove a leaf and truncate; unmerged leaves;
* §4.1.1 / §7.1 resolution, filtered direct path, copath resolution;
* §7.8 tree hash, cached per node and invalidated along the direct path of a changed node;
* §7.9 parent hash (with the *original sibling tree hash*), §7.9.2 parent-hash validity;
* §7.3, §12.4.3.1 tree validation (leaf signatures, unique keys, unmerged-leaf consistency);
* §12.4.3.3 the ``ratchet_tree`` extension: ``optional<Node> ratchet_tree<V>`` with trailing
  blanks stripped.

Bad input raises :mod:`gbp_lab.core.errors` types with stable validation ids ``MLS-TREE-…``:
malformed bytes → :class:`DecodeError`, a tree that decodes but breaks an RFC rule →
:class:`TreeValidationError`, a leaf signature that does not verify → :class:`SignatureError`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union, cast

from ..errors import DecodeError, GbpLabError, ProtocolError, SignatureError, UsageError
from ..tls import Reader, Writer, encode_vec
from . import treemath as tm
from .leaf_node import LeafNode
from .nodes import Node as NodeStruct
from .nodes import ParentNode
from .nodes import RatchetTree as RatchetTreeExtension
from .registries import NodeType
from .signatures import Failure, PendingChecks
from .suites import CipherSuite

Node = Union[LeafNode, ParentNode]


@lru_cache(maxsize=65536)
def _dpath(x: int, n_leaves: int) -> Tuple[int, ...]:
    """:func:`.treemath.direct_path` as plain ints, memoised (it is on every hot path here)."""
    return tuple(int(p) for p in tm.direct_path(x, n_leaves))


# Plain-int forms of the treemath navigation used in the loops below (RFC 9420 Appendix C); the
# typed :mod:`.treemath` functions check and wrap every index, which dominated the tree walks.
def _lvl(x: int) -> int:
    """Level of node ``x``: its number of trailing one bits."""
    return (~x & (x + 1)).bit_length() - 1


def _left(x: int) -> int:
    return x ^ (1 << (_lvl(x) - 1))


def _right(x: int) -> int:
    return x ^ (3 << (_lvl(x) - 1))


# Typed indices (:class:`.treemath.LeafIndex` / :class:`.treemath.NodeIndex`) at the public
# surface: results are typed; arguments may be plain ints, but the wrong kind is refused (a
# NodeIndex where a leaf index is expected, or the reverse: the classic ``2*i`` slip).
def _as_leaf(i: int) -> tm.LeafIndex:
    """``i`` (in range by construction) as a LeafIndex, without the range check's cost."""
    return int.__new__(tm.LeafIndex, i)


def _as_node(x: int) -> tm.NodeIndex:
    return int.__new__(tm.NodeIndex, x)


def _leaf_arg(i: int) -> int:
    if type(i) is tm.NodeIndex:
        raise tm.TreeMathError(f"{i!r} is not a leaf index; use treemath.node_to_leaf()", vid="MLS-TREEMATH-TYPE")
    return i


def _node_arg(x: int) -> int:
    if type(x) is tm.LeafIndex:
        raise tm.TreeMathError(f"{x!r} is not a node index; use treemath.leaf_to_node()", vid="MLS-TREEMATH-TYPE")
    return x


_LEAF_TAG = bytes((NodeType.LEAF,))
_PARENT_TAG = bytes((NodeType.PARENT,))


class TreeValidationError(ProtocolError):
    """A ratchet tree that decodes but breaks a rule of RFC 9420 §7.9.2 / §12.4.3.1."""

    default_vid = "MLS-TREE-INVALID"


# ---------------------------------------------------------------------------------------------
# the tree
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Member:
    """One occupied leaf, for teaching views: leaf index, identity and keys."""

    leaf_index: int
    identity: Optional[bytes]
    encryption_key: bytes
    signature_key: bytes


class RatchetTree:
    """A ratchet tree for one cipher suite (RFC 9420 §7), with cached tree hashes (§7.8)."""

    __slots__ = ("suite", "_nodes", "_hash")

    def __init__(self, suite: Union[CipherSuite, int], nodes: Sequence[Optional[Node]] = ()) -> None:
        self.suite = suite if isinstance(suite, CipherSuite) else CipherSuite.get(suite)
        nodes = list(nodes)
        if nodes:
            n_leaves = 1
            while 2 * n_leaves - 1 < len(nodes):
                n_leaves *= 2
            nodes += [None] * (2 * n_leaves - 1 - len(nodes))
        self._nodes: List[Optional[Node]] = nodes
        self._hash: Dict[int, bytes] = {}
        for i, node in enumerate(nodes):
            if node is None:
                continue
            want = LeafNode if i % 2 == 0 else ParentNode
            if not isinstance(node, want):
                raise UsageError(f"node {i} must be a {want.__name__}", vid="MLS-TREE-NODE-TYPE")

    # -- construction / encoding (§12.4.3.3) ------------------------------------------------
    @classmethod
    def create(cls, suite: Union[CipherSuite, int], leaf: LeafNode) -> "RatchetTree":
        """A one-member tree (§11: the creator's leaf at index 0)."""
        return cls(suite, [leaf])

    @classmethod
    def decode(cls, r: Reader, suite: Union[CipherSuite, int]) -> "RatchetTree":
        """Read ``optional<Node> ratchet_tree<V>`` (§12.4.3.3) with :class:`.nodes.RatchetTree`.

        Beyond that structure's own checks (last entry non-blank), the list must be non-empty
        and each node's type must match its array position (leaves at even indices)."""
        return cls.from_extension_body(RatchetTreeExtension.decode(r), suite)

    @classmethod
    def from_extension_body(cls, ext: RatchetTreeExtension, suite: Union[CipherSuite, int]) -> "RatchetTree":
        """Build the tree from a decoded ``ratchet_tree`` extension body (e.g. out of a
        GroupInfo's extensions); :class:`DecodeError` if it is empty, ends with a blank or puts a
        node type at the wrong position."""
        if ext.nodes and ext.nodes[-1] is None:
            raise DecodeError("ratchet tree ends with a blank node", vid="MLS-TREE-TRAILING-BLANK",
                              where="ratchet_tree")
        if not ext.nodes:
            raise DecodeError("ratchet tree is empty", vid="MLS-TREE-EMPTY", where="ratchet_tree")
        nodes: List[Optional[Node]] = []
        for i, n in enumerate(ext.nodes):
            if n is None:
                nodes.append(None)
                continue
            want = NodeType.LEAF if i % 2 == 0 else NodeType.PARENT
            if n.node_type != want:
                raise DecodeError(f"node {i} is a {n.node_type.name.lower()} node at a "
                                  f"{want.name.lower()} position", vid="MLS-TREE-NODE-TYPE",
                                  where=f"ratchet_tree[{i}]")
            nodes.append(n.value)
        return cls(suite, nodes)

    @classmethod
    def from_bytes(cls, data: bytes, suite: Union[CipherSuite, int]) -> "RatchetTree":
        """Decode a complete ``ratchet_tree`` extension body; trailing bytes are rejected."""
        r = Reader(bytes(data), context="ratchet_tree")
        tree = cls.decode(r, suite)
        r.done("ratchet_tree")
        return tree

    def encode(self, w: Writer) -> None:
        """Write ``optional<Node> ratchet_tree<V>`` with trailing blank nodes stripped."""
        self.to_extension_body().encode(w)

    def to_extension_body(self) -> RatchetTreeExtension:
        """The ``ratchet_tree`` extension body (:class:`.nodes.RatchetTree`), trailing blanks stripped."""
        nodes = self._nodes
        end = len(nodes)
        while end and nodes[end - 1] is None:
            end -= 1
        return RatchetTreeExtension(tuple(None if n is None else NodeStruct(n) for n in nodes[:end]))

    def to_bytes(self) -> bytes:
        w = Writer()
        self.encode(w)
        return w.getvalue()

    def copy(self) -> "RatchetTree":
        t = RatchetTree.__new__(RatchetTree)
        t.suite = self.suite
        t._nodes = list(self._nodes)
        t._hash = dict(self._hash)
        return t

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RatchetTree):
            return NotImplemented
        return self.suite == other.suite and self._nodes == other._nodes

    def __repr__(self) -> str:
        return f"RatchetTree(suite={int(self.suite.id)}, leaves={self.n_leaves}, members={len(self.members())})"

    # -- shape ------------------------------------------------------------------------------
    @property
    def n_leaves(self) -> int:
        return (len(self._nodes) + 1) // 2

    @property
    def n_nodes(self) -> int:
        return len(self._nodes)

    @property
    def root(self) -> tm.NodeIndex:
        return tm.root(self.n_leaves)

    @property
    def nodes(self) -> Tuple[Optional[Node], ...]:
        return tuple(self._nodes)

    def node(self, index: int) -> Optional[Node]:
        """The node at array index ``index`` (a NodeIndex or int; a LeafIndex is refused)."""
        _node_arg(index)
        if not 0 <= index < len(self._nodes):
            raise UsageError(f"node {index} outside a tree of {len(self._nodes)} nodes", vid="MLS-TREE-INDEX")
        return self._nodes[index]

    def leaf(self, leaf_index: int) -> Optional[LeafNode]:
        """The LeafNode of leaf ``leaf_index`` (a LeafIndex or int; a NodeIndex is refused)."""
        _leaf_arg(leaf_index)
        if not 0 <= leaf_index < self.n_leaves:
            raise UsageError(f"leaf {leaf_index} outside a tree of {self.n_leaves} leaves", vid="MLS-TREE-INDEX")
        return self._nodes[2 * leaf_index]  # type: ignore[return-value]

    def leaves(self) -> Iterator[Tuple[tm.LeafIndex, LeafNode]]:
        """``(leaf_index, LeafNode)`` for each non-blank leaf."""
        for i in range(0, len(self._nodes), 2):
            node = self._nodes[i]
            if node is not None:
                yield _as_leaf(i // 2), cast(LeafNode, node)  # even indices hold leaves

    def members(self) -> List[Member]:
        """Occupied leaves with identity and keys (for teaching views and the lab)."""
        out = []
        for li, leaf in self.leaves():
            ident = getattr(leaf.credential, "identity", None)
            out.append(Member(li, ident, leaf.encryption_key, leaf.signature_key))
        return out

    def describe(self) -> List[Dict[str, object]]:
        """One row per node for teaching views and tables: index, kind, level, blank, leaf index,
        identity, encryption key, parent hash, unmerged leaves, tree hash (all bytes as hex)."""
        rows = []
        for i, node in enumerate(self._nodes):
            row: Dict[str, object] = {
                "node": i, "kind": "leaf" if i % 2 == 0 else "parent", "level": tm.level(i),
                "blank": node is None, "leaf_index": i // 2 if i % 2 == 0 else None,
                "identity": None, "encryption_key": None, "parent_hash": None, "unmerged_leaves": (),
                "tree_hash": self.tree_hash(i).hex(),
            }
            if node is not None:
                row["encryption_key"] = bytes(node.encryption_key).hex()
                ph = node.parent_hash
                row["parent_hash"] = None if ph is None else bytes(ph).hex()
                if i % 2 == 0:
                    row["identity"] = getattr(cast(LeafNode, node).credential, "identity", None)
                else:
                    row["unmerged_leaves"] = tuple(cast(ParentNode, node).unmerged_leaves)
            rows.append(row)
        return rows

    def direct_path(self, leaf_index: int) -> List[tm.NodeIndex]:
        """Parent nodes from leaf ``leaf_index`` up to the root (§4.1)."""
        return [_as_node(p) for p in _dpath(2 * _leaf_arg(leaf_index), self.n_leaves)]

    def copath(self, leaf_index: int) -> List[tm.NodeIndex]:
        """Siblings of leaf ``leaf_index`` and of its direct-path nodes below the root (§4.1)."""
        return tm.copath(2 * _leaf_arg(leaf_index), self.n_leaves)

    # -- mutation (§7.7, §12.1) -------------------------------------------------------------
    def _invalidate(self, index: int) -> None:
        h = self._hash
        h.pop(index, None)
        for x in _dpath(index, self.n_leaves):
            h.pop(x, None)

    def set_node(self, index: int, node: Optional[Node]) -> None:
        """Replace one node (``None`` blanks it); keeps the tree-hash cache consistent."""
        _node_arg(index)
        if node is not None and not isinstance(node, LeafNode if index % 2 == 0 else ParentNode):
            raise UsageError(f"wrong node type for index {index}", vid="MLS-TREE-NODE-TYPE")
        self.node(index)
        self._nodes[index] = node
        self._invalidate(index)

    def blank_path(self, leaf_index: int) -> None:
        """Blank the direct path of a leaf (not the leaf itself), §7.7."""
        for p in _dpath(2 * _leaf_arg(leaf_index), self.n_leaves):
            self._nodes[p] = None
            self._hash.pop(p, None)

    def extend(self) -> None:
        """Double the number of leaves (§7.7): the old root becomes the left child of a new root."""
        if not self._nodes:
            self._nodes = [None]
            return
        n = len(self._nodes)
        self._nodes += [None] * (n + 1)
        # hashes of the old nodes are unchanged except that none of them is the root any more
        self._hash.pop(n, None)

    def truncate(self) -> None:
        """While the right half is all blank, drop it and the root (§7.7)."""
        while self.n_leaves > 1:
            half = self.n_leaves // 2
            if any(self._nodes[i] is not None for i in range(2 * half - 1, len(self._nodes))):
                return
            for i in range(2 * half - 1, len(self._nodes)):
                self._hash.pop(i, None)
            del self._nodes[2 * half - 1:]

    def add_leaf(self, leaf: LeafNode) -> tm.LeafIndex:
        """Add ``leaf`` in the leftmost blank leaf slot, extending if there is none (§12.1.1).

        The new leaf index is added to the ``unmerged_leaves`` of every non-blank parent node on
        its direct path. Returns the leaf index."""
        if not isinstance(leaf, LeafNode):
            raise UsageError("add_leaf needs a LeafNode", vid="MLS-TREE-NODE-TYPE")
        index = None
        for i in range(0, len(self._nodes), 2):
            if self._nodes[i] is None:
                index = i // 2
                break
        if index is None:
            index = self.n_leaves if self._nodes else 0
            self.extend()
        self.set_node(2 * index, leaf)
        for p in _dpath(2 * index, self.n_leaves):
            node = cast(Optional[ParentNode], self._nodes[p])  # odd indices hold parents (set_node)
            if node is not None:
                unmerged = tuple(sorted(set(node.unmerged_leaves) | {index}))
                self._nodes[p] = replace(node, unmerged_leaves=unmerged)
        return _as_leaf(index)

    def update_leaf(self, leaf_index: int, leaf: LeafNode) -> None:
        """Apply an Update (§12.1.2): replace the sender's leaf and blank its direct path."""
        if self.leaf(leaf_index) is None:
            raise UsageError(f"leaf {int(leaf_index)} is blank", vid="MLS-TREE-BLANK-LEAF")
        self.set_node(2 * leaf_index, leaf)
        self.blank_path(leaf_index)

    def remove_leaf(self, leaf_index: int) -> None:
        """Apply a Remove (§12.1.3): blank the leaf and its direct path, then truncate."""
        if self.leaf(leaf_index) is None:
            raise UsageError(f"leaf {leaf_index} is already blank", vid="MLS-TREE-BLANK-LEAF")
        self.set_node(2 * leaf_index, None)
        self.blank_path(leaf_index)
        self.truncate()

    def apply_proposal(self, proposal, sender: Optional[int] = None) -> Optional[int]:
        """Apply one Add / Update / Remove proposal (a :class:`.proposals.Proposal` or its body)
        to the tree (§12.1.1–§12.1.3). ``sender`` is the proposer's leaf index (needed for Update).
        Returns the new leaf index for an Add, else ``None``. Other proposal types do not touch
        the tree and are refused here (:class:`UsageError`)."""
        from .proposals import Add, Proposal, Remove, Update  # proposals import the tree's leaf types

        body = proposal.body if isinstance(proposal, Proposal) else proposal
        if isinstance(body, Add):
            return self.add_leaf(body.key_package.leaf_node)
        if isinstance(body, Update):
            if sender is None:
                raise UsageError("an Update needs the sender's leaf index", vid="MLS-TREE-UPDATE-SENDER")
            self.update_leaf(sender, body.leaf_node)
            return None
        if isinstance(body, Remove):
            if not 0 <= body.removed < self.n_leaves or self.leaf(body.removed) is None:
                raise TreeValidationError(f"Remove names leaf {body.removed}, which is not a member",
                                          vid="MLS-TREE-REMOVE-BLANK", where=f"leaf {body.removed}")
            self.remove_leaf(body.removed)
            return None
        raise UsageError(f"{type(body).__name__} does not change the ratchet tree", vid="MLS-TREE-PROPOSAL")

    def merge_path(self, leaf_index: int, leaf: LeafNode, path_nodes: Dict[int, ParentNode]) -> None:
        """Install a committer's path (§12.4.2): new leaf, the given parent nodes on the filtered
        direct path, every other direct-path node blank."""
        self.set_node(2 * _leaf_arg(leaf_index), leaf)
        for p in _dpath(2 * leaf_index, self.n_leaves):
            self._nodes[p] = path_nodes.get(p)
            self._hash.pop(p, None)

    def _parent_node(self, index: int) -> Optional[ParentNode]:
        """The node at odd ``index`` (a ParentNode or blank: :meth:`set_node` keeps the layout)."""
        return cast(Optional[ParentNode], self._nodes[index])

    # -- resolution and paths (§4.1.1, §7.1) ------------------------------------------------
    def resolution(self, index: int) -> List[tm.NodeIndex]:
        """Node indices of the resolution of node ``index`` (§4.1.1)."""
        nodes = self._nodes
        out: List[int] = []
        stack = [int(_node_arg(index))]
        while stack:
            i = stack.pop()
            node = nodes[i]
            if node is not None:
                out.append(i)
                if i & 1:
                    unmerged = cast(ParentNode, node).unmerged_leaves  # odd indices hold parents
                    if unmerged:
                        if 2 * max(unmerged) >= len(nodes):
                            raise TreeValidationError(f"node {i} lists unmerged leaf {max(unmerged)} "
                                                      "outside the tree", vid="MLS-TREE-UNMERGED",
                                                      where=f"node {i}")
                        out.extend(2 * u for u in unmerged)
            elif i & 1:
                half = 1 << (_lvl(i) - 1)
                stack.append(i + half)   # right child, taken after the whole left subtree
                stack.append(i - half)
        return [_as_node(x) for x in out]

    def _subtree_blank(self, index: int) -> bool:
        """True when every node under (and at) ``index`` is blank, i.e. its resolution is empty
        (a non-blank node anywhere below puts a leaf or a parent into the resolution)."""
        span = (1 << _lvl(index)) - 1
        sub = self._nodes[index - span:index + span + 1]
        return sub.count(None) == len(sub)

    def filtered_direct_path(self, leaf_index: int) -> List[tm.NodeIndex]:
        """Direct-path nodes whose child on the copath has a non-empty resolution (§4.1.2)."""
        x = 2 * _leaf_arg(leaf_index)
        out = []
        for p in _dpath(x, self.n_leaves):
            sib = _right(p) if x < p else _left(p)
            if not self._subtree_blank(sib):
                out.append(_as_node(p))
            x = p
        return out

    def copath_resolutions(self, leaf_index: int) -> List[Tuple[tm.NodeIndex, tm.NodeIndex, List[tm.NodeIndex]]]:
        """For each node of the filtered direct path of ``leaf_index``: ``(path node, copath
        child, resolution of that child)`` — who receives each path secret (§7.5, §12.4.2)."""
        out = []
        for p in self.filtered_direct_path(leaf_index):
            child = self.copath_child(p, leaf_index)
            out.append((p, child, self.resolution(child)))
        return out

    def copath_child(self, parent: int, leaf_index: int) -> tm.NodeIndex:
        """The child of ``parent`` that is *not* an ancestor of ``leaf_index``."""
        half = 1 << (_lvl(parent) - 1)
        left = parent - half
        # the left child's subtree spans node indices left-(half-1) .. left+(half-1)
        return _as_node(parent + half if abs(2 * _leaf_arg(leaf_index) - left) < half else left)

    # -- tree hash (§7.8) -------------------------------------------------------------------
    def tree_hash(self, index: Optional[int] = None) -> bytes:
        """``Hash(TreeHashInput)`` of the subtree at ``index`` (the root when omitted)."""
        if not self._nodes:
            raise UsageError("empty tree has no tree hash", vid="MLS-TREE-EMPTY")
        if index is None:
            index = self.root
        h = self._hash.get(index)
        if h is None:
            h = self._compute_hash(index, None)
            self._hash[index] = h
        return h

    def tree_hashes(self) -> List[bytes]:
        """The tree hash of every node, in array order."""
        return [self.tree_hash(i) for i in range(len(self._nodes))]

    def _compute_hash(self, index: int, excluded: Optional[Set[int]]) -> bytes:
        """``Hash(TreeHashInput)`` (§7.8): ``LeafNodeHashInput`` = ``uint32 leaf_index ‖
        optional<LeafNode>``, ``ParentNodeHashInput`` = ``optional<ParentNode> ‖ left_hash<V> ‖
        right_hash<V>``, each after its ``NodeType``; built as one byte string."""
        node = self._nodes[index]
        if index % 2 == 0:
            li = index // 2
            head = _LEAF_TAG + li.to_bytes(4, "big")
            if node is None or (excluded and li in excluded):
                return self.suite.hash(head + b"\x00")
            return self.suite.hash(head + b"\x01" + node.to_bytes())
        if node is None:
            body = _PARENT_TAG + b"\x00"
        else:
            pnode = cast(ParentNode, node)  # odd indices hold parents
            if excluded and any(u in excluded for u in pnode.unmerged_leaves):
                pnode = replace(pnode, unmerged_leaves=tuple(u for u in pnode.unmerged_leaves if u not in excluded))
            body = _PARENT_TAG + b"\x01" + pnode.to_bytes()
        half = 1 << (_lvl(index) - 1)
        if excluded:
            left = self._compute_hash(index - half, excluded)
            right = self._compute_hash(index + half, excluded)
        else:
            left = self.tree_hash(index - half)
            right = self.tree_hash(index + half)
        return self.suite.hash(body + encode_vec(left) + encode_vec(right))

    def original_tree_hash(self, index: int, excluded: Iterable[int]) -> bytes:
        """Tree hash of ``index`` with the leaves ``excluded`` blanked and removed from every
        ``unmerged_leaves`` list (the *original sibling tree hash* of §7.9)."""
        ex = {u for u in excluded if 2 * u in _leaf_nodes_range(index)}
        if not ex:
            return self.tree_hash(index)
        return self._compute_hash(index, ex)

    # -- parent hash (§7.9) -----------------------------------------------------------------
    def parent_hash_input(self, parent: int, sibling: int) -> bytes:
        """``ParentHashInput`` of parent node ``parent`` against its child ``sibling``."""
        node = self._parent_node(parent)
        if node is None:
            raise UsageError(f"node {parent} is blank", vid="MLS-TREE-BLANK-PARENT")
        sib_hash = self.original_tree_hash(sibling, node.unmerged_leaves)
        return encode_vec(node.encryption_key) + encode_vec(node.parent_hash) + encode_vec(sib_hash)

    def parent_hash(self, parent: int, sibling: int) -> bytes:
        """``Hash(ParentHashInput)`` (§7.9): what the child on the other side must carry."""
        return self.suite.hash(self.parent_hash_input(parent, sibling))

    def compute_path_parent_hashes(self, leaf_index: int) -> Tuple[bytes, Dict[int, bytes]]:
        """Parent hashes along the filtered direct path of ``leaf_index`` (§7.9), top-down.

        The nodes of the path must already be in the tree with their encryption keys; their
        ``parent_hash`` fields are set here. Returns ``(leaf_parent_hash, {node: parent_hash})``.
        """
        fdp = self.filtered_direct_path(leaf_index)
        hashes: Dict[int, bytes] = {}
        above = b""
        for i in range(len(fdp) - 1, -1, -1):
            p = fdp[i]
            node = self._parent_node(p)
            if node is None:
                raise UsageError(f"path node {p} is blank", vid="MLS-TREE-BLANK-PARENT")
            if node.parent_hash != above:
                self._nodes[p] = replace(node, parent_hash=above)
                self._invalidate(p)
            hashes[p] = above
            above = self.parent_hash(p, self.copath_child(p, leaf_index))
        return above, hashes

    def is_parent_hash_valid(self, parent: int) -> bool:
        """§7.9.2: ``parent`` is valid w.r.t. one child ``C`` if some ``D`` in ``resolution(C)``
        carries ``parent_hash(P, other child)`` and P's unmerged leaves under C are exactly
        ``resolution(C)`` without D."""
        node = self._parent_node(parent)
        if node is None:
            return True
        left, right = int(tm.left(parent)), int(tm.right(parent))
        unmerged = {2 * u for u in node.unmerged_leaves}
        for child, other in ((left, right), (right, left)):
            res = self.resolution(child)
            if not res:
                continue
            span = _leaf_nodes_range(child)
            under = {u for u in unmerged if u in span}
            want = None
            for d in res:
                dnode = self._nodes[d]
                if dnode is None or set(res) - {d} != under:  # a resolution holds non-blank nodes
                    continue
                if want is None:
                    want = self.parent_hash(parent, other)
                if dnode.parent_hash == want:
                    return True
        return False

    def verify_parent_hashes(self) -> None:
        """Every non-blank parent node must be parent-hash valid (§7.9.2)."""
        for p in range(1, len(self._nodes), 2):
            if self._nodes[p] is not None and not self.is_parent_hash_valid(p):
                raise TreeValidationError(f"parent node {p} is not parent-hash valid",
                                          vid="MLS-TREE-PARENT-HASH", where=f"node {p}")

    # -- validation (§7.3, §12.4.3.1) -------------------------------------------------------
    def verify_leaf_signatures(self, group_id: bytes, *, parallel: Optional[bool] = None) -> None:
        """Every leaf's signature verifies (§7.3); update/commit leaves bind group id and index.
        The checks are independent, so they run as one batch on threads
        (``CipherSuite.verify_all_with_label``; ``parallel`` as there); a failure names the
        lowest failing leaf, as checking leaf by leaf would."""
        self._leaf_signatures_checked(*self._start_leaf_signatures(group_id, parallel))

    def _start_leaf_signatures(self, group_id: bytes, parallel: Optional[bool],
                               extra: Sequence[Tuple[bytes, bytes | str, bytes, bytes]] = ()
                               ) -> Tuple[PendingChecks, List[int]]:
        leaves = list(self.leaves())
        checks: List[Tuple[bytes, bytes | str, bytes, bytes]] = [
            leaf.signature_check(group_id, li) for li, leaf in leaves]
        checks.extend(extra)
        pending = self.suite.start_verify_all_with_label(checks, parallel=parallel)
        return pending, [li for li, _ in leaves]

    @staticmethod
    def _leaf_signatures_checked(pending: PendingChecks, leaf_indices: List[int]) -> Optional[Failure]:
        """Raise for the lowest failing leaf; a failure among the checks added after the leaves
        is returned as ``(index among them, error)``."""
        found = pending.result()
        if found is None:
            return None
        if found[0] >= len(leaf_indices):
            return found[0] - len(leaf_indices), found[1]
        li, exc = leaf_indices[found[0]], found[1]
        if isinstance(exc, SignatureError):  # what LeafNode.verify raises, chained the same way
            leaf_exc: GbpLabError = SignatureError("LeafNode signature does not verify", vid="MLS-LEAF-SIGNATURE")
            leaf_exc.__cause__ = exc
            exc = leaf_exc
        raise SignatureError(f"leaf {li}: LeafNode signature does not verify ({exc.message})",
                             vid="MLS-TREE-LEAF-SIGNATURE", where=f"leaf {li}") from exc

    def verify_leaf_nodes(self, *, now: Optional[int] = None, required_capabilities=None) -> None:
        """The §7.3 leaf checks that look beyond one signature:

        * every member's credential type is supported by every member's capabilities;
        * each leaf's own extensions are listed in its capabilities (default types excepted, §7.2);
        * with ``now`` (Unix seconds, injected), key_package leaves are within their lifetime;
        * with ``required_capabilities`` (the group's extension body), each leaf meets it (§11.1).
        """
        from .key_package import DEFAULT_EXTENSIONS, check_required_capabilities

        leaves = list(self.leaves())
        in_use = {int(leaf.credential.credential_type) for _, leaf in leaves}
        for li, leaf in leaves:
            supported = {int(c) for c in leaf.capabilities.credentials}
            missing = in_use - supported
            if missing:
                raise TreeValidationError(f"leaf {li} does not support credential types {sorted(missing)} "
                                          "in use in the group", vid="MLS-TREE-LEAF-CREDENTIAL",
                                          where=f"leaf {li}")
            listed = {int(e) for e in leaf.capabilities.extensions}
            for ext in leaf.extensions:
                if int(ext.extension_type) not in listed and ext.extension_type not in DEFAULT_EXTENSIONS:
                    raise TreeValidationError(f"leaf {li} carries extension {int(ext.extension_type)} "
                                              "its capabilities do not list", vid="MLS-TREE-LEAF-EXTENSION",
                                              where=f"leaf {li}")
            if now is not None and leaf.lifetime is not None and not leaf.lifetime.contains(now):
                raise TreeValidationError(f"leaf {li} lifetime does not contain {now}",
                                          vid="MLS-TREE-LEAF-LIFETIME", where=f"leaf {li}")
            if required_capabilities is not None:
                try:
                    check_required_capabilities(leaf, required_capabilities)
                except ProtocolError as exc:
                    raise TreeValidationError(f"leaf {li}: {exc.message}", vid="MLS-TREE-LEAF-CAPABILITIES",
                                              where=f"leaf {li}") from exc

    def verify_unmerged_leaves(self) -> None:
        """§12.4.3.1: each unmerged leaf is a non-blank descendant, and every non-blank node
        between it and the parent lists it too."""
        for p in range(1, len(self._nodes), 2):
            node = self._parent_node(p)
            if node is None:
                continue
            span = _leaf_nodes_range(p)
            for u in node.unmerged_leaves:
                x = 2 * u
                if x not in span or x >= len(self._nodes) or self._nodes[x] is None:
                    raise TreeValidationError(
                        f"node {p}: unmerged leaf {u} is not a non-blank descendant",
                        vid="MLS-TREE-UNMERGED", where=f"node {p}")
                for y in _dpath(x, self.n_leaves):
                    if y == p:
                        break
                    mid = self._parent_node(y)
                    if mid is not None and u not in mid.unmerged_leaves:
                        raise TreeValidationError(
                            f"node {y} lies between leaf {u} and node {p} but does not list it unmerged",
                            vid="MLS-TREE-UNMERGED-CHAIN", where=f"node {y}")

    def verify_unique_keys(self) -> None:
        """Encryption keys are unique across all nodes, signature keys across leaves (§7.3, §12.4.3.1)."""
        seen: Dict[bytes, int] = {}
        sig: Dict[bytes, int] = {}
        for i, node in enumerate(self._nodes):
            if node is None:
                continue
            k = bytes(node.encryption_key)
            if k in seen:
                raise TreeValidationError(f"nodes {seen[k]} and {i} share an encryption key",
                                          vid="MLS-TREE-DUP-ENC-KEY", where=f"node {i}")
            seen[k] = i
            if i % 2 == 0:
                s = bytes(cast(LeafNode, node).signature_key)
                if s in sig:
                    raise TreeValidationError(f"nodes {sig[s]} and {i} share a signature key",
                                              vid="MLS-TREE-DUP-SIG-KEY", where=f"node {i}")
                sig[s] = i

    def verify_structure(self) -> None:
        """Node types by position and a full-tree size (always true for a decoded tree)."""
        n = len(self._nodes)
        if n == 0 or (n + 1) & n:
            raise TreeValidationError(f"{n} nodes is not a full tree", vid="MLS-TREE-SHAPE")

    def validate(self, group_id: bytes, *, tree_hash: Optional[bytes] = None,
                 check_signatures: bool = True, now: Optional[int] = None,
                 required_capabilities=None, defer_signatures: bool = False,
                 extra_checks: Sequence[Tuple[bytes, bytes | str, bytes, bytes]] = ()
                 ) -> Optional["LeafSignatures"]:
        """All of §12.4.3.1 that needs only the tree: optional tree-hash match (e.g. against
        ``GroupInfo.group_context.tree_hash``), unique keys, unmerged-leaf consistency,
        parent-hash validity, the §7.3 leaf checks and leaf signatures (``group_id`` binds the
        update/commit leaves). Raises on the first violation.

        ``defer_signatures=True`` returns as soon as everything but the leaf signatures is
        checked, with the signature batch still running on the pool's threads: the caller does
        more work meanwhile and must then call :meth:`LeafSignatures.wait` (which raises as this
        method would) or :meth:`LeafSignatures.cancel`. ``extra_checks`` (only with it): more
        ``VerifyWithLabel`` checks ``(pub, label, content, signature)`` for the same batch,
        behind the leaves — e.g. the GroupInfo signature (§12.4.3.1) — whose failure ``wait``
        returns instead of raising."""
        if extra_checks and not defer_signatures:
            raise UsageError("extra_checks need defer_signatures=True", vid="MLS-TREE-EXTRA-CHECKS")
        self.verify_structure()
        # the leaf signatures go to the verify pool first and are checked while this thread does
        # the hashing; the errors keep their order (a signature failure is reported last)
        started = (self._start_leaf_signatures(group_id, None, extra_checks)
                   if check_signatures else None)
        try:
            if tree_hash is not None and self.tree_hash() != bytes(tree_hash):
                raise TreeValidationError("tree hash does not match", vid="MLS-TREE-HASH")
            self.verify_unique_keys()
            self.verify_unmerged_leaves()
            self.verify_parent_hashes()
            self.verify_leaf_nodes(now=now, required_capabilities=required_capabilities)
        except BaseException:
            if started is not None:
                started[0].cancel()
            raise
        if started is None:
            return None
        deferred = LeafSignatures(*started)
        if defer_signatures:
            return deferred
        deferred.wait()
        return None


class LeafSignatures:
    """The leaf-signature batch of :meth:`RatchetTree.validate` (``defer_signatures=True``)
    still under way on the pool's threads."""

    def __init__(self, pending: PendingChecks, leaf_indices: List[int]) -> None:
        self._pending, self._leaf_indices = pending, leaf_indices
        self._outcome: Optional[Tuple[Optional[Failure], Optional[BaseException]]] = None

    def wait(self) -> Optional[Failure]:
        """Wait for the batch: raise what ``validate`` raises for the lowest failing leaf
        (``MLS-TREE-LEAF-SIGNATURE``), else return ``None`` or the failure among the extra
        checks ``(index among them, error)``. Repeated calls give the same answer."""
        if self._outcome is None:
            try:
                self._outcome = (RatchetTree._leaf_signatures_checked(self._pending, self._leaf_indices), None)
            except GbpLabError as exc:
                self._outcome = (None, exc)
        failure, error = self._outcome
        if error is not None:
            raise error
        return failure

    def cancel(self) -> None:
        """Give up on the batch (the caller failed earlier for another reason)."""
        self._pending.cancel()


def _leaf_nodes_range(index: int) -> range:
    """Node indices of the leaves below ``index`` (a ``range`` with step 2)."""
    first, end = tm.subtree_leaves(index)
    return range(2 * first, 2 * end - 1, 2)


__all__ = ["RatchetTree", "Member", "Node", "TreeValidationError", "LeafSignatures"]
