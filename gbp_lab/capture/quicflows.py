"""GBP over QUIC in a capture: UDP datagrams → the core's QUIC observer → each QUIC stream's bytes →
the one record splitter → record items (``transport == "quic"``).

:class:`QuicFlows` is what :class:`~.records.RecordPipeline` hands a UDP datagram that is QUIC (a
v1 long header, or a short header of a connection it follows). The decryption, connection
tracking and reassembly by offset are the core's (:class:`gbp_lab.core.quic.observer.QuicObserver`,
RFC 9000 / RFC 9001); TLS secrets come from the key log by ClientHello random
(:meth:`gbp_lab.core.keylog.KeyLog.tls_secrets`). Each QUIC stream direction is a flow of its own
(``flow_id``; :attr:`QuicFlows.flows` maps it to the connection's name — its original DCID in
hex — and the stream id, the ``frames`` columns ``quic_connection`` / ``quic_stream``) with its
own record splitter (the TCP path's, reference gbp_rfc.md §3 framing), so gaps, oversize lengths
and records cut by the stream's end are reported exactly as for TCP. Observer errors (undecryptable
packets, ``QUIC-KEYS-MISSING`` once per connection, truncated datagrams …) become error items.

Short-header packets of no followed connection (a capture that starts mid-connection, or an
Initial captured after them) are not dropped silently: :meth:`QuicFlows.orphan` counts the
datagrams that look like one (RFC 9000 §17.3: header form 0, fixed bit 1, room for the header
protection sample) per UDP path, and at the end every such path that touches a QUIC server seen in
the capture (or became a connection later) gets one ``QUIC-NO-CONNECTION`` error row.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from gbp_lab.core.quic.observer import QuicEvent, QuicObserver, SecretsLookup

__all__ = ["QuicFlows", "NO_CONNECTION_VID"]

#: the error row of short-header packets that belong to no connection the capture shows the start of
NO_CONNECTION_VID = "QUIC-NO-CONNECTION"
_MAX_ORPHAN_PATHS = 4096  #: paths remembered (bounded memory on hostile input)


class QuicFlows:
    """The QUIC side of a record pipeline. ``new_flow()`` gives a new flow id;
    ``assembler()`` a record splitter (:class:`~.records.RecordAssembler`); ``stats`` the
    pipeline's counters."""

    def __init__(self, secrets: Optional[SecretsLookup], new_flow: Callable[[], int],
                 assembler: Callable[[], Any], stats: Any) -> None:
        self.observer = QuicObserver(secrets)
        self._new_flow = new_flow
        self._assembler = assembler
        self.stats = stats
        #: flow id → (connection name, stream id): the ``quic_connection``/``quic_stream`` columns
        self.flows: Dict[int, Tuple[str, int]] = {}
        self._streams: Dict[Tuple[int, bool, int], Tuple[int, Any, tuple]] = {}
        #: path (one direction's tuple, the first seen) → [time, index, datagrams] of the
        #: short-header-looking datagrams no connection claimed (see :meth:`orphan`)
        self._orphans: Dict[tuple, list] = {}
        self._server_count = 0
        self._server_set: Set[tuple] = set()

    def wants(self, payload: bytes, path: tuple) -> bool:
        """Is this UDP payload QUIC (a v1 long header, or a followed connection's packet)?"""
        return self.observer.is_quic_start(payload) or self.observer.known(payload, path)

    def datagram(self, time: Any, index: Optional[int], path: tuple, payload: bytes,
                 out: list) -> None:
        """Feed one datagram (``path`` = src, sport, dst, dport); item tuples go to ``out``."""
        self.stats.quic_datagrams += 1
        self._events(self.observer.datagram(payload, path), time, index, path, out)

    def orphan(self, time: Any, index: Optional[int], path: tuple, payload: bytes) -> bool:
        """A UDP payload :meth:`wants` declined: if it looks like a QUIC short-header packet
        (RFC 9000 §17.3: header form 0, fixed bit 1, at least 22 bytes: a connection id, packet
        number and the 16-byte sample of §5.4.2), count it for its path (both directions
        together); :meth:`finish` decides whether the path was QUIC. True when it is QUIC for
        sure already — to or from a QUIC server of the capture — and so no other reading's."""
        if len(payload) < 22 or payload[0] & 0xC0 != 0x40:
            return False
        back = path[2:] + path[:2]
        o = self._orphans.get(path) or self._orphans.get(back)
        if o is not None:
            o[2] += 1
        elif len(self._orphans) < _MAX_ORPHAN_PATHS:
            self._orphans[path] = [time, index, 1]
        servers = self._servers()
        return path[:2] in servers or path[2:] in servers

    def _servers(self) -> Set[tuple]:
        """(address, port) of the server of every connection seen so far."""
        conns = self.observer.connections
        if len(conns) != self._server_count:
            self._server_count = len(conns)
            self._server_set = {tuple(c.path[2:4]) for c in conns  # type: ignore[index]
                                if c.path is not None}
        return self._server_set

    def finish(self, time: Any, index: Optional[int], out: list) -> None:
        """End of input: every stream flushed (holes → gaps, cut records → errors); one
        ``QUIC-NO-CONNECTION`` row per path of orphan short-header packets that is QUIC."""
        self._no_connection(out)
        self._events(self.observer.finish(), time, index, None, out)

    def _no_connection(self, out: list) -> None:
        paths: Set[tuple] = {tuple(c.path) for c in self.observer.connections  # type: ignore[arg-type]
                             if c.path is not None}
        servers = {p[2:] for p in paths}
        for path, (t, i, n) in self._orphans.items():
            later = path in paths or path[2:] + path[:2] in paths
            if not later and path[:2] not in servers and path[2:] not in servers:
                continue  # no QUIC server of this capture on it: not ours to call QUIC
            why = ("before its connection's Initial (the capture has them out of order)" if later
                   else "whose connection's Initial the capture does not hold (it started "
                        "mid-connection?)")
            self.stats.errors += 1
            out.append((t,) + path + (None, "quic", 0, None,
                                      f"{n} QUIC short-header packet(s) between {path[0]}:{path[1]} "
                                      f"and {path[2]}:{path[3]} {why}: not read",
                                      NO_CONNECTION_VID, i))

    def _stream(self, ev: QuicEvent) -> Tuple[int, Any, tuple]:
        key = (ev.connection or 0, bool(ev.from_client), ev.stream_id or 0)
        s = self._streams.get(key)
        if s is None:
            conn = self.observer.connections[key[0]]
            place = _place(conn.path, key[1])
            fid = self._new_flow()
            self.flows[fid] = (conn.name, key[2])
            s = self._streams[key] = (fid, self._assembler(), place)
        return s

    def _events(self, events: List[QuicEvent], time: Any, index: Optional[int],
                path: Optional[tuple], out: list) -> None:
        st = self.stats
        for ev in events:
            kind = ev.kind
            if kind == "error":
                st.errors += 1
                place: tuple = path if path is not None else (None, None, None, None)
                fid = None
                if ev.connection is not None:
                    conn = self.observer.connections[ev.connection]
                    if conn.path is not None:
                        place = _place(conn.path, bool(ev.from_client))
                if ev.stream_id is not None:
                    fid = self._stream(ev)[0]
                out.append((time,) + place + (fid, "quic", ev.offset, None, ev.message, ev.vid,
                                              index))
                continue
            fid, asm, place = self._stream(ev)
            if kind == "data":
                res = asm.data(ev.offset, ev.data, time)
            elif kind == "gap":
                st.gaps += 1
                st.gap_bytes += ev.end - ev.offset
                res = asm.gap(ev.offset, ev.end, time, "QUIC: stream bytes never captured")
            else:  # end
                res = asm.end(time, f"QUIC stream {ev.stream_id} ended ({ev.message})")
                self._streams.pop((ev.connection or 0, bool(ev.from_client), ev.stream_id or 0),
                                  None)
            for off, body, err, vid, tm in res:
                if vid == "TCP-GAP":  # the splitter's gap report, said of a QUIC stream
                    vid, err = "QUIC-GAP", "QUIC stream" + err[3:]
                out.append((tm,) + place + (fid, "quic", off, body, err, vid, index))
                if body is not None:
                    st.records += 1
                else:
                    st.errors += 1


def _place(path: Any, from_client: bool) -> tuple:
    """``(src, sport, dst, dport)`` of a direction from the connection's first path (the client
    Initial's)."""
    p = tuple(path) if path is not None else (None, None, None, None)
    return p if from_client else p[2:] + p[:2]
