"""GBP over QUIC the reference's way: the relay (:class:`QuicRelay`) and a synchronous client
(:class:`QuicRelayClient`, :func:`pump`) on aioquic.

The reference's QUIC transport (``crates/gbp/transport/src/quic.rs``, quinn 0.11 / rustls 0.23)
fixes the wire, and we follow it:

* QUIC version 1 (RFC 9000) over TLS 1.3 (RFC 9001), **no ALPN**;
* a server with one certificate — here a self-signed ECDSA P-256 certificate generated at start
  (:func:`make_certificate`); clients verify it when given it (``ca_cert``), or, as the
  reference's client with ``None``, skip verification;
* **one bidirectional stream per member** (the client's first, id 0, opened by its first byte),
  carrying exactly the TCP framing ``u32 LE length ‖ bytes`` (gbp_rfc.md §3) for KeyPackages,
  Welcomes and frames alike — split by the one record splitter
  :class:`~gbp_lab.core.gbp.framing.RecordReader`;
* closing the send side of the stream (FIN, the reference's ``finish()``) ends the member's
  session, like a TCP FIN.

The relay is :class:`gbp_lab.sim.relay.Relay` with a different listener: every QUIC connection
gets the relay's own data path (:meth:`~gbp_lab.sim.relay.Relay.connection_protocol`: records,
classification, broadcast, DS extension, tap, drops) behind a transport that writes to the
member's stream. A connection that uses another stream is dropped (``DS-QUIC-STREAM``).

TLS secrets: both sides accept ``secrets_log`` (aioquic's ``secrets_log_file``), which receives
the SSLKEYLOGFILE lines (``CLIENT_HANDSHAKE_TRAFFIC_SECRET <client random> <secret>`` …,
``CLIENT_TRAFFIC_SECRET_0``, ``SERVER_TRAFFIC_SECRET_0``). :class:`TlsSecretsLog` appends them
to a key-log file through :meth:`~gbp_lab.core.keylog.KeyLog.append_to` (owner-only file; the
MLS lines of the same run go to the same file), so one ``keys.log`` serves both layers and
Wireshark's ``tls.keylog_file`` reads it as it is.

Layouts. ``layout="reference"`` (the default) is the above. ``layout="spec"`` follows the spec
instead (gbp_rfc.md §3: stream 0 is GBP-Control, one stream per stream class): a member sends each
record on the client-initiated bidirectional stream ``4 · StreamType`` (0 control, 4 audio,
8 text, 12 signal; MLS structures and DS messages are control), and the relay answers on that
stream when the member opened it, else on its own stream ``4 · StreamType + 1``. Records stay
``u32 LE length ‖ bytes``, split per stream; a record on another class's stream, or data on any
other stream, drops the member (``DS-QUIC-STREAM``). Both sides must use the same layout (there
is no ALPN to negotiate it).

Limits (this first part): aioquic buffers what is written to a stream without back-pressure, so
the relay's slow-reader limit (``max_queue``) applies only before a member's stream is open.
"""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import selectors
import socket
import threading
import time
from collections import deque
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple, Union, cast

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.quic import events as qev
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicErrorCode, QuicProtocolVersion
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gbp_lab.core.errors import GbpLabError, OversizeError, UsageError
from gbp_lab.core.gbp.classify import RecordKind, classify_record
from gbp_lab.core.gbp.framing import MAX_RECORD, RecordReader, encode_record
from gbp_lab.core.keylog import KeyLog

from .client import RelayClient, RelayClosedError, RelayTimeout
from .relay import DEFAULT_PORT, Relay

__all__ = ["QUIC_VERSION", "LAYOUTS", "spec_stream_type", "spec_stream_id", "make_certificate", "server_configuration", "client_configuration",
           "TlsSecretsLog", "QuicRelay", "QuicRelayClient", "pump"]

#: QUIC v1 only, as quinn 0.11 speaks it by default (RFC 9000 §15)
QUIC_VERSION = QuicProtocolVersion.VERSION_1

Certificate = Tuple[x509.Certificate, ec.EllipticCurvePrivateKey]

#: ``reference``: one bidirectional stream per member; ``spec``: one per stream class
LAYOUTS = ("reference", "spec")


def check_layout(name: str) -> str:
    """``reference`` or ``spec`` (a :class:`~gbp_lab.core.errors.UsageError` otherwise)."""
    if name not in LAYOUTS:
        raise UsageError(f"QUIC layout is 'reference' or 'spec', not {name!r}", vid="DS-QUIC-LAYOUT")
    return name


def spec_stream_type(record: bytes) -> int:
    """The stream class a record travels on in the spec layout (gbp_rfc.md §3, §5): a GBP
    frame's StreamType 0..3 (by the core's classifier), else 0 — MLS structures, DS messages
    and frames of unknown types belong to GBP-Control."""
    rc = classify_record(record)
    if rc.kind is RecordKind.GBP_FRAME and 0 <= rc.value.stream_type <= 3:
        return int(rc.value.stream_type)
    return 0


def spec_stream_id(stream_type: int, *, by_client: bool = True) -> int:
    """QUIC stream of a stream class in the spec layout: the member's bidirectional stream
    ``4 · type`` (RFC 9000 §2.1: client-initiated, so stream 0 is control), or the relay's own
    ``4 · type + 1``."""
    return 4 * stream_type + (0 if by_client else 1)


def _send_on(quic: QuicConnection, used: Set[int], stream_id: int, data: bytes) -> None:
    """Send on one of our streams of the layout, opening the lower ones of its kind first:
    aioquic takes a skipped stream id as opened and discarded (RFC 9000 §2.1 opens them
    implicitly)."""
    for lower in range(stream_id % 4, stream_id, 4):
        if lower not in used and (lower % 2 == 0) == (stream_id % 2 == 0):
            quic.send_stream_data(lower, b"")
            used.add(lower)
    quic.send_stream_data(stream_id, data)
    used.add(stream_id)


def _records(data: bytes) -> Iterator[bytes]:
    """Whole records of *data* (bytes we framed ourselves, so never partial)."""
    for item in RecordReader(max_record=1 << 31).feed(data):
        if isinstance(item, bytes):
            yield item


def make_certificate(names: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
                     *, days: int = 30) -> Certificate:
    """A fresh self-signed ECDSA P-256 certificate for *names* (DNS names or IP addresses in the
    subjectAltName, RFC 5280 §4.2.1.6) — what the reference's tests make with ``rcgen``."""
    key = ec.generate_private_key(ec.SECP256R1())
    alt: List[x509.GeneralName] = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "gbp-lab")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def server_configuration(cert: Certificate, *, secrets_log: Any = None,
                         idle_timeout: float = 60.0) -> QuicConfiguration:
    """The relay's QUIC configuration: v1, no ALPN, one certificate (RFC 9001 §4)."""
    cfg = QuicConfiguration(is_client=False, alpn_protocols=None, idle_timeout=idle_timeout,
                            supported_versions=[QUIC_VERSION], secrets_log_file=secrets_log)
    cfg.certificate, cfg.private_key = cert
    return cfg


def client_configuration(ca_cert: Union[x509.Certificate, bytes, None] = None, *,
                         server_name: str = "localhost", secrets_log: Any = None,
                         idle_timeout: float = 60.0) -> QuicConfiguration:
    """A member's QUIC configuration: v1, no ALPN; the server certificate is verified against
    *ca_cert* (a certificate, PEM or DER) or, when it is ``None``, not verified (the
    reference's ``make_client_endpoint(…, None)``, for tests)."""
    import ssl

    cfg = QuicConfiguration(is_client=True, alpn_protocols=None, idle_timeout=idle_timeout,
                            supported_versions=[QUIC_VERSION], server_name=server_name,
                            secrets_log_file=secrets_log)
    if ca_cert is None:
        cfg.verify_mode = ssl.CERT_NONE
    else:
        if isinstance(ca_cert, x509.Certificate):
            ca_cert = ca_cert.public_bytes(serialization.Encoding.PEM)
        if not ca_cert.startswith(b"-----"):
            ca_cert = x509.load_der_x509_certificate(ca_cert).public_bytes(
                serialization.Encoding.PEM)
        cfg.load_verify_locations(cadata=ca_cert)
    return cfg


class TlsSecretsLog:
    """A file-like sink for aioquic's ``secrets_log_file``: keeps the SSLKEYLOGFILE lines
    (:attr:`lines`) and, with *path*, appends each to that key-log file as it is written
    (:meth:`KeyLog.append_to <gbp_lab.core.keylog.KeyLog.append_to>`: created 0600). One
    instance can serve many connections and threads."""

    def __init__(self, path: Optional[str] = None) -> None:
        self.path = path
        self.lines: List[str] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            new = [ln for ln in text.splitlines() if ln.strip()]
            self.lines.extend(new)
            if self.path is not None and new:
                KeyLog.parse("\n".join(new)).append_to(self.path)
        return len(text)

    def flush(self) -> None:
        """Each :meth:`write` is already on disk."""

    def text(self) -> str:
        with self._lock:
            return "".join(ln + "\n" for ln in self.lines)


# --------------------------------------------------------------------------------------------
# the relay
# --------------------------------------------------------------------------------------------
class _StreamTransport(asyncio.Transport):
    """What the relay's per-member protocol writes to: the member's QUIC stream. Until the
    member opens it (its first byte), the protocol is paused: records wait in the relay's
    per-connection queue, bounded by ``max_queue`` (RFC 9000 §3.2: a peer-initiated stream
    exists for us once its first frame arrives)."""

    def __init__(self, proto: "_MemberConnection") -> None:
        super().__init__()
        self.proto = proto
        self.stream_id: Optional[int] = None
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self.proto.peer
        if name == "sockname":
            return self.proto.sockname
        if name == "stream_id":
            return self.stream_id
        return default

    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        """QUIC streams buffer in aioquic (see the module docstring's limits)."""

    def write(self, data: Any) -> None:
        if self.closed or self.stream_id is None:  # paused until bound: nothing comes then
            return
        self.proto.send(self.stream_id, bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.proto.finish(abort=False)

    def abort(self) -> None:
        self.proto.finish(abort=True)


class _MemberConnection(QuicConnectionProtocol):
    """One member's QUIC connection at the relay: its first bidirectional stream feeds the
    relay's data path (:meth:`Relay.connection_protocol`)."""

    def __init__(self, quic: QuicConnection, relay: "QuicRelay", sockname: Tuple[str, int],
                 **_kw: Any) -> None:
        super().__init__(quic)
        self.relay = relay
        self.spec = relay.layout == "spec"
        self.readers: Dict[int, RecordReader] = {}  # spec layout: one per member stream
        self.used: Set[int] = set()  # streams we wrote on (FIN at the end)
        self.sockname = sockname
        self.shim = _StreamTransport(self)
        self.member = relay.connection_protocol()
        self.opened = False
        self.ended = False
        self.lost = False

    @property
    def peer(self) -> Tuple[str, int]:
        addr = self._quic.get_peer_address()
        return (str(addr[0]), int(addr[1])) if addr else ("?", 0)

    def send(self, stream_id: int, data: bytes) -> None:
        if self.spec:  # each record on its class's stream
            for rec in _records(data):
                st = spec_stream_type(rec)
                if spec_stream_id(st) in self.readers:
                    self._quic.send_stream_data(spec_stream_id(st), encode_record(rec))
                    self.used.add(spec_stream_id(st))
                else:
                    _send_on(self._quic, self.used, spec_stream_id(st, by_client=False),
                             encode_record(rec))
        else:
            self._quic.send_stream_data(stream_id, data)
            self.used.add(stream_id)
        self.transmit()

    def _open(self) -> None:
        if not self.opened:
            self.opened = True
            self.member.connection_made(self.shim)
            if self.spec:
                self.shim.stream_id = 0  # the relay can open its own streams at once
            else:
                self.member.pause_writing()  # until the member opens its stream

    def quic_event_received(self, event: qev.QuicEvent) -> None:
        if isinstance(event, qev.HandshakeCompleted):
            self._open()
        elif isinstance(event, qev.StreamDataReceived):
            self._stream_data(event)
        elif isinstance(event, qev.ConnectionTerminated):
            if self.ended or not self.opened:
                self.ended = True
                return
            self.ended = self.shim.closed = True
            if event.error_code == QuicErrorCode.NO_ERROR:
                self.member.eof_received()  # closed by the peer (inside a record or not)
                self._lost(None)
            else:
                self._lost(ConnectionResetError(
                    f"QUIC connection closed with error 0x{event.error_code:x} "
                    f"{event.reason_phrase!r}".rstrip()))

    def _stream_data(self, ev: qev.StreamDataReceived) -> None:
        self._open()
        if self.ended:
            return
        if self.spec:
            self._spec_data(ev)
            return
        sid = self.shim.stream_id
        if sid is None and ev.stream_id % 4 == 0:  # client-initiated bidirectional (RFC 9000 §2.1)
            self.shim.stream_id = ev.stream_id
            self.member.resume_writing()
        elif ev.stream_id != sid:
            self.relay.drop(self.member, f"data on QUIC stream {ev.stream_id}: a member has one "
                                         f"bidirectional stream (its first, {sid})",
                            "DS-QUIC-STREAM")
            return
        if ev.data:
            self.member.data_received(ev.data)
        if ev.end_stream and not self.ended:
            self.member.eof_received()
            self.finish(abort=False)

    def _spec_data(self, ev: qev.StreamDataReceived) -> None:
        sid = ev.stream_id
        if sid % 4 or sid > spec_stream_id(3):
            self.relay.drop(self.member, f"data on QUIC stream {sid}: the spec layout has the "
                                         "member streams 0, 4, 8, 12", "DS-QUIC-STREAM")
            return
        reader = self.readers.setdefault(sid, RecordReader(max_record=self.relay.max_record))
        for item in reader.feed(ev.data):
            if isinstance(item, OversizeError):
                self.relay.drop(self.member, item.message, item.vid)
                return
            if not isinstance(item, bytes):
                continue
            st = spec_stream_type(item)
            if spec_stream_id(st) != sid:
                self.relay.drop(self.member, f"a record of stream class {st} on QUIC stream "
                                             f"{sid}", "DS-QUIC-STREAM")
                return
            self.member.data_received(encode_record(item))
            if self.ended:
                return
        if ev.end_stream:
            self.member.eof_received()
            self.finish(abort=False)

    def finish(self, *, abort: bool) -> None:
        """Close the member's stream (FIN) and the connection; an *abort* closes with
        INTERNAL_ERROR instead. The relay learns it at once (``connection_lost``)."""
        if self.ended:
            return
        self.ended = self.shim.closed = True
        if not abort:
            ours = self.used | ({self.shim.stream_id} if self.shim.stream_id is not None else set())
            for sid in sorted(ours):
                try:
                    self._quic.send_stream_data(sid, b"", end_stream=True)
                except Exception:  # noqa: BLE001 - the stream's send side is already finished
                    pass
            self.transmit()  # before CONNECTION_CLOSE, which is all a closing one sends
        self.close(error_code=QuicErrorCode.INTERNAL_ERROR if abort else QuicErrorCode.NO_ERROR,
                   reason_phrase="aborted by the relay" if abort else "")
        self._loop.call_soon(self._lost, ConnectionAbortedError("aborted") if abort else None)

    def _lost(self, exc: Optional[Exception]) -> None:
        if self.opened and not self.lost:
            self.lost = True
            self.member.connection_lost(exc)


class _TapTransport(asyncio.DatagramTransport):
    """The relay's UDP socket as the QUIC server sees it, telling the tap every datagram sent."""

    def __init__(self, inner: asyncio.DatagramTransport, tap: Any, sockname: Tuple[str, int]) -> None:
        super().__init__()
        self.inner, self.tap, self.sockname = inner, tap, sockname

    def sendto(self, data: Any, addr: Any = None) -> None:
        if addr is not None:
            self.tap.datagram(self.sockname, addr, bytes(data), from_client=False)
        self.inner.sendto(data, addr)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.inner.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self.inner.is_closing()

    def close(self) -> None:
        self.inner.close()

    def abort(self) -> None:
        self.inner.abort()


class _TappedServer(QuicServer):
    """aioquic's server, with every UDP datagram its socket receives or sends recorded by the
    relay's tap (:meth:`gbp_lab.sim.tap.Tap.datagram`): what really crossed the wire."""

    def __init__(self, *, tap: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.tap = tap
        self.sockname: Tuple[str, int] = ("0.0.0.0", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        name = transport.get_extra_info("sockname")
        self.sockname = (str(name[0]), int(name[1]))
        super().connection_made(_TapTransport(cast(asyncio.DatagramTransport, transport), self.tap,
                                              self.sockname))

    def datagram_received(self, data: Union[bytes, str], addr: Any) -> None:
        if isinstance(data, bytes):
            self.tap.datagram(addr, self.sockname, data, from_client=True)
        super().datagram_received(data, addr)


class _Listener:
    """The relay's ``server``: closes the UDP endpoint (every connection) last, in
    ``wait_closed``, after the relay closed each member's stream."""

    def __init__(self, transport: asyncio.DatagramTransport, server: QuicServer) -> None:
        self.transport, self.server = transport, server

    def close(self) -> None:
        """Connections close one by one first (the relay's shutdown)."""

    async def wait_closed(self) -> None:
        await asyncio.sleep(0.01)  # let the CONNECTION_CLOSE datagrams leave
        self.server.close()


class QuicRelay(Relay):
    """The relay (:class:`~gbp_lab.sim.relay.Relay`, same options and events) on QUIC: UDP
    *port*, one member per QUIC connection, its first bidirectional stream carrying the records.

    ``certificate``: ``(x509 certificate, private key)``; default a fresh self-signed one
    (:func:`make_certificate`), see :attr:`certificate_pem`. ``secrets_log``: where the TLS
    secrets go (a file-like, e.g. :class:`TlsSecretsLog`). ``layout``: ``reference`` or
    ``spec`` (module docstring). Run it with
    ``RelayThread(host, port, relay_class=QuicRelay)``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
                 certificate: Optional[Certificate] = None, secrets_log: Any = None,
                 layout: str = "reference", **kw: Any) -> None:
        super().__init__(host, port, **kw)
        self.layout = check_layout(layout)
        self.certificate: Certificate = certificate or make_certificate()
        self.secrets_log = secrets_log

    @property
    def certificate_pem(self) -> bytes:
        """The server certificate (PEM), for clients that verify it."""
        return self.certificate[0].public_bytes(serialization.Encoding.PEM)

    async def listen(self) -> Tuple[Any, int]:
        loop = asyncio.get_running_loop()
        cfg = server_configuration(self.certificate, secrets_log=self.secrets_log)
        box: List[Tuple[str, int]] = []

        def create(quic: QuicConnection, **kw: Any) -> _MemberConnection:
            return _MemberConnection(quic, self, box[0])
        def make_server() -> QuicServer:
            if self.tap is None:
                return QuicServer(configuration=cfg, create_protocol=create)
            return _TappedServer(tap=self.tap, configuration=cfg, create_protocol=create)
        transport, server = await loop.create_datagram_endpoint(
            make_server, local_addr=(self.host, self.port))
        name = transport.get_extra_info("sockname")
        box.append((str(name[0]), int(name[1])))
        return _Listener(transport, server), int(name[1])


# --------------------------------------------------------------------------------------------
# the synchronous client
# --------------------------------------------------------------------------------------------
class QuicRelayClient(RelayClient):
    """A member's blocking QUIC connection to the relay, with :class:`RelayClient`'s interface
    (``send``, ``recv``, ``hello``, ``send_to``, ``queue`` + :func:`pump` …): sans-IO aioquic
    (:class:`aioquic.quic.connection.QuicConnection`) on a UDP socket. The constructor returns
    once the handshake is complete; records go on one bidirectional stream (see the module
    docstring). ``ca_cert``: verify the relay's certificate (``None``: do not)."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, timeout: float = 10.0,
                 max_record: int = MAX_RECORD, ca_cert: Union[x509.Certificate, bytes, None] = None,
                 server_name: str = "localhost", secrets_log: Any = None,
                 layout: str = "reference") -> None:
        # RelayClient's state, without its TCP socket
        self.timeout = timeout
        self.reader = RecordReader(max_record=max_record)
        self.inbox = deque()
        self.notices = []
        self.outbuf = bytearray()
        self.eof = False
        self.error = None
        self.stamped = False
        self.layout = check_layout(layout)
        self.readers: Dict[int, RecordReader] = {}  # spec layout: one per stream
        self.used: Set[int] = set()  # streams we wrote on
        family, _t, _p, _c, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        self.addr = (str(addr[0]), int(addr[1]))
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.connect(addr)
        self.sock.setblocking(False)
        self.closed = False
        self.connected = False
        self.alpn: Optional[str] = None
        self.quic = QuicConnection(configuration=client_configuration(
            ca_cert, server_name=server_name, secrets_log=secrets_log))
        self.quic.connect(self.addr, now=time.monotonic())
        self.stream_id = self.quic.get_next_available_stream_id()
        self.transmit()
        deadline = time.monotonic() + timeout
        while not self.connected:
            if self.eof:
                self.close()
                raise RelayClosedError(f"QUIC handshake with {host}:{port} failed "
                                       f"({self.error or 'closed'})", vid="DS-QUIC-HANDSHAKE")
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise RelayTimeout(f"no QUIC handshake with {host}:{port} within {timeout:g} s",
                                   vid="DS-QUIC-HANDSHAKE")
            self.wait(left)

    # -- the QUIC engine -----------------------------------------------------------------------
    def transmit(self) -> None:
        """Send what the QUIC connection has to send."""
        if self.closed:
            return
        for data, _addr in self.quic.datagrams_to_send(now=time.monotonic()):
            try:
                self.sock.send(data)
            except (BlockingIOError, ConnectionRefusedError):  # QUIC recovers (RFC 9002)
                pass

    def _events(self) -> None:
        ev = self.quic.next_event()
        while ev is not None:
            if isinstance(ev, qev.HandshakeCompleted):
                self.connected = True
                self.alpn = ev.alpn_protocol  # None: the reference negotiates no ALPN
            elif isinstance(ev, qev.StreamDataReceived) and self.layout == "spec":
                self._spec_data(ev)
            elif isinstance(ev, qev.StreamDataReceived) and ev.stream_id == self.stream_id:
                if ev.data and not self.eof:
                    self._ingest(ev.data)
                if ev.end_stream and not self.eof:
                    self._ingest(b"")
            elif isinstance(ev, qev.ConnectionTerminated) and not self.eof:
                if ev.error_code != QuicErrorCode.NO_ERROR:
                    self.error = ConnectionResetError(
                        f"QUIC error 0x{ev.error_code:x} {ev.reason_phrase}".rstrip())
                self._ingest(b"")
            ev = self.quic.next_event()

    def _spec_data(self, ev: qev.StreamDataReceived) -> None:
        if self.eof or ev.stream_id % 4 > 1 or ev.stream_id > spec_stream_id(3, by_client=False):
            return  # not a stream of the layout: ignored
        reader = self.readers.setdefault(ev.stream_id, RecordReader(max_record=self.reader.max_record))
        for item in reader.feed(ev.data):
            if isinstance(item, GbpLabError):
                self.error = item
            elif isinstance(item, bytes):
                self._ingest(encode_record(item))  # whole records, through the one inbox path
        if ev.end_stream and not self.eof:
            self._ingest(b"")

    def _write(self, data: bytes) -> None:
        """Framed *data* onto the stream(s) of the layout."""
        if self.layout == "spec":
            for rec in _records(data):
                _send_on(self.quic, self.used, spec_stream_id(spec_stream_type(rec)),
                         encode_record(rec))
        else:
            self.quic.send_stream_data(self.stream_id, data)
            self.used.add(self.stream_id)
        self.transmit()

    def on_readable(self) -> None:
        """Read every waiting datagram into the QUIC connection, then react."""
        now = time.monotonic()
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError as exc:  # ICMP port unreachable: the relay is gone
                self.error = exc
                if not self.eof:
                    self._ingest(b"")
                break
            self.quic.receive_datagram(data, self.addr, now=now)
        self._events()
        self.transmit()

    def on_timer(self) -> None:
        """Run the QUIC timers (loss detection, idle timeout) that are due."""
        at = self.quic.get_timer()
        if at is not None and not self.closed and time.monotonic() >= at:
            self.quic.handle_timer(now=time.monotonic())
            self._events()
            self.transmit()

    def next_timer(self) -> Optional[float]:
        return None if self.closed else self.quic.get_timer()

    def flush(self) -> None:
        """Hand the :meth:`queue`-d records to the stream."""
        if self.outbuf and not self.closed:
            data = bytes(self.outbuf)
            self.outbuf.clear()
            self._write(data)

    def wait(self, timeout: float) -> bool:
        """Wait at most *timeout* seconds for a datagram or a timer; True if one came."""
        at = self.next_timer()
        if at is not None:
            timeout = max(0.0, min(timeout, at - time.monotonic()))
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            ready = sel.select(timeout)
        if ready:
            self.on_readable()
        self.on_timer()
        return bool(ready)

    # -- RelayClient's interface ---------------------------------------------------------------
    @property
    def local_port(self) -> int:
        return int(self.sock.getsockname()[1])

    def send_raw(self, data: bytes) -> None:
        """Write bytes on the member's (control) stream as they are (no framing)."""
        if self.closed:
            raise RelayClosedError("the QUIC connection is closed", vid="DS-CLOSED")
        self.quic.send_stream_data(self.stream_id, bytes(data))
        self.used.add(self.stream_id)
        self.transmit()

    def send(self, record: bytes) -> None:
        self.send_many([record])

    def send_many(self, records) -> None:
        if self.closed:
            raise RelayClosedError("the QUIC connection is closed", vid="DS-CLOSED")
        self._write(b"".join(encode_record(r) for r in records))

    def _read_once(self, timeout: Optional[float]) -> bool:
        self.flush()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.wait(left) or self.eof:
                return True

    def close(self) -> None:
        """Finish the stream (FIN), close the connection (NO_ERROR) and the socket."""
        if self.closed:
            return
        for sid in sorted(self.used | {self.stream_id}):
            try:
                self.quic.send_stream_data(sid, b"", end_stream=True)
            except Exception:  # noqa: BLE001 - already finished by us
                pass
        self.transmit()  # the FINs first: a closing connection sends only CONNECTION_CLOSE
        self.quic.close()
        self.transmit()
        self.closed = True
        self.sock.close()


def pump(clients: Sequence[RelayClient], until: Callable[[], bool], timeout: float = 30.0) -> bool:
    """:func:`gbp_lab.sim.client.pump` for QUIC clients: hand their queued records to their
    streams, then read datagrams and run timers for all of them in one thread until ``until()``
    (True) or *timeout* seconds (False)."""
    live = [c for c in clients if isinstance(c, QuicRelayClient) and not c.closed]
    if len(live) != len(clients):
        raise UsageError("pump() of gbp_lab.sim.quic moves open QuicRelayClients only",
                         vid="DS-USAGE")
    for c in live:
        c.flush()
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    for c in live:
        sel.register(c.sock, selectors.EVENT_READ, c)
    try:
        while not until():
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                return False
            wait = min(left, 0.5)
            for c in live:
                at = c.next_timer()
                if at is not None:
                    wait = min(wait, max(0.0, at - now))
            for key, _mask in sel.select(wait):
                key.data.on_readable()
            for c in live:
                c.on_timer()
                c.flush()
        return True
    finally:
        sel.close()


def check_transport(name: str) -> str:
    """``tcp`` or ``quic`` (a :class:`~gbp_lab.core.errors.UsageError` otherwise)."""
    if name not in ("tcp", "quic"):
        raise UsageError(f"transport is 'tcp' or 'quic', not {name!r}", vid="SIM-TRANSPORT")
    return name


__all__ += ["check_transport", "check_layout"]
