"""The members of a simulated group (:mod:`gbp_lab.sim.simulator` runs them).

* :class:`SimMember` — a :mod:`gbp_lab.core` stack: :class:`~gbp_lab.core.mls.context.MlsContext`
  + :class:`~gbp_lab.core.gbp.node.GroupNode` + the GTP/GAP/GSP clients (+ an
  :class:`~gbp_lab.core.sframe.SFrameSession` per epoch for audio, RFC 9605);
* :class:`RefMember` — the same roles run by the reference implementation's wheel
  (``gbp_stack``);
* :class:`MemberHost` — what a member reads from the run that drives it (clock, coordinator,
  expectations); :class:`~gbp_lab.sim.simulator.Simulator` is one.

Members are plain reference-style clients: every record the relay broadcasts reaches them, and
they keep what is for them — which record is what (GBP frame, KeyPackage, Welcome of any cipher
suite, raw or in an ``MLSMessage`` envelope) is the core's record classifier's answer
(:func:`gbp_lab.core.gbp.classify.classify_record`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Protocol, Tuple

from gbp_lab.core.errors import GbpLabError
from gbp_lab.core.gap.client import GapClient
from gbp_lab.core.gap.payload import GapPayload
from gbp_lab.core.gbp.aead import open_frame
from gbp_lab.core.gbp.classify import RecordKind, classify_record
from gbp_lab.core.gbp.control import decode_control
from gbp_lab.core.gbp.events import NodeEvent
from gbp_lab.core.gbp.frame import decode_frame
from gbp_lab.core.gbp.node import GroupNode
from gbp_lab.core.gbp.registry import ControlOpcode, NodeState, PayloadCodec, StreamType, sender_of
from gbp_lab.core.gsp.args import validate_args
from gbp_lab.core.gsp.client import GspClient
from gbp_lab.core.gsp.signal import GspSignal, SignalType
from gbp_lab.core.gtp.client import GtpClient
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.mls.context import MlsContext
from gbp_lab.core.sframe import SFrameSession

from .client import RelayClient
from .clock import DeterministicRng, VirtualClock

__all__ = ["SimulationError", "Received", "MemberHost", "SimMember", "RefMember"]

_OP = ControlOpcode


class SimulationError(GbpLabError):
    """The run could not continue (a record did not arrive, a member's state diverged …)."""

    default_vid = "SIM-RUN"


class MemberHost(Protocol):
    """What a member needs from the run that drives it."""

    seed: int
    clock: VirtualClock
    coordinator: Optional["SimMember"]
    #: the member a Remove commit is removing right now (it may fail to follow it)
    removing: Optional["SimMember"]
    #: (sender member id, media source id) -> SFrame suite of the audio streams sent encrypted
    sframe_expected: Dict[Tuple[int, int], int]

    def expect_error(self, ev: NodeEvent) -> bool:
        """True for an error a step provokes on purpose."""
        ...

    def leaf_of(self, m: "SimMember") -> int:
        """*m*'s leaf index in the group's ratchet tree."""
        ...


def frame_sender(wire: bytes) -> Optional[int]:
    """The member id of a GBP frame's sender (:func:`~gbp_lab.core.gbp.registry.sender_of` of
    its stream id), ``None`` when *wire* is not a frame (the core's record classifier says)."""
    rc = classify_record(wire)
    return sender_of(rc.value.stream_id) if rc.kind is RecordKind.GBP_FRAME else None


@dataclass(frozen=True)
class Received:
    """Something a member accepted (for assertions and the run log)."""

    receiver: str
    kind: str  #: "text" | "audio" | "signal" | "control"
    sender: Optional[int]  #: member id (``None`` if the implementation's event did not say)
    epoch: int
    detail: Any


class SimMember:
    """One simulated member: MLS context, GBP node, clients, SFrame sessions, connection."""

    def __init__(self, sim: MemberHost, name: str, member_id: int) -> None:
        self.sim = sim
        self.name = name
        self.member_id = member_id
        self.rng = DeterministicRng(sim.seed, f"member:{name}")
        self.keylog = KeyLog()
        self.node: Any = None
        self._make_stack()
        self.conn: Optional[RelayClient] = None
        self.conn_id: Optional[int] = None
        self.in_group = False
        self.dead = False  #: a failed coordinator: silent for good
        self.awaiting_welcome = False
        self.key_packages: List[bytes] = []
        self.received: List[Received] = []
        self.errors: List[NodeEvent] = []
        self.expected_errors: List[NodeEvent] = []
        self.digest_requests: List[int] = []
        self._sframe: Dict[Tuple[int, int], SFrameSession] = {}
        self._rid = 0
        self._mid = 0
        self._staged_tid: Optional[int] = None

    impl = "core"

    def _make_stack(self) -> None:
        self.mls: Any = MlsContext.create(self.name, rng=self.rng, keylog=self.keylog,
                                          clock=self.sim.clock.seconds)
        self.gtp: Any = GtpClient()
        self.gap: Any = GapClient()
        self.gsp: Any = GspClient()

    # -- helpers ----------------------------------------------------------------------------
    def next_rid(self) -> int:
        """Request ids are unique group-wide (GSP dedups on the request id alone, gsp_rfc §5):
        ``member_id * 10 000 + n``."""
        self._rid += 1
        return self.member_id * 10_000 + self._rid

    def next_mid(self) -> int:
        self._mid += 1
        return self.member_id * 1_000_000 + self._mid

    def sframe(self, suite: int) -> SFrameSession:
        key = (self.mls.epoch, suite)
        s = self._sframe.get(key)
        if s is None:
            self._sframe = {k: v for k, v in self._sframe.items() if k[0] == self.mls.epoch}
            s = self._sframe[key] = SFrameSession.create(self.mls, suite=suite)
        return s

    @property
    def connected(self) -> bool:
        return self.conn is not None

    @property
    def leaf_index(self) -> int:
        return self.mls.own_leaf_index

    @property
    def epoch(self) -> int:
        return self.mls.epoch

    def staged(self, tid: int) -> bool:
        """True when the PREPARE of *tid* arrived and its commit is staged."""
        return self.node.pending_transition_id == tid and self.mls.has_pending_commit

    # -- sending (the engine calls these; RefMember overrides them) ---------------------------
    def control(self, op: int, tid: int, args: bytes = b""):
        return self.node.send_control(self.mls, 0, op, tid, self.next_rid(), args,
                                      now=self.sim.clock.now_ms)

    def text_frame(self, text: str, codec: int):
        return self.gtp.send(self.node, self.mls, 0, self.next_mid(), text, codec)

    def audio_frame(self, source: int, ts: int, body: bytes, codec: int):
        return self.gap.send(self.node, self.mls, 0, source, ts, body, codec, now=self.sim.clock.now_ms)

    def signal_frame(self, sig: int, role: int, args: bytes, codec: int):
        return self.gsp.send(self.node, self.mls, 0, sig, role, self.next_rid(), args, codec)

    def encryptor(self, suite: int):
        return self.sframe(suite).create_encryptor(None, self.leaf_index)

    def open_sframe(self, suite: int, payload: bytes) -> bytes:
        return bytes(self.sframe(suite).decrypt(payload).plaintext)

    def wire_in(self, data: bytes):
        return self.node.on_wire(self.mls, data, now=self.sim.clock.now_ms)

    def new_node(self) -> Any:
        return GroupNode(self.member_id, self.mls.group_id)

    def __repr__(self) -> str:
        return f"SimMember({self.name!r}, id={self.member_id}, in_group={self.in_group})"

    # -- receiving --------------------------------------------------------------------------
    def on_record(self, data: bytes) -> None:
        now = self.sim.clock.now_ms
        rc = classify_record(data)  # one answer: GBP frame or which MLS structure (by parsing)
        kind = rc.kind
        if kind is RecordKind.GBP_FRAME:
            node = self.node
            if node is None or not self.in_group or node.state == NodeState.CLOSED:
                return  # not (yet / any more) a member: cannot read the group's frames
            sender = sender_of(rc.value.stream_id)
            coord = self.sim.coordinator
            if coord is not None and sender == coord.member_id and hasattr(node, "note_coordinator_activity"):
                node.note_coordinator_activity(now)
            for ev in self.wire_in(data):
                self.on_event(ev)
        elif kind is RecordKind.WELCOME:
            if self.awaiting_welcome:
                self._welcome(data)
        elif kind is RecordKind.KEY_PACKAGE:
            self.key_packages.append(data)

    def _accept(self, st: int, pt: bytes, epoch: int, codec: int) -> Tuple[str, Any, str, Any]:
        """Hand a delivered plaintext to the stream's client: (status, reason, kind, detail)."""
        if st == StreamType.TEXT:
            r = self.gtp.accept(pt, epoch, codec)
            return r.status, r.reason, "text", r.text
        if st == StreamType.AUDIO:
            r = self.gap.accept(pt, epoch, codec, now=self.sim.clock.now_ms)
            p = r.payload
            return r.status, r.reason, "audio", (p.media_source_id, bytes(p.opus_frame)) if p else None
        r = self.gsp.accept(pt, epoch, codec)
        return r.status, r.reason, "signal", (r.signal, r.args)

    def _control_args(self, ev: NodeEvent) -> bytes:
        return ev.args or b""

    def _welcome(self, data: bytes) -> None:
        self.mls.accept_welcome(data)
        self.awaiting_welcome = False
        self.in_group = True
        node = self.new_node()
        # the Welcome comes after EXECUTE: the joiner starts at the new epoch (reference-map §6)
        node.bootstrap_as_joiner(self.mls.epoch)
        node.drain_events()
        if hasattr(node, "note_coordinator_activity"):
            node.note_coordinator_activity(self.sim.clock.now_ms)
        self.node = node

    def on_event(self, ev: NodeEvent) -> None:
        kind = ev.kind
        epoch = self.node.epoch if self.node else 0
        if kind == "payload_received":
            assert ev.stream_type is not None and ev.stream_id is not None  # set on payloads
            st = int(ev.stream_type)
            sender = sender_of(ev.stream_id)
            status, reason, what, detail = self._accept(st, ev.plaintext or b"", epoch, int(ev.codec or 0))
            if status != "new":
                raise SimulationError(f"{self.name}: {what} from {sender} was {status}: {reason}")
            if what == "audio":
                source, opus = detail
                suite = self.sim.sframe_expected.get((sender, source))
                detail = opus if suite is None else self.open_sframe(suite, opus)  # RFC 9605
            self.received.append(Received(self.name, what, sender, epoch, detail))
        elif kind == "control":
            self.received.append(Received(self.name, "control", ev.sender, epoch, ev.opcode))
            if ev.opcode_code == _OP.PREPARE_TRANSITION:
                try:
                    what = self.mls.process_message(self._control_args(ev))
                except GbpLabError:
                    if self.sim.removing is self:
                        return  # the removee may fail to follow its own removal (RFC 9420 §12.3)
                    raise
                if what != "commit":
                    raise SimulationError(f"{self.name}: PREPARE carried a {what}, not a commit")
                self._staged_tid = ev.transition_id
            elif ev.opcode_code == _OP.GROUP_STATE_DIGEST_REQUEST:
                assert ev.sender is not None  # a decoded control message names its sender
                self.digest_requests.append(ev.sender)
        elif kind == "epoch_advanced":
            self.mls.finalize_commit()
            if self.sim.removing is self or not getattr(self.mls, "is_active", True):
                self.in_group = False
            elif self.mls.epoch != self.node.epoch:
                raise SimulationError(f"{self.name}: node epoch {self.node.epoch} != MLS epoch "
                                      f"{self.mls.epoch} after EXECUTE")
        elif kind == "error":
            if self.sim.expect_error(ev):
                self.expected_errors.append(ev)
            else:
                self.errors.append(ev)


class RefMember(SimMember):
    """A member run by the reference implementation (the ``gbp_stack`` wheel): its
    ``MlsContext``, ``GroupNode``, GTP/GAP/GSP clients and ``SFrameSession``; ``impl: reference``
    in a script. It joins (never creates or coordinates), chats, streams, signals, answers
    transitions and can leave or be removed.

    Limits, all from the binding: its randomness is the wheel's own (frames involving it differ
    between runs); its ``control`` events carry no ``args``, so the PREPARE commit is taken from
    the frame itself, opened with the epoch's exporter secret from the member's own
    ``export_state()`` (:meth:`KeyLog.from_gbp_stack_state`); its node has no time or resync API
    (no ``reconnect``/``fail_coordinator`` role for it)."""

    impl = "reference"

    def _make_stack(self) -> None:
        import gbp_stack as g

        self._g = g
        self.mls = g.MlsContext.create(self.name)
        self.gtp = g.GtpClient.create()
        self.gap = g.GapClient.create()
        self.gsp = g.GspClient.create()
        self._ref_sframe: Dict[Tuple[int, int], Any] = {}
        self._ref_enc: Dict[Tuple[int, int], Any] = {}

    def _log_keys(self) -> None:
        self.keylog.update(KeyLog.from_gbp_stack_state(self.mls.export_state()))

    @property
    def leaf_index(self) -> int:
        return self.sim.leaf_of(self)

    def staged(self, tid: int) -> bool:
        return self._staged_tid == tid

    def control(self, op: int, tid: int, args: bytes = b""):
        return self.node.send_control(self.mls, 0, self._g.ControlOpcode(int(op)), tid,
                                      self.next_rid(), args)

    def text_frame(self, text: str, codec: int):
        return self.gtp.send(self.node, self.mls, 0, self.next_mid(), text,
                             self._g.PayloadCodec(int(codec)))

    def audio_frame(self, source: int, ts: int, body: bytes, codec: int):
        return self.gap.send(self.node, self.mls, 0, source, ts, body, self._g.PayloadCodec(int(codec)))

    def signal_frame(self, sig: int, role: int, args: bytes, codec: int):
        return self.gsp.send(self.node, self.mls, 0, self._g.SignalType(int(sig)), role,
                             self.next_rid(), args, self._g.PayloadCodec(int(codec)))

    def _ref_session(self, suite: int):
        key = (self.mls.epoch, suite)
        s = self._ref_sframe.get(key)
        if s is None:
            s = self._ref_sframe[key] = self._g.SFrameSession.create(self.mls, "gbp/sframe v1", suite)
        return s

    def encryptor(self, suite: int):
        # 1.9.1 restarts the CTR at 0 for every new encryptor: keep one per (epoch, suite)
        key = (self.mls.epoch, suite)
        e = self._ref_enc.get(key)
        if e is None:
            e = self._ref_enc[key] = self._ref_session(suite).create_encryptor(
                self.mls, self.leaf_index, "gbp/sframe v1", suite)
        return e

    def open_sframe(self, suite: int, payload: bytes) -> bytes:
        return bytes(self._ref_session(suite).decrypt(payload).plaintext)

    def wire_in(self, data: bytes):
        return self.node.on_wire(self.mls, data)

    def new_node(self) -> Any:
        return self._g.GroupNode.create(self.member_id, self.mls.group_id)

    def _welcome(self, data: bytes) -> None:
        super()._welcome(data)
        self._log_keys()

    def on_event(self, ev) -> None:
        super().on_event(ev)
        if ev.kind == "epoch_advanced" and self.in_group:
            self._log_keys()

    def _accept(self, st: int, pt: bytes, epoch: int, codec: int):
        c = self._g.PayloadCodec(codec)
        if st == StreamType.TEXT:
            r = self.gtp.accept(pt, epoch, c)
            return r.status, r.reason, "text", r.text
        if st == StreamType.AUDIO:
            r = self.gap.accept(pt, epoch, c)
            p = GapPayload.from_bytes(pt, PayloadCodec(codec)) if r.status == "new" else None
            return r.status, r.reason, "audio", (p.media_source_id, bytes(p.opus_frame)) if p else None
        r = self.gsp.accept(pt, epoch, c)
        args = validate_args(SignalType(r.signal_code), GspSignal.from_bytes(pt, PayloadCodec(codec)).args) \
            if r.status == "new" else None
        return r.status, r.reason, "signal", (r.signal, args)

    def _control_args(self, ev) -> bytes:
        """The binding drops control args: open the PREPARE frame with this member's own epoch
        secrets (export_state → key log → :func:`~gbp_lab.core.gbp.aead.open_frame`)."""
        frame = decode_frame(self._last_wire)
        keys = KeyLog.from_gbp_stack_state(self.mls.export_state())
        return decode_control(open_frame(frame, keys)).args

    def on_record(self, data: bytes) -> None:
        self._last_wire = data
        super().on_record(data)

    def close(self) -> None:
        for obj in (self.gtp, self.gap, self.gsp):
            obj.close()
