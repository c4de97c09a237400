"""Control messages on stream 0 (``decode_control``) and the ErrorObject (``decode_error_object``).

Input: a selector byte (bit 0: ErrorObject), then the CBOR map. Oracle: an accepted message
re-encodes (``to_cbor``) to bytes that decode to the same message.
"""
from __future__ import annotations

from gbp_lab.core import decode_control, decode_error_object

from ..common import Cursor, Limits

LIMITS = Limits()
MAX_LEN = 4096


def check(data: bytes) -> None:
    cur = Cursor(data)
    sel = cur.u8()
    body = cur.rest()
    if sel & 1:
        err = decode_error_object(body)
        assert decode_error_object(err.to_cbor()) == err, "ErrorObject does not survive to_cbor/decode"
    else:
        msg = decode_control(body)
        assert decode_control(msg.to_cbor()) == msg, "ControlMessage does not survive to_cbor/decode"
