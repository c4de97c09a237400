"""Unit tests of the GTP/GAP/GSP payload codecs (no reference wheel needed).

Byte expectations come from the reference's documentation (reference-map §3 examples) or are
derived field by field from RFC 8949 / the protobuf and FlatBuffers encodings, never from our own
output; the interop tests compare with the reference's real bytes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import struct

import pytest

from gbp_lab.core.errors import DecodeError, TrailingBytesError, TruncatedError, UsageError
from gbp_lab.core.gap.payload import GapPayload
from gbp_lab.core.gbp.registry import PayloadCodec
from gbp_lab.core.gsp.args import (
    GspArgsError,
    SignalArgs,
    build_args,
    mute_args,
    parse_args,
    role_change_args,
    validate_args,
)
from gbp_lab.core.gsp.signal import GspSignal, SignalType
from gbp_lab.core.gtp.message import (
    AttachmentChunk,
    AttachmentManifest,
    GtpContentType,
    GtpFlags,
    GtpMessage,
    split_attachment,
)
from gbp_lab.core.payload_codec import (
    CborWriter,
    LengthMismatchError,
    cbor_decode_item,
    decode,
    encode,
    resolve_codec,
)

CBOR, PB, FB = PayloadCodec.CBOR, PayloadCodec.PROTOBUF, PayloadCodec.FLATBUFFERS


def tstr(s: str) -> bytes:
    assert len(s) < 24
    return bytes([0x60 | len(s)]) + s.encode()


# ---------------------------------------------------------------------------------------------
# CBOR layout (reference-map §3)
# ---------------------------------------------------------------------------------------------
def test_gtp_cbor_matches_reference_map_example():
    # A8 63"mid" 07 63"sid" 01 62"ts" 00 63"rid" 00 62"fl" 01 62"ct" 00 63"len" 02 64"body" 42"hi"
    expected = (b"\xa8" + tstr("mid") + b"\x07" + tstr("sid") + b"\x01" + tstr("ts") + b"\x00"
                + tstr("rid") + b"\x00" + tstr("fl") + b"\x01" + tstr("ct") + b"\x00"
                + tstr("len") + b"\x02" + tstr("body") + b"\x42hi")
    msg = GtpMessage.plain(sender_id=1, message_id=7, text="hi")
    assert msg.to_bytes() == expected
    assert GtpMessage.from_bytes(expected) == msg


def test_shortest_integers_and_key_order():
    p = GapPayload(media_source_id=24, rtp_sequence=256, rtp_timestamp=2**32, key_phase=65536,
                   opus_frame=b"\x00" * 24)
    expected = (b"\xa5" + tstr("msid") + b"\x18\x18" + tstr("seq") + b"\x19\x01\x00"
                + tstr("ts") + b"\x1b" + (2**32).to_bytes(8, "big")
                + tstr("kp") + b"\x1a\x00\x01\x00\x00" + tstr("opus") + b"\x58\x18" + b"\x00" * 24)
    assert p.to_bytes() == expected


def test_gsp_cbor_layout():
    s = GspSignal(SignalType.MUTE, request_id=9, sender_id=1, args=b"\xa1\x00\x03")
    expected = (b"\xa6" + tstr("t") + b"\x18\xc8" + tstr("rid") + b"\x09" + tstr("sid") + b"\x01"
                + tstr("rc") + b"\x00" + tstr("alen") + b"\x03" + tstr("args") + b"\x43\xa1\x00\x03")
    assert s.to_bytes() == expected


def test_attachment_cbor_layout():
    m = AttachmentManifest(1, "a", "b", 2, 1, b"\x00" * 32)
    assert m.to_bytes() == (b"\xa6" + tstr("aid") + b"\x01" + tstr("name") + b"\x61a"
                            + tstr("mime") + b"\x61b" + tstr("size") + b"\x02" + tstr("nc")
                            + b"\x01" + tstr("hash") + b"\x58\x20" + b"\x00" * 32)
    c = AttachmentChunk(1, 0, 1, b"x")
    assert c.to_bytes() == (b"\xa4" + tstr("aid") + b"\x01" + tstr("idx") + b"\x00"
                            + tstr("nc") + b"\x01" + tstr("data") + b"\x41x")


# ---------------------------------------------------------------------------------------------
# Protobuf layout (proto3: field numbers in order, zero values omitted)
# ---------------------------------------------------------------------------------------------
def test_protobuf_layout_omits_zero_fields():
    msg = GtpMessage.plain(sender_id=1, message_id=7, text="hi")
    # 1:7, 2:1, 5:1, 7:2, 8:"hi" — ts, rid, ct are zero and absent
    assert msg.to_bytes(PB) == bytes.fromhex("08071001280138024202") + b"hi"
    assert GspSignal(100, 0, 0).to_bytes(PB) == bytes.fromhex("0864")
    assert GapPayload(0, 0, 0, 0).to_bytes(PB) == b""
    assert GapPayload.from_bytes(b"", PB) == GapPayload(0, 0, 0, 0, b"")


# ---------------------------------------------------------------------------------------------
# codec selection
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value,expected", [
    (0, CBOR), (1, PB), (2, FB), (3, CBOR), (255, CBOR), (-1, CBOR), (PB, PB)])
def test_resolve_codec(value, expected):
    assert resolve_codec(value) is expected


@pytest.mark.parametrize("bad", [True, "cbor", 1.0, None])
def test_resolve_codec_rejects_non_ints(bad):
    with pytest.raises(UsageError):
        resolve_codec(bad)


def test_unknown_codec_number_reads_and_writes_cbor():
    msg = GtpMessage.plain(1, 2, "x")
    assert msg.to_bytes(9) == msg.to_bytes(CBOR)
    assert GtpMessage.from_bytes(msg.to_bytes(CBOR), 9) == msg
    assert encode(msg, 1) == msg.to_bytes(PB) and decode(GtpMessage, msg.to_bytes(PB), 1) == msg


def test_decode_rejects_non_bytes_and_non_messages():
    with pytest.raises(UsageError):
        GtpMessage.from_bytes("a8")
    with pytest.raises(UsageError):
        encode(object(), CBOR)
    assert GtpMessage.from_bytes(bytearray(GtpMessage.plain(1, 2, "x").to_bytes())).text == "x"


# ---------------------------------------------------------------------------------------------
# construction
# ---------------------------------------------------------------------------------------------
def test_constructor_defaults_and_checks():
    m = GtpMessage(message_id=1, sender_id=2, content=b"abc", flags=GtpFlags.URGENT | GtpFlags.PERSISTENT)
    assert m.content_length == 3 and m.flags == 5 and type(m.flags) is int
    assert m.kind is GtpContentType.PLAIN
    assert GtpMessage(1, 2, content_type=9).kind is None
    assert GtpMessage(1, 2, content=b"\xff").text is None
    assert GspSignal(SignalType.JOIN, 1, 2).signal_type == 100 and GspSignal(999, 1, 2).signal is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.sender_id = 3  # type: ignore[misc]
    for bad in (dict(flags=256), dict(sender_id=-1), dict(message_id=2**64), dict(content="x"),
                dict(sender_id=True), dict(request_id=2**32)):
        kw = dict(message_id=1, sender_id=2)
        kw.update(bad)
        with pytest.raises(UsageError):
            GtpMessage(**kw)
    with pytest.raises(UsageError):
        GapPayload.opus_20ms(1, 0x10000, 1, b"")
    assert GapPayload.opus_20ms(1, 5, 2, b"o").rtp_timestamp == 960
    with pytest.raises(UsageError):
        AttachmentManifest(1, b"name", "m", 1, 1, b"")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# CBOR decoding rules
# ---------------------------------------------------------------------------------------------
def cbor_map(pairs) -> bytes:
    w = CborWriter().map(len(pairs))
    for k, v in pairs:
        w.value(k).value(v)
    return w.getvalue()


GTP = [("mid", 5), ("sid", 1), ("ts", 0), ("rid", 0), ("fl", 1), ("ct", 0), ("len", 2), ("body", b"hi")]
ATTRS = {"mid": "message_id", "sid": "sender_id", "ts": "timestamp_ms", "rid": "request_id",
         "fl": "flags", "ct": "content_type", "len": "content_length", "body": "content"}


def test_any_key_order_and_unknown_keys():
    want = GtpMessage.from_bytes(cbor_map(GTP))
    assert GtpMessage.from_bytes(cbor_map(GTP[::-1])) == want
    assert GtpMessage.from_bytes(cbor_map(GTP[:3] + [("x", {"y": [1.5, None, True]})] + GTP[3:])) == want
    # re-encoding gives the reference's order back
    assert GtpMessage.from_bytes(cbor_map(GTP[::-1])).to_bytes() == cbor_map(GTP)


@pytest.mark.parametrize("key", [k for k, _ in GTP])
def test_missing_key(key):
    with pytest.raises(DecodeError) as ei:
        GtpMessage.from_bytes(cbor_map([(k, v) for k, v in GTP if k != key]))
    assert ei.value.vid == "CODEC-CBOR-MISSING-KEY" and ei.value.where == ATTRS[key]


@pytest.mark.parametrize("key,value,vid", [
    ("fl", 256, "CODEC-RANGE"), ("ct", -1, "CODEC-RANGE"), ("sid", 2**32, "CODEC-RANGE"),
    ("mid", "5", "CODEC-CBOR-TYPE"), ("body", "hi", "CODEC-CBOR-TYPE"), ("len", b"\x02", "CODEC-CBOR-TYPE"),
    ("ts", None, "CODEC-CBOR-TYPE"), ("rid", True, "CODEC-CBOR-TYPE"),
])
def test_wrong_type_or_range(key, value, vid):
    with pytest.raises(DecodeError) as ei:
        GtpMessage.from_bytes(cbor_map([(k, value if k == key else v) for k, v in GTP]))
    assert ei.value.vid == vid and ei.value.where == ATTRS[key]


def test_u64_bignum_range():
    over = cbor_map(GTP[1:])  # 7 entries; add mid as bignum 2**64 by hand
    data = bytes([0xA8]) + over[1:] + tstr("mid") + b"\xc2\x49\x01" + b"\x00" * 8
    with pytest.raises(DecodeError) as ei:
        GtpMessage.from_bytes(data)
    assert ei.value.vid == "CODEC-RANGE"
    ok = bytes([0xA8]) + over[1:] + tstr("mid") + b"\xc2\x48" + b"\xff" * 8
    assert GtpMessage.from_bytes(ok).message_id == 2**64 - 1


def test_duplicate_known_key():
    with pytest.raises(DecodeError) as ei:
        GtpMessage.from_bytes(cbor_map(GTP + [("sid", 1)]))
    assert ei.value.vid == "CODEC-CBOR-DUP-KEY"
    # a repeated unknown key is harmless
    assert GtpMessage.from_bytes(cbor_map(GTP + [("zz", 1), ("zz", 2)])).sender_id == 1


def test_integer_key_is_an_error():
    with pytest.raises(DecodeError) as ei:
        GtpMessage.from_bytes(cbor_map(GTP + [(0, 1)]))
    assert ei.value.vid == "CODEC-CBOR-KEY-TYPE"


def test_len_mismatch_every_codec():
    bad = GtpMessage(5, 1, content=b"hi", content_length=3)
    bad_sig = GspSignal(100, 1, 1, args=b"\xa0", args_length=0)
    for codec in PayloadCodec:
        with pytest.raises(LengthMismatchError) as ei:
            GtpMessage.from_bytes(bad.to_bytes(codec), codec)
        assert ei.value.where == "content_length"
        with pytest.raises(LengthMismatchError) as ei:
            GspSignal.from_bytes(bad_sig.to_bytes(codec), codec)
        assert ei.value.where == "args_length"


def test_trailing_and_truncated():
    good = cbor_map(GTP)
    with pytest.raises(TrailingBytesError):
        GtpMessage.from_bytes(good + b"\x00")
    for n in range(len(good)):
        with pytest.raises(DecodeError):
            GtpMessage.from_bytes(good[:n])
    with pytest.raises(TruncatedError):
        GtpMessage.from_bytes(good[:-1])
    # a declared length far beyond the input is refused before anything is read
    with pytest.raises(TruncatedError):
        GtpMessage.from_bytes(b"\xbb" + b"\xff" * 8)
    with pytest.raises(TruncatedError):
        GtpMessage.from_bytes(good[:-3] + b"\x5b" + b"\x7f" + b"\xff" * 7)


def test_indefinite_lengths_accepted():
    good = cbor_map(GTP)
    indef = b"\xbf" + good[1:-3] + b"\x5f\x41h\x41i\xff" + b"\xff"
    assert GtpMessage.from_bytes(indef) == GtpMessage.from_bytes(good)


@pytest.mark.parametrize("data", [b"\x1c", b"\x5f\x61a\xff", b"\x9f\xff\xff", b"\xff", b"\xf8\x10",
                                  b"\x7f\x61a", b"\x62\xff\xfe"])
def test_generic_reader_rejects_malformed(data):
    with pytest.raises(DecodeError):
        cbor_decode_item(data)


def test_generic_reader_values():
    data = cbor_map([(1, [True, False, None, -5, b"b", "t", 1.5]), ("k", {2: 3})])
    assert cbor_decode_item(data) == {1: [True, False, None, -5, b"b", "t", 1.5], "k": {2: 3}}
    assert cbor_decode_item(b"\xf9\x3c\x00") == 1.0


# ---------------------------------------------------------------------------------------------
# Protobuf decoding rules
# ---------------------------------------------------------------------------------------------
def test_protobuf_errors_are_typed():
    with pytest.raises(DecodeError) as ei:
        GtpMessage.from_bytes(b"\x0a\x01\x07", PB)  # message_id as length-delimited
    assert ei.value.vid == "CODEC-PB-WIRETYPE" and ei.value.where == "message_id"
    with pytest.raises(DecodeError) as ei:
        GtpMessage.from_bytes(b"\x42\x05hi", PB)
    assert ei.value.vid == "CODEC-PB-MALFORMED"
    with pytest.raises(DecodeError):
        GspSignal.from_bytes(b"\x08" + b"\xff" * 11, PB)
    # unknown fields are skipped (prost ignores them)
    assert GspSignal.from_bytes(b"\x08\x64\x78\x05", PB) == GspSignal(100, 0, 0)


def test_protobuf_u8_fields_range_checked():
    with pytest.raises(DecodeError) as ei:
        GtpMessage.from_bytes(b"\x30\x80\x02", PB)  # content_type = 256
    assert ei.value.vid == "CODEC-RANGE" and ei.value.where == "content_type"


# ---------------------------------------------------------------------------------------------
# FlatBuffers decoding rules
# ---------------------------------------------------------------------------------------------
def fb_table(slots) -> bytes:
    """Hand-built buffer: root offset, vtable, table; slots = list of (fmt, value) or None."""
    fields, offs, pos = b"", [], 4
    for s in slots:
        if s is None:
            offs.append(0)
            continue
        fmt, v = s
        offs.append(pos)
        fields += struct.pack("<" + fmt, v)
        pos += struct.calcsize(fmt)
    vt = struct.pack("<HH", 4 + 2 * len(offs), pos) + b"".join(struct.pack("<H", o) for o in offs)
    vt += b"\x00" * (len(vt) % 4)
    table_pos = 4 + len(vt)
    return struct.pack("<I", table_pos) + vt + struct.pack("<i", table_pos - 4) + fields


def test_flatbuffers_hand_built_table():
    data = fb_table([("I", 100), ("I", 7), ("I", 3)])  # signal_type, request_id, sender_id
    assert GspSignal.from_bytes(data, FB) == GspSignal(100, 7, 3)
    # absent args vector reads as empty, as the reference does
    assert GspSignal.from_bytes(data, FB).args == b""


def test_flatbuffers_empty_args_omitted_and_content_kept():
    # GSP leaves an empty args vector out, GTP always writes content (the reference's choice)
    from gbp_lab.core.payload_codec import _FlatTable

    assert _FlatTable(GspSignal(100, 1, 1).to_bytes(FB), "t").field_offset(5, 4, "args") == 0
    assert _FlatTable(GspSignal(100, 1, 1, args=b"\x00").to_bytes(FB), "t").field_offset(5, 4, "args")
    assert _FlatTable(GtpMessage(1, 1).to_bytes(FB), "t").field_offset(7, 4, "content")
    assert _FlatTable(GapPayload(1, 1, 1, 1).to_bytes(FB), "t").field_offset(4, 4, "opus")
    # zero scalars are left out (flatbuffers/planus default handling)
    assert _FlatTable(GtpMessage(1, 1).to_bytes(FB), "t").field_offset(2, 8, "ts") == 0


@pytest.mark.parametrize("data", [
    b"", b"\x04\x00\x00", b"\xff\xff\xff\xff", b"\x04\x00\x00\x00\x00\x00\x00\x00",
    struct.pack("<Ii", 4, -100) + b"\x00" * 8,  # vtable beyond the end
    struct.pack("<IHHH", 12, 6, 8, 60) + b"\x00\x00" + struct.pack("<iI", 8, 1),  # field beyond the end
    struct.pack("<IHH", 8, 3, 8) + struct.pack("<iI", 4, 0),  # odd vtable size
])
def test_flatbuffers_hostile_buffers(data):
    with pytest.raises(DecodeError):
        GspSignal.from_bytes(data, FB)


def test_flatbuffers_table_size_is_not_trusted():
    # planus ignores the vtable's table size and bounds-checks each field against the buffer
    data = bytearray(fb_table([("I", 100), ("I", 7), ("I", 3)]))
    data[6:8] = struct.pack("<H", 60000)
    assert GspSignal.from_bytes(bytes(data), FB) == GspSignal(100, 7, 3)


def test_flatbuffers_hostile_vector_length():
    good = GtpMessage(1, 1, content=b"abcd").to_bytes(FB)
    idx = good.index(b"\x04\x00\x00\x00abcd")
    huge = good[:idx] + b"\xff\xff\xff\x7f" + good[idx + 4:]
    with pytest.raises(TruncatedError):
        GtpMessage.from_bytes(huge, FB)


# ---------------------------------------------------------------------------------------------
# attachments
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("codec", list(PayloadCodec), ids=lambda c: c.name)
def test_attachment_round_trip(codec):
    data = bytes(i % 251 for i in range(300))
    manifest, chunks = split_attachment(2, "multi.bin", "application/octet-stream", data, 100)
    assert manifest.chunk_count == 3 and len(chunks) == 3
    assert manifest.sha256 == hashlib.sha256(data).digest() and manifest.verify(data)
    assert not manifest.verify(data[:-1] + b"\x00")
    assert AttachmentManifest.from_bytes(manifest.to_bytes(codec), codec) == manifest
    got = [AttachmentChunk.from_bytes(c.to_bytes(codec), codec) for c in chunks]
    assert got == chunks and b"".join(c.data for c in got) == data
    assert [c.chunk_index for c in got] == [0, 1, 2]


def test_split_attachment_edges():
    m, chunks = split_attachment(1, "e", "x/y", b"", 10)
    assert (m.chunk_count, chunks, m.total_size) == (0, [], 0)
    m, chunks = split_attachment(1, "e", "x/y", b"abc", 0)  # chunk size at least 1
    assert m.chunk_count == 3


def test_flatbuffers_string_must_be_utf8():
    good = AttachmentManifest(1, "ab", "c", 1, 1, b"").to_bytes(FB)
    bad = good.replace(b"\x02\x00\x00\x00ab", b"\x02\x00\x00\x00\xff\xfe")
    with pytest.raises(DecodeError) as ei:
        AttachmentManifest.from_bytes(bad, FB)
    assert ei.value.vid == "CODEC-FB-UTF8"


# ---------------------------------------------------------------------------------------------
# GSP args (reference-map §3 examples)
# ---------------------------------------------------------------------------------------------
def test_args_examples():
    assert role_change_args(target_member_id=5, new_role=2) == bytes.fromhex("a200050102")
    assert mute_args(3) == bytes.fromhex("a10003")
    assert build_args(SignalType.JOIN) == b"" and build_args(SignalType.LEAVE) == b""
    assert build_args(SignalType.CODEC_UPDATE, codec_id=1000) == bytes.fromhex("a1001903e8")
    a = validate_args(SignalType.ROLE_CHANGE, bytes.fromhex("a200050102"))
    assert (a.target_member_id, a.new_role, a.entries) == (5, 2, ((0, 5), (1, 2)))
    assert a.to_bytes() == bytes.fromhex("a200050102")
    assert validate_args(SignalType.STREAM_STOP, bytes.fromhex("a10001")).stream_type == 1
    assert validate_args(SignalType.JOIN, b"\xff") == SignalArgs(SignalType.JOIN)


@pytest.mark.parametrize("kwargs", [{}, {"target_member_id": 1}, {"codec_id": 1, "x": 2},
                                    {"target_member_id": -1, "new_role": 1}])
def test_build_args_misuse(kwargs):
    with pytest.raises(UsageError):
        build_args(SignalType.ROLE_CHANGE, **kwargs) if "codec_id" not in kwargs else \
            build_args(SignalType.CODEC_UPDATE, **kwargs)


def test_parse_args_is_strict_validate_is_not():
    with pytest.raises(GspArgsError):
        parse_args(bytes.fromhex("a10003ff"))  # trailing byte
    assert validate_args(SignalType.MUTE, bytes.fromhex("a10003ff")).target_member_id == 3
    with pytest.raises(GspArgsError):
        parse_args(bytes.fromhex("a200010002"))  # duplicate key
    assert validate_args(SignalType.MUTE, bytes.fromhex("a200010002")).target_member_id == 1
    assert parse_args(bytes.fromhex("a2000102626869")) == {0: 1, 2: "hi"}
    for bad in (b"", b"\x80", bytes.fromhex("a1616100"), bytes.fromhex("a12000")):
        with pytest.raises(GspArgsError) as ei:
            parse_args(bad)
        assert ei.value.vid == "GSP-BAD-SCHEMA"


def test_signal_parsed_args():
    s = GspSignal(SignalType.MUTE, 1, 1, args=mute_args(4))
    assert s.parsed_args().target_member_id == 4
    with pytest.raises(GspArgsError):
        GspSignal(SignalType.MUTE, 1, 1).parsed_args()


@pytest.mark.parametrize("module", ["gbp_lab.core.gtp.message", "gbp_lab.core.gap.payload",
                                    "gbp_lab.core.gsp.args"])
def test_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


# Protobuf field numbers and types as listed in reference-map §4 (from crates/gbp-proto/proto).
PROTO_FACTS = {
    GtpMessage: [("message_id", 1, "uint64"), ("sender_id", 2, "uint32"), ("timestamp_ms", 3, "uint64"),
                 ("request_id", 4, "uint32"), ("flags", 5, "uint32"), ("content_type", 6, "uint32"),
                 ("content_length", 7, "uint32"), ("content", 8, "bytes")],
    GapPayload: [("media_source_id", 1, "uint32"), ("rtp_sequence", 2, "uint32"),
                 ("rtp_timestamp", 3, "uint64"), ("key_phase", 4, "uint32"), ("opus_frame", 5, "bytes")],
    GspSignal: [("signal_type", 1, "uint32"), ("request_id", 2, "uint32"), ("sender_id", 3, "uint32"),
                ("role_claim", 4, "uint32"), ("args_length", 5, "uint32"), ("args", 6, "bytes")],
}


@pytest.mark.parametrize("cls", list(PROTO_FACTS), ids=lambda c: c.__name__)
def test_protobuf_descriptor_matches_reference_schema(cls):
    from google.protobuf.descriptor import FieldDescriptor as FD

    from gbp_lab.core.payload_codec import protobuf_class

    names = {FD.TYPE_UINT64: "uint64", FD.TYPE_UINT32: "uint32", FD.TYPE_BYTES: "bytes"}
    desc = protobuf_class(cls.SCHEMA).DESCRIPTOR
    assert desc.full_name == {GtpMessage: "gtp.GtpMessage", GapPayload: "gap.GapPayload",
                              GspSignal: "gsp.GspSignal"}[cls]
    assert [(f.name, f.number, names[f.type]) for f in desc.fields] == PROTO_FACTS[cls]
    # proto3 scalars: no presence, zero omitted
    assert all(not f.has_presence for f in desc.fields)
