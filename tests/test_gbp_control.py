"""ControlMessage and ErrorObject codecs; the error registry against ``gbp_stack.lookup_error``."""
from __future__ import annotations

import pathlib
import sys

import cbor2
import gbp_stack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import refpeer  # noqa: E402

from gbp_lab.core.errors import DecodeError, GbpLabError, TrailingBytesError  # noqa: E402
from gbp_lab.core.gbp import registry as R  # noqa: E402
from gbp_lab.core.gbp.aead import open_frame  # noqa: E402
from gbp_lab.core.gbp.control import ControlMessage, decode_control  # noqa: E402
from gbp_lab.core.gbp.error_object import ErrorObject, decode_error_object  # noqa: E402
from gbp_lab.core.gbp.frame import decode_frame  # noqa: E402


# --- error registry ------------------------------------------------------------------------------
@pytest.mark.interop
def test_lookup_error_byte_identical_for_every_u16():
    known = 0
    for code in range(0x10000):
        ref = gbp_stack.lookup_error(code)
        assert R.lookup_error(code) == ref, hex(code)
        known += ref is not None
    assert known == len(R.ERROR_SPECS) == len(R.ErrorCode) == 32


@pytest.mark.interop
def test_error_specs_decode_from_reference_objects():
    for code, spec in R.ERROR_SPECS.items():
        obj = decode_error_object(gbp_stack.lookup_error(code))
        assert (obj.code, obj.error_class, obj.retryable, obj.fatal) == (
            code, spec.error_class, spec.retryable, spec.fatal)
        assert obj.reason == spec.name == "ERR_" + R.ErrorCode(code).name and obj.details == b""
        assert obj.spec == spec and obj.known_class == spec.error_class
        assert obj.to_cbor() == gbp_stack.lookup_error(code)


def test_error_object_round_trip_and_errors():
    eo = ErrorObject(0xF001, 4, True, False, "private ✓", b"\xa0")
    assert decode_error_object(eo.to_cbor()) == eo and eo.spec is None and eo.known_code is None
    assert list(cbor2.loads(eo.to_cbor())) == ["code", "class", "retryable", "fatal", "reason", "det"]
    with pytest.raises(TrailingBytesError):
        decode_error_object(eo.to_cbor() + b"\x00")
    bad = cbor2.loads(eo.to_cbor())
    bad["retryable"] = 1
    with pytest.raises(DecodeError) as ei:
        decode_error_object(cbor2.dumps(bad))
    assert ei.value.vid == "GBP-ERROBJ-TYPE"
    del bad["det"]
    bad["retryable"] = True
    with pytest.raises(DecodeError) as ei:
        decode_error_object(cbor2.dumps(bad))
    assert ei.value.vid == "GBP-ERROBJ-MISSING"


# --- control messages ----------------------------------------------------------------------------
@pytest.mark.interop
def test_reference_control_messages_decode_and_reencode():
    with refpeer.two_member_group() as grp:
        frames = [f for f in refpeer.reference_frames(grp) if f.kind == "control"]
        log = grp.keylog("bob")
    assert len(frames) == 4
    for rf in frames:
        plain = open_frame(decode_frame(rf.wire), log)
        msg = decode_control(plain)
        assert (msg.opcode, msg.request_id, msg.sender_id, msg.transition_id, msg.args) == rf.control
        assert msg.args_length == len(msg.args)
        assert msg.to_cbor() == plain
        assert ControlMessage.build(*rf.control[:4], rf.control[4]).to_cbor() == plain
    claim = decode_control(open_frame(decode_frame(frames[1].wire), log))
    assert claim.op == R.ControlOpcode.CAPABILITIES_ADVERTISE and claim.is_coordinator_claim


@pytest.mark.interop
def test_transition_control_flow_decodes():
    flow = refpeer.transition_flow()
    try:
        msgs = [decode_control(open_frame(decode_frame(w), flow.keylog_old)) for _, _, w in flow.frames]
    finally:
        flow.group.close()
    assert [m.op.name for m in msgs] == [op for _, op, _ in flow.frames]
    assert [m.sender_id for m in msgs] == [1, 2, 1]
    assert msgs[0].args == flow.commit and msgs[0].args[:4] == b"\x00\x01\x00\x02"  # PrivateMessage
    assert msgs[1].args == msgs[2].args == b"" and {m.transition_id for m in msgs} == {1}


@pytest.mark.parametrize("mutate,vid", [
    (lambda d: d.update(alen=5), "GBP-CTRL-ALEN"),
    (lambda d: d.pop("rid"), "GBP-CTRL-MISSING"),
    (lambda d: d.update(op=0x10000), "GBP-CTRL-RANGE"),
    (lambda d: d.update(args="x"), "GBP-CTRL-TYPE"),
])
def test_control_decode_errors(mutate, vid):
    d = cbor2.loads(ControlMessage.build(9, 1, 2, 3, b"").to_cbor())
    mutate(d)
    with pytest.raises(DecodeError) as ei:
        decode_control(cbor2.dumps(d))
    assert ei.value.vid == vid


def test_control_wire_shape():
    m = ControlMessage.build(R.ControlOpcode.ACK, 70000, 3, 0, b"\x01\x02")
    assert m.to_cbor() == bytes.fromhex("a6626f700963726964") + b"\x1a\x00\x01\x11\x70" + bytes.fromhex(
        "6373696403637469640064616c656e0264617267734201 02".replace(" ", ""))
    with pytest.raises(TrailingBytesError):
        decode_control(m.to_cbor() + b"\xf6")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_control_and_error_object(data):
    for fn in (decode_control, decode_error_object):
        try:
            fn(data)
        except GbpLabError:
            pass


@settings(max_examples=200, deadline=None)
@given(op=st.integers(0, 0xFFFF), rid=st.integers(0, 2**32 - 1), sid=st.integers(0, 2**32 - 1),
       tid=st.integers(0, 2**32 - 1), args=st.binary(max_size=64))
def test_control_round_trip(op, rid, sid, tid, args):
    m = ControlMessage.build(op, rid, sid, tid, args)
    assert decode_control(m.to_cbor()) == m
    assert cbor2.loads(m.to_cbor()) == {"op": op, "rid": rid, "sid": sid, "tid": tid, "alen": len(args), "args": args}
