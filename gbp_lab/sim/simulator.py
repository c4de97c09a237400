"""The scripted simulator: real members, a real relay, real loopback TCP, deterministic protocol.

Every member is a :mod:`gbp_lab.core` stack — :class:`~gbp_lab.core.mls.context.MlsContext` +
:class:`~gbp_lab.core.gbp.node.GroupNode` + the GTP/GAP/GSP clients (+ an
:class:`~gbp_lab.core.sframe.SFrameSession` per epoch for audio) — with its own
:class:`~gbp_lab.sim.client.RelayClient` connection to a :class:`~gbp_lab.sim.relay.RelayThread`.
The relay's :class:`~gbp_lab.sim.tap.Tap` records what crossed the sockets; :class:`SimResult`
writes it as ``capture.pcap`` together with ``keys.log`` (every epoch's secrets of the group,
:mod:`gbp_lab.core.keylog`).

Members are plain reference-style clients (no DS extension): every record is broadcast by the
relay to every other connection (gbp-mls-binding.md §5 rule 1), KeyPackages and Welcomes included
— members ignore what is not for them, exactly as a real DS deployment without routing would
behave, and the capture contains nothing but GBP frames and MLS blobs.

Determinism. The engine runs **lock-step**: one record is in flight at a time; after each send it
waits until the relay accepted it and every connected receiver got it, then lets the receivers
process it in member-id order. Protocol time comes from a :class:`VirtualClock` (milliseconds for
the nodes and the GAP client, seconds since 2026-01-01 for MLS KeyPackage lifetimes), randomness
from a seeded :class:`DeterministicRng` per member (``MlsContext(rng=…)``: signature and HPKE
keys, group id, path secrets, HPKE ephemerals). So for one seed every frame and every secret is
the same on every run. What is not: wall-clock pcap timestamps (``timestamps="virtual"`` replaces
them by the virtual clock) and the client's ephemeral TCP ports (``canonical_ports=True``, the
default, writes the relay as ``127.0.0.1:7878`` and client *n* as ``127.0.0.1:40000+n``; the
bytes on the streams are unchanged).

Mixed captures: a ``join`` with ``impl: reference`` makes that member a :class:`RefMember`, run by
the reference implementation's Python wheel (``gbp_stack``) instead of our core; its frames and
keys then come from the wheel's own randomness (not reproducible), and the virtual clock starts at
the current second so that the wheel's KeyPackage lifetime checks pass.

Transitions follow reference-map §6 and the wheel's behaviour (tests/refpeer.py
``transition_flow``): the coordinator sends EXECUTE *before* merging, so EXECUTE is sealed under
the old epoch, like the PREPARE; the Welcome follows the EXECUTE. (docs/en/gbp-leave-flow.md §4
step 6 describes merging first; a receiver that has only staged the commit could not open such an
EXECUTE.)

Every member's MlsContext draws all its randomness (keys, group id, PrivateMessage reuse guards)
from its own seeded generator, so commits — hence PREPARE frames — are deterministic too.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
import types
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import cbor2

from gbp_lab.core.errors import GbpLabError, UsageError
from gbp_lab.core.gap.client import GapClient
from gbp_lab.core.gbp.events import NodeEvent
from gbp_lab.core.gap.payload import GapPayload
from gbp_lab.core.gbp.aead import open_frame
from gbp_lab.core.gbp.control import decode_control
from gbp_lab.core.gbp.frame import decode_frame
from gbp_lab.core.gsp.args import validate_args
from gbp_lab.core.gsp.signal import GspSignal
from gbp_lab.core.gbp.node import GroupNode
from gbp_lab.core.gbp.registry import (TIMEOUTS_MS, ControlOpcode, ErrorCode, NodeState,
                                       PayloadCodec, StreamType)
from gbp_lab.core.gsp.args import build_args
from gbp_lab.core.gsp.client import GspClient
from gbp_lab.core.gsp.signal import SignalType
from gbp_lab.core.gtp.client import GtpClient
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.mls.context import MlsContext
from gbp_lab.core.sframe import SFrameSession

from .client import RelayClient, pump
from .relay import RelayThread
from .script import (Advance, Audio, Create, Disconnect, FailCoordinator, Join, Leave, Reconnect,
                     Remove, Script, ScriptError, Signal, Text, Update, load_script)
from .tap import Tap, TapEvent, TapKind, write_pcap

__all__ = ["Simulator", "SimResult", "SimulationError", "VirtualClock", "DeterministicRng",
           "SimMember", "RefMember", "Received", "simulate", "EPOCH_BASE", "CANONICAL_SERVER",
           "CANONICAL_CLIENT_BASE"]

log = logging.getLogger("gbp_lab.sim.simulator")

#: Unix time of virtual millisecond 0 (2026-01-01T00:00:00Z).
EPOCH_BASE = 1_767_225_600
CANONICAL_SERVER = ("127.0.0.1", 7878)
CANONICAL_CLIENT_BASE = 40000
_WAIT = 15.0  # seconds a lock-step wait may take before the run is declared stuck
_OP = ControlOpcode


class SimulationError(GbpLabError):
    """The run could not continue (a record did not arrive, a member's state diverged …)."""

    default_vid = "SIM-RUN"


# --------------------------------------------------------------------------------------------
# clock and randomness
# --------------------------------------------------------------------------------------------
class VirtualClock:
    """Deterministic protocol time: :attr:`now_ms` (nodes, GAP) and :meth:`seconds` (MLS)."""

    def __init__(self, base_unix: float = EPOCH_BASE) -> None:
        self.base = base_unix
        self.now_ms = 0

    def advance(self, ms: int) -> int:
        self.now_ms += int(ms)
        return self.now_ms

    def seconds(self) -> float:
        return self.base + self.now_ms / 1000.0


class DeterministicRng:
    """A seeded byte generator ``rng(n) -> bytes`` (SHA-256 in counter mode over
    ``seed ‖ label``): the ``rng=`` of :class:`MlsContext`. Not for real keys."""

    def __init__(self, seed: int, label: str) -> None:
        self._key = hashlib.sha256(b"gbp-lab sim rng\x00" + int(seed).to_bytes(16, "big", signed=True)
                                   + label.encode("utf-8")).digest()
        self._counter = 0
        self._buf = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._buf += hashlib.sha256(self._key + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        out, self._buf = self._buf[:n], self._buf[n:]
        return out




# --------------------------------------------------------------------------------------------
# members
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Received:
    """Something a member accepted (for assertions and the run log)."""

    receiver: str
    kind: str  #: "text" | "audio" | "signal" | "control"
    sender: int
    epoch: int
    detail: Any


class SimMember:
    """One simulated member: MLS context, GBP node, clients, SFrame sessions, connection."""

    def __init__(self, sim: "Simulator", name: str, member_id: int) -> None:
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
        head = data[:1]
        if head in (b"\xaa", b"\xab"):
            node = self.node
            if node is None or not self.in_group or node.state == NodeState.CLOSED:
                return  # not (yet / any more) a member: cannot read the group's frames
            sender = self.sim._sender_of(data)
            coord = self.sim.coordinator
            if coord is not None and sender == coord.member_id and hasattr(node, "note_coordinator_activity"):
                node.note_coordinator_activity(now)
            for ev in self.wire_in(data):
                self._event(ev)
        elif data[:4] == b"\x00\x01\x00\x03":
            if self.awaiting_welcome:
                self._welcome(data)
        elif data[:4] == b"\x00\x01\x00\x01":
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
        return ev.args

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

    def _event(self, ev: NodeEvent) -> None:
        kind = ev.kind
        epoch = self.node.epoch if self.node else 0
        if kind == "payload_received":
            st = int(ev.stream_type)
            sender = ev.stream_id // 100
            status, reason, what, detail = self._accept(st, ev.plaintext or b"", epoch, int(ev.codec or 0))
            if status != "new":
                raise SimulationError(f"{self.name}: {what} from {sender} was {status}: {reason}")
            if what == "audio":
                source, opus = detail
                suite = self.sim._sframe_expected.get((sender, source))
                detail = opus if suite is None else self.open_sframe(suite, opus)  # RFC 9605
            self.received.append(Received(self.name, what, sender, epoch, detail))
        elif kind == "control":
            self.received.append(Received(self.name, "control", ev.sender, epoch, ev.opcode))
            if ev.opcode_code == _OP.PREPARE_TRANSITION:
                try:
                    what = self.mls.process_message(self._control_args(ev))
                except GbpLabError:
                    if self.sim._removing is self:
                        return  # the removee may fail to follow its own removal (RFC 9420 §12.3)
                    raise
                if what != "commit":
                    raise SimulationError(f"{self.name}: PREPARE carried a {what}, not a commit")
                self._staged_tid = ev.transition_id
            elif ev.opcode_code == _OP.GROUP_STATE_DIGEST_REQUEST:
                self.digest_requests.append(ev.sender)
        elif kind == "epoch_advanced":
            self.mls.finalize_commit()
            if self.sim._removing is self or not getattr(self.mls, "is_active", True):
                self.in_group = False
            elif self.mls.epoch != self.node.epoch:
                raise SimulationError(f"{self.name}: node epoch {self.node.epoch} != MLS epoch "
                                      f"{self.mls.epoch} after EXECUTE")
        elif kind == "error":
            if self.sim._expect_error(ev):
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
        return self.sim._leaf_of(self)

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

    def _event(self, ev) -> None:
        super()._event(ev)
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


# --------------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------------
@dataclass
class SimResult:
    """What a run produced: the tap's events, the group's key log and the members' view."""

    script: Script
    seed: int
    group_id: bytes
    tap_events: List[TapEvent]
    keylog: KeyLog
    members: Dict[str, SimMember]
    frames_sent: int  #: records the members sent (each is then fanned out by the relay)
    log: List[str] = field(default_factory=list)  #: what happened, with virtual times
    sent: List[Tuple[str, str, Any]] = field(default_factory=list)  #: (member, kind, detail)
    virtual_times: List[float] = field(default_factory=list)  #: virtual time of each tap event

    def pcap_events(self, *, canonical_ports: bool = True, timestamps: str = "wall") -> List[TapEvent]:
        """The tap events to write: ports made canonical (relay ``127.0.0.1:7878``, client of
        connection *n* ``127.0.0.1:40000+n``) and/or times replaced by the virtual clock's."""
        if timestamps not in ("wall", "virtual"):
            raise UsageError("timestamps is 'wall' or 'virtual'", vid="SIM-TIMESTAMPS")
        out = []
        for i, ev in enumerate(self.tap_events):
            if canonical_ports and ev.kind is TapKind.OPEN:
                ev = replace(ev, client=("127.0.0.1", CANONICAL_CLIENT_BASE + ev.conn),
                             server=CANONICAL_SERVER)
            if timestamps == "virtual":
                ev = replace(ev, time=self.virtual_times[i])
            out.append(ev)
        return out

    def write(self, out_dir, *, canonical_ports: bool = True, timestamps: str = "wall") -> Tuple[str, str]:
        """Write ``capture.pcap`` and ``keys.log`` into *out_dir*; returns their paths."""
        os.makedirs(out_dir, exist_ok=True)
        pcap = os.path.join(out_dir, "capture.pcap")
        keys = os.path.join(out_dir, "keys.log")
        write_pcap(self.pcap_events(canonical_ports=canonical_ports, timestamps=timestamps), pcap)
        with open(keys, "w", encoding="utf-8") as f:
            f.write(f"# gbp-lab simulate {self.script.name} --seed {self.seed}\n")
            f.write(self.keylog.dump())
        return pcap, keys

    def texts(self) -> List[str]:
        """Every text the script sent, in order."""
        return [d for _m, k, d in self.sent if k == "text"]

    @property
    def errors(self) -> Dict[str, List[NodeEvent]]:
        """Unexpected node errors per member (should be empty)."""
        return {n: m.errors for n, m in self.members.items() if m.errors}


# --------------------------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------------------------
class Simulator:
    """Run a :class:`~gbp_lab.sim.script.Script` (see the module docstring)::

        result = Simulator("demo", seed=1).run()
        result.write("out/")
    """

    def __init__(self, script, seed: int = 0, *, host: str = "127.0.0.1",
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.script: Script = load_script(script, seed=seed)
        self.seed = int(seed)
        self.host = host
        # reference members check KeyPackage/leaf lifetimes against the real time, so a mixed
        # run starts its virtual clock at the current second instead of the fixed base
        mixed = any(getattr(st, "impl", "core") != "core" for st in self.script.steps)
        self.clock = VirtualClock(float(int(wall_clock())) if mixed else EPOCH_BASE)
        self.wall_clock = wall_clock
        self.members: Dict[str, SimMember] = {}
        self.by_id: Dict[int, SimMember] = {}
        self.coordinator: Optional[SimMember] = None
        self.group_id = b""
        self.relay: Optional[RelayThread] = None
        self.tap: Optional[Tap] = None
        self._virtual_times: List[float] = []
        self._records = 0
        self._conns = 0
        self._closes = 0
        self._removing: Optional[SimMember] = None
        self._expected_codes: Counter = Counter()
        self._sframe_expected: Dict[Tuple[int, int], int] = {}
        self.log: List[str] = []
        self.sent: List[Tuple[str, str, Any]] = []

    # -- helpers ----------------------------------------------------------------------------
    def _tap_clock(self) -> float:
        self._virtual_times.append(self.clock.seconds())
        return self.wall_clock()

    @staticmethod
    def _sender_of(wire: bytes) -> Optional[int]:
        try:
            return decode_frame(wire).stream_id // 100
        except GbpLabError:
            return None

    def _expect_error(self, ev: NodeEvent) -> bool:
        """Errors a step provokes on purpose (COORDINATOR_GONE during a failover)."""
        return self._expected_codes[ev.code] > 0

    def _note(self, text: str) -> None:
        self.log.append(f"t={self.clock.now_ms}ms {text}")

    def _member(self, name: str, *, in_group: bool = True) -> SimMember:
        m = self.members.get(name)
        if m is None:
            raise ScriptError(f"unknown member {name!r}", vid="SIM-SCRIPT-MEMBER")
        if in_group and not m.in_group:
            raise ScriptError(f"{name} is not in the group", vid="SIM-SCRIPT-MEMBER")
        return m

    def _new_member(self, name: str, member_id: Optional[int], impl: str) -> SimMember:
        cls = SimMember
        if impl == "reference":
            try:
                import gbp_stack  # noqa: F401
            except ImportError:
                raise ScriptError("impl: reference needs the gbp_stack wheel",
                                  vid="SIM-SCRIPT-IMPL") from None
            cls = RefMember
        if name in self.members:
            raise ScriptError(f"member {name!r} exists already", vid="SIM-SCRIPT-MEMBER")
        mid = member_id if member_id is not None else (max(self.by_id) + 1 if self.by_id else 1)
        if mid in self.by_id or not 1 <= mid <= 42_949_671:
            raise ScriptError(f"member id {mid} is taken or out of range", vid="SIM-SCRIPT-MEMBER")
        m = cls(self, name, mid)
        self.members[name] = m
        self.by_id[mid] = m
        return m

    def _leaf_of(self, m: SimMember) -> int:
        """*m*'s leaf index in the coordinator's ratchet tree (by credential identity)."""
        c = self.coordinator or next(x for x in self.members.values() if x.impl == "core" and x.in_group)
        ident = m.name.encode("utf-8")
        for mem in c.mls.members:
            if mem.identity == ident:
                return mem.leaf_index
        raise SimulationError(f"{m.name} is not in {c.name}'s tree")

    def _wait(self, cond: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + _WAIT
        while not cond():
            if time.monotonic() > deadline:
                raise SimulationError(f"timed out waiting for {what}")
            time.sleep(0.0002)

    def _connect(self, m: SimMember) -> None:
        assert self.relay is not None and self.tap is not None
        m.conn = RelayClient(self.relay.host, self.relay.port, timeout=_WAIT)
        self._conns += 1
        m.conn_id = self._conns
        self._wait(lambda: self.relay.stats["connections"] >= self._conns, "the relay to accept")

    def _disconnect(self, m: SimMember) -> None:
        assert self.tap is not None
        if m.conn is None:
            return
        conn_id = m.conn_id
        m.conn.close()
        m.conn = None
        self._wait(lambda: any(e.kind is TapKind.CLOSE and e.conn == conn_id for e in list(self.tap.events)),
                   "the relay to see the close")

    def _connected(self) -> List[SimMember]:
        return sorted((m for m in self.members.values() if m.conn is not None), key=lambda m: m.member_id)

    def _send(self, sender: SimMember, record: bytes, what: str = "") -> None:
        """Send one record through the relay and let every connected receiver process it."""
        assert sender.conn is not None and self.relay is not None
        receivers = [m for m in self._connected() if m is not sender]
        sender.conn.queue(record)
        self._records += 1
        want = self._records
        ok = pump([m.conn for m in self._connected()],  # type: ignore[misc]
                  lambda: not sender.conn.outbuf and all(r.conn.inbox for r in receivers), _WAIT)
        if not ok:
            raise SimulationError(f"record {want} ({what}) from {sender.name} was not delivered")
        self._wait(lambda: self.relay.stats["records_in"] >= want, "the relay to accept a record")
        for r in receivers:
            d = r.conn.inbox.popleft()  # type: ignore[union-attr]
            if d.data != record:
                raise SimulationError(f"{r.name} received another record than {sender.name} sent")
            if r.conn.inbox:  # type: ignore[union-attr]
                raise SimulationError(f"{r.name} received more than one record")
            r.on_record(d.data)
        self.clock.advance(1)

    def _send_frame(self, sender: SimMember, frame, what: str) -> None:
        self._send(sender, frame.wire, what)

    # -- transitions ------------------------------------------------------------------------
    def _participants(self, exclude: Tuple[SimMember, ...] = ()) -> List[SimMember]:
        out = []
        for m in sorted(self.members.values(), key=lambda m: m.member_id):
            if not m.in_group or m is self.coordinator or m in exclude or m.dead:
                continue
            if m.conn is None:
                raise ScriptError(f"{m.name} is disconnected: it would miss the transition "
                                  "(reconnect it first, or remove it)", vid="SIM-SCRIPT-ORDER")
            out.append(m)
        return out

    def _transition(self, make_commit: Callable[[MlsContext], Tuple[bytes, Optional[bytes]]],
                    label: str, *, removing: Optional[SimMember] = None,
                    joiner: Optional[SimMember] = None) -> None:
        """PREPARE(commit) → READY from every participant → EXECUTE (sealed under the old epoch)
        → everyone merges → Welcome (gbp-control-plane.md §5; reference lifecycle.rs)."""
        c = self.coordinator
        if c is None or c.conn is None:
            raise ScriptError("no live coordinator", vid="SIM-SCRIPT-ORDER")
        participants = self._participants(exclude=(removing,) if removing else ())
        commit, welcome = make_commit(c.mls)
        node = c.node
        assert node is not None
        tid = node.last_transition_id + 1
        self._removing = removing
        self._note(f"{c.name} PREPARE tid={tid} ({label})")
        self._send_frame(c, c.control(_OP.PREPARE_TRANSITION, tid, commit), "PREPARE")
        for p in participants:
            if not p.staged(tid):
                raise SimulationError(f"{p.name} did not stage the commit of tid {tid}")
            self._send_frame(p, p.control(_OP.READY_FOR_TRANSITION, tid), "READY")
        if not node.quorum_reached([p.member_id for p in participants]) and participants:
            raise SimulationError(f"coordinator {c.name} is missing READY for tid {tid}")
        # EXECUTE is sealed under the old epoch (reference-map §6), then the coordinator merges
        self._send_frame(c, c.control(_OP.EXECUTE_TRANSITION, tid), "EXECUTE")
        c.mls.finalize_commit()
        node.apply_transition(tid)
        for ev in node.drain_events():
            c._event(ev)
        for p in participants:
            if p.node.epoch != node.epoch or p.epoch != c.mls.epoch:
                raise SimulationError(f"{p.name} is at node epoch {p.node.epoch} / MLS epoch "
                                      f"{p.mls.epoch}, coordinator at {node.epoch} / {c.mls.epoch}")
        if welcome is not None and joiner is not None:
            joiner.awaiting_welcome = True
            self._send(c, welcome, "Welcome")
            if not joiner.in_group or joiner.epoch != c.mls.epoch:
                raise SimulationError(f"{joiner.name} did not join with the Welcome")
        self._removing = None
        self._note(f"epoch {node.epoch} ({label})")

    # -- steps ------------------------------------------------------------------------------
    def _do_create(self, s: Create) -> None:
        if s.impl != "core":
            raise ScriptError("the creator (coordinator) must be a core member", vid="SIM-SCRIPT-IMPL")
        m = self._new_member(s.member, s.id, s.impl)
        self._connect(m)
        self.group_id = m.mls.group_id
        node = GroupNode(m.member_id, self.group_id)
        node.bootstrap_as_creator(m.mls.epoch)
        node.drain_events()
        m.node = node
        m.in_group = True
        self.coordinator = m
        self._note(f"{m.name} creates group {self.group_id.hex()}")
        self._send_frame(m, node.claim_coordinator(m.mls, 0, now=self.clock.now_ms), "claim")
        node.drain_events()

    def _do_join(self, s: Join) -> None:
        m = self._new_member(s.member, s.id, s.impl)
        self._connect(m)
        c = self.coordinator
        if c is None:
            raise ScriptError("join before create", vid="SIM-SCRIPT-ORDER")
        self._note(f"{m.name} sends its KeyPackage")
        self._send(m, m.mls.export_key_package(), "KeyPackage")
        if not c.key_packages:
            raise SimulationError(f"coordinator {c.name} did not receive {m.name}'s KeyPackage")
        kp = c.key_packages.pop()
        self._transition(lambda mls: mls.invite_full(kp), f"add {m.name}", joiner=m)
        if s.announce:
            self._signal(m, SignalType.JOIN, b"", 0, 0)

    def _remove(self, target: SimMember, label: str) -> None:
        c = self.coordinator
        if target is c:
            raise ScriptError("the coordinator cannot remove itself (fail_coordinator first)",
                              vid="SIM-SCRIPT-ORDER")
        leaf = self._leaf_of(target)
        self._transition(lambda mls: (mls.remove_member(leaf), None), label, removing=target)
        target.in_group = False
        if target.node is not None:
            target.node.close()
        self._disconnect(target)

    def _do_leave(self, s: Leave) -> None:
        m = self._member(s.member)
        if m is self.coordinator:
            raise ScriptError("the coordinator cannot leave (fail_coordinator or remove it after a "
                              "failover)", vid="SIM-SCRIPT-ORDER")
        self._signal(m, SignalType.LEAVE, b"", 0, 0)
        self._remove(m, f"{m.name} leaves")

    def _do_remove(self, s: Remove) -> None:
        m = self._member(s.member)
        self._remove(m, f"remove {m.name}")

    def _do_update(self, s: Update) -> None:
        if s.member is not None and self._member(s.member) is not self.coordinator:
            raise ScriptError(f"{s.member} is not the coordinator", vid="SIM-SCRIPT-ORDER")
        self._transition(lambda mls: (mls.self_update(), None), "key update")

    def _do_text(self, s: Text) -> None:
        m = self._sender(s.member)
        for k in range(s.repeat):
            text = s.text if k == 0 else f"{s.text} #{k + 1}"
            self.sent.append((m.name, "text", text))
            self._send_frame(m, m.text_frame(text, s.codec), "text")

    def _do_audio(self, s: Audio) -> None:
        m = self._sender(s.member)
        source = s.source if s.source is not None else m.member_id * 10 + 1
        enc = None
        if s.sframe:
            self._sframe_expected[(m.member_id, source)] = s.suite
        else:
            self._sframe_expected.pop((m.member_id, source), None)
        for k in range(s.frames):
            opus = bytes([0xF8]) + m.rng(max(0, s.size - 1))  # a TOC byte + pseudo-audio
            if s.sframe:
                if enc is None:
                    enc = m.encryptor(s.suite)
                body = enc.encrypt(opus)
            else:
                body = opus
            self.sent.append((m.name, "audio", opus))
            ts = (self.clock.now_ms * 48) & 0xFFFFFFFF  # 48 kHz RTP clock
            self._send_frame(m, m.audio_frame(source, ts, body, s.codec), "audio")
            if k + 1 < s.frames:
                self.clock.advance(19)  # 20 ms per frame (1 ms is added per record)

    def _resolve_arg(self, v: Any) -> int:
        if isinstance(v, str):
            if v in self.members:
                return self.members[v].member_id
            raise ScriptError(f"unknown member {v!r} in signal args", vid="SIM-SCRIPT-MEMBER")
        return int(v)

    def _signal(self, m: SimMember, sig: SignalType, args: bytes, role: int, codec: int) -> None:
        self.sent.append((m.name, "signal", sig.name))
        self._send_frame(m, m.signal_frame(sig, role, args, codec), f"signal {sig.name}")

    def _do_signal(self, s: Signal) -> None:
        m = self._sender(s.member)
        args = build_args(s.signal, **{k: self._resolve_arg(v) for k, v in s.args})
        self._signal(m, s.signal, args, s.role, s.codec)

    def _do_fail_coordinator(self, s: FailCoordinator) -> None:
        c = self.coordinator
        if c is None:
            raise ScriptError("no coordinator to fail", vid="SIM-SCRIPT-ORDER")
        self._note(f"coordinator {c.name} fails")
        c.dead = True
        self._disconnect(c)
        self.coordinator = None
        grace = TIMEOUTS_MS["T_coordinator_grace"]
        self.clock.advance(grace + 1)
        self._expected_codes[int(ErrorCode.COORDINATOR_GONE)] += 1
        try:
            election = []
            for m in self._live():
                for ev in m.node.check_timeouts(self.clock.now_ms):
                    if ev.kind == "coordinator_election_needed":
                        election.append(m)
                    else:
                        m._event(ev)
        finally:
            self._expected_codes[int(ErrorCode.COORDINATOR_GONE)] -= 1
        if not election:
            raise SimulationError("no member noticed the coordinator's silence")
        new = min(election, key=lambda m: m.member_id)
        self.coordinator = new
        self._note(f"{new.name} claims the coordinator role")
        self._send_frame(new, new.node.claim_coordinator(new.mls, 0, now=self.clock.now_ms), "claim")
        new.node.drain_events()

    def _do_disconnect(self, s: Disconnect) -> None:
        m = self._member(s.member)
        if m is self.coordinator:
            raise ScriptError("disconnecting the coordinator: use fail_coordinator", vid="SIM-SCRIPT-ORDER")
        self._note(f"{m.name} disconnects")
        self._disconnect(m)

    def _do_reconnect(self, s: Reconnect) -> None:
        m = self._member(s.member)
        if m.conn is not None:
            raise ScriptError(f"{m.name} is connected", vid="SIM-SCRIPT-ORDER")
        if m.impl != "core":
            raise ScriptError("a reference member cannot resync (no RESYNCING API in the binding)",
                              vid="SIM-SCRIPT-IMPL")
        c = self.coordinator
        if c is None or c.conn is None:
            raise ScriptError("no live coordinator to resync with", vid="SIM-SCRIPT-ORDER")
        if m.node.epoch != c.node.epoch:
            raise ScriptError(f"{m.name} missed a transition while away", vid="SIM-SCRIPT-ORDER")
        self._connect(m)
        m.node.trigger_resync()
        m.node.drain_events()
        node = m.node
        req = cbor2.dumps({"since_tid": node.last_transition_id, "since_epoch": node.epoch})
        self._note(f"{m.name} reconnects and asks for the group state")
        self._send_frame(m, m.control(_OP.GROUP_STATE_DIGEST_REQUEST, node.last_transition_id, req),
                         "DIGEST_REQUEST")
        if m.member_id not in c.digest_requests:
            raise SimulationError("the coordinator did not get the digest request")
        c.digest_requests.remove(m.member_id)
        cn = c.node
        resp = cbor2.dumps({"epoch": cn.epoch, "last_transition_id": cn.last_transition_id,
                            "member_set_root_hash": c.mls.tree.tree_hash(),
                            "control_log_tail": [], "coordinator_id": c.member_id})
        self._send_frame(c, c.control(_OP.GROUP_STATE_DIGEST_RESPONSE, cn.last_transition_id, resp),
                         "DIGEST_RESPONSE")
        if node.state != NodeState.ACTIVE:
            raise SimulationError(f"{m.name} did not resync (state {node.state.name})")

    def _do_advance(self, s: Advance) -> None:
        """Advance in chunks of at most half ``T_coordinator_grace``; a live coordinator sends a
        keep-alive claim after each chunk when the advance is longer than one chunk, so that
        quiet periods do not look like a coordinator failure."""
        left = s.ms
        chunk = TIMEOUTS_MS["T_coordinator_grace"] // 2
        while left > 0:
            step = min(left, chunk)
            left -= step
            self.clock.advance(step)
            c = self.coordinator
            if s.ms > chunk and c is not None and c.conn is not None:
                self._send_frame(c, c.node.claim_coordinator(c.mls, 0, now=self.clock.now_ms),
                                 "keep-alive claim")
                c.node.drain_events()
            for m in self._live():
                if m is c:
                    m.node.note_coordinator_activity(self.clock.now_ms)
                for ev in m.node.check_timeouts(self.clock.now_ms):
                    m._event(ev)

    def _live(self) -> List[SimMember]:
        """Connected core members in the group (reference nodes have no timer API)."""
        return [m for m in sorted(self.members.values(), key=lambda m: m.member_id)
                if m.in_group and not m.dead and m.conn is not None and m.node is not None
                and m.impl == "core"]

    def _sender(self, name: str) -> SimMember:
        m = self._member(name)
        if m.conn is None or m.dead:
            raise ScriptError(f"{name} is not connected", vid="SIM-SCRIPT-ORDER")
        return m

    # -- run --------------------------------------------------------------------------------
    def run(self) -> SimResult:
        """Run the whole script; the relay is stopped afterwards."""
        self.tap = Tap(clock=self._tap_clock)
        self.relay = RelayThread(self.host, 0, tap=self.tap)
        self.relay.start()
        try:
            for i, step in enumerate(self.script.steps):
                if step.at_ms:
                    self.clock.advance(step.at_ms)
                handler = getattr(self, f"_do_{step.kind}")
                try:
                    handler(step)
                except ScriptError as exc:
                    raise ScriptError(f"step {i} ({step.kind}): {exc.message}", vid=exc.vid,
                                      where=i) from None
            for m in self._connected():
                self._disconnect(m)
        finally:
            for m in self.members.values():
                if m.conn is not None:
                    m.conn.close()
                if isinstance(m, RefMember):
                    m.close()
            self.relay.stop()
        keylog = KeyLog()
        for m in sorted(self.members.values(), key=lambda m: m.member_id):
            for e in m.keylog:
                if e.group_id == self.group_id:
                    keylog.add(e.label, e.group_id, e.epoch, e.secret)
        if self.group_id:
            keylog.set_suite(self.group_id, self.coordinator.mls.ciphersuite if self.coordinator
                             else 1)
        events = list(self.tap.events)
        return SimResult(self.script, self.seed, self.group_id, events, keylog, dict(self.members),
                         self._records, list(self.log), list(self.sent),
                         virtual_times=list(self._virtual_times[:len(events)]))


def simulate(script, out_dir=None, seed: int = 0, **write_kw) -> SimResult:
    """Run *script* (name, path, text or :class:`Script`) and, if *out_dir* is given, write
    ``capture.pcap`` + ``keys.log`` there."""
    res = Simulator(script, seed).run()
    if out_dir is not None:
        res.write(out_dir, **write_kw)
    return res
