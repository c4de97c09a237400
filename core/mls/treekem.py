"""TreeKEM: creating and processing an ``UpdatePath`` (RFC 9420 §7.4–§7.6, §12.4.1–§12.4.2).

The committer's side (:func:`create_update_path`):

1. path secrets along the committer's *filtered* direct path — ``path_secret[0]`` from a fresh
   ``leaf_secret``, ``path_secret[n] = DeriveSecret(path_secret[n-1], "path")`` — and one HPKE key
   pair per node from ``node_secret = DeriveSecret(path_secret, "node")`` (§7.4);
2. the new path merged into a copy of the tree, parent hashes computed top-down (§7.9), the new
   ``commit``-source LeafNode signed over group id and leaf index (§7.2);
3. the provisional GroupContext of the new epoch carries the new tree hash; each path secret
   (the raw bytes, as the official vectors encrypt it) goes as
   ``EncryptWithLabel(pk, "UpdatePathNode", GroupContext, path_secret)`` to every node of the
   resolution of the copath child, minus the leaves added by the same commit (§7.6, §12.4.2);
4. ``commit_secret = DeriveSecret(root path_secret, "path")`` (§8).

The receiver's side (:func:`process_update_path`): check the path length against the sender's
filtered direct path, merge the path, recompute parent hashes and check the leaf's, verify the
leaf signature, find the lowest path node above us, decrypt its path secret with a private key we
hold (our leaf or an ancestor), derive the rest and check every derived public key (§12.4.2).

:class:`PrivateTree` is one member's private view: the leaf's HPKE private key and the path
secrets it knows for nodes on its direct path (keys are derived from them on demand).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ..errors import DecodeError, MissingKeyError, SignatureError, UsageError
from . import treemath as tm
from . import workers
from .leaf_node import LeafNode
from .nodes import ParentNode
from .registries import LeafNodeSource
from .schedule import GroupContext
from .secrets import Secret, raw
from .suites import CipherSuite
from .tree import RatchetTree, TreeValidationError
from .update_path import HPKECiphertext, UpdatePath, UpdatePathNode

_URANDOM = os.urandom  # a test that patches os.urandom wants its draws in loop order

UPDATE_PATH_LABEL = "UpdatePathNode"

Rng = Callable[[int], bytes]


class PrivateTree:
    """One member's private TreeKEM state (RFC 9420 §7.4): leaf private key and path secrets.

    ``path_secrets`` maps node indices of our direct path to the path secret we know for them;
    the node's HPKE key pair is ``DeriveKeyPair(DeriveSecret(path_secret, "node"))``.
    """

    __slots__ = ("suite", "leaf_index", "_leaf_priv", "_path_secrets", "_keys")

    def __init__(self, suite: Union[CipherSuite, int], leaf_index: int, leaf_priv: bytes,
                 path_secrets: Optional[Dict[int, bytes]] = None) -> None:
        self.suite = suite if isinstance(suite, CipherSuite) else CipherSuite.get(suite)
        self.leaf_index = int(leaf_index)
        self._leaf_priv = raw(leaf_priv)
        self._path_secrets: Dict[int, bytes] = {int(k): raw(v) for k, v in (path_secrets or {}).items()}
        self._keys: Dict[int, Tuple[bytes, bytes]] = {}

    def __repr__(self) -> str:
        return f"PrivateTree(leaf={self.leaf_index}, path_secrets for nodes {sorted(self._path_secrets)})"

    def copy(self) -> "PrivateTree":
        p = PrivateTree(self.suite, self.leaf_index, self._leaf_priv, dict(self._path_secrets))
        p._keys = dict(self._keys)
        return p

    @property
    def nodes(self) -> List[int]:
        """Node indices we hold a private key for (our leaf first)."""
        return [2 * self.leaf_index] + sorted(self._path_secrets)

    def path_secret(self, node: int) -> Optional[Secret]:
        s = self._path_secrets.get(int(node))
        return None if s is None else Secret(s, label=f"path_secret[{node}]")

    def set_path_secret(self, node: int, secret: bytes) -> None:
        node = int(node)
        self._path_secrets[node] = raw(secret)
        self._keys.pop(node, None)

    def forget(self, node: int) -> None:
        self._path_secrets.pop(int(node), None)
        self._keys.pop(int(node), None)

    def public_key(self, node: int) -> bytes:
        """The HPKE public key of ``node`` (:class:`MissingKeyError` if we hold no secret for it)."""
        kp = self.key_pair(node)
        if kp is None:
            raise MissingKeyError(f"no private key for node {int(node)}", vid="MLS-TREEKEM-NOKEY",
                                  where=f"node {int(node)}")
        return kp[1]

    def key_pair(self, node: int) -> Optional[Tuple[bytes, bytes]]:
        """``(priv, pub)`` for ``node`` if we can derive it, else ``None``."""
        node = int(node)
        kp = self._keys.get(node)
        if kp is None:
            if node == 2 * self.leaf_index:
                kp = self._leaf_priv, self.suite.hpke_public_key(self._leaf_priv)
            else:
                ps = self._path_secrets.get(node)
                if ps is None:
                    return None
                kp = self.suite.derive_key_pair(self.suite.derive_secret(ps, b"node"))
            self._keys[node] = kp
        return kp

    def private_key(self, node: int) -> Optional[bytes]:
        if int(node) == 2 * self.leaf_index:
            return self._leaf_priv
        kp = self.key_pair(node)
        return None if kp is None else kp[0]

    def install_path_secret(self, tree: RatchetTree, sender: int, path_secret: bytes) -> Secret:
        """A joiner's step of §12.4.3.1: ``path_secret`` (from ``GroupSecrets``) belongs to the
        lowest node of the committer's filtered direct path above us; derive it and every node
        above it on that path, check the public keys against ``tree`` (the new tree) and return
        the commit secret."""
        fdp = tree.filtered_direct_path(sender)
        me = 2 * self.leaf_index
        idx = next((i for i, p in enumerate(fdp) if tm.is_ancestor(p, me)), None)
        if idx is None:
            raise TreeValidationError("no node of the committer's path is above us",
                                      vid="MLS-TREEKEM-NO-ANCESTOR")
        secrets = _chain(self.suite, raw(path_secret), len(fdp) - idx)
        for k, p in enumerate(fdp[idx:]):
            self.set_path_secret(p, secrets[k])
            node = tree.node(p)
            if node is None or node.encryption_key != self.public_key(p):
                self.forget(p)
                raise TreeValidationError(f"path secret for node {p} does not match the tree",
                                          vid="MLS-TREEKEM-PUBKEY", where=f"node {p}")
        return Secret(secrets[-1], label="commit_secret")

    def prune(self, tree: RatchetTree, *, check_keys: bool = True) -> List[int]:
        """Forget path secrets for nodes that are blank in ``tree`` (after a Remove or Update
        blanked them, §12.1) or, with ``check_keys``, whose public key is no longer ours.
        Returns the forgotten node indices."""
        gone = []
        for node in list(self._path_secrets):
            tnode = tree.node(node) if node < tree.n_nodes else None
            if tnode is None or (check_keys and tnode.encryption_key != self.public_key(node)):
                self.forget(node)
                gone.append(node)
        return gone

    def check_against(self, tree: RatchetTree) -> None:
        """Every key we hold matches the public key in ``tree`` (§12.4.3.1 for a joiner)."""
        for node in self.nodes:
            pub = self.public_key(node)
            tnode = tree.node(node)
            if tnode is None or tnode.encryption_key != pub:
                raise TreeValidationError(f"our private key for node {node} does not match the tree",
                                          vid="MLS-TREEKEM-PRIVATE-KEY", where=f"node {node}")


@dataclass(frozen=True)
class PathResult:
    """What one side of a commit ends with: the new public tree, our private state, secrets.

    ``path_secret`` is the secret of the lowest updated node we share with the sender (for a
    receiver) or ``path_secret[0]`` (for the committer); ``commit_secret`` feeds the key schedule.
    """

    tree: RatchetTree
    private: PrivateTree
    commit_secret: Secret
    path_secret: Optional[Secret]
    group_context: GroupContext
    update_path: UpdatePath


def _chain(suite: CipherSuite, first: bytes, count: int) -> List[bytes]:
    """``count + 1`` path secrets starting at ``first``; the last one is the commit secret."""
    out = [first]
    for _ in range(count):
        out.append(suite.derive_secret(out[-1], b"path"))
    return out


def _merge(tree: RatchetTree, sender: int, leaf: LeafNode, fdp: Sequence[int], pubs: List[bytes]) -> bytes:
    """Install the path in ``tree`` (in place) and return the leaf's parent hash as computed."""
    tree.merge_path(sender, leaf, {p: ParentNode(k) for p, k in zip(fdp, pubs)})
    leaf_ph, _ = tree.compute_path_parent_hashes(sender)
    return leaf_ph


def _excluded_nodes(exclude: Iterable[int]) -> set:
    return {2 * int(u) for u in exclude}


def create_update_path(tree: RatchetTree, leaf_index: int, group_context: GroupContext,
                       signature_priv: bytes, *, leaf_secret: Optional[bytes] = None,
                       exclude: Iterable[int] = (), rng: Optional[Rng] = None,
                       leaf_template: Optional[LeafNode] = None) -> PathResult:
    """Build an UpdatePath for ``leaf_index`` (§12.4.1 steps 3–6).

    ``tree`` is the tree *after* the commit's proposals; it is not modified. ``group_context``
    is the provisional GroupContext of the new epoch; its ``tree_hash`` is replaced by the hash of
    the new tree. ``exclude`` lists leaf indices added by the same commit (no ciphertexts for
    them). ``leaf_secret`` (``Nh`` bytes) makes the path deterministic; otherwise it comes from
    ``rng`` (default :func:`os.urandom`). ``leaf_template`` overrides the fields copied into the
    new leaf (default: the current leaf)."""
    suite = tree.suite
    old_leaf = tree.leaf(leaf_index)
    template = leaf_template if leaf_template is not None else old_leaf
    if template is None:
        raise UsageError(f"leaf {leaf_index} is blank", vid="MLS-TREEKEM-BLANK-LEAF")
    if leaf_secret is None:
        leaf_secret = (rng or os.urandom)(suite.hash_length)
    leaf_secret = raw(leaf_secret)
    fdp = tree.filtered_direct_path(leaf_index)
    leaf_priv, leaf_pub = suite.derive_key_pair(suite.derive_secret(leaf_secret, b"node"))
    secrets = _chain(suite, suite.derive_secret(leaf_secret, b"path"), len(fdp))
    pairs = [suite.derive_key_pair(suite.derive_secret(s, b"node")) for s in secrets[:-1]]

    tree.tree_hash()  # warm the caller's hash cache: the copy below inherits it
    new_tree = tree.copy()
    unsigned = replace(template, encryption_key=leaf_pub, leaf_node_source=LeafNodeSource.COMMIT,
                       lifetime=None, parent_hash=b"", signature=b"")
    leaf_ph = _merge(new_tree, leaf_index, unsigned, fdp, [pub for _, pub in pairs])
    leaf = replace(unsigned, parent_hash=leaf_ph).signed(suite, signature_priv,
                                                         group_id=group_context.group_id,
                                                         leaf_index=leaf_index)
    new_tree.set_node(2 * leaf_index, leaf)
    gc = replace(group_context, tree_hash=new_tree.tree_hash())
    ctx = gc.to_bytes()

    excluded = _excluded_nodes(exclude)
    # EncryptWithLabel(pk, "UpdatePathNode", GroupContext, path_secret) = SealBase(pk,
    # EncryptContext, "", path_secret) (§5.1.3): one EncryptContext for every ciphertext
    info = suite._encrypt_context(UPDATE_PATH_LABEL, ctx)
    nodes = new_tree.nodes
    # (path position, recipient's public key, path secret) of every ciphertext, in wire order
    jobs: List[Tuple[int, bytes, bytes]] = []
    for i, p in enumerate(fdp):
        child = new_tree.copath_child(p, leaf_index)
        plaintext = secrets[i]  # the raw path secret (§7.6; PathSecret<V> is only for Welcome)
        for r in new_tree.resolution(child):
            if r in excluded:
                continue
            target = nodes[r]
            assert target is not None  # a resolution holds only non-blank nodes (§4.1.2)
            jobs.append((i, target.encryption_key, plaintext))

    def seal(job: Tuple[int, bytes, bytes]) -> HPKECiphertext:
        return HPKECiphertext(*suite.hpke_seal(job[1], info, b"", job[2], rng=rng))

    # the seals are independent and cryptography's HPKE releases the GIL: with OS randomness they
    # run on the worker threads (the order of an injected rng's or a patched os.urandom's draws
    # must stay that of the loop, so those seal in this thread)
    fresh = rng is None and os.urandom is _URANDOM
    sealed = workers.pool.map(seal, jobs, parallel=None if fresh else False)
    cts: List[List[HPKECiphertext]] = [[] for _ in fdp]
    for (i, _, _), ct in zip(jobs, sealed):
        cts[i].append(ct)
    path_nodes = [UpdatePathNode(pairs[i][1], tuple(cts[i])) for i in range(len(fdp))]
    update_path = UpdatePath(leaf, tuple(path_nodes))

    private = PrivateTree(suite, leaf_index, leaf_priv, {p: secrets[i] for i, p in enumerate(fdp)})
    first = Secret(secrets[0], label="path_secret") if fdp else None
    return PathResult(new_tree, private, Secret(secrets[-1], label="commit_secret"), first, gc,
                      update_path)


@dataclass(frozen=True)
class AppliedPath:
    """An UpdatePath checked and merged into a copy of the tree (the public half of §12.4.2)."""

    tree: RatchetTree          # the tree the path was applied to (after proposals), unchanged
    new_tree: RatchetTree      # with the sender's new leaf and path
    sender: int
    update_path: UpdatePath
    filtered_direct_path: Tuple[int, ...]


def apply_update_path(tree: RatchetTree, sender: int, update_path: UpdatePath,
                      group_id: bytes) -> AppliedPath:
    """The public half of §12.4.2: validate ``update_path`` against ``tree`` (after proposals) and
    merge it into a copy. Checks the path length, the leaf source, the leaf's parent hash, the
    leaf signature and that the new keys are not already in the tree. Members and passive
    observers alike can do this; decrypting is :func:`decrypt_update_path`."""
    suite = tree.suite
    if tree.leaf(sender) is None:
        raise TreeValidationError(f"sender leaf {sender} is blank", vid="MLS-TREEKEM-SENDER")
    fdp = tree.filtered_direct_path(sender)
    if len(update_path.nodes) != len(fdp):
        raise TreeValidationError(
            f"UpdatePath has {len(update_path.nodes)} nodes, the sender's filtered direct path "
            f"{len(fdp)}", vid="MLS-TREEKEM-PATH-LENGTH")
    leaf = update_path.leaf_node
    if leaf.leaf_node_source != LeafNodeSource.COMMIT:
        raise TreeValidationError("UpdatePath leaf must have source commit",
                                  vid="MLS-TREEKEM-LEAF-SOURCE")
    new_keys = [leaf.encryption_key] + [n.encryption_key for n in update_path.nodes]
    if len(set(new_keys)) != len(new_keys):
        raise TreeValidationError("UpdatePath repeats an encryption key", vid="MLS-TREE-DUP-ENC-KEY")
    replaced = {2 * sender, *tree.direct_path(sender)}
    existing = {bytes(n.encryption_key) for i, n in enumerate(tree.nodes) if n is not None and i not in replaced}
    if any(bytes(k) in existing for k in new_keys):
        raise TreeValidationError("UpdatePath reuses an encryption key of the tree",
                                  vid="MLS-TREE-DUP-ENC-KEY")
    tree.tree_hash()  # warm the caller's hash cache: the copy below inherits it
    new_tree = tree.copy()
    leaf_ph = _merge(new_tree, sender, leaf, fdp, [n.encryption_key for n in update_path.nodes])
    if leaf.parent_hash != leaf_ph:
        raise TreeValidationError("UpdatePath leaf parent_hash does not match the path",
                                  vid="MLS-TREE-PARENT-HASH", where=f"leaf {sender}")
    try:
        leaf.verify(suite, group_id=group_id, leaf_index=sender)
    except (SignatureError, DecodeError) as exc:
        raise SignatureError(f"UpdatePath leaf signature does not verify: {exc.message}",
                             vid="MLS-TREE-LEAF-SIGNATURE", where=f"leaf {sender}") from exc
    return AppliedPath(tree, new_tree, sender, update_path, tuple(fdp))


def process_update_path(tree: RatchetTree, sender: int, update_path: UpdatePath,
                        group_context: GroupContext, private: PrivateTree, *,
                        exclude: Iterable[int] = ()) -> PathResult:
    """Receive an UpdatePath from leaf ``sender`` (§12.4.2) as the member ``private`` describes.

    ``tree`` is the tree after the commit's proposals (unchanged here); ``group_context`` the
    provisional GroupContext (its ``tree_hash`` is replaced by the new tree's); ``exclude`` the
    leaves added by the same commit. Returns the new tree, our updated private state and the
    commit secret."""
    if private.leaf_index == sender:
        raise UsageError("a member does not process its own UpdatePath", vid="MLS-TREEKEM-OWN-PATH")
    applied = apply_update_path(tree, sender, update_path, group_context.group_id)
    return decrypt_update_path(applied, group_context, private, exclude=exclude)


def decrypt_update_path(applied: AppliedPath, group_context: GroupContext, private: PrivateTree, *,
                        exclude: Iterable[int] = ()) -> PathResult:
    """The private half of §12.4.2: decrypt the path secret of the lowest path node above us
    with a key we hold, derive the rest up to the commit secret and check each derived public key.
    ``group_context`` is the provisional GroupContext (its ``tree_hash`` is replaced by the new
    tree's); ``exclude`` the leaves added by the same commit."""
    tree, new_tree, sender = applied.tree, applied.new_tree, applied.sender
    update_path, fdp = applied.update_path, applied.filtered_direct_path
    suite = tree.suite
    me = private.leaf_index
    if me == sender:
        raise UsageError("a member does not process its own UpdatePath", vid="MLS-TREEKEM-OWN-PATH")
    gc = replace(group_context, tree_hash=new_tree.tree_hash())

    my_node = 2 * me
    idx = next((i for i, p in enumerate(fdp) if tm.is_ancestor(p, my_node)), None)
    if idx is None:  # pragma: no cover - the root is always on the filtered path when we exist
        raise TreeValidationError("no node of the sender's path is above us", vid="MLS-TREEKEM-NO-ANCESTOR")
    child = new_tree.copath_child(fdp[idx], sender)
    excluded = _excluded_nodes(exclude)
    res = [r for r in new_tree.resolution(child) if r not in excluded]
    cts = update_path.nodes[idx].encrypted_path_secret
    if len(cts) != len(res):
        raise TreeValidationError(f"path node {fdp[idx]}: {len(cts)} ciphertexts for a resolution of "
                                  f"{len(res)}", vid="MLS-TREEKEM-CIPHERTEXTS", where=f"node {fdp[idx]}")
    pos = key = None
    for j, r in enumerate(res):
        if tm.is_ancestor(r, my_node):
            key = private.private_key(r)
            if key is not None:
                pos = j
                break
    if pos is None:
        raise MissingKeyError(f"no private key for the resolution of node {child}",
                              vid="MLS-TREEKEM-NOKEY", where=f"node {fdp[idx]}")
    ct = cts[pos]
    assert key is not None  # found with pos
    secret = suite.decrypt_with_label(key, UPDATE_PATH_LABEL, gc.to_bytes(), ct.kem_output, ct.ciphertext)
    if len(secret) != suite.hash_length:
        raise DecodeError(f"decrypted path secret has {len(secret)} bytes, expected {suite.hash_length}",
                          vid="MLS-TREEKEM-PATH-SECRET", where=f"node {fdp[idx]}")
    secrets = _chain(suite, secret, len(fdp) - idx)
    new_private = private.copy()
    for q in set(tree.direct_path(me)) & set(tree.direct_path(sender)):
        new_private.forget(q)
    new_private.prune(new_tree, check_keys=False)
    for k, p in enumerate(fdp[idx:]):
        new_private.set_path_secret(p, secrets[k])
        pub = new_private.public_key(p)
        if pub != update_path.nodes[idx + k].encryption_key:
            raise TreeValidationError(f"derived public key for node {p} does not match the UpdatePath",
                                      vid="MLS-TREEKEM-PUBKEY", where=f"node {p}")
    return PathResult(new_tree, new_private, Secret(secrets[-1], label="commit_secret"),
                      Secret(secret, label="path_secret"), gc, update_path)


__all__ = ["PrivateTree", "PathResult", "AppliedPath", "create_update_path", "apply_update_path",
           "decrypt_update_path",
           "process_update_path", "UPDATE_PATH_LABEL"]
