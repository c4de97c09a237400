"""GroupNode state machines: node FSM, transition protocol, tid matrix, tie-break, quorum,
deadlines with injected time, coordinator election/handover, resync, sending rules.

Our nodes talk to each other through an :class:`ExporterView`; the tid matrix and the bootstrap
paths are also checked differentially against the reference node (interop-marked tests).
"""
from __future__ import annotations

import dataclasses
import itertools
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from gbp_lab.core.errors import StateError, UsageError  # noqa: E402
from gbp_lab.core.gbp import transitions as TR  # noqa: E402
from gbp_lab.core.gbp.aead import seal_frame  # noqa: E402
from gbp_lab.core.gbp.control import ControlMessage  # noqa: E402
from gbp_lab.core.gbp.frame import decode_frame  # noqa: E402
from gbp_lab.core.gbp.node import GroupNode, NodeStateError  # noqa: E402
from gbp_lab.core.gbp.registry import (TIMEOUTS_MS, ControlOpcode, NodeState,  # noqa: E402
                                       TransitionState)
from gbp_lab.core.mls.exporter_view import ExporterView  # noqa: E402

GID = bytes(range(16))
SECRET = bytes(range(32, 64))
OP = ControlOpcode


def view(epoch=1):
    return ExporterView(SECRET, epoch)


def pair(epoch=1, joiner_tid=0):
    a, b = GroupNode.create(1, GID), GroupNode.create(2, GID)
    a.bootstrap_as_creator(epoch)
    b.bootstrap_as_joiner(epoch, joiner_tid)
    a.drain_events(), b.drain_events()
    return a, b


def ctl(sender, op, tid, *, epoch=1, seq=1, args=b"", rid=0, frame_tid=0, mls_epoch=1):
    """A control frame from *sender* sealed like the reference does (independent of GroupNode)."""
    plain = ControlMessage.build(op, rid, sender, tid, args).to_cbor()
    flags = 0x1B if op in (1, 2, 3) else 0x0B
    return seal_frame(SECRET, GID, epoch, frame_tid, 0, sender * 100, flags, seq, plain).to_cbor()


def kinds(evs):
    return [e.kind for e in evs]


# --- node FSM ---------------------------------------------------------------------------------
def test_bootstrap_creator_and_joiner_events():
    n = GroupNode.create(7, GID)
    assert n.state == NodeState.IDLE and n.epoch == 0
    n.bootstrap_as_creator(5)
    evs = n.drain_events()
    assert [(e.from_state, e.to_state) for e in evs] == [
        ("IDLE", "CONNECTING"), ("CONNECTING", "ESTABLISHING_GROUP"), ("ESTABLISHING_GROUP", "ACTIVE")]
    assert n.state == NodeState.ACTIVE and n.epoch == 5 and n.drain_events() == []
    j = GroupNode.create(8, GID)
    j.bootstrap_as_joiner(5, 3)
    assert j.pending_transition_id == 3 and j.transition_state == TransitionState.T_PREPARED
    j2 = GroupNode.create(9, GID)
    j2.bootstrap_as_joiner(5)
    assert j2.pending_transition_id == 0 and j2.transition_state == TransitionState.T_IDLE


@pytest.mark.parametrize("src,dst", list(itertools.product(NodeState, NodeState)))
def test_every_node_fsm_edge(src, dst):
    n = GroupNode.create(1, GID)
    n.state = src
    n._transition(dst)
    evs = n.drain_events()
    if src == dst:
        assert evs == [] and n.state == src
    elif TR.node_can_transition(src, dst):
        assert n.state == dst and [(e.from_state, e.to_state) for e in evs] == [(src.name, dst.name)]
    else:
        assert n.state == NodeState.FAILED
        assert [(e.from_state, e.to_state) for e in evs] == [(src.name, "FAILED")]


def test_fsm_tables_are_consistent():
    node_edges = set(TR.edges("node"))
    assert ("ACTIVE", "RESYNCING") in node_edges and ("RESYNCING", "ACTIVE") in node_edges
    assert all(("X", "CLOSED") != e for e in node_edges)
    assert {d for s, d in node_edges if s == "FAILED"} == {"CLOSED"}
    tr = set(TR.edges("transition"))
    assert ("T_IDLE", "T_PREPARED") in tr and ("T_IDLE", "T_EXECUTED") not in tr
    assert set(TR.TID_RULES) == set(ControlOpcode)
    assert set(TR.TID_RULES.values()) <= set(TR.TID_RULE_TEXT)
    with pytest.raises(UsageError):
        list(TR.edges("nope"))


def test_close_and_sending_states():
    n = GroupNode.create(1, GID)
    with pytest.raises(NodeStateError) as ei:
        n.send_control(view(), 0, OP.ACK, 0, 0)
    assert isinstance(ei.value, StateError) and isinstance(ei.value, OSError)
    n.bootstrap_as_creator(1)
    n.send_control(view(), 0, OP.ACK, 0, 0)
    with n:
        pass
    assert n.state == NodeState.CLOSED
    with pytest.raises(NodeStateError):
        n.send_control(view(), 0, OP.ACK, 0, 0)


# --- sending ----------------------------------------------------------------------------------
def test_send_control_frame_fields_and_counters():
    a, _ = pair()
    f1 = decode_frame(a.send_control(view(), 2, OP.PREPARE_TRANSITION, 1, 9, b"c").wire)
    f2 = decode_frame(a.send_control(view(), 2, OP.ACK, 1, 9).wire)
    assert (f1.stream_type, f1.stream_id, f1.flags, f1.sequence_no, f1.epoch, f1.transition_id) == (
        0, 100, 0x1B, 1, 1, 0)
    assert (f2.flags, f2.sequence_no) == (0x0B, 2)
    a.apply_transition(1)
    f3 = decode_frame(a.send_control(view(), 2, OP.ACK, 1, 9).wire)
    assert (f3.sequence_no, f3.epoch, f3.transition_id) == (1, 2, 1)


def test_send_control_rejects_bad_arguments_without_state_change():
    a, _ = pair()
    with pytest.raises(UsageError):
        a.send_control(view(), 0, 0x00FF, 1, 0)
    with pytest.raises(UsageError):
        a.send_control(view(), 0, OP.PREPARE_TRANSITION, 1 << 32, 0)
    assert a.pending_transition_id == 0 and a.prepare_deadline is None
    with pytest.raises(UsageError):
        GroupNode.create(1, b"short")
    with pytest.raises(UsageError):
        a.apply_transition(-1)


# --- transition protocol ----------------------------------------------------------------------
def test_prepare_ready_execute_between_our_nodes():
    a, b = pair()
    v = view()
    prep = a.send_control(v, 2, OP.PREPARE_TRANSITION, 1, 1, b"commit-bytes", now=100)
    assert (a.pending_transition_id, a.transition_state, a.prepare_deadline) == (
        1, TransitionState.T_PREPARED, 100 + TIMEOUTS_MS["T_prepare_max"])
    evs = b.on_wire(v, prep.wire, now=150)
    assert [(e.kind, e.opcode, e.transition_id, e.request_id, e.args, e.sender) for e in evs] == [
        ("control", "PREPARE_TRANSITION", 1, 1, b"commit-bytes", 1)]
    assert (b.pending_transition_id, b.pending_commit, b.pending_commit_sender) == (1, b"commit-bytes", 1)
    assert b.execute_deadline == 150 + TIMEOUTS_MS["T_execute_max"]
    ready = b.send_control(v, 1, OP.READY_FOR_TRANSITION, 1, 2, now=200)
    assert b.execute_deadline == 200 + TIMEOUTS_MS["T_execute_max"]
    evs = a.on_wire(v, ready.wire)
    assert kinds(evs) == ["control"] and a.transition_state == TransitionState.T_READY
    assert a.prepare_deadline is None and a.ready_from == {2} and a.quorum_reached()
    ex = a.send_control(v, 2, OP.EXECUTE_TRANSITION, 1, 3)
    assert a.prepare_deadline is None and a.execute_deadline is None
    a.apply_transition(1)
    evs = b.on_wire(v, ex.wire)
    assert [(e.kind, e.epoch, e.transition_id) for e in evs] == [
        ("epoch_advanced", 2, 1), ("control", None, 1)]
    for n in (a, b):
        assert (n.epoch, n.last_transition_id, n.pending_transition_id, n.transition_state) == (
            2, 1, 0, TransitionState.T_EXECUTED)
    assert b.execute_deadline is None and b.pending_commit is None


def test_abort_clears_pending_and_keeps_epoch():
    a, b = pair()
    v = view()
    b.on_wire(v, a.send_control(v, 2, OP.PREPARE_TRANSITION, 1, 1, b"c").wire)
    ab = a.send_control(v, 2, OP.ABORT_TRANSITION, 1, 2)
    assert (a.pending_transition_id, a.transition_state) == (0, TransitionState.T_ABORTED)
    evs = b.on_wire(v, ab.wire)
    assert [e.opcode for e in evs] == ["ABORT_TRANSITION"]
    assert (b.pending_transition_id, b.epoch, b.transition_state, b.execute_deadline) == (
        0, 1, TransitionState.T_ABORTED, None)
    # the next attempt uses a new tid
    evs = b.on_wire(v, a.send_control(v, 2, OP.PREPARE_TRANSITION, 2, 3).wire)
    assert kinds(evs) == ["control"] and b.pending_transition_id == 2


def test_joiner_pre_armed_tid_accepts_first_execute():
    a, b = pair(joiner_tid=1)
    v = view()
    a.send_control(v, 0, OP.PREPARE_TRANSITION, 1, 1, b"sealed before the welcome")
    evs = b.on_wire(v, a.send_control(v, 0, OP.EXECUTE_TRANSITION, 1, 2).wire)
    assert [e.kind for e in evs] == ["epoch_advanced", "control"]
    assert (b.epoch, b.last_transition_id) == (2, 1)


def test_tie_break_lower_member_id_wins():
    _, b = pair()
    b.member_id = 10
    v = view()
    evs = b.on_wire(v, ctl(5, OP.PREPARE_TRANSITION, 1, args=b"commit-5"))
    assert kinds(evs) == ["control"] and b.pending_commit_sender == 5
    evs = b.on_wire(v, ctl(7, OP.PREPARE_TRANSITION, 1, args=b"commit-7"))
    assert kinds(evs) == ["control"] and evs[0].sender == 7  # surfaced, but loses
    assert (b.pending_commit_sender, b.pending_commit) == (5, b"commit-5")
    evs = b.on_wire(v, ctl(2, OP.PREPARE_TRANSITION, 1, args=b"commit-2"))
    assert (b.pending_commit_sender, b.pending_commit) == (2, b"commit-2")
    evs = b.on_wire(v, ctl(3, OP.PREPARE_TRANSITION, 2, args=b"commit-3"))
    assert [e.code for e in evs] == [0x0004]  # another tid while 1 is pending
    assert b.pending_transition_id == 1


def test_quorum_set_keeps_prepare_deadline_until_everyone_is_ready():
    a, _ = pair()
    v = view()
    a.set_quorum({2, 3})
    a.send_control(v, 0, OP.PREPARE_TRANSITION, 1, 1, now=0)
    a.on_wire(v, ctl(2, OP.READY_FOR_TRANSITION, 1))
    assert a.prepare_deadline == TIMEOUTS_MS["T_prepare_max"] and not a.quorum_reached()
    a.on_wire(v, ctl(3, OP.READY_FOR_TRANSITION, 1))
    assert a.prepare_deadline is None and a.quorum_reached() and a.ready_from == {2, 3}
    assert a.quorum_reached([2]) and not a.quorum_reached([2, 4])


# --- deadlines (injected time) ----------------------------------------------------------------
def test_prepare_timeout_aborts_at_the_deadline_not_before():
    a, _ = pair()
    a.send_control(view(), 0, OP.PREPARE_TRANSITION, 1, 1, now=1_000)
    assert a.check_timeouts(5_999) == []
    evs = a.check_timeouts(6_000)
    assert [(e.kind, e.code, e.code_hex, e.class_, e.retryable, e.fatal) for e in evs] == [
        ("error", 0x10, "0x0010", 3, True, False)]
    assert (a.pending_transition_id, a.transition_state, a.prepare_deadline) == (
        0, TransitionState.T_ABORTED, None)
    assert a.check_timeouts(100_000) == []


def test_execute_timeout_after_prepare_received_and_after_ready_sent():
    a, b = pair()
    v = view()
    b.on_wire(v, a.send_control(v, 0, OP.PREPARE_TRANSITION, 1, 1).wire, now=0)
    b.send_control(v, 1, OP.READY_FOR_TRANSITION, 1, 2, now=4_000)  # re-armed from here
    # (the PREPARE also noted coordinator activity at t=0: COORDINATOR_GONE fires at 10 000)
    assert [e.code for e in b.check_timeouts(13_999)] == [0x13, None]
    assert [e.code for e in b.check_timeouts(14_000)] == [0x12]
    assert b.execute_deadline is None and b.pending_transition_id == 1  # not aborted


def test_coordinator_gone_then_election_and_custom_timeouts():
    a, b = GroupNode.create(1, GID, timeouts={"T_coordinator_grace": 50}), GroupNode.create(2, GID)
    a.bootstrap_as_creator(1), b.bootstrap_as_joiner(1)
    a.drain_events(), b.drain_events()
    v = view()
    a.on_wire(v, ctl(3, OP.CAPABILITIES_ADVERTISE, 0, args=b"\xa1\x00\xf5"), now=10)
    assert a.check_timeouts(59) == []
    evs = a.check_timeouts(60)
    assert [(e.kind, e.code) for e in evs] == [("error", 0x13), ("coordinator_election_needed", None)]
    assert a.coordinator_last_seen is None and a.check_timeouts(10_000) == []
    a.note_coordinator_activity(20_000)
    assert [e.kind for e in a.check_timeouts(20_050)][-1] == "coordinator_election_needed"
    with pytest.raises(UsageError):
        GroupNode.create(1, GID, timeouts={"T_bogus": 1})
    assert b.check_timeouts(10**9) == []  # never saw a coordinator: nothing to miss


def test_no_events_without_armed_deadlines():
    a, _ = pair()
    assert a.check_timeouts(10**12) == []


# --- coordinator election ---------------------------------------------------------------------
def test_claim_and_yield_to_the_lower_claimant():
    a, b = pair()
    v = view()
    b.is_coordinator = True
    claim = a.claim_coordinator(v, 0, now=5)
    assert a.is_coordinator and kinds(a.drain_events()) == ["became_coordinator"]
    f = decode_frame(claim.wire)
    assert f.flags == 0x0B and f.transition_id == a.last_transition_id
    evs = b.on_wire(v, claim.wire, now=7)
    assert [(e.kind, e.claimant, e.opcode) for e in evs] == [
        ("coordinator_claim", 1, None), ("control", None, "CAPABILITIES_ADVERTISE")]
    assert evs[1].args == b"\xa1\x00\xf5" and evs[1].request_id == 0
    assert not b.is_coordinator and b.coordinator_last_seen == 7
    # a higher claimant does not unseat the lower coordinator
    evs = a.on_wire(v, b.claim_coordinator(v, 0).wire)
    assert a.is_coordinator and ("coordinator_claim", 2) in [(e.kind, e.claimant) for e in evs]


def test_claim_detection_scans_for_key0_true_and_ignores_other_adverts():
    _, b = pair()
    v = view()
    evs = b.on_wire(v, ctl(4, OP.CAPABILITIES_ADVERTISE, 0, args=b"\xa2\x01\x02\x00\xf5", seq=1))
    assert kinds(evs) == ["coordinator_claim", "control"]
    evs = b.on_wire(v, ctl(4, OP.CAPABILITIES_ADVERTISE, 0, args=b"\xa1\x00\xf4", seq=2))
    assert kinds(evs) == ["control"]


# --- resync -----------------------------------------------------------------------------------
def test_epoch_mismatch_resync_and_digest_response():
    _, b = pair()
    v = view()
    evs = b.on_wire(v, ctl(1, OP.ACK, 0, epoch=2))
    assert [(e.kind, e.code, e.reason) for e in evs][0] == ("error", 3, "got 2, expected 1")
    assert ("state_changed", "ACTIVE", "RESYNCING") in [(e.kind, e.from_state, e.to_state) for e in evs]
    evs = b.on_wire(v, ctl(1, OP.ACK, 0, epoch=0))
    assert kinds(evs) == ["error"]  # already resyncing: no second state change
    evs = b.on_wire(v, ctl(1, OP.GROUP_STATE_DIGEST_RESPONSE, 0, seq=2))
    assert kinds(evs) == ["state_changed", "control"] and b.state == NodeState.ACTIVE
    evs = b.on_wire(v, ctl(1, OP.GROUP_STATE_DIGEST_RESPONSE, 0, seq=3))
    assert kinds(evs) == ["control"]


def test_epoch_mismatch_before_bootstrap_fails_the_node():
    n = GroupNode.create(2, GID)
    evs = n.on_wire(view(), ctl(1, OP.ACK, 0, epoch=1))
    assert [(e.kind, e.to_state) for e in evs] == [("error", None), ("state_changed", "FAILED")]


# --- events -----------------------------------------------------------------------------------
def test_events_are_frozen_values():
    a, b = pair()
    v = view()
    evs = b.on_wire(v, a.send_control(v, 2, OP.ACK, 0, 5, b"x").wire)
    ev = evs[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.kind = "other"
    assert ev == dataclasses.replace(ev) and hash(ev) == hash(dataclasses.replace(ev))
    assert ev.plaintext is None and ev.code is None and ev.error_code is None
    assert "ACK" in repr(ev)


# --- the tid matrix, differentially against the reference node --------------------------------
@pytest.mark.interop
@pytest.mark.parametrize("op", list(ControlOpcode))
def test_tid_matrix_matches_reference(op):
    import refmls
    import gbp_stack as g

    checked = 0
    for pending_first in (False, True):
        p = refmls.mixed_pair()
        try:
            for n in (p.alice, p.bob_ref):
                n.apply_transition(3)
            p.bob.apply_transition(3)
            p.bob.drain_events(), p.bob_ref.drain_events(), p.alice.drain_events()
            rid = 1
            if pending_first:
                f = p.alice.send_control(p.alice_mls, 2, g.ControlOpcode.PREPARE_TRANSITION, 4, rid)
                ours, ref = p.both(f.wire)
                assert refmls.norms(ours) == refmls.norms(ref)
            for tid in (0, 2, 3, 4, 5, 7):
                rid += 1
                # alice's own pending state must not block her from sending anything
                f = p.alice.send_control(p.alice_mls, 2, g.ControlOpcode(int(op)), tid, rid)
                expect_ok = TR.tid_valid(op, tid, p.bob.last_transition_id, p.bob.pending_transition_id)
                ours, ref = p.both(f.wire)
                assert refmls.norms(ours) == refmls.norms(ref), (op, pending_first, tid)
                assert (p.bob.epoch, p.bob.last_transition_id) == (
                    p.bob_ref.epoch, p.bob_ref.last_transition_id)
                if p.bob.epoch == p.alice.epoch:  # after an EXECUTE bob is ahead: EPOCH_MISMATCH
                    assert any(e.kind == "error" and e.code == 4 for e in ours) == (not expect_ok)
                checked += 1
        finally:
            p.close()
    assert checked == 12


@pytest.mark.interop
def test_bootstrap_sequences_match_reference():
    import refmls
    import gbp_stack as g

    for calls in ([("creator", 1)], [("joiner", 4, 2)], [("creator", 1), ("creator", 2)],
                  [("joiner", 1, 0), ("creator", 3)], [("set_epoch", 9), ("creator", 1)]):
        ours, ref = GroupNode.create(4, GID), g.GroupNode.create(4, GID)
        for c in calls:
            for n in (ours, ref):
                if c[0] == "creator":
                    n.bootstrap_as_creator(c[1])
                elif c[0] == "joiner":
                    n.bootstrap_as_joiner(c[1], c[2])
                else:
                    n.set_epoch_for_testing(c[1])
        assert refmls.norms(ours.drain_events()) == refmls.norms(ref.drain_events()), calls
        assert (int(ours.state), ours.epoch, ours.last_transition_id) == (
            int(ref.state), ref.epoch, ref.last_transition_id)
        ref.close()


# --- ExporterView -----------------------------------------------------------------------------
def test_exporter_view_matches_the_stream_keys_and_key_logs():
    from gbp_lab.core.errors import MissingKeyError
    from gbp_lab.core.gbp.aead import stream_key
    from gbp_lab.core.keylog import KeyLog

    v = view()
    for st, label in enumerate(("gbp/control", "gbp/audio", "gbp/text", "gbp/signal")):
        assert v.export_raw(label, b"", 32) == stream_key(SECRET, st)
        assert v.export_raw(label.encode(), b"", 32) == v.export_raw(label, b"", 32)
    assert v.export_raw("gbp/sframe v1", (1).to_bytes(8, "big"), 32) != v.export_raw(
        "gbp/sframe v1", b"", 32)
    log = KeyLog()
    log.add("MLS_EXPORTER_SECRET", GID, 4, SECRET)
    lv = ExporterView.from_keylog(log, GID, 4)
    assert (lv.epoch, lv.exporter_secret, lv.group_id) == (4, SECRET, GID)
    with pytest.raises(MissingKeyError):
        ExporterView.from_keylog(log, GID, 5)
    with pytest.raises(UsageError):
        ExporterView(b"", 1)
    with pytest.raises(UsageError):
        ExporterView(SECRET, -1)


@pytest.mark.interop
def test_exporter_view_reproduces_the_reference_stream_keys():
    """A frame the reference sealed opens with the key our view exports from its key log."""
    import refpeer
    from gbp_lab.core.gbp.aead import open_payload

    grp = refpeer.two_member_group()
    try:
        frames = refpeer.reference_frames(grp)
        v = ExporterView.from_keylog(grp.keylog("bob"), grp.group_id, grp.epoch)
        for f in frames:
            fr = decode_frame(f.wire)
            label = ("gbp/control", "gbp/audio", "gbp/text", "gbp/signal")[fr.stream_type]
            pt = open_payload(v.export_raw(label, b"", 32), fr.sequence_no, fr.payload)
            if f.plaintext is not None:
                assert pt == f.plaintext
    finally:
        grp.close()


@pytest.mark.parametrize("op", list(TR.TRANSITION_EFFECTS))
def test_receive_effects_table_matches_the_node(op):
    _, b = pair()
    v = view()
    if op in (OP.READY_FOR_TRANSITION, OP.EXECUTE_TRANSITION, OP.ABORT_TRANSITION):
        b.on_wire(v, ctl(1, OP.PREPARE_TRANSITION, 1, seq=1))
    evs = b.on_wire(v, ctl(1, op, 1, seq=2, args=b"\xa1\x00\xf5"))
    assert "error" not in kinds(evs)
    state, _text = TR.TRANSITION_EFFECTS[op]
    if state is not None:
        assert b.transition_state == state
    else:
        assert b.transition_state == TransitionState.T_IDLE


@pytest.mark.parametrize("op", list(TR.SEND_EFFECTS))
def test_send_effects_table_matches_the_node(op):
    a, _ = pair()
    a.send_control(view(), 0, op, 1, 0)
    state, _text = TR.SEND_EFFECTS[op]
    assert a.transition_state == (TransitionState.T_IDLE if state is None else state)
