"""``payload_codec.decode`` of every payload message (GTP message/manifest/chunk, GAP payload, GSP
signal) in every codec (CBOR, Protobuf, FlatBuffers, and an unknown codec number = CBOR).

Input: a selector byte (``% 5`` = class, ``// 5 % 4`` = codec 0/1/2/7), then the payload.
Oracles: the CBOR fast path (``bytes``) and the general reader (``bytearray``) agree; a decoded
message re-encodes in its codec to bytes that decode to the same message.
"""
from __future__ import annotations

from gbp_lab.core import DecodeError, GapPayload, GspSignal, GtpMessage
from gbp_lab.core import AttachmentChunk, AttachmentManifest
from gbp_lab.core.payload_codec import decode, encode

from ..common import Cursor, Limits

LIMITS = Limits()
MAX_LEN = 4096
CLASSES = (GtpMessage, GapPayload, GspSignal, AttachmentManifest, AttachmentChunk)
CODECS = (0, 1, 2, 7)


def check(data: bytes) -> None:
    cur = Cursor(data)
    sel = cur.u8()
    cls = CLASSES[sel % len(CLASSES)]
    codec = CODECS[sel // len(CLASSES) % len(CODECS)]
    body = cur.rest()
    try:
        msg = decode(cls, body, codec)
    except DecodeError:
        msg = None
    if codec in (0, 7):
        try:
            slow = decode(cls, bytearray(body), codec)
        except DecodeError:
            slow = None
        assert (msg is None) == (slow is None), "CBOR fast path and general reader disagree on acceptance"
        assert msg == slow, "CBOR fast path and general reader decode different messages"
    if msg is None:
        return
    again = decode(cls, encode(msg, codec), codec)
    assert again == msg, "a decoded message does not survive encode/decode"
