"""TLS presentation-language codec (RFC 9420 §2.1): strict varints, vectors, optionals."""
import pytest
from hypothesis import given, settings, strategies as st

from gbp_lab.core.errors import DecodeError, GbpLabError, TrailingBytesError, TruncatedError, UsageError
from gbp_lab.core.tls import Reader, Writer, decode, encode_varint


@given(st.integers(min_value=0, max_value=(1 << 30) - 1))
def test_varint_round_trip_and_minimal(v):
    enc = encode_varint(v)
    assert len(enc) == (1 if v < 0x40 else 2 if v < 0x4000 else 4)
    assert decode(enc, Reader.varint) == v


@pytest.mark.parametrize("data, vid", [
    (b"\x40\x25", "TLS-VARINT-MINIMAL"),           # 37 in two bytes
    (b"\x80\x00\x00\x25", "TLS-VARINT-MINIMAL"),   # 37 in four bytes
    (b"\xc0\x00\x00\x00\x00\x00\x00\x01", "TLS-VARINT-PREFIX"),
])
def test_varint_rejects_non_minimal_and_reserved(data, vid):
    with pytest.raises(DecodeError) as ei:
        decode(data, Reader.varint)
    assert ei.value.vid == vid


def test_vector_and_optional_round_trip():
    w = Writer().u16(7).vec(b"abc").optional(None, Writer.u8).optional(5, Writer.u32)
    w.vec_of([1, 2, 3], Writer.u16)
    data = w.getvalue()

    def read(r):
        return (r.u16(), r.vec(), r.optional(Reader.u8), r.optional(Reader.u32), r.vec_of(Reader.u16))

    assert decode(data, read) == (7, b"abc", None, 5, [1, 2, 3])


def test_trailing_and_truncated_are_typed():
    with pytest.raises(TrailingBytesError):
        decode(b"\x01\x02\x03", Reader.u16)
    with pytest.raises(TruncatedError):
        decode(b"\x05ab", Reader.vec)
    with pytest.raises(DecodeError):
        decode(b"\x02", lambda r: r.optional(Reader.u8))
    with pytest.raises(UsageError):
        Writer().u8(256)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_only_typed_errors(data):
    def read(r):
        return r.vec_of(lambda rr: (rr.varint(), rr.optional(Reader.vec)))
    try:
        decode(data, read)
    except GbpLabError:
        pass


def test_errors_keep_vid_and_where_when_pickled():
    import pickle
    from gbp_lab.core.errors import KeyLogError
    err = pickle.loads(pickle.dumps(KeyLogError("bad line", vid="KEYLOG-LINE", where="line 3")))
    assert type(err) is KeyLogError and err.vid == "KEYLOG-LINE" and err.where == "line 3"
    assert str(err) == "[KEYLOG-LINE] bad line (at line 3)"
