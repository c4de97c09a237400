"""The MLS group state machine (``gbp_lab.core.mls.group``) and ``MlsContext`` on their own:
official passive-client vectors, groups of our own members, hostile input (typed errors, state
unchanged), state export and the key log. Interop with the reference is in test_interop_mls.py."""
from __future__ import annotations

import dataclasses
import gzip
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbp_lab.core.errors import (DecodeError, GbpLabError, ProtocolError, ReplayError, SignatureError,
                                 UsageError)
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.mls import group as G
from gbp_lab.core.mls.commit import Commit
from gbp_lab.core.mls.context import MlsContext
from gbp_lab.core.mls.framing import (FramedContentAuthData, MembershipTagError, MLSMessage, PublicMessage,
                                      WrongEpochError, membership_tag, sign_content)
from gbp_lab.core.mls.proposals import Proposal, Remove
from gbp_lab.core.mls.registries import WireFormat
from gbp_lab.core.mls.schedule import ConfirmationTagError
from gbp_lab.core.mls.secret_tree import GenerationReusedError, GenerationTooFarError, GenerationTooOldError
from gbp_lab.core.mls.tree import TreeValidationError
from gbp_lab.core.mls.vectors import run_file
from gbp_lab.core.mls.vectors.passive_client_welcome import run_passive_client

VEC = os.path.join(os.path.dirname(__file__), "vectors", "mls")
PUBLIC = G.GroupConfig(handshake_wire_format=WireFormat.MLS_PUBLIC_MESSAGE)


def _load(name):
    with gzip.open(os.path.join(VEC, name), "rt") as fh:
        return json.load(fh)


# --- official vectors ------------------------------------------------------------------------------

def test_passive_client_welcome_vector_file_passes_completely():
    res = run_file(os.path.join(VEC, "passive-client-welcome.json.gz"))
    assert (res.passed, res.failed, res.skipped) == (56, 0, 0), res.failures[:2]


def test_passive_client_handling_commit_vector_file_passes_completely():
    """91 cases × 2 epochs: commits by value and by reference, Add/Update/Remove/PSK/GCE
    proposals, each epoch authenticator equal to the vector's."""
    res = run_file(os.path.join(VEC, "passive-client-handling-commit.json.gz"))
    assert (res.passed, res.failed, res.skipped) == (91, 0, 0), res.failures[:2]


def test_passive_client_detects_a_wrong_epoch_authenticator():
    case = dict(_load("passive-client-handling-commit.json.gz")[0])
    assert run_passive_client(case) == 2
    epochs = [dict(e) for e in case["epochs"]]
    epochs[1]["epoch_authenticator"] = "00" * 32
    case["epochs"] = epochs
    with pytest.raises(AssertionError):
        run_passive_client(case)


# --- groups of our own members ------------------------------------------------------------------------

def _group(n, config=G.GroupConfig()):
    """n of our members in one group, created by the first one's invites."""
    members = [MlsContext.create(f"m{i}", config=config) for i in range(n)]
    for i, m in enumerate(members[1:], 1):
        commit, welcome = members[0].invite_full(m.export_key_package())
        for old in members[1:i]:
            assert old.process_message(commit) == "commit"
            old.finalize_commit()
        members[0].finalize_commit()
        m.accept_welcome(welcome)
    return members


def _same(members):
    assert len({m.epoch for m in members}) == 1
    assert len({m.epoch_secrets.exporter_secret.reveal() for m in members}) == 1
    assert len({m.tree.tree_hash() for m in members}) == 1
    assert len({m.transcript_hashes for m in members}) == 1


def test_new_context_is_a_one_member_group_at_epoch_0():
    with MlsContext.create("solo") as ctx:
        assert ctx.epoch == 0 and len(ctx.group_id) == 16 and ctx.ciphersuite == 1
        assert [m.identity for m in ctx.members] == [b"solo"]
        assert ctx.transcript_hashes.confirmed == b""
        assert len(ctx.export_raw("gbp/text", b"", 32)) == 32
    with pytest.raises(UsageError):
        ctx.epoch  # closed


@pytest.mark.parametrize("suite", [1, 2, 3, 4, 5, 6, 7])
def test_our_members_agree_in_every_suite_we_test(suite):
    a, b, c = (MlsContext.create(n, ciphersuite=suite) for n in ("a", "b", "c"))
    b.accept_welcome(a.invite(b.export_key_package()))
    commit, welcome = b.invite_full(c.export_key_package())
    assert a.process_message(commit) == "commit"
    a.finalize_commit(); b.finalize_commit(); c.accept_welcome(welcome)
    _same([a, b, c])
    assert a.epoch == 2 and a.ciphersuite == suite


def test_adds_removes_and_history_in_a_group_of_five():
    members = _group(5)
    _same(members)
    assert [m.own_leaf_index for m in members] == [0, 1, 2, 3, 4]
    a, b, c, d, e = members
    commit = c.remove_member(1)
    for m in (a, d, e):
        assert m.process_message(commit) == "commit"
    res = b.process(commit)
    assert res.removed_us
    for m in (a, c, d, e, b):
        m.finalize_commit()
    assert not b.is_active
    _same([a, c, d, e])
    assert [m.leaf_index for m in a.members] == [0, 2, 3, 4]
    assert [h.epoch for h in a.history] == list(range(0, a.epoch + 1))
    assert a.history[-1].epoch_secrets is a.epoch_secrets
    f = MlsContext.create("f")
    commit, welcome = e.invite_full(f.export_key_package())
    for m in (a, c, d):
        m.process_message(commit); m.finalize_commit()
    e.finalize_commit(); f.accept_welcome(welcome)
    _same([a, c, d, e, f])
    assert f.own_leaf_index == 1  # the leftmost blank leaf is reused
    with pytest.raises(G.GroupStateError):
        b.process_message(commit)  # removed members do not follow the group


def test_application_messages_out_of_order_replay_and_distance():
    a, b = _group(2)
    msgs = [a.send_application(f"m{i}".encode()) for i in range(8)]
    assert MLSMessage.from_bytes(msgs[0]).wire_format == WireFormat.MLS_PRIVATE_MESSAGE
    got = b.process(msgs[6])
    assert got.kind == "application" and got.application_data == b"m6"
    assert b.process(msgs[2]).application_data == b"m2"  # 4 behind the newest: within tolerance 5
    with pytest.raises(GenerationTooOldError):
        b.process_message(msgs[0])                       # 6 behind: gone
    with pytest.raises(ReplayError) as exc:
        b.process_message(msgs[6])
    assert isinstance(exc.value, GenerationReusedError)
    for i in range(1000):
        a.send_application(b"")
    far = a.send_application(b"far")
    with pytest.raises(GenerationTooFarError):
        b.process_message(far)


def test_padding_is_applied_when_configured():
    a, b = _group(2, G.GroupConfig(padding_size=64))
    msg = MLSMessage.from_bytes(a.send_application(b"x")).message
    assert len(msg.ciphertext) % 64 == 0
    assert b.process(a.send_application(b"hello")).application_data == b"hello"
    assert G.padding_length(G.GroupConfig(), 100) == 0
    assert G.padding_length(G.GroupConfig(padding_size=32), 100) == 12


def test_proposal_by_reference_then_commit():
    a, b, c = _group(3)
    state, msg, ref = G.create_proposal_message(c.state, Proposal(Remove(1)))
    res = G.process_message(a.state, msg)
    assert res.kind == "proposal" and res.proposal_ref == ref and ref in res.state.proposals
    made = G.create_commit(res.state, by_reference=[ref])
    body = Commit.from_bytes(made.authenticated_content.content.body)
    assert body.proposals[0].reference == ref
    # c knows its own proposal (stored when sent), b learns it from the message first
    res_c = G.process_message(state, made.message)
    res_b = G.process_message(G.process_message(b.state, msg).state, made.message)
    assert res_b.removed_us and not res_c.removed_us
    assert res_c.staged.secrets.exporter_secret == made.new_state.secrets.exporter_secret
    with pytest.raises(G.ProposalError) as exc:  # a commit naming a proposal we never saw
        G.process_message(b.state, made.message)
    assert exc.value.vid == "MLS-PROPOSAL-UNKNOWN-REF"


def test_public_message_handshakes_are_accepted():
    a, b, c = _group(3, PUBLIC)
    _same([a, b, c])
    commit = a.remove_member(2)
    assert MLSMessage.from_bytes(commit).wire_format == WireFormat.MLS_PUBLIC_MESSAGE


# --- hostile input: typed errors, unchanged state ------------------------------------------------------

@pytest.fixture
def public_commit():
    """a, b, c (PublicMessage handshakes); a's pending commit adds d; b is the receiver."""
    a, b, c = _group(3, PUBLIC)
    d = MlsContext.create("d", config=PUBLIC)
    commit, _ = a.invite_full(d.export_key_package())
    return a, b, commit


def _reframe(a, commit: bytes, *, content=None, signature=None, confirmation_tag=None, resign=False):
    """Rebuild ``commit`` (a PublicMessage from a) with some parts replaced, re-signing and
    recomputing the membership tag with a's keys so that only the intended check can fail."""
    s = a.state  # the epoch the commit was sent in
    pm = MLSMessage.from_bytes(commit).message
    content = content or pm.content
    sig = signature or pm.auth.signature
    if resign:
        sig = sign_content(s.suite, s.signature_priv, WireFormat.MLS_PUBLIC_MESSAGE, content, s.context)
    auth = FramedContentAuthData(sig, confirmation_tag or pm.auth.confirmation_tag)
    tag = membership_tag(s.suite, s.secrets.membership_key, content, auth, s.context)
    return MLSMessage.public(PublicMessage(content, auth, tag)).to_bytes()


def _flip(data: bytes, i: int = -1) -> bytes:
    out = bytearray(data)
    out[i] ^= 0x01
    return bytes(out)


def _rejects(ctx, data, error, vid=None):
    before = ctx.export_state()
    with pytest.raises(error) as exc:
        ctx.process_message(data)
    assert ctx.export_state() == before
    if vid is not None:
        assert exc.value.vid == vid
    return exc.value


def test_invalid_signature(public_commit):
    a, b, commit = public_commit
    pm = MLSMessage.from_bytes(commit).message
    _rejects(b, _reframe(a, commit, signature=_flip(pm.auth.signature)), SignatureError,
             "MLS-CONTENT-SIGNATURE")
    assert b.process_message(commit) == "commit"


def test_invalid_membership_tag(public_commit):
    a, b, commit = public_commit
    _rejects(b, _flip(commit), MembershipTagError, "MLS-MEMBERSHIP-TAG")
    assert b.process_message(commit) == "commit"


def test_invalid_confirmation_tag(public_commit):
    a, b, commit = public_commit
    pm = MLSMessage.from_bytes(commit).message
    _rejects(b, _reframe(a, commit, confirmation_tag=_flip(pm.auth.confirmation_tag)),
             ConfirmationTagError, "MLS-CONFIRMATION-TAG")
    assert b.process_message(commit) == "commit"


def test_invalid_parent_hash(public_commit):
    a, b, commit = public_commit
    pm = MLSMessage.from_bytes(commit).message
    body = Commit.from_bytes(pm.content.body)
    leaf = dataclasses.replace(body.path.leaf_node, parent_hash=_flip(body.path.leaf_node.parent_hash))
    bad = dataclasses.replace(body, path=dataclasses.replace(body.path, leaf_node=leaf))
    content = dataclasses.replace(pm.content, body=bad.to_bytes())
    err = _rejects(b, _reframe(a, commit, content=content, resign=True), TreeValidationError,
                   "MLS-TREE-PARENT-HASH")
    assert isinstance(err, ProtocolError)
    assert b.process_message(commit) == "commit"


def test_commit_without_required_path_and_unknown_sender(public_commit):
    a, b, commit = public_commit
    pm = MLSMessage.from_bytes(commit).message
    s = a.state
    remove = Commit((dataclasses.replace(Commit.from_bytes(pm.content.body).proposals[0],
                                         proposal=Proposal(Remove(2))),), None)
    content = dataclasses.replace(pm.content, body=remove.to_bytes())
    _rejects(b, _reframe(a, commit, content=content, resign=True), G.CommitError, "MLS-COMMIT-PATH-REQUIRED")
    stranger = dataclasses.replace(pm.content, sender=dataclasses.replace(pm.content.sender, index=7))
    _rejects(b, _reframe(a, commit, content=stranger, resign=True), G.GroupStateError,
             "MLS-GROUP-UNKNOWN-SENDER")
    assert s is a.state


def test_stale_epoch_and_own_message(public_commit):
    a, b, commit = public_commit
    assert b.process_message(commit) == "commit"
    b.finalize_commit()
    _rejects(b, commit, WrongEpochError, "MLS-WRONG-EPOCH")
    a.finalize_commit()
    own = b.remove_member(0)
    with pytest.raises(G.GroupStateError) as exc:
        b.process_message(own)
    assert exc.value.vid == "MLS-GROUP-OWN-MESSAGE" and b.has_pending_commit
    with pytest.raises(UsageError):  # our own commit is pending: no second one
        b.remove_member(2)


def test_private_commit_forgeries_do_not_burn_keys():
    a, b, c = _group(3)
    commit = a.remove_member(2)
    for i in (-1, -30, 30, 12):
        with pytest.raises(ProtocolError):
            b.process_message(_flip(commit, i))
    assert b.process_message(commit) == "commit"


def test_not_a_protocol_message_and_welcome_misuse():
    a, b = _group(2)
    with pytest.raises(G.GroupStateError):
        b.process_message(MlsContext.create("x").invite(MlsContext.create("y").export_key_package()))
    with pytest.raises(G.GroupStateError):
        a.accept_welcome(a.send_application(b"not a welcome"))
    with pytest.raises(UsageError):
        a.remove_member(0)
    with pytest.raises(UsageError):
        a.remove_member(9)


_FUZZ = {}


def _fuzz_fixture():
    if not _FUZZ:
        a, b, c = _group(3)
        _FUZZ["b"] = b
        _FUZZ["commit"] = a.remove_member(2)
        _FUZZ["app"] = a.send_application(b"hello")
        _FUZZ["state"] = b.export_state()
    return _FUZZ


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.sampled_from(["commit", "app"]), pos=st.integers(0, 10_000), mask=st.integers(1, 255),
       cut=st.integers(0, 3))
def test_fuzz_mutated_messages_raise_typed_errors_and_leave_state(which, pos, mask, cut):
    fx = _fuzz_fixture()
    data = bytearray(fx[which])
    data[pos % len(data)] ^= mask
    if cut == 1:
        data = data[: pos % len(data)]
    elif cut == 2:
        data += b"\x00"
    b = MlsContext.restore_state(fx["state"])
    with pytest.raises(GbpLabError) as exc:
        b.process_message(bytes(data))
    assert isinstance(exc.value, (ProtocolError,)), exc.value
    assert b.export_state() == fx["state"]


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=200))
def test_fuzz_random_bytes(data):
    fx = _fuzz_fixture()
    b = MlsContext.restore_state(fx["state"])
    try:
        b.process_message(data)
    except ProtocolError:
        pass


# --- state export and key log ---------------------------------------------------------------------------

def test_export_restore_round_trip_keeps_working():
    a, b, c = _group(3)
    a.send_application(b"advance a's ratchet")
    blob = a.export_state()
    assert json.loads(blob)["format"] == "gbp-lab/mls-context"
    a2 = MlsContext.restore_state(blob)
    assert a2.export_state() == blob and a2.epoch == a.epoch
    commit = a2.remove_member(1)
    for m in (b, c):
        m.process_message(commit); m.finalize_commit()
    a2.finalize_commit()
    _same([a2, c])
    msg = c.send_application(b"after restore")
    assert a2.process(msg).application_data == b"after restore"
    a2.remove_member(2)
    with pytest.raises(UsageError):  # pending commits are not exported
        a2.export_state()
    with pytest.raises(DecodeError):
        MlsContext.restore_state(b"\xff\xfe")
    doc = json.loads(blob)
    doc["group"]["leaf_priv"] = "00" * 32  # a private key that does not match the tree
    with pytest.raises(DecodeError):
        MlsContext.restore_state(json.dumps(doc).encode())


def test_keylog_object_and_path_get_every_epoch(tmp_path):
    log = KeyLog()
    path = tmp_path / "keys.log"
    a = MlsContext.create("a", keylog=log)
    b = MlsContext.create("b", keylog=str(path))
    b.accept_welcome(a.invite(b.export_key_package()))
    c = MlsContext.create("c")
    commit, welcome = b.invite_full(c.export_key_package())
    a.process_message(commit); a.finalize_commit(); b.finalize_commit()
    gid = a.group_id
    assert log.epochs(gid) == [0, 1, 2]  # a created the group: epoch 0 too
    from_file = KeyLog.load(path)
    assert from_file.epochs(gid) == [1, 2]
    for e in (1, 2):
        for label in ("MLS_EXPORTER_SECRET", "MLS_SENDER_DATA_SECRET", "MLS_ENCRYPTION_SECRET",
                      "MLS_EPOCH_SECRET"):
            assert log.get(label, gid, e) == from_file.get(label, gid, e) is not None
    assert log.exporter_secret(gid, 2) == a.epoch_secrets.exporter_secret.reveal()
    assert log.epoch_secret(gid, 2) == b.epoch_secrets.epoch_secret.reveal()


def test_new_member_proposal_is_external_and_can_be_committed_by_reference():
    """RFC 9420 §12.1.8: a would-be member signs its own Add (sender new_member_proposal, no
    membership tag); a member stores it ("external", openmls' ExternalJoinProposal) and commits
    it by reference; the newcomer joins from the Welcome."""
    from gbp_lab.core.mls.framing import FramedContent, Sender, create_public_message
    from gbp_lab.core.mls.proposals import Add
    from gbp_lab.core.mls.registries import ContentType
    a, b = _group(2)
    n = MlsContext.create("newcomer")
    kp = KeyPackage_from(n)
    content = FramedContent(a.group_id, a.epoch, Sender.new_member_proposal(), b"", ContentType.PROPOSAL,
                            Proposal(Add(kp)).to_bytes())
    pm = create_public_message(a.state.suite, content, n._signature_priv, None)
    wire = MLSMessage.public(pm).to_bytes()
    assert a.process_message(wire) == "external"
    res = G.process_message(b.state, wire)
    assert res.kind == "external"
    forged = create_public_message(a.state.suite, content, a.state.signature_priv, None)
    with pytest.raises(SignatureError):  # signed by someone else than the KeyPackage's owner
        a.process_message(MLSMessage.public(forged).to_bytes())
    made = G.create_commit(a.state, by_reference=[res.proposal_ref])
    staged = G.process_message(res.state, made.message).staged
    assert staged.secrets.exporter_secret == made.new_state.secrets.exporter_secret
    n.accept_welcome(made.welcome)
    assert n.epoch_secrets.exporter_secret == made.new_state.secrets.exporter_secret


def KeyPackage_from(ctx):
    from gbp_lab.core.mls.key_package import KeyPackage
    return KeyPackage.from_bytes(ctx.export_key_package())


def _seeded(seed: bytes):
    import hashlib
    counter = [0]

    def rng(n):
        out = b""
        while len(out) < n:
            counter[0] += 1
            out += hashlib.sha256(seed + counter[0].to_bytes(8, "big")).digest()
        return out[:n]
    return rng


def test_injected_rng_and_clock_make_contexts_reproducible():
    a1 = MlsContext.create("a", rng=_seeded(b"x"), clock=lambda: 1_700_000_000)
    a2 = MlsContext.create("a", rng=_seeded(b"x"), clock=lambda: 1_700_000_000)
    assert a1.export_key_package() == a2.export_key_package()
    assert a1.group_id == a2.group_id
    assert a1.epoch_secrets.exporter_secret == a2.epoch_secrets.exporter_secret
    lifetime = KeyPackage_from(a1).leaf_node.lifetime
    assert (lifetime.not_before, lifetime.not_after) == (1_700_000_000 - 3600, 1_700_000_000 + 84 * 86400)


def test_expired_key_package_is_refused_by_the_inviter():
    old = MlsContext.create("old", clock=lambda: 1_000_000)
    now = MlsContext.create("now", clock=lambda: 1_000_000 + 85 * 86400)
    with pytest.raises(G.ProposalError) as exc:
        now.invite_full(old.export_key_package())
    assert exc.value.vid == "MLS-PROPOSAL-ADD-KEY-PACKAGE" and not now.has_pending_commit
    with pytest.raises(DecodeError):
        now.invite_full(b"\x00\x01\x00\x01\x00")


def test_rules_table_covers_every_proposal_and_commit_id_the_group_raises():
    import re
    from gbp_lab.core.mls import group as group_module
    from gbp_lab.core.mls.proposals_apply import BY_VID, RULES, rule
    source = open(group_module.__file__, encoding="utf-8").read()
    raised = set(re.findall(r'vid="(MLS-(?:PROPOSAL|COMMIT|UNSUPPORTED|EXTERNAL)-[A-Z0-9-]+)"', source))
    assert raised and raised <= set(BY_VID), raised - set(BY_VID)
    assert len(BY_VID) == len(RULES)
    assert rule("MLS-COMMIT-PATH-REQUIRED").section == "§12.4"
    for r in RULES:  # every listed error class exists in the group module
        assert hasattr(group_module, r.error) or r.error == "MissingKeyError"


def test_application_messages_still_flow_while_a_commit_is_staged():
    a, b, c = _group(3)
    commit = a.remove_member(2)
    app = a.send_application(b"sent in the old epoch")
    assert b.process_message(commit) == "commit"
    assert b.process(app).application_data == b"sent in the old epoch"
    second = c.self_update()
    with pytest.raises(G.GroupStateError) as exc:
        b.process_message(second)
    assert exc.value.vid == "MLS-CONTEXT-STAGED"
    b.finalize_commit(); a.finalize_commit()
    _same([a, b])


def test_private_message_with_a_bad_signature_is_refused_without_burning_the_key():
    """A PrivateMessage that decrypts (right keys) but carries a wrong signature: typed
    SignatureError, and the genuine message of the same generation is still accepted."""
    from gbp_lab.core.mls.framing import FramedContent, MLSMessage as M, Sender, protect
    from gbp_lab.core.mls.registries import ContentType
    a, b = _group(2)
    s = a.state.copy()
    content = FramedContent(a.group_id, a.epoch, Sender.member(0), b"", ContentType.APPLICATION, b"forged")
    forged = protect(s.suite, content, FramedContentAuthData(bytes(64)), s.secret_tree,
                     s.secrets.sender_data_secret)
    _rejects(b, M.private(forged).to_bytes(), SignatureError, "MLS-CONTENT-SIGNATURE")
    assert b.process(a.send_application(b"genuine")).application_data == b"genuine"
