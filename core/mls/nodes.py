"""Parent nodes, ratchet-tree nodes and the ``ratchet_tree`` extension (RFC 9420 §7.1, §7.8, §12.4.3.3).

::

    struct {
        HPKEPublicKey encryption_key;
        opaque parent_hash<V>;
        uint32 unmerged_leaves<V>;
    } ParentNode;

    struct {
        NodeType node_type;
        select (Node.node_type) { case leaf: LeafNode leaf_node; case parent: ParentNode parent_node; };
    } Node;

    optional<Node> ratchet_tree<V>;   /* the ratchet_tree extension: array order, blanks as absent */

The RFC requires the last entry of a ratchet_tree to be non-blank (§12.4.3.3); a tree whose last
node is blank is a :class:`~gbp_lab.core.errors.DecodeError` (``vid="MLS-TREE-TRAILING-BLANK"``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Tuple, Union

from ..errors import DecodeError, UsageError
from ..tls import Reader, Writer
from .extensions import ExtensionBody
from .leaf_node import LeafNode
from .registries import ExtensionType, NodeType, Struct, enum_value


@dataclass(frozen=True)
class ParentNode(Struct):
    """RFC 9420 §7.1 ``ParentNode``."""

    encryption_key: bytes
    parent_hash: bytes = b""
    unmerged_leaves: Tuple[int, ...] = ()

    def encode(self, w: Writer) -> None:
        w.vec(self.encryption_key).vec(self.parent_hash)
        w.vec_of(self.unmerged_leaves, lambda ww, i: ww.u32(i))

    @classmethod
    def decode(cls, r: Reader) -> "ParentNode":
        return cls(r.vec("ParentNode.encryption_key"), r.vec("ParentNode.parent_hash"),
                   tuple(r.vec_of(lambda rr: rr.u32("ParentNode.unmerged_leaves"),
                                  "ParentNode.unmerged_leaves")))


@dataclass(frozen=True)
class Node(Struct):
    """RFC 9420 §7.8 ``Node``: a leaf or a parent, tagged by ``node_type``."""

    value: Union[LeafNode, ParentNode]

    def __post_init__(self) -> None:
        if not isinstance(self.value, (LeafNode, ParentNode)):
            raise UsageError("a Node holds a LeafNode or a ParentNode", vid="MLS-NODE")

    @property
    def node_type(self) -> NodeType:
        return NodeType.LEAF if isinstance(self.value, LeafNode) else NodeType.PARENT

    @property
    def leaf_node(self) -> Optional[LeafNode]:
        return self.value if isinstance(self.value, LeafNode) else None

    @property
    def parent_node(self) -> Optional[ParentNode]:
        return self.value if isinstance(self.value, ParentNode) else None

    def encode(self, w: Writer) -> None:
        w.u8(self.node_type)
        self.value.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> "Node":
        ntype = enum_value(NodeType, r.u8("Node.node_type"), "Node.node_type")
        return cls(LeafNode.decode(r) if ntype == NodeType.LEAF else ParentNode.decode(r))


@dataclass(frozen=True)
class RatchetTree(ExtensionBody):
    """RFC 9420 §12.4.3.3 ``ratchet_tree`` extension: ``optional<Node> nodes<V>``, array order."""

    EXTENSION_TYPE: ClassVar[ExtensionType] = ExtensionType.RATCHET_TREE
    nodes: Tuple[Optional[Node], ...] = ()

    def encode(self, w: Writer) -> None:
        w.vec_of(self.nodes, lambda ww, n: ww.optional(n, lambda www, nn: nn.encode(www)))

    @classmethod
    def decode(cls, r: Reader) -> "RatchetTree":
        nodes = tuple(r.vec_of(lambda rr: rr.optional(Node.decode, "ratchet_tree node"), "ratchet_tree"))
        if nodes and nodes[-1] is None:
            raise DecodeError("ratchet_tree ends with a blank node", vid="MLS-TREE-TRAILING-BLANK",
                              where="ratchet_tree")
        return cls(nodes)


__all__ = ["ParentNode", "Node", "RatchetTree"]
