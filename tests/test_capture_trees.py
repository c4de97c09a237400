"""The ratchet tree of every epoch, rebuilt from a capture (gbp_lab/capture/trees.py, issue 22).

Proof: the simulator's members (our MLS, every cipher suite) keep their own GroupContext per
epoch (``MlsContext.history``: ``tree_hash`` = their tree's RFC 9420 §7.8 hash); the observer's
rebuilt tree must hash the same, from the pcap bytes and the key log alone.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

import gbp_lab.sim.members as sim_members
from gbp_lab.capture.model import read_capture
from gbp_lab.capture.trees import CommitSeen, commits_of, replay_commits
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.mls.context import MlsContext
from gbp_lab.sim.simulator import Simulator
from gbp_lab.sim.tap import pcap_bytes


def _run(script="demo", suite=1, monkeypatch=None):
    if suite != 1:
        assert monkeypatch is not None

        class SuiteContext(MlsContext):
            @classmethod
            def create(cls, identity, **kw):  # type: ignore[override]
                kw.setdefault("ciphersuite", suite)
                return MlsContext.create.__func__(cls, identity, **kw)  # type: ignore[attr-defined]

        monkeypatch.setattr(sim_members, "MlsContext", SuiteContext)
    return Simulator(script, 1).run()


def _capture(res, keylog=None):
    return read_capture(pcap_bytes(res.pcap_events()), res.keylog if keylog is None else keylog)


def _member_hashes(res):
    """{epoch: {tree hash every member had}} from the members' own GroupContexts."""
    out: dict = {}
    for m in res.members.values():
        for h in m.mls.history:
            out.setdefault(h.epoch, set()).add(bytes(h.group_context.tree_hash))
        if m.in_group:  # MlsContext.tree of the current epoch (a removed member's is the next one)
            out.setdefault(m.mls.epoch, set()).add(m.mls.tree.tree_hash())
    return out


def _keylog_without(keylog: KeyLog, drop) -> KeyLog:
    out = KeyLog()
    for e in keylog:
        if not drop(e):
            out.add(e.label, e.group_id, e.epoch, e.secret)
    for g, s in keylog.suites.items():
        out.set_suite(g, s)
    return out


@pytest.mark.parametrize("suite", [1, 2, 3, 5, 6, 7])
def test_rebuilt_trees_hash_as_the_members_trees_in_every_suite(suite, monkeypatch):
    res = _run("demo", suite, monkeypatch)
    assert res.keylog.suite(res.group_id) == suite
    cap = _capture(res)
    trees = cap.trees
    hashes = _member_hashes(res)
    assert sorted(hashes) == [0, 1, 2, 3]
    assert not trees.tree(0).known and "epoch-0 leaf" in trees.tree(0).reason
    for epoch in (1, 2, 3):
        et = cap.tree(epoch)
        assert et.known, et.reason
        assert hashes[epoch] == {et.tree_hash}, epoch  # every member agrees, and so do we
        assert set(et.checks.values()) <= {"ok"} | {v for v in et.checks.values() if v.startswith("not checked")}
        assert et.checks["confirmation_tag"] == "ok"
        assert et.checks["parent_hashes"] == et.checks["leaf_signatures"] == "ok"
    assert trees.tree(2).checks["commit_signature"] == "ok"
    assert cap.tree(1).members == ["alice", "bob"]
    assert cap.tree(2).members == ["alice", "bob", "carol", None]  # a blank padding leaf
    assert cap.tree(3).members == ["alice", "bob"]  # carol left, the tree truncated
    assert trees.findings == []
    assert not any(k in set(cap.findings["kind"]) for k in
                   ("tree_mismatch", "bad_parent_hash", "bad_confirmation_tag", "bad_leaf_signature"))


def test_classroom_run_with_updates_and_failover():
    res = _run("classroom")
    cap = _capture(res)
    hashes = _member_hashes(res)
    assert len(hashes) >= 8
    for epoch, hs in hashes.items():
        et = cap.tree(epoch)
        if epoch == 0:
            assert not et.known
            continue
        assert hs == {et.tree_hash}, epoch
        assert et.checks["confirmation_tag"] == "ok"
        assert et.checks["commit_signature"] == ("ok" if epoch > 1 else
                                                 "not checked: the epoch-0 tree (so its GroupContext) is unknown")
    committers = {cap.tree(e).committer for e in hashes if e}
    assert len(committers) > 1  # a failed-over coordinator commits from another leaf
    assert cap.trees.findings == []


def test_epochs_table_has_tree_hash_and_leaves():
    res = _run()
    cap = _capture(res)
    ep = cap.epochs.set_index("epoch")
    hashes = _member_hashes(res)
    assert ep.loc[0, "tree_hash"] == "" and "not on the wire" in ep.loc[0, "tree_unknown"]
    for e in (1, 2, 3):
        assert bytes.fromhex(ep.loc[e, "tree_hash"]) in hashes[e]
        assert ep.loc[e, "tree_unknown"] == ""
    assert ep.loc[2, "tree_members"] == ["alice", "bob", "carol", None]
    changed = cap.tree(2).changed
    assert 4 in changed and 2 not in changed  # carol's leaf (node 4) is new; bob's (node 2) is not


def test_without_epoch_secrets_the_trees_are_rebuilt_and_the_tags_not_checked():
    """The reference's key logs have no MLS_EPOCH_SECRET: said per epoch, the trees still exact."""
    res = _run()
    kl = _keylog_without(res.keylog, lambda e: e.label == "MLS_EPOCH_SECRET")
    cap = _capture(res, kl)
    hashes = _member_hashes(res)
    for e in (1, 2, 3):
        et = cap.tree(e)
        assert hashes[e] == {et.tree_hash}
        assert et.checks["confirmation_tag"].startswith("not checked: no MLS_EPOCH_SECRET of epoch 0")
        assert et.checks["commit_signature"].startswith("not checked")
    assert cap.trees.findings == []


def test_a_capture_without_the_creation_is_unknown_with_the_reason():
    res = _run()
    # epoch 0's commit cannot be decrypted: the capture can anchor nothing
    kl = _keylog_without(res.keylog, lambda e: e.epoch == 0)
    cap = _capture(res, kl)
    assert cap.control["commit_error"].notna().any()
    for e in (0, 1, 2, 3):
        et = cap.tree(e)
        assert not et.known and et.tree_hash is None and et.members == []
        assert "first decrypted commit is in epoch 1" in et.reason
    assert list(cap.epochs["tree_hash"]) == ["", "", "", ""]
    # a gap in the middle: epoch 2's commit missing, so epoch 3 is unknown too
    kl = _keylog_without(res.keylog, lambda e: e.epoch == 1 and e.label != "MLS_EXPORTER_SECRET")
    cap = _capture(res, kl)
    assert cap.tree(1).known
    assert not cap.tree(2).known and "no decrypted commit of epoch 1" in cap.tree(2).reason
    assert not cap.tree(3).known and "epoch 1" in cap.tree(3).reason


def test_replay_never_raises_on_a_bad_commit():
    res = _run()
    cap = _capture(res)
    commits = commits_of(cap)
    assert [c.epoch for c in commits] == [0, 1, 2]
    t = replay_commits(commits)  # no key log: suite 1, no transcript chain
    assert t.tree(3).tree_hash == cap.tree(3).tree_hash
    assert t.tree(1).checks["confirmation_tag"].startswith("not checked")
    # a commit body that does not decode: a reason, not an exception
    c0 = commits[0]
    junk = CommitSeen(c0.frame, c0.group_id, 0,
                      replace(c0.authenticated, content=replace(c0.authenticated.content, body=b"\xff")))
    t = replay_commits([junk], res.keylog)
    assert not t.tree(1).known and "does not decode" in t.tree(1).reason
