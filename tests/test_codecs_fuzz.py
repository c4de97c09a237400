"""Property tests of the payload codecs: round trips in all three codecs, and hostile bytes give
only typed errors (DecodeError and its subclasses), never another exception."""
from __future__ import annotations

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbp_lab.core.errors import DecodeError
from gbp_lab.core.gap.payload import GapPayload
from gbp_lab.core.gbp.registry import PayloadCodec
from gbp_lab.core.gsp.args import GspArgsError, parse_args, validate_args
from gbp_lab.core.gsp.signal import GspSignal, SignalType
from gbp_lab.core.gtp.message import AttachmentChunk, AttachmentManifest, GtpMessage
from gbp_lab.core.payload_codec import cbor_decode_item

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
blob = st.binary(max_size=300)

messages = st.one_of(
    st.builds(GtpMessage, message_id=u64, sender_id=u32, timestamp_ms=u64, request_id=u32,
              flags=u8, content_type=u8, content=blob),
    st.builds(GapPayload, media_source_id=u32, rtp_sequence=u32, rtp_timestamp=u64,
              key_phase=u32, opus_frame=blob),
    st.builds(GspSignal, signal_type=u32, request_id=u32, sender_id=u32, role_claim=u32, args=blob),
    st.builds(AttachmentManifest, attachment_id=u64, filename=st.text(max_size=40),
              mime_type=st.text(max_size=40), total_size=u64, chunk_count=u32,
              sha256=st.binary(max_size=40)),
    st.builds(AttachmentChunk, attachment_id=u64, chunk_index=u32, chunk_count=u32, data=blob),
)
CLASSES = [GtpMessage, GapPayload, GspSignal, AttachmentManifest, AttachmentChunk]
codecs = st.sampled_from(list(PayloadCodec))


@SETTINGS
@given(msg=messages, codec=codecs)
def test_round_trip_every_codec(msg, codec):
    data = msg.to_bytes(codec)
    back = type(msg).from_bytes(data, codec)
    assert back == msg
    assert back.to_bytes(codec) == data


@SETTINGS
@given(msg=messages)
def test_cbor_is_a_plain_map_other_decoders_agree(msg):
    # an independent CBOR decoder sees the same keys and values, in the schema's order
    data = msg.to_bytes(PayloadCodec.CBOR)
    d = cbor2.loads(data)
    assert list(d) == [f.key for f in msg.SCHEMA.fields]
    assert list(d.values()) == [getattr(msg, f.attr) for f in msg.SCHEMA.fields]


def _typed_only(cls, data, codec):
    try:
        cls.from_bytes(data, codec)
    except DecodeError:
        pass


@SETTINGS
@given(cls=st.sampled_from(CLASSES), data=st.binary(max_size=200), codec=codecs)
def test_random_bytes_give_typed_errors(cls, data, codec):
    _typed_only(cls, data, codec)


@SETTINGS
@given(msg=messages, codec=codecs, data=st.data())
def test_mutated_encodings_give_typed_errors(msg, codec, data):
    raw = bytearray(msg.to_bytes(codec))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and raw:
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
        elif op == "cut" and raw:
            i = data.draw(st.integers(0, len(raw) - 1))
            del raw[i:i + data.draw(st.integers(1, 8))]
        else:
            i = data.draw(st.integers(0, len(raw)))
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    for cls in CLASSES:
        _typed_only(cls, bytes(raw), codec)


cbor_values = st.recursive(
    st.one_of(st.integers(-(2**64), 2**64 - 1), st.binary(max_size=20), st.text(max_size=20),
              st.booleans(), st.none(), st.floats(allow_nan=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.integers(-5, 50), st.text(max_size=5)),
                                            inner, max_size=4)),
    max_leaves=20)


@SETTINGS
@given(value=cbor_values, canonical=st.booleans())
def test_generic_reader_agrees_with_cbor2(value, canonical):
    data = cbor2.dumps(value, canonical=canonical)
    assert cbor_decode_item(data) == cbor2.loads(data)


@SETTINGS
@given(data=st.binary(max_size=60), sig=st.sampled_from(list(SignalType)))
def test_args_readers_give_typed_errors(data, sig):
    for fn in (lambda: parse_args(data), lambda: validate_args(sig, data)):
        try:
            fn()
        except GspArgsError:
            pass


@SETTINGS
@given(pairs=st.dictionaries(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), max_size=5),
       sig=st.sampled_from([SignalType.ROLE_CHANGE, SignalType.MUTE, SignalType.CODEC_UPDATE]))
def test_args_validation_rule(pairs, sig):
    data = cbor2.dumps(pairs)
    need = {SignalType.ROLE_CHANGE: (0, 1)}.get(sig, (0,))
    ok = all(k in pairs for k in need)
    try:
        validate_args(sig, data)
        assert ok
    except GspArgsError:
        assert not ok
    assert parse_args(data) == pairs
