"""The signature checks of a Welcome join (RFC 9420 §12.4.3.1) run as one batch on the worker
pool — every leaf signature of the ratchet tree and the GroupInfo signature — while the joiner
derives its key schedule and builds its state. Whatever overlaps, the error a bad Welcome gets is
the one checking in order gives: tree structure and hashes, then the leaf signatures (lowest leaf),
then membership of our leaf and of the signer, then the GroupInfo signature, then the
confirmation tag; and the pool's GIL switch interval is restored after every batch."""
from __future__ import annotations

from dataclasses import replace

import pytest

from gbp_lab.core.errors import ProtocolError
from gbp_lab.core.mls.messages import (Capabilities, Credential, GroupInfo, KeyPackage, LeafNode, LeafNodeSource,
                              Lifetime, ProtocolVersion, create_welcome, process_welcome)
from gbp_lab.core.mls import signatures as sig
from gbp_lab.core.mls import workers
from gbp_lab.core.mls.group import join_welcome
from gbp_lab.core.mls.schedule import GroupContext, key_schedule_from_joiner
from gbp_lab.core.mls.suites import CipherSuite
from gbp_lab.core.mls.tree import RatchetTree

SUITE = CipherSuite.get(1)
GID = b"welcome-checks-g"
OTHERS = 10  # leaves besides the joiner: a batch the pool takes


@pytest.fixture(autouse=True)
def threads(monkeypatch):
    """No memo (every check runs the primitive), a pool with helper threads taking any batch."""
    monkeypatch.setattr(sig.verified_signatures, "enabled", False)
    monkeypatch.setattr(workers.pool, "workers", max(3, workers.pool.workers))
    monkeypatch.setattr(workers.pool, "min_batch", 2)
    workers.pool.shutdown()
    yield
    workers.pool.shutdown()


def _leaf(name: bytes):
    sig_priv, sig_pub = SUITE.generate_signature_key_pair()
    enc_priv, enc_pub = SUITE.generate_key_pair()
    leaf = LeafNode(enc_pub, sig_pub, Credential.basic(name), Capabilities(cipher_suites=(1,)),
                    LeafNodeSource.KEY_PACKAGE, lifetime=Lifetime(0, 2**64 - 1)).signed(SUITE, sig_priv)
    return leaf, sig_priv, enc_priv


def _spoil(leaf):
    s = bytearray(leaf.signature)
    s[5] ^= 1
    return replace(leaf, signature=bytes(s))


@pytest.fixture(scope="module")
def parts():
    members = [_leaf(b"m%d" % i) for i in range(OTHERS)]
    jleaf, jsig, jenc = _leaf(b"joiner")
    init_priv, init_pub = SUITE.generate_key_pair()
    kp = KeyPackage(ProtocolVersion.MLS10, 1, init_pub, jleaf).signed(jsig)
    return members, kp, init_priv, jenc, jsig


def _welcome(parts, *, bad_leaf=None, bad_gi=False, bad_tag=False, signer=0, joiner_in_tree=True):
    """A Welcome for ``kp`` into a group of OTHERS members (+ the joiner), spoiled on request."""
    members, kp, _, _, _ = parts
    leaves = [_spoil(m[0]) if i == bad_leaf else m[0] for i, m in enumerate(members)]
    tree = RatchetTree.create(SUITE, leaves[0])
    for leaf in leaves[1:]:
        tree.add_leaf(leaf)
    if joiner_in_tree:
        tree.add_leaf(kp.leaf_node)
    gc = GroupContext(1, GID, 4, tree.tree_hash(), SUITE.hash(b"transcript"))
    joiner = SUITE.hash(b"joiner secret")
    tag = key_schedule_from_joiner(SUITE, joiner, gc).confirmation_tag(gc.confirmed_transcript_hash)
    if bad_tag:
        tag = bytes(32)
    gi = GroupInfo(gc, (tree.to_extension_body().to_extension(),), tag, signer).signed(members[0][1])
    if bad_gi:
        s = bytearray(gi.signature)
        s[0] ^= 1
        gi = replace(gi, signature=bytes(s))
    return create_welcome(gi, joiner, [kp])


def _vid(parts, welcome, how):
    members, kp, init_priv, enc_priv, sig_priv = parts
    with pytest.raises(ProtocolError) as ei:
        if how == "process":
            process_welcome(welcome, kp, init_priv)
        else:
            join_welcome(welcome, kp, init_priv, enc_priv, sig_priv)
    return ei.value.vid, ei.value.where


HOW = ["process", "join"]


@pytest.mark.parametrize("how", HOW)
def test_a_good_welcome_joins_with_the_batch_on_threads(parts, how):
    _, kp, init_priv, enc_priv, sig_priv = parts
    before = workers.pool.batches
    if how == "process":
        joined = process_welcome(_welcome(parts), kp, init_priv)
        assert joined.own_leaf_index == OTHERS
    else:
        state, joined = join_welcome(_welcome(parts), kp, init_priv, enc_priv, sig_priv)
        assert state.own_leaf == OTHERS and state.epoch == 4
    assert workers.pool.batches > before  # the checks went to the pool's threads


@pytest.mark.parametrize("how", HOW)
def test_the_groupinfo_signature_is_checked(parts, how):
    assert _vid(parts, _welcome(parts, bad_gi=True), how) == ("MLS-GI-SIGNATURE", None)


@pytest.mark.parametrize("how", HOW)
def test_a_bad_groupinfo_signature_comes_before_a_bad_confirmation_tag(parts, how):
    assert _vid(parts, _welcome(parts, bad_gi=True, bad_tag=True), how)[0] == "MLS-GI-SIGNATURE"
    assert _vid(parts, _welcome(parts, bad_tag=True), how)[0] == "MLS-CONFIRMATION-TAG"


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("bad_leaf", [0, 3, OTHERS - 1])
def test_a_bad_leaf_signature_comes_first_whatever_else_is_wrong(parts, how, bad_leaf):
    for extra in ({}, {"bad_gi": True}, {"bad_tag": True}, {"bad_gi": True, "bad_tag": True},
                  {"joiner_in_tree": False}, {"signer": OTHERS + 5}):
        vid, where = _vid(parts, _welcome(parts, bad_leaf=bad_leaf, **extra), how)
        assert (vid, where) == ("MLS-TREE-LEAF-SIGNATURE", f"leaf {bad_leaf}"), extra


@pytest.mark.parametrize("how", HOW)
def test_membership_errors_come_before_the_groupinfo_signature(parts, how):
    assert _vid(parts, _welcome(parts, joiner_in_tree=False, bad_gi=True), how)[0] == "MLS-WELCOME-NOT-IN-TREE"
    assert _vid(parts, _welcome(parts, signer=OTHERS + 5, bad_gi=True), how)[0] == "MLS-WELCOME-SIGNER"
