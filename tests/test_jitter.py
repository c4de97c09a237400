"""GAP jitter buffer: same operation sequences against gbp_stack.JitterBuffer and ours."""
import pytest
from hypothesis import given, settings, strategies as st

import gbp_stack

from gbp_lab.core.errors import UsageError
from gbp_lab.core.gap.jitter import AudioFrame, JitterBuffer, JitterPushOutcome, JitterPushResult


def _frame_key(f):
    return None if f is None else (f.media_source_id, f.rtp_sequence, f.plaintext)


def _push_key(r):
    return (r.outcome.value, _frame_key(r.evicted))


def _apply(buf, frame_cls, op):
    kind = op[0]
    if kind == "push":
        _, msid, seq, body = op
        return _push_key(buf.push(frame_cls(msid, seq, body)))
    if kind == "in_order":
        return _frame_key(buf.pop_in_order(op[1]))
    if kind == "force":
        return _frame_key(buf.pop_force(op[1]))
    if kind == "len":
        return buf.length_for(op[1])
    if kind == "clear":
        return buf.clear()
    raise AssertionError(kind)


_msid = st.integers(0, 2)
_ops = st.lists(st.one_of(
    st.tuples(st.just("push"), _msid, st.integers(0, 40), st.binary(max_size=3)),
    st.tuples(st.just("in_order"), _msid),
    st.tuples(st.just("force"), _msid),
    st.tuples(st.just("len"), _msid),
    st.tuples(st.just("clear")),
), max_size=60)


@pytest.mark.interop
@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 6), ops=_ops)
def test_same_results_as_reference(capacity, ops):
    theirs = gbp_stack.JitterBuffer(capacity)
    ours = JitterBuffer(capacity)
    for op in ops:
        assert _apply(ours, AudioFrame, op) == _apply(theirs, gbp_stack.AudioFrame, op), op


@pytest.mark.interop
def test_enum_values_and_names_match_reference():
    assert [(m.name, m.value) for m in JitterPushOutcome] == \
        [(m.name, m.value) for m in gbp_stack.JitterPushOutcome]


def test_reorder_late_and_evict():
    buf = JitterBuffer(2)
    assert buf.push(AudioFrame(7, 11, b"b")) == JitterPushResult(JitterPushOutcome.ACCEPTED)
    assert buf.push(AudioFrame(7, 10, b"a")).outcome is JitterPushOutcome.ACCEPTED
    assert buf.pop_in_order(7) == AudioFrame(7, 10, b"a")
    assert buf.next_expected(7) == 11
    assert buf.push(AudioFrame(7, 9, b"z")).outcome is JitterPushOutcome.LATE
    buf.push(AudioFrame(7, 13, b"d"))
    res = buf.push(AudioFrame(7, 14, b"e"))
    assert res == JitterPushResult(JitterPushOutcome.EVICTED, AudioFrame(7, 11, b"b"))
    assert buf.pop_in_order(7) is None          # 13 is not the expected 11
    assert buf.pop_force(7) == AudioFrame(7, 13, b"d")
    assert buf.pop_in_order(7) == AudioFrame(7, 14, b"e")
    assert buf.length_for(7) == 0 and buf.length_for(99) == 0


def test_sources_are_independent_and_dedupe_keeps_first():
    buf = JitterBuffer(4)
    buf.push(AudioFrame(1, 5, b"first"))
    assert buf.push(AudioFrame(1, 5, b"second")).outcome is JitterPushOutcome.ACCEPTED
    buf.push(AudioFrame(2, 5, b"other"))
    assert buf.length_for(1) == 1 and buf.length_for(2) == 1
    assert buf.pop_force(1).plaintext == b"first"


@pytest.mark.parametrize("cap", [0, -1])
def test_bad_capacity_is_usage_error(cap):
    with pytest.raises(UsageError) as ei:
        JitterBuffer(cap)
    assert ei.value.vid == "GAP-JITTER-CAPACITY"
    assert isinstance(ei.value, ValueError)  # the binding raised ValueError: callers keep working


@pytest.mark.interop
def test_rtp_wrap_is_not_handled_like_the_reference():
    """Quirk kept (Rust and wheel alike): sequences compare as plain integers, so once 65535 was
    popped the wrapped 16-bit RTP sequence 0 is LATE until clear()."""
    for buf, frame in ((JitterBuffer(4), AudioFrame), (gbp_stack.JitterBuffer(4), gbp_stack.AudioFrame)):
        buf.push(frame(1, 65535, b"last"))
        assert buf.pop_in_order(1).rtp_sequence == 65535
        assert buf.push(frame(1, 0, b"wrapped")).outcome.value == "late"
        buf.clear()
        assert buf.push(frame(1, 0, b"wrapped")).outcome.value == "accepted"
