"""``decode_frame`` strict and lenient on the same bytes (gbp_rfc §6).

Oracles beyond "typed errors only": a frame strict mode accepts is accepted by lenient mode with
no defects and the same fields; a frame strict mode refuses either is refused by lenient mode too
(not a CBOR map) or comes back with at least one defect; an accepted frame re-encodes
(``to_cbor``) to bytes that decode to the same frame.
"""
from __future__ import annotations

from gbp_lab.core import DecodeError, decode_frame

from ..common import Limits

LIMITS = Limits()
MAX_LEN = 4096


def check(data: bytes) -> None:
    try:
        strict = decode_frame(data, strict=True)
    except DecodeError:
        strict = None
    try:
        lenient = decode_frame(data, strict=False)
    except DecodeError:
        assert strict is None, "lenient decode refused a frame strict decode accepted"
        return
    if strict is None:
        assert lenient.defects, "strict decode refused a frame lenient decode found no defect in"
        return
    assert lenient == strict and not lenient.defects, "strict and lenient decodes differ"
    again = decode_frame(strict.to_cbor(), strict=True)
    assert again == strict, "to_cbor() of a decoded frame decodes to another frame"
