"""``TcpReassembler`` (one direction, RFC 9293 §3.4 sequence space) on segment sequences.

Input: a config byte (buffer/segment/hold limits, recent window), then operations: ``op`` byte
(``op & 3 == 3``: an ACK of ``u32``; else a segment: bit 2 = absolute ``u32`` seq, otherwise a
signed ``u16`` step from the last seq; ``flags`` byte; ``len`` byte and that many data bytes;
``missing`` = ``op >> 5`` bytes cut by the snap length), then ``finish()``.

Oracles: the events describe one stream — each ``StreamData`` starts where the previous data or
gap ended, gaps are non-empty; out-of-order memory stays within ``max_buffer_bytes`` (+ one
segment); and the ``in_order`` fast path (used as ``records.py`` does, for plain in-order data)
gives exactly the events ``segment`` alone gives.
"""
from __future__ import annotations

from typing import List, Tuple

from gbp_lab.capture.reassembly import StreamData, StreamGap, TcpReassembler

from ..common import Cursor, Limits

LIMITS = Limits()
MAX_LEN = 8192
_MASK = 0xFFFFFFFF
_PLAIN_BLOCKERS = 0x01 | 0x02 | 0x04  # FIN, SYN, RST


def _ops(data: bytes) -> Tuple[int, List[Tuple[str, int, int, bytes, int]]]:
    cur = Cursor(data)
    config = cur.u8()
    ops: List[Tuple[str, int, int, bytes, int]] = []
    seq = cur.uint(4)
    while cur.pos < len(data):
        op = cur.u8()
        if op & 3 == 3:
            ops.append(("ack", cur.uint(4), 0, b"", 0))
            continue
        if op & 4:
            seq = cur.uint(4)
        else:
            seq = (seq + cur.uint(2) - 0x8000) & _MASK
        flags = cur.u8()
        payload = cur.take(cur.u8())
        ops.append(("seg", seq, flags, payload, op >> 5))
        seq = (seq + len(payload)) & _MASK
    return config, ops


def _run(config: int, ops, fast: bool) -> List[str]:
    max_buffer = (64, 1024, 4 << 20)[config % 3]
    r = TcpReassembler(max_buffer_bytes=max_buffer, max_segments=(4, 2048)[config >> 2 & 1],
                       hold_segments=(2, 16)[config >> 3 & 1],
                       recent_window=(0, 64, 64 << 10)[(config >> 4) % 3])
    events: List[object] = []
    for i, (kind, seq, flags, payload, missing) in enumerate(ops):
        t = i / 1000
        if kind == "ack":
            events.extend(r.ack(seq, t))
            continue
        if fast and not flags & _PLAIN_BLOCKERS and not missing:
            off = r.in_order(seq, payload, t)
            if off >= 0:
                events.append(StreamData(off, payload, t))
                continue
        events.extend(r.segment(seq, flags, payload, t, missing))
        assert r.buffered_bytes <= max_buffer + 255 + 16 * 255, "out-of-order buffer over its bound"
    events.extend(r.finish())
    expected = None
    for ev in events:
        if isinstance(ev, StreamData):
            assert expected is None or ev.offset == expected, "StreamData does not continue the stream"
            expected = ev.offset + len(ev.data)
        elif isinstance(ev, StreamGap):
            assert ev.end > ev.start, "empty or reversed gap"
            assert expected is None or ev.start == expected, "StreamGap does not continue the stream"
            expected = ev.end
    return [repr(e) for e in events]


def check(data: bytes) -> None:
    config, ops = _ops(data)
    slow = _run(config, ops, fast=False)
    quick = _run(config, ops, fast=True)
    assert quick == slow, "the in_order fast path and segment() disagree"
