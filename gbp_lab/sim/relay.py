"""A Delivery Service (DS) relay for GBP over TCP (gbp-mls-binding.md §5; gbp_rfc.md §3).

Wire: every record on a connection is ``u32 little-endian length ‖ bytes`` (at most 1 MiB), exactly
as the reference's ``crates/gbp/transport`` writes it. Records are CBOR GBP frames or MLS
structures (KeyPackage, Welcome …, raw or in an ``MLSMessage`` envelope); the relay reads them
with :class:`~gbp_lab.core.gbp.framing.RecordReader` and names them with the core's record
classifier (:func:`~gbp_lab.core.gbp.classify.classify_record`, see :func:`classify_record`).

Forwarding rules (gbp-mls-binding.md §5)
----------------------------------------
* **Plain clients work unchanged.** A reference-style client just connects and writes records.
  The frame on the wire carries no target (the reference's ``OutboundFrame.target`` stays in the
  sender process), so every record of a plain client is **broadcast to every other connection**
  (rule 1: "to every Active member except the original sender"). The relay learns a plain
  client's member id from the ``sid`` of its first GBP frame (reference stream-id scheme,
  :func:`~gbp_lab.core.gbp.registry.sender_of`).
* **Unicast by target** and **Welcome to its joiner** (rule 2) need the target, so they use the
  optional DS extension below: a ``ROUTE`` record names the target member id (0 = broadcast).
  A target nobody has claimed is logged as ``unroutable`` and dropped (the connection stays).
* **Per-DS monotonic order** (rule 4): every accepted record gets the next value of one relay-wide
  counter ``ds_seq`` (1, 2, 3 …) in the order the single event loop accepts it, and is handed to
  every receiver's transport in that order, so each receiver sees a subsequence of one total order.
  The stamp is visible (a) in the relay log (``trace=True``: one ``record`` event per accepted
  record) and (b) on the wire for clients that opted in with ``HELLO`` (``DELIVER`` wrapping).
  Plain clients receive the original bytes, unwrapped.
* **Closed connections are noticed** (rule 3): a ``leave`` event (member id, reason) is logged and,
  to clients that asked for it (``HELLO`` flag ``notify``), a ``MEMBER_LEFT`` record is sent.

Faults cost only the faulty connection (``drop`` event with a reason and a stable ``vid``, then
``leave``); everyone else carries on:

=======================  ==================================================================
``GBP-RECORD-OVERSIZE``  a length prefix above ``max_record`` (the reference errors the
                         stream: it cannot be resynchronised)
``DS-GARBAGE``           a record that is neither a GBP frame, an MLS blob, nor a DS message
``DS-BAD-EXT-*``         a malformed DS extension record (or a DS-only type sent by a client)
``DS-IDLE``              nothing at all received for ``idle_timeout`` seconds (off unless
                         set; there is no mandatory hello: plain clients just connect and send;
                         a listen-only client keeps itself alive with any record, e.g. a
                         repeated ``HELLO``; a partial record counts as activity)
``DS-SLOW-RECORD``       one record still incomplete ``record_timeout`` seconds after its first
                         byte (off unless set): a client trickling a record byte by byte
                         (slowloris) keeps the idle timer alive but not this one
``DS-SLOW-READER``       more than ``max_queue`` records waiting for a reader that does not read
``DS-TOO-MANY-CONNS``    a connection beyond ``max_connections`` open at once: refused at once
                         (closed before it is read), so a flood of idle or half-open sockets
                         cannot exhaust the relay's memory or descriptors; members already
                         connected are not affected
=======================  ==================================================================

Slow readers are **disconnected, not back-pressured**: the relay is one fan-out point, and pausing
the senders for one slow receiver would stall the whole group (head-of-line blocking across
members). The outgoing path of a connection is the asyncio transport buffer up to its high-water
mark, then a per-connection queue of at most ``max_queue`` records; overflowing it aborts that
connection (RST) with ``DS-SLOW-READER``.

DS extension (optional, ours — not part of the reference)
---------------------------------------------------------
A record that starts with the magic ``b"GBDS"`` is a DS message (``HELLO``, ``ROUTE``,
``DELIVER``, ``MEMBER_LEFT``); its wire codec is :mod:`gbp_lab.sim.ds_codec`.

Notebook/test entry point: :class:`RelayThread` (the relay on its own event loop in a background
thread; a context manager with ``.port``, ``.events``, ``.wait_for``). :class:`Relay` is the
asyncio server underneath (``await relay.serve()``).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Callable, Dict, List, Optional, Tuple

from gbp_lab.core.errors import GbpLabError, OversizeError, UsageError
from gbp_lab.core.gbp import classify as core_classify
from gbp_lab.core.gbp.framing import MAX_RECORD, RecordReader, encode_record
from gbp_lab.core.gbp.registry import sender_of

from .ds_codec import (DS_MAGIC, Deliver, DsExtensionError, DsMessage, DsType, Hello, HelloFlags,
                       MemberLeft, Route, decode_ds_message, is_ds_message)

log = logging.getLogger("gbp_lab.sim.relay")

__all__ = [
    "DS_MAGIC", "DsType", "HelloFlags", "Hello", "Route", "Deliver", "MemberLeft", "DsMessage",
    "decode_ds_message", "is_ds_message", "RecordKind", "classify_record",
    "DsExtensionError",
    "RelayEvent", "Relay", "RelayThread", "DEFAULT_PORT",
]

DEFAULT_PORT = 7878


class RecordKind(IntEnum):
    """What a record carries, as far as the relay cares."""

    GARBAGE = 0  #: neither a GBP frame, an MLS structure nor a DS message
    FRAME = 1  #: a CBOR GbpFrame (strict decode)
    MLS = 2  #: an MLS structure: an MLSMessage envelope or a raw KeyPackage / Welcome / GroupInfo
    DS = 3  #: a DS extension message


def classify_record(record: bytes) -> Tuple[RecordKind, Optional[int]]:
    """``(kind, sender member id or None)`` of one record: a DS extension message when it starts
    with the DS magic (:mod:`gbp_lab.sim.ds_codec`), else what the core's record classifier
    decides by parsing (:func:`gbp_lab.core.gbp.classify.classify_record`) — a GBP frame, with
    its sender's member id (:func:`~gbp_lab.core.gbp.registry.sender_of` of the stream id), any
    MLS structure (RFC 9420 §6), or garbage.

    Forwarding policy on top of the classifier: a record the classifier cannot parse but that is
    MLS-shaped (:func:`~gbp_lab.core.gbp.classify.looks_like_mls`) is still ``MLS`` — the DS
    routes MLS, it does not validate it (gbp-mls-binding.md §5), so it forwards such a blob
    opaque instead of dropping its sender.
    """
    if is_ds_message(record):
        return RecordKind.DS, None
    rc = core_classify.classify_record(record)
    if rc.kind is core_classify.RecordKind.GBP_FRAME:
        return RecordKind.FRAME, sender_of(rc.value.stream_id)
    if rc.kind.is_mls or core_classify.looks_like_mls(record):
        return RecordKind.MLS, None
    return RecordKind.GARBAGE, None


@dataclass(frozen=True)
class RelayEvent:
    """One entry of the relay's structured log.

    kinds: ``listen`` · ``join`` (connection accepted) · ``member`` (member id learned: ``detail`` =
    "hello" or "frame") · ``record`` (``trace=True`` only: ``ds_seq``, ``size``, ``detail`` =
    "<n> receivers") · ``unroutable`` · ``drop`` (the relay closes a faulty connection: ``reason``,
    ``vid``) · ``leave`` (connection gone, ``reason``) · ``stop``.
    """

    time: float
    kind: str
    conn: Optional[int] = None
    peer: Optional[str] = None
    member: Optional[int] = None
    reason: Optional[str] = None
    vid: Optional[str] = None
    ds_seq: Optional[int] = None
    size: Optional[int] = None
    detail: Optional[str] = None


class _Conn(asyncio.Protocol):
    """One client connection (asyncio protocol; lives on the relay's loop)."""

    def __init__(self, relay: "Relay") -> None:
        self.relay = relay
        self.id = 0
        self.peer = "?"
        self.transport: Optional[asyncio.Transport] = None
        self.reader = RecordReader(max_record=relay.max_record)
        self.member: Optional[int] = None
        self.flags = 0
        self.last_rx = 0.0
        self.record_since: Optional[float] = None  # loop time of the first byte of a partial record
        self.paused = False
        self.backlog: List[bytes] = []
        self.out: List[bytes] = []  # records collected during one data_received, written once
        self.closing = False
        self.aborted = False
        self.leave_reason: Optional[str] = None

    # -- asyncio callbacks ---------------------------------------------------------------------
    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.relay._opened(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.relay._received(self, data)

    def eof_received(self) -> bool:
        if not self.closing:
            tail = [t for t in self.reader.close() if isinstance(t, GbpLabError)]
            self.leave_reason = (f"closed by peer inside a record ({tail[0].message})" if tail
                                 else "closed by peer")
        return False

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.relay._lost(self, exc)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.backlog and not self.closing:
            data = b"".join(self.backlog)
            self.backlog.clear()
            self._write(data)

    # -- sending -------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        tap = self.relay.tap
        if tap is not None:
            tap.data(self.id, False, data)
        self.transport.write(data)  # type: ignore[union-attr]
        self.relay.stats["bytes_out"] += len(data)

    def flush(self) -> None:
        """Hand the records collected in ``out`` to the transport (or queue them if paused)."""
        out = self.out
        if not out or self.closing:
            out.clear()
            return
        if self.paused:
            self.backlog.extend(out)
            out.clear()
            if len(self.backlog) > self.relay.max_queue:
                self.relay.drop(self, f"slow reader: more than {self.relay.max_queue} records "
                                      "queued", "DS-SLOW-READER", abort=True)
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._write(data)


class Relay:
    """The asyncio DS relay. Use :class:`RelayThread` from synchronous code (notebooks, tests).

    ``port=0`` picks a free port (see :attr:`port` after :meth:`start`). ``max_queue``: records
    queued per connection beyond the transport buffer before that reader is dropped.
    ``idle_timeout``: seconds without any received byte before a connection is dropped (default
    None: never — notebook users pause; set it to protect a long-running relay from dead peers).
    ``record_timeout``: seconds one record may take from its first byte to its last before the
    connection is dropped (``DS-SLOW-RECORD``; default None: never). ``max_connections``: open
    connections served at once; one more is refused (``DS-TOO-MANY-CONNS``). ``trace``: log one ``record`` event per accepted record. ``tap``: a
    :class:`gbp_lab.sim.tap.Tap` recording every byte that crosses the sockets.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, max_queue: int = 10_000,
                 idle_timeout: Optional[float] = None, record_timeout: Optional[float] = None,
                 max_record: int = MAX_RECORD, max_connections: int = 1024,
                 write_buffer_high: int = 1 << 20, trace: bool = False, tap=None,
                 clock: Callable[[], float] = time.time) -> None:
        if max_queue < 1:
            raise UsageError("max_queue must be at least 1", vid="DS-USAGE")
        if idle_timeout is not None and idle_timeout <= 0:
            raise UsageError("idle_timeout must be positive or None", vid="DS-USAGE")
        if record_timeout is not None and record_timeout <= 0:
            raise UsageError("record_timeout must be positive or None", vid="DS-USAGE")
        if max_connections < 1:
            raise UsageError("max_connections must be at least 1", vid="DS-USAGE")
        self.host, self.port = host, port
        self.max_queue = max_queue
        self.idle_timeout = idle_timeout
        self.record_timeout = record_timeout
        self.max_record = max_record
        self.max_connections = max_connections
        self.write_buffer_high = write_buffer_high
        self.trace = trace
        self.tap = tap
        self.clock = clock
        self.events: List[RelayEvent] = []
        self.listeners: List[Callable[[RelayEvent], None]] = []
        self.stats: Dict[str, int] = {"connections": 0, "records_in": 0, "deliveries": 0,
                                      "bytes_in": 0, "bytes_out": 0, "drops": 0, "unroutable": 0,
                                      "refused": 0}
        self.ds_seq = 0
        self._conns: Dict[int, _Conn] = {}
        self._members: Dict[int, _Conn] = {}
        self._next_id = 0
        self._server: Any = None  # what listen() returned
        self._sweeper: Optional[asyncio.Task] = None
        self._stopped: Optional[asyncio.Event] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    # -- log -----------------------------------------------------------------------------------
    def _event(self, kind: str, conn: Optional[_Conn] = None, **kw) -> None:
        if conn is not None:
            kw.setdefault("conn", conn.id)
            kw.setdefault("peer", conn.peer)
            kw.setdefault("member", conn.member)
        ev = RelayEvent(self.clock(), kind, **kw)
        self.events.append(ev)
        if log.isEnabledFor(logging.DEBUG if kind == "record" else logging.INFO):
            text = " ".join(f"{k}={v}" for k, v in (
                ("conn", ev.conn), ("peer", ev.peer), ("member", ev.member), ("ds_seq", ev.ds_seq),
                ("size", ev.size), ("detail", ev.detail), ("reason", ev.reason), ("vid", ev.vid))
                if v is not None)
            level = (logging.WARNING if kind in ("drop", "unroutable")
                     else logging.DEBUG if kind == "record" else logging.INFO)
            log.log(level, "%s %s", kind, text)
        for cb in self.listeners:
            cb(ev)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind and start accepting; :attr:`port` is the bound port afterwards."""
        if self._server is not None:
            raise UsageError("relay already started", vid="DS-USAGE")
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._server, self.port = await self.listen()
        if self.idle_timeout is not None or self.record_timeout is not None:
            self._sweeper = asyncio.ensure_future(self._sweep())
        self._event("listen", peer=f"{self.host}:{self.port}")

    async def listen(self) -> Tuple[Any, int]:
        """Bind: ``(server, bound port)``; the server has ``close()`` and ``wait_closed()``.
        Each accepted byte stream is served by :meth:`connection_protocol` (TCP here; the QUIC
        relay of :mod:`gbp_lab.sim.quic` overrides this and serves one QUIC stream per member)."""
        assert self._loop is not None
        server = await self._loop.create_server(self.connection_protocol, self.host, self.port)
        return server, server.sockets[0].getsockname()[1]

    def connection_protocol(self) -> "_Conn":
        """The relay's data path for one new member byte stream (an asyncio protocol: give it a
        transport with ``write``/``close``/``abort``/``get_extra_info``, then feed it)."""
        return _Conn(self)

    async def serve(self) -> None:
        """Start (if needed) and run until :meth:`stop` is called."""
        if self._server is None:
            await self.start()
        assert self._stopped is not None
        await self._stopped.wait()
        await self._shutdown()

    def stop(self) -> None:
        """Ask :meth:`serve` to return (call on the loop; see :meth:`RelayThread.stop`)."""
        if self._stopped is not None:
            self._stopped.set()

    async def _shutdown(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for c in list(self._conns.values()):
            c.leave_reason = c.leave_reason or "relay shutdown"
            c.closing = True
            c.transport.close()  # type: ignore[union-attr]
        for _ in range(50):  # let connection_lost run for every connection (flushes first)
            if not self._conns:
                break
            await asyncio.sleep(0.01)
        for c in list(self._conns.values()):  # peers that do not read: reset
            c.aborted = True
            c.transport.abort()  # type: ignore[union-attr]
        await asyncio.sleep(0)
        if self._server is not None:
            await self._server.wait_closed()
        self._event("stop")

    async def _sweep(self) -> None:
        idle, per_record = self.idle_timeout, self.record_timeout
        loop = asyncio.get_running_loop()
        period = min(1.0, *(t / 3 for t in (idle, per_record) if t is not None))
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for c in list(self._conns.values()):
                if c.closing:
                    continue
                if idle is not None and now - c.last_rx > idle:
                    self.drop(c, f"idle: nothing received for {idle:g} s", "DS-IDLE")
                elif (per_record is not None and c.record_since is not None
                      and now - c.record_since > per_record):
                    self.drop(c, f"slow record: {c.reader.buffered} bytes of one record received "
                                 f"over more than {per_record:g} s", "DS-SLOW-RECORD")

    # -- connection events ---------------------------------------------------------------------
    def _opened(self, c: _Conn) -> None:
        self._next_id += 1
        c.id = self._next_id
        tr = c.transport
        assert tr is not None
        tr.set_write_buffer_limits(high=self.write_buffer_high)
        peer = tr.get_extra_info("peername") or ("?", 0)
        sock = tr.get_extra_info("sockname") or ("?", 0)
        c.peer = f"{peer[0]}:{peer[1]}"
        c.last_rx = self._loop.time()  # type: ignore[union-attr]
        self._conns[c.id] = c
        self.stats["connections"] += 1
        if self.tap is not None:
            self.tap.open(c.id, (peer[0], peer[1]), (sock[0], sock[1]))
        self._event("join", c)
        if len(self._conns) > self.max_connections:
            self.stats["refused"] += 1
            self.drop(c, f"more than {self.max_connections} connections open", "DS-TOO-MANY-CONNS",
                      abort=True)

    def _lost(self, c: _Conn, exc: Optional[Exception]) -> None:
        if self._conns.pop(c.id, None) is None:
            return
        if c.member is not None and self._members.get(c.member) is c:
            del self._members[c.member]
        reason = c.leave_reason or (f"connection error: {exc}" if exc else "closed")
        if self.tap is not None:
            self.tap.close(c.id, by_client=not c.closing, reset=c.aborted or exc is not None)
        self._event("leave", c, reason=reason)
        if c.member is not None:
            self.ds_seq += 1
            note = encode_record(MemberLeft(self.ds_seq, c.member, reason).to_bytes())
            for o in self._conns.values():
                if o.flags & HelloFlags.NOTIFY:
                    o.out.append(note)
                    o.flush()

    def drop(self, c: _Conn, reason: str, vid: str, *, abort: bool = False) -> None:
        """Close *c* because of a fault; log ``drop`` (reason, vid). Others are not affected."""
        if c.closing:
            return
        c.closing = True
        c.leave_reason = f"dropped: {reason} [{vid}]"
        c.backlog.clear()
        c.out.clear()
        self.stats["drops"] += 1
        self._event("drop", c, reason=reason, vid=vid)
        tr = c.transport
        assert tr is not None
        if abort:
            c.aborted = True
            tr.abort()
        else:
            tr.close()

    # -- the data path -------------------------------------------------------------------------
    def _received(self, c: _Conn, data: bytes) -> None:
        now = c.last_rx = self._loop.time()  # type: ignore[union-attr]
        self.stats["bytes_in"] += len(data)
        if self.tap is not None:
            self.tap.data(c.id, True, data)
        touched: Dict[int, _Conn] = {}
        items = c.reader.feed(data)
        if not c.reader.buffered:
            c.record_since = None
        elif items or c.record_since is None:  # a new record started in this chunk
            c.record_since = now
        for item in items:
            if isinstance(item, OversizeError):
                self.drop(c, item.message, item.vid)
                break
            self._route(c, item, touched)  # type: ignore[arg-type]
            if c.closing:
                break
        for o in touched.values():
            o.flush()

    def _route(self, c: _Conn, record: bytes, touched: Dict[int, _Conn]) -> None:
        kind, sender = classify_record(record)
        target = 0
        if kind is RecordKind.DS:
            try:
                msg = decode_ds_message(record)
            except DsExtensionError as err:
                self.drop(c, err.message, err.vid)
                return
            if isinstance(msg, Hello):
                c.flags = msg.flags
                self._claim(c, msg.member_id, "hello")
                return
            if not isinstance(msg, Route):
                self.drop(c, f"{type(msg).__name__} is sent by the DS only", "DS-BAD-EXT-DIR")
                return
            target, record = msg.target, msg.record
            kind, sender = classify_record(record)
            if kind is RecordKind.DS:
                self.drop(c, "ROUTE carrying a DS message", "DS-BAD-EXT-NESTED")
                return
        if kind is RecordKind.GARBAGE:
            head = record[:8].hex()
            self.drop(c, f"garbage record of {len(record)} bytes (starts {head}): neither a GBP "
                         "frame nor an MLS blob", "DS-GARBAGE")
            return
        if sender is not None and c.member is None and sender > 0:
            self._claim(c, sender, "frame")
        self.stats["records_in"] += 1
        self.ds_seq += 1
        seq = self.ds_seq
        if target:
            dest = self._members.get(target)
            if dest is None or dest.closing:
                self.stats["unroutable"] += 1
                self._event("unroutable", c, ds_seq=seq, size=len(record), detail=f"target {target}",
                            reason=f"no connection claims member {target}", vid="DS-UNROUTABLE")
                return
            receivers = [dest]
        else:
            receivers = [o for o in self._conns.values() if o is not c and not o.closing]
        plain = stamped = None
        for o in receivers:
            if o.flags & HelloFlags.STAMPED:
                if stamped is None:
                    stamped = encode_record(Deliver(seq, c.member or 0, record).to_bytes())
                o.out.append(stamped)
            else:
                if plain is None:
                    plain = encode_record(record)
                o.out.append(plain)
            touched[o.id] = o
        self.stats["deliveries"] += len(receivers)
        if self.trace:
            self._event("record", c, ds_seq=seq, size=len(record), detail=f"{len(receivers)} receivers")

    def _claim(self, c: _Conn, member: int, how: str) -> None:
        if c.member == member:
            return
        if c.member is not None and self._members.get(c.member) is c:
            del self._members[c.member]
        c.member = member
        prev = self._members.get(member)
        self._members[member] = c  # the latest claim wins (a reconnecting member)
        self._event("member", c, detail=how if prev is None else f"{how}, replaces conn {prev.id}")

    # -- views ---------------------------------------------------------------------------------
    @property
    def members(self) -> Dict[int, int]:
        """member id → connection id of the current claims."""
        return {m: c.id for m, c in self._members.items()}

    @property
    def connections(self) -> int:
        return len(self._conns)


class RelayThread:
    """Run a :class:`Relay` on its own event loop in a daemon thread (no asyncio for the caller).

    ::

        with RelayThread(port=0) as relay:
            ...connect to ("127.0.0.1", relay.port)...
            relay.wait_for(lambda ev: ev.kind == "leave")
            relay.events        # a copy of the structured log

    Keyword arguments are those of :class:`Relay`; ``relay_class`` runs a subclass instead
    (:class:`gbp_lab.sim.quic.QuicRelay`).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 relay_class: Optional[Callable[..., "Relay"]] = None, **kw) -> None:
        self.relay = (relay_class or Relay)(host, port, **kw)
        self._cond = threading.Condition()
        self.relay.listeners.append(self._notify)
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None

    def _notify(self, ev: RelayEvent) -> None:
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self.relay.start())
        except BaseException as exc:  # bind failure: report to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_until_complete(self.relay.serve())
        finally:
            loop.close()

    def start(self) -> "RelayThread":
        if self._thread is not None:
            raise UsageError("relay thread already started", vid="DS-USAGE")
        self._thread = threading.Thread(target=self._run, name="gbp-relay", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection and stop the loop (idempotent)."""
        if self._thread is None or self._loop is None or not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self.relay.stop)
        self._thread.join(timeout)

    def __enter__(self) -> "RelayThread":
        return self.start() if self._thread is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self.relay.host

    @property
    def port(self) -> int:
        return self.relay.port

    @property
    def address(self) -> Tuple[str, int]:
        return (self.relay.host, self.relay.port)

    @property
    def events(self) -> List[RelayEvent]:
        """A copy of the structured log."""
        return list(self.relay.events)

    @property
    def stats(self) -> Dict[str, int]:
        return dict(self.relay.stats)

    def _call(self, fn):
        """Run *fn()* on the relay loop and return its result."""
        assert self._loop is not None
        done = threading.Event()
        box: list = []

        def run():
            box.append(fn())
            done.set()
        self._loop.call_soon_threadsafe(run)
        done.wait(10.0)
        return box[0] if box else None

    @property
    def members(self) -> Dict[int, int]:
        return self._call(lambda: self.relay.members)

    def wait_for(self, predicate: Callable[[RelayEvent], bool], timeout: float = 10.0,
                 count: int = 1) -> List[RelayEvent]:
        """Block until *count* logged events satisfy *predicate*; return them.

        Raises :class:`RelayWaitTimeout` (a :class:`TimeoutError`) if they do not appear within
        *timeout* seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [e for e in self.relay.events if predicate(e)]
                if len(hits) >= count:
                    return hits
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RelayWaitTimeout(f"{len(hits)} of {count} matching relay events after "
                                           f"{timeout:g} s", vid="DS-WAIT-TIMEOUT")
                self._cond.wait(min(left, 0.5))


class RelayWaitTimeout(GbpLabError, TimeoutError):
    """:meth:`RelayThread.wait_for` gave up."""

    default_vid = "DS-WAIT-TIMEOUT"


__all__ += ["RelayWaitTimeout"]
