"""The worker pool (gbp_lab.core.mls.workers) and what runs on it: batched signature checks
(signatures.verify_all) — every check of a batch made, on threads or in a plain loop, with the
same answer: the lowest failing index and the error verifying one by one raises; the ratchet
tree's leaf signatures (RFC 9420 §7.3, §12.4.3.1) reported at the right leaf with the pool in
use; the HPKE seals of an UpdatePath (§12.4.1) that every member opens."""
from __future__ import annotations

import multiprocessing
import os
import pathlib
import sys
import threading
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbp_lab.core.errors import GbpLabError, SignatureError, UsageError
from gbp_lab.core.mls import signatures as sig
from gbp_lab.core.mls import workers
from gbp_lab.core.mls.suites import CipherSuite
from gbp_lab.core.mls.schedule import GroupContext
from gbp_lab.core.mls.tree import RatchetTree
from gbp_lab.core.mls.treekem import PrivateTree, create_update_path, process_update_path
from gbp_lab.core.mls.update_path import UpdatePath

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # pytest runs with importlib mode
import mls_structs  # noqa: E402

N_LEAVES = 40
GROUP_ID = b"batch-test-group"




def _leaf(suite, name):
    return mls_structs.signed_leaf(suite, name)[0]


@pytest.fixture(scope="module")
def leaves():
    suite = CipherSuite.get(1)
    return suite, [_leaf(suite, b"m%d" % i) for i in range(N_LEAVES)]


@pytest.fixture
def pool(monkeypatch):
    """The process pool with at least 3 threads besides the caller, and no memo: every check
    runs the primitive, on the pool's threads."""
    monkeypatch.setattr(sig.verified_signatures, "enabled", False)
    monkeypatch.setattr(workers.pool, "workers", max(4, workers.pool.workers))
    workers.pool.shutdown()  # the next batch makes an executor of that size
    yield workers.pool
    workers.pool.shutdown()


def _spoiled(leaf, how):
    if how == "signature":
        s = bytearray(leaf.signature)
        s[7] ^= 0x40
        return replace(leaf, signature=bytes(s))
    return replace(leaf, signature_key=b"\x01" * 5)  # "pubkey": malformed key → DecodeError


def _tree(suite, leaves, bad):
    leaves = [(_spoiled(leaf, bad[i]) if i in bad else leaf) for i, leaf in enumerate(leaves)]
    tree = RatchetTree.create(suite, leaves[0])
    for leaf in leaves[1:]:
        tree.add_leaf(leaf)
    return tree


def _outcome(fn):
    """What ``fn`` raised, as comparable facts (type, vid, where, message, the cause's)."""
    try:
        fn()
    except GbpLabError as exc:
        cause = exc.__cause__
        return (type(exc), exc.vid, exc.where, str(exc), type(cause), getattr(cause, "vid", None),
                str(cause), getattr(cause.__cause__, "vid", None))
    return None


def _leaf_by_leaf(tree):
    """The reference semantics: each leaf checked alone, in order, by LeafNode.verify."""
    for li, leaf in tree.leaves():
        try:
            leaf.verify(tree.suite, group_id=GROUP_ID, leaf_index=li)
        except GbpLabError as exc:
            return li, exc.vid
    return None


def test_bad_leaf_k_of_a_big_tree_is_reported_as_leaf_k_with_the_pool_in_use(leaves, pool):
    suite, good = leaves
    k = 29
    tree = _tree(suite, good, {k: "signature", k + 5: "signature"})
    before = pool.batches
    with pytest.raises(SignatureError) as ei:
        tree.validate(GROUP_ID)  # the batch starts before the hashing and is read last
    assert pool.batches == before + 1
    assert any(t.name.startswith("mls-worker") for t in threading.enumerate())
    assert ei.value.vid == "MLS-TREE-LEAF-SIGNATURE" and ei.value.where == f"leaf {k}"
    assert str(ei.value).startswith(f"[MLS-TREE-LEAF-SIGNATURE] leaf {k}: ")
    assert ei.value.__cause__.vid == "MLS-LEAF-SIGNATURE"
    assert ei.value.__cause__.__cause__.vid == "SIG-VERIFY"
    with pytest.raises(SignatureError) as ei2:
        tree.verify_leaf_signatures(GROUP_ID, parallel=True)
    assert pool.batches == before + 2 and ei2.value.where == f"leaf {k}"
    _tree(suite, good, {}).validate(GROUP_ID)  # the unspoiled tree passes, on the pool too
    assert pool.batches == before + 3


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.integers(0, N_LEAVES - 1), st.sampled_from(["signature", "pubkey"]), max_size=4))
def test_pool_and_loop_give_the_same_answer_as_leaf_by_leaf(leaves, pool, bad):
    suite, good = leaves
    tree = _tree(suite, good, bad)
    on_pool = _outcome(lambda: tree.verify_leaf_signatures(GROUP_ID, parallel=True))
    in_loop = _outcome(lambda: tree.verify_leaf_signatures(GROUP_ID, parallel=False))
    assert on_pool == in_loop
    first = _leaf_by_leaf(tree)
    if first is None:
        assert on_pool is None and not bad
    else:
        assert first[0] == min(bad)
        assert on_pool[1] == "MLS-TREE-LEAF-SIGNATURE" and on_pool[2] == f"leaf {min(bad)}"
        # a bad signature is chained as LeafNode.verify raises it; a malformed key as loading raises it
        assert on_pool[5] == ("MLS-LEAF-SIGNATURE" if bad[min(bad)] == "signature" else "SIG-PUBKEY")
        assert first[1] == on_pool[5]


def _checks(n, bad=()):
    scheme = sig.SignatureScheme.ED25519
    out = []
    for i in range(n):
        priv, pub = sig.generate_key_pair(scheme, rng=lambda k, i=i: bytes([i + 1]) * k)
        msg = b"message %d" % i
        out.append((scheme, pub, msg, sig.sign(scheme, priv, msg if i not in bad else b"other")))
    return out


def test_verify_all_reports_the_lowest_index_and_the_error_verify_raises(pool):
    checks = _checks(24, bad={5, 17})
    for parallel in (True, False, None):
        index, err = sig.verify_all(checks, parallel=parallel)
        assert index == 5 and isinstance(err, SignatureError) and err.vid == "SIG-VERIFY"
        with pytest.raises(SignatureError) as ei:
            sig.verify(*checks[5])
        assert str(ei.value) == str(err)
    assert sig.verify_all(_checks(24), parallel=True) is None
    assert sig.verify_all([]) is None
    # an unknown scheme at index 3 stops there; a bad signature below it still comes first
    odd = list(checks[:3]) + [(0x9999, b"", b"", b"")] + list(checks[3:])
    index, err = sig.verify_all(odd, parallel=True)
    assert index == 3 and isinstance(err, UsageError) and err.vid == "SIG-SCHEME"
    bad_first = [checks[5]] + odd
    assert sig.verify_all(bad_first, parallel=True)[0] == 0


def test_the_memo_learns_only_what_passed_below_the_failure(monkeypatch, pool):
    monkeypatch.setattr(sig.verified_signatures, "enabled", True)
    sig.verified_signatures.clear()
    checks = _checks(16, bad={9})
    assert sig.verify_all(checks, parallel=True)[0] == 9
    digests = [sig.VerifiedSignatures.digest(s, p, m, g) for s, p, m, g in checks]
    assert [d in sig.verified_signatures for d in digests] == [i < 9 for i in range(16)]
    hits = sig.verified_signatures.hits
    assert sig.verify_all(checks, parallel=True)[0] == 9  # the failure is checked again, not remembered
    assert sig.verified_signatures.hits == hits + 9
    sig.verified_signatures.clear()


def test_small_batches_and_one_worker_stay_in_the_calling_thread(monkeypatch, pool):
    before = pool.batches
    assert sig.verify_all(_checks(pool.min_batch - 1)) is None
    assert pool.batches == before
    monkeypatch.setattr(pool, "workers", 1)
    assert pool.executor() is None
    assert sig.verify_all(_checks(12, bad={11}), parallel=True)[0] == 11
    assert pool.batches == before


_PARENT = {}


def _child_verifies(q):
    # the parent's executor object is still referenced here, so `is` cannot be fooled by reuse
    fresh = workers.pool.executor() is not _PARENT["executor"]
    q.put((sig.verify_all(_checks(16, bad={12}), parallel=True)[0], fresh))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_makes_its_own_pool(pool):
    assert sig.verify_all(_checks(12), parallel=True) is None  # the parent's pool exists now
    _PARENT["executor"] = pool.executor()
    assert _PARENT["executor"] is not None
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    child = ctx.Process(target=_child_verifies, args=(q,))
    child.start()
    child.join(60)
    assert child.exitcode == 0, "the child hung or failed on its parent's pool"
    assert q.get(timeout=5) == (12, True)
    assert pool.executor() is _PARENT.pop("executor")  # the parent keeps its own


def test_pool_map_keeps_order_and_raises_the_lowest_failure(pool):
    items = list(range(50))
    assert pool.map(lambda x: x * x, items, parallel=True) == [x * x for x in items]

    def picky(x):
        if x in (13, 31, 44):
            raise ValueError(f"item {x}")
        return x

    for parallel in (True, False):
        with pytest.raises(ValueError, match="item 13"):
            pool.map(picky, items, parallel=parallel)
    assert pool.map(picky, [], parallel=True) == []
    # a batch inside a batch runs in the helper thread itself instead of waiting on the queue
    inner = pool.map(lambda x: sum(pool.map(lambda y: x * y, items, parallel=True)), items, parallel=True)
    assert inner == [x * sum(items) for x in items]


def test_update_path_seals_run_on_the_pool_and_every_member_opens_them(pool):
    suite = CipherSuite.get(1)
    made = [mls_structs.signed_leaf(suite, b"u%d" % i) for i in range(20)]
    tree = RatchetTree.create(suite, made[0][0])
    for leaf, _, _ in made[1:]:
        tree.add_leaf(leaf)
    gc = GroupContext(1, GROUP_ID, 1, b"", b"\x00" * 32)
    before = pool.batches
    mine = create_update_path(tree, 0, gc, made[0][2])
    assert pool.batches == before + 1  # 19 seals (every other leaf) went to the threads
    assert sum(len(n.encrypted_path_secret) for n in mine.update_path.nodes) == 19
    wire = UpdatePath.from_bytes(mine.update_path.to_bytes())
    for li in range(1, 20):
        res = process_update_path(tree, 0, wire, gc, PrivateTree(suite, li, made[li][1]))
        assert res.commit_secret.reveal() == mine.commit_secret.reveal()
    # an injected rng keeps the loop (its draws in wire order): same bytes twice, no batch
    import random

    def rng(seed):
        r = random.Random(seed)
        return lambda n: r.randbytes(n)

    before = pool.batches
    one = create_update_path(tree, 0, gc, made[0][2], rng=rng(7)).update_path.to_bytes()
    assert create_update_path(tree, 0, gc, made[0][2], rng=rng(7)).update_path.to_bytes() == one
    assert pool.batches == before
