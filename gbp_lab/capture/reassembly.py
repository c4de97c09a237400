"""TCP stream reassembly (one direction) with gap reporting, and record re-synchronisation.

:class:`TcpReassembler` turns the TCP segments of one direction (RFC 9293 §3.4 sequence space,
32-bit wrap-around) into an ordered byte stream, as events:

* :class:`StreamData` — contiguous bytes at a stream offset (offset 0 = first byte after the SYN,
  or, without a SYN, the lowest sequence number seen during the initial hold window);
* :class:`StreamGap` — bytes that will never arrive (``start``..``end``, time of the last data
  before the hole and of the packet that exposed it) and why: the out-of-order buffer overflowed,
  the capture truncated a segment (snap length), a FIN/RST or the end of the capture left a hole;
* :class:`StreamNotice` — bytes outside the stream that are dropped (data before the start
  chosen without a SYN, data after FIN/RST), and retransmissions whose bytes differ from the
  first copy (``conflict``: possible injection or a broken middlebox);
* :class:`StreamEnd` — FIN reached, RST, or end of capture.

Retransmissions and overlaps are deduplicated: the first captured copy of a byte wins; the last
``recent_window`` delivered bytes are kept to compare retransmissions against. A peer's ACK above a hole that has buffered data behind it proves the
hole's bytes were sent and received, so it is reported at once (:meth:`TcpReassembler.ack`). Memory is bounded:
out-of-order segments are kept up to ``max_buffer_bytes`` / ``max_segments``; beyond that the hole
in front of them is declared a gap. The reassembler is sans-IO: it never looks at a clock, only at
the packet times it is given.

The re-synchronisation helpers (:func:`plausible_header`, :func:`find_resync_point`) find the next
GBP record (``u32-LE length ‖ CBOR GbpFrame``, reference gbp_rfc.md §3, MAX_FRAME 1 MiB) in bytes
that follow a gap or garbage: a length ≤ 1 MiB, then a CBOR map header (major type 5, 0xA1–0xB7)
whose first key is the text string ``"v"`` (0x61 0x76) with value 1 — the reference always writes
``v`` first.
"""
from __future__ import annotations

import heapq
import struct
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

from gbp_lab.core.gbp.framing import MAX_RECORD, find_resync_point, plausible_header, plausible_start

from .pcap import TCP_FIN, TCP_RST, TCP_SYN

__all__ = [
    "MAX_RECORD",
    "StreamStart",
    "StreamData",
    "StreamGap",
    "StreamNotice",
    "StreamEnd",
    "StreamEvent",
    "TcpReassembler",
    "plausible_header",
    "plausible_start",
    "find_resync_point",
]

_MASK = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class StreamStart:
    """The stream's base is fixed. ``syn`` tells whether offset 0 is a true stream start."""

    time: float
    syn: bool
    isn: int  #: sequence number of offset 0


@dataclass(frozen=True, slots=True)
class StreamData:
    offset: int
    data: bytes
    time: float


@dataclass(frozen=True, slots=True)
class StreamGap:
    start: int
    end: int
    time_before: float  #: time of the last packet delivered before the hole (NaN if none)
    time: float  #: time of the packet that exposed the hole
    reason: str

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class StreamNotice:
    kind: str  #: "before-start" | "after-end" | "conflict"
    start: int
    end: int
    time: float
    detail: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    offset: int
    time: float
    reason: str  #: "fin" | "rst" | "eof"


StreamEvent = Union[StreamStart, StreamData, StreamGap, StreamNotice, StreamEnd]


class TcpReassembler:
    """Reassemble one direction of a TCP connection (sans-IO; see module docstring).

    Call :meth:`segment` for every TCP segment of the direction in capture order and
    :meth:`finish` at the end of the capture; both return the events they produced.
    """

    __slots__ = ("max_buffer_bytes", "max_segments", "hold_segments", "isn", "syn", "next",
                 "_heap", "_heap_bytes", "_counter", "_hold", "_hold_bytes", "fin_offset",
                 "ended", "_last_time", "retransmitted_bytes", "stats_gaps", "acked",
                 "recent_window", "_recent", "_recent_start")

    def __init__(self, *, max_buffer_bytes: int = 4 << 20, max_segments: int = 2048,
                 hold_segments: int = 16, recent_window: int = 64 << 10) -> None:
        self.max_buffer_bytes = max_buffer_bytes
        self.max_segments = max_segments
        self.hold_segments = hold_segments
        self.isn: Optional[int] = None  # seq of offset 0
        self.syn = False
        self.next = 0  # next offset to deliver
        self._heap: List[Tuple[int, int, bytes, float, int]] = []  # (off, n, data, time, missing)
        self._heap_bytes = 0
        self._counter = 0
        self._hold: List[Tuple[int, int, bytes, float, int]] = []  # (seq, flags, data, time, missing)
        self._hold_bytes = 0
        self.fin_offset: Optional[int] = None
        self.ended: Optional[str] = None
        self._last_time = float("nan")
        self.retransmitted_bytes = 0
        self.stats_gaps = 0
        self.acked = 0  # highest offset the peer acknowledged
        self.recent_window = recent_window  # delivered bytes kept to compare retransmissions
        self._recent = bytearray()
        self._recent_start = 0

    # -- public ----------------------------------------------------------------------------------
    def segment(self, seq: int, flags: int, data: bytes, time: float, missing: int = 0
                ) -> List[StreamEvent]:
        """Feed one segment: ``seq`` (32-bit), TCP ``flags``, captured payload ``data``, packet
        ``time``, and ``missing`` payload bytes the capture cut off (snap length)."""
        out: List[StreamEvent] = []
        if self.ended is not None:
            if data and self.ended != "eof":
                out.append(StreamNotice("after-end", -1, -1, time,
                                        f"{len(data)} payload bytes after {self.ended.upper()}"))
            return out
        if self.isn is None:
            if flags & TCP_SYN:
                self.isn = (seq + 1) & _MASK
                self.syn = True
                out.append(StreamStart(time, True, self.isn))
                held, self._hold, self._hold_bytes = self._hold, [], 0
                for h in held:
                    self._accept(*h, out)
                if data or flags & (TCP_FIN | TCP_RST):  # data on a SYN (TFO): after the SYN byte
                    self._accept((seq + 1) & _MASK, flags & ~TCP_SYN, data, time, missing, out)
                return out
            if not data and not flags & (TCP_FIN | TCP_RST):
                return out  # a bare ACK tells nothing about the base
            self._hold.append((seq, flags, data, time, missing))
            self._hold_bytes += len(data)
            if (len(self._hold) >= self.hold_segments or self._hold_bytes >= self.max_buffer_bytes
                    or flags & (TCP_FIN | TCP_RST)):
                self._release_hold(out)
            return out
        self._accept(seq, flags, data, time, missing, out)
        return out

    def in_order(self, seq: int, data: bytes, time: float) -> int:
        """Fast path for the common segment: plain data (no SYN/FIN/RST — the caller checks the
        flags — nothing cut by the snap length) starting exactly at the next expected byte, with
        nothing buffered out of order and no FIN seen. Then :meth:`segment` would emit exactly one
        ``StreamData(offset, data, time)``; this method updates the state the same way and returns
        that ``offset`` without building the event. Returns -1 (state untouched) for every other
        segment: the caller must then use :meth:`segment`."""
        isn = self.isn
        if (isn is None or self._heap or self.ended is not None or self.fin_offset is not None
                or not data or seq != (isn + self.next) & _MASK):
            return -1
        off = self.next
        self.next = off + len(data)
        self._last_time = time
        if self.recent_window:
            rec = self._recent
            rec += data
            if len(rec) > 2 * self.recent_window:
                cut = len(rec) - self.recent_window
                del rec[:cut]
                self._recent_start += cut
        return off

    def ack(self, ack: int, time: float) -> List[StreamEvent]:
        """The peer acknowledged up to ``ack`` (its ACK field, RFC 9293 §3.4): bytes below that
        were received, so a hole below it followed by buffered data will never be filled in this
        capture — report it now instead of waiting for the buffer limit."""
        out: List[StreamEvent] = []
        if self.isn is None or self.ended is not None:
            return out
        off = self._offset(ack)
        if off <= self.acked:
            return out
        self.acked = off
        self._ack_gaps(time, out)
        return out

    def _ack_gaps(self, time: float, out: List[StreamEvent]) -> None:
        while self._heap and self.next < self._heap[0][0] <= self.acked:
            self._force_gap(time, "bytes acknowledged by the peer were never captured", out)
        if (not self._heap and self.fin_offset is not None and self.ended is None
                and self.next < min(self.acked, self.fin_offset)):
            self._gap(min(self.acked, self.fin_offset), time,
                      "bytes acknowledged by the peer were never captured", out)
            self._check_fin(time, out)

    def finish(self, time: Optional[float] = None) -> List[StreamEvent]:
        """End of capture: release everything held, report remaining holes, emit StreamEnd."""
        out: List[StreamEvent] = []
        if time is None:
            time = self._last_time
        if self.isn is None:
            if not self._hold:
                return out
            self._release_hold(out)
        if self.ended is None:
            while self._heap:
                self._force_gap(time, "end of capture with bytes missing before buffered data", out)
            if self.ended is not None:
                pass
            elif self.fin_offset is not None and self.next < self.fin_offset:
                self._gap(self.fin_offset, time, "end of capture with bytes missing before FIN", out)
                self._end("fin", time, out)
            else:
                self._end("eof", time, out)
        return out

    @property
    def buffered_bytes(self) -> int:
        return self._heap_bytes + self._hold_bytes

    # -- internals -------------------------------------------------------------------------------
    def _release_hold(self, out: List[StreamEvent]) -> None:
        held, self._hold, self._hold_bytes = self._hold, [], 0
        # the lowest sequence number carrying data (a bare RST may carry any number)
        cands = [h for h in held if h[2] or h[4] or h[1] & TCP_FIN] or held
        base = cands[0][0]
        for h in cands[1:]:
            if ((h[0] - base) & _MASK) >= 0x80000000:  # h is before base (signed compare)
                base = h[0]
        self.isn = base
        out.append(StreamStart(held[0][3], False, base))
        for h in held:
            self._accept(*h, out)

    def _offset(self, seq: int) -> int:
        d = (seq - self.isn - self.next) & _MASK  # distance from the next expected byte
        if d >= 0x80000000:
            d -= 0x100000000
        return self.next + d

    def _accept(self, seq: int, flags: int, data: bytes, time: float, missing: int,
                out: List[StreamEvent]) -> None:
        if self.ended is not None:
            if data:
                out.append(StreamNotice("after-end", -1, -1, time,
                                        f"{len(data)} payload bytes after {self.ended.upper()}"))
            return
        off = self._offset(seq)
        n = len(data)
        end = off + n + missing
        if off < 0 and (n or missing):
            lost_end = min(end, 0)
            out.append(StreamNotice("before-start", off, lost_end, time,
                                    f"{lost_end - off} bytes before the stream start dropped"))
            if end <= 0:
                data, missing, n = b"", 0, 0
            else:
                cut = -off
                if cut >= n:
                    missing -= cut - n
                    data, n = b"", 0
                else:
                    data, n = data[cut:], n - cut
                off = 0
        if flags & TCP_FIN and self.fin_offset is None:
            self.fin_offset = off + n + missing
        if self.fin_offset is not None and off + n + missing > self.fin_offset and n:
            keep = max(0, self.fin_offset - off)
            if keep < n:
                out.append(StreamNotice("after-end", off + keep, off + n, time,
                                        f"{n - keep} bytes beyond FIN ignored"))
                data, n, missing = data[:keep], keep, 0
        if n or missing:
            if off <= self.next:
                if off + n + missing <= self.next:
                    self.retransmitted_bytes += n
                    self._compare(off, data, time, out)
                else:
                    self._deliver(off, data, time, missing, out)
                    self._drain(out)
            else:
                heapq.heappush(self._heap, (off, self._counter, data, time, missing))
                self._counter += 1
                self._heap_bytes += n
                while self._heap and (self._heap_bytes > self.max_buffer_bytes
                                      or len(self._heap) > self.max_segments):
                    self._force_gap(time, "out-of-order buffer limit reached: bytes never captured",
                                    out)
                if self.acked > self.next:
                    self._ack_gaps(time, out)
        if flags & TCP_RST:
            while self._heap:
                self._force_gap(time, "connection reset with bytes missing", out)
            self._end("rst", time, out)
            return
        self._check_fin(time, out)

    def _check_fin(self, time: float, out: List[StreamEvent]) -> None:
        if self.fin_offset is not None and self.next >= self.fin_offset and self.ended is None:
            self._end("fin", time, out)

    def _deliver(self, off: int, data: bytes, time: float, missing: int,
                 out: List[StreamEvent]) -> None:
        """Deliver a segment that starts at or before ``self.next`` and ends after it."""
        skip = self.next - off
        if skip < len(data):
            chunk = data[skip:] if skip > 0 else data
            if skip > 0:
                self.retransmitted_bytes += skip
                self._compare(off, data[:skip], time, out)
            out.append(StreamData(self.next, chunk, time))
            self.next += len(chunk)
            self._last_time = time
            if self.recent_window:
                rec = self._recent
                rec += chunk
                if len(rec) > 2 * self.recent_window:
                    cut = len(rec) - self.recent_window
                    del rec[:cut]
                    self._recent_start += cut
        elif skip > 0:
            self.retransmitted_bytes += len(data)
            self._compare(off, data, time, out)
        if missing:
            end = off + len(data) + missing
            if end > self.next:
                self._gap(end, time, "segment truncated by the capture (snap length)", out)

    def _drain(self, out: List[StreamEvent]) -> None:
        heap = self._heap
        while heap and heap[0][0] <= self.next:
            off, _c, data, time, missing = heapq.heappop(heap)
            self._heap_bytes -= len(data)
            if off + len(data) + missing <= self.next:
                self.retransmitted_bytes += len(data)
                self._compare(off, data, time, out)
                continue
            self._deliver(off, data, time, missing, out)

    def _force_gap(self, time: float, reason: str, out: List[StreamEvent]) -> None:
        target = self._heap[0][0]
        if target > self.next:
            self._gap(target, time, reason, out)
        self._drain(out)
        self._check_fin(time, out)

    def _gap(self, end: int, time: float, reason: str, out: List[StreamEvent]) -> None:
        out.append(StreamGap(self.next, end, self._last_time, time, reason))
        self.stats_gaps += 1
        self.next = end
        self._recent = bytearray()
        self._recent_start = end

    def _compare(self, off: int, data: bytes, time: float, out: List[StreamEvent]) -> None:
        """A retransmission of delivered bytes: report it if it carries different bytes."""
        lo = max(off, self._recent_start)
        hi = min(off + len(data), self._recent_start + len(self._recent))
        if hi > lo and data[lo - off:hi - off] != self._recent[lo - self._recent_start:
                                                               hi - self._recent_start]:
            out.append(StreamNotice("conflict", lo, hi, time,
                                    f"retransmitted bytes [{lo}, {hi}) differ from the first "
                                    f"captured copy, which was kept"))

    def _end(self, reason: str, time: float, out: List[StreamEvent]) -> None:
        self.ended = reason
        self._heap.clear()
        self._heap_bytes = 0
        out.append(StreamEnd(self.next, time, reason))


# record re-synchronisation: the record-header facts live with the record splitter
# (:mod:`gbp_lab.core.gbp.framing`); re-exported here
