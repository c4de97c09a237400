"""Interop of our MLS group state machine (``gbp_lab.core.mls.context.MlsContext``) with the
reference wheel (``gbp_stack`` = openmls 0.8): real Welcome / Commit bytes in both directions.

Every agreement check compares against secrets taken from the *reference's* own state
(``KeyLog.from_gbp_stack_state(ctx.export_state())``) or against frames the reference sealed.
"""
from __future__ import annotations

import pytest

gbp_stack = pytest.importorskip("gbp_stack")

from gbp_lab.core.errors import DecodeError, ProtocolError, StateError  # noqa: E402
from gbp_lab.core.gbp.aead import open_payload, seal_frame  # noqa: E402
from gbp_lab.core.gbp.frame import decode_frame  # noqa: E402
from gbp_lab.core.gtp.message import GtpMessage  # noqa: E402
from gbp_lab.core.keylog import KeyLog  # noqa: E402
from gbp_lab.core.mls.commit import Commit  # noqa: E402
from gbp_lab.core.mls.context import MlsContext  # noqa: E402
from gbp_lab.core.mls.framing import MLSMessage  # noqa: E402
from gbp_lab.core.mls.group import GroupStateError  # noqa: E402
from gbp_lab.core.mls.proposals import Add  # noqa: E402
from gbp_lab.core.mls.registries import WireFormat  # noqa: E402

pytestmark = pytest.mark.interop

Ref = gbp_stack.MlsContext


def ref_exporter(ctx) -> bytes:
    """The reference member's current exporter secret, from its own ``export_state`` blob."""
    log = KeyLog.from_gbp_stack_state(ctx.export_state())
    secret = log.exporter_secret(ctx.group_id, ctx.epoch)
    assert secret is not None
    return secret


def ref_secrets(ctx):
    log = KeyLog.from_gbp_stack_state(ctx.export_state())
    return log.exporter_secret(ctx.group_id, ctx.epoch), log.sender_data_secret(ctx.group_id, ctx.epoch)


@pytest.fixture
def ref_group_with_us():
    """Reference alice creates a group and invites our member; we accept her Welcome."""
    alice = Ref.create("alice")
    us = MlsContext.create("us")
    kp = us.export_key_package()
    welcome = alice.invite(kp)
    us.accept_welcome(welcome)
    yield alice, us, kp, welcome
    alice.close()


def test_our_key_package_is_bare_like_openmls():
    us = MlsContext.create("us")
    kp = us.export_key_package()
    ref_kp = Ref.create("ref").export_key_package()
    assert kp[:4] == ref_kp[:4] == bytes.fromhex("00010001")


def test_we_join_the_reference_group_and_agree_on_every_secret(ref_group_with_us):
    alice, us, _, welcome = ref_group_with_us
    assert welcome[:4] == bytes.fromhex("00010003")
    assert us.epoch == alice.epoch == 1
    assert us.group_id == alice.group_id and len(us.group_id) == 16
    exporter, sender_data = ref_secrets(alice)
    assert us.epoch_secrets.exporter_secret.reveal() == exporter
    assert us.epoch_secrets.sender_data_secret.reveal() == sender_data
    assert us.own_leaf_index == 1
    assert [m.identity for m in us.members] == [b"alice", b"us"]
    assert us.tree.tree_hash() == us.group_context.tree_hash


def test_our_exporter_opens_the_reference_gtp_frames(ref_group_with_us):
    """Proof with the stack's own key use: the reference seals a GTP text frame with its
    ``gbp/text`` exporter key; ``export_raw("gbp/text", b"", 32)`` of our context opens it. And the
    other way: a frame we seal with our key is delivered by the reference node."""
    alice, us, _, _ = ref_group_with_us
    node = gbp_stack.GroupNode.create(member_id=1, group_id=alice.group_id)
    gtp = gbp_stack.GtpClient.create()
    try:
        node.bootstrap_as_creator(alice.epoch)
        node.drain_events()
        frame = decode_frame(gtp.send(node, alice, 2, message_id=41, text="hello from openmls").wire)
        key = us.export_raw("gbp/text", b"", 32)
        msg = GtpMessage.from_cbor(open_payload(key, frame.sequence_no, frame.payload))
        assert msg.text == "hello from openmls" and msg.message_id == 41

        reply = GtpMessage.plain(2, 42, "hello from gbp-lab")
        ours = seal_frame(us.epoch_secrets.exporter_secret.reveal(), us.group_id, us.epoch,
                          node.last_transition_id, 2, 2 * 100 + 1, 0x0007, 1, reply.to_cbor())
        events = node.on_wire(alice, ours.to_cbor())
        got = [e for e in events if e.kind == "payload_received"]
        assert len(got) == 1 and got[0].plaintext == reply.to_cbor(), events
    finally:
        gtp.close()
        node.close()


def test_reference_commits_are_private_messages_with_a_path_and_no_padding(ref_group_with_us):
    """What openmls sends: handshake as PrivateMessage, an Add commit with an UpdatePath; once
    decrypted, the PrivateMessageContent carries no padding (openmls padding_size 0)."""
    alice, us, _, _ = ref_group_with_us
    carol = Ref.create("carol")
    commit, welcome = alice.invite_full(carol.export_key_package())
    msg = MLSMessage.from_bytes(commit)
    assert msg.wire_format == WireFormat.MLS_PRIVATE_MESSAGE and commit[:4] == bytes.fromhex("00010002")
    res = us.process(commit)
    assert res.kind == "commit"
    body = Commit.from_bytes(res.authenticated_content.content.body)
    assert body.path is not None
    assert [type(p.proposal.body) for p in body.proposals] == [Add]
    # AEAD tag (16) + content (commit + signature + confirmation tag) = ciphertext, no padding
    auth_len = len(res.authenticated_content.auth.to_bytes(res.authenticated_content.content.content_type))
    assert len(msg.message.ciphertext) == len(res.authenticated_content.content.body) + auth_len + 16
    assert us.epoch == 1 and us.has_pending_commit  # staged, not merged
    alice.finalize_commit()
    us.finalize_commit()
    assert us.epoch == alice.epoch == 2
    assert us.epoch_secrets.exporter_secret.reveal() == ref_exporter(alice)
    carol.accept_welcome(welcome)
    assert ref_exporter(carol) == us.epoch_secrets.exporter_secret.reveal()


def test_reference_accepts_our_welcome_and_commits():
    us = MlsContext.create("us")
    bob = Ref.create("bob")
    welcome = us.invite(bob.export_key_package())
    assert MLSMessage.from_bytes(welcome).wire_format == WireFormat.MLS_WELCOME
    bob.accept_welcome(welcome)
    assert bob.epoch == us.epoch == 1 and bob.group_id == us.group_id
    assert ref_exporter(bob) == us.epoch_secrets.exporter_secret.reveal()
    # our commit (PrivateMessage, full path) is accepted by the reference
    carol = Ref.create("carol")
    commit, welcome2 = us.invite_full(carol.export_key_package())
    assert MLSMessage.from_bytes(commit).wire_format == WireFormat.MLS_PRIVATE_MESSAGE
    assert bob.process_message(commit) == "commit"
    bob.finalize_commit()
    us.finalize_commit()
    carol.accept_welcome(welcome2)
    assert bob.epoch == carol.epoch == us.epoch == 2
    assert ref_exporter(bob) == ref_exporter(carol) == us.epoch_secrets.exporter_secret.reveal()


def _agree(ours, refs):
    epochs = {c.epoch for c in ours} | {r.epoch for r in refs}
    secrets = {c.epoch_secrets.exporter_secret.reveal() for c in ours} | {ref_exporter(r) for r in refs}
    gids = {c.group_id for c in ours} | {r.group_id for r in refs}
    assert len(epochs) == 1 and len(secrets) == 1 and len(gids) == 1, (epochs, len(secrets))
    return epochs.pop()


def test_mixed_group_of_six_with_adds_and_removes_from_both_sides():
    """alice, bob, carol, dave = reference; us, vera = ours. Adds and removes are committed by
    both implementations; every member ends on the same epoch with the same exporter secret."""
    alice, bob, carol, dave = (Ref.create(n) for n in ("alice", "bob", "carol", "dave"))
    us, vera = MlsContext.create("us"), MlsContext.create("vera")

    def deliver(commit, receivers):
        for r in receivers:
            assert r.process_message(commit) == "commit"
        for r in receivers:
            r.finalize_commit()

    us.accept_welcome(alice.invite(us.export_key_package()))          # e1: alice, us
    assert _agree([us], [alice]) == 1
    c, w = us.invite_full(bob.export_key_package())                    # e2: + bob (our commit)
    deliver(c, [alice]); us.finalize_commit(); bob.accept_welcome(w)
    assert _agree([us], [alice, bob]) == 2
    c, w = alice.invite_full(carol.export_key_package())               # e3: + carol (reference commit)
    deliver(c, [us, bob]); alice.finalize_commit(); carol.accept_welcome(w)
    assert _agree([us], [alice, bob, carol]) == 3
    c, w = us.invite_full(vera.export_key_package())                   # e4: + vera (ours joins ours)
    deliver(c, [alice, bob, carol]); us.finalize_commit(); vera.accept_welcome(w)
    assert _agree([us, vera], [alice, bob, carol]) == 4
    c, w = bob.invite_full(dave.export_key_package())                  # e5: + dave (reference commit)
    deliver(c, [alice, carol, us, vera]); bob.finalize_commit(); dave.accept_welcome(w)
    assert _agree([us, vera], [alice, bob, carol, dave]) == 5
    assert [m.identity for m in us.members] == [b"alice", b"us", b"bob", b"carol", b"vera", b"dave"]

    c = us.remove_member(2)                                            # e6: - bob (our commit)
    deliver(c, [alice, carol, dave, vera]); us.finalize_commit()
    assert _agree([us, vera], [alice, carol, dave]) == 6
    c = carol.remove_member(4)                                         # e7: - vera (reference commit)
    res = vera.process(c)
    assert res.kind == "commit" and res.removed_us
    deliver(c, [alice, dave, us]); carol.finalize_commit()
    vera.finalize_commit()
    assert not vera.is_active
    assert _agree([us], [alice, carol, dave]) == 7
    c, w = alice.invite_full(bob.export_key_package())                 # e8: bob back, at leaf 2
    deliver(c, [carol, dave, us]); alice.finalize_commit()
    bob2 = Ref.create("bob2")
    c, w2 = us.invite_full(bob2.export_key_package())                  # e9: our add into leaf 4
    deliver(c, [alice, carol, dave]); us.finalize_commit(); bob2.accept_welcome(w2)
    assert _agree([us], [alice, carol, dave, bob2]) == 9
    assert [m.leaf_index for m in us.members] == [0, 1, 2, 3, 4, 5]
    for r in (alice, bob, carol, dave, bob2):
        r.close()


def test_reference_remove_refuses_leaf_indices_beyond_the_member_count():
    """A reference quirk (crates/gbp/mls remove_members): it checks leaf_index < number of
    members, so after a removal in the middle it cannot remove the last leaf; we can."""
    alice = Ref.create("alice")
    us = MlsContext.create("us")
    us.accept_welcome(alice.invite(us.export_key_package()))
    others = [Ref.create(n) for n in ("b", "c")]
    for o in others:
        c, w = alice.invite_full(o.export_key_package())
        us.process_message(c); us.finalize_commit(); alice.finalize_commit(); o.accept_welcome(w)
    c = alice.remove_member(2)
    us.process_message(c); us.finalize_commit(); alice.finalize_commit()
    with pytest.raises(OSError):
        alice.remove_member(3)  # leaf 3 is a member, but 3 members < 4
    c = us.remove_member(3)
    alice.process_message(c); alice.finalize_commit(); us.finalize_commit()
    assert us.epoch == alice.epoch and ref_exporter(alice) == us.epoch_secrets.exporter_secret.reveal()
    assert us.tree.n_leaves == 2  # truncated (RFC 9420 §7.7); the secret tree shrinks with it
    c, _ = alice.invite_full(Ref.create("e").export_key_package())
    assert us.process_message(c) == "commit"  # decrypted with the 2-leaf secret tree
    us.finalize_commit(); alice.finalize_commit()
    assert ref_exporter(alice) == us.epoch_secrets.exporter_secret.reveal()


# --- hostile input on real reference bytes ---------------------------------------------------------

def _flip(data: bytes, i: int) -> bytes:
    b = bytearray(data)
    b[i] ^= 0x01
    return bytes(b)


def test_tampered_reference_commit_is_rejected_and_state_is_unchanged(ref_group_with_us):
    alice, us, _, _ = ref_group_with_us
    carol = Ref.create("carol")
    commit, _ = alice.invite_full(carol.export_key_package())
    before = (us.epoch, us.epoch_secrets.exporter_secret.reveal(), us.export_state())
    msg = MLSMessage.from_bytes(commit).message
    n = len(commit)
    for i in (n - 1, n - 20, n - len(msg.ciphertext) // 2, n - len(msg.ciphertext) - 5):
        with pytest.raises(ProtocolError):
            us.process_message(_flip(commit, i))
        assert (us.epoch, us.epoch_secrets.exporter_secret.reveal(), us.export_state()) == before
    for bad in (commit[:-1], commit + b"\x00", commit[:10]):
        with pytest.raises(DecodeError):
            us.process_message(bad)
    assert us.export_state() == before[2]
    # the genuine commit still processes: no key was burned by the forgeries
    assert us.process_message(commit) == "commit"
    with pytest.raises(StateError):  # the same commit again: its generation is spent
        us.process_message(commit)
    us.finalize_commit()
    alice.finalize_commit()
    assert us.epoch_secrets.exporter_secret.reveal() == ref_exporter(alice)
    with pytest.raises(StateError):  # the old epoch's commit is now stale
        us.process_message(commit)


def test_replayed_reference_commit_generation_is_refused(ref_group_with_us):
    alice, us, _, _ = ref_group_with_us
    carol = Ref.create("carol")
    commit, _ = alice.invite_full(carol.export_key_package())
    assert us.process_message(commit) == "commit"
    us.clear_pending_commit()
    with pytest.raises(StateError) as exc:  # same generation of alice's handshake ratchet
        us.process_message(commit)
    assert exc.value.vid == "MLS-SECRET-TREE-REUSED"


def test_reference_rejects_our_tampered_commit_and_accepts_the_genuine_one():
    """openmls refuses a commit whose ciphertext we flipped. Surprise worth knowing: the forged
    message burns the sender's key in openmls (the genuine commit then fails with
    ``SecretReuseError``), whereas our secret tree gives an unused key back on a failed AEAD."""
    us = MlsContext.create("us")
    bob, carl = Ref.create("bob"), Ref.create("carl")
    bob.accept_welcome(us.invite(bob.export_key_package()))
    c, w = us.invite_full(carl.export_key_package())
    bob.process_message(c); bob.finalize_commit(); us.finalize_commit(); carl.accept_welcome(w)
    commit, _ = us.invite_full(Ref.create("dora").export_key_package())
    with pytest.raises(OSError):
        bob.process_message(_flip(commit, len(commit) - 3))
    with pytest.raises(OSError, match="SecretReuse"):
        bob.process_message(commit)
    assert carl.process_message(commit) == "commit"
    carl.finalize_commit()
    us.finalize_commit()
    assert ref_exporter(carl) == us.epoch_secrets.exporter_secret.reveal()


def test_state_export_restore_then_follow_a_reference_commit(ref_group_with_us):
    alice, us, _, _ = ref_group_with_us
    blob = us.export_state()
    again = MlsContext.restore_state(blob)
    assert again.epoch == us.epoch and again.group_id == us.group_id
    assert again.export_state() == blob
    carol = Ref.create("carol")
    commit, _ = alice.invite_full(carol.export_key_package())
    assert again.process_message(commit) == "commit"
    again.finalize_commit()
    alice.finalize_commit()
    assert again.epoch_secrets.exporter_secret.reveal() == ref_exporter(alice)
    with pytest.raises(DecodeError):
        MlsContext.restore_state(blob[:-5])
    with pytest.raises(DecodeError):
        MlsContext.restore_state(b'{"format": "something else"}')


def test_keylog_file_from_environment_matches_the_reference(ref_group_with_us, tmp_path, monkeypatch):
    path = tmp_path / "mls.keys"
    monkeypatch.setenv("MLS_KEYLOGFILE", str(path))
    alice = Ref.create("alice")
    us = MlsContext.create("us")
    us.accept_welcome(alice.invite(us.export_key_package()))
    carol = Ref.create("carol")
    commit, _ = alice.invite_full(carol.export_key_package())
    us.process_message(commit); us.finalize_commit(); alice.finalize_commit()
    log = KeyLog.load(path)
    assert log.epochs(alice.group_id) == [1, 2]
    ref = KeyLog.from_gbp_stack_state(alice.export_state())
    assert log.exporter_secret(alice.group_id, 2) == ref.exporter_secret(alice.group_id, 2)
    assert log.sender_data_secret(alice.group_id, 2) == ref.sender_data_secret(alice.group_id, 2)
    for label in ("MLS_EXPORTER_SECRET", "MLS_SENDER_DATA_SECRET", "MLS_ENCRYPTION_SECRET",
                  "MLS_EPOCH_SECRET"):
        assert log.get(label, alice.group_id, 2) is not None


def test_tampered_reference_welcome_leaves_our_context_unchanged():
    alice = Ref.create("alice")
    us = MlsContext.create("us")
    welcome = alice.invite(us.export_key_package())
    before = us.export_state()
    for i in (len(welcome) - 1, len(welcome) // 2, 40):
        with pytest.raises(ProtocolError):
            us.accept_welcome(_flip(welcome, i))
        assert us.export_state() == before
    with pytest.raises(DecodeError):
        us.accept_welcome(welcome[:-2])
    us.accept_welcome(welcome)
    assert us.epoch_secrets.exporter_secret.reveal() == ref_exporter(alice)


def test_our_stack_follows_a_reference_gbp_transition():
    """Our GroupNode driven by our MlsContext, against the reference coordinator: PREPARE carries
    openmls' commit, we stage it, answer READY (sealed with our old-epoch key), take EXECUTE,
    merge, and open the reference's first GTP frame of the new epoch."""
    from gbp_lab.core import GroupNode
    ControlOpcode = gbp_stack.ControlOpcode
    alice = Ref.create("alice")
    us = MlsContext.create("us")
    us.accept_welcome(alice.invite(us.export_key_package()))
    na = gbp_stack.GroupNode.create(member_id=1, group_id=alice.group_id)
    nu = GroupNode.create(member_id=2, group_id=us.group_id)
    gtp = gbp_stack.GtpClient.create()
    try:
        na.bootstrap_as_creator(alice.epoch); na.drain_events()
        nu.bootstrap_as_joiner(us.epoch); nu.drain_events()
        carol = Ref.create("carol")
        commit, welcome = alice.invite_full(carol.export_key_package())
        tid = na.last_transition_id + 1
        prep = na.send_control(alice, 2, ControlOpcode.PREPARE_TRANSITION, tid, 1, commit)
        events = nu.on_wire(us, prep.wire)
        assert [e.args for e in events if e.kind == "control"] == [commit]
        assert us.process_message(commit) == "commit"
        ready = nu.send_control(us, 1, ControlOpcode.READY_FOR_TRANSITION, tid, 2)
        assert not [e for e in na.on_wire(alice, ready.wire) if e.kind == "error"]
        execute = na.send_control(alice, 2, ControlOpcode.EXECUTE_TRANSITION, tid, 3)
        assert "epoch_advanced" in [e.kind for e in nu.on_wire(us, execute.wire)]
        na.apply_transition(tid)
        alice.finalize_commit()
        us.finalize_commit()
        carol.accept_welcome(welcome)
        assert us.epoch == alice.epoch == carol.epoch == nu.epoch == 2
        text = gtp.send(na, alice, 2, message_id=9, text="after the transition").wire
        got = [e for e in nu.on_wire(us, text) if e.kind == "payload_received"]
        assert len(got) == 1 and GtpMessage.from_cbor(got[0].plaintext).text == "after the transition"
    finally:
        gtp.close()
        na.close()


def test_reference_follows_our_path_only_commit(ref_group_with_us):
    """An empty Commit (only an UpdatePath: key rotation) from us is accepted by openmls."""
    alice, us, _, _ = ref_group_with_us
    old_leaf_key = us.tree.leaf(1).encryption_key
    commit = us.self_update()
    assert alice.process_message(commit) == "commit"
    alice.finalize_commit()
    us.finalize_commit()
    assert us.epoch == alice.epoch == 2
    assert us.tree.leaf(1).encryption_key != old_leaf_key
    assert ref_exporter(alice) == us.epoch_secrets.exporter_secret.reveal()


def test_one_welcome_for_two_reference_members():
    us = MlsContext.create("us")
    bob, carol = Ref.create("bob"), Ref.create("carol")
    commit, welcome = us.invite_many([bob.export_key_package(), carol.export_key_package()])
    us.finalize_commit()
    bob.accept_welcome(welcome)
    carol.accept_welcome(welcome)
    assert [m.identity for m in us.members] == [b"us", b"bob", b"carol"]
    assert ref_exporter(bob) == ref_exporter(carol) == us.epoch_secrets.exporter_secret.reveal()


def test_concurrent_commits_the_received_one_wins(ref_group_with_us):
    """alice (reference) and we commit in the same epoch; we receive hers, finalize and follow her
    epoch (our own pending commit is dropped), as openmls does when merging a staged commit."""
    alice, us, _, _ = ref_group_with_us
    ours, _ = us.invite_full(Ref.create("dora").export_key_package())
    theirs, welcome = alice.invite_full(Ref.create("carol").export_key_package())
    assert us.process_message(theirs) == "commit"
    us.finalize_commit()
    alice.finalize_commit()
    assert not us.has_pending_commit and us.epoch == alice.epoch == 2
    assert [m.identity for m in us.members] == [b"alice", b"us", b"carol"]
    assert ref_exporter(alice) == us.epoch_secrets.exporter_secret.reveal()
    with pytest.raises(OSError):  # and alice, now in epoch 2, refuses our stale commit
        alice.process_message(ours)


_REF_FUZZ = {}


def _ref_fuzz_fixture():
    if not _REF_FUZZ:
        alice = Ref.create("alice")
        us = MlsContext.create("us")
        _REF_FUZZ["welcome"] = alice.invite(us.export_key_package())
        us.accept_welcome(_REF_FUZZ["welcome"])
        _REF_FUZZ["commit"], _ = alice.invite_full(Ref.create("carol").export_key_package())
        _REF_FUZZ["state"] = us.export_state()
    return _REF_FUZZ


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.sampled_from(["commit", "welcome"]), pos=st.integers(0, 100_000), mask=st.integers(1, 255),
       cut=st.integers(0, 3))
def test_fuzz_mutated_reference_bytes(which, pos, mask, cut):
    """Mutated openmls Commit / Welcome bytes: always a typed ProtocolError, never a change of
    our state."""
    fx = _ref_fuzz_fixture()
    data = bytearray(fx[which])
    i = pos % len(data)
    data[i] ^= mask
    if cut == 1:
        data = data[:i]
    elif cut == 2:
        data += bytes([mask])
    us = MlsContext.restore_state(fx["state"])
    with pytest.raises(ProtocolError):
        if which == "commit":
            us.process_message(bytes(data))
        else:
            us.accept_welcome(bytes(data))
    assert us.export_state() == fx["state"]


def test_reference_removes_us(ref_group_with_us):
    alice, us, _, _ = ref_group_with_us
    commit = alice.remove_member(1)
    res = us.process(commit)
    assert res.kind == "commit" and res.removed_us
    us.finalize_commit()
    alice.finalize_commit()
    assert not us.is_active and alice.epoch == 2
    with pytest.raises(GroupStateError) as exc:
        us.process_message(commit)
    assert exc.value.vid == "MLS-GROUP-INACTIVE"
    # our KeyPackage can still be used to join again (openmls would have deleted its copy)
    us.accept_welcome(alice.invite(us.export_key_package()))
    assert us.is_active and us.epoch == alice.epoch == 3
    assert ref_exporter(alice) == us.epoch_secrets.exporter_secret.reveal()


def test_reference_refuses_public_message_handshakes():
    """openmls in the reference uses the pure-ciphertext wire-format policy: a PublicMessage
    commit (which we accept, RFC 9420 §6.2) is refused — so ours default to PrivateMessage."""
    from gbp_lab.core.mls.group import GroupConfig
    us = MlsContext.create("us", config=GroupConfig(handshake_wire_format=WireFormat.MLS_PUBLIC_MESSAGE))
    bob = Ref.create("bob")
    bob.accept_welcome(us.invite(bob.export_key_package()))
    commit = us.self_update()
    assert MLSMessage.from_bytes(commit).wire_format == WireFormat.MLS_PUBLIC_MESSAGE
    with pytest.raises(OSError, match="IncompatibleWireFormat"):
        bob.process_message(commit)


def test_second_reference_commit_is_refused_while_one_is_staged():
    alice, bob = Ref.create("alice"), Ref.create("bob")
    us = MlsContext.create("us")
    us.accept_welcome(alice.invite(us.export_key_package()))
    c, w = alice.invite_full(bob.export_key_package())
    us.process_message(c); us.finalize_commit(); alice.finalize_commit(); bob.accept_welcome(w)
    from_alice, _ = alice.invite_full(Ref.create("carol").export_key_package())
    from_bob, _ = bob.invite_full(Ref.create("dora").export_key_package())
    assert us.process_message(from_alice) == "commit"
    with pytest.raises(GroupStateError) as exc:
        us.process_message(from_bob)
    assert exc.value.vid == "MLS-CONTEXT-STAGED"
    us.clear_pending_commit()  # drop alice's: now bob's can be staged and merged
    assert us.process_message(from_bob) == "commit"
    us.finalize_commit(); bob.finalize_commit()
    assert ref_exporter(bob) == us.epoch_secrets.exporter_secret.reveal()
