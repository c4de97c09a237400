"""Ratchet tree (RFC 9420 §7) and TreeKEM (§7.4–§7.6, §12.4.2): gbp_lab.core.mls.tree / .treekem.

Known answers come from the vendored official vectors (tree-validation, tree-operations, treekem);
the reference peer (``gbp_stack``) provides trees it built itself (its state export) whose tree hash
and validity we check. Hostile inputs: broken parent hash, bad leaf signature, duplicate keys,
inconsistent unmerged leaves, malformed bytes, tampered update paths → typed errors.
"""
from __future__ import annotations

import gzip
import json
import os
import pathlib
import struct
import sys
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbp_lab.core.errors import (DecodeError, DecryptError, GbpLabError, MissingKeyError,
                                 SignatureError, TrailingBytesError, TruncatedError, UsageError)
from gbp_lab.core.tls import encode_vec
from gbp_lab.core.mls.credentials import Credential
from gbp_lab.core.mls.leaf_node import Capabilities, LeafNode, Lifetime
from gbp_lab.core.mls import treemath as tm
from gbp_lab.core.mls.nodes import ParentNode
from gbp_lab.core.mls.registries import LeafNodeSource
from gbp_lab.core.mls.schedule import GroupContext
from gbp_lab.core.mls.suites import CipherSuite
from gbp_lab.core.mls.tree import RatchetTree, TreeValidationError
from gbp_lab.core.mls.treekem import (PrivateTree, apply_update_path, create_update_path,
                                      decrypt_update_path, process_update_path)
from gbp_lab.core.mls.update_path import HPKECiphertext, UpdatePath, UpdatePathNode
from gbp_lab.core.mls.vectors import tree_operations, tree_validation
from gbp_lab.core.mls.vectors import treekem as treekem_checker

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # pytest runs with importlib mode
import mls_structs  # noqa: E402

VEC = os.path.join(os.path.dirname(__file__), "vectors", "mls")


def _load(name):
    with gzip.open(os.path.join(VEC, name + ".json.gz"), "rt") as fh:
        return json.load(fh)


TREE_VALIDATION = _load("tree-validation")
TREE_OPERATIONS = _load("tree-operations")
TREEKEM = _load("treekem")


def _tree(case, key="tree"):
    return RatchetTree.from_bytes(bytes.fromhex(case[key]), case["cipher_suite"])


def _rich_case(suite=1):
    """A tree-validation case with many non-blank parent nodes and unmerged leaves."""
    best = None
    for case in TREE_VALIDATION:
        if case["cipher_suite"] != suite:
            continue
        t = _tree(case)
        parents = sum(1 for i, n in enumerate(t.nodes) if i % 2 and n is not None)
        unmerged = sum(len(n.unmerged_leaves) for i, n in enumerate(t.nodes) if i % 2 and n is not None)
        score = (unmerged > 0, parents)
        if best is None or score > best[0]:
            best = (score, case)
    return best[1]


# ------------------------------------------------------------------------------------------
# official vectors, case by case (small files in full, treekem sampled: the runner test does all)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("i", range(len(TREE_VALIDATION)))
def test_tree_validation_vector(i):
    tree_validation.check(TREE_VALIDATION[i])


@pytest.mark.parametrize("i", range(len(TREE_OPERATIONS)))
def test_tree_operations_vector(i):
    tree_operations.check(TREE_OPERATIONS[i])


@pytest.mark.parametrize("suite", sorted({c["cipher_suite"] for c in TREEKEM}))
def test_treekem_vector_one_case_per_suite(suite):
    case = min((c for c in TREEKEM if c["cipher_suite"] == suite), key=lambda c: len(c["ratchet_tree"]))
    treekem_checker.check(case)


def test_every_vector_tree_round_trips_bytes():
    for case in TREE_VALIDATION:
        raw = bytes.fromhex(case["tree"])
        assert _tree(case).to_bytes() == raw
    for case in TREE_OPERATIONS:
        for key in ("tree_before", "tree_after"):
            assert _tree(case, key).to_bytes() == bytes.fromhex(case[key])


# ------------------------------------------------------------------------------------------
# structure: add / update / remove / truncate, caches
# ------------------------------------------------------------------------------------------
def test_tree_hash_cache_follows_mutations():
    case = _rich_case()
    tree = _tree(case)
    before = tree.tree_hashes()
    assert [h.hex() for h in before] == case["tree_hashes"]
    members = [li for li, _ in tree.leaves()]
    victim = members[len(members) // 2]
    leaf = tree.leaf(victim)
    tree.remove_leaf(victim)
    fresh = RatchetTree.from_bytes(tree.to_bytes(), tree.suite)
    assert tree.tree_hash() == fresh.tree_hash()
    assert tree.tree_hash() not in before
    assert tree.tree_hashes() == fresh.tree_hashes()
    index = tree.add_leaf(leaf)
    assert index == min(i for i in range(tree.n_leaves) if i == victim or tree.leaf(i) is None or i == index)
    assert tree.leaf(index) == leaf
    fresh = RatchetTree.from_bytes(tree.to_bytes(), tree.suite)
    assert tree.tree_hashes() == fresh.tree_hashes()


def test_add_fills_leftmost_blank_then_extends_and_marks_unmerged():
    case = _rich_case()
    tree = _tree(case)
    blanks = [i for i in range(tree.n_leaves) if tree.leaf(i) is None]
    some_leaf = next(leaf for _, leaf in tree.leaves())
    for expected in blanks:
        assert tree.add_leaf(some_leaf) == expected
        for p in tree.direct_path(expected):
            node = tree.node(p)
            assert node is None or expected in node.unmerged_leaves
    n = tree.n_leaves
    assert tree.add_leaf(some_leaf) == n  # no blank left: the tree doubles
    assert tree.n_leaves == 2 * n
    assert tree.node(tree.root) is None


def test_remove_truncates_blank_right_half():
    case = _rich_case()
    tree = _tree(case)
    n = tree.n_leaves
    for li in [i for i, _ in tree.leaves()][1:]:
        tree.remove_leaf(li)
    assert n > 1 and tree.n_leaves == 1 and tree.n_nodes == 1
    assert RatchetTree.from_bytes(tree.to_bytes(), tree.suite) == tree
    with pytest.raises(UsageError):
        tree.remove_leaf(5)
    with pytest.raises(UsageError):
        tree.node(99)


def test_update_blanks_direct_path():
    case = TREE_OPERATIONS[2]  # the Update case of the vector file
    tree = _tree(case, "tree_before")
    tree_operations.check(case)
    sender = case["proposal_sender"]
    leaf = tree.leaf(sender)
    tree.update_leaf(sender, leaf)
    assert all(tree.node(p) is None for p in tree.direct_path(sender))


def test_describe_rows_follow_the_vector():
    case = _rich_case()
    tree = _tree(case)
    rows = tree.describe()
    assert [r["tree_hash"] for r in rows] == case["tree_hashes"]
    for r in rows:
        node = tree.node(r["node"])
        assert r["blank"] == (node is None)
        assert r["kind"] == ("leaf" if r["node"] % 2 == 0 else "parent")
        if node is not None:
            assert r["encryption_key"] == node.encryption_key.hex()
            if r["kind"] == "parent":
                assert r["unmerged_leaves"] == tuple(node.unmerged_leaves)


def test_members_listing():
    tree = _tree(_rich_case())
    members = tree.members()
    assert [m.leaf_index for m in members] == [i for i, _ in tree.leaves()]
    for m in members:
        assert m.encryption_key == tree.leaf(m.leaf_index).encryption_key
        assert m.identity == tree.leaf(m.leaf_index).credential.identity


# ------------------------------------------------------------------------------------------
# hostile trees
# ------------------------------------------------------------------------------------------
def _rebuild(tree, index, node):
    nodes = list(tree.nodes)
    nodes[index] = node
    return RatchetTree(tree.suite, nodes)


def _case_with_nonroot_parent():
    for case in TREE_VALIDATION:
        t = _tree(case)
        ps = [i for i, n in enumerate(t.nodes) if i % 2 and n is not None]
        if ps:
            return case, t, ps
    raise AssertionError("no tree with parent nodes")


def test_invalid_parent_hash_is_rejected():
    case, tree, parents = _case_with_nonroot_parent()
    gid = bytes.fromhex(case["group_id"])
    tree.validate(gid)
    p = parents[0]
    _, new_pub = tree.suite.generate_key_pair()
    bad = _rebuild(tree, p, replace(tree.node(p), encryption_key=new_pub))
    with pytest.raises(TreeValidationError) as ei:
        bad.validate(gid)
    assert ei.value.vid == "MLS-TREE-PARENT-HASH"
    bad2 = _rebuild(tree, p, replace(tree.node(p), parent_hash=b"\x00" * tree.suite.hash_length))
    with pytest.raises(TreeValidationError) as ei:
        bad2.verify_parent_hashes()
    assert ei.value.vid == "MLS-TREE-PARENT-HASH"


def test_bad_leaf_signature_is_rejected():
    case = _rich_case()
    tree = _tree(case)
    li, leaf = next(tree.leaves())
    sig = bytearray(leaf.signature)
    sig[-1] ^= 1
    bad = _rebuild(tree, 2 * li, replace(leaf, signature=bytes(sig)))
    with pytest.raises(SignatureError) as ei:
        bad.validate(bytes.fromhex(case["group_id"]))
    assert ei.value.vid == "MLS-TREE-LEAF-SIGNATURE" and ei.value.where == f"leaf {li}"


def test_commit_leaf_signature_binds_the_group_id():
    case = next(c for c in TREE_VALIDATION
                if any(l.leaf_node_source == LeafNodeSource.COMMIT for _, l in _tree(c).leaves()))
    tree = _tree(case)
    tree.verify_leaf_signatures(bytes.fromhex(case["group_id"]))
    with pytest.raises(SignatureError):
        tree.verify_leaf_signatures(b"another group")


def test_duplicate_encryption_key_is_rejected():
    case = _rich_case()
    tree = _tree(case)
    (a, la), (b, lb) = list(tree.leaves())[:2]
    bad = _rebuild(tree, 2 * b, replace(lb, encryption_key=la.encryption_key))
    with pytest.raises(TreeValidationError) as ei:
        bad.validate(bytes.fromhex(case["group_id"]))
    assert ei.value.vid == "MLS-TREE-DUP-ENC-KEY"
    # a parent node repeating a leaf's key
    case, t2, parents = _case_with_nonroot_parent()
    leaf0 = next(l for _, l in t2.leaves())
    bad = _rebuild(t2, parents[0], replace(t2.node(parents[0]), encryption_key=leaf0.encryption_key))
    with pytest.raises(TreeValidationError) as ei:
        bad.verify_unique_keys()
    assert ei.value.vid == "MLS-TREE-DUP-ENC-KEY"


def test_duplicate_signature_key_is_rejected():
    case = _rich_case()
    tree = _tree(case)
    (a, la), (b, lb) = list(tree.leaves())[:2]
    bad = _rebuild(tree, 2 * b, replace(lb, signature_key=la.signature_key))
    with pytest.raises(TreeValidationError) as ei:
        bad.verify_unique_keys()
    assert ei.value.vid == "MLS-TREE-DUP-SIG-KEY"


def test_unmerged_leaf_outside_subtree_is_rejected():
    case, tree, parents = _case_with_nonroot_parent()
    p = min(parents)
    first, end = tm.subtree_leaves(p)
    outside = end if end < tree.n_leaves else first - 1
    bad = _rebuild(tree, p, replace(tree.node(p), unmerged_leaves=(int(outside),)))
    with pytest.raises(TreeValidationError) as ei:
        bad.verify_unmerged_leaves()
    assert ei.value.vid == "MLS-TREE-UNMERGED"


def test_unmerged_chain_must_list_leaf_at_every_level():
    # a 4-leaf tree: root 3 lists leaf 0 as unmerged but node 1 (non-blank, between) does not
    suite = CipherSuite.get(1)
    leaves = [mls_structs.signed_leaf(suite, f"m{i}".encode())[0] for i in range(4)]
    keys = [suite.generate_key_pair()[1] for _ in range(3)]
    nodes = [leaves[0], ParentNode(keys[0]), leaves[1], ParentNode(keys[1], unmerged_leaves=(0,)),
             leaves[2], ParentNode(keys[2]), leaves[3]]
    with pytest.raises(TreeValidationError) as ei:
        RatchetTree(suite, nodes).verify_unmerged_leaves()
    assert ei.value.vid == "MLS-TREE-UNMERGED-CHAIN"


def test_malformed_tree_bytes_are_typed_errors():
    case = _rich_case()
    raw = bytes.fromhex(case["tree"])
    suite = case["cipher_suite"]
    with pytest.raises(TrailingBytesError):
        RatchetTree.from_bytes(raw + b"\x00", suite)
    for cut in (1, 2, len(raw) // 3, len(raw) - 1):
        with pytest.raises(TruncatedError):
            RatchetTree.from_bytes(raw[:cut], suite)
    with pytest.raises(DecodeError) as ei:
        RatchetTree.from_bytes(b"\x00", suite)
    assert ei.value.vid == "MLS-TREE-EMPTY"
    leaf = next(l for _, l in _tree(case).leaves())
    # [present leaf, blank]: the list must not end with a blank node
    with pytest.raises(DecodeError) as ei:
        RatchetTree.from_bytes(encode_vec(b"\x01\x01" + leaf.to_bytes() + b"\x00"), suite)
    assert ei.value.vid == "MLS-TREE-TRAILING-BLANK"
    # a parent node at position 0
    parent = b"\x01\x02" + ParentNode(b"\x01" * 32).to_bytes()
    with pytest.raises(DecodeError) as ei:
        RatchetTree.from_bytes(encode_vec(parent), suite)
    assert ei.value.vid == "MLS-TREE-NODE-TYPE"
    # a presence byte that is neither 0 nor 1
    with pytest.raises(DecodeError):
        RatchetTree.from_bytes(b"\x01\x02", suite)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_tree_bytes_only_raise_typed_errors(data):
    case = TREE_VALIDATION[data.draw(st.integers(0, len(TREE_VALIDATION) - 1))]
    raw = bytearray(bytes.fromhex(case["tree"]))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    try:
        tree = RatchetTree.from_bytes(bytes(raw), case["cipher_suite"])
        tree.validate(bytes.fromhex(case["group_id"]))
        tree.tree_hashes()
    except GbpLabError:
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_tree_methods_on_unvalidated_trees_only_raise_typed_errors(data):
    """Resolutions, parent-hash checks and paths on a decoded but *unvalidated* tree."""
    case = TREE_VALIDATION[data.draw(st.integers(0, len(TREE_VALIDATION) - 1))]
    raw = bytearray(bytes.fromhex(case["tree"]))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] = data.draw(st.integers(0, 255))
    try:
        tree = RatchetTree.from_bytes(bytes(raw), case["cipher_suite"])
    except GbpLabError:
        return
    for call in (lambda: [tree.resolution(i) for i in range(tree.n_nodes)],
                 tree.verify_parent_hashes, tree.verify_unmerged_leaves, tree.verify_unique_keys,
                 lambda: [tree.copath_resolutions(li) for li, _ in tree.leaves()]):
        try:
            call()
        except GbpLabError:
            pass


def test_copath_resolutions_name_the_recipients():
    case = _rich_case()
    tree = _tree(case)
    for li, _ in tree.leaves():
        rows = tree.copath_resolutions(li)
        assert [p for p, _, _ in rows] == tree.filtered_direct_path(li)
        for p, child, res in rows:
            assert res == case["resolutions"][child] and res
            assert not tm.is_ancestor(child, 2 * li) and tm.is_ancestor(p, 2 * li)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_tree_bytes_only_raise_typed_errors(blob):
    try:
        tree = RatchetTree.from_bytes(blob, 1)
        tree.validate(b"g")
    except GbpLabError:
        pass


# ------------------------------------------------------------------------------------------
# TreeKEM: our own groups, end to end
# ------------------------------------------------------------------------------------------


class _Group:
    """A tiny TreeKEM-only group: public tree, one PrivateTree and signature key per member."""

    def __init__(self, suite_id, names):
        self.suite = CipherSuite.get(suite_id)
        self.gid = b"tree-test-group"
        self.epoch = 0
        self.privs, self.sigs = {}, {}
        self.tree = None
        for name in names:
            self.add(name)

    def add(self, name):
        leaf, enc_priv, sig_priv = mls_structs.signed_leaf(self.suite, name)
        if self.tree is None:
            self.tree, li = RatchetTree.create(self.suite, leaf), 0
        else:
            li = self.tree.add_leaf(leaf)
        self.privs[li] = PrivateTree(self.suite, li, enc_priv)
        self.sigs[li] = sig_priv
        return li

    def gc(self):
        return GroupContext(int(self.suite.id), self.gid, self.epoch + 1, b"", b"\x00" * 32)

    def commit(self, sender, exclude=()):
        mine = create_update_path(self.tree, sender, self.gc(), self.sigs[sender], exclude=exclude)
        wire = UpdatePath.from_bytes(mine.update_path.to_bytes())
        assert wire == mine.update_path
        secrets = {sender: mine.commit_secret}
        for li, priv in self.privs.items():
            if li == sender or li in exclude:
                continue
            res = process_update_path(self.tree, sender, wire, self.gc(), priv, exclude=exclude)
            assert res.tree == mine.tree and res.tree.tree_hash() == mine.tree.tree_hash()
            res.private.check_against(res.tree)
            self.privs[li] = res.private
            secrets[li] = res.commit_secret
        self.privs[sender] = mine.private
        self.tree = mine.tree
        self.epoch += 1
        self.tree.validate(self.gid)
        assert len({s.reveal() for s in secrets.values()}) == 1
        return mine


@pytest.mark.parametrize("suite_id", [1, 2, 3, 4, 5, 6, 7])
def test_treekem_group_lifecycle_all_suites(suite_id):
    g = _Group(suite_id, [b"alice", b"bob", b"carol", b"dave"])
    g.commit(0)
    assert all(g.tree.node(p) is not None for p in g.tree.filtered_direct_path(0))
    g.commit(2)
    # remove bob, dave commits: bob's private state is gone
    g.tree.remove_leaf(1)
    del g.privs[1], g.sigs[1]
    assert g.privs[0].prune(g.tree) == [1, 3]  # bob's direct path is blank now
    for priv in g.privs.values():
        priv.prune(g.tree)
    g.commit(3)
    # erin joins in bob's old slot; she is unmerged on the non-blank parents above her
    erin = g.add(b"erin")
    assert erin == 1
    assert any(g.tree.node(p) is not None and erin in g.tree.node(p).unmerged_leaves
               for p in g.tree.direct_path(erin))
    g.tree.validate(g.gid)
    mine = g.commit(0, exclude=(erin,))
    # erin gets the path secret of the lowest common node via the Welcome (GroupSecrets)
    common = next(p for p in mine.tree.filtered_direct_path(0) if tm.is_ancestor(p, 2 * erin))
    ps = mine.private.path_secret(common)
    commit_secret = g.privs[erin].install_path_secret(g.tree, 0, ps.reveal())
    assert commit_secret == mine.commit_secret
    g.privs[erin].check_against(g.tree)
    g.commit(erin)
    g.commit(3)


def test_update_path_is_deterministic_with_a_leaf_secret():
    g = _Group(1, [b"a", b"b", b"c"])
    secret = bytes(range(32))
    one = create_update_path(g.tree, 1, g.gc(), g.sigs[1], leaf_secret=secret)
    two = create_update_path(g.tree, 1, g.gc(), g.sigs[1], leaf_secret=secret)
    assert one.commit_secret == two.commit_secret
    assert one.tree.tree_hash() == two.tree.tree_hash()
    assert [n.encryption_key for n in one.update_path.nodes] == [n.encryption_key for n in two.update_path.nodes]
    # and the commit secret is the "path" derivation of the root's path secret
    root_secret = one.private.path_secret(one.tree.root).reveal()
    assert g.suite.derive_secret(root_secret, b"path") == one.commit_secret.reveal()


# ------------------------------------------------------------------------------------------
# hostile update paths
# ------------------------------------------------------------------------------------------
def _fresh():
    g = _Group(1, [b"a", b"b", b"c", b"d"])
    g.commit(0)
    return g


def test_tampered_ciphertext_is_decrypt_error():
    g = _fresh()
    mine = create_update_path(g.tree, 2, g.gc(), g.sigs[2])
    path = mine.update_path
    node0 = path.nodes[0]
    ct = node0.encrypted_path_secret[0]
    bad_ct = HPKECiphertext(ct.kem_output, ct.ciphertext[:-1] + bytes([ct.ciphertext[-1] ^ 1]))
    bad = replace(path, nodes=(replace(node0, encrypted_path_secret=(bad_ct,)),) + path.nodes[1:])
    with pytest.raises(DecryptError):
        process_update_path(g.tree, 2, bad, g.gc(), g.privs[3])
    # a different GroupContext (the provisional context is authenticated as HPKE info)
    wrong = replace(g.gc(), epoch=999)
    with pytest.raises(DecryptError):
        process_update_path(g.tree, 2, path, wrong, g.privs[3])


def test_wrong_path_length_is_rejected():
    g = _fresh()
    path = create_update_path(g.tree, 2, g.gc(), g.sigs[2]).update_path
    with pytest.raises(TreeValidationError) as ei:
        process_update_path(g.tree, 2, replace(path, nodes=path.nodes[:-1]), g.gc(), g.privs[0])
    assert ei.value.vid == "MLS-TREEKEM-PATH-LENGTH"


def test_leaf_parent_hash_mismatch_is_rejected():
    g = _fresh()
    path = create_update_path(g.tree, 2, g.gc(), g.sigs[2]).update_path
    leaf = replace(path.leaf_node, parent_hash=b"\x00" * 32).signed(g.suite, g.sigs[2], g.gid, 2)
    with pytest.raises(TreeValidationError) as ei:
        process_update_path(g.tree, 2, replace(path, leaf_node=leaf), g.gc(), g.privs[0])
    assert ei.value.vid == "MLS-TREE-PARENT-HASH"


def test_leaf_signature_by_another_key_is_rejected():
    g = _fresh()
    path = create_update_path(g.tree, 2, g.gc(), g.sigs[2]).update_path
    forged = path.leaf_node.signed(g.suite, g.sigs[1], g.gid, 2)
    with pytest.raises(SignatureError) as ei:
        process_update_path(g.tree, 2, replace(path, leaf_node=forged), g.gc(), g.privs[0])
    assert ei.value.vid == "MLS-TREE-LEAF-SIGNATURE"


def test_signed_path_with_a_wrong_public_key_is_rejected():
    """A malicious committer publishes a key that does not derive from the path secret."""
    g = _fresh()
    mine = create_update_path(g.tree, 2, g.gc(), g.sigs[2])
    path = mine.update_path
    _, stray = g.suite.generate_key_pair()
    nodes = path.nodes[:-1] + (replace(path.nodes[-1], encryption_key=stray),)
    fdp = g.tree.filtered_direct_path(2)
    t = g.tree.copy()
    t.merge_path(2, path.leaf_node, {p: ParentNode(n.encryption_key) for p, n in zip(fdp, nodes)})
    leaf_ph, _ = t.compute_path_parent_hashes(2)
    leaf = replace(path.leaf_node, parent_hash=leaf_ph).signed(g.suite, g.sigs[2], g.gid, 2)
    bad = UpdatePath(leaf, nodes)
    # the ciphertexts were made under the old tree hash: re-encrypt them under the new context
    t.set_node(4, leaf)
    gc = replace(g.gc(), tree_hash=t.tree_hash())
    fixed = []
    for i, (p, n) in enumerate(zip(fdp, nodes)):
        secret = mine.private.path_secret(p).reveal()
        cts = []
        for r in t.resolution(t.copath_child(p, 2)):
            cts.append(HPKECiphertext(*g.suite.encrypt_with_label(t.node(r).encryption_key, "UpdatePathNode",
                                                                  gc.to_bytes(), secret)))
        fixed.append(UpdatePathNode(n.encryption_key, tuple(cts)))
    bad = UpdatePath(leaf, tuple(fixed))
    with pytest.raises(TreeValidationError) as ei:
        process_update_path(g.tree, 2, bad, g.gc(), g.privs[0])
    assert ei.value.vid == "MLS-TREEKEM-PUBKEY"


def test_missing_private_key_is_missing_key_error():
    g = _fresh()  # leaf 0 committed: node 1 and root 3 hold keys leaf 1 knows via path secrets
    path = create_update_path(g.tree, 2, g.gc(), g.sigs[2]).update_path
    amnesiac = PrivateTree(g.suite, 1, g.privs[1].private_key(2))  # forgot node 1's path secret
    with pytest.raises(MissingKeyError) as ei:
        process_update_path(g.tree, 2, path, g.gc(), amnesiac)
    assert ei.value.vid == "MLS-TREEKEM-NOKEY"


def test_own_path_and_blank_leaf_are_usage_errors():
    g = _fresh()
    path = create_update_path(g.tree, 2, g.gc(), g.sigs[2]).update_path
    with pytest.raises(UsageError):
        process_update_path(g.tree, 2, path, g.gc(), g.privs[2])
    g.tree.remove_leaf(3)
    with pytest.raises(UsageError):
        create_update_path(g.tree, 3, g.gc(), g.sigs[2])


def test_apply_then_decrypt_equals_process():
    case = TREEKEM[0]
    suite = case["cipher_suite"]
    tree = RatchetTree.from_bytes(bytes.fromhex(case["ratchet_tree"]), suite)
    gc = GroupContext(suite, bytes.fromhex(case["group_id"]), case["epoch"], b"",
                      bytes.fromhex(case["confirmed_transcript_hash"]))
    up = case["update_paths"][0]
    path = UpdatePath.from_bytes(bytes.fromhex(up["update_path"]))
    applied = apply_update_path(tree, up["sender"], path, gc.group_id)
    assert applied.new_tree.tree_hash().hex() == up["tree_hash_after"]
    lp = next(l for l in case["leaves_private"] if l["index"] != up["sender"])
    priv = PrivateTree(suite, lp["index"], bytes.fromhex(lp["encryption_priv"]),
                       {p["node"]: bytes.fromhex(p["path_secret"]) for p in lp["path_secrets"]})
    a = decrypt_update_path(applied, gc, priv)
    b = process_update_path(tree, up["sender"], path, gc, priv)
    assert a.commit_secret.reveal().hex() == b.commit_secret.reveal().hex() == up["commit_secret"]
    assert "redacted" in repr(a.commit_secret)


# ------------------------------------------------------------------------------------------
# interop: trees the reference built (gbp_stack state export) hash and validate here
# ------------------------------------------------------------------------------------------
def _state_records(blob):
    """Split an ``export_state`` blob (reference-map §6) into {label: JSON value} for the blob's
    current group (the storage may still hold records of a group the member left, e.g. the
    one-member group it had before accepting a Welcome)."""
    sections, p = [], 0
    while p < len(blob):
        (n,) = struct.unpack_from("<I", blob, p)
        sections.append(blob[p + 4:p + 4 + n])
        p += 4 + n
    storage, group_id = sections[0], sections[3]
    gid_json = json.dumps({"value": {"vec": list(group_id)}}, separators=(",", ":")).encode()
    (count,) = struct.unpack_from("<I", storage, 0)
    p, out = 4, {}
    for _ in range(count):
        (kl,) = struct.unpack_from("<I", storage, p)
        key = storage[p + 4:p + 4 + kl]
        p += 4 + kl
        (vl,) = struct.unpack_from("<I", storage, p)
        if gid_json in key or key.startswith(b"SignatureKeyPair"):
            label, value = key.split(b"{", 1)[0].decode(), json.loads(storage[p + 4:p + 4 + vl])
            if label == "EpochKeyPairs":  # one record per (epoch, leaf): keep them all
                value = out.get(label, []) + value
            out[label] = value
        p += 4 + vl
    return out


def _b(obj):
    return bytes(obj["vec"])


_ENUMS = {"Mls10": 1, "Basic": 1, "X509": 2}


def _leaf_from_json(j, suite):
    pl = j["payload"]
    src = pl["leaf_node_source"]
    kw = {}
    if isinstance(src, dict) and "KeyPackage" in src:
        source = LeafNodeSource.KEY_PACKAGE
        kw["lifetime"] = Lifetime(src["KeyPackage"]["not_before"], src["KeyPackage"]["not_after"])
    elif isinstance(src, dict) and "Commit" in src:
        source = LeafNodeSource.COMMIT
        kw["parent_hash"] = _b(src["Commit"])
    else:
        source = LeafNodeSource.UPDATE
    assert pl["extensions"]["unique"] == []
    caps = pl["capabilities"]
    conv = lambda xs: tuple(_ENUMS.get(x, x) for x in xs)  # noqa: E731
    assert pl["credential"]["credential_type"] == "Basic"
    return LeafNode(_b(pl["encryption_key"]["key"]), _b(pl["signature_key"]["value"]),
                    Credential.basic(_b(pl["credential"]["serialized_credential_content"])),
                    Capabilities(conv(caps["versions"]), conv(caps["ciphersuites"]), conv(caps["extensions"]),
                                 conv(caps["proposals"]), conv(caps["credentials"])),
                    source, extensions=(), signature=_b(j["signature"]["value"]), **kw)


def _reference_tree(records):
    t = records["Tree"]["tree"]
    leaves = [None if l["node"] is None else _leaf_from_json(l["node"], 1) for l in t["leaf_nodes"]]
    parents = [None if p["node"] is None else
               ParentNode(_b(p["node"]["encryption_key"]["key"]), _b(p["node"]["parent_hash"]),
                          tuple(p["node"]["unmerged_leaves"]["list"])) for p in t["parent_nodes"]]
    nodes = []
    for i, leaf in enumerate(leaves):
        nodes.append(leaf)
        if i < len(parents):
            nodes.append(parents[i])
    return RatchetTree(1, nodes)


@pytest.mark.interop
def test_reference_trees_hash_and_validate():
    gbp_stack = pytest.importorskip("gbp_stack")
    alice = gbp_stack.MlsContext.create("alice")
    others = [gbp_stack.MlsContext.create(n) for n in ("bob", "carol", "dave", "erin")]
    try:
        checked = 0
        for k, other in enumerate(others):
            alice.invite(other.export_key_package())
            if k == 2:
                alice.finalize_commit()
                commit = alice.remove_member(1)
                assert commit[:4] == b"\x00\x01\x00\x02"
                alice.finalize_commit()
            rec = _state_records(alice.export_state())
            gc = rec["GroupContext"]
            tree = _reference_tree(rec)
            assert tree.tree_hash() == _b(gc["tree_hash"]), f"tree hash after step {k}"
            tree.validate(_b(gc["group_id"]["value"]))
            # the reference's own leaf key pair matches the tree (EpochKeyPairs hold its path keys)
            suite = CipherSuite.get(1)
            keys = {bytes(kp["public_key"]["key"]["vec"]): bytes(kp["private_key"]["key"]["vec"])
                    for kp in rec["EpochKeyPairs"]}
            tree_keys = {bytes(n.encryption_key) for n in tree.nodes if n is not None}
            assert keys and set(keys) <= tree_keys
            assert all(suite.hpke_public_key(priv) == pub for pub, priv in keys.items())
            assert [m.identity for m in tree.members()][0] == b"alice"
            # our encoding of the reference's tree decodes back to the same tree
            assert RatchetTree.from_bytes(tree.to_bytes(), 1) == tree
            checked += 1
        assert checked == len(others)
    finally:
        for ctx in [alice] + others:
            ctx.close()


@pytest.mark.interop
def test_reference_member_tree_after_a_commit_matches_the_committers():
    """Bob (reference) joins, then processes Alice's path-carrying Add commit: his tree hashes,
    validates and equals Alice's here, and the private keys he derived from her UpdatePath are
    the public keys on his direct path in that tree."""
    gbp_stack = pytest.importorskip("gbp_stack")
    alice, bob, carol = (gbp_stack.MlsContext.create(n) for n in ("alice", "bob", "carol"))
    try:
        bob.accept_welcome(alice.invite(bob.export_key_package()))
        commit, _welcome = alice.invite_full(carol.export_key_package())
        bob.process_message(commit)
        bob.finalize_commit()
        alice.finalize_commit()
        ra, rb = _state_records(alice.export_state()), _state_records(bob.export_state())
        ta, tb = _reference_tree(ra), _reference_tree(rb)
        assert ta == tb and ta.to_bytes() == tb.to_bytes()
        assert tb.tree_hash() == _b(rb["GroupContext"]["tree_hash"]) == _b(ra["GroupContext"]["tree_hash"])
        tb.validate(_b(rb["GroupContext"]["group_id"]["value"]))
        assert tb.leaf(0).leaf_node_source == LeafNodeSource.COMMIT  # alice's commit carried a path
        own = rb["OwnLeafNodeIndex"]
        keys = {bytes(kp["public_key"]["key"]["vec"]) for kp in rb["EpochKeyPairs"]}
        path_keys = {bytes(tb.node(p).encryption_key) for p in tb.direct_path(own) if tb.node(p) is not None}
        assert path_keys and path_keys <= keys
    finally:
        for ctx in (alice, bob, carol):
            ctx.close()


@pytest.mark.interop
def test_reference_key_package_leaf_joins_our_tree():
    gbp_stack = pytest.importorskip("gbp_stack")
    from gbp_lab.core.mls.key_package import KeyPackage
    suite = CipherSuite.get(1)
    g = _Group(1, [b"ours"])
    with gbp_stack.MlsContext.create("peer") as peer:
        kp = KeyPackage.from_bytes(peer.export_key_package())
    li = g.tree.add_leaf(kp.leaf_node)
    g.tree.validate(g.gid)  # the reference's leaf signature verifies here
    assert g.tree.members()[li].identity == b"peer"
    g.commit(0, exclude=(li,))
    assert suite.hash_length == 32


# ------------------------------------------------------------------------------------------
# §7.3 leaf checks across the tree
# ------------------------------------------------------------------------------------------
def test_leaf_checks_credentials_extensions_lifetime_and_tree_hash():
    g = _Group(1, [b"a", b"b"])
    g.tree.validate(g.gid, now=10**9, tree_hash=g.tree.tree_hash())
    with pytest.raises(TreeValidationError) as ei:
        g.tree.validate(g.gid, tree_hash=b"\x00" * 32)
    assert ei.value.vid == "MLS-TREE-HASH"
    # an x509 member whose type the others do not list
    sig_priv, sig_pub = g.suite.generate_signature_key_pair()
    _, enc_pub = g.suite.generate_key_pair()
    x509 = LeafNode(enc_pub, sig_pub, Credential.x509([b"\x30\x00"]),
                    Capabilities(cipher_suites=(1,), credentials=(1, 2)), LeafNodeSource.KEY_PACKAGE,
                    lifetime=Lifetime(100, 200)).signed(g.suite, sig_priv)
    t = g.tree.copy()
    t.add_leaf(x509)
    with pytest.raises(TreeValidationError) as ei:
        t.validate(g.gid)
    assert ei.value.vid == "MLS-TREE-LEAF-CREDENTIAL" and ei.value.where == "leaf 0"
    # lifetime, only when the caller gives the time
    only = RatchetTree.create(g.suite, replace(x509, credential=Credential.basic(b"x"),
                                               capabilities=Capabilities(cipher_suites=(1,))).signed(g.suite, sig_priv))
    only.validate(g.gid)
    with pytest.raises(TreeValidationError) as ei:
        only.validate(g.gid, now=500)
    assert ei.value.vid == "MLS-TREE-LEAF-LIFETIME"
    # an extension the leaf's capabilities do not list
    from gbp_lab.core.mls.extensions import Extension
    ext_leaf = replace(only.leaf(0), extensions=(Extension(0xFF00, b"x"),)).signed(g.suite, sig_priv)
    with pytest.raises(TreeValidationError) as ei:
        RatchetTree.create(g.suite, ext_leaf).validate(g.gid)
    assert ei.value.vid == "MLS-TREE-LEAF-EXTENSION"
