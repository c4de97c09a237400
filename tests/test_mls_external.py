"""External commits, ExternalInit, PSK proposals, ReInit and branches (RFC 9420 §8.3, §8.4,
§11.2, §11.3, §12.1.4–§12.1.6, §12.2, §12.4.3.2): ``core/mls/external.py``, ``psk_store.py``,
``reinit.py`` and their ``MlsContext`` entry points.

Agreement is checked between independent members (each derives its secrets itself) and, where the
reference wheel can take part (``gbp_stack`` = openmls 0.8: it processes external commits and
resumption PSKs, it cannot *create* them), against secrets read from the reference's own state.
Hostile input: typed errors with stable ids, the receiving state unchanged, and the genuine
message still accepted afterwards."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbp_lab.core.errors import GbpLabError, MissingKeyError, ProtocolError, SignatureError, UsageError
from gbp_lab.core.mls import external as X
from gbp_lab.core.mls import group as G
from gbp_lab.core.mls import proposal_validation as PV
from gbp_lab.core.mls import reinit as R
from gbp_lab.core.mls.commit import Commit
from gbp_lab.core.mls.context import MlsContext
from gbp_lab.core.mls.extensions import ExternalPub, find_extension
from gbp_lab.core.mls.framing import (FramedContentAuthData, FramingSignatureError, MLSMessage, PublicMessage,
                                      Sender, WrongEpochError, sign_content)
from gbp_lab.core.mls.group_info import GroupInfo
from gbp_lab.core.mls.proposals import (Add, ExternalInit, GroupContextExtensions, PreSharedKey, Proposal,
                                        ProposalOrRef, ReInit, Remove, Update)
from gbp_lab.core.mls.psk import PreSharedKeyID, psk_secret
from gbp_lab.core.mls.psk_store import PskStore
from gbp_lab.core.mls.registries import (ContentType, ExtensionType, ProposalType, ProtocolVersion, PSKType,
                                         ResumptionPSKUsage, SenderType, WireFormat)
from gbp_lab.core.mls.schedule import ConfirmationTagError
from gbp_lab.core.mls.welcome import WelcomeError


# --- helpers -------------------------------------------------------------------------------------------

def _group(n, prefix="m"):
    """n of our members in one group, created by the first one's invites."""
    members = [MlsContext.create(f"{prefix}{i}") for i in range(n)]
    for i, m in enumerate(members[1:], 1):
        commit, welcome = members[0].invite_full(m.export_key_package())
        for old in members[1:i]:
            old.process_message(commit)
            old.finalize_commit()
        members[0].finalize_commit()
        m.accept_welcome(welcome)
    return members


def _agree(members):
    """Everybody in the same epoch with the same exporter, tree hash and transcript."""
    assert len({m.epoch for m in members}) == 1
    assert len({m.group_id for m in members}) == 1
    assert len({m.export_raw("agree", b"ctx", 32) for m in members}) == 1
    assert len({m.group_context.to_bytes() for m in members}) == 1
    assert len({m.transcript_hashes.interim for m in members}) == 1


def _merge(commit, members):
    for m in members:
        assert m.process_message(commit) == "commit"
        m.finalize_commit()


def _fingerprint(ctx):
    s = ctx.state
    return (s.epoch, s.context.to_bytes(), s.tree.to_bytes(), s.secrets.exporter_secret.reveal(),
            tuple(sorted(s.proposals)), ctx.has_pending_commit)


def _rejects(ctx, data, error, vid=None):
    before = _fingerprint(ctx)
    with pytest.raises(error) as exc:
        ctx.process_message(data)
    if vid is not None:
        assert exc.value.vid == vid, exc.value
    assert _fingerprint(ctx) == before
    return exc.value


def _decode_public(data):
    msg = MLSMessage.from_bytes(data)
    assert msg.wire_format == WireFormat.MLS_PUBLIC_MESSAGE
    return msg.message


def _reframe(data, signature_priv, group_context, *, commit=None, content=None, tag=None):
    """Rebuild an external-commit PublicMessage with a changed Commit/content, re-signed by the
    joiner (``signature_priv``) over ``group_context`` — a forgery only the joiner could make."""
    pm = _decode_public(data)
    c = pm.content
    if commit is not None:
        c = replace(c, body=commit.to_bytes())
    if content is not None:
        c = content
    suite = MlsContext.create("tmp").state.suite
    sig = sign_content(suite, signature_priv, WireFormat.MLS_PUBLIC_MESSAGE, c, group_context)
    auth = FramedContentAuthData(sig, pm.auth.confirmation_tag if tag is None else tag)
    if c.content_type != ContentType.COMMIT:
        auth = FramedContentAuthData(sig, None)
    return MLSMessage.public(PublicMessage(c, auth, None)).to_bytes()


# --- GroupInfo with external_pub ------------------------------------------------------------------------

def test_group_info_carries_external_pub_derived_from_the_external_secret():
    a, b = _group(2)
    raw = b.export_group_info()
    msg = MLSMessage.from_bytes(raw)
    assert raw[:4] == bytes.fromhex("00010004") and msg.wire_format == WireFormat.MLS_GROUP_INFO
    gi: GroupInfo = msg.message
    assert msg.to_bytes() == raw  # bytes -> object -> identical bytes
    assert gi.group_context == a.group_context and gi.signer == b.own_leaf_index
    assert gi.confirmation_tag == a.state.confirmation_tag
    gi.verify(a.tree.leaf(b.own_leaf_index).signature_key)
    pub = ExternalPub.from_bytes(find_extension(gi.extensions, ExtensionType.EXTERNAL_PUB).extension_data)
    suite = a.state.suite
    # §8.3: external_priv, external_pub = KEM.DeriveKeyPair(external_secret), computed independently
    assert pub.external_pub == suite.derive_key_pair(a.epoch_secrets.external_secret.reveal())[1]
    assert gi.ratchet_tree() is not None
    bare = MLSMessage.from_bytes(b.export_group_info(with_external_pub=False, with_ratchet_tree=False)).message
    assert bare.extensions == ()
    with pytest.raises(MissingKeyError) as exc:
        MlsContext.join_external(b.export_group_info(with_external_pub=False), "x")
    assert exc.value.vid == "MLS-EXTERNAL-NO-PUB"
    with pytest.raises(MissingKeyError) as exc:
        MlsContext.join_external(b.export_group_info(with_ratchet_tree=False), "x")
    assert exc.value.vid == "MLS-EXTERNAL-NO-TREE"
    # the tree can come out of band
    d, commit = MlsContext.join_external(b.export_group_info(with_ratchet_tree=False), "d",
                                         ratchet_tree=a.tree.to_extension_body().to_bytes())
    _merge(commit, [a, b])
    _agree([a, b, d])


def test_tampered_group_info_is_refused_by_the_joiner():
    a, b = _group(2)
    raw = bytearray(b.export_group_info())
    raw[-1] ^= 1  # inside the signature
    with pytest.raises(SignatureError):
        MlsContext.join_external(bytes(raw), "x")
    with pytest.raises(ProtocolError):
        MlsContext.join_external(a.export_key_package(), "x")


# --- external joins ------------------------------------------------------------------------------------

def test_external_joiner_commits_into_a_group_of_our_members():
    a, b, c = _group(3)
    epoch = a.epoch
    d, commit = MlsContext.join_external(b.export_group_info(), "dave")
    pm = _decode_public(commit)  # §12.4.3.2: a PublicMessage, sender new_member_commit, no membership tag
    assert pm.content.sender == Sender.new_member_commit() and pm.membership_tag is None
    assert pm.content.epoch == epoch and pm.content.content_type == ContentType.COMMIT
    cm = Commit.from_bytes(pm.content.body)
    assert [p.proposal.proposal_type for p in cm.proposals] == [ProposalType.EXTERNAL_INIT]
    assert cm.path is not None and cm.path.leaf_node.credential.identity == b"dave"
    assert d.epoch == epoch + 1 and d.own_leaf_index == 3
    for m in (a, b, c):
        res = m.process(commit)
        assert res.kind == "commit" and res.sender.sender_type == SenderType.NEW_MEMBER_COMMIT
        m.finalize_commit()
    _agree([a, b, c, d])
    assert len(a.members) == 4
    assert a.tree.leaf(3).credential.identity == b"dave"
    assert a.tree.leaf(3).signature_key == d._key_package.leaf_node.signature_key
    # the new member talks and commits like any other
    assert a.process(d.send_application(b"hi from dave")).application_data == b"hi from dave"
    _merge(d.remove_member(1), [a, c])
    d.finalize_commit()
    _agree([a, c, d])


def test_external_joiner_takes_the_leftmost_free_leaf():
    a, b, c = _group(3)
    _merge(a.remove_member(1), [c])
    a.finalize_commit()
    d, commit = MlsContext.join_external(c.export_group_info(), "dave")
    assert d.own_leaf_index == 1
    _merge(commit, [a, c])
    _agree([a, c, d])


def test_external_commit_with_an_external_psk():
    a, b = _group(2)
    for m in (a, b):
        m.add_external_psk("shared", b"k" * 32)
    gi = a.export_group_info()
    joiner = MlsContext.create("dave")
    joiner.add_external_psk("shared", b"k" * 32)
    commit = joiner.external_commit(gi, psk_ids=["shared"])
    _merge(commit, [a, b])
    _agree([a, b, joiner])
    pid = Commit.from_bytes(_decode_public(commit).content.body).proposals[1].proposal.body.psk
    assert pid.psktype == PSKType.EXTERNAL and pid.psk_id == b"shared" and len(pid.psk_nonce) == 32
    want = psk_secret(a.state.suite, [(pid, b"k" * 32)]).reveal()
    assert {m.epoch_secrets.psk_secret.reveal() for m in (a, b, joiner)} == {want}


def test_resync_of_an_existing_member_by_external_commit():
    """c loses its state (it restores an old snapshot, misses a commit), then rejoins by an
    external commit that removes its old leaf; its index and the member count stay."""
    a, b, c = _group(3)
    stale = MlsContext.restore_state(c.export_state())
    _merge(a.self_update(), [b, c])
    a.finalize_commit()
    assert stale.epoch == a.epoch - 1
    commit = stale.resync_external(a.export_group_info())
    cm = Commit.from_bytes(_decode_public(commit).content.body)
    kinds = [p.proposal.proposal_type for p in cm.proposals]
    assert kinds == [ProposalType.EXTERNAL_INIT, ProposalType.REMOVE]
    assert cm.proposals[1].proposal.body.removed == 2
    _merge(commit, [a, b])
    assert c.process(commit).removed_us  # the old c sees itself removed
    c.finalize_commit()
    assert not c.is_active
    _agree([a, b, stale])
    assert stale.own_leaf_index == 2 and len(a.members) == 3


def test_resync_that_removes_somebody_else_is_refused():
    a, b, c = _group(3)
    d = MlsContext.create("dave")
    v = X.verify_group_info(a.export_group_info())
    with pytest.raises(G.CommitError) as exc:
        X.create_external_commit(v, d._key_package.leaf_node, d._signature_priv, remove=1)
    assert exc.value.vid == "MLS-EXTERNAL-RESYNC-IDENTITY"
    # a joiner that skips its own check: the members refuse
    orig = X._check_resync
    X._check_resync = lambda *args: None
    try:
        res = X.create_external_commit(v, d._key_package.leaf_node, d._signature_priv, remove=1)
    finally:
        X._check_resync = orig
    _rejects(b, res.message, G.CommitError, "MLS-EXTERNAL-RESYNC-IDENTITY")
    with pytest.raises(UsageError) as exc:
        d.resync_external(a.export_group_info())
    assert exc.value.vid == "MLS-EXTERNAL-RESYNC-NONE"


# --- hostile external commits ------------------------------------------------------------------------------

@pytest.fixture
def ext_setup():
    a, b = _group(2)
    d, commit = MlsContext.join_external(a.export_group_info(), "dave")
    return a, b, d, commit


def _commit_of(data):
    return Commit.from_bytes(_decode_public(data).content.body)


def _still_accepts(ctx, commit, d):
    _merge(commit, [ctx])
    _agree([ctx, d])


def test_external_commit_without_external_init(ext_setup):
    a, b, d, commit = ext_setup
    cm = _commit_of(commit)
    forged = _reframe(commit, d._signature_priv, a.group_context, commit=replace(cm, proposals=()))
    _rejects(b, forged, G.ProposalError, "MLS-EXTERNAL-INIT-COUNT")
    two = replace(cm, proposals=cm.proposals * 2)
    _rejects(b, _reframe(commit, d._signature_priv, a.group_context, commit=two), G.ProposalError,
             "MLS-EXTERNAL-INIT-COUNT")
    _still_accepts(b, commit, d)


def test_external_commit_with_an_invalid_kem_output(ext_setup):
    a, b, d, commit = ext_setup
    cm = _commit_of(commit)
    short = replace(cm, proposals=(ProposalOrRef(proposal=Proposal(ExternalInit(b"\x01" * 5))),))
    _rejects(b, _reframe(commit, d._signature_priv, a.group_context, commit=short), G.CommitError,
             "MLS-EXTERNAL-INIT-KEM")
    # a well-formed but different KEM output: another init_secret, so the confirmation tag fails
    other = a.state.suite.generate_key_pair()[1]
    wrong = replace(cm, proposals=(ProposalOrRef(proposal=Proposal(ExternalInit(other))),))
    _rejects(b, _reframe(commit, d._signature_priv, a.group_context, commit=wrong), ConfirmationTagError)
    _still_accepts(b, commit, d)


def test_external_commit_with_forbidden_proposals(ext_setup):
    a, b, d, commit = ext_setup
    cm = _commit_of(commit)
    upd = Proposal(Update(a.tree.leaf(0)))
    add = Proposal(Add(MlsContext.create("eve")._key_package))
    gce = Proposal(GroupContextExtensions(()))
    reinit = Proposal(ReInit(b"g" * 16, ProtocolVersion.MLS10, 1, ()))
    for extra in (upd, add, gce, reinit):
        forged = replace(cm, proposals=cm.proposals + (ProposalOrRef(proposal=extra),))
        _rejects(b, _reframe(commit, d._signature_priv, a.group_context, commit=forged), G.ProposalError,
                 "MLS-EXTERNAL-PROPOSAL-TYPE")
    by_ref = replace(cm, proposals=cm.proposals + (ProposalOrRef(reference=b"r" * 32),))
    _rejects(b, _reframe(commit, d._signature_priv, a.group_context, commit=by_ref), G.CommitError,
             "MLS-EXTERNAL-BY-REFERENCE")
    two_removes = replace(cm, proposals=cm.proposals + (ProposalOrRef(proposal=Proposal(Remove(0))),
                                                       ProposalOrRef(proposal=Proposal(Remove(1)))))
    _rejects(b, _reframe(commit, d._signature_priv, a.group_context, commit=two_removes), G.ProposalError,
             "MLS-EXTERNAL-REMOVE-COUNT")
    no_path = replace(cm, path=None)
    _rejects(b, _reframe(commit, d._signature_priv, a.group_context, commit=no_path), G.CommitError,
             "MLS-EXTERNAL-NO-PATH")
    _still_accepts(b, commit, d)


def test_external_commit_signature_epoch_and_content_type(ext_setup):
    a, b, d, commit = ext_setup
    pm = _decode_public(commit)
    bad_sig = MLSMessage.public(PublicMessage(pm.content, FramedContentAuthData(
        bytes(len(pm.auth.signature)), pm.auth.confirmation_tag), None)).to_bytes()
    _rejects(b, bad_sig, FramingSignatureError)
    # signed by someone else than the path's leaf
    _rejects(b, _reframe(commit, a._signature_priv, a.group_context, commit=_commit_of(commit)),
             FramingSignatureError)
    # a new_member_commit sender that sends a proposal
    prop = replace(pm.content, content_type=ContentType.PROPOSAL,
                   body=Proposal(ExternalInit(b"\x00" * 32)).to_bytes())
    _rejects(b, _reframe(commit, d._signature_priv, a.group_context, content=prop), G.CommitError,
             "MLS-EXTERNAL-CONTENT")
    _still_accepts(b, commit, d)
    _merge(commit, [a])
    _rejects(a, commit, WrongEpochError)  # the same commit once more: its epoch is gone


def test_external_init_from_a_member_public_or_private_is_refused():
    """An ExternalInit in a member's Commit (RFC 9420 §12.2) — whether the member sends it as a
    PublicMessage or a PrivateMessage — and a joiner asking for a PrivateMessage."""
    a, b = _group(2)
    with pytest.raises(G.ProposalError) as exc:
        G.create_commit(a.state, [Proposal(ExternalInit(a.state.suite.generate_key_pair()[1]))])
    assert exc.value.vid == "MLS-PROPOSAL-EXTERNAL-INIT-MEMBER"
    orig = PV.check_special_proposals
    PV.check_special_proposals = lambda state, by_type, committer, count: (None, None)
    try:
        forged = {wf: G.create_commit(a.state, [Proposal(ExternalInit(a.state.suite.generate_key_pair()[1]))],
                                      wire_format=wf).message
                  for wf in (WireFormat.MLS_PUBLIC_MESSAGE, WireFormat.MLS_PRIVATE_MESSAGE)}
    finally:
        PV.check_special_proposals = orig
    assert MLSMessage.from_bytes(forged[WireFormat.MLS_PRIVATE_MESSAGE]).wire_format == WireFormat.MLS_PRIVATE_MESSAGE
    for data in forged.values():
        _rejects(b, data, G.ProposalError, "MLS-PROPOSAL-EXTERNAL-INIT-MEMBER")
    v = X.verify_group_info(a.export_group_info())
    d = MlsContext.create("dave")
    with pytest.raises(UsageError) as exc:
        X.create_external_commit(v, d._key_package.leaf_node, d._signature_priv,
                                 wire_format=WireFormat.MLS_PRIVATE_MESSAGE)
    assert exc.value.vid == "MLS-EXTERNAL-WIRE-FORMAT"
    assert b.process(a.send_application(b"still fine")).application_data == b"still fine"


def _ext_fuzz_fixture():
    if not hasattr(_ext_fuzz_fixture, "cache"):
        a, b = _group(2)
        d, commit = MlsContext.join_external(a.export_group_info(), "dave")
        _ext_fuzz_fixture.cache = (b, commit)
    return _ext_fuzz_fixture.cache


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pos=st.integers(0, 100_000), mask=st.integers(1, 255), cut=st.booleans())
def test_fuzz_mutated_external_commits_raise_typed_errors(pos, mask, cut):
    b, commit = _ext_fuzz_fixture()
    data = bytearray(commit)
    i = pos % len(data)
    if cut:
        data = data[:i]
    else:
        data[i] ^= mask
    before = _fingerprint(b)
    try:
        b.process_message(bytes(data))
    except GbpLabError:
        pass
    else:  # a mutation that still verifies would be a forgery
        b.clear_pending_commit()
        pytest.fail(f"mutated external commit accepted (pos {i}, cut {cut})")
    assert _fingerprint(b) == before


# --- PSK proposals ------------------------------------------------------------------------------------------

def test_psk_proposals_external_and_resumption_all_members_agree():
    """A PSK proposal by reference (external PSK) and an inline one (resumption PSK of the previous
    epoch): every member derives the same psk_secret, equal to the §8.4 chain recomputed here
    from the ids each receiver decoded and the values known independently."""
    a, b, c = _group(3)
    _merge(a.self_update(), [b, c])  # one more epoch, so that everybody knows the previous one
    a.finalize_commit()
    secret = bytes(range(32))
    for m in (a, b, c):
        m.add_external_psk(b"team-psk", secret)
    old_epoch = a.epoch - 1
    assert a.history[-2].epoch == old_epoch
    resumption = a.history[-2].epoch_secrets.resumption_psk.reveal()
    prop = b.propose_psk(b"team-psk")
    got = a.process(prop)
    assert got.kind == "proposal"
    pid_ext = got.proposal.body.psk
    assert c.process(prop).proposal.body.psk == pid_ext
    assert pid_ext.psktype == PSKType.EXTERNAL and pid_ext.psk_id == b"team-psk" and len(pid_ext.psk_nonce) == 32
    commit = a.commit_psks(epochs=[old_epoch])
    res = b.process(commit)
    cm = Commit.from_bytes(res.authenticated_content.content.body)
    assert cm.proposals[0].reference is not None  # b's proposal, by reference
    inline = cm.proposals[1].proposal.body.psk
    assert inline.psktype == PSKType.RESUMPTION and inline.usage == ResumptionPSKUsage.APPLICATION
    assert (inline.psk_group_id, inline.psk_epoch) == (a.group_id, old_epoch)
    b.finalize_commit()
    _merge(commit, [c])
    a.finalize_commit()
    _agree([a, b, c])
    want = psk_secret(a.state.suite, [(pid_ext, secret), (inline, resumption)]).reveal()
    assert want != bytes(32)
    assert {m.epoch_secrets.psk_secret.reveal() for m in (a, b, c)} == {want}


def test_psk_commit_needs_the_value_and_valid_ids():
    a, b = _group(2)
    a.add_external_psk("only-a", b"x" * 32)
    commit = a.commit_psks(["only-a"])
    _rejects(b, commit, MissingKeyError, "MLS-COMMIT-PSK")
    b.add_external_psk("only-a", b"y" * 32)  # a different value: the key schedules diverge
    _rejects(b, commit, ConfirmationTagError)
    b.add_external_psk("only-a", b"x" * 32)
    _merge(commit, [b])
    a.finalize_commit()
    _agree([a, b])
    with pytest.raises(UsageError) as exc:
        a.propose_psk("unknown")
    assert exc.value.vid == "MLS-PSK-UNKNOWN"
    with pytest.raises(UsageError):
        a.propose_psk("only-a", epoch=0)
    suite = a.state.suite
    short = PreSharedKeyID.external(b"only-a", b"n" * 5)
    with pytest.raises(G.ProposalError) as exc:
        G.create_commit(a.state, [Proposal(PreSharedKey(short))], psks=a.psk_resolver())
    assert exc.value.vid == "MLS-PROPOSAL-PSK-NONCE"
    reinit_use = PreSharedKeyID.resumption(ResumptionPSKUsage.REINIT, a.group_id, a.epoch, b"n" * suite.hash_length)
    with pytest.raises(G.ProposalError) as exc:
        G.create_commit(a.state, [Proposal(PreSharedKey(reinit_use))], psks=a.psk_resolver())
    assert exc.value.vid == "MLS-PROPOSAL-PSK-USAGE"


def test_psk_store_bounds_and_lookup():
    store = PskStore(max_resumption=2)
    for e in range(3):
        store.remember(b"g", e, bytes([e]) * 32)
    assert store.resumption(b"g", 0) is None and store.resumption(b"g", 2) == b"\x02" * 32
    store.add_external("id", b"s")
    assert store.lookup(PreSharedKeyID.external(b"id", b"n")) == b"s"
    assert store.lookup(PreSharedKeyID.resumption(1, b"g", 1, b"n")) == b"\x01" * 32
    with pytest.raises(UsageError):
        store.add_external(b"", b"s")
    with pytest.raises(UsageError):
        PskStore(max_resumption=0)


# --- ReInit and branches ---------------------------------------------------------------------------------

def test_reinit_flow():
    a, b, c = _group(3)
    new_gid = b"R" * 16
    commit = a.reinit(new_gid)
    cm = Commit.from_bytes(b.process(commit).authenticated_content.content.body)
    assert [p.proposal.proposal_type for p in cm.proposals] == [ProposalType.REINIT]
    b.finalize_commit()
    _merge(commit, [c])
    a.finalize_commit()
    _agree([a, b, c])
    closed_epoch = a.epoch
    last_resumption = a.epoch_secrets.resumption_psk.reveal()
    for m in (a, b, c):
        assert m.state.reinit == ReInit(new_gid, ProtocolVersion.MLS10, 1, ())
    # the old group is closed: nothing more is sent or accepted
    with pytest.raises(G.GroupStateError) as exc:
        a.send_application(b"late")
    assert exc.value.vid == "MLS-GROUP-REINIT"
    with pytest.raises(G.GroupStateError):
        b.self_update()
    welcome = b.create_reinit_group([a.export_key_package(), c.export_key_package()])
    for m in (a, c):
        m.accept_welcome(welcome)
    _agree([a, b, c])
    assert a.group_id == new_gid and a.epoch == 1 and len(a.members) == 3
    # psk_secret = the chain over the reinit PSK of the old group's last epoch
    pid = PreSharedKeyID.resumption(ResumptionPSKUsage.REINIT, b"", closed_epoch, b"")
    from gbp_lab.core.mls.welcome import decrypt_group_secrets
    gs = decrypt_group_secrets(MLSMessage.from_bytes(welcome).message, a._key_package.ref(a.state.suite),
                               a._init_priv)
    (pid,) = gs.psks
    assert pid.usage == ResumptionPSKUsage.REINIT and pid.psk_epoch == closed_epoch and pid.psk_group_id != new_gid
    want = psk_secret(a.state.suite, [(pid, last_resumption)]).reveal()
    assert {m.epoch_secrets.psk_secret.reveal() for m in (a, b, c)} == {want}
    # the new group works
    _merge(a.remove_member(b.own_leaf_index), [c])
    a.finalize_commit()
    _agree([a, c])


def test_reinit_must_be_alone_and_welcome_must_match():
    a, b = _group(2)
    p = R.reinit_proposal(a.state, group_id=b"N" * 16)
    with pytest.raises(G.ProposalError) as exc:
        G.create_commit(a.state, [p, Proposal(Remove(1))])
    assert exc.value.vid == "MLS-PROPOSAL-REINIT-ALONE"
    bad_suite = Proposal(ReInit(b"N" * 16, ProtocolVersion.MLS10, 0x7777, ()))
    with pytest.raises(G.ProposalError) as exc:
        G.create_commit(a.state, [bad_suite])
    assert exc.value.vid == "MLS-PROPOSAL-REINIT-SUITE"
    with pytest.raises(UsageError):
        a.create_reinit_group([b.export_key_package()])  # no ReInit committed
    # a "reinit" Welcome for a group that was never closed: b refuses, state unchanged
    leaf_priv, leaf = a.member.fresh_leaf(a.state.suite)
    forged = R.create_resumed_group(a.state, ResumptionPSKUsage.REINIT, leaf, leaf_priv, a._signature_priv,
                                    [b._key_package], group_id=b"N" * 16)
    before = _fingerprint(b)
    with pytest.raises(WelcomeError) as exc:
        b.accept_welcome(forged.welcome)
    assert exc.value.vid == "MLS-WELCOME-REINIT" and _fingerprint(b) == before
    # closed by a ReInit with other parameters than the new group's
    commit = a.reinit(b"N" * 16)
    _merge(commit, [b])
    a.finalize_commit()
    other = R.create_resumed_group(a.state, ResumptionPSKUsage.REINIT, leaf, leaf_priv, a._signature_priv,
                                   [b._key_package], group_id=b"O" * 16)
    with pytest.raises(WelcomeError) as exc:
        b.accept_welcome(other.welcome)
    assert exc.value.vid == "MLS-WELCOME-REINIT"
    outsider = MlsContext.create("o")
    good = R.create_reinit_group(a.state, leaf, leaf_priv, a._signature_priv, [outsider._key_package])
    with pytest.raises(MissingKeyError):  # the outsider has no resumption PSK of the old group
        outsider.accept_welcome(good.welcome)


def test_branch_keeps_the_old_group_and_checks_membership():
    a, b, c = _group(3)
    nb, welcome = a.branch([b.export_key_package()], group_id=b"B" * 16)
    b2 = b.join_branch(welcome)
    _agree([nb, b2])
    assert nb.group_id == b"B" * 16 and nb.epoch == 1 and len(nb.members) == 2
    assert b.group_id == a.group_id  # the old contexts stay in the old group
    _merge(a.self_update(), [b, c])
    a.finalize_commit()
    _agree([a, b, c])
    # an outsider in the branch: the old members refuse the Welcome
    outsider = MlsContext.create("o")
    _, welcome2 = a.branch([c.export_key_package(), outsider.export_key_package()])
    with pytest.raises(WelcomeError) as exc:
        c.join_branch(welcome2)
    assert exc.value.vid == "MLS-WELCOME-BRANCH"


# --- the rules table ------------------------------------------------------------------------------------------

def test_every_new_proposal_and_commit_id_is_in_the_rules_table():
    from gbp_lab.core.mls.proposals_apply import BY_VID
    for mod in (X, R):
        source = open(mod.__file__, encoding="utf-8").read()
        raised = set(re.findall(r'vid="(MLS-(?:PROPOSAL|EXTERNAL)-[A-Z0-9-]+)"', source))
        raised -= {"MLS-EXTERNAL-GROUP-INFO", "MLS-EXTERNAL-NO-PUB", "MLS-EXTERNAL-NO-TREE", "MLS-EXTERNAL-SIGNER",
                   "MLS-EXTERNAL-WIRE-FORMAT", "MLS-EXTERNAL-LEAF", "MLS-EXTERNAL-SUITE",
                   "MLS-EXTERNAL-RESYNC-NONE"}  # joiner-side misuse / GroupInfo problems
        assert raised <= set(BY_VID), raised - set(BY_VID)


# --- interop with the reference (openmls 0.8 through gbp_stack) ---------------------------------------------
# The wheel exposes no GroupInfo export, external join, PSK or ReInit call, so the reference can
# only be the *receiving* side: it processes our external commits, resyncs and PSK commits.

def _ref():
    return pytest.importorskip("gbp_stack").MlsContext


def _ref_exporter(ref):
    from gbp_lab.core.keylog import KeyLog
    secret = KeyLog.from_gbp_stack_state(ref.export_state()).exporter_secret(ref.group_id, ref.epoch)
    assert secret is not None
    return secret


def _ref_group_with_us(n_ours=1):
    alice = _ref().create("alice")
    ours = [MlsContext.create(f"us{i}") for i in range(n_ours)]
    for i, u in enumerate(ours):
        commit, welcome = alice.invite_full(u.export_key_package())
        for old in ours[:i]:
            old.process_message(commit)
            old.finalize_commit()
        alice.finalize_commit()
        u.accept_welcome(welcome)
    return alice, ours


@pytest.mark.interop
def test_reference_processes_our_external_commit():
    """openmls accepts the external commit (a PublicMessage, although its pure-ciphertext policy
    refuses PublicMessage commits of members) and ends in the epoch whose exporter secret — read
    from its own state — the joiner derived."""
    alice, (us,) = _ref_group_with_us()
    d, commit = MlsContext.join_external(us.export_group_info(), "dave")
    assert alice.process_message(commit) == "commit"
    alice.finalize_commit()
    _merge(commit, [us])
    assert alice.epoch == d.epoch == us.epoch
    assert _ref_exporter(alice) == d.epoch_secrets.exporter_secret.reveal() == us.epoch_secrets.exporter_secret.reveal()
    # and the reference goes on with the new member
    commit2 = alice.remove_member(us.own_leaf_index)
    _merge(commit2, [d])
    alice.finalize_commit()
    assert _ref_exporter(alice) == d.epoch_secrets.exporter_secret.reveal()


@pytest.mark.interop
def test_reference_processes_our_resync_and_resumption_psk_commits():
    alice, (us, us2) = _ref_group_with_us(2)
    commit = us2.resync_external(us.export_group_info())
    assert alice.process_message(commit) == "commit"
    alice.finalize_commit()
    _merge(commit, [us])
    assert _ref_exporter(alice) == us2.epoch_secrets.exporter_secret.reveal()
    for epoch in (us.epoch, us.epoch - 1):  # resumption PSKs of the current and the previous epoch
        commit = us.commit_psks(epochs=[epoch])
        assert alice.process_message(commit) == "commit"
        alice.finalize_commit()
        us.finalize_commit()
        _merge(commit, [us2])
        assert _ref_exporter(alice) == us.epoch_secrets.exporter_secret.reveal() \
            == us2.epoch_secrets.exporter_secret.reveal()
        assert us.epoch_secrets.psk_secret.reveal() != bytes(32)


@pytest.mark.interop
def test_reference_follows_our_reinit_commit_but_cannot_join_the_new_group():
    """openmls merges our ReInit commit; the Welcome of the re-initialised group names a
    resumption PSK the binding never hands to openmls' PSK storage, so it is refused
    (``Psk(KeyNotFound)``) — our own members join it (test_reinit_flow)."""
    alice, (us,) = _ref_group_with_us()
    commit = us.reinit(b"N" * 16)
    assert alice.process_message(commit) == "commit"
    alice.finalize_commit()
    us.finalize_commit()
    assert _ref_exporter(alice) == us.epoch_secrets.exporter_secret.reveal()
    welcome = us.create_reinit_group([alice.export_key_package()])
    with pytest.raises(OSError, match="KeyNotFound"):
        alice.accept_welcome(welcome)


def test_reinit_marker_survives_state_export():
    a, b = _group(2)
    _merge(a.reinit(b"N" * 16), [b])
    a.finalize_commit()
    restored = MlsContext.restore_state(b.export_state())
    assert restored.state.reinit == b.state.reinit == ReInit(b"N" * 16, ProtocolVersion.MLS10, 1, ())
    with pytest.raises(G.GroupStateError):
        restored.send_application(b"x")
    restored.accept_welcome(a.create_reinit_group([restored.export_key_package()]))
    _agree([a, restored])


def test_external_commit_claiming_a_member_sender_is_refused(ext_setup):
    """The joiner relabels its commit as coming from member 0: as a member's PublicMessage it
    needs a membership tag, which only members can compute."""
    from gbp_lab.core.mls.framing import MembershipTagError
    a, b, d, commit = ext_setup
    pm = _decode_public(commit)
    content = replace(pm.content, sender=Sender.member(0))
    sig = sign_content(a.state.suite, d._signature_priv, WireFormat.MLS_PUBLIC_MESSAGE, content, a.group_context)
    forged = MLSMessage.public(PublicMessage(content, FramedContentAuthData(sig, pm.auth.confirmation_tag),
                                             bytes(32))).to_bytes()
    _rejects(b, forged, MembershipTagError)
    _still_accepts(b, commit, d)


@pytest.mark.parametrize("suite", [2, 3])
def test_external_join_in_other_suites(suite):
    a = MlsContext.create("a", ciphersuite=suite)
    b = MlsContext.create("b", ciphersuite=suite)
    b.accept_welcome(a.invite(b.export_key_package()))
    d, commit = MlsContext.join_external(a.export_group_info(), "dave")
    assert d.ciphersuite == suite
    _merge(commit, [a, b])
    _agree([a, b, d])


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_fuzz_group_info_parsing_raises_only_typed_errors(data):
    try:
        X.verify_group_info(data)
    except GbpLabError:
        pass


def _gi_fixture():
    if not hasattr(_gi_fixture, "cache"):
        a, b = _group(2)
        _gi_fixture.cache = b.export_group_info()
    return _gi_fixture.cache


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pos=st.integers(0, 100_000), mask=st.integers(1, 255), cut=st.booleans())
def test_fuzz_mutated_group_info_is_refused_with_typed_errors(pos, mask, cut):
    gi = bytearray(_gi_fixture())
    i = pos % len(gi)
    if cut:
        gi = gi[:i]
    else:
        gi[i] ^= mask
    with pytest.raises(GbpLabError):
        X.verify_group_info(bytes(gi))
