"""Decode the bytes of a protocol-tree field's byte range back to a value, in the payload codec
the range is in (helper of tests/test_widgets.py and tests/test_widgets_follow.py; not a test).

* CBOR (frame fields, control plane, CBOR payloads): the range is the value's whole data item;
* Protobuf: a varint (integer fields) or the bytes/string content of a length-delimited field;
* FlatBuffers: a little-endian scalar (u32/u64) or the content of a vector/string.
"""
from __future__ import annotations

from typing import Any

import cbor2

from gbp_lab.core.gbp.registry import PayloadCodec


def read_varint(b: bytes) -> int:
    value = shift = 0
    for i, x in enumerate(b):
        value |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            assert i == len(b) - 1, f"varint {b.hex()} has trailing bytes"
            return value
    raise AssertionError(f"unterminated varint {b.hex()}")


def decode_span(buf: bytes, start: int, end: int, codec: int, like: Any) -> Any:
    """The value in ``buf[start:end]`` for a field whose decoded value looks like ``like``."""
    piece = bytes(buf[start:end])
    c = PayloadCodec.for_wire(int(codec))
    if c is PayloadCodec.CBOR:
        return cbor2.loads(piece)
    if isinstance(like, bool) or not isinstance(like, (int, bytes, str)):
        raise AssertionError(f"unexpected field value {like!r}")
    if isinstance(like, int):
        return read_varint(piece) if c is PayloadCodec.PROTOBUF else int.from_bytes(piece, "little")
    return piece.decode("utf-8") if isinstance(like, str) else piece
