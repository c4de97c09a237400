"""The one CBOR codec (gbp_lab.core.cbor): push/pull round trips against cbor2, the two leniency
policies of ``decode_map``, bounds, and fuzz (only typed errors)."""
from __future__ import annotations

import math
import struct

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbp_lab.core import cbor
from gbp_lab.core.cbor import (BOOL, BSTR, TSTR, U8, U16, U32, U64, UINT, CborTag, Leniency, Reader,
                               Writer, decode_item, decode_map, enc_bool, enc_bstr, enc_head,
                               enc_tstr, enc_uint, encode_map, encode_text_map, head_len)
from gbp_lab.core.errors import DecodeError, TrailingBytesError, TruncatedError, UsageError
from gbp_lab.core.gbp.control import CONTROL_SPEC
from gbp_lab.core.gbp.error_object import ERROR_OBJECT_SPEC
from gbp_lab.core.gbp.frame import FRAME_SPEC

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# a spec with every kind, optional key included
SPEC = (("a", UINT, U8), ("b", BSTR, 0), ("c", TSTR, 0), ("d", BOOL, 0), ("e", UINT, U64),
        ("f", UINT, -U16))
REQUIRED = SPEC[:5]

ints = st.integers(-(2**64), 2**64 - 1)
scalars = st.one_of(ints, st.binary(max_size=40), st.text(max_size=20), st.booleans(), st.none(),
                    st.floats(allow_nan=False))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.text(max_size=8), st.integers(-5, 1000)),
                                            inner, max_size=4)),
    max_leaves=20)


def _no_float(v):
    if isinstance(v, float):
        return False
    if isinstance(v, list):
        return all(_no_float(x) for x in v)
    if isinstance(v, dict):
        return all(_no_float(x) for x in v.values())
    return True


# ---------------------------------------------------------------------------------------------
# push
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1])
def test_heads_are_shortest_form_like_cbor2(n):
    assert enc_uint(n) == cbor2.dumps(n)
    assert len(enc_uint(n)) == head_len(n)
    assert enc_head(0x20, n) == cbor2.dumps(-1 - n)
    assert Writer().uint(n).getvalue() == enc_uint(n)


def test_out_of_range_arguments_are_usage_errors():
    with pytest.raises(UsageError) as ei:
        enc_uint(2**64)
    assert ei.value.vid == "CBOR-RANGE"
    with pytest.raises(UsageError):
        Writer().uint(-1)
    with pytest.raises(UsageError) as ei:
        Writer().value(object())
    assert ei.value.vid == "CBOR-TYPE"


def test_scalar_helpers():
    assert enc_bstr(b"\x00" * 30) == cbor2.dumps(b"\x00" * 30)
    assert enc_tstr("zé") == cbor2.dumps("zé")
    assert enc_bool(True) == cbor2.dumps(True) and enc_bool(False) == cbor2.dumps(False)
    assert Writer().array(2).bool(True).raw(b"\xf6").getvalue() == cbor2.dumps([True, None])


@SETTINGS
@given(values)
def test_writer_output_is_what_cbor2_reads(v):
    data = Writer().value(v).getvalue()
    assert cbor2.loads(data) == v
    if _no_float(v):  # cbor2 writes finite floats as doubles unless canonical (test_floats_*)
        assert data == cbor2.dumps(v)


# floats: the shortest exact width (RFC 8949 §4.2.2), as the reference's ciborium writes them. The
# wheel has no public API that CBOR-encodes a float (its encoders take integers and bytes; GSP
# args pass through as bytes), so the reference here is cbor2's canonical encoder, which applies
# the same rule to every float but NaN (cbor2 writes every NaN as f97e00; we, like ciborium and
# RFC 8949 §4.1 preferred serialization, keep a NaN's payload and sign)
def _widened(data: bytes) -> int:
    """The binary64 bits of the float item ``data`` (f16/f32 widened by hand, NaN payloads kept)."""
    head, body = data[0], int.from_bytes(data[1:], "big")
    if head == 0xFB:
        assert len(data) == 9
        return body
    if head == 0xFA:
        assert len(data) == 5
        return int.from_bytes(struct.pack(">d", struct.unpack(">f", data[1:])[0]), "big") \
            if (body >> 23) & 0xFF != 0xFF else (body >> 31) << 63 | 0x7FF << 52 | (body & 0x7FFFFF) << 29
    assert head == 0xF9 and len(data) == 3
    if (body >> 10) & 0x1F != 0x1F:
        return int.from_bytes(struct.pack(">d", struct.unpack(">e", data[1:])[0]), "big")
    return (body >> 15) << 63 | 0x7FF << 52 | (body & 0x3FF) << 42


@pytest.mark.parametrize("x, hexed", [
    (0.0, "f90000"), (-0.0, "f98000"), (1.5, "f93e00"), (65504.0, "f97bff"), (5.960464477539063e-08, "f90001"),
    (65505.0, "fa477fe100"), (3.4028234663852886e38, "fa7f7fffff"), (0.1, "fb3fb999999999999a"),
    (1e300, "fb7e37e43c8800759c"), (math.inf, "f97c00"), (-math.inf, "f9fc00"), (math.nan, "f97e00")])
def test_floats_take_the_shortest_exact_width(x, hexed):
    assert Writer().value(x).getvalue().hex() == hexed
    assert Writer().float(x).getvalue().hex() == hexed


@SETTINGS
@given(st.integers(0, 2**64 - 1))
def test_floats_round_trip_bit_for_bit_in_the_shortest_width(bits):
    x = struct.unpack(">d", bits.to_bytes(8, "big"))[0]
    data = Writer().float(x).getvalue()
    assert _widened(data) == bits  # exact: sign, -0.0, infinities and NaN payloads kept
    narrower = {9: ">f", 5: ">e"}.get(len(data))
    if narrower and not math.isnan(x):  # not exact in the next narrower width
        try:
            back = struct.unpack(narrower, struct.pack(narrower, x))[0]
            assert struct.pack(">d", back) != struct.pack(">d", x)
        except OverflowError:
            pass
    if not math.isnan(x):
        assert data == cbor2.dumps(x, canonical=True)
        assert struct.pack(">d", decode_item(data)) == struct.pack(">d", x)
        assert struct.pack(">d", cbor2.loads(data)) == struct.pack(">d", x)


@SETTINGS
@given(st.floats(width=16) | st.floats(width=32) | st.floats())
def test_floats_of_each_width_match_cbor2_canonical(x):
    data = Writer().value([x]).getvalue()
    if math.isnan(x):
        assert math.isnan(cbor2.loads(data)[0])
    else:
        assert data == cbor2.dumps([x], canonical=True)


@SETTINGS
@given(st.dictionaries(st.integers(0, 2**32), ints, max_size=6))
def test_encode_map_keeps_order(d):
    data = encode_map(d)
    assert data == cbor2.dumps(d) and list(cbor2.loads(data)) == list(d)
    assert encode_map(list(d.items())) == data


spec_values = st.fixed_dictionaries({
    "a": st.integers(0, U8), "b": st.binary(max_size=300), "c": st.text(max_size=30),
    "d": st.booleans(), "e": st.integers(0, U64), "f": st.integers(0, U16)})


@SETTINGS
@given(spec_values)
def test_text_map_is_serde_order_and_round_trips(vals):
    vals = {k: vals[k] for k, *_ in SPEC}
    data = encode_text_map(SPEC, vals)
    assert data == cbor2.dumps(vals)  # cbor2 keeps insertion order = spec order
    assert list(cbor2.loads(data)) == [k for k, *_ in SPEC]
    for leniency in Leniency:
        out, defects = decode_map(data, SPEC, "T", "t", leniency=leniency)
        assert out == vals and defects == []


def test_text_map_names_column():
    spec = (("k", UINT, U8, "attr"),)
    data = encode_text_map(spec, {"attr": 7})
    assert data == cbor2.dumps({"k": 7})
    assert decode_map(data, spec, "T", "t", leniency=Leniency.SERDE)[0] == {"attr": 7}
    with pytest.raises(DecodeError) as ei:
        decode_map(cbor2.dumps({"k": 300}), spec, "T", "t")
    assert ei.value.vid == "T-RANGE" and ei.value.where == "attr"


# ---------------------------------------------------------------------------------------------
# pull: generic items
# ---------------------------------------------------------------------------------------------
@SETTINGS
@given(values)
def test_canonical_cbor2_bytes_decode_equal(v):
    data = cbor2.dumps(v, canonical=True)
    assert decode_item(data) == cbor2.loads(data)
    r = Reader(data)
    assert r.item() == cbor2.loads(data) and r.at_end()


def test_generic_forms():
    assert decode_item(b"\x5f\x41a\x42bc\xff") == b"abc"  # indefinite byte string
    assert decode_item(b"\x9f\x01\x9f\xff\xff") == [1, []]
    assert decode_item(b"\xbf\x61k\x01\xff") == {"k": 1}
    assert decode_item(b"\xc1\x1a\x00\x00\x00\x01") == CborTag(1, 1)
    assert decode_item(b"\xf9\x7e\x00") != decode_item(b"\xf9\x7e\x00")  # NaN
    assert math.isinf(decode_item(b"\xfa\x7f\x80\x00\x00"))
    assert decode_item(b"\xa1\x82\x01\x02\x03") == {(1, 2): 3}  # unhashable key → tuple
    assert decode_item(b"\x01\x02", allow_trailing=True) == 1


@pytest.mark.parametrize("data,exc,vid", [
    (b"", TruncatedError, "CODEC-CBOR-TRUNCATED"),
    (b"\x5b" + b"\xff" * 8, TruncatedError, "CODEC-CBOR-TRUNCATED"),  # 2**64-1 byte string
    (b"\x9b" + b"\xff" * 8, TruncatedError, "CODEC-CBOR-TRUNCATED"),  # array of 2**64-1 items
    (b"\xbb" + b"\x7f" * 8, TruncatedError, "CODEC-CBOR-TRUNCATED"),
    (b"\x1c", DecodeError, "CODEC-CBOR-MALFORMED"),  # reserved ai 28
    (b"\x1f", DecodeError, "CODEC-CBOR-MALFORMED"),  # indefinite uint
    (b"\xff", DecodeError, "CODEC-CBOR-MALFORMED"),  # lone break
    (b"\x82\x01\xff", DecodeError, "CODEC-CBOR-MALFORMED"),  # break in a definite array
    (b"\x62\xc3\x28", DecodeError, "CODEC-CBOR-MALFORMED"),  # invalid UTF-8
    (b"\x5f\x61a\xff", DecodeError, "CODEC-CBOR-MALFORMED"),  # text chunk in a byte string
    (b"\xf8\x10", DecodeError, "CODEC-CBOR-MALFORMED"),  # two-byte simple < 32
    (b"\x01\x00", TrailingBytesError, "CODEC-CBOR-TRAILING"),
])
def test_generic_errors_are_typed(data, exc, vid):
    with pytest.raises(exc) as ei:
        decode_item(data)
    assert ei.value.vid == vid


def test_nesting_is_bounded():
    deep = b"\x81" * (cbor.MAX_DEPTH + 1) + b"\x00"
    with pytest.raises(DecodeError) as ei:
        decode_item(deep)
    assert "nesting" in ei.value.message
    assert decode_item(b"\x81" * cbor.MAX_DEPTH + b"\x00") is not None
    with pytest.raises(DecodeError):
        decode_item(b"\xc1" * 2000 + b"\x00")


def test_map_entries_keep_order_and_repeats():
    r = Reader(b"\xa3\x01\x61a\x00\xc2\x41\x05\x01\x80")
    major, _ai, n = r.head()
    assert major == 5 and r.map_entries(n) == [(1, "a"), (0, CborTag(2, b"\x05")), (1, [])]
    assert r.at_end() and cbor.bignum(CborTag(2, b"\x05")) == 5 and cbor.bignum(CborTag(3, b"")) == -1
    assert cbor.untag(CborTag(9, CborTag(3, b"\x01"))) == -2


def test_vid_prefix_is_the_callers():
    with pytest.raises(TruncatedError) as ei:
        decode_item(b"\x42a", vid_prefix="X-CBOR")
    assert ei.value.vid == "X-CBOR-TRUNCATED"
    with pytest.raises(UsageError):
        decode_item("not bytes")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# pull: maps under the two policies
# ---------------------------------------------------------------------------------------------
GOOD = {"a": 1, "b": b"x", "c": "y", "d": True, "e": 2**64 - 1}


def _pairs(pairs):
    w = Writer().map(len(pairs))
    for k, v in pairs:
        w.raw(k) if isinstance(k, bytes) and k[:1] != b"!" else w.value(k)
        w.raw(v) if isinstance(v, memoryview) else w.value(v)
    return w.getvalue()


def test_missing_optional_key_is_zero_and_required_missing_is_an_error():
    data = cbor2.dumps(GOOD)
    for leniency in Leniency:
        with pytest.raises(DecodeError) as ei:
            decode_map(data, SPEC[:5] + (("g", UINT, U8),), "T", "t", leniency=leniency)
        assert ei.value.where == "g" and "MISSING" in ei.value.vid
    out, _ = decode_map(data, SPEC, "T", "t")
    assert out["f"] == 0


def test_serde_accepts_what_the_reference_accepts_and_strict_does_not():
    tagged = cbor2.dumps({**GOOD, "a": cbor2.CBORTag(100, 5)})
    u8_array = cbor2.dumps({**GOOD, "b": [120, 121]})
    bkey = cbor2.dumps({**{k: v for k, v in GOOD.items() if k != "a"}, b"a": 1})
    bignum = bytes([0xA5]) + cbor2.dumps(GOOD)[1:].replace(b"\x61e\x1b" + b"\xff" * 8,
                                                            b"\x61e\xc2\x48" + b"\xff" * 8)
    indefinite = b"\xbf" + cbor2.dumps(GOOD)[1:] + b"\xff"
    serde = lambda d: decode_map(d, REQUIRED, "CODEC-CBOR", "t", leniency=Leniency.SERDE)[0]  # noqa: E731
    assert serde(tagged) == {**GOOD, "a": 5}
    assert serde(u8_array) == {**GOOD, "b": b"xy"}
    assert serde(bkey) == GOOD
    assert serde(bignum) == GOOD
    assert serde(indefinite) == GOOD
    strict = lambda d: decode_map(d, REQUIRED, "T", "t")[0]  # noqa: E731
    for data in (tagged, u8_array):
        with pytest.raises(DecodeError) as ei:
            strict(data)
        assert ei.value.vid == "T-TYPE"
    with pytest.raises(DecodeError) as ei:
        strict(bkey)  # a byte-string key is not the text key "a"
    assert ei.value.vid == "T-MISSING"
    assert strict(indefinite) == GOOD


@pytest.mark.parametrize("mutate,strict_vid,serde_vid", [
    (lambda d: cbor2.dumps({**d, "a": 256}), "T-RANGE", "T-RANGE"),
    (lambda d: cbor2.dumps({**d, "a": -1}), "T-RANGE", "T-RANGE"),
    (lambda d: cbor2.dumps({**d, "b": "s"}), "T-TYPE", "T-TYPE"),
    (lambda d: cbor2.dumps({**d, "d": 1}), "T-TYPE", "T-TYPE"),
    (lambda d: cbor2.dumps({**d, 7: 1}), None, "T-KEY-TYPE"),  # strict skips non-text keys
    (lambda d: cbor2.dumps(d) + b"\x00", "T-TRAILING", "T-TRAILING"),
    (lambda d: cbor2.dumps(list(d)), "T-NOT-MAP", "T-NOT-MAP"),
    (lambda d: b"\xa6" + cbor2.dumps(d)[1:] + b"\x61a\x01", "T-DUPLICATE", "T-DUP-KEY"),
    (lambda d: cbor2.dumps(d)[:-1], "T-CBOR", "T-TRUNCATED"),
])
def test_errors_and_vids_per_policy(mutate, strict_vid, serde_vid):
    data = mutate(GOOD)
    if strict_vid is None:
        assert decode_map(data, REQUIRED, "T", "t")[0] == GOOD
    else:
        with pytest.raises(DecodeError) as ei:
            decode_map(data, REQUIRED, "T", "t")
        assert ei.value.vid == strict_vid
    with pytest.raises(DecodeError) as ei:
        decode_map(data, REQUIRED, "T", "t", leniency=Leniency.SERDE)
    assert ei.value.vid == serde_vid


def test_strict_collects_defects_when_asked():
    data = cbor2.dumps({"a": 999, "b": 5, "e": 1}) + b"\x00"
    out, defects = decode_map(data, REQUIRED, "T", "t", strict=False)
    assert [d.vid for d in defects] == ["T-TRAILING", "T-RANGE", "T-TYPE", "T-MISSING", "T-MISSING"]
    assert out == {"a": 999, "b": b"", "c": "", "d": False, "e": 1}
    with pytest.raises(UsageError):
        decode_map(cbor2.dumps(GOOD), REQUIRED, "T", "t", strict=False, leniency=Leniency.SERDE)


def test_serde_unknown_values_nest_to_the_limit_only():
    ok = b"\xa6" + cbor2.dumps(GOOD)[1:] + b"\x61z" + b"\x81" * (cbor.MAX_DEPTH - 1) + b"\x00"
    assert decode_map(ok, REQUIRED, "T", "t", leniency=Leniency.SERDE)[0] == GOOD
    deep = b"\xa6" + cbor2.dumps(GOOD)[1:] + b"\x61z" + b"\x81" * cbor.MAX_DEPTH + b"\x00"
    with pytest.raises(DecodeError) as ei:
        decode_map(deep, REQUIRED, "T", "t", leniency=Leniency.SERDE)
    assert ei.value.vid == "T-MALFORMED"


def test_the_core_specs_round_trip():
    frame = {"v": 1, "gid": bytes(16), "ep": 3, "tid": 0, "st": 1, "sid": 101, "fl": 7, "seq": 1,
             "psz": 2, "pl": b"hi", "pf": 0}
    data = encode_text_map(FRAME_SPEC[:10], frame)
    assert decode_map(data, FRAME_SPEC, "GBP-FRAME", "frame")[0] == frame
    ctrl = {"op": 1, "rid": 2, "sid": 3, "tid": 4, "alen": 0, "args": b""}
    assert decode_map(encode_text_map(CONTROL_SPEC, ctrl), CONTROL_SPEC, "C", "c")[0] == ctrl


# ---------------------------------------------------------------------------------------------
# the reference's bytes
# ---------------------------------------------------------------------------------------------
@pytest.mark.interop
@SETTINGS
@given(st.integers(0, U64), st.integers(0, U32), st.integers(0, U8), st.integers(0, U32),
       st.integers(0, U16), st.integers(0, U32), st.binary(max_size=200))
def test_reference_frames_decode_and_reencode_identically(ep, tid, stype, sid, fl, seq, pl):
    gbp_stack = pytest.importorskip("gbp_stack")
    gid = bytes(range(16))
    wire = gbp_stack.encode_gbp_frame(1, gid, ep, tid, stype, sid, fl, seq, pl)
    for leniency in Leniency:
        vals, _ = decode_map(wire, FRAME_SPEC, "GBP-FRAME", "frame", leniency=leniency)
        assert (vals["ep"], vals["sid"], vals["pl"], vals["psz"]) == (ep, sid, pl, len(pl))
        assert encode_text_map(FRAME_SPEC[:10], vals) == wire


@pytest.mark.interop
@pytest.mark.parametrize("code", [0x0001, 0x0012, 0x1003, 0x2001, 0x3001])
def test_reference_error_objects(code):
    gbp_stack = pytest.importorskip("gbp_stack")
    wire = gbp_stack.lookup_error(code)
    if wire is None:
        pytest.skip(f"code {code:#06x} unknown to the reference")
    vals, _ = decode_map(wire, ERROR_OBJECT_SPEC, "GBP-ERROBJ", "error object")
    assert vals["reason"].startswith("ERR_")
    assert encode_text_map(ERROR_OBJECT_SPEC, vals) == wire


# ---------------------------------------------------------------------------------------------
# fuzz: hostile bytes give typed errors only
# ---------------------------------------------------------------------------------------------
def _decode_all(data: bytes) -> None:
    for call in (lambda: decode_item(data),
                 lambda: decode_map(data, SPEC, "T", "t"),
                 lambda: decode_map(data, SPEC, "T", "t", strict=False),
                 lambda: decode_map(data, SPEC, "T", "t", leniency=Leniency.SERDE)):
        try:
            call()
        except DecodeError:
            pass


@SETTINGS
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data):
    _decode_all(data)


@SETTINGS
@given(spec_values, st.integers(0, 400), st.integers(0, 255), st.integers(0, 3))
def test_fuzz_mutated_maps(vals, pos, byte, how):
    data = bytearray(encode_text_map(SPEC, vals))
    pos %= len(data)
    if how == 0:
        data[pos] = byte
    elif how == 1:
        del data[pos:]
    elif how == 2:
        data.insert(pos, byte)
    else:
        data[pos] ^= 1 << (byte % 8)
    _decode_all(bytes(data))
