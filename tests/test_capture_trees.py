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
from gbp_lab.core.gbp.aead import open_frame, seal_frame
from gbp_lab.core.gbp.classify import classify_record
from gbp_lab.core.gbp.control import ControlMessage, decode_control
from gbp_lab.core.gbp.frame import decode_frame
from gbp_lab.core.gbp.framing import encode_record
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.mls.commit import Commit
from gbp_lab.core.mls.context import MlsContext
from gbp_lab.core.mls.framing import AuthenticatedContent, MLSMessage, protect, sign_content
from gbp_lab.core.mls.observer import open_private_message
from gbp_lab.core.mls.registries import WireFormat
from gbp_lab.core.mls.schedule import confirmation_tag
from gbp_lab.core.mls.secret_tree import RatchetType, SecretTree
from gbp_lab.core.mls.suites import CipherSuite
from gbp_lab.core.mls.transcript import confirmed_transcript_hash, interim_transcript_hash
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
        if m.impl != "core":
            continue  # the wheel's MlsContext keeps no history
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


# -- tampered captures: the commit of MLS epoch 1 (carol's Add) re-written ------------------------
def _tamper(res, epoch, change):
    """The run's capture with the PREPARE commit of MLS ``epoch`` rewritten by
    ``change(content, auth, tools) -> (content, auth)``: opened with the key log, re-protected
    (RFC 9420 §6.3) and re-sealed in its GBP frame, as an attacker holding the key log would."""
    cap = _capture(res)
    kl, gid = res.keylog, res.group_id
    ctl = cap.control
    fr = int(ctl[(ctl["mls_epoch"] == epoch) & ctl["commit_error"].isna()]["frame"].iloc[0])
    body = cap.record(fr)
    frame = decode_frame(body)
    cm = decode_control(open_frame(frame, kl))
    suite = CipherSuite.get(kl.suite(gid))
    rc = classify_record(cm.args)
    sds, enc = kl.sender_data_secret(gid, epoch), kl.encryption_secret(gid, epoch)
    opened = open_private_message(rc.body, suite, sds, enc)
    alice = res.members["alice"].mls
    hist = {h.epoch: h for h in alice.history}
    gc = hist[epoch].group_context
    interim = interim_transcript_hash(suite, gc.confirmed_transcript_hash, hist[epoch].confirmation_tag)

    def retag(content, auth):  # the attacker knows the next epoch's secret from the key log
        cth = confirmed_transcript_hash(suite, interim, AuthenticatedContent(
            WireFormat.MLS_PRIVATE_MESSAGE, content, auth))
        key = suite.derive_secret(kl.epoch_secret(gid, epoch + 1), b"confirm")
        return replace(auth, confirmation_tag=confirmation_tag(suite, key, cth))

    tools = dict(suite=suite, gc=gc, retag=retag, alice_priv=alice.member.signature_priv, gid=gid)
    content, auth = change(opened.content, opened.auth, tools)
    st = SecretTree(suite, enc, opened.leaves)
    for _ in range(opened.generation):
        st.next_sending_key(opened.leaf_index, RatchetType.HANDSHAKE)
    pm = protect(suite, content, auth, st, sds, reuse_guard=b"\0\0\0\0")
    args = MLSMessage.private(pm).to_bytes() if rc.wrapped else pm.to_bytes()
    cm2 = ControlMessage.build(cm.opcode, cm.request_id, cm.sender_id, cm.transition_id, args)
    f2 = seal_frame(kl.exporter_secret(gid, frame.epoch), gid, frame.epoch, frame.transition_id,
                    frame.stream_type, frame.stream_id, frame.flags, frame.sequence_no, cm2.to_cbor(),
                    frame.payload_format, kl.suite(gid))
    old, new = encode_record(body), encode_record(f2.to_cbor())
    events = [replace(e, data=new) if e.data == old else e for e in res.pcap_events()]
    assert sum(e.data == old for e in res.pcap_events()) >= 2  # the send and the relay's copies
    return read_capture(pcap_bytes(events), kl), cap, fr


def _check_rest_decoded(tampered, clean):
    assert int(tampered.frames["decrypted"].sum()) == int(clean.frames["decrypted"].sum())
    assert list(tampered.messages["text"]) == list(clean.messages["text"])
    assert tampered.control["commit_error"].isna().sum() == clean.control["commit_error"].isna().sum()


def _tree_findings(cap):
    f = cap.findings
    return f[f["kind"].isin(["tree_mismatch", "bad_parent_hash", "bad_confirmation_tag", "bad_leaf_signature"])]


def test_a_commit_re_signed_with_a_wrong_key_is_a_bad_leaf_signature():
    res = _run()
    hashes = _member_hashes(res)

    def resign(content, auth, t):
        mallory = MlsContext.create("mallory", ciphersuite=1)
        sig = sign_content(t["suite"], mallory.member.signature_priv, WireFormat.MLS_PRIVATE_MESSAGE,
                           content, t["gc"])
        return content, t["retag"](content, replace(auth, signature=sig))

    cap, clean, fr = _tamper(res, 1, resign)
    tf = _tree_findings(cap)
    assert list(tf["kind"]) == ["bad_leaf_signature"] and list(tf["frames"]) == [[fr]]
    assert int(tf["epoch"].iloc[0]) == 2 and "FramedContent signature" in tf["detail"].iloc[0]
    assert cap.tree(2).checks["confirmation_tag"] == "ok"  # the attacker re-made the tag
    assert cap.tree(3).checks["commit_signature"].startswith("not checked") and "broke at epoch 2" in \
        cap.tree(3).checks["commit_signature"]
    for e in (1, 2, 3):  # the tree itself is intact
        assert {cap.tree(e).tree_hash} == hashes[e]
    _check_rest_decoded(cap, clean)


def test_a_flipped_parent_hash_is_a_bad_parent_hash():
    res = _run()

    def flip(content, auth, t):
        commit = Commit.from_bytes(content.body)
        leaf = commit.path.leaf_node
        ph = bytearray(leaf.parent_hash)
        ph[0] ^= 1
        leaf = replace(leaf, parent_hash=bytes(ph)).signed(t["suite"], t["alice_priv"], t["gid"], 0)
        commit = replace(commit, path=replace(commit.path, leaf_node=leaf))
        content = replace(content, body=commit.to_bytes())
        sig = sign_content(t["suite"], t["alice_priv"], WireFormat.MLS_PRIVATE_MESSAGE, content, t["gc"])
        return content, t["retag"](content, replace(auth, signature=sig))

    cap, clean, fr = _tamper(res, 1, flip)
    tf = _tree_findings(cap)
    assert list(tf["kind"]) == ["bad_parent_hash"] and list(tf["frames"]) == [[fr]]
    assert "MLS-TREE-PARENT-HASH" in tf["detail"].iloc[0]
    assert cap.tree(1).known and not cap.tree(2).known and "does not apply" in cap.tree(2).reason
    assert not cap.tree(3).known
    _check_rest_decoded(cap, clean)


def test_a_forged_confirmation_tag_is_a_bad_confirmation_tag():
    res = _run()
    hashes = _member_hashes(res)

    def forge(content, auth, t):
        cth = confirmed_transcript_hash(t["suite"], b"\0" * 32, AuthenticatedContent(
            WireFormat.MLS_PRIVATE_MESSAGE, content, auth))
        return content, replace(auth, confirmation_tag=confirmation_tag(t["suite"], b"k" * 32, cth))

    cap, clean, fr = _tamper(res, 1, forge)
    tf = _tree_findings(cap)
    assert list(tf["kind"]) == ["bad_confirmation_tag"] and list(tf["frames"]) == [[fr]]
    assert cap.tree(2).checks["confirmation_tag"] == "failed"
    assert cap.tree(2).checks["commit_signature"] == "ok"  # the signature does not cover the tag
    for e in (1, 2, 3):
        assert {cap.tree(e).tree_hash} == hashes[e]
    assert clean.trees.findings == []
    _check_rest_decoded(cap, clean)


# -- a reference (gbp_stack / openmls) member in the group ---------------------------------------
MIXED = {"name": "mixed", "steps": [
    {"create": {"member": "alice"}},
    {"join": {"member": "rusty", "impl": "reference"}},
    {"join": {"member": "bob"}},
    {"text": {"member": "rusty", "text": "hi from the reference"}},
    {"update": {}},
    {"leave": {"member": "rusty"}},
    {"text": {"member": "bob", "text": "bye"}},
]}


@pytest.mark.interop
def test_reference_member_leaves_are_the_reference_members_own():
    pytest.importorskip("gbp_stack")
    res = Simulator(MIXED, 4).run()
    rusty, alice = res.members["rusty"], res.members["alice"]
    assert rusty.impl == "reference"
    cap = _capture(res)
    # the KeyPackage openmls made for rusty, as the capture carries it
    kps = [classify_record(cap.record(i)).body for i in
           cap.frames.index[cap.frames["info"].str.startswith("KeyPackage", na=False)]]
    ref_leaf = next(kp.leaf_node for kp in kps if kp.leaf_node.credential.identity == b"rusty")
    hashes = _member_hashes(res)
    for e in (1, 2, 3):  # rusty is a member from epoch 1 until the commit of epoch 3 removes it
        et = cap.tree(e)
        assert {et.tree_hash} == hashes[e]
        assert et.members[1] == "rusty"
        leaf = et.tree.leaf(1)
        assert leaf.signature_key == ref_leaf.signature_key and leaf.credential == ref_leaf.credential
        assert leaf == ref_leaf  # rusty never commits: its leaf is its KeyPackage's, byte for byte
        # openmls derived the same epoch (its exporter secret = ours): its GroupContext, tree hash
        # included, is the one we rebuilt
        assert rusty.keylog.exporter_secret(res.group_id, e) == alice.keylog.exporter_secret(res.group_id, e)
    assert cap.tree(4).members == ["alice", None, "bob", None]
    assert cap.trees.findings == []


def test_epoch_stepper_from_the_capture_shows_the_members_trees():
    from gbp_lab.widgets.epoch_stepper import EpochStepper
    from gbp_lab.widgets.render import tree_rows, tree_svg

    res = _run()
    cap = _capture(res)
    alice, bob = res.members["alice"].mls, res.members["bob"].mls
    live = EpochStepper([alice, bob]).go_epoch(3)
    st = EpochStepper(cap)
    v = st.go_epoch(3)
    assert v.tree_known and live.tree_known
    assert tree_rows(cap.tree(3).tree) == tree_rows(alice.tree)  # the whole tree: parents too
    assert v.members == live.members
    assert v.changed == cap.tree(3).changed and 'class="node leaf changed"' in v.tree_svg
    # the same drawing as the live stepper's, plus the changed nodes outlined
    assert tree_svg(tree_rows(cap.tree(3).tree), changed=live.changed) == live.tree_svg
    assert tree_svg(tree_rows(cap.tree(3).tree), changed=v.changed) == v.tree_svg


def test_of_two_commits_for_one_epoch_the_confirmed_one_is_followed():
    """A transition retried: two different commits of epoch 1 in the capture; the next epoch's
    MLS_EPOCH_SECRET confirms the one the group merged, whatever the order seen."""
    res = _run()
    cap = _capture(res)
    commits = commits_of(cap)
    c1 = commits[1]
    forged = replace(c1, frame=-1, authenticated=replace(
        c1.authenticated, auth=replace(c1.authenticated.auth, confirmation_tag=b"\0" * 32)))
    t = replay_commits([commits[0], forged, c1, commits[2]], res.keylog)
    assert t.tree(2).commit_frame == c1.frame and "confirms" in t.tree(2).checks["chosen"]
    assert t.tree(3).tree_hash == cap.tree(3).tree_hash and t.findings == []
    kl = _keylog_without(res.keylog, lambda e: e.label == "MLS_EPOCH_SECRET")
    t = replay_commits([commits[0], forged, c1, commits[2]], kl)
    assert t.tree(2).commit_frame == -1 and "ambiguous" in t.tree(2).checks
