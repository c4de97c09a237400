"""Reference bytes from the ``gbp-stack`` wheel (the reference implementation) for interop tests.

Shared test fixtures — import them from any test module with::

    import sys, pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).parent))   # pytest runs with importlib mode
    import refpeer

    pytestmark = pytest.mark.interop  # everything here talks to gbp_stack

What is here:

* :func:`two_member_group` — a live two-member reference group (alice = member 1 / MLS leaf 0,
  bob = member 2 / leaf 1) built like the reference's own ``python/tests/test_integration.py``:
  ``alice.invite(bob_kp)``, ``bob.accept_welcome``, both nodes bootstrapped at the MLS epoch (1)
  and their bootstrap events drained.
  Returns a :class:`RefGroup`; use it as a context manager or call ``close()``.
* :meth:`RefGroup.keylog` — a :class:`gbp_lab.core.keylog.KeyLog` from a member's
  ``MlsContext.export_state()`` (current epoch secrets).
* :func:`reference_frames` — one :class:`RefFrame` per (stream type × payload codec) and a set of
  control opcodes, each sent by the reference and fed back to the other member's ``on_wire``; the
  plaintext the reference delivered is recorded (``None`` for control frames, which the node
  consumes; their fields are in ``control``).
* :func:`deliver` — feed wire bytes to a reference node and return its events.
* :func:`transition_flow` — a full PREPARE → READY → EXECUTE epoch change (alice invites carol),
  returning the frames and key logs of both epochs.

Everything returns plain bytes/dataclasses so that assertions are easy; nothing is cached across
tests (each call builds fresh MLS state: random group ids and keys).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import gbp_stack as g
from gbp_stack import ControlOpcode, GroupNode, MlsContext, PayloadCodec, SignalType

from gbp_lab.core.keylog import KeyLog

CODECS = (PayloadCodec.CBOR, PayloadCodec.PROTOBUF, PayloadCodec.FLATBUFFERS)


@dataclass
class RefGroup:
    """A live reference group: MLS contexts and GBP nodes by member name."""

    mls: Dict[str, MlsContext]
    nodes: Dict[str, GroupNode]
    member_ids: Dict[str, int]

    @property
    def group_id(self) -> bytes:
        return next(iter(self.mls.values())).group_id

    @property
    def epoch(self) -> int:
        return next(iter(self.mls.values())).epoch

    def keylog(self, who: str = "alice") -> KeyLog:
        """Key log of *who*'s current MLS epoch (from ``export_state()``)."""
        return KeyLog.from_gbp_stack_state(self.mls[who].export_state())

    def close(self) -> None:
        for n in self.nodes.values():
            n.close()
        for m in self.mls.values():
            m.close()

    def __enter__(self) -> "RefGroup":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def two_member_group() -> RefGroup:
    """alice (member 1) invites bob (member 2); both nodes ACTIVE at MLS epoch 1."""
    alice, bob = MlsContext.create("alice"), MlsContext.create("bob")
    bob.accept_welcome(alice.invite(bob.export_key_package()))
    gid = alice.group_id
    na = GroupNode.create(member_id=1, group_id=gid)
    nb = GroupNode.create(member_id=2, group_id=gid)
    na.bootstrap_as_creator(alice.epoch)
    nb.bootstrap_as_joiner(bob.epoch)
    na.drain_events(), nb.drain_events()  # start clean: drop the bootstrap state_changed events
    return RefGroup({"alice": alice, "bob": bob}, {"alice": na, "bob": nb},
                    {"alice": 1, "bob": 2})


def deliver(group: RefGroup, to: str, wire: bytes) -> List[g.NodeEvent]:
    """``group.nodes[to].on_wire(group.mls[to], wire)``."""
    return group.nodes[to].on_wire(group.mls[to], wire)


def payloads(events) -> List[g.NodeEvent]:
    """The ``payload_received`` events of a list."""
    return [e for e in events if e.kind == "payload_received"]


@dataclass
class RefFrame:
    """One frame the reference produced, and what the receiving reference node made of it."""

    kind: str  #: "gtp" | "gap" | "gsp" | "control"
    sender: str
    wire: bytes
    stream_type: int
    codec: int
    plaintext: Optional[bytes]  #: as delivered by the receiver's on_wire (None for control)
    events: List[g.NodeEvent] = field(default_factory=list)
    control: Optional[Tuple[int, int, int, int, bytes]] = None  #: (op, rid, sid, tid, args) sent


def gap_wires(group: RefGroup, opus_payloads, sender: str = "bob") -> List[bytes]:
    """The wire bytes of GAP frames that *sender* sends with the reference's ``GapClient``, one
    per payload in the ``opus`` field (SFrame ciphertext or raw Opus), CBOR-encoded."""
    gap = g.GapClient.create()
    try:
        return [gap.send(group.nodes[sender], group.mls[sender], 1, media_source_id=4,
                         rtp_timestamp=960 * k, opus=x, codec=PayloadCodec.CBOR).wire
                for k, x in enumerate(opus_payloads)]
    finally:
        gap.close()


def reference_frames(group: RefGroup, sender: str = "alice", receiver: str = "bob") -> List[RefFrame]:
    """Frames of every stream type and codec sent by *sender*, each delivered to *receiver*.

    GTP text ×3 codecs, GAP audio ×3, GSP signals ×3 (JOIN, MUTE with args, ROLE_CHANGE), and
    control ACK, CAPABILITIES_ADVERTISE (coordinator claim ``A1 00 F5``), GROUP_STATE_DIGEST_REQUEST
    with args, NACK. All frames are accepted by the receiver (asserted).
    """
    mls, node = group.mls[sender], group.nodes[sender]
    target = group.member_ids[receiver]
    out: List[RefFrame] = []

    def take(kind, st, codec, wire, control=None):
        evs = deliver(group, receiver, wire)
        errs = [e for e in evs if e.kind == "error"]
        assert not errs, f"reference receiver rejected its own {kind} frame: {errs}"
        pls = payloads(evs)
        pt = pls[0].plaintext if pls else None
        if st != 0:
            assert len(pls) == 1 and pls[0].stream_type == st
            pt = pt or b""
        out.append(RefFrame(kind, sender, wire, st, int(codec), pt, evs, control))

    gtp, gap, gsp = g.GtpClient.create(), g.GapClient.create(), g.GspClient.create()
    try:
        for i, codec in enumerate(CODECS):
            f = gtp.send(node, mls, target, message_id=100 + i, text=f"hello {codec.name} ✓", codec=codec)
            take("gtp", 2, codec, f.wire)
        for i, codec in enumerate(CODECS):
            f = gap.send(node, mls, target, media_source_id=7, rtp_timestamp=960 * i,
                         opus=bytes([0xFC, i]) * 20, codec=codec)
            take("gap", 1, codec, f.wire)
        sigs = [(SignalType.JOIN, b""), (SignalType.MUTE, b"\xa1\x00\x02"),
                (SignalType.ROLE_CHANGE, b"\xa2\x00\x02\x01\x03")]
        for i, (codec, (sig, args)) in enumerate(zip(CODECS, sigs)):
            f = gsp.send(node, mls, target, sig, role_claim=1, request_id=500 + i, args=args, codec=codec)
            take("gsp", 3, codec, f.wire)
    finally:
        gtp.close(); gap.close(); gsp.close()
    sid = group.member_ids[sender]
    tid = node.last_transition_id
    for op, rid, args in ((ControlOpcode.ACK, 11, b""),
                          (ControlOpcode.CAPABILITIES_ADVERTISE, 0, b"\xa1\x00\xf5"),
                          (ControlOpcode.GROUP_STATE_DIGEST_REQUEST, 12, b"\xa1\x69since_tid\x00"),
                          (ControlOpcode.NACK, 0xFFFFFFFF, bytes(range(40)))):
        f = node.send_control(mls, target, op, tid, rid, args)
        take("control", 0, 0, f.wire, (int(op), rid, sid, tid, args))
    return out


@dataclass
class TransitionFlow:
    """Result of :func:`transition_flow`."""

    group: RefGroup  #: alice, bob, carol — all at the new epoch, nodes ACTIVE
    old_epoch: int
    new_epoch: int
    commit: bytes
    welcome: bytes
    frames: List[Tuple[str, str, bytes]]  #: (sender, opcode name, wire) of the control flow
    keylog_old: KeyLog  #: bob's secrets before the commit (decrypts PREPARE/READY/EXECUTE)
    keylog_new: KeyLog  #: alice's secrets after the commit
    text_after: bytes  #: a GTP frame alice sent to bob in the new epoch


def transition_flow() -> TransitionFlow:
    """alice (coordinator) adds carol: ``invite_full`` → PREPARE(commit) → bob processes, READY →
    EXECUTE → both ``finalize_commit``; carol joins from the Welcome and bootstraps at the new
    epoch. Then alice sends a GTP text to bob (new epoch). As crates/gbp/stack/tests/lifecycle.rs."""
    grp = two_member_group()
    alice, bob = grp.mls["alice"], grp.mls["bob"]
    na, nb = grp.nodes["alice"], grp.nodes["bob"]
    old_epoch = alice.epoch
    keylog_old = grp.keylog("bob")
    carol = MlsContext.create("carol")
    commit, welcome = alice.invite_full(carol.export_key_package())
    tid = na.last_transition_id + 1
    frames = []
    prep = na.send_control(alice, 2, ControlOpcode.PREPARE_TRANSITION, tid, 1, commit)
    frames.append(("alice", "PREPARE_TRANSITION", prep.wire))
    evs = nb.on_wire(bob, prep.wire)
    assert any(e.kind == "control" for e in evs), evs
    assert bob.process_message(commit) == "commit"
    ready = nb.send_control(bob, 1, ControlOpcode.READY_FOR_TRANSITION, tid, 2)
    frames.append(("bob", "READY_FOR_TRANSITION", ready.wire))
    evs = na.on_wire(alice, ready.wire)
    assert not [e for e in evs if e.kind == "error"], evs
    execute = na.send_control(alice, 2, ControlOpcode.EXECUTE_TRANSITION, tid, 3)
    frames.append(("alice", "EXECUTE_TRANSITION", execute.wire))
    evs = nb.on_wire(bob, execute.wire)
    assert any(e.kind == "epoch_advanced" for e in evs), evs
    na.apply_transition(tid)
    alice.finalize_commit()
    bob.finalize_commit()
    carol.accept_welcome(welcome)
    nc = GroupNode.create(member_id=3, group_id=alice.group_id)
    nc.bootstrap_as_joiner(carol.epoch)
    nc.drain_events()
    grp.mls["carol"], grp.nodes["carol"], grp.member_ids["carol"] = carol, nc, 3
    assert alice.epoch == bob.epoch == carol.epoch == na.epoch == nb.epoch == old_epoch + 1
    gtp = g.GtpClient.create()
    try:
        text = gtp.send(na, alice, 2, message_id=1, text="after the transition").wire
    finally:
        gtp.close()
    return TransitionFlow(grp, old_epoch, alice.epoch, commit, welcome, frames, keylog_old,
                          grp.keylog("alice"), text)


__all__ = ["RefGroup", "RefFrame", "TransitionFlow", "two_member_group", "reference_frames",
           "deliver", "payloads", "transition_flow", "CODECS"]
