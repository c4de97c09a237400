"""GSP roles: same operation sequences against gbp_stack.RoleRegistry and ours."""
import pytest
from hypothesis import given, settings, strategies as st

import gbp_stack

from gbp_lab.core.errors import GbpLabError, UsageError
from gbp_lab.core.gsp.roles import GSP_UNAUTHORIZED, Permissions, RoleError, RoleRegistry, RoleSpec


def _spec(s):
    return None if s is None else (s.id, s.name, int(s.permissions))


def _apply(reg, mod_perm, spec_cls, err_cls, op):
    kind = op[0]
    try:
        if kind == "define":
            return reg.define(spec_cls(op[1], op[2], mod_perm(op[3])))
        if kind == "define_role":
            return reg.define_role(op[1], op[2], mod_perm(op[3]))
        if kind == "role":
            return _spec(reg.role(op[1]))
        if kind == "roles":
            return [_spec(s) for s in reg.roles()]
        if kind == "assign":
            return reg.assign(op[1], op[2])
        if kind == "role_of":
            return _spec(reg.role_of(op[1]))
        if kind == "perms":
            return int(reg.permissions_of(op[1]))
        if kind == "has":
            return reg.has(op[1], mod_perm(op[2]))
        if kind == "require":
            return reg.require(op[1], mod_perm(op[2]))
    except err_cls as e:
        return ("RoleError", str(e).split("] ")[-1].split(" (at")[0])
    raise AssertionError(kind)


_rid = st.integers(0, 4)
_mem = st.integers(0, 4)
_mask = st.integers(0, 0x3FF)
_ops = st.lists(st.one_of(
    st.tuples(st.just("define"), _rid, st.sampled_from(["admin", "member", "guest"]), _mask),
    st.tuples(st.just("define_role"), _rid, st.sampled_from(["x", "y"]), _mask),
    st.tuples(st.just("role"), _rid),
    st.tuples(st.just("roles")),
    st.tuples(st.just("assign"), _mem, _rid),
    st.tuples(st.just("role_of"), _mem),
    st.tuples(st.just("perms"), _mem),
    st.tuples(st.just("has"), _mem, _mask),
    st.tuples(st.just("require"), _mem, _mask),
), max_size=50)


@pytest.mark.interop
@settings(max_examples=200, deadline=None)
@given(ops=_ops)
def test_same_results_and_messages_as_reference(ops):
    theirs, ours = gbp_stack.RoleRegistry(), RoleRegistry()
    for op in ops:
        got = _apply(ours, Permissions, RoleSpec, RoleError, op)
        want = _apply(theirs, gbp_stack.Permissions, gbp_stack.RoleSpec, gbp_stack.RoleError, op)
        assert got == want, op


@pytest.mark.interop
def test_permission_bits_match_reference_and_map():
    assert {m.name: int(m) for m in Permissions} == {m.name: int(m) for m in gbp_stack.Permissions}
    # reference-map §2: 0x01 SEND_TEXT … 0x80 CLOSE_GROUP
    assert int(Permissions.SEND_TEXT) == 0x01 and int(Permissions.CLOSE_GROUP) == 0x80


def test_role_error_is_in_our_tree_with_vids():
    reg = RoleRegistry()
    with pytest.raises(RoleError) as ei:
        reg.assign(1, 9)
    assert ei.value.vid == "GSP-ROLE-UNKNOWN"
    assert isinstance(ei.value, UsageError) and isinstance(ei.value, GbpLabError)
    reg.define_role(1, "speaker", Permissions.SEND_TEXT | Permissions.SEND_AUDIO)
    reg.assign(1, 1)
    reg.require(1, Permissions.SEND_AUDIO)
    assert reg.has(1, Permissions.SEND_TEXT) and not reg.has(1, Permissions.MUTE_OTHERS)
    with pytest.raises(RoleError) as ei:
        reg.require(1, Permissions.SEND_AUDIO | Permissions.MUTE_OTHERS)
    assert ei.value.vid == "GSP-ROLE-DENIED" and ei.value.code == GSP_UNAUTHORIZED
    assert reg.permissions_of(2) == Permissions.NONE and reg.role_of(2) is None


def test_redefining_a_role_changes_assigned_members():
    reg = RoleRegistry()
    reg.define(RoleSpec(3, "a", Permissions.SEND_TEXT))
    reg.assign(8, 3)
    reg.define(RoleSpec(3, "b", Permissions.INVITE))
    assert reg.role_of(8) == RoleSpec(3, "b", Permissions.INVITE)
    assert [s.id for s in reg.roles()] == [3]
