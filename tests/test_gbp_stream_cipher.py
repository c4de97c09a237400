"""The one stream-type table (core/gbp/registry.py) and the one stream cipher (core/gbp/aead.py)."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from gbp_lab.core.errors import DecryptError, UsageError
from gbp_lab.core.gbp import registry as R
from gbp_lab.core.gbp.aead import (CIPHERS, ExporterCiphers, StreamCipher, StreamCiphers,
                                   nonce_for, open_frame, seal_frame, stream_key)
from gbp_lab.core.gbp.frame import decode_frame
from gbp_lab.core.keylog import EXPORTER, KeyLog
from gbp_lab.core.mls.exporter_view import ExporterView

SECRET = bytes(range(32))
GID = bytes(range(16))


def test_stream_table_is_the_one_source():
    assert [i.name for i in R.STREAM_TYPES.values()] == ["control", "audio", "text", "signal"]
    assert [i.protocol for i in R.STREAM_TYPES.values()] == ["GBP", "GAP", "GTP", "GSP"]
    assert R.STREAM_KEY_LABELS == {st: i.label for st, i in R.STREAM_TYPES.items()}
    assert R.STREAM_KEY_LABELS[R.StreamType.TEXT] == b"gbp/text"
    assert R.stream_name(2) == "text" and R.stream_name(R.StreamType.AUDIO) == "audio"
    assert R.stream_name(9) == "unknown(9)"
    assert R.stream_protocol(3) == "GSP" and R.stream_protocol(0) == "GBP"
    assert R.stream_protocol(77) == "GBP"
    assert R.stream_info(1).payload == "GapPayload" and R.stream_info(5) is None
    for info in R.STREAM_TYPES.values():  # the payload names are real classes
        mod = __import__(info.payload_module, fromlist=[info.payload])
        assert isinstance(getattr(mod, info.payload), type)
    assert R.sender_of(1203) == 12


def test_stream_cipher_matches_the_formula():
    for st in range(4):
        c = StreamCipher.from_secret(SECRET, st)
        key = stream_key(SECRET, st)
        assert c.key == key and c.stream_type == st
        ct = c.seal(7, b"hello")
        assert ct == ChaCha20Poly1305(key).encrypt(nonce_for(7), b"hello", None)
        assert c.open(7, ct) == b"hello" and c.try_open(7, ct) == b"hello"
        assert c.try_open(8, ct) is None and c.try_open(7, ct[:5]) is None
        with pytest.raises(DecryptError) as e:
            c.open(8, ct)
        assert e.value.vid == "GBP-AEAD-TAG"
        with pytest.raises(DecryptError) as e:
            c.open(7, b"short")
        assert e.value.vid == "GBP-AEAD-SHORT"
        assert c.open(3, c.seal(3, b"x", b"hdr"), b"hdr") == b"x"
    with pytest.raises(UsageError):
        StreamCipher.from_secret(SECRET, 4)
    with pytest.raises(UsageError):
        StreamCipher.from_secret(SECRET, 0).seal(1 << 32, b"")


def test_from_exporter_equals_from_secret_and_cache():
    view = ExporterView(SECRET, 1)
    for st in range(4):
        assert StreamCipher.from_exporter(view, st).key == StreamCipher.from_secret(SECRET, st).key
    cache = ExporterCiphers()
    a = cache.get(view, 2)
    assert cache.get(view, 2) is a
    other = ExporterView(bytes(32), 1)
    assert cache.get(other, 2) is not a
    ciphers = StreamCiphers(max_size=2)
    c = ciphers.get(SECRET, 1)
    assert ciphers.get(SECRET, 1) is c and len(ciphers) == 1
    ciphers.get(SECRET, 2)
    ciphers.get(SECRET, 3)  # full: cleared wholesale
    assert len(ciphers) == 1


def test_frames_sealed_and_opened_through_the_cipher():
    log = KeyLog()
    log.add(EXPORTER, GID, 4, SECRET)
    fr = decode_frame(seal_frame(SECRET, GID, 4, 0, 2, 101, 7, 9, b"text").to_cbor())
    assert open_frame(fr, log) == b"text"
    assert CIPHERS.of_keylog(log, GID, 4, 2).open(9, fr.payload) == b"text"
    assert CIPHERS.of_keylog(log, GID, 5, 2) is None
