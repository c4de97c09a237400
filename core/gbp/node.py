"""The GBP group node: framing, per-stream AEAD, replay windows, node FSM and control plane
(gbp_rfc.md §6-§9, gbp-control-plane.md §5-§6, gbp-state-machine.md; behaviour of the reference
crates/gbp/node/src/node.rs ``GroupNode`` as the ``gbp_stack`` 1.9.1 binding exposes it).

Sans-IO: bytes in, :class:`~gbp_lab.core.gbp.events.NodeEvent` lists and
:class:`~gbp_lab.core.gbp.events.OutboundFrame` out. The node never reads a clock. Time is
**injected in milliseconds** (any monotonic origin the caller likes): ``check_timeouts(now_ms)``,
and optionally ``now=`` on :meth:`GroupNode.on_wire`, :meth:`GroupNode.send_control` and
:meth:`GroupNode.claim_coordinator`. Deadlines are armed relative to the ``now`` passed to the
call that arms them, or — when none is passed — to the latest time the node has been told.

The ``mls`` argument is any object with ``epoch`` and ``export_raw(label, context, length)``
(RFC 9420 §8.5 MLS-Exporter): our MlsContext, :class:`gbp_lab.core.mls.exporter_view.ExporterView`
or a test adapter. Stream keys are ``export_raw("gbp/<stream>", b"", 32)``, cached until the
``mls`` object, its ``epoch`` or its ``group_id`` (when it has one) changes.

Receive pipeline of :meth:`GroupNode.on_wire` (gbp_rfc §6.2, in the reference's order), each
failure reported as an ``error`` event, never raised:

1. wire larger than ``max_wire_size`` (1 MiB, the transport's MAX_FRAME — a check the reference
   node leaves to its transport) or not a decodable frame → 0x0008 STREAM_POLICY_VIOLATION;
2. ``v`` != 1 → 0x0001 UNSUPPORTED_VERSION (fatal: node FAILED);
3. ``gid`` (zero-padded/truncated to 16) != ours → 0x0002 UNKNOWN_GROUP (fatal);
4. ``ep`` != node epoch → 0x0003 EPOCH_MISMATCH and the node goes RESYNCING;
5. ``psz`` != ``len(pl)`` → 0x0008;
6. unknown ``st`` → 0x0008;
7. application stream with flag CRITICAL and ``tid`` != last applied → 0x0004 TRANSITION_MISMATCH;
8. ``seq`` <= highest seen on ``(st, sid)`` → 0x0005 REPLAY_DETECTED (the high-water mark moves
   *before* the AEAD check, as in the reference);
9. AEAD open fails → 0x0006 DECRYPT_FAILED (retryable, non-fatal);
10. stream 0 → control handler (decode error / unknown opcode → 0x0008; ``tid`` against
    :data:`~gbp_lab.core.gbp.transitions.TID_RULES` → 0x0004), others → ``payload_received``.

Deliberate differences from the reference, all stricter on malformed input: bytes after the
frame's or the control message's CBOR map are rejected (the reference ignores them); the 1 MiB
size check above.
"""
from __future__ import annotations

from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

from ..errors import ClosedError, DecodeError, GbpLabError, StateError, UsageError, raises_builtin
from .aead import TAG_LENGTH, ExporterCiphers
from .control import COORDINATOR_CLAIM_ARGS, ControlMessage, decode_control
from .events import NodeEvent, OutboundFrame, make_event
from .frame import decode_frame, encode_frame
from .registry import (ERROR_SPECS, GBP_VERSION, GROUP_ID_LENGTH, STREAM_ID_STRIDE, STREAM_NAMES,
                       TIMEOUTS_MS, ControlOpcode, ErrorClass, ErrorCode, FrameFlags, NodeState,
                       PayloadCodec, StreamType, TransitionState, sent_flags)
from .transitions import SENDABLE_STATES, node_can_transition, tid_valid

__all__ = ["GroupNode", "NodeStateError", "MAX_WIRE_SIZE"]

#: Largest wire frame accepted (the transport's ``MAX_FRAME``, gbp_rfc §3).
MAX_WIRE_SIZE = 1 << 20

_E = ErrorCode
_N = NodeState
_T = TransitionState
_OP = ControlOpcode
_CRITICAL = int(FrameFlags.CRITICAL)
_ST_NAMES = tuple(STREAM_NAMES[i] for i in range(4))
_ST_ENUM = tuple(StreamType)
_CODECS = {0: PayloadCodec.CBOR, 1: PayloadCodec.PROTOBUF, 2: PayloadCodec.FLATBUFFERS}
_OPS = {int(op): op for op in ControlOpcode}
_OP_DEBUG = {op: "".join(w.capitalize() for w in op.name.split("_")) for op in ControlOpcode}
_STATE_NAMES = {s: s.name for s in NodeState}


class NodeStateError(StateError, OSError):
    """A send was attempted in a state that does not allow it (reference ``InvalidState``;
    also an :class:`OSError`, which is what the ``gbp_stack`` wrapper raises)."""

    default_vid = "GBP-NODE-STATE"


def _error_fields(code: int, reason: str) -> Dict[str, Any]:
    code = int(code)
    spec = ERROR_SPECS.get(code)
    if spec is None:  # never for the codes the node raises; kept for completeness
        cls, retryable, fatal = int(ErrorClass.POLICY), False, False
    else:
        cls, retryable, fatal = int(spec.error_class), spec.retryable, spec.fatal
    return {"kind": "error", "code": code, "code_hex": f"0x{code:04X}", "class_": cls,
            "retryable": retryable, "fatal": fatal, "reason": reason}


class GroupNode:
    """One member's GBP node (same methods, arguments and events as ``gbp_stack.GroupNode``,
    plus ``check_timeouts`` / ``claim_coordinator`` of the Rust node and the transition
    bookkeeping the control plane needs: ``pending_transition_id``, ``pending_commit``,
    ``pending_commit_sender``, ``ready_from``, ``transition_state``, ``is_coordinator``).

    ``timeouts`` overrides entries of :data:`~gbp_lab.core.gbp.registry.TIMEOUTS_MS`
    (``T_prepare_max``, ``T_execute_max``, ``T_coordinator_grace``; milliseconds).
    """

    __slots__ = (
        "member_id", "_group_id", "is_coordinator", "current_epoch", "last_transition_id",
        "pending_transition_id", "state", "transition_state", "pending_commit_sender",
        "pending_commit", "_ready_from", "_quorum", "prepare_deadline", "execute_deadline",
        "coordinator_last_seen", "_now", "_out_seq", "_in_hw", "_events", "_kmls", "_kepoch",
        "_ciphers", "timeouts", "max_wire_size",
    )

    def __init__(self, member_id: int, group_id: bytes, *,
                 timeouts: Optional[Mapping[str, int]] = None,
                 max_wire_size: int = MAX_WIRE_SIZE) -> None:
        if isinstance(member_id, bool) or not isinstance(member_id, int) or not (
                0 <= member_id <= 0xFFFFFFFF):
            raise UsageError(f"member_id must be a u32, got {member_id!r}", vid="GBP-NODE-MEMBER")
        if not isinstance(group_id, (bytes, bytearray)) or len(group_id) != GROUP_ID_LENGTH:
            raise UsageError("group_id must be 16 bytes", vid="GBP-NODE-GID")
        self.member_id = member_id
        self._group_id = bytes(group_id)
        self.is_coordinator = False
        self.current_epoch = 0
        self.last_transition_id = 0
        self.pending_transition_id = 0
        self.state = _N.IDLE
        self.transition_state = _T.T_IDLE
        self.pending_commit_sender: Optional[int] = None
        self.pending_commit: Optional[bytes] = None
        self._ready_from: set = set()
        self._quorum: Optional[FrozenSet[int]] = None
        self.prepare_deadline: Optional[float] = None
        self.execute_deadline: Optional[float] = None
        self.coordinator_last_seen: Optional[float] = None
        self._now: float = 0
        self._out_seq: Dict[Tuple[int, int], int] = {}
        self._in_hw: Dict[Tuple[int, int], int] = {}
        self._events: List[NodeEvent] = []
        self._ciphers = ExporterCiphers()  # stream keys of the current mls object and epoch
        t = dict(TIMEOUTS_MS)
        if timeouts:
            unknown = set(timeouts) - set(t)
            if unknown:
                raise UsageError(f"unknown timeouts {sorted(unknown)}", vid="GBP-NODE-TIMEOUTS")
            t.update(timeouts)
        self.timeouts: Dict[str, int] = t
        self.max_wire_size = max_wire_size

    # -- construction / bootstrap (node.rs new, bootstrap_as_*) --------------------------------
    @classmethod
    def create(cls, member_id: int, group_id: bytes, **kwargs: Any) -> "GroupNode":
        """A node in IDLE bound to *group_id* (16 bytes)."""
        return cls(member_id, group_id, **kwargs)

    def _check_open(self) -> None:
        if self.state is _N.CLOSED:
            raise ClosedError("the node is closed", vid="GBP-NODE-CLOSED")

    @raises_builtin(OSError)
    def bootstrap_as_creator(self, epoch: int) -> None:
        """IDLE → CONNECTING → ESTABLISHING_GROUP → ACTIVE at *epoch* (one ``state_changed``
        event per step)."""
        self._check_open()
        self._transition(_N.CONNECTING)
        self._transition(_N.ESTABLISHING_GROUP)
        self.current_epoch = _u64(epoch, "epoch")
        self._transition(_N.ACTIVE)

    @raises_builtin(OSError)
    def bootstrap_as_joiner(self, epoch: int, expected_first_tid: int = 0) -> None:
        """As :meth:`bootstrap_as_creator`; a non-zero *expected_first_tid* pre-arms the pending
        transition so that the first EXECUTE (whose PREPARE the joiner could not decrypt: it was
        sealed before the Welcome) passes the tid check."""
        self._check_open()
        self._transition(_N.CONNECTING)
        self._transition(_N.ESTABLISHING_GROUP)
        self.current_epoch = _u64(epoch, "epoch")
        tid = expected_first_tid & 0xFFFFFFFF
        if tid > 0:
            self.pending_transition_id = tid
            self.transition_state = _T.T_PREPARED
        self._transition(_N.ACTIVE)

    # -- views --------------------------------------------------------------------------------
    @property
    def group_id(self) -> bytes:
        """The 16-byte group id."""
        return self._group_id

    @property
    def epoch(self) -> int:
        """The node epoch (advances by one per applied transition)."""
        return self.current_epoch

    @property
    def ready_from(self) -> FrozenSet[int]:
        """Members whose READY_FOR_TRANSITION for the pending tid this node received."""
        return frozenset(self._ready_from)

    @property
    def now(self) -> float:
        """The latest time (ms) the node has been told."""
        return self._now

    def member_stream_id(self, base: int) -> int:
        """``base + member_id * 100`` (bases: control 0, text 1, audio 2, signal 3)."""
        return base + self.member_id * STREAM_ID_STRIDE

    @raises_builtin(OSError)
    def set_epoch_for_testing(self, epoch: int) -> None:
        """Overwrite the node epoch (tests of late peers)."""
        self._check_open()
        self.current_epoch = _u64(epoch, "epoch")

    def set_quorum(self, members: Optional[Iterable[int]]) -> None:
        """Members whose READY the coordinator waits for before its prepare deadline is cleared
        (``None``, the default, clears it on the first READY, as the reference does)."""
        self._quorum = None if members is None else frozenset(members)

    def quorum_reached(self, members: Optional[Iterable[int]] = None) -> bool:
        """True when every member of *members* (default: the :meth:`set_quorum` set) has sent
        READY for the pending transition."""
        want = self._quorum if members is None else frozenset(members)
        if want is None:
            return bool(self._ready_from)
        return want <= self._ready_from

    def drain_events(self) -> List[NodeEvent]:
        """Return and forget the queued events."""
        ev = self._events
        self._events = []
        return ev

    def close(self) -> None:
        """Move to CLOSED (allowed from every state); idempotent. After it, sending raises
        :class:`NodeStateError` and bootstrap / transitions :class:`ClosedError` (both
        ``OSError`` instances, as the binding's); :meth:`on_wire` ignores its input."""
        if self.state != _N.CLOSED:
            self._transition(_N.CLOSED)

    def __enter__(self) -> "GroupNode":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"GroupNode(member_id={self.member_id}, state={self.state.name}, "
                f"epoch={self.current_epoch}, last_tid={self.last_transition_id}, "
                f"pending_tid={self.pending_transition_id})")

    # -- FSM -----------------------------------------------------------------------------------
    def _transition(self, nxt: NodeState) -> None:
        cur = self.state
        if cur == nxt:
            return
        if not node_can_transition(cur, nxt):
            nxt = _N.FAILED
        self.state = nxt
        self._events.append(make_event({"kind": "state_changed", "from_state": _STATE_NAMES[cur],
                                    "to_state": _STATE_NAMES[nxt]}))

    def trigger_resync(self) -> None:
        """Enter RESYNCING (from ACTIVE; from a state that cannot, the FSM sends the node to
        FAILED)."""
        if self.state != _N.RESYNCING:
            self._transition(_N.RESYNCING)

    def _error(self, code: int, reason: str) -> None:
        fields = _error_fields(code, reason)
        self._events.append(make_event(fields))
        if fields["fatal"]:
            cur = self.state
            self.state = _N.FAILED
            self._events.append(make_event({"kind": "state_changed", "from_state": _STATE_NAMES[cur],
                                        "to_state": "FAILED"}))

    def note_coordinator_activity(self, now: Optional[float] = None) -> None:
        """Reset the coordinator-silence timer (to *now*, default the latest known time)."""
        self.coordinator_last_seen = self._now if now is None else now

    # -- receive -------------------------------------------------------------------------------
    def on_wire(self, mls: Any, wire: bytes, now: Optional[float] = None) -> List[NodeEvent]:
        """Feed one wire frame; returns every queued event (this frame's and any earlier
        undrained ones). Never raises on bad bytes: problems become ``error`` events. A closed
        node ignores the wire, as the binding's."""
        if now is not None:
            self._now = now
        if self.state is not _N.CLOSED:
            self._deliver(mls, wire)
        ev = self._events
        self._events = []
        return ev

    def _deliver(self, mls: Any, wire: bytes) -> None:
        if type(wire) is not bytes:
            if not isinstance(wire, (bytearray, memoryview)):
                raise UsageError(f"wire must be bytes, got {type(wire).__name__}",
                                 vid="GBP-NODE-WIRE")
            wire = bytes(wire)
        if len(wire) > self.max_wire_size:
            self._error(_E.STREAM_POLICY_VIOLATION,
                        f"frame decode: {len(wire)} bytes exceed the {self.max_wire_size}-byte limit")
            return
        psz_error = None
        try:
            frame = decode_frame(wire)
        except DecodeError as exc:
            if exc.vid != "GBP-FRAME-PSZ":
                self._error(_E.STREAM_POLICY_VIOLATION, f"frame decode: {exc.message}")
                return
            psz_error = exc.message
            frame = decode_frame(wire, strict=False)
        except GbpLabError as exc:  # pragma: no cover - decoders only raise DecodeError
            self._error(_E.STREAM_POLICY_VIOLATION, f"frame decode: {exc}")
            return
        if frame.version != GBP_VERSION:
            self._error(_E.UNSUPPORTED_VERSION, "version != 1")
            return
        gid = frame.group_id
        if gid != self._group_id and (len(gid) == GROUP_ID_LENGTH or frame.group_id16 != self._group_id):
            self._error(_E.UNKNOWN_GROUP, "group_id")
            return
        ep = frame.epoch
        if ep != self.current_epoch:
            self._error(_E.EPOCH_MISMATCH, f"got {ep}, expected {self.current_epoch}")
            self.trigger_resync()
            return
        if psz_error is not None:
            self._error(_E.STREAM_POLICY_VIOLATION, f"payload size: {psz_error}")
            return
        st = frame.stream_type
        if not 0 <= st <= 3:
            self._error(_E.STREAM_POLICY_VIOLATION, "unknown stream_type")
            return
        if st and frame.flags & _CRITICAL and frame.transition_id != self.last_transition_id:
            self._error(_E.TRANSITION_MISMATCH,
                        f"got tid={frame.transition_id}, expected {self.last_transition_id}")
            return
        sid = frame.stream_id
        seq = frame.sequence_no
        key = (st, sid)
        hw = self._in_hw.get(key, 0)
        if seq <= hw:
            self._error(_E.REPLAY_DETECTED, f"st={_ST_NAMES[st]} sid={sid} seq={seq} hw={hw}")
            return
        self._in_hw[key] = seq
        pl = frame.payload
        try:
            cipher = self._ciphers.get(mls, st)
        except Exception as exc:  # noqa: BLE001 - a key that cannot be exported is a failed open
            self._error(_E.DECRYPT_FAILED, f"aead open: {exc}")
            return
        if len(pl) < TAG_LENGTH:
            self._error(_E.DECRYPT_FAILED, "aead open: ciphertext shorter than the tag")
            return
        plain = cipher.try_open(seq, pl)
        if plain is None:
            self._error(_E.DECRYPT_FAILED, "aead open: tag mismatch")
            return
        if st == 0:
            self._handle_control(plain)
            return
        pf = frame.payload_format
        self._events.append(make_event({
            "kind": "payload_received", "stream_type_name": _ST_NAMES[st],
            "stream_type": _ST_ENUM[st], "stream_id": sid, "sequence_no": seq,
            "flags": frame.flags, "plaintext": plain,
            "codec": _CODECS.get(pf, PayloadCodec.CBOR)}))

    def _control_event(self, c: ControlMessage, op: ControlOpcode) -> NodeEvent:
        return make_event({"kind": "control", "sender": c.sender_id, "opcode": op.name,
                       "opcode_code": int(op), "transition_id": c.transition_id,
                       "request_id": c.request_id, "args": c.args})

    def _handle_control(self, plain: bytes) -> None:
        try:
            c = decode_control(plain)
        except GbpLabError:
            self._error(_E.STREAM_POLICY_VIOLATION, "control decode")
            return
        op = _OPS.get(c.opcode)
        if op is None:
            self._error(_E.STREAM_POLICY_VIOLATION, "unknown opcode")
            return
        tid = c.transition_id
        if not tid_valid(op, tid, self.last_transition_id, self.pending_transition_id):
            self._error(_E.TRANSITION_MISMATCH,
                        f"control tid={tid} not valid for {_OP_DEBUG[op]} "
                        f"(last={self.last_transition_id}, pending={self.pending_transition_id})")
            return
        if op == _OP.PREPARE_TRANSITION:
            if self.pending_transition_id == tid:
                winner = self.pending_commit_sender
                if winner is None:
                    winner = 0xFFFFFFFF
                if c.sender_id >= winner:  # tie-break (gbp_rfc §8): the lower member id wins
                    self._events.append(self._control_event(c, op))
                    return
            else:
                self._ready_from = set()
            self.pending_transition_id = tid
            self.pending_commit_sender = c.sender_id
            self.pending_commit = c.args
            self.transition_state = _T.T_PREPARED
            self.coordinator_last_seen = self._now
            self.execute_deadline = self._now + self.timeouts["T_execute_max"]
        elif op == _OP.READY_FOR_TRANSITION:
            self.transition_state = _T.T_READY
            self._ready_from.add(c.sender_id)
            if self._quorum is None or self._quorum <= self._ready_from:
                self.prepare_deadline = None
        elif op == _OP.EXECUTE_TRANSITION:
            self.execute_deadline = None
            self.apply_transition(tid)
            self.coordinator_last_seen = self._now
        elif op == _OP.ABORT_TRANSITION:
            self.prepare_deadline = None
            self.execute_deadline = None
            self._clear_pending()
            self.transition_state = _T.T_ABORTED
        elif op == _OP.GROUP_STATE_DIGEST_RESPONSE:
            if self.state == _N.RESYNCING:
                self._transition(_N.ACTIVE)
        elif op == _OP.CAPABILITIES_ADVERTISE:
            args = c.args
            if args == COORDINATOR_CLAIM_ARGS or b"\x00\xf5" in args:
                self.coordinator_last_seen = self._now
                if self.is_coordinator and c.sender_id < self.member_id:
                    self.is_coordinator = False  # yield to the lower claimant (control-plane §5.1)
                self._events.append(make_event({"kind": "coordinator_claim",
                                            "claimant": c.sender_id}))
        self._events.append(self._control_event(c, op))

    def _clear_pending(self) -> None:
        self.pending_transition_id = 0
        self.pending_commit_sender = None
        self.pending_commit = None
        self._ready_from = set()

    # -- transitions ---------------------------------------------------------------------------
    @raises_builtin(OSError)
    def apply_transition(self, transition_id: int) -> None:
        """Apply transition *transition_id* locally: epoch + 1, ``last_transition_id`` := tid,
        pending cleared, send counters and replay windows reset, ``epoch_advanced`` event."""
        self._check_open()
        tid = _u32(transition_id, "transition_id")
        self.current_epoch += 1
        self.last_transition_id = tid
        self._clear_pending()
        self.transition_state = _T.T_EXECUTED
        self._out_seq.clear()
        self._in_hw.clear()
        self._events.append(make_event({"kind": "epoch_advanced", "epoch": self.current_epoch,
                                    "transition_id": tid}))

    def check_timeouts(self, now: Optional[float] = None) -> List[NodeEvent]:
        """Fire expired deadlines at time *now* (ms; default: the latest known time) and return
        every queued event. PREPARE timeout (coordinator, ``T_prepare_max`` after sending
        PREPARE) aborts the pending transition → 0x0010; EXECUTE timeout (member,
        ``T_execute_max`` after PREPARE received / READY sent) → 0x0012; coordinator silence
        ≥ ``T_coordinator_grace`` → 0x0013 and ``coordinator_election_needed``."""
        if now is not None:
            self._now = now
        now = self._now
        if self.prepare_deadline is not None and now >= self.prepare_deadline:
            self.prepare_deadline = None
            self.execute_deadline = None
            self._clear_pending()
            self.transition_state = _T.T_ABORTED
            self._error(_E.PREPARE_TIMEOUT, "T_prepare_max exceeded")
        if self.execute_deadline is not None and now >= self.execute_deadline:
            self.execute_deadline = None
            self._error(_E.EXECUTE_TIMEOUT, "T_execute_max exceeded")
        seen = self.coordinator_last_seen
        if seen is not None and now - seen >= self.timeouts["T_coordinator_grace"]:
            self.coordinator_last_seen = None
            self.is_coordinator = False
            self._error(_E.COORDINATOR_GONE, "coordinator silence exceeded T_coordinator_grace")
            self._events.append(make_event({"kind": "coordinator_election_needed"}))
        return self.drain_events()

    # -- send ----------------------------------------------------------------------------------
    def _assert_can_send(self) -> None:
        if self.state not in SENDABLE_STATES:
            raise NodeStateError(f"cannot send in state {self.state.name}", where=self.state.name)

    def send_payload(self, mls: Any, target: int, stream_type: int, stream_id: int, flags: int,
                     plaintext: bytes, codec: int = PayloadCodec.CBOR) -> OutboundFrame:
        """Seal *plaintext* on ``(stream_type, stream_id)`` with the next sequence number (first
        is 1) and frame it at the node's epoch and last tid (node.rs ``send_payload``). The
        frame bytes are those of :meth:`GbpFrame.to_cbor`, written by the one frame encoder
        (:func:`~gbp_lab.core.gbp.frame.encode_frame`; the ranges are checked here)."""
        if self.state not in SENDABLE_STATES:
            self._assert_can_send()
        st = int(stream_type)
        if not 0 <= st <= 3:
            raise UsageError(f"unknown stream type {stream_type!r}", vid="GBP-NODE-STREAM")
        pf = int(codec)
        if type(stream_id) is not int or not 0 <= stream_id <= 0xFFFFFFFF or not (
                0 <= flags <= 0xFFFF) or not 0 <= pf <= 0xFF:
            raise UsageError(f"stream_id={stream_id!r}, flags={flags!r}, codec={codec!r} do not "
                             "fit the wire types", vid="GBP-NODE-RANGE")
        key = (st, stream_id)
        seq = self._out_seq.get(key, 0) + 1
        if seq > 0xFFFFFFFF:
            raise NodeStateError("sequence numbers exhausted on this stream; apply a transition",
                                 vid="GBP-NODE-SEQ", where=key)
        ct = self._ciphers.get(mls, st).seal(seq, bytes(plaintext))
        wire = encode_frame(self._group_id, self.current_epoch, self.last_transition_id, st,
                            stream_id, int(flags), seq, ct, pf)
        self._out_seq[key] = seq
        return OutboundFrame(target, wire)

    @raises_builtin(OSError)
    def send_control(self, mls: Any, target: int, opcode: int, transition_id: int,
                     request_id: int, args: bytes = b"", *,
                     now: Optional[float] = None) -> OutboundFrame:
        """Send a control message on stream 0 (flags O|R|S, plus C for PREPARE/READY/EXECUTE).

        Sender-side mirroring (node.rs ``send_control``): PREPARE makes *transition_id* pending
        here too and arms the prepare deadline; READY arms the execute deadline; EXECUTE and
        ABORT clear the deadlines and ABORT clears the pending tid. ``apply_transition`` after
        EXECUTE stays the caller's job, as in the reference."""
        op = _OPS.get(opcode) if isinstance(opcode, int) and not isinstance(opcode, bool) else None
        if op is None:
            raise UsageError(f"bad opcode {opcode!r}", vid="GBP-NODE-OPCODE")
        if now is not None:
            self._now = now
        msg = ControlMessage.build(op, request_id, self.member_id, transition_id, bytes(args))
        plain = msg.to_cbor()  # validates the ranges before any state changes
        t_now = self._now
        if op == _OP.PREPARE_TRANSITION:
            if self.pending_transition_id != transition_id:
                self._ready_from = set()
            self.pending_transition_id = transition_id
            self.transition_state = _T.T_PREPARED
            self.prepare_deadline = t_now + self.timeouts["T_prepare_max"]
            self.execute_deadline = None
        elif op == _OP.READY_FOR_TRANSITION:
            self.execute_deadline = t_now + self.timeouts["T_execute_max"]
        elif op == _OP.EXECUTE_TRANSITION or op == _OP.ABORT_TRANSITION:
            self.prepare_deadline = None
            self.execute_deadline = None
            if op == _OP.ABORT_TRANSITION:
                self.pending_transition_id = 0
                self.pending_commit = None
                self._ready_from = set()
                self.transition_state = _T.T_ABORTED
        return self.send_payload(mls, target, StreamType.CONTROL, self.member_stream_id(0),
                                 sent_flags(StreamType.CONTROL, op), plain, PayloadCodec.CBOR)

    @raises_builtin(OSError)
    def claim_coordinator(self, mls: Any, target: int, *,
                          now: Optional[float] = None) -> OutboundFrame:
        """Take the coordinator role: ``became_coordinator`` event and a CAPABILITIES_ADVERTISE
        carrying the claim ``{0: true}`` (``A1 00 F5``) at the last tid, request id 0
        (gbp-control-plane §5.1). Deliver the frame to every member."""
        if now is not None:
            self._now = now
        self.is_coordinator = True
        self.coordinator_last_seen = self._now
        self._events.append(make_event({"kind": "became_coordinator"}))
        return self.send_control(mls, target, _OP.CAPABILITIES_ADVERTISE,
                                 self.last_transition_id, 0, COORDINATOR_CLAIM_ARGS)


def _u64(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFFFFFFFFFFFFFF:
        raise UsageError(f"{what} must be a u64, got {v!r}", vid="GBP-NODE-RANGE", where=what)
    return v


def _u32(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFFFFFF:
        raise UsageError(f"{what} must be a u32, got {v!r}", vid="GBP-NODE-RANGE", where=what)
    return v
