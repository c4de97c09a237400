"""gbp_lab.capture.reassembly (TCP reassembly, gaps, resync) and the record assembler on top.

Streams are made of frames encoded by the reference wheel (``gbp_stack.encode_gbp_frame``); the
property tests feed the same stream whole, byte by byte, in random segmentations, shuffled within
a window, with retransmissions and overlaps, and require identical records."""
from __future__ import annotations

import random
import struct

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from gbp_lab.capture.pcap import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN
from gbp_lab.capture.reassembly import (
    MAX_RECORD,
    StreamData,
    StreamEnd,
    StreamGap,
    StreamNotice,
    StreamStart,
    TcpReassembler,
    find_resync_point,
    plausible_header,
    plausible_start,
)
from gbp_lab.capture.records import RecordAssembler

gbp_stack = pytest.importorskip("gbp_stack")
pytestmark = pytest.mark.interop

GID = bytes(range(16))
_rng = random.Random(5)
FRAMES = [gbp_stack.encode_gbp_frame(1, GID, 3, 2, 2, 101, 7, i + 1,
                                     bytes(_rng.randrange(256) for _ in range(_rng.randrange(17, 400))))
          for i in range(12)]


def _stream(frames):
    spans, out, off = [], b"", 0
    for f in frames:
        r = struct.pack("<I", len(f)) + f
        spans.append((off, off + len(r)))
        out += r
        off += len(r)
    return out, spans


STREAM, SPANS = _stream(FRAMES)


def _segments(data, cuts, isn):
    bounds = [0] + sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]
    return [((isn + 1 + a) & 0xFFFFFFFF, data[a:b], a) for a, b in zip(bounds, bounds[1:])]


def _run(packets, *, syn_isn=None, finish=True, **kw):
    """Feed (seq, flags, data, time[, missing]) tuples; return records, error vids, events."""
    r = TcpReassembler(**kw)
    a = RecordAssembler(syn=True)
    events, items = [], []
    if syn_isn is not None:
        events += r.segment(syn_isn, TCP_SYN, b"", 0.0)
    for p in packets:
        events += r.segment(*p)
    if finish:
        events += r.finish(99.0)
    for ev in events:
        if isinstance(ev, StreamStart):
            a.set_start(ev.syn)
        elif isinstance(ev, StreamData):
            items += a.data(ev.offset, ev.data, ev.time)
        elif isinstance(ev, StreamGap):
            items += a.gap(ev.start, ev.end, ev.time, ev.reason)
        elif isinstance(ev, StreamEnd):
            items += a.end(ev.time, ev.reason)
        elif isinstance(ev, StreamNotice):
            items.append((ev.start, None, ev.detail, "TCP-" + ev.kind.upper(), ev.time))
    records = [(off, body) for off, body, err, vid, t in items if body is not None]
    errors = [vid for off, body, err, vid, t in items if body is None]
    return records, errors, events, r


EXPECTED = [(a, f) for (a, _), f in zip(SPANS, FRAMES)]


def _bounded_shuffle(items, window, rnd):
    keyed = [(i + rnd.uniform(0, window), i, x) for i, x in enumerate(items)]
    return [x for _, _, x in sorted(keyed)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(1, len(STREAM) - 1), max_size=60),
       isn=st.integers(0, 0xFFFFFFFF), window=st.integers(0, 8), seed=st.integers(0, 2**32),
       retrans=st.integers(0, 6), syn=st.booleans())
@example(cuts=[], isn=0, window=0, seed=0, retrans=0, syn=True)  # whole stream in one segment
@example(cuts=list(range(1, len(STREAM))), isn=0xFFFFFF00, window=0, seed=0, retrans=0, syn=True)
def test_any_segmentation_gives_identical_records(cuts, isn, window, seed, retrans, syn):
    rnd = random.Random(seed)
    segs = _segments(STREAM, cuts, isn)
    order = _bounded_shuffle(segs, window, rnd)
    if syn:
        for _ in range(retrans):  # retransmissions and overlapping re-segmentations, later on
            a = rnd.randrange(len(STREAM))
            b = min(len(STREAM), a + rnd.randrange(1, 600))
            order.insert(rnd.randrange(len(order) // 2, len(order) + 1),
                         ((isn + 1 + a) & 0xFFFFFFFF, STREAM[a:b], a))
    packets = [(seq, TCP_ACK, data, float(i)) for i, (seq, data, _) in enumerate(order)]
    records, errors, events, r = _run(packets, syn_isn=isn if syn else None)
    assert errors == []
    assert records == EXPECTED
    assert sum(len(e.data) for e in events if isinstance(e, StreamData)) == len(STREAM)
    assert r.buffered_bytes == 0


def test_byte_by_byte_equals_whole():
    whole, _, _, _ = _run([((7 + 1) & 0xFFFFFFFF, TCP_ACK, STREAM, 1.0)], syn_isn=7)
    one = [((8 + i) & 0xFFFFFFFF, TCP_ACK, STREAM[i:i + 1], 1.0 + i) for i in range(len(STREAM))]
    bytewise, errors, _, _ = _run(one, syn_isn=7)
    assert whole == bytewise == EXPECTED and errors == []


def test_record_time_is_time_of_completing_segment():
    a = RecordAssembler()
    first = STREAM[:SPANS[0][1] - 1]
    assert a.data(0, first, 1.0) == []
    out = a.data(len(first), STREAM[len(first):SPANS[1][1]], 2.5)
    assert [(o, b, t) for o, b, _, _, t in out] == [(0, FRAMES[0], 2.5), (SPANS[1][0], FRAMES[1], 2.5)]


def test_wraparound_of_sequence_numbers():
    isn = 0xFFFFFFFF - 100
    segs = _segments(STREAM, list(range(50, len(STREAM), 50)), isn)
    assert any(seq < 1000 for seq, _, _ in segs)  # the stream really wraps
    records, errors, _, _ = _run([(s, TCP_ACK, d, 1.0) for s, d, _ in reversed(segs[:5])]
                                 + [(s, TCP_ACK, d, 2.0) for s, d, _ in segs[5:]], syn_isn=isn)
    assert records == EXPECTED and errors == []


def test_syn_less_start_shuffled_within_hold_window():
    segs = _segments(STREAM, list(range(100, len(STREAM), 100)), 5000)
    order = segs[3:0:-1] + segs[:1] + segs[4:]  # first segment arrives 4th
    records, errors, events, _ = _run([(s, TCP_ACK, d, 1.0) for s, d, _ in order])
    starts = [e for e in events if isinstance(e, StreamStart)]
    assert len(starts) == 1 and starts[0].syn is False and starts[0].isn == segs[0][0]
    assert records == EXPECTED and errors == []


def test_gap_range_and_time_then_resync():
    segs = _segments(STREAM, list(range(100, len(STREAM), 100)), 0)
    lost = 6
    pkts = [(s, TCP_ACK, d, 10.0 + i) for i, (s, d, _) in enumerate(segs) if i != lost]
    r = TcpReassembler()
    events = r.segment(0, TCP_SYN, b"", 0.0)
    for p in pkts[:lost + 2]:
        events += r.segment(*p)
    assert not any(isinstance(e, StreamGap) for e in events)  # a hole alone is not yet a gap
    events += r.ack(1 + segs[lost + 2][2], 50.0)  # the peer acknowledged past the hole
    gaps = [e for e in events if isinstance(e, StreamGap)]
    assert len(gaps) == 1
    g = gaps[0]
    assert (g.start, g.end) == (segs[lost][2], segs[lost + 1][2])
    assert g.time_before == 10.0 + lost - 1 and g.time == 50.0
    for p in pkts[lost + 2:]:
        events += r.segment(*p)
    events += r.finish()
    a = RecordAssembler()
    items = []
    for ev in events:
        if isinstance(ev, StreamData):
            items += a.data(ev.offset, ev.data, ev.time)
        elif isinstance(ev, StreamGap):
            items += a.gap(ev.start, ev.end, ev.time, ev.reason)
    got = [(o, b) for o, b, *_ in items if b is not None]
    want = [(sp[0], f) for sp, f in zip(SPANS, FRAMES) if sp[1] <= g.start or sp[0] >= g.end]
    assert got == want
    assert len(got) < len(FRAMES)
    vids = [v for _, b, _, v, _ in items if b is None]
    assert vids[0] == "TCP-GAP"
    assert vids[1:] == ([] if g.end in [s for s, _ in SPANS] else ["REC-RESYNC"])


def test_buffer_limit_forces_gap_and_bounds_memory():
    segs = _segments(STREAM, list(range(50, len(STREAM), 50)), 0)
    r = TcpReassembler(max_segments=5, max_buffer_bytes=400)
    events = r.segment(0, TCP_SYN, b"", 0.0)
    peak = 0
    for i, (s, d, _) in enumerate(segs[1:]):  # segment 0 never arrives
        events += r.segment(s, TCP_ACK, d, float(i))
        peak = max(peak, r.buffered_bytes)
    gaps = [e for e in events if isinstance(e, StreamGap)]
    assert [(g.start, g.end) for g in gaps] == [(0, 50)]
    assert "buffer limit" in gaps[0].reason
    assert peak <= 400
    assert sum(len(e.data) for e in events if isinstance(e, StreamData)) == len(STREAM) - 50


def test_fin_with_hole_and_data_after_fin():
    segs = _segments(STREAM[:300], [100, 200], 0)
    r = TcpReassembler()
    ev = r.segment(0, TCP_SYN, b"", 0.0)
    ev += r.segment(segs[0][0], TCP_ACK, segs[0][1], 1.0)
    ev += r.segment(segs[2][0], TCP_ACK | TCP_FIN, segs[2][1], 2.0)
    assert not any(isinstance(e, StreamEnd) for e in ev)
    ev += r.finish(3.0)
    gaps = [e for e in ev if isinstance(e, StreamGap)]
    ends = [e for e in ev if isinstance(e, StreamEnd)]
    assert [(g.start, g.end) for g in gaps] == [(100, 200)]
    assert [(e.offset, e.reason) for e in ends] == [(300, "fin")]
    r2 = TcpReassembler()
    r2.segment(0, TCP_SYN, b"", 0.0)
    ev2 = r2.segment(1, TCP_ACK | TCP_FIN, b"abc", 1.0)
    assert [e.reason for e in ev2 if isinstance(e, StreamEnd)] == ["fin"]
    late = r2.segment(4, TCP_ACK, b"zz", 2.0)
    assert [n.kind for n in late if isinstance(n, StreamNotice)] == ["after-end"]


def test_rst_flushes_with_gap_and_truncated_record():
    records, errors, events, _ = _run(
        [(1, TCP_ACK, STREAM[:SPANS[1][1]], 1.0),
         (1 + SPANS[2][0] + 20, TCP_ACK, STREAM[SPANS[2][0] + 20:SPANS[2][0] + 30], 2.0),
         (1 + SPANS[3][0], TCP_RST, b"", 3.0)], syn_isn=0, finish=False)
    assert records == EXPECTED[:2]
    assert errors == ["TCP-GAP", "REC-TRUNCATED-END"]
    assert [e.reason for e in events if isinstance(e, StreamEnd)] == ["rst"]
    assert [(g.start, g.end) for g in events if isinstance(g, StreamGap)] == [
        (SPANS[2][0], SPANS[2][0] + 20)]


def test_snaplen_truncated_segment_is_a_gap():
    cut = SPANS[1][0] + 20
    records, errors, events, _ = _run(
        [(1, TCP_ACK, STREAM[:cut], 1.0, SPANS[2][0] - cut),  # capture kept only `cut` bytes
         (1 + SPANS[2][0], TCP_ACK, STREAM[SPANS[2][0]:], 2.0)], syn_isn=0)
    gaps = [e for e in events if isinstance(e, StreamGap)]
    assert [(g.start, g.end) for g in gaps] == [(cut, SPANS[2][0])]
    assert "snap length" in gaps[0].reason
    assert records == [EXPECTED[0]] + EXPECTED[2:]
    assert errors == ["TCP-GAP"]  # the gap ends on a record boundary: nothing to skip


def test_data_before_syn_less_base_is_reported():
    segs = _segments(STREAM, list(range(100, len(STREAM), 100)), 0)
    r = TcpReassembler(hold_segments=2)
    ev = r.segment(segs[1][0], TCP_ACK, segs[1][1], 1.0)
    ev += r.segment(segs[2][0], TCP_ACK, segs[2][1], 2.0)
    ev += r.segment(segs[0][0], TCP_ACK, segs[0][1], 3.0)  # too late: the base is chosen
    notes = [e for e in ev if isinstance(e, StreamNotice)]
    assert [(n.kind, n.start, n.end) for n in notes] == [("before-start", -100, 0)]


def test_retransmission_with_different_bytes_is_reported_first_copy_kept():
    r = TcpReassembler()
    ev = r.segment(0, TCP_SYN, b"", 0.0)
    ev += r.segment(1, TCP_ACK, b"abcdef", 1.0)
    ev += r.segment(3, TCP_ACK, b"cXe", 2.0)  # inside delivered bytes, one differs
    ev += r.segment(5, TCP_ACK, b"eZgh", 3.0)  # overlaps the end: "e" same, "Z" vs "f" differs
    data = b"".join(e.data for e in ev if isinstance(e, StreamData))
    notes = [(n.kind, n.start, n.end) for n in ev if isinstance(n, StreamNotice)]
    assert data == b"abcdefgh"
    assert notes == [("conflict", 2, 5), ("conflict", 4, 6)]
    # beyond the comparison window nothing can be said (and nothing is claimed)
    r2 = TcpReassembler(recent_window=4)
    ev2 = r2.segment(0, TCP_SYN, b"", 0.0) + r2.segment(1, TCP_ACK, bytes(20), 1.0)
    ev2 += r2.segment(1, TCP_ACK, b"\xff" * 4, 2.0)
    assert not [n for n in ev2 if isinstance(n, StreamNotice)]


def test_retransmitted_syn_and_duplicate_fin_are_harmless():
    r = TcpReassembler()
    ev = r.segment(10, TCP_SYN, b"", 0.0) + r.segment(10, TCP_SYN, b"", 0.1)
    ev += r.segment(11, TCP_ACK, b"abcd", 1.0) + r.segment(11, TCP_ACK, b"abcd", 1.1)
    ev += r.segment(15, TCP_FIN | TCP_ACK, b"", 2.0) + r.segment(15, TCP_FIN | TCP_ACK, b"", 2.1)
    assert [type(e).__name__ for e in ev] == ["StreamStart", "StreamData", "StreamEnd"]
    assert r.retransmitted_bytes == 4


# ---------------------------------------------------------------------------------------------
# resync helpers and the record assembler
# ---------------------------------------------------------------------------------------------
def test_plausible_header_rules():
    rec = STREAM[:SPANS[0][1]]
    assert plausible_header(rec, 0) is True
    assert plausible_header(rec[:3], 0) is None
    assert plausible_header(rec[:6], 0) is None
    assert plausible_header(struct.pack("<I", MAX_RECORD + 1) + rec[4:], 0) is False
    assert plausible_header(struct.pack("<I", MAX_RECORD) + rec[4:], 0) is True
    assert plausible_header(rec[:4] + b"\x80" + rec[5:], 0) is False  # not a map
    assert plausible_header(rec[:5] + b"\x61\x77\x01", 0) is False  # first key not "v"
    kp = struct.pack("<I", 279) + b"\x00\x01\x00\x01" + bytes(10)
    assert plausible_header(kp, 0) is False and plausible_start(kp, 0) is True
    junk = b"\x00" * 9 + rec
    assert find_resync_point(junk) == (9, True)
    pos, found = find_resync_point(b"x" * 100)
    assert not found and pos == 93


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.binary(min_size=1, max_size=300), cuts=st.lists(st.integers(1, 2000), max_size=10))
def test_resync_after_gap_recovers_every_following_frame(garbage, cuts):
    data = garbage + STREAM
    # no accidental frame header inside the garbage (or straddling into the stream)
    assume(data.find(b"\x61\x76\x01") == len(garbage) + 5)
    a = RecordAssembler()
    items = a.gap(0, 100, 1.0, "test")
    bounds = [0] + sorted(set(c for c in cuts if c < len(data))) + [len(data)]
    for x, y in zip(bounds, bounds[1:]):
        items += a.data(100 + x, data[x:y], 2.0)
    got = [b for _, b, *_ in items if b is not None]
    assert got == FRAMES
    vids = [v for _, b, _, v, _ in items if b is None]
    assert vids == ["TCP-GAP", "REC-RESYNC"]
    assert f"skipped {len(garbage)} bytes" in [e for _, b, e, _, _ in items if b is None][1]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=200), max_size=20), st.booleans())
def test_record_assembler_never_raises_and_stays_bounded(chunks, syn):
    a = RecordAssembler(syn=syn, max_record=1000)
    off = 0
    for c in chunks:
        out = a.data(off, c, 0.0)
        off += len(c)
        for o, body, err, vid, t in out:
            assert (body is None) != (err is None)
            assert body is None or len(body) <= 1000
        assert len(a._buf) <= 4 + 1000 + 200
    a.end(1.0, "eof")


def test_syn_less_base_ignores_a_bare_reset_sequence_number():
    r = TcpReassembler()
    ev = r.segment(5000, TCP_ACK, b"abc", 1.0)
    ev += r.segment(10, TCP_RST, b"", 2.0)  # an RST with an unrelated sequence number
    assert [e.isn for e in ev if isinstance(e, StreamStart)] == [5000]
    assert [e.data for e in ev if isinstance(e, StreamData)] == [b"abc"]
    assert [e.reason for e in ev if isinstance(e, StreamEnd)] == ["rst"]
