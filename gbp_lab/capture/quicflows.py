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
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from gbp_lab.core.quic.observer import QuicEvent, QuicObserver, SecretsLookup

__all__ = ["QuicFlows"]


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

    def wants(self, payload: bytes, path: tuple) -> bool:
        """Is this UDP payload QUIC (a v1 long header, or a followed connection's packet)?"""
        return self.observer.is_quic_start(payload) or self.observer.known(payload, path)

    def datagram(self, time: Any, index: Optional[int], path: tuple, payload: bytes,
                 out: list) -> None:
        """Feed one datagram (``path`` = src, sport, dst, dport); item tuples go to ``out``."""
        self.stats.quic_datagrams += 1
        self._events(self.observer.datagram(payload, path), time, index, path, out)

    def finish(self, time: Any, index: Optional[int], out: list) -> None:
        """End of input: every stream flushed (holes → gaps, cut records → errors)."""
        self._events(self.observer.finish(), time, index, None, out)

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
