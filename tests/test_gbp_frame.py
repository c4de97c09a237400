"""GbpFrame codec and the GBP registries, against the gbp-stack wheel (reference 1.9.1)."""
from __future__ import annotations

import pathlib
import sys

import cbor2
import gbp_stack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import refpeer  # noqa: E402

from gbp_lab.core.errors import DecodeError, GbpLabError, TrailingBytesError, UsageError  # noqa: E402
from gbp_lab.core.gbp import registry as R  # noqa: E402
from gbp_lab.core.gbp.frame import FRAME_KEYS, GbpFrame, decode_frame, encode_gbp_frame  # noqa: E402

GID = bytes(range(0xA0, 0xB0))


@pytest.fixture
def ref_frames():
    with refpeer.two_member_group() as grp:
        yield refpeer.reference_frames(grp) + refpeer.reference_frames(grp, "bob", "alice")


# --- interop: reference frames -----------------------------------------------------------------
@pytest.mark.interop
def test_reference_frames_decode_and_reencode_identically(ref_frames):
    seen = set()
    for rf in ref_frames:
        f = decode_frame(rf.wire)
        assert f.ok and f.to_cbor() == rf.wire
        assert list(cbor2.loads(rf.wire)) == [k for k in FRAME_KEYS if k != "pf" or rf.codec]
        assert f.stream_type == rf.stream_type and f.payload_format == rf.codec
        assert f.version == 1 and len(f.group_id) == 16 and f.payload_size == len(f.payload)
        seen.add((f.stream_type, f.payload_format))
    assert {(st, c) for st in (1, 2, 3) for c in (0, 1, 2)} | {(0, 0)} == seen


@pytest.mark.interop
def test_stream_id_formula_and_sender_match_reference(ref_frames):
    for rf in ref_frames:
        f = decode_frame(rf.wire)
        member = 1 if rf.sender == "alice" else 2
        assert f.stream_id == R.stream_id(f.stream_type, member)
        assert f.sender == member and R.sender_of(f.stream_id) == member
        assert R.stream_type_of_sid(f.stream_id) == f.stream_type


@pytest.mark.interop
def test_sent_flag_profiles_match_reference(ref_frames):
    for rf in ref_frames:
        f = decode_frame(rf.wire)
        op = rf.control[0] if rf.control else None
        assert f.flags == R.sent_flags(f.stream_type, op)
    flow = refpeer.transition_flow()
    try:
        for _, opname, wire in flow.frames:  # PREPARE/READY/EXECUTE carry CRITICAL: 0x1B
            assert decode_frame(wire).flags == R.sent_flags(0, R.ControlOpcode[opname]) == 0x1B
    finally:
        flow.group.close()


@pytest.mark.interop
@settings(max_examples=200, deadline=None)
@given(version=st.integers(0, 255), epoch=st.integers(0, 2**64 - 1), tid=st.integers(0, 2**32 - 1),
       stype=st.integers(0, 255), sid=st.integers(0, 2**32 - 1), flags=st.integers(0, 0xFFFF),
       seq=st.integers(0, 2**32 - 1), payload=st.binary(max_size=300), gid=st.binary(min_size=16, max_size=16))
def test_encode_gbp_frame_matches_wheel(version, epoch, tid, stype, sid, flags, seq, payload, gid):
    ref = gbp_stack.encode_gbp_frame(version, gid, epoch, tid, stype, sid, flags, seq, payload)
    ours = encode_gbp_frame(version, gid, epoch, tid, stype, sid, flags, seq, payload)
    assert ours == ref
    f = decode_frame(ref)
    assert (f.version, f.group_id, f.epoch, f.transition_id, f.stream_type, f.stream_id, f.flags,
            f.sequence_no, f.payload) == (version, gid, epoch, tid, stype, sid, flags, seq, payload)


def test_encode_rejects_values_the_wire_cannot_hold():
    with pytest.raises(UsageError):
        encode_gbp_frame(256, GID, 1, 0, 2, 201, 7, 1, b"")  # the wheel silently truncates to 0
    with pytest.raises(UsageError):
        encode_gbp_frame(1, GID[:15], 1, 0, 2, 201, 7, 1, b"")
    with pytest.raises(UsageError):
        GbpFrame.build(GID, -1, 0, 2, 201, 7, 1, b"").to_cbor()
    with pytest.raises(UsageError):
        GbpFrame.build(GID, 1, 0, 2, 201, 0x10000, 1, b"").to_cbor()


def test_pf_written_only_when_nonzero():
    f0 = GbpFrame.build(GID, 1, 0, 2, 201, 7, 1, b"ab")
    f2 = GbpFrame.build(GID, 1, 0, 2, 201, 7, 1, b"ab", payload_format=2)
    assert "pf" not in cbor2.loads(f0.to_cbor())
    assert list(cbor2.loads(f2.to_cbor()))[-1] == "pf" and cbor2.loads(f2.to_cbor())["pf"] == 2
    assert decode_frame(f2.to_cbor()) == f2 and decode_frame(f0.to_cbor()) == f0
    assert decode_frame(GbpFrame.build(GID, 1, 0, 2, 201, 7, 1, b"", payload_format=9).to_cbor()).codec == R.PayloadCodec.CBOR


# --- strict errors -----------------------------------------------------------------------------
def _map(**over):
    d = {"v": 1, "gid": GID, "ep": 5, "tid": 0, "st": 2, "sid": 201, "fl": 7, "seq": 1, "psz": 2, "pl": b"ok"}
    for k, v in over.items():
        if v is _DEL:
            d.pop(k)
        else:
            d[k] = v
    return cbor2.dumps(d)


_DEL = object()


@pytest.mark.parametrize("data,vid", [
    (b"", "GBP-FRAME-CBOR"),
    (b"\xff\xff", "GBP-FRAME-CBOR"),
    (b"\xaa\x61v", "GBP-FRAME-CBOR"),
    (cbor2.dumps([1, 2, 3]), "GBP-FRAME-NOT-MAP"),
    (_map() + b"\x00", "GBP-FRAME-TRAILING"),
    (_map(seq=_DEL), "GBP-FRAME-MISSING"),
    (_map(pl=_DEL), "GBP-FRAME-MISSING"),
    (_map(ep="5"), "GBP-FRAME-TYPE"),
    (_map(fl=True), "GBP-FRAME-TYPE"),
    (_map(gid=list(GID)), "GBP-FRAME-TYPE"),
    (_map(pl="ok"), "GBP-FRAME-TYPE"),
    (_map(ep=1.0), "GBP-FRAME-TYPE"),
    (_map(v=256), "GBP-FRAME-RANGE"),
    (_map(fl=0x10000), "GBP-FRAME-RANGE"),
    (_map(seq=-1), "GBP-FRAME-RANGE"),
    (_map(ep=2**64), "GBP-FRAME-RANGE"),
    (_map(pf=256), "GBP-FRAME-RANGE"),
    (_map(psz=3), "GBP-FRAME-PSZ"),
    (b"\xab" + _map()[1:] + b"\x61v\x01", "GBP-FRAME-DUPLICATE"),
])
def test_strict_errors_are_typed(data, vid):
    with pytest.raises(DecodeError) as ei:
        decode_frame(data)
    assert ei.value.vid == vid
    if vid == "GBP-FRAME-TRAILING":
        assert isinstance(ei.value, TrailingBytesError)


def test_validation_order_type_before_missing_before_psz():
    # a wrong type met in the map wins over a missing key, which wins over psz
    with pytest.raises(DecodeError, match="ep") as ei:
        decode_frame(_map(ep="x", seq=_DEL, psz=9))
    assert ei.value.vid == "GBP-FRAME-TYPE"
    with pytest.raises(DecodeError) as ei:
        decode_frame(_map(seq=_DEL, psz=9))
    assert ei.value.vid == "GBP-FRAME-MISSING"


def test_type_errors_reported_in_wire_order():
    d = cbor2.loads(_map(ep="late", fl="early"))
    reordered = {"fl": d.pop("fl"), **d}  # fl now comes first on the wire
    with pytest.raises(DecodeError) as ei:
        decode_frame(cbor2.dumps(reordered))
    assert ei.value.where == "fl"
    with pytest.raises(DecodeError) as ei:
        decode_frame(_map(ep="late", fl="early"))
    assert ei.value.where == "ep"


def test_reference_semantics_kept():
    # other key order and unknown keys are accepted; version/gid-length/st are node checks
    d = {"pl": b"xy", "psz": 2, "seq": 1, "fl": 7, "sid": 1, "st": 9, "tid": 0, "ep": 1,
         "gid": b"short", "v": 2, "zz": [1, 2]}
    f = decode_frame(cbor2.dumps(d))
    assert (f.version, f.stream_type, f.group_id, f.payload) == (2, 9, b"short", b"xy")
    assert f.group_id16 == b"short" + bytes(11) and f.stream is None


def test_lenient_records_defects():
    f = decode_frame(_map(seq=_DEL, fl="x", psz=7) + b"\x00\x01", strict=False)
    assert [e.vid for e in f.defects] == ["GBP-FRAME-TRAILING", "GBP-FRAME-TYPE", "GBP-FRAME-MISSING", "GBP-FRAME-PSZ"]
    assert (f.sequence_no, f.flags, f.payload_size, f.payload) == (0, 0, 7, b"ok")
    assert not f.ok
    with pytest.raises(DecodeError):
        decode_frame(b"\x01", strict=False)  # no map: nothing to return


def test_registry_values_match_wheel():
    for ours, ref in ((R.StreamType, gbp_stack.StreamType), (R.NodeState, gbp_stack.NodeState),
                      (R.ControlOpcode, gbp_stack.ControlOpcode), (R.PayloadCodec, gbp_stack.PayloadCodec)):
        assert {m.name: m.value for m in ours} == {m.name: m.value for m in ref}
    assert int(R.FrameFlags.ORDERED | R.FrameFlags.RELIABLE | R.FrameFlags.ACK_REQUESTED) == 7
    assert R.FrameFlags.CRITICAL == 0x10 and R.FrameFlags.SYSTEM == 0x8
    assert R.stream_id(R.StreamType.TEXT, 2) == 201 and R.stream_id(R.StreamType.AUDIO, 2) == 202
    assert R.TIMEOUTS_MS["T_execute_max"] == 10_000 and R.STREAM_KEY_LABELS[R.StreamType.TEXT] == b"gbp/text"
    with pytest.raises(UsageError):
        R.stream_id(7, 1)


# --- fuzz ----------------------------------------------------------------------------------------
_VALID = _map()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_only_typed_errors(data):
    for strict in (True, False):
        try:
            f = decode_frame(data, strict=strict)
        except GbpLabError:
            continue
        assert isinstance(f, GbpFrame)
        if strict:
            assert f.ok


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_mutated_frames_only_typed_errors(data):
    buf = bytearray(_VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        i = data.draw(st.integers(0, max(0, len(buf) - 1)))
        if op == "flip" and buf:
            buf[i] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del buf[i:]
        else:
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=4))
    try:
        f = decode_frame(bytes(buf))
    except GbpLabError:
        return
    assert f.payload_size == len(f.payload)
    assert decode_frame(f.to_cbor()) == f  # anything strict mode accepts re-encodes to itself


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(list(FRAME_KEYS) + ["x"]),
                       st.one_of(st.integers(-2, 2**65), st.binary(max_size=20), st.text(max_size=3),
                                 st.booleans(), st.none(), st.floats()), max_size=12))
def test_fuzz_structured_maps(d):
    data = cbor2.dumps(d)
    try:
        f = decode_frame(data)
    except DecodeError as e:
        assert e.vid.startswith("GBP-FRAME-")
        lenient = decode_frame(data, strict=False)
        assert lenient.defects and lenient.defects[0].vid == e.vid
        return
    assert f.ok and f.payload_size == len(f.payload)


def test_shared_value_references_cannot_hide_trailing_bytes():
    """cbor2 resolves RFC 8949 §9.2 shared values (tag 28) and references (tag 29): a 3-byte
    reference can stand for a 5-byte integer, so a frame using them plus trailing bytes has the
    length of a canonical one. The fast path must not accept it: strict decoding rejects the
    trailing bytes exactly as the slow path does."""
    from gbp_lab.core.gbp.frame import GbpFrame as _Frame, _decode_frame_slow

    frame = _Frame.build(b"A" * 16, 70000, 70000, 2, 70000, 0, 70000, b"xyz" * 10)
    canonical = frame.to_cbor()
    big = bytes.fromhex("1a00011170")  # 70000
    evil = canonical.replace(b"bep" + big, b"bep\xd8\x1c" + big)
    for key in (b"ctid", b"csid", b"cseq"):
        evil = evil.replace(key + big, key + b"\xd8\x1d\x00")
    evil += b"\x00" * 4
    with pytest.raises(DecodeError) as slow:
        _decode_frame_slow(evil, True)
    with pytest.raises(DecodeError) as fast:
        decode_frame(evil)
    assert fast.value.vid == slow.value.vid
