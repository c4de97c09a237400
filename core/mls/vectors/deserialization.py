"""Checker for ``deserialization.json`` (test-vectors.md "Deserialization", RFC 9420 §2.1.2).

Each case is a variable-length vector header ``vlbytes_header`` and the ``length`` it encodes. Both
directions are checked through :mod:`gbp_lab.core.tls`: the header decodes to ``length`` with no
byte left over, and ``length`` encodes to exactly the header (minimal encoding). For lengths small
enough to materialise, a full ``opaque<V>`` of that length also round-trips."""
from __future__ import annotations

from typing import Any

from ...tls import Reader, decode, encode_varint, encode_vec
from . import expect, unhex

_MATERIALISE = 1 << 16


def check(case: dict[str, Any]) -> None:
    header, length = unhex(case["vlbytes_header"]), case["length"]
    expect("decode", decode(header, lambda r: r.varint("vlbytes header"), "vlbytes header"), length)
    expect("encode", encode_varint(length), case["vlbytes_header"])
    if length <= _MATERIALISE:
        body = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
        wire = encode_vec(body)
        expect("vec.encode", wire, (header + body).hex())
        r = Reader(wire)
        expect("vec.decode", r.vec(), body.hex())
        r.done()
