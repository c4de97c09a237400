"""GTP message history and watermark: same operation sequences against gbp_stack and ours."""
import pytest
from hypothesis import given, settings, strategies as st

import gbp_stack

from gbp_lab.core.errors import UsageError
from gbp_lab.core.gtp.history import MessageEntry, MessageHistory, Watermark


def _entries(it):
    return [(e.sender_id, e.message_id, e.text) for e in it]


def _apply(hist, wm, entry_cls, op):
    kind = op[0]
    if kind == "push":
        return hist.push(entry_cls(op[1], op[2], op[3]))
    if kind == "contains":
        return hist.contains(op[1], op[2])
    if kind == "since":
        return _entries(hist.since(wm))
    if kind == "since_for":
        return _entries(hist.since_for_sender(op[1], op[2]))
    if kind == "observe":
        return wm.observe(op[1], op[2])
    if kind == "last_seen":
        return wm.last_seen(op[1])
    if kind == "snapshot":
        return wm.snapshot()
    if kind == "len":
        return (len(hist), len(wm))
    if kind == "clear_h":
        return hist.clear()
    if kind == "clear_w":
        return wm.clear()
    raise AssertionError(kind)


_sid = st.integers(0, 3)
_mid = st.integers(0, 12)
_ops = st.lists(st.one_of(
    st.tuples(st.just("push"), _sid, _mid, st.sampled_from(["a", "b", ""])),
    st.tuples(st.just("contains"), _sid, _mid),
    st.tuples(st.just("since")),
    st.tuples(st.just("since_for"), _sid, _mid),
    st.tuples(st.just("observe"), _sid, _mid),
    st.tuples(st.just("last_seen"), _sid),
    st.tuples(st.just("snapshot")),
    st.tuples(st.just("len")),
    st.tuples(st.just("clear_h")),
    st.tuples(st.just("clear_w")),
), max_size=60)


@pytest.mark.interop
@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 6), ops=_ops)
def test_same_results_as_reference(capacity, ops):
    th, tw = gbp_stack.MessageHistory(capacity), gbp_stack.Watermark()
    oh, ow = MessageHistory(capacity), Watermark()
    for op in ops:
        assert _apply(oh, ow, MessageEntry, op) == _apply(th, tw, gbp_stack.MessageEntry, op), op


def test_ring_evicts_oldest_and_forgets_its_key():
    h = MessageHistory(2)
    assert h.push(MessageEntry(1, 1, "a")) and h.push(MessageEntry(1, 2, "b"))
    assert not h.push(MessageEntry(1, 2, "dup"))
    assert h.push(MessageEntry(2, 1, "c"))             # evicts (1, 1)
    assert not h.contains(1, 1) and len(h) == 2
    assert h.push(MessageEntry(1, 1, "again"))         # may come back once evicted
    wm = Watermark()
    wm.observe(1, 1)
    assert _entries(h.since(wm)) == [(2, 1, "c")]
    assert _entries(h.since_for_sender(2, 0)) == [(2, 1, "c")]


def test_watermark_zero_is_not_recorded():
    wm = Watermark()
    wm.observe(5, 0)
    assert wm.last_seen(5) is None and len(wm) == 0
    wm.observe(5, 3)
    wm.observe(5, 2)
    assert wm.snapshot() == {5: 3}


def test_bad_capacity():
    with pytest.raises(UsageError) as ei:
        MessageHistory(0)
    assert ei.value.vid == "GTP-HISTORY-CAPACITY"
