"""GSP capabilities: same operation sequences against gbp_stack.CapabilitiesNegotiator and ours."""
import pytest
from hypothesis import given, settings, strategies as st

import gbp_stack

from gbp_lab.core.gsp.capabilities import CapabilitiesNegotiator

_CAPS = ["gbp/class-a", "gbp/class-b", "gbp/class-c", "opus", "sframe"]


def _apply(neg, op):
    kind = op[0]
    if kind == "advertise":
        return neg.advertise(op[1], list(op[2]))
    if kind == "forget":
        return neg.forget(op[1])
    if kind == "of":
        return neg.capabilities_of(op[1])
    if kind == "supports":
        return neg.group_supports(op[1])
    if kind == "inter":
        return neg.intersection()
    if kind == "union":
        return neg.union()
    if kind == "missing":
        return neg.missing(op[1])
    if kind == "len":
        return len(neg)
    raise AssertionError(kind)


_mem = st.integers(0, 5)
_cap = st.sampled_from(_CAPS)
_ops = st.lists(st.one_of(
    st.tuples(st.just("advertise"), _mem, st.lists(_cap, max_size=5)),
    st.tuples(st.just("forget"), _mem),
    st.tuples(st.just("of"), _mem),
    st.tuples(st.just("supports"), _cap),
    st.tuples(st.just("inter")),
    st.tuples(st.just("union")),
    st.tuples(st.just("missing"), _cap),
    st.tuples(st.just("len")),
), max_size=50)


@pytest.mark.interop
@settings(max_examples=200, deadline=None)
@given(ops=_ops)
def test_same_results_as_reference(ops):
    theirs, ours = gbp_stack.CapabilitiesNegotiator(), CapabilitiesNegotiator()
    for op in ops:
        assert _apply(ours, op) == _apply(theirs, op), op


def test_negotiation_basics():
    neg = CapabilitiesNegotiator()
    assert not neg.group_supports("opus") and neg.intersection() == set() and neg.union() == set()
    neg.advertise(1, ["opus", "sframe"])
    neg.advertise(2, ("opus",))
    assert neg.intersection() == {"opus"}
    assert neg.union() == {"opus", "sframe"}
    assert neg.group_supports("opus") and not neg.group_supports("sframe")
    assert neg.missing("sframe") == [2]
    got = neg.capabilities_of(1)
    got.add("mutated")
    assert neg.capabilities_of(1) == {"opus", "sframe"}   # a copy was returned
    neg.forget(2)
    neg.forget(2)                                          # idempotent
    assert neg.intersection() == {"opus", "sframe"} and len(neg) == 1
    assert neg.capabilities_of(2) is None
