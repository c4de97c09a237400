"""The secret tree and its per-leaf symmetric ratchets (RFC 9420 §9, §9.1, §9.2).

From an epoch's ``encryption_secret`` at the root, every node's secret derives its children's::

    left_secret  = ExpandWithLabel(node_secret, "tree", "left",  KDF.Nh)
    right_secret = ExpandWithLabel(node_secret, "tree", "right", KDF.Nh)

and each leaf ``N`` (node ``2N``) seeds two ratchets (§9.1)::

    handshake_ratchet_secret_[N]_[0]   = ExpandWithLabel(leaf_secret, "handshake",   "", KDF.Nh)
    application_ratchet_secret_[N]_[0] = ExpandWithLabel(leaf_secret, "application", "", KDF.Nh)

    ratchet_key_[N]_[j]      = DeriveTreeSecret(ratchet_secret_[N]_[j], "key",    j, AEAD.Nk)
    ratchet_nonce_[N]_[j]    = DeriveTreeSecret(ratchet_secret_[N]_[j], "nonce",  j, AEAD.Nn)
    ratchet_secret_[N]_[j+1] = DeriveTreeSecret(ratchet_secret_[N]_[j], "secret", j, KDF.Nh)

Deletion schedule (§9.2): a node's secret is dropped as soon as its children are derived, a leaf's
once its ratchets are seeded, a ratchet secret once the next one is derived, and a key/nonce once
it has been used. Out-of-order delivery behaves like openmls 0.8 in the reference (measured
against the gbp-stack wheel) with its defaults: with ``out_of_order_tolerance`` = 5, after the
newest generation ``n`` the receiver still accepts the unused generations ``n-4 … n-1`` (``n-5``
is too old), and it accepts a generation at most ``maximum_forward_distance`` = 1000 ahead of
the next expected one. Precisely, with ``next`` = newest received + 1:
``next - g > tolerance`` → :class:`GenerationTooOldError`, ``g - next > max_forward`` →
:class:`GenerationTooFarError`.

Errors (all :class:`~gbp_lab.core.errors.ProtocolError`, since the generation and the leaf come
from a peer): :class:`GenerationTooFarError` (too far ahead), :class:`GenerationTooOldError`
(older than the tolerance window), :class:`GenerationReusedError` (a :class:`ReplayError`: the
key was already consumed), :class:`UnknownLeafError` (no such leaf in the tree).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Dict, Optional, Tuple, Union

from ..errors import MissingKeyError, ReplayError, StateError, UsageError
from .secrets import BytesLike, Secret, raw
from . import treemath
from .suites import CipherSuite

DEFAULT_OUT_OF_ORDER_TOLERANCE = 5
DEFAULT_MAXIMUM_FORWARD_DISTANCE = 1000
MAX_GENERATION = (1 << 32) - 1


class RatchetType(IntEnum):
    """Which of a leaf's two ratchets: handshake (Proposal/Commit) or application data (§9.1)."""

    HANDSHAKE = 0
    APPLICATION = 1

    @property
    def label(self) -> bytes:
        return b"handshake" if self is RatchetType.HANDSHAKE else b"application"


class GenerationTooFarError(StateError):
    """The generation is more than ``maximum_forward_distance`` ahead of the ratchet."""

    default_vid = "MLS-SECRET-TREE-FUTURE"


class GenerationTooOldError(StateError):
    """The generation is older than the out-of-order window: its key is gone."""

    default_vid = "MLS-SECRET-TREE-PAST"


class GenerationReusedError(ReplayError):
    """The key of this generation was already used (replay, RFC 9420 §9.2)."""

    default_vid = "MLS-SECRET-TREE-REUSED"


class UnknownLeafError(MissingKeyError):
    """The leaf index is outside the tree."""

    default_vid = "MLS-SECRET-TREE-LEAF"


@dataclass(frozen=True)
class RatchetKey:
    """One generation's AEAD key and nonce (redacted in ``repr``)."""

    generation: int
    key: Secret
    nonce: Secret


def _path_from_root(root: int, node: int):
    """Node indices from ``root`` (exclusive) down to ``node`` (inclusive)."""
    out = []
    x = root
    while x != node:
        x = treemath.left(x) if node < x else treemath.right(x)
        out.append(x)
    return out


class _Ratchet:
    """One leaf's handshake or application ratchet (a sender's or a receiver's view)."""

    __slots__ = ("cs", "secret", "generation", "past", "tolerance", "max_forward")

    def __init__(self, cs: CipherSuite, secret: bytes, tolerance: int, max_forward: int) -> None:
        self.cs = cs
        self.secret: Optional[bytes] = secret   # ratchet_secret_[N]_[generation]
        self.generation = 0
        self.past: Dict[int, RatchetKey] = {}  # skipped generations, not yet used
        self.tolerance = tolerance
        self.max_forward = max_forward

    def _derive(self) -> RatchetKey:
        cs, s, j = self.cs, self.secret, self.generation
        if s is None:
            raise MissingKeyError("ratchet exhausted (generation space used up)",
                                  vid="MLS-SECRET-TREE-EXHAUSTED")
        key = RatchetKey(j, Secret(cs.derive_tree_secret(s, b"key", j, cs.aead_key_length), "key"),
                         Secret(cs.derive_tree_secret(s, b"nonce", j, cs.aead_nonce_length), "nonce"))
        if j == MAX_GENERATION:
            self.secret = None
        else:
            self.secret = cs.derive_tree_secret(s, b"secret", j, cs.hash_length)
        self.generation = j + 1
        return key

    def _remember(self, key: RatchetKey) -> None:
        """Keep an unused key for a late message; only the window's ``tolerance`` newest stay."""
        self.past[key.generation] = key
        for g in [g for g in self.past if self.generation - g > self.tolerance]:
            del self.past[g]
        while len(self.past) > self.tolerance:
            del self.past[min(self.past)]

    def next_for_sending(self) -> RatchetKey:
        return self._derive()

    def for_generation(self, generation: int) -> RatchetKey:
        if not 0 <= generation <= MAX_GENERATION:
            raise UsageError(f"generation {generation} is not a uint32", vid="MLS-GENERATION")
        if generation >= self.generation:
            if generation - self.generation > self.max_forward:
                raise GenerationTooFarError(
                    f"generation {generation} is more than {self.max_forward} ahead of "
                    f"{self.generation}", where=generation)
            while self.generation < generation:
                self._remember(self._derive())
            return self._derive()
        if self.generation - generation > self.tolerance:
            raise GenerationTooOldError(
                f"generation {generation} is older than the out-of-order window "
                f"({self.tolerance} behind {self.generation})", where=generation)
        key = self.past.pop(generation, None)
        if key is not None:
            return key
        raise GenerationReusedError(f"the key of generation {generation} was already used",
                                    where=generation)


class SecretTree:
    """The secret tree of one epoch over ``n_leaves`` leaves (RFC 9420 §9).

    * :meth:`next_sending_key` — the sender's next (key, nonce, generation) for a content type;
    * :meth:`key_for` — the receiver's key for a given leaf/generation (consumed: asking again
      raises :class:`GenerationReusedError`).
    """

    def __init__(self, cs: Union[CipherSuite, int], encryption_secret: BytesLike, n_leaves: int, *,
                 out_of_order_tolerance: int = DEFAULT_OUT_OF_ORDER_TOLERANCE,
                 maximum_forward_distance: int = DEFAULT_MAXIMUM_FORWARD_DISTANCE) -> None:
        self.cs = cs if isinstance(cs, CipherSuite) else CipherSuite.get(cs)
        if n_leaves < 1:
            raise UsageError("a secret tree needs at least one leaf", vid="MLS-SECRET-TREE-SIZE")
        if out_of_order_tolerance < 0 or maximum_forward_distance < 0:
            raise UsageError("tolerance and forward distance must be >= 0", vid="MLS-SECRET-TREE-CONFIG")
        self.n_leaves = n_leaves
        self.out_of_order_tolerance = out_of_order_tolerance
        self.maximum_forward_distance = maximum_forward_distance
        self._root = int(treemath.root(n_leaves))   # a non-power-of-two count uses the padded tree
        self._nodes: Dict[int, bytes] = {self._root: raw(encryption_secret)}
        self._ratchets: Dict[Tuple[int, RatchetType], _Ratchet] = {}

    def __repr__(self) -> str:
        return (f"SecretTree(suite={int(self.cs.id)}, n_leaves={self.n_leaves}, "
                f"node_secrets={len(self._nodes)}, ratchets={len(self._ratchets)})")

    # -- tree ---------------------------------------------------------------------------------
    def _check_leaf(self, leaf: int) -> None:
        if not isinstance(leaf, int) or not 0 <= leaf < self.n_leaves:
            raise UnknownLeafError(f"leaf {leaf} is not in a tree of {self.n_leaves} leaves", where=leaf)

    def _leaf_secret(self, leaf: int) -> bytes:
        """Derive (and remove from the tree) the secret of leaf ``leaf``'s node."""
        node = int(treemath.leaf_to_node(leaf))
        if node not in self._nodes:
            path = _path_from_root(self._root, node)
            start = next((i for i in range(len(path) - 1, -1, -1) if path[i] in self._nodes), None)
            parent = self._root if start is None else path[start]
            todo = path if start is None else path[start + 1:]
            if parent not in self._nodes:
                raise MissingKeyError(f"secret of leaf {leaf} was already consumed",
                                      vid="MLS-SECRET-TREE-CONSUMED", where=leaf)
            for child in todo:
                secret = self._nodes.pop(parent)
                nh = self.cs.hash_length
                self._nodes[treemath.left(parent)] = self.cs.expand_with_label(secret, b"tree", b"left", nh)
                self._nodes[treemath.right(parent)] = self.cs.expand_with_label(secret, b"tree", b"right", nh)
                parent = child
        return self._nodes.pop(node)

    def _ratchet(self, leaf: int, kind: RatchetType) -> _Ratchet:
        self._check_leaf(leaf)
        kind = RatchetType(kind)
        r = self._ratchets.get((leaf, kind))
        if r is None:
            leaf_secret = self._leaf_secret(leaf)
            nh = self.cs.hash_length
            for k in RatchetType:
                seed = self.cs.expand_with_label(leaf_secret, k.label, b"", nh)
                self._ratchets[(leaf, k)] = _Ratchet(self.cs, seed, self.out_of_order_tolerance,
                                                     self.maximum_forward_distance)
            r = self._ratchets[(leaf, kind)]
        return r

    # -- API ----------------------------------------------------------------------------------
    def next_sending_key(self, leaf: int, kind: RatchetType) -> RatchetKey:
        """The next unused generation of ``leaf``'s ``kind`` ratchet, for encrypting (§9.1)."""
        return self._ratchet(leaf, kind).next_for_sending()

    def key_for(self, leaf: int, kind: RatchetType, generation: int) -> RatchetKey:
        """The key/nonce of ``generation`` for decrypting a message from ``leaf`` (consumed)."""
        return self._ratchet(leaf, kind).for_generation(generation)

    def give_back(self, leaf: int, kind: RatchetType, key: RatchetKey) -> None:
        """Return an unused key obtained from :meth:`key_for` (its message failed to decrypt),
        so that the genuine message of that generation can still be read."""
        self._ratchet(leaf, kind)._remember(key)

    def generation(self, leaf: int, kind: RatchetType) -> int:
        """The next generation ``leaf``'s ratchet would produce."""
        return self._ratchet(leaf, kind).generation

    # -- copies and state export ------------------------------------------------------------
    def copy(self) -> "SecretTree":
        """An independent copy (node secrets and ratchets; the immutable keys are shared), so
        that decrypting on the copy leaves this tree untouched."""
        new = copy.copy(self)
        new._nodes = dict(self._nodes)
        ratchets = {}
        for k, r in self._ratchets.items():
            r2 = copy.copy(r)
            r2.past = dict(r.past)
            ratchets[k] = r2
        new._ratchets = ratchets
        return new

    def to_json(self) -> Dict[str, Any]:
        """The tree's remaining secrets as a JSON-able dict (hex strings; see :meth:`from_json`)."""
        return {
            "n_leaves": self.n_leaves,
            "nodes": {str(int(k)): v.hex() for k, v in self._nodes.items()},
            "ratchets": [[int(leaf), int(kind), None if r.secret is None else r.secret.hex(), r.generation,
                          [[int(g), k.key.reveal().hex(), k.nonce.reveal().hex()]
                           for g, k in sorted(r.past.items())]]
                         for (leaf, kind), r in self._ratchets.items()],
        }

    @classmethod
    def from_json(cls, doc: Dict[str, Any], cs: CipherSuite, *,
                  out_of_order_tolerance: int = DEFAULT_OUT_OF_ORDER_TOLERANCE,
                  maximum_forward_distance: int = DEFAULT_MAXIMUM_FORWARD_DISTANCE) -> "SecretTree":
        """A tree from :meth:`to_json` output (malformed input raises ``ValueError``/``KeyError``/
        ``TypeError``: the caller turns them into its own error)."""
        st = cls(cs, b"\x00" * cs.hash_length, int(doc["n_leaves"]),
                 out_of_order_tolerance=out_of_order_tolerance,
                 maximum_forward_distance=maximum_forward_distance)
        st._nodes = {int(k): bytes.fromhex(v) for k, v in doc["nodes"].items()}
        st._ratchets = {}
        for leaf, kind, secret, gen, past in doc["ratchets"]:
            r = _Ratchet(cs, b"", out_of_order_tolerance, maximum_forward_distance)
            r.secret = None if secret is None else bytes.fromhex(secret)
            r.generation = int(gen)
            r.past = {int(g): RatchetKey(int(g), Secret(bytes.fromhex(k), "key"), Secret(bytes.fromhex(n), "nonce"))
                      for g, k, n in past}
            st._ratchets[(int(leaf), RatchetType(kind))] = r
        return st


__all__ = [
    "SecretTree", "RatchetType", "RatchetKey", "GenerationTooFarError", "GenerationTooOldError",
    "GenerationReusedError", "UnknownLeafError", "DEFAULT_OUT_OF_ORDER_TOLERANCE",
    "DEFAULT_MAXIMUM_FORWARD_DISTANCE",
]
