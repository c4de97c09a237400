"""A passive QUIC v1 observer: captured UDP datagrams in, the bytes of each QUIC stream out.

:class:`QuicObserver` (sans-IO) follows every connection it sees:

* **connections** are found by Destination Connection ID (RFC 9000 §5.1): the client's first
  DCID, the Source Connection IDs of both long headers, every NEW_CONNECTION_ID (§19.15); short
  headers (§17.3) carry no DCID length, so the known lengths are tried; zero-length ids fall back
  to the UDP path the caller passes;
* **keys**: Initial keys from the client's first DCID (RFC 9001 §5.2, no key log needed);
  Handshake, 0-RTT and 1-RTT keys from TLS secrets (SSLKEYLOGFILE labels) found by the
  ClientHello random (RFC 8446 §4.1.2), which the observer reads out of the client's Initial
  CRYPTO frames; the cipher suite from the ServerHello (§4.1.3), else by trial from the secret
  length; key updates (RFC 9001 §6) by the key phase bit, the previous generation kept for
  reordered packets;
* **reassembly**: CRYPTO (per space) and STREAM (per stream and direction) frames are put in
  order by offset (:class:`OffsetReassembler`: out of order, retransmitted, overlapping); holes
  that never fill are reported as gaps, as the TCP path does.

What comes out is a list of :class:`QuicEvent` per datagram: ``data`` (in-order stream bytes),
``gap``, ``end`` (FIN, RESET_STREAM, CONNECTION_CLOSE or :meth:`QuicObserver.finish`) and
``error`` (typed: ``vid`` + message; one ``QUIC-KEYS-MISSING`` per connection whose 1-RTT
packets cannot be opened for lack of secrets). Bad bytes never raise.
"""
from __future__ import annotations

import bisect
from typing import (Callable, Dict, Hashable, List, Mapping, NamedTuple, Optional, Set,
                    Tuple)

from ..errors import DecryptError, GbpLabError
from .packets import (HANDSHAKE, INITIAL, RETRY, ZERO_RTT, Frame, QuicDecodeError,
                      parse_frames, parse_long_header, unprotect)
from .protection import SUITES, CipherSuite, PacketKeys, initial_secrets, suites_for_secret

__all__ = ["QuicEvent", "OpenedPacket", "QuicObserver", "QuicConnection", "OffsetReassembler", "TLS_LABELS",
           "SecretsLookup", "client_hello_random", "server_hello_suite", "KEYS_MISSING_VID"]

#: SSLKEYLOGFILE labels QUIC needs, by (sender is client, packet space)
TLS_LABELS = {(True, HANDSHAKE): "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
              (False, HANDSHAKE): "SERVER_HANDSHAKE_TRAFFIC_SECRET",
              (True, ZERO_RTT): "CLIENT_EARLY_TRAFFIC_SECRET",
              (True, 4): "CLIENT_TRAFFIC_SECRET_0", (False, 4): "SERVER_TRAFFIC_SECRET_0"}
ONE_RTT = 4  #: our space code of short-header packets (0-RTT shares the space, not the keys)
KEYS_MISSING_VID = "QUIC-KEYS-MISSING"
#: client random → {label: secret} (a key log's TLS lines), or None
SecretsLookup = Callable[[bytes], Optional[Mapping[str, bytes]]]


class QuicEvent(NamedTuple):
    """One observation. ``kind``: ``data`` (``data`` at stream ``offset``), ``gap`` (bytes
    ``offset`` .. ``end`` never seen), ``end`` (the stream ended at ``offset``; ``message`` says
    how), ``error`` (``vid`` + ``message``; ``stream_id`` may be None). ``connection``: the
    observer's connection index; ``from_client``: the direction."""

    kind: str
    connection: Optional[int]
    from_client: Optional[bool]
    stream_id: Optional[int]
    offset: int = 0
    end: int = 0
    data: bytes = b""
    vid: Optional[str] = None
    message: Optional[str] = None


class OpenedPacket(NamedTuple):
    """A packet :meth:`QuicObserver.datagram` opened (its ``last_packets``: what a dissector
    shows): connection index, direction, ``Initial``/``Handshake``/``0-RTT``/``1-RTT``, packet
    number, key generation (key updates, RFC 9001 §6), its frames."""

    connection: int
    from_client: bool
    space: str
    packet_number: int
    key_generation: int
    frames: List[Frame]


class OffsetReassembler:
    """Bytes by offset → in-order bytes (RFC 9000 §2.2: data may arrive out of order, be
    retransmitted, overlap). :meth:`push` returns ``[(offset, bytes)]`` now contiguous; held
    pieces beyond a hole are kept up to ``max_held`` bytes — above that, and at :meth:`flush`,
    the hole is declared a gap. Results: ``("data", offset, bytes)`` / ``("gap", start, end)``."""

    __slots__ = ("next", "held", "held_bytes", "max_held", "fin", "duplicate_bytes")

    def __init__(self, max_held: int = 8 << 20) -> None:
        self.next = 0
        self.held: List[Tuple[int, bytes]] = []  # sorted by offset
        self.held_bytes = 0
        self.max_held = max_held
        self.fin: Optional[int] = None  #: the final size, once a FIN/RESET told it
        self.duplicate_bytes = 0

    def push(self, offset: int, data: bytes) -> List[tuple]:
        out: List[tuple] = []
        end = offset + len(data)
        if end <= self.next:
            self.duplicate_bytes += len(data)
            return out
        if offset < self.next:
            self.duplicate_bytes += self.next - offset
            data, offset = data[self.next - offset:], self.next
        if offset == self.next:
            out.append(("data", offset, data))
            self.next = end
            self._drain(out)
            return out
        bisect.insort(self.held, (offset, data))
        self.held_bytes += len(data)
        while self.held_bytes > self.max_held and self.held:
            self._skip(out)
        return out

    def _drain(self, out: List[tuple]) -> None:
        held = self.held
        while held and held[0][0] <= self.next:
            off, data = held.pop(0)
            self.held_bytes -= len(data)
            end = off + len(data)
            if end <= self.next:
                self.duplicate_bytes += len(data)
                continue
            if off < self.next:
                self.duplicate_bytes += self.next - off
            out.append(("data", self.next, data[self.next - off:]))
            self.next = end

    def _skip(self, out: List[tuple]) -> None:
        start = self.next
        self.next = self.held[0][0]
        out.append(("gap", start, self.next))
        self._drain(out)

    def flush(self) -> List[tuple]:
        """End of the stream: every held piece, holes as gaps (also a hole before the final
        size)."""
        out: List[tuple] = []
        while self.held:
            self._skip(out)
        if self.fin is not None and self.next < self.fin:
            out.append(("gap", self.next, self.fin))
            self.next = self.fin
        return out


def client_hello_random(crypto: bytes) -> Optional[bytes]:
    """The 32-byte random of a ClientHello at the start of the client's Initial CRYPTO stream
    (RFC 8446 §4.1.2: type 1, u24 length, legacy_version, random), else None."""
    if len(crypto) >= 38 and crypto[0] == 1:
        return crypto[6:38]
    return None


def server_hello_suite(crypto: bytes) -> Optional[CipherSuite]:
    """The cipher suite a ServerHello chose (RFC 8446 §4.1.3), if the bytes hold that far."""
    if len(crypto) < 39 or crypto[0] != 2:
        return None
    sid = crypto[38]
    pos = 39 + sid
    if len(crypto) < pos + 2:
        return None
    return SUITES.get(int.from_bytes(crypto[pos:pos + 2], "big"))


class _Direction:
    """One sender's packet spaces: keys and the largest packet number opened per space; the
    CRYPTO reassembler per space; the 1-RTT key generations."""

    __slots__ = ("keys", "largest", "crypto", "crypto_head", "app_prev", "app_next")

    def __init__(self) -> None:
        self.keys: Dict[int, Optional[PacketKeys]] = {}
        self.largest: Dict[int, int] = {}
        self.crypto: Dict[int, OffsetReassembler] = {}
        self.crypto_head: Dict[int, bytes] = {}
        self.app_prev: Optional[PacketKeys] = None
        self.app_next: Optional[PacketKeys] = None


class QuicConnection:
    """What the observer knows of one connection (``index`` is what events carry)."""

    def __init__(self, index: int, odcid: bytes, path: Optional[Hashable]) -> None:
        self.index = index
        self.odcid = odcid
        self.path = path
        self.client_random: Optional[bytes] = None
        self.suite: Optional[CipherSuite] = None
        self.dirs = {True: _Direction(), False: _Direction()}
        self.streams: Dict[Tuple[bool, int], OffsetReassembler] = {}
        self.ended: Dict[Tuple[bool, int], int] = {}  # streams that ended → final size
        self.dcid_len = {True: len(odcid), False: 0}  # by sender: DCID length it writes
        self.keys_missing_reported = False
        self.bad_secrets: Set[Tuple[bool, int]] = set()
        self.closed: Optional[str] = None
        self.retry_scid: Optional[bytes] = None  #: the SCID of a Retry: the client's next DCID
        self.packets = 0
        self.opened = 0
        self.set_initial(odcid)

    @property
    def name(self) -> str:
        """The connection's name in tables: its original DCID in hex."""
        return self.odcid.hex()

    def set_initial(self, dcid: bytes) -> None:
        c, s = initial_secrets(dcid)
        self.dirs[True].keys[INITIAL] = PacketKeys(c)
        self.dirs[False].keys[INITIAL] = PacketKeys(s)


class QuicObserver:
    """Follow QUIC connections in captured datagrams (see the module docstring).

    ``secrets(client_random)`` gives a connection's TLS secrets by SSLKEYLOGFILE label (asked
    again until it answers, so secrets that arrive later still apply)."""

    #: bound on connections and connection ids remembered (oldest forgotten first)
    MAX_CONNECTIONS = 4096

    def __init__(self, secrets: Optional[SecretsLookup] = None) -> None:
        self.secrets = secrets
        self.connections: List[QuicConnection] = []
        self._cids: Dict[bytes, Tuple[QuicConnection, bool]] = {}  # DCID → (conn, sender is client)
        self._cid_lengths: Set[int] = set()
        self._lengths_desc: Tuple[int, ...] = ()  #: _cid_lengths, longest first (short headers)
        self._paths: Dict[Hashable, QuicConnection] = {}
        self._unknown_reported: Set[bytes] = set()
        #: the packets the last :meth:`datagram` call opened
        self.last_packets: List[OpenedPacket] = []
        self.packets = 0
        self.opened = 0

    # -- connection ids --------------------------------------------------------------------------
    def _register(self, cid: bytes, conn: QuicConnection, sender_is_client: bool) -> None:
        if cid:
            if len(self._cids) >= 16 * self.MAX_CONNECTIONS:
                self._cids.clear()
            self._cids[cid] = (conn, sender_is_client)
            if len(cid) not in self._cid_lengths:
                self._cid_lengths.add(len(cid))
                self._lengths_desc = tuple(sorted(self._cid_lengths, reverse=True))

    def _long_lookup(self, dcid: bytes, path: Optional[Hashable]):
        hit = self._cids.get(dcid)
        if hit is None and not dcid and path is not None:  # zero-length ids: by the path
            c = self._paths.get(_canon(path))
            if c is not None:
                hit = (c, path == c.path)
        return hit

    def _short_lookup(self, data: bytes, path: Optional[Hashable]):
        for n in self._lengths_desc:
            hit = self._cids.get(data[1:1 + n])
            if hit is not None:
                return hit[0], hit[1], n
        if path is not None:
            conn = self._paths.get(_canon(path))
            if conn is not None:
                fc = path == conn.path
                return conn, fc, conn.dcid_len[fc]
        return None, None, 0

    # -- datagrams -------------------------------------------------------------------------------
    def datagram(self, data: bytes, path: Optional[Hashable] = None) -> List[QuicEvent]:
        """The events of one UDP payload (coalesced packets, RFC 9000 §12.2). ``path``:
        ``(src, sport, dst, dport)`` of the datagram (zero-length connection ids; direction)."""
        out: List[QuicEvent] = []
        self.last_packets = []
        pos = 0
        n = len(data)
        while pos < n:
            if data[pos] == 0 and not any(data[pos:]):
                break  # zero padding after the last packet
            try:
                if data[pos] & 0x80:
                    pos = self._long(data, pos, path, out)
                else:
                    self._short(data, pos, path, out)
                    pos = n
            except QuicDecodeError as exc:
                out.append(QuicEvent("error", None, None, None, pos, vid=exc.vid,
                                     message=f"QUIC datagram offset {pos}: {exc.message}"))
                break
        return out

    def is_quic_start(self, data: bytes) -> bool:
        """Does this UDP payload start with a QUIC v1 long header (heuristic for other ports)?"""
        return len(data) >= 7 and data[0] & 0xC0 == 0xC0 and data[1:5] == b"\x00\x00\x00\x01"

    def known(self, data: bytes, path: Optional[Hashable] = None) -> bool:
        """Does this datagram belong to a connection the observer follows?"""
        if not data:
            return False
        if data[0] & 0x80:
            try:
                h = parse_long_header(data, 0)
            except QuicDecodeError:
                return False
            return self._long_lookup(h.dcid, path) is not None
        return self._short_lookup(data, path)[0] is not None

    def _long(self, data: bytes, start: int, path, out: List[QuicEvent]) -> int:
        h = parse_long_header(data, start)
        if h.ptype == -1:
            return h.end  # Version Negotiation: nothing protected
        hit = self._long_lookup(h.dcid, path)
        if h.ptype == RETRY:
            if hit is not None:  # the client's next Initial keys come from the new DCID
                hit[0].retry_scid = h.scid
            return h.end
        if hit is None and h.ptype == INITIAL:
            rs = self._cids.get(h.scid)
            if rs is not None and rs[0].retry_scid == h.dcid:  # after a Retry (RFC 9000 §17.2.5)
                conn = rs[0]
                conn.set_initial(h.dcid)
                self._register(h.dcid, conn, True)
                hit = (conn, True)
            elif _opens_as_client_initial(data, start, h):
                conn = self._new_connection(h.dcid, path)
                self._register(h.scid, conn, False)
                conn.dcid_len[False] = len(h.scid)
                self._register(h.dcid, conn, True)
                hit = (conn, True)
            # else: not a client's first Initial (a server Initial seen before the client's …)
        if hit is None:
            if h.dcid not in self._unknown_reported and len(self._unknown_reported) < 4096:
                self._unknown_reported.add(h.dcid)
                out.append(QuicEvent("error", None, None, None, start, vid="QUIC-NO-CONNECTION",
                                     message=f"QUIC {_ptype_name(h.ptype)} packet for unknown "
                                             f"connection id {h.dcid.hex()} (its client Initial "
                                             f"was not captured, or came later)"))
            return h.end
        conn, fc = hit
        if not fc and h.scid and h.scid not in self._cids:  # the server's chosen id
            self._register(h.scid, conn, True)
            conn.dcid_len[True] = len(h.scid)
        space = h.ptype
        self._packet(conn, fc, space, data, start, h.pn_offset, h.end, out)
        return h.end

    def _short(self, data: bytes, start: int, path, out: List[QuicEvent]) -> None:
        conn, fc, n = self._short_lookup(data, path)
        if conn is None:
            return  # not a connection we follow: not ours to report per packet
        assert fc is not None
        self._packet(conn, fc, ONE_RTT, data, start, start + 1 + n, len(data), out)

    def _new_connection(self, odcid: bytes, path) -> QuicConnection:
        conn = QuicConnection(len(self.connections), odcid, path)
        self.connections.append(conn)
        if path is not None:
            if len(self._paths) >= self.MAX_CONNECTIONS:
                self._paths.clear()
            self._paths[_canon(path)] = conn
        return conn

    # -- keys --------------------------------------------------------------------------------------
    def _tls_keys(self, conn: QuicConnection, fc: bool, space: int) -> Optional[List[PacketKeys]]:
        """Candidate keys of a space from the TLS secrets (several when the suite is unknown)."""
        if conn.client_random is None or self.secrets is None:
            return None
        found = self.secrets(conn.client_random)
        label = TLS_LABELS.get((fc, space))
        secret = None if not found or label is None else found.get(label)
        if secret is None:
            return None
        suites = (conn.suite,) if conn.suite is not None else suites_for_secret(secret)
        out = []
        for s in suites:
            try:
                out.append(PacketKeys(secret, s))
            except GbpLabError:
                continue
        if not out:
            raise DecryptError(f"the key log's {label} for client random "
                               f"{conn.client_random.hex()} has {len(secret)} bytes, not a "
                               f"{' or '.join(s.name for s in suites)} secret",
                               vid="QUIC-SECRET-LENGTH")
        return out

    def _packet(self, conn: QuicConnection, fc: bool, space: int, data: bytes, start: int,
                pn_offset: int, end: int, out: List[QuicEvent]) -> None:
        self.packets += 1
        conn.packets += 1
        d = conn.dirs[fc]
        pspace = ONE_RTT if space == ZERO_RTT else space  # packet number space (§12.3)
        largest = d.largest.get(pspace, -1)
        cands: Optional[List[PacketKeys]]
        keys = d.keys.get(space)
        try:
            cands = [keys] if keys is not None else self._tls_keys(conn, fc, space)
        except GbpLabError as exc:
            if (fc, space) not in conn.bad_secrets:
                conn.bad_secrets.add((fc, space))
                out.append(QuicEvent("error", conn.index, fc, None, start, vid=exc.vid,
                                     message=f"QUIC connection {conn.name}: {exc.message}"))
            return
        if not cands:
            if space == ONE_RTT and not conn.keys_missing_reported:
                conn.keys_missing_reported = True
                why = ("its ClientHello random is unknown (client Initial not captured)"
                       if conn.client_random is None else
                       f"the key log has no {TLS_LABELS[(fc, ONE_RTT)]} for client random "
                       f"{conn.client_random.hex()}")
                out.append(QuicEvent("error", conn.index, fc, None, start, vid=KEYS_MISSING_VID,
                                     message=f"QUIC 1-RTT keys missing for connection "
                                             f"{conn.name}: {why}; its streams are not read"))
            return
        last: Optional[GbpLabError] = None
        for k in cands:
            try:
                u = unprotect(data, start, pn_offset, end, k, largest)
                if space == ONE_RTT:
                    pt, k = self._open_1rtt(d, k, u, largest)
                else:
                    pt = k.open(u.packet_number, u.header, u.ciphertext)
            except GbpLabError as exc:
                last = exc
                continue
            if keys is None:  # the candidate that worked is the space's key from now on
                d.keys[space] = k
                if space == ONE_RTT and conn.suite is None:
                    conn.suite = k.suite
            break
        else:
            assert last is not None
            out.append(QuicEvent("error", conn.index, fc, None, start, vid=last.vid,
                                 message=f"QUIC {_ptype_name(space)} packet of connection "
                                         f"{conn.name} ({'client' if fc else 'server'}): "
                                         f"{last.message}"))
            return
        if u.packet_number > largest:
            d.largest[pspace] = u.packet_number
        self.opened += 1
        conn.opened += 1
        try:
            frames = parse_frames(pt)
        except QuicDecodeError as exc:
            out.append(QuicEvent("error", conn.index, fc, None, start, vid=exc.vid,
                                 message=f"QUIC packet {u.packet_number} of connection "
                                         f"{conn.name}: {exc.message}"))
            return
        if len(self.last_packets) < 64:
            self.last_packets.append(OpenedPacket(conn.index, fc, _ptype_name(space),
                                                  u.packet_number, k.generation, frames))
        for f in frames:
            t = f.type
            if 0x08 <= t <= 0x0F:
                self._stream(conn, fc, f.stream_id or 0, f.offset, f.data, f.fin, out)
            elif t == 0x06:
                self._crypto(conn, fc, pspace, f.offset, f.data)
            elif t == 0x04:
                r = self._reasm(conn, fc, f.stream_id or 0)
                r.fin = f.offset
                self._stream_end(conn, fc, f.stream_id or 0,
                                 f"reset (error {(f.fields or {}).get('error_code')})", out)
            elif t == 0x18:
                self._register(f.data, conn, not fc)  # ids the sender will receive on
                conn.dcid_len[not fc] = len(f.data)
            elif t == 0x1C or t == 0x1D:  # the connection is over: its streams end (§10.2)
                conn.closed = f"CONNECTION_CLOSE error {(f.fields or {}).get('error_code')}"
                for sfc, sid in list(conn.streams):
                    self._stream_end(conn, sfc, sid, conn.closed, out)

    def _open_1rtt(self, d: _Direction, k: PacketKeys, u, largest: int):
        """Open a short-header packet (RFC 9001 §6): the key phase bit picks the current
        generation; the other phase is the next generation (a key update: it becomes current) or,
        for an older packet, the previous one."""
        phase = (u.first >> 2) & 1
        if phase == k.generation & 1:
            return k.open(u.packet_number, u.header, u.ciphertext), k
        if d.app_prev is not None and u.packet_number < largest:
            try:
                return d.app_prev.open(u.packet_number, u.header, u.ciphertext), k
            except GbpLabError:
                pass
        nxt = d.app_next or k.next_generation()
        pt = nxt.open(u.packet_number, u.header, u.ciphertext)
        d.app_prev, d.app_next = k, None
        d.keys[ONE_RTT] = nxt
        return pt, nxt

    # -- streams -----------------------------------------------------------------------------------
    def _reasm(self, conn: QuicConnection, fc: bool, sid: int) -> OffsetReassembler:
        r = conn.streams.get((fc, sid))
        if r is None:
            r = conn.streams[(fc, sid)] = OffsetReassembler()
        return r

    def _stream(self, conn, fc, sid, offset, data, fin, out) -> None:
        done = conn.ended.get((fc, sid))
        if done is not None:  # a late retransmission of an ended stream
            if offset + len(data) > done:
                out.append(QuicEvent("error", conn.index, fc, sid, offset, vid="QUIC-AFTER-END",
                                     message=f"QUIC stream {sid} of connection {conn.name}: "
                                             f"{offset + len(data) - done} bytes after its "
                                             f"final size {done}"))
            return
        r = self._reasm(conn, fc, sid)
        if fin:
            r.fin = offset + len(data)
        for kind, a, b in r.push(offset, data):
            out.append(QuicEvent("data", conn.index, fc, sid, a, a + len(b), b)
                       if kind == "data" else QuicEvent("gap", conn.index, fc, sid, a, b))
        if r.fin is not None and r.next >= r.fin and not r.held:
            self._stream_end(conn, fc, sid, "FIN", out)

    def _stream_end(self, conn, fc, sid, how: str, out) -> None:
        r = conn.streams.pop((fc, sid), None)
        if r is None:
            return
        for kind, a, b in r.flush():
            out.append(QuicEvent("data", conn.index, fc, sid, a, a + len(b), b)
                       if kind == "data" else QuicEvent("gap", conn.index, fc, sid, a, b))
        out.append(QuicEvent("end", conn.index, fc, sid, r.next, message=how))
        if len(conn.ended) < 65536:
            conn.ended[(fc, sid)] = r.next

    def _crypto(self, conn: QuicConnection, fc: bool, space: int, offset: int,
                data: bytes) -> None:
        d = conn.dirs[fc]
        if space != INITIAL:
            return  # the handshake's later messages: nothing a passive reader needs
        r = d.crypto.get(space)
        if r is None:
            r = d.crypto[space] = OffsetReassembler(max_held=1 << 16)
        head = d.crypto_head.get(space, b"")
        for kind, a, b in r.push(offset, data):
            if kind == "data" and len(head) < 128 and a == len(head):
                head += b[:128 - len(head)]
        d.crypto_head[space] = head
        if fc and conn.client_random is None:
            conn.client_random = client_hello_random(head)
        if not fc and conn.suite is None:
            conn.suite = server_hello_suite(head)

    def finish(self) -> List[QuicEvent]:
        """End of the capture: every open stream flushed and ended (holes as gaps)."""
        out: List[QuicEvent] = []
        for conn in self.connections:
            for fc, sid in list(conn.streams):
                self._stream_end(conn, fc, sid, conn.closed or "end of capture", out)
        return out


def _opens_as_client_initial(data: bytes, start: int, h) -> bool:
    """Does this Initial open with the client keys of its own DCID (RFC 9001 §5.2)? Only then
    does it start a connection."""
    try:
        k = PacketKeys(initial_secrets(h.dcid)[0])
        u = unprotect(data, start, h.pn_offset, h.end, k, -1)
        k.open(u.packet_number, u.header, u.ciphertext)
    except GbpLabError:
        return False
    return True


def _ptype_name(space: int) -> str:
    return {INITIAL: "Initial", ZERO_RTT: "0-RTT", HANDSHAKE: "Handshake", RETRY: "Retry",
            ONE_RTT: "1-RTT"}.get(space, str(space))


def _canon(path: Hashable) -> Hashable:
    if isinstance(path, tuple) and len(path) == 4:
        a, b = path[:2], path[2:]
        return a + b if a <= b else b + a
    return path
