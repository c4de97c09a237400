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

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Tuple

from gbp_lab.core.cbor import encode_map
from gbp_lab.core.errors import UsageError
from gbp_lab.core.gbp.events import NodeEvent
from gbp_lab.core.gbp.node import GroupNode
from gbp_lab.core.gbp.registry import TIMEOUTS_MS, ControlOpcode, ErrorCode, NodeState
from gbp_lab.core.gsp.args import build_args
from gbp_lab.core.gsp.signal import SignalType
from gbp_lab.core.keylog import KeyLog, split_tls_lines
from gbp_lab.core.mls.context import MlsContext

from .client import RelayClient, pump
from .clock import EPOCH_BASE, DeterministicRng, VirtualClock
from .members import Received, RefMember, SimMember, SimulationError
from .quic import QuicRelay, QuicRelayClient, TlsSecretsLog, check_layout, check_transport
from .quic import pump as quic_pump
from .relay import RelayThread
from .script import (Advance, Audio, Create, Disconnect, FailCoordinator, Join, Leave, Reconnect,
                     Remove, Script, ScriptError, Signal, Text, Update, load_script)
from .tap import Tap, TapEvent, TapKind, write_pcap, write_udp_pcapng

__all__ = ["Simulator", "SimResult", "SimulationError", "VirtualClock", "DeterministicRng",
           "SimMember", "RefMember", "Received", "simulate", "EPOCH_BASE", "CANONICAL_SERVER",
           "CANONICAL_CLIENT_BASE", "digest_request_args", "digest_response_args"]

log = logging.getLogger("gbp_lab.sim.simulator")

CANONICAL_SERVER = ("127.0.0.1", 7878)
CANONICAL_CLIENT_BASE = 40000
_WAIT = 15.0  # seconds a lock-step wait may take before the run is declared stuck
_OP = ControlOpcode


def digest_request_args(since_tid: int, since_epoch: int) -> bytes:
    """The args of a GROUP_STATE_DIGEST_REQUEST (gbp-control-plane.md §6, resync): a CBOR map
    ``{"since_tid", "since_epoch"}`` written by the core codec (:func:`gbp_lab.core.cbor.encode_map`,
    shortest-form heads, definite lengths, keys in this order)."""
    return encode_map((("since_tid", int(since_tid)), ("since_epoch", int(since_epoch))))


def digest_response_args(epoch: int, last_transition_id: int, member_set_root_hash: bytes,
                         coordinator_id: int, control_log_tail: Tuple[Any, ...] = ()) -> bytes:
    """The args of a GROUP_STATE_DIGEST_RESPONSE (gbp-control-plane.md §6): the coordinator's
    epoch, last transition id, the ratchet tree hash (RFC 9420 §7.8), the control log tail and
    its member id, as one CBOR map written by the core codec."""
    return encode_map((("epoch", int(epoch)), ("last_transition_id", int(last_transition_id)),
                       ("member_set_root_hash", bytes(member_set_root_hash)),
                       ("control_log_tail", list(control_log_tail)),
                       ("coordinator_id", int(coordinator_id))))


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
    keylog_path: Optional[str] = None  #: where the run appended its key log live, if it did

    def pcap_events(self, *, canonical_ports: bool = True, timestamps: str = "wall") -> List[TapEvent]:
        """The tap events to write: ports made canonical (relay ``127.0.0.1:7878``, client of
        connection *n* ``127.0.0.1:40000+n``) and/or times replaced by the virtual clock's."""
        if timestamps not in ("wall", "virtual"):
            raise UsageError("timestamps is 'wall' or 'virtual'", vid="SIM-TIMESTAMPS")
        out = []
        peers: Dict[Tuple[str, int], Tuple[str, int]] = {}  # QUIC: client address → canonical
        for i, ev in enumerate(self.tap_events):
            if canonical_ports and ev.kind is TapKind.OPEN:
                ev = replace(ev, client=("127.0.0.1", CANONICAL_CLIENT_BASE + ev.conn),
                             server=CANONICAL_SERVER)
            elif canonical_ports and ev.kind is TapKind.DATAGRAM:
                a, b = (ev.client, ev.server) if ev.from_client else (ev.server, ev.client)
                peer = peers.setdefault(a, ("127.0.0.1", CANONICAL_CLIENT_BASE + len(peers) + 1))  # type: ignore[arg-type]
                ev = replace(ev, client=peer if ev.from_client else CANONICAL_SERVER,
                             server=CANONICAL_SERVER if ev.from_client else peer)
            if timestamps == "virtual":
                ev = replace(ev, time=self.virtual_times[i])
            out.append(ev)
        return out

    @property
    def over_quic(self) -> bool:
        """True when the tap saw UDP datagrams (a ``transport="quic"`` run)."""
        return any(e.kind is TapKind.DATAGRAM for e in self.tap_events)

    def write(self, out_dir, *, canonical_ports: bool = True, timestamps: str = "wall",
              embed_secrets: bool = False) -> Tuple[str, str]:
        """Write the capture and ``keys.log`` into *out_dir*; returns their paths.

        Over TCP the capture is ``capture.pcap`` (the relay's TCP streams). Over QUIC it is
        ``capture.pcapng``: every UDP datagram the relay's socket received or sent, as it was
        (:func:`~gbp_lab.sim.tap.write_udp_pcapng`); with *embed_secrets* the run's TLS secrets
        (standard TLS key-log block) and MLS secrets (GBPK block) go in first, so that
        ``read_capture(capture.pcapng)`` decrypts it with no key log (the file is then 0600)."""
        os.makedirs(out_dir, exist_ok=True)
        keys = os.path.join(out_dir, "keys.log")
        events = self.pcap_events(canonical_ports=canonical_ports, timestamps=timestamps)
        if self.over_quic:
            pcap = os.path.join(out_dir, "capture.pcapng")
            mls, tls = split_tls_lines(self.keylog.dump()) if embed_secrets else ("", "")
            write_udp_pcapng(events, pcap, keylog=mls or None, tls_keylog=tls or None)
        else:
            if embed_secrets:
                raise UsageError("embedded secrets need a QUIC run (a TCP run writes classic pcap: "
                                 "use gbp-lab inject-secrets)", vid="SIM-EMBED")
            pcap = os.path.join(out_dir, "capture.pcap")
            write_pcap(events, pcap)
        if self.keylog_path is not None and os.path.abspath(keys) == \
                os.path.abspath(self.keylog_path):
            # written live during the run: complete it, never rewrite it (a reader follows it)
            have = set(open(keys, encoding="utf-8").read().splitlines())
            missing = [ln for ln in self.keylog.lines() if ln not in have]
            if missing:
                append_private(keys, "".join(ln + "\n" for ln in missing))
            return pcap, keys
        text = f"# gbp-lab simulate {self.script.name} --seed {self.seed}\n" + self.keylog.dump()
        fd = os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # key logs are secrets: owner only, even if the file existed
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
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
    """Run a :class:`~gbp_lab.sim.script.Script` (see the module docstring).

    Example::

        result = Simulator("demo", seed=1).run()
        result.write("out/")
    """

    def __init__(self, script, seed: int = 0, *, host: str = "127.0.0.1",
                 wall_clock: Callable[[], float] = time.time, keylog_path=None,
                 pace: float = 0.0, transport: str = "tcp", quic_layout: str = "reference") -> None:
        #: ``transport``: ``tcp``, or ``quic`` (:mod:`gbp_lab.sim.quic`: one QUIC connection and
        #: stream per member; the members' TLS secrets join the key log, SSLKEYLOGFILE lines)
        self.transport = check_transport(transport)
        self.quic_layout = check_layout(quic_layout)  #: ``reference`` or ``spec`` (quic.py)
        self.tls_log: Optional[TlsSecretsLog] = None
        if pace < 0:
            raise UsageError("pace is a number of seconds >= 0", vid="SIM-PACE")
        #: ``keylog_path``: the group's key log is appended there (created 0600) as soon as an
        #: epoch's secrets exist, before any frame of that epoch is sent (live captures follow it)
        self.keylog_path = None if keylog_path is None else os.fspath(keylog_path)
        self._keys_written: set = set()
        self._keys_size = (0, 0)
        #: ``pace``: real seconds between two steps (a live demo can be watched)
        self.pace = float(pace)
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
        self.removing: Optional[SimMember] = None  #: the member being removed right now
        self._expected_codes: Counter = Counter()
        self.sframe_expected: Dict[Tuple[int, int], int] = {}  #: (sender, source) -> SFrame suite
        self.log: List[str] = []
        self.sent: List[Tuple[str, str, Any]] = []

    # -- helpers ----------------------------------------------------------------------------
    def _tap_clock(self) -> float:
        self._virtual_times.append(self.clock.seconds())
        return self.wall_clock()

    def expect_error(self, ev: NodeEvent) -> bool:
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

    def leaf_of(self, m: SimMember) -> int:
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
        relay = self.relay
        assert relay is not None and self.tap is not None
        if self.transport == "quic":
            m.conn = QuicRelayClient(relay.host, relay.port, timeout=_WAIT, secrets_log=self.tls_log,
                                     ca_cert=getattr(relay.relay, "certificate_pem", None),
                                     layout=self.quic_layout)
        else:
            m.conn = RelayClient(relay.host, relay.port, timeout=_WAIT)
        self._conns += 1
        m.conn_id = self._conns
        self._wait(lambda: relay.stats["connections"] >= self._conns, "the relay to accept")

    def _disconnect(self, m: SimMember) -> None:
        tap = self.tap
        assert tap is not None
        if m.conn is None:
            return
        conn_id = m.conn_id
        m.conn.close()
        m.conn = None
        self._wait(lambda: any(e.kind is TapKind.CLOSE and e.conn == conn_id for e in list(tap.events)),
                   "the relay to see the close")

    def _connected(self) -> List[SimMember]:
        return sorted((m for m in self.members.values() if m.conn is not None), key=lambda m: m.member_id)

    def group_keylog(self) -> KeyLog:
        """The group's secrets so far, from every member's key log (member-id order)."""
        keylog = KeyLog()
        for m in sorted(self.members.values(), key=lambda m: m.member_id):
            for e in m.keylog:
                if e.group_id == self.group_id:
                    keylog.add(e.label, e.group_id, e.epoch, e.secret)
        if self.group_id:
            keylog.set_suite(self.group_id, self.coordinator.mls.ciphersuite if self.coordinator
                             else 1)
        return keylog

    def _flush_keys(self) -> None:
        """Append the key-log lines not yet in :attr:`keylog_path` (MLS_KEYLOGFILE style)."""
        if self.keylog_path is None or not self.group_id:
            return
        size = (len(self.members), sum(len(m.keylog) for m in self.members.values()))
        if size == self._keys_size:
            return
        self._keys_size = size
        new = [ln for ln in self.group_keylog().lines() if ln not in self._keys_written]
        if new:
            append_private(self.keylog_path, "".join(ln + "\n" for ln in new))
            self._keys_written.update(new)

    def _send(self, sender: SimMember, record: bytes, what: str = "") -> None:
        """Send one record through the relay and let every connected receiver process it."""
        self._flush_keys()  # an epoch's secrets reach the key log before its first frame
        out, relay = sender.conn, self.relay
        assert out is not None and relay is not None
        receivers = [(m, m.conn) for m in self._connected() if m is not sender]
        out.queue(record)
        self._records += 1
        want = self._records
        conns = [c for c in (m.conn for m in self._connected()) if c is not None]
        move = quic_pump if self.transport == "quic" else pump
        ok = move(conns, lambda: not out.outbuf and all(c is not None and c.inbox for _, c in receivers),
                  _WAIT)
        if not ok:
            raise SimulationError(f"record {want} ({what}) from {sender.name} was not delivered")
        self._wait(lambda: relay.stats["records_in"] >= want, "the relay to accept a record")
        for r, rc in receivers:
            assert rc is not None  # _connected() lists members with a connection
            d = rc.inbox.popleft()
            if d.data != record:
                raise SimulationError(f"{r.name} received another record than {sender.name} sent")
            if rc.inbox:
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
        self.removing = removing
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
            c.on_event(ev)
        for p in participants:
            if p.node.epoch != node.epoch or p.epoch != c.mls.epoch:
                raise SimulationError(f"{p.name} is at node epoch {p.node.epoch} / MLS epoch "
                                      f"{p.mls.epoch}, coordinator at {node.epoch} / {c.mls.epoch}")
        if welcome is not None and joiner is not None:
            joiner.awaiting_welcome = True
            self._send(c, welcome, "Welcome")
            if not joiner.in_group or joiner.epoch != c.mls.epoch:
                raise SimulationError(f"{joiner.name} did not join with the Welcome")
        self.removing = None
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
        leaf = self.leaf_of(target)
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
            self.sframe_expected[(m.member_id, source)] = s.suite
        else:
            self.sframe_expected.pop((m.member_id, source), None)
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
                        m.on_event(ev)
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
        req = digest_request_args(node.last_transition_id, node.epoch)
        self._note(f"{m.name} reconnects and asks for the group state")
        self._send_frame(m, m.control(_OP.GROUP_STATE_DIGEST_REQUEST, node.last_transition_id, req),
                         "DIGEST_REQUEST")
        if m.member_id not in c.digest_requests:
            raise SimulationError("the coordinator did not get the digest request")
        c.digest_requests.remove(m.member_id)
        cn = c.node
        resp = digest_response_args(cn.epoch, cn.last_transition_id, c.mls.tree.tree_hash(),
                                    c.member_id)
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
                    m.on_event(ev)

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
        if self.transport == "quic":
            self.tls_log = TlsSecretsLog(self.keylog_path)
            self.relay = RelayThread(self.host, 0, tap=self.tap, relay_class=QuicRelay,
                                     layout=self.quic_layout)
        else:
            self.relay = RelayThread(self.host, 0, tap=self.tap)
        self.relay.start()
        if self.keylog_path is not None:
            append_private(self.keylog_path, f"# gbp-lab simulate {self.script.name} "
                                             f"--seed {self.seed} (live)\n")
        try:
            for i, step in enumerate(self.script.steps):
                if self.pace and i:
                    time.sleep(self.pace)
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
            self._flush_keys()
        finally:
            for m in self.members.values():
                if m.conn is not None:
                    m.conn.close()
                if isinstance(m, RefMember):
                    m.close()
            self.relay.stop()
        keylog = self.group_keylog()
        if self.tls_log is not None:
            keylog.extend_text(self.tls_log.text())  # the QUIC layer's TLS secrets
        events = list(self.tap.events)
        return SimResult(self.script, self.seed, self.group_id, events, keylog, dict(self.members),
                         self._records, list(self.log), list(self.sent),
                         virtual_times=list(self._virtual_times[:len(events)]),
                         keylog_path=self.keylog_path)


def append_private(path: str, text: str) -> None:
    """Append ``text`` to ``path``, created owner-only (0600): a key log is a secret."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def simulate(script, out_dir=None, seed: int = 0, **write_kw) -> SimResult:
    """Run *script* (name, path, text or :class:`Script`) and, if *out_dir* is given, write
    ``capture.pcap`` + ``keys.log`` there."""
    res = Simulator(script, seed).run()
    if out_dir is not None:
        res.write(out_dir, **write_kw)
    return res
