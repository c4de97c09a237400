"""Exact-shape matchers (gbp_lab.core.cbor_shape): on every input where a matcher returns values
the full decoder returns the same values; canonical encodings always match; anything else goes
to the full decoder."""
from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbp_lab.core import cbor as C
from gbp_lab.core.cbor_shape import compile_shape
from gbp_lab.core.errors import DecodeError, UsageError
from gbp_lab.core.gap.payload import GapPayload
from gbp_lab.core.gbp.frame import (FRAME_SPEC, GbpFrame, _decode_frame_slow, decode_frame,
                                    frame_values)
from gbp_lab.core.gsp.signal import GspSignal
from gbp_lab.core.gtp.message import AttachmentChunk, AttachmentManifest, GtpMessage
from gbp_lab.core.payload_codec import (_cbor_decode, cbor_spec, cbor_values_matcher,
                                        check_lengths, decode)

PAYLOADS = [GtpMessage, AttachmentManifest, AttachmentChunk, GapPayload, GspSignal]


def _value(f):
    if f.kind.is_int:
        top = (1 << f.kind.value) - 1
        return st.one_of(st.sampled_from([v for v in (0, 23, 24, 255, 256, 65535, 65536, top)
                                          if v <= top]),
                         st.integers(0, top))
    if f.kind.name == "TEXT":
        return st.text(max_size=40)
    return st.binary(max_size=300)


def _messages(cls):
    fields = cls.SCHEMA.fields
    return st.tuples(*[_value(f) for f in fields]).map(
        lambda vals: {f.attr: v for f, v in zip(fields, vals)})


def _fix_lengths(cls, values):
    for la, da in cls.SCHEMA.length_checks:
        values[la] = len(values[da])
    return values


def _full(cls, data):
    """The serde-compatible decoder without the fast path: values tuple or None."""
    try:
        vals = _cbor_decode(cls.SCHEMA, data)
        check_lengths(cls.SCHEMA, vals, "CBOR")
    except DecodeError:
        return None
    return tuple(vals[f.attr] for f in cls.SCHEMA.fields)


def _mutate(data, pos, byte, cut):
    data = bytearray(data)
    if data:
        data[pos % len(data)] = byte
    return bytes(data[:len(data) - cut] if cut <= len(data) else b"")


@pytest.mark.parametrize("cls", PAYLOADS, ids=lambda c: c.__name__)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_canonical_payloads_match_and_agree(cls, data):
    values = _fix_lengths(cls, data.draw(_messages(cls)))
    raw = C.encode_text_map(cbor_spec(cls.SCHEMA), values)
    got = cbor_values_matcher(cls.SCHEMA)(raw)
    assert got is not None
    assert got == _full(cls, raw) == tuple(values[f.attr] for f in cls.SCHEMA.fields)
    assert decode(cls, raw).to_bytes() == raw


@pytest.mark.parametrize("cls", PAYLOADS, ids=lambda c: c.__name__)
@settings(max_examples=300, deadline=None)
@given(data=st.data(), pos=st.integers(0, 400), byte=st.integers(0, 255),
       cut=st.integers(0, 3), tail=st.binary(max_size=3))
def test_mutated_payloads_never_disagree(cls, data, pos, byte, cut, tail):
    values = _fix_lengths(cls, data.draw(_messages(cls)))
    raw = _mutate(C.encode_text_map(cbor_spec(cls.SCHEMA), values), pos, byte, cut) + tail
    got = cbor_values_matcher(cls.SCHEMA)(raw)
    if got is not None:
        assert got == _full(cls, raw)
        # only the canonical form matches: it re-encodes to the same bytes
        assert C.encode_text_map(cbor_spec(cls.SCHEMA),
                                 {f.attr: v for f, v in zip(cls.SCHEMA.fields, got)}) == raw
    try:
        via_decode = decode(cls, raw)
    except DecodeError:
        assert _full(cls, raw) is None
    else:
        assert tuple(getattr(via_decode, f.attr) for f in cls.SCHEMA.fields) == _full(cls, raw)


_frames = st.builds(
    lambda gid, ep, tid, st_, sid, fl, seq, pl, pf: GbpFrame.build(gid, ep, tid, st_, sid, fl, seq,
                                                                  pl, pf),
    st.one_of(st.just(b"G" * 16), st.binary(max_size=20)),
    st.one_of(st.sampled_from([0, 23, 24, 2**16, 2**32, 2**64 - 1]), st.integers(0, 2**64 - 1)),
    st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, 2**32 - 1),
    st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1), st.binary(max_size=300),
    st.integers(0, 255))


def _frame_tuple(f):
    return (f.version, f.group_id, f.epoch, f.transition_id, f.stream_type, f.stream_id, f.flags,
            f.sequence_no, f.payload_size, f.payload, f.payload_format)


@settings(max_examples=300, deadline=None)
@given(_frames, st.integers(0, 400), st.integers(0, 255), st.integers(0, 3),
       st.binary(max_size=3), st.booleans())
def test_frames_agree_with_the_strict_decoder(frame, pos, byte, cut, tail, mutate):
    raw = frame.to_cbor()
    if not mutate:
        got = frame_values(raw)
        if len(frame.group_id) == 16:
            assert got == _frame_tuple(frame)
        else:  # other group-id lengths are the careful path's business
            assert got is None
        assert decode_frame(raw) == frame
        return
    raw = _mutate(raw, pos, byte, cut) + tail
    got = frame_values(raw)
    try:
        slow = _frame_tuple(_decode_frame_slow(raw, True))
    except DecodeError:
        slow = None
    if got is not None:
        assert got == slow
    try:
        assert _frame_tuple(decode_frame(raw)) == slow
    except DecodeError:
        assert slow is None


def test_shared_references_never_pass_the_payload_fast_path():
    """RFC 8949 §9.2 shared values: cbor2 resolves a 3-byte reference into a whole earlier value,
    so a payload could hide trailing bytes behind the length of a canonical one. No tag passes a
    shape matcher; the full decoder sees the trailing bytes."""
    big = 70000
    m = GtpMessage(big, big, big, big, 0, 0, None, b"hello")
    canonical = m.to_bytes()
    enc = bytes.fromhex("1a00011170")
    evil = canonical.replace(b"cmid" + enc, b"cmid\xd8\x1c" + enc, 1)
    for key in (b"csid", b"bts", b"crid"):
        evil = evil.replace(key + enc, key + b"\xd8\x1d\x00", 1)
    evil += b"\x00" * 4  # the 4 bytes the references saved: canonical length, trailing bytes
    assert len(evil) == len(canonical)
    assert cbor2.loads(evil) == cbor2.loads(canonical)  # cbor2 alone sees the same map
    assert cbor_values_matcher(GtpMessage.SCHEMA)(evil) is None
    with pytest.raises(DecodeError):
        decode(GtpMessage, evil)
    # the GTP client's accept had its own cbor2 fast path, which took this message (fixed)
    from gbp_lab.core.gtp.client import GtpClient

    assert GtpClient().accept(evil, 0).status == "error"


def test_other_key_orders_and_long_forms_go_to_the_full_decoder():
    m = GtpMessage.plain(7, 9, "hi")
    canonical = m.to_bytes()
    reordered = cbor2.dumps(dict(reversed(list(cbor2.loads(canonical).items()))))
    long_mid = canonical.replace(b"cmid\x09", b"cmid\x18\x09", 1)
    matcher = cbor_values_matcher(GtpMessage.SCHEMA)
    for data in (reordered, long_mid):
        assert matcher(data) is None
        assert decode(GtpMessage, data) == m  # the reference accepts both; so do we


def test_small_specs_and_bad_specs():
    one = compile_shape([("k", C.UINT, 300)])
    assert one(cbor2.dumps({"k": 300})) == (300,)
    assert one(cbor2.dumps({"k": 301})) is None          # above max inside the same head width
    assert one(cbor2.dumps({"k": 300}) + b"\x00") is None
    text = compile_shape([("t", C.TSTR, 0), ("n", C.UINT, C.U8)])
    assert text(cbor2.dumps({"t": "é", "n": 1})) == ("é", 1)
    assert text(b"\xa2\x61t\x61\xff\x61n\x01") is None   # bad UTF-8
    fixed = compile_shape([("b", C.BSTR, 0)], fixed_lengths={"b": 2})
    assert fixed(cbor2.dumps({"b": b"ab"})) == (b"ab",)
    assert fixed(cbor2.dumps({"b": b"abc"})) is None
    counted = compile_shape([("n", C.UINT, C.U32), ("d", C.BSTR, 0)], equal_lengths=[("n", "d")])
    assert counted(cbor2.dumps({"n": 2, "d": b"ab"})) == (2, b"ab")
    assert counted(cbor2.dumps({"n": 3, "d": b"ab"})) is None
    memo = compile_shape([("a", C.UINT, C.U64), ("b", C.UINT, C.U8)], memo=1, memo_size=2)
    for a in (1, 2**40, 3, 1, 2**40):
        assert memo(cbor2.dumps({"a": a, "b": 7})) == (a, 7)
    assert len(memo.memo) <= 2
    some = compile_shape([("a", C.UINT, C.U64), ("t", C.TSTR, 0), ("b", C.UINT, 300)],
                         values=["a"])
    assert some(cbor2.dumps({"a": 5, "t": "x", "b": 300})) == (5,)
    assert some(cbor2.dumps({"a": 5, "t": "x", "b": 301})) is None   # unreturned, still checked
    assert some(b"\xa3\x61a\x05\x61t\x61\xff\x61b\x01") is None         # and so is UTF-8
    with pytest.raises(UsageError):
        compile_shape([("a", C.UINT, 1)], values=["nope"])
    for bad in ([], [("a", C.UINT, 1), ("a", C.UINT, 1)], [("a", C.BOOL, 0)]):
        with pytest.raises(UsageError):
            compile_shape(bad)
    with pytest.raises(UsageError):
        compile_shape([("n", C.UINT, 1)], equal_lengths=[("n", "missing")])
    with pytest.raises(UsageError):
        compile_shape([("d", C.BSTR, 0), ("n", C.UINT, 1)], memo=1)  # variable-size memo row
    assert FRAME_SPEC[-1][0] == "pf"
