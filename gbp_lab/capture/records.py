"""The capture pipeline: packets → flows → byte streams → length-prefixed records → items.

Each :class:`RecordItem` carries the packet time, addresses, ports, a flow id, and either the record
body (``data``: the bytes after the ``u32-LE length`` prefix — a CBOR GbpFrame, or a raw MLS
KeyPackage/Welcome blob, reference gbp_rfc.md §3) or an ``error`` description with a stable ``vid``.
Nothing is lost silently: gaps, garbage, oversize lengths, records cut by FIN/RST/end of capture,
truncated datagrams, IP datagrams whose fragments never all arrived, a truncated file and unknown
link types all become error items. IP fragments are reassembled first
(:class:`~.defrag.IpDefragmenter`).

Transports:

* TCP on the GBP ports (7878 by default) — per direction :class:`~.reassembly.TcpReassembler` +
  :class:`RecordAssembler`; on any other port a heuristic decides per flow from the first data
  segments (a plausible record header, see :func:`~.reassembly.plausible_start`);
* UDP — one frame per datagram (the lab's convention; the reference has no UDP transport). A
  datagram that starts with its own ``u32-LE length`` prefix (= size − 4) has the prefix removed;
* QUIC (UDP datagrams on the GBP ports, or with ``heuristic`` anywhere, that are QUIC v1:
  :meth:`.quicflows.QuicFlows.wants`) — decrypted with the key log's TLS secrets
  (``quic_secrets``) and each QUIC stream split into records like a TCP direction
  (:mod:`.quicflows`, items with ``transport == "quic"``).

Speed: the bulk readers use :func:`iter_item_tuples` (items as plain tuples in
:class:`RecordItem` field order, packets as tuples from
:meth:`~.pcapfile.CaptureReader.iter_tuples`). :meth:`RecordPipeline._feed` takes the common
Ethernet/IPv4/TCP packet through the one decoder's fast path (:func:`.packets.eth_ipv4_tcp`: one
``struct`` call, a raw flow key) and hands an in-order segment of an open GBP flow
(:meth:`~.reassembly.TcpReassembler.in_order`) straight to :meth:`RecordAssembler.data`,
which splits the records in bulk; every other packet takes the general path, which yields the
same items (the general path is what :meth:`RecordPipeline.packet` runs).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass, fields
from itertools import starmap as _starmap
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from gbp_lab.core.gbp.framing import (MAX_RECORD, RecordReader, find_resync_point,
                                      plausible_header, plausible_start)

from .columns import representable_ns
from .defrag import IpDefragmenter, PendingDatagram
from .packets import (TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, decode_packet, eth_ipv4_tcp,
                      flow_key_parts, link_supported)
from .pcapfile import NS_PER_SECOND, CaptureReader, Packet, time_ns
from .quicflows import QuicFlows
from .reassembly import StreamData, StreamEnd, StreamGap, StreamStart, TcpReassembler

__all__ = [
    "iter_item_batches",
    "iter_item_tuples",
    "ITEM_FIELDS",
    "GBP_PORT",
    "RecordItem",
    "RecordAssembler",
    "RecordPipeline",
    "PipelineStats",
    "iter_records",
    "read_records",
]

GBP_PORT = 7878
_U32 = struct.Struct("<I")
_SYN_FIN_RST = TCP_SYN | TCP_FIN | TCP_RST


@dataclass(frozen=True, slots=True)
class RecordItem:
    """One record (``data`` set) or one defect (``error`` + ``vid`` set). ``time``: the packet's
    integer nanoseconds since the epoch (:func:`~.pcapfile.time_ns`; NaN: no timestamp)."""

    time: float
    src: Optional[str]
    sport: Optional[int]
    dst: Optional[str]
    dport: Optional[int]
    flow_id: Optional[int]
    transport: Optional[str]  #: "tcp" | "udp" | "quic" | None (file-level defects)
    offset: Optional[int]  #: stream offset of the length prefix (TCP) / of the defect
    data: Optional[bytes] = None
    error: Optional[str] = None
    vid: Optional[str] = None
    packet: Optional[int] = None  #: index of the packet that completed the record

    @property
    def ok(self) -> bool:
        return self.error is None


#: the field order of an item tuple (the bulk readers' items: :func:`iter_item_tuples`,
#: :func:`iter_item_batches`), = :class:`RecordItem`'s fields
ITEM_FIELDS = tuple(f.name for f in fields(RecordItem))


@dataclass
class PipelineStats:
    packets: int = 0
    non_ip: int = 0
    tcp_segments: int = 0
    udp_datagrams: int = 0
    quic_datagrams: int = 0
    records: int = 0
    errors: int = 0
    flows: int = 0
    gbp_flows: int = 0
    gaps: int = 0
    gap_bytes: int = 0
    retransmitted_bytes: int = 0
    fragments: int = 0
    lost_fragment_datagrams: int = 0  #: incomplete datagrams not known to be GBP
    unknown_linktype_packets: int = 0
    #: the first packet's time that a table can hold (:func:`.columns.representable_ns`: a
    #: corrupted timestamp is skipped), integer nanoseconds (NaN: none yet) — ``rel_time`` 0.
    #: Fixed once set, so every chunk of a streamed read measures from the same packet.
    first_time: float = math.nan


# ------------------------------------------------------------------------------------------------
# length-prefixed records over a byte stream: the core's one splitter, in its observer's mode
# ------------------------------------------------------------------------------------------------
class RecordAssembler(RecordReader):
    """One direction's record splitter: :class:`~gbp_lab.core.gbp.framing.RecordReader` with
    ``resync=True`` (methods :meth:`~RecordReader.data`, :meth:`~RecordReader.gap`,
    :meth:`~RecordReader.end`, :meth:`~RecordReader.set_start`, :meth:`~RecordReader.whole`
    return ``(offset, body, error, vid, time)`` tuples; after a gap, garbage or an oversize
    length it re-synchronises on the next plausible GBP frame header)."""

    def __init__(self, *, syn: bool = True, max_record: int = MAX_RECORD) -> None:
        super().__init__(max_record=max_record, resync=True, syn=syn)


# ------------------------------------------------------------------------------------------------
# flows
# ------------------------------------------------------------------------------------------------
class _Dir:
    """One direction of a TCP flow: its reassembler and record splitter; ``peer`` is the other
    direction once it exists, ``ident`` what every item of this direction starts with.
    ``held``: ``(time, packet index)`` of the data segments the reassembler holds while a
    mid-stream flow's base is unknown, so their records name the packet that carried them
    (not the one that happened to release the hold)."""

    __slots__ = ("src", "sport", "dst", "dport", "reasm", "asm", "peer", "ident", "held")

    def __init__(self, src, sport, dst, dport, reasm_kw, fid: int) -> None:
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport
        # both become stand-ins when the flow closes (_ClosedReasm, None): Any
        self.reasm: Any = TcpReassembler(**reasm_kw)
        self.asm: Any = RecordAssembler(syn=True)
        self.peer: Optional["_Dir"] = None
        self.ident = (src, sport, dst, dport, fid)
        self.held: List[Tuple[float, Optional[int]]] = []


class _Flow:
    __slots__ = ("id", "gbp", "dirs", "pending", "probes", "closed", "last_time", "udp")

    def __init__(self, fid: int, gbp: Optional[bool], udp: bool = False) -> None:
        self.id = fid
        self.gbp = gbp
        self.dirs: Dict[tuple, _Dir] = {}
        self.pending: list = []
        self.probes = 0
        self.closed = False
        self.last_time = math.nan
        self.udp = udp


class RecordPipeline:
    """Packets in, :class:`RecordItem` out (sans-IO: feed :class:`~.pcapfile.Packet` objects).

    ``ports``: TCP/UDP ports that carry GBP. ``heuristic``: also look for GBP on other ports
    (per flow, from the first ``probe_packets`` data packets). ``reasm_kw`` tunes the reassembler.
    ``quic_secrets(client_random)``: a QUIC connection's TLS secrets by label
    (:meth:`~gbp_lab.core.keylog.KeyLog.tls_secrets`); without it QUIC streams are not read (one
    ``QUIC-KEYS-MISSING`` error per connection). :attr:`quic_flows`: flow id → (QUIC connection,
    stream id) of the QUIC stream flows.
    """

    #: packets between two sweeps of the flow table
    SWEEP_EVERY = 8192

    def __init__(self, *, ports: Sequence[int] = (GBP_PORT,), heuristic: bool = True,
                 udp: bool = True, probe_packets: int = 4, forget_after: float = 120.0,
                 quic_secrets=None, **reasm_kw) -> None:
        self.ports = frozenset(ports)
        self.heuristic = heuristic
        self.udp = udp
        self.probe_packets = probe_packets
        self.reasm_kw = reasm_kw
        self.forget_after = forget_after
        self.stats = PipelineStats()
        self._flows: Dict[tuple, _Flow] = {}
        self._next_flow = 0
        self._bad_links: Dict[int, int] = {}
        self._defrag = IpDefragmenter()
        self._last_time = math.nan
        self._last_index: Optional[int] = None
        self._open_dirs: Dict[bytes, tuple] = {}  # raw addresses+ports -> (flow, dir), hot path
        self._quic = QuicFlows(quic_secrets, lambda: self._new_flow(True, udp=True).id,
                               RecordAssembler, self.stats)
        #: flow id → (QUIC connection name, stream id), for the ``frames`` table
        self.quic_flows = self._quic.flows

    # -- packets ---------------------------------------------------------------------------------
    def packet(self, pkt: Packet) -> List[RecordItem]:
        out: list = []
        st = self.stats
        st.packets += 1
        if pkt.time == pkt.time:  # pipeline times: integer nanoseconds (NaN: none)
            pkt = Packet(pkt.index, pkt.interface, pkt.linktype,
                         time_ns(pkt.ts_ticks, pkt.ts_units), pkt.ts_ticks, pkt.ts_units,
                         pkt.origlen, pkt.data)
            if st.first_time != st.first_time and representable_ns(pkt.time):
                st.first_time = pkt.time
            self._last_time = pkt.time
        self._last_index = pkt.index
        if st.packets % self.SWEEP_EVERY == 0:
            self._sweep()
        self._packet(pkt, out)
        return [RecordItem(*t) for t in out]

    def _feed(self, t: tuple, out: list) -> None:
        """Hot path of :meth:`packet` for a packet tuple (:meth:`.pcapfile.CaptureReader.iter_tuples`)
        appending item tuples (:class:`RecordItem` field order) to ``out``.

        The common case — Ethernet / IPv4 without options or fragmentation / TCP without
        SYN/FIN/RST, fully captured, on a known GBP flow whose direction is already open — is
        parsed by the decoder's fast path (:func:`.packets.eth_ipv4_tcp`), and a segment at the
        expected sequence number goes straight to the record splitter
        (:meth:`.reassembly.TcpReassembler.in_order`). Everything else takes the general path
        (:func:`.packets.decode_packet`, :meth:`_packet`), which gives the same result for the
        common case too."""
        index, _iface, linktype, time, ticks, units, _orig, data = t
        st = self.stats
        st.packets += 1
        if time == time:  # not NaN; pipeline times are integer nanoseconds (time_ns)
            time = ticks * 1_000_000_000 // units
            if st.first_time != st.first_time and representable_ns(time):
                st.first_time = time
            self._last_time = time
        self._last_index = index
        if st.packets % self.SWEEP_EVERY == 0:
            self._sweep()
        fast = eth_ipv4_tcp(linktype, data)
        if fast is not None:
            ck, seq, ack, flags, payload = fast
            if not flags & _SYN_FIN_RST:
                ent = self._open_dirs.get(ck)
                if ent is None or ent[0].closed:
                    ent = self._open_dir(ck)
                if ent is not None:
                    f, dr = ent
                    st.tcp_segments += 1
                    f.last_time = time
                    reasm = dr.reasm
                    off = reasm.in_order(seq, payload, time) if payload else -1
                    if off >= 0:
                        asm = dr.asm
                        # the commonest segment of live traffic: exactly one whole record,
                        # the splitter at a record boundary (what asm.data would emit)
                        if asm.whole(off, payload):
                            src, sp, dst, dp, fid = dr.ident
                            out.append((time, src, sp, dst, dp, fid, "tcp", off, payload[4:],
                                        None, None, index))
                            st.records += 1
                        else:
                            res = asm.data(off, payload, time)
                            if res:
                                self._emit(f, dr, res, index, out)
                    else:
                        if payload and reasm.isn is None:
                            dr.held.append((time, index))
                        events = reasm.segment(seq, flags, payload, time, 0)
                        if events:
                            self._events(f, dr, events, index, out)
                    other = dr.peer
                    if other is not None:
                        oreasm = other.reasm
                        if flags & TCP_ACK and oreasm.ended is None:
                            events = oreasm.ack(ack, time)
                            if events:
                                self._events(f, other, events, index, out)
                        if oreasm.ended is not None and reasm.ended is not None:
                            self._mark_closed(f)
                    return
        self._packet(Packet(index, _iface, linktype, time, ticks, units, _orig, data), out)

    def _open_dir(self, ck: bytes):
        """``(flow, direction)`` for the hot path if the packet's flow is an open GBP flow whose
        direction exists, else ``None``; remembered in ``_open_dirs`` (bounded) under the raw
        address/port bytes (:data:`.packets.FastTcp4`'s ``flow_key``). An entry stays valid while
        its flow is open: a flow is replaced or forgotten only after it is closed, and a direction
        object is never replaced."""
        cache = self._open_dirs
        cache.pop(ck, None)
        src, sport, dst, dport = flow_key_parts(ck)
        key = ((6, src, sport, dst, dport) if (src, sport) <= (dst, dport)
               else (6, dst, dport, src, sport))
        f = self._flows.get(key)
        if f is None or f.gbp is not True or f.closed:
            return None
        dr = f.dirs.get((src, sport))
        if dr is None:
            return None
        if len(cache) >= 65536:
            cache.clear()
        ent = cache[ck] = (f, dr)
        return ent

    def _packet(self, pkt: Packet, out: list) -> None:
        """The general path of :meth:`packet` (counters already updated)."""
        st = self.stats
        d = decode_packet(pkt.linktype, pkt.data)
        if d is None:
            if not link_supported(pkt.linktype):
                st.unknown_linktype_packets += 1
                if pkt.interface not in self._bad_links:
                    self._bad_links[pkt.interface] = pkt.linktype
                    out.append(self._err(pkt, None, f"unsupported link type {pkt.linktype} on "
                                                    f"interface {pkt.interface}: its packets are "
                                                    f"not decoded", "CAP-LINKTYPE"))
            else:
                st.non_ip += 1
            return
        if d.fragment:
            st.fragments += 1
            whole, dropped = self._defrag.push(d, pkt.time)
            for e in dropped:
                self._lost_datagram(e, pkt, out)
            if whole is None:
                return
            d = whole
        if d.proto == 17:
            if self.udp:
                self._udp(pkt, d, out)
            return
        st.tcp_segments += 1
        self._tcp(pkt, d, out)

    def _sweep(self) -> None:
        """Forget flows that hold nothing: closed or non-GBP, and idle for ``forget_after``
        seconds of capture time (memory stays bounded on long captures). Open GBP flows are
        kept: their ids must not change."""
        now = self._last_time
        if now != now:
            return
        limit = now - self.forget_after * NS_PER_SECOND
        stale = [k for k, f in self._flows.items()
                 if (f.closed or f.gbp is False) and f.last_time < limit]
        for k in stale:
            del self._flows[k]

    def _lost_datagram(self, e: PendingDatagram, pkt: Optional[Packet], out: list) -> None:
        """Report an IP datagram whose fragments never all arrived, if it was GBP's."""
        sport, dport = e.ports
        if sport in self.ports or dport in self.ports:
            have = e.size
            total = f"of {e.total} " if e.total is not None else ""
            why = "a fragment was cut by the capture" if e.truncated else "fragments missing"
            out.append(self._err(pkt, None, f"IP datagram {e.src}:{sport} > {e.dst}:{dport} "
                                            f"not reassembled ({e.reason}; {why}): {have} "
                                            f"{total}bytes captured", "IP-FRAGMENTS",
                                 time=e.first_time))
        else:
            self.stats.lost_fragment_datagrams += 1

    def _err(self, pkt: Optional[Packet], d, error: str, vid: str, *, offset=None, flow_id=None,
             transport=None, time=None) -> tuple:
        self.stats.errors += 1
        if time is None:
            time = pkt.time if pkt is not None else self._last_time
        if d is not None:
            return (time, d.src, d.sport, d.dst, d.dport, flow_id, transport, offset,
                    None, error, vid, pkt.index if pkt is not None else self._last_index)
        return (time, None, None, None, None, flow_id, transport, offset, None, error, vid,
                pkt.index if pkt is not None else self._last_index)

    def _new_flow(self, gbp: Optional[bool], udp: bool = False) -> _Flow:
        f = _Flow(self._next_flow, gbp, udp)
        self._next_flow += 1
        self.stats.flows += 1
        if gbp:
            self.stats.gbp_flows += 1
        return f

    # -- UDP -------------------------------------------------------------------------------------
    def _udp(self, pkt: Packet, d, out: list) -> None:
        self.stats.udp_datagrams += 1
        on_port = d.sport in self.ports or d.dport in self.ports
        p = d.payload
        if (on_port or self.heuristic) and p:
            path = (d.src, d.sport, d.dst, d.dport)
            if self._quic.wants(p, path):
                if d.missing:
                    out.append(self._err(pkt, d, f"QUIC datagram truncated by the capture: "
                                                 f"{d.missing} of {len(p) + d.missing} bytes "
                                                 f"missing", "UDP-TRUNCATED", transport="quic"))
                    return
                self._quic.datagram(pkt.time, pkt.index, path, p, out)
                return
            if self._quic.orphan(pkt.time, pkt.index, path, p):  # QUIC of no known connection
                return
        prefixed = len(p) >= 4 and _U32.unpack_from(p, 0)[0] == len(p) + d.missing - 4
        if not on_port:
            if not self.heuristic:
                return
            body = p[4:] if prefixed else p
            if not (len(body) >= 4 and 0xA1 <= body[0] <= 0xB7 and body[1:4] == b"\x61\x76\x01"):
                return
        key = (17,) + _canon(d)
        f = self._flows.get(key)
        if f is None:
            f = self._flows[key] = self._new_flow(True, udp=True)
        f.last_time = pkt.time
        if d.missing:
            out.append(self._err(pkt, d, f"UDP datagram truncated by the capture: {d.missing} of "
                                         f"{len(p) + d.missing} payload bytes missing",
                                 "UDP-TRUNCATED", flow_id=f.id, transport="udp"))
            return
        if not p:
            out.append(self._err(pkt, d, "empty UDP datagram on a GBP port", "UDP-EMPTY",
                                 flow_id=f.id, transport="udp"))
            return
        self.stats.records += 1
        out.append((pkt.time, d.src, d.sport, d.dst, d.dport, f.id, "udp", None,
                    p[4:] if prefixed else p, None, None, pkt.index))

    # -- TCP -------------------------------------------------------------------------------------
    def _tcp(self, pkt: Packet, d, out: list) -> None:
        key = (6,) + _canon(d)
        f = self._flows.get(key)
        flags = d.flags
        new_conn = flags & TCP_SYN and not flags & TCP_ACK
        if f is not None and new_conn and (f.closed or f.gbp is False or self._flow_used(f, d)):
            self._close_flow(f, out)
            f = None
        if f is None:
            if not d.payload and not flags & (TCP_SYN | TCP_FIN | TCP_RST):
                return  # stray ACK of an unknown/closed connection
            on_port = d.sport in self.ports or d.dport in self.ports
            if not on_port and not self.heuristic:
                return
            f = self._flows[key] = self._new_flow(True if on_port else None)
        f.last_time = pkt.time
        if f.closed:
            self._after_close(f, pkt, d, out)
            return
        if f.gbp is False:
            return
        if f.gbp is None:
            f.pending.append((pkt, d))
            if d.payload:
                f.probes += 1
                if _looks_gbp(d.payload):
                    f.gbp = True
                    self.stats.gbp_flows += 1
                elif f.probes >= self.probe_packets:
                    f.gbp = False
            elif len(f.pending) > 4 * self.probe_packets + 8:
                f.gbp = False
            if f.gbp is None:
                return
            pending, f.pending = f.pending, []
            if not f.gbp:
                return
            self._replay(f, pending, out)
            return
        self._tcp_feed(f, pkt, d, out)

    def _after_close(self, f: _Flow, pkt: Packet, d, out: list) -> None:
        dr = f.dirs.get((d.src, d.sport))
        if dr is not None and dr.reasm.covers(d.seq, len(d.payload) + d.missing):
            return  # a late retransmission of bytes already seen
        if d.payload and f.gbp:
            out.append(self._err(pkt, d, f"{len(d.payload)} payload bytes after the connection "
                                         f"closed", "TCP-AFTER-CLOSE", flow_id=f.id,
                                 transport="tcp"))

    def _replay(self, f: _Flow, pending: list, out: list) -> None:
        """Feed the packets held while the heuristic was deciding."""
        for p2, d2 in pending:
            if f.closed:
                self._after_close(f, p2, d2, out)
            else:
                self._tcp_feed(f, p2, d2, out)

    @staticmethod
    def _flow_used(f: _Flow, d) -> bool:
        dr = f.dirs.get((d.src, d.sport))
        if dr is None:
            return bool(f.dirs) and any(x.reasm.ended for x in f.dirs.values())
        r = dr.reasm
        if r.isn is not None and ((d.seq + 1) & 0xFFFFFFFF) == r.isn:
            return False  # retransmitted SYN
        return r.isn is not None or r.ended is not None

    def _tcp_feed(self, f: _Flow, pkt: Packet, d, out: list) -> None:
        dk = (d.src, d.sport)
        dr = f.dirs.get(dk)
        if dr is None:
            dr = f.dirs[dk] = _Dir(d.src, d.sport, d.dst, d.dport, self.reasm_kw, f.id)
            other = f.dirs.get((d.dst, d.dport))
            if other is not None:
                dr.peer, other.peer = other, dr
        f.last_time = pkt.time
        if d.payload and dr.reasm.isn is None and dr.reasm.ended is None:
            dr.held.append((pkt.time, pkt.index))
        events = dr.reasm.segment(d.seq, d.flags, d.payload, pkt.time, d.missing)
        if events:
            self._events(f, dr, events, pkt.index, out)
        if d.flags & TCP_ACK and not d.flags & TCP_RST:
            other = f.dirs.get((d.dst, d.dport))
            if other is not None and other.reasm.ended is None:
                events = other.reasm.ack(d.ack, pkt.time)
                if events:
                    self._events(f, other, events, pkt.index, out)
        if d.flags & TCP_RST:
            # a reset ends both directions
            for other in f.dirs.values():
                if other is not dr and other.reasm.ended is None:
                    self._events(f, other, other.reasm.finish(pkt.time), pkt.index, out)
            self._mark_closed(f)
        elif all(x.reasm.ended for x in f.dirs.values()) and len(f.dirs) == 2:
            self._mark_closed(f)

    def _mark_closed(self, f: _Flow) -> None:
        f.closed = True
        for x in f.dirs.values():
            if isinstance(x.reasm, _ClosedReasm):
                continue
            self.stats.retransmitted_bytes += x.reasm.retransmitted_bytes
            x.asm = None  # release buffers
            x.reasm = _ClosedReasm(x.reasm)

    def _emit(self, f: _Flow, dr: _Dir, res: list, idx: Optional[int], out: list) -> None:
        """Record assembler results → item tuples (:class:`RecordItem` field order)."""
        st = self.stats
        src, sport, dst, dport, fid = dr.src, dr.sport, dr.dst, dr.dport, f.id
        append = out.append
        for off, body, err, vid, tm in res:
            append((tm, src, sport, dst, dport, fid, "tcp", off, body, err, vid, idx))
            if body is not None:
                st.records += 1
            else:
                st.errors += 1

    def _events(self, f: _Flow, dr: _Dir, events, idx: Optional[int], out: list) -> None:
        st = self.stats
        asm = dr.asm
        held = dr.held
        for ev in events:
            t = type(ev)
            if t is StreamData:
                res = asm.data(ev.offset, ev.data, ev.time)
                if held:
                    i = _held_index(held, ev.time, idx)
                    if res:
                        self._emit(f, dr, res, i, out)
                    continue
            elif t is StreamGap:
                st.gaps += 1
                st.gap_bytes += ev.size
                res = asm.gap(ev.start, ev.end, ev.time, ev.reason)
            elif t is StreamStart:
                asm.set_start(ev.syn)
                continue
            elif t is StreamEnd:
                res = asm.end(ev.time, ev.reason)
            else:  # StreamNotice
                res = [(ev.start if ev.start >= 0 else None, None, f"TCP: {ev.detail}",
                        "TCP-" + ev.kind.upper(), ev.time)]
            if res:
                self._emit(f, dr, res, idx, out)
        if held and dr.reasm.isn is not None:
            held.clear()  # the hold is released: later data carries its own packet

    def _close_flow(self, f: _Flow, out: list, time: Optional[float] = None) -> None:
        if f.closed:
            return
        if f.gbp is None and f.pending:
            f.gbp = any(_looks_gbp(d.payload) for _, d in f.pending if d.payload)
            pending, f.pending = f.pending, []
            if f.gbp:
                self.stats.gbp_flows += 1
                self._replay(f, pending, out)
        if f.gbp and not f.closed:
            t = time if time is not None else f.last_time
            for dr in f.dirs.values():
                self._events(f, dr, dr.reasm.finish(t), self._last_index, out)
            self._mark_closed(f)
        f.closed = True

    def finish(self) -> List[RecordItem]:
        """End of input: flush every open flow (holes → gaps, partial records → errors)."""
        return [RecordItem(*t) for t in self._finish()]

    def _finish(self) -> list:
        out: list = []
        for e in self._defrag.flush():
            self._lost_datagram(e, None, out)
        for f in list(self._flows.values()):
            self._close_flow(f, out)
        self._quic.finish(self._last_time, self._last_index, out)
        return out


def _held_index(held: List[Tuple[float, Optional[int]]], time: float,
                 default: Optional[int]) -> Optional[int]:
    """The packet index of the held segment of *time* (taken off the list), else *default*."""
    for k, (t, i) in enumerate(held):
        if t == time:
            del held[k]
            return i
    return default


class _ClosedReasm:
    """Stand-in for a finished reassembler (keeps only what closing needs)."""

    __slots__ = ("ended", "isn", "syn", "retransmitted_bytes", "end")

    def __init__(self, r: TcpReassembler) -> None:
        self.ended = r.ended or "closed"
        self.isn = r.isn
        self.syn = r.syn
        self.retransmitted_bytes = r.retransmitted_bytes
        self.end = r.next

    def covers(self, seq: int, n: int) -> bool:
        """Do bytes ``seq .. seq + n`` lie inside what the stream already delivered?"""
        if self.isn is None:
            return False
        off = (seq - self.isn) & 0xFFFFFFFF
        return off + n <= self.end

    def finish(self, time=None):
        return []

    def segment(self, *a, **k):
        return []

    def ack(self, *a, **k):
        return []


def _canon(d) -> tuple:
    a = (d.src, d.sport)
    b = (d.dst, d.dport)
    return a + b if a <= b else b + a


def _looks_gbp(payload: bytes) -> bool:
    """Heuristic for a TCP payload on a non-GBP port: a plausible record header at its start, or
    a strict GBP frame header inside it whose record ends exactly at the payload end or at another
    plausible header."""
    if plausible_start(payload, 0):
        return True
    pos = 0
    n = len(payload)
    while pos < n:
        p, found = find_resync_point(payload, pos)
        if not found:
            return False
        (length,) = _U32.unpack_from(payload, p)
        nxt = p + 4 + length
        if nxt == n or (nxt < n and plausible_header(payload, nxt)):
            return True
        pos = p + 1
    return False


# ------------------------------------------------------------------------------------------------
# convenience
# ------------------------------------------------------------------------------------------------
def iter_records(source, *, reader_out: Optional[list] = None, pipeline: Optional[RecordPipeline] = None,
                 on_packet=None, **kw) -> Iterator[RecordItem]:
    """Yield the :class:`RecordItem` of a capture (path, bytes or file object), file defects
    included. ``reader_out``, if given, receives the :class:`~.pcapfile.CaptureReader` (for its
    secrets) as soon as it is open. ``on_packet(packet)``, if given, is called for every packet
    read (progress reporting)."""
    on_raw = None if on_packet is None else (lambda t: on_packet(Packet(*t)))
    return _starmap(RecordItem, iter_item_tuples(source, reader_out=reader_out, pipeline=pipeline,
                                                 on_raw=on_raw, **kw))


def iter_item_tuples(source, *, reader_out: Optional[list] = None,
                     pipeline: Optional[RecordPipeline] = None, on_raw=None, **kw) -> Iterator[tuple]:
    """:func:`iter_records` without the objects: each item is a tuple in :class:`RecordItem`
    field order. ``on_raw(t)`` gets every packet tuple (:meth:`.pcapfile.CaptureReader.iter_tuples`)."""
    for batch in iter_item_batches(source, reader_out=reader_out, pipeline=pipeline,
                                   on_raw=on_raw, **kw):
        yield from batch


def iter_item_batches(source, *, reader_out: Optional[list] = None,
                      pipeline: Optional[RecordPipeline] = None, on_raw=None, reader=None,
                      **kw) -> Iterator[List[tuple]]:
    """The items of :func:`iter_item_tuples` as one list per packet that produced any (the bulk
    readers' hot path: no generator step per item). A list is valid until the next one is
    asked for (it is reused). ``reader``: a packet source used instead of opening ``source``
    — anything with :class:`~.pcapfile.CaptureReader`'s ``iter_tuples()``, ``secrets``,
    ``interfaces``, ``issues`` and ``close()`` (the live capture's followers and sniffer)."""
    pipe = pipeline or RecordPipeline(**kw)
    reader = CaptureReader(source) if reader is None else reader
    if reader_out is not None:
        reader_out.append(reader)
    feed = pipe._feed
    try:
        out: list = []
        if on_raw is None:
            for t in reader.iter_tuples():
                feed(t, out)
                if out:
                    yield out
                    out.clear()
        else:
            for t in reader.iter_tuples():
                on_raw(t)
                feed(t, out)
                if out:
                    yield out
                    out.clear()
        tail = [(pipe._last_time, None, None, None, None, None, None, issue.offset,
                 None, f"capture file: {issue.reason} (file offset {issue.offset})",
                 issue.vid, issue.packet_index) for issue in reader.issues]
        pipe.stats.errors += len(tail)
        tail += pipe._finish()
        if tail:
            yield tail
    finally:
        reader.close()


@dataclass
class RecordResult:
    items: List[RecordItem]
    reader: CaptureReader
    stats: PipelineStats

    @property
    def records(self) -> List[RecordItem]:
        return [i for i in self.items if i.error is None]

    @property
    def errors(self) -> List[RecordItem]:
        return [i for i in self.items if i.error is not None]


def read_records(source, **kw) -> RecordResult:
    """Read a whole capture into a :class:`RecordResult` (items, reader, stats)."""
    pipe = RecordPipeline(**kw)
    holder: list = []
    items = list(iter_records(source, reader_out=holder, pipeline=pipe))
    return RecordResult(items, holder[0], pipe.stats)
