"""SFrame (RFC 9605 §4.3 header; the ``draft-1.5`` profile): ``parse_header`` in each profile and
``auto``, ``SFrameHeader.decode``, ``detect_profile``, and ``SFrameSession.decrypt`` (session open:
header → KID epoch → tag room → replay window → AEAD) with a fixed base key, so seeds made by
:class:`SFrameEncryptor` with that key reach the plaintext.

Input: a selector byte (``% 3`` → rfc9605 / draft-1.5 / auto), then the SFrame payload. Oracle: a
parsed header encodes back to the bytes it was read from.
"""
from __future__ import annotations

from gbp_lab.core import DecodeError, GbpLabError, SFrameSession
from gbp_lab.core.sframe import SFrameHeader, detect_profile, parse_header

from ..common import Cursor, Limits

LIMITS = Limits()
MAX_LEN = 2048
BASE_KEY = bytes(range(0x40, 0x60))  #: the seeds' base key (fuzz/make_seeds.py)
EPOCH = 3
PROFILES = ("rfc9605", "draft-1.5", "auto")


def check(data: bytes) -> None:
    cur = Cursor(data)
    profile = PROFILES[cur.u8() % len(PROFILES)]
    payload = cur.rest()
    try:
        detect_profile(payload)
    except GbpLabError:
        pass
    try:
        header, n = parse_header(payload, profile)
    except DecodeError:
        header, n = None, 0
    if header is not None:
        assert header.encode() == payload[:n], "SFrame header does not encode back to its bytes"
        try:
            SFrameHeader.decode(payload[:n], header.profile)
        except GbpLabError as err:
            raise AssertionError(f"SFrameHeader.decode refuses what parse_header read: {err}") from err
    if profile == "auto":
        return
    session = SFrameSession.from_base_key(BASE_KEY, EPOCH, profile=profile)
    session.decrypt(payload)
