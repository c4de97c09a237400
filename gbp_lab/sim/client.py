"""A small synchronous TCP client for the relay (gbp_rfc.md §3 framing: ``u32-LE length ‖ bytes``).

::

    with RelayClient("127.0.0.1", relay.port) as c:
        c.send(frame_wire)                   # exactly what a reference client writes
        d = c.recv(timeout=5)                # -> Delivery(data, ds_seq, from_member)
        c.hello(3, stamped=True)             # optional DS extension (see gbp_lab.sim.relay)
        c.send_to(7, welcome_blob)           # unicast through the DS (ROUTE)

Without :meth:`RelayClient.hello` the client is a plain reference-style client: it writes raw
records and receives raw records (``ds_seq`` and ``from_member`` are then ``None``).

For many clients in one thread (load tests, the simulator) use :meth:`RelayClient.queue` to stage
outgoing records and :func:`pump` to move bytes for all of them with one selector.
"""
from __future__ import annotations

import selectors
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Iterable, List, Optional

from gbp_lab.core.errors import GbpLabError, OversizeError, ProtocolError, TruncatedError
from gbp_lab.core.gbp.framing import MAX_RECORD, RecordReader, encode_record

from .ds_codec import Deliver, Hello, HelloFlags, MemberLeft, Route, decode_ds_message, is_ds_message

__all__ = ["Delivery", "RelayClient", "RelayClosedError", "RelayTimeout", "pump"]


class RelayClosedError(ProtocolError):
    """The relay closed the connection (or it broke) while we were waiting for a record."""

    default_vid = "DS-CLOSED"


class RelayTimeout(GbpLabError, TimeoutError):
    """Nothing arrived within the timeout."""

    default_vid = "DS-TIMEOUT"


@dataclass(frozen=True)
class Delivery:
    """One received record. ``ds_seq``/``from_member`` are set only for a stamped client;
    ``time`` is ``time.monotonic()`` when the chunk that completed it was read."""

    data: bytes
    ds_seq: Optional[int] = None
    from_member: Optional[int] = None
    time: Optional[float] = None


class RelayClient:
    """A blocking client connection to the relay (see the module docstring)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 7878, *, timeout: float = 10.0,
                 max_record: int = MAX_RECORD) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.reader = RecordReader(max_record=max_record)
        self.inbox: Deque[Delivery] = deque()
        self.notices: List[MemberLeft] = []  #: MEMBER_LEFT notices (after ``hello(notify=True)``)
        self.outbuf = bytearray()
        self.eof = False
        self.error: Optional[BaseException] = None
        self.stamped = False

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    # -- sending -------------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (no framing): for tests of broken clients."""
        self.sock.sendall(data)

    def send(self, record: bytes) -> None:
        """Write one record (``u32-LE length ‖ record``)."""
        self.sock.sendall(encode_record(record))

    def send_many(self, records: Iterable[bytes]) -> None:
        self.sock.sendall(b"".join(encode_record(r) for r in records))

    def hello(self, member_id: int, *, stamped: bool = False, notify: bool = False) -> None:
        """Optional DS ``HELLO``: claim *member_id*; ``stamped`` wraps deliveries with the DS
        order, ``notify`` asks for MEMBER_LEFT notices. Also a keep-alive."""
        flags = (HelloFlags.STAMPED if stamped else 0) | (HelloFlags.NOTIFY if notify else 0)
        self.stamped = stamped
        self.send(Hello(member_id, flags).to_bytes())

    def send_to(self, target: int, record: bytes) -> None:
        """Ask the DS to forward *record* to member *target* only (0 = broadcast)."""
        self.send(Route(target, record).to_bytes())

    def queue(self, record: bytes) -> None:
        """Stage a record for :func:`pump` (non-blocking sending)."""
        self.outbuf += encode_record(record)

    # -- receiving -----------------------------------------------------------------------------
    def _ingest(self, chunk: bytes) -> None:
        if not chunk:
            self.eof = True
            for tail in self.reader.close():  # a TruncatedError when a record was cut short
                if isinstance(tail, BaseException):
                    self.error = tail
            return
        now = time.monotonic()
        for item in self.reader.feed(chunk):
            if isinstance(item, (OversizeError, TruncatedError)):
                self.error = item
                continue
            if not isinstance(item, bytes):  # a plain RecordReader yields records or errors only
                continue
            if is_ds_message(item):
                msg = decode_ds_message(item)
                if isinstance(msg, Deliver):
                    self.inbox.append(Delivery(msg.record, msg.ds_seq, msg.from_member, now))
                elif isinstance(msg, MemberLeft):
                    self.notices.append(msg)
                continue
            self.inbox.append(Delivery(item, None, None, now))

    def _read_once(self, timeout: Optional[float]) -> bool:
        """Read one chunk; False on timeout."""
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            return False
        except OSError as exc:  # reset by the relay
            self.error = exc
            chunk = b""
        self._ingest(chunk)
        return True

    def recv(self, timeout: Optional[float] = None) -> Delivery:
        """The next record; :class:`RelayTimeout` / :class:`RelayClosedError` otherwise."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not self.inbox:
            if self.eof:
                raise RelayClosedError(f"connection closed by the relay ({self.error or 'EOF'})",
                                       vid="DS-CLOSED")
            left = deadline - time.monotonic()
            if left <= 0 or not self._read_once(left):
                raise RelayTimeout(f"no record within {timeout:g} s", vid="DS-TIMEOUT")
        return self.inbox.popleft()

    def recv_notice(self, timeout: Optional[float] = None) -> MemberLeft:
        """The next MEMBER_LEFT notice (records arriving meanwhile stay in the inbox)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not self.notices:
            if self.eof:
                raise RelayClosedError("connection closed by the relay", vid="DS-CLOSED")
            left = deadline - time.monotonic()
            if left <= 0 or not self._read_once(left):
                raise RelayTimeout(f"no notice within {timeout:g} s", vid="DS-TIMEOUT")
        return self.notices.pop(0)

    def recv_record(self, timeout: Optional[float] = None) -> bytes:
        """The next record's bytes."""
        return self.recv(timeout).data

    def recv_many(self, n: int, timeout: Optional[float] = None) -> List[Delivery]:
        """Exactly *n* records (one overall *timeout*)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        out = []
        for _ in range(n):
            out.append(self.recv(max(0.0, deadline - time.monotonic())))
        return out

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Read (and keep) records until the relay closes the connection; True if it did within
        *timeout*."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read_once(left):
                return False
        return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:  # pragma: no cover
            pass

    def __enter__(self) -> "RelayClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def pump(clients: List[RelayClient], until: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Move bytes for all *clients* in one thread: flush their :meth:`~RelayClient.queue`-d output
    and read into their inboxes, until ``until()`` is true (returns True) or *timeout* seconds
    pass (returns False)."""
    sel = selectors.DefaultSelector()
    for c in clients:
        c.sock.setblocking(False)
        sel.register(c.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if c.outbuf else 0), c)
    deadline = time.monotonic() + timeout
    try:
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for key, mask in sel.select(min(left, 0.5)):
                cl: RelayClient = key.data
                if mask & selectors.EVENT_READ:
                    try:
                        chunk = cl.sock.recv(1 << 18)
                    except BlockingIOError:
                        chunk = None
                    except OSError as exc:
                        cl.error, chunk = exc, b""
                    if chunk is not None:
                        cl._ingest(chunk)
                        if cl.eof:
                            sel.unregister(cl.sock)
                            continue
                if mask & selectors.EVENT_WRITE and cl.outbuf:
                    try:
                        n = cl.sock.send(cl.outbuf)
                    except BlockingIOError:
                        n = 0
                    del cl.outbuf[:n]
                    if not cl.outbuf:
                        sel.modify(cl.sock, selectors.EVENT_READ, cl)
        return True
    finally:
        sel.close()
        for c in clients:
            try:
                c.sock.setblocking(True)
                c.sock.settimeout(c.timeout)
            except OSError:  # pragma: no cover
                pass
