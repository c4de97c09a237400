"""HPKE ciphertexts and update paths (RFC 9420 §7.6).

::

    struct { opaque kem_output<V>; opaque ciphertext<V>; } HPKECiphertext;

    struct {
        HPKEPublicKey encryption_key;
        HPKECiphertext encrypted_path_secret<V>;
    } UpdatePathNode;

    struct { LeafNode leaf_node; UpdatePathNode nodes<V>; } UpdatePath;
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from ..tls import Reader, Writer
from .leaf_node import LeafNode
from .registries import Struct


@dataclass(frozen=True)
class HPKECiphertext(Struct):
    """RFC 9420 §7.6 ``HPKECiphertext``: encapsulated key and AEAD ciphertext."""

    kem_output: bytes
    ciphertext: bytes

    def encode(self, w: Writer) -> None:
        w.vec(self.kem_output).vec(self.ciphertext)

    @classmethod
    def decode(cls, r: Reader) -> "HPKECiphertext":
        return cls(r.vec("HPKECiphertext.kem_output"), r.vec("HPKECiphertext.ciphertext"))


@dataclass(frozen=True)
class UpdatePathNode(Struct):
    """RFC 9420 §7.6 ``UpdatePathNode``: new public key and the path secret for each resolution node."""

    encryption_key: bytes
    encrypted_path_secret: Tuple[HPKECiphertext, ...] = ()

    def encode(self, w: Writer) -> None:
        w.vec(self.encryption_key)
        w.vec_of(self.encrypted_path_secret, lambda ww, c: c.encode(ww))

    @classmethod
    def decode(cls, r: Reader) -> "UpdatePathNode":
        return cls(r.vec("UpdatePathNode.encryption_key"),
                   tuple(r.vec_of(HPKECiphertext.decode, "UpdatePathNode.encrypted_path_secret")))


@dataclass(frozen=True)
class UpdatePath(Struct):
    """RFC 9420 §7.6 ``UpdatePath``: the committer's new leaf and one node per filtered direct-path step."""

    leaf_node: LeafNode
    nodes: Tuple[UpdatePathNode, ...] = ()

    def encode(self, w: Writer) -> None:
        self.leaf_node.encode(w)
        w.vec_of(self.nodes, lambda ww, n: n.encode(ww))

    @classmethod
    def decode(cls, r: Reader) -> "UpdatePath":
        return cls(LeafNode.decode(r), tuple(r.vec_of(UpdatePathNode.decode, "UpdatePath.nodes")))


__all__ = ["HPKECiphertext", "UpdatePathNode", "UpdatePath"]
