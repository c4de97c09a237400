"""Length-prefixed records (TCP/QUIC framing) and the incremental readers."""
from __future__ import annotations

import pathlib
import struct
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import refpeer  # noqa: E402

from gbp_lab.core.errors import DecodeError, OversizeError, TruncatedError, UsageError  # noqa: E402
from gbp_lab.core.gbp.frame import GbpFrame, encode_gbp_frame  # noqa: E402
from gbp_lab.core.gbp.framing import MAX_RECORD, FrameReader, RecordReader, encode_record  # noqa: E402

GID = bytes(16)
FRAMES = [encode_gbp_frame(1, GID, 1, 0, st, 100 * 2 + st, 7, seq, bytes([seq]) * seq)
          for seq, st in zip(range(1, 9), [0, 1, 2, 3] * 2)]


def _stream(records):
    return b"".join(encode_record(r) for r in records)


def _feed_all(reader, data, cuts):
    out = []
    prev = 0
    for c in sorted(set(cuts)) + [len(data)]:
        out += reader.feed(data[prev:c])
        prev = c
    return out + reader.close()


def test_encode_record_prefix_is_u32_le():
    assert encode_record(b"abc") == b"\x03\x00\x00\x00abc"
    assert encode_record(b"") == b"\x00\x00\x00\x00"
    with pytest.raises(UsageError):
        encode_record(bytes(MAX_RECORD + 1))


def test_whole_bytewise_and_coalesced_agree():
    data = _stream(FRAMES)
    whole = FrameReader().feed(data)
    bytewise = _feed_all(FrameReader(), data, range(len(data)))
    assert whole == bytewise == [GbpFrame.build(GID, 1, 0, st, 200 + st, 7, seq, bytes([seq]) * seq)
                                 for seq, st in zip(range(1, 9), [0, 1, 2, 3] * 2)]
    assert RecordReader().feed(data) == FRAMES


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=8), st.lists(st.integers(0, 400), max_size=12))
def test_random_splits_give_the_same_records(records, cuts):
    data = _stream(records)
    r = RecordReader()
    assert _feed_all(r, data, [c for c in cuts if c <= len(data)]) == records
    assert r.records == len(records) and r.buffered == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=8))
def test_fuzz_reader_items_are_typed(data, cuts):
    whole = FrameReader(max_record=64).feed(data)
    bytewise = _feed_all(FrameReader(max_record=64), data, range(len(data)))
    split = _feed_all(FrameReader(max_record=64), data, [c for c in cuts if c <= len(data)])
    for item in split:
        assert isinstance(item, (GbpFrame, DecodeError))
    # same items (errors compared by type and vid) whatever the split
    key = lambda it: (type(it).__name__, getattr(it, "vid", None), it if isinstance(it, GbpFrame) else None)  # noqa: E731
    assert [key(i) for i in split[:len(whole)]] == [key(i) for i in whole]
    assert [key(i) for i in bytewise] == [key(i) for i in split]


def test_oversize_reported_then_reader_failed():
    r = FrameReader()
    data = _stream(FRAMES[:2]) + struct.pack("<I", MAX_RECORD + 1) + b"junk"
    items = r.feed(data)
    assert items[:2] == [GbpFrame.build(GID, 1, 0, 0, 200, 7, 1, b"\x01"), GbpFrame.build(GID, 1, 0, 1, 201, 7, 2, b"\x02\x02")]
    assert isinstance(items[2], OversizeError) and items[2].vid == "GBP-RECORD-OVERSIZE"
    assert items[2].where == len(_stream(FRAMES[:2]))
    assert r.failed is items[2] and r.buffered == 0
    assert r.feed(_stream(FRAMES)) == [] and r.discarded == 4 + len(_stream(FRAMES))
    assert r.close() == []


def test_oversize_prefix_alone_is_rejected_without_buffering():
    r = RecordReader()
    assert r.feed(b"\xff\xff") == []
    items = r.feed(b"\xff\xff")
    assert len(items) == 1 and isinstance(items[0], OversizeError) and r.buffered == 0


def test_exactly_max_record_is_allowed():
    body = bytes(MAX_RECORD)
    assert RecordReader().feed(encode_record(body)) == [body]


def test_truncated_stream_reported_at_close():
    r = RecordReader()
    assert r.feed(encode_record(b"hello")[:-2]) == []
    items = r.close()
    assert len(items) == 1 and isinstance(items[0], TruncatedError) and items[0].vid == "GBP-RECORD-TRUNCATED"
    with pytest.raises(UsageError):
        r.feed(b"x")
    r2 = RecordReader()
    r2.feed(b"\x01\x00")
    assert isinstance(r2.close()[0], TruncatedError)
    assert RecordReader().close() == []


def test_bad_record_is_an_item_and_stream_stays_in_sync():
    data = _stream([FRAMES[0], b"\xa1\x61v\x01", FRAMES[1]])
    items = FrameReader().feed(data)
    assert isinstance(items[0], GbpFrame) and isinstance(items[2], GbpFrame)
    err = items[1]
    assert isinstance(err, DecodeError) and err.vid == "GBP-FRAME-MISSING"
    assert err.record == b"\xa1\x61v\x01" and err.offset == 4 + len(FRAMES[0])
    lenient = FrameReader(strict=False).feed(data)
    assert isinstance(lenient[1], GbpFrame) and lenient[1].defects


@pytest.mark.interop
def test_handshake_blobs_then_frames_with_decode_switch():
    # as the reference CLI: KeyPackage and Welcome as raw records, then GBP frames
    from gbp_stack import MlsContext
    with MlsContext.create("listener") as a, MlsContext.create("connector") as b:
        kp = a.export_key_package()
        welcome = b.invite(kp)
    with refpeer.two_member_group() as grp:
        wires = [f.wire for f in refpeer.reference_frames(grp)]
    data = _stream([kp, welcome] + wires)
    r = FrameReader(decode=False)
    items = r.feed(data[:len(kp) + 4 + len(welcome) + 4 + 3])
    assert items == [kp, welcome]
    assert kp[:4] == b"\x00\x01\x00\x01" and welcome[:4] == b"\x00\x01\x00\x03"
    r.decode = True
    frames = r.feed(data[len(kp) + len(welcome) + 8 + 3:]) + r.close()
    assert all(isinstance(f, GbpFrame) for f in frames) and [f.to_cbor() for f in frames] == wires
    assert r.records == 2 + len(wires)
