"""Per-stream payload AEAD of GBP frames (gbp-mls-binding.md; reference crates/gbp/mls/src/lib.rs
``export_stream_key`` / ``seal`` / ``open``).

* key = ``MLS-Exporter(label, context = "", 32)`` (RFC 9420 §8.5) with label ``gbp/control``,
  ``gbp/audio``, ``gbp/text`` or ``gbp/signal`` by stream type, from the exporter secret of the
  MLS epoch the sender was in;
* ChaCha20-Poly1305 (RFC 8439), nonce = ``seq`` as u32 big-endian ‖ 8 zero bytes, AAD empty;
  ``pl`` = ciphertext ‖ 16-byte tag.

Nothing but the stream type and ``seq`` enters the key or the nonce: every sender of one stream
type in one epoch shares the key, and two senders reaching the same ``seq`` reuse a nonce (the
reference's design, reported by the lab's analysis, not "fixed" here).

Which epoch's key (:func:`open_frame`): the frame's ``ep`` is the GBP *node* epoch. In the
reference flow (``bootstrap_as_creator(mls.epoch)`` / ``bootstrap_as_joiner(mls.epoch)``, then one
``apply_transition`` per merged commit — python/tests/test_integration.py,
crates/gbp/stack/tests/lifecycle.rs) it equals the MLS epoch, so ``open_frame`` looks the exporter
secret up under ``(gid, ep)``. The two are independent counters in the reference, though
(``bootstrap_as_creator`` takes any number, the node advances on EXECUTE whether or not MLS merged,
and EXECUTE itself is sealed under the *old* MLS epoch while announcing the new one). For such
captures pass ``mls_epoch=`` explicitly (e.g. ``frame.epoch + offset``).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ..errors import DecodeError, DecryptError, MissingKeyError, UsageError
from ..mls.suites import CipherSuite
from .frame import GbpFrame
from .registry import GBP_VERSION, STREAM_KEY_LABELS, PayloadCodec, StreamType

KEY_LENGTH = 32
TAG_LENGTH = 16
_ZERO8 = bytes(8)
_NONCES: Dict[int, bytes] = {}


def nonce_for(seq: int) -> bytes:
    """``seq`` (u32) big-endian ‖ 8 zero bytes."""
    if not 0 <= seq <= 0xFFFFFFFF:
        raise UsageError(f"seq {seq} does not fit in u32", vid="GBP-AEAD-SEQ")
    return seq.to_bytes(4, "big") + _ZERO8


def stream_label(stream_type: int) -> bytes:
    """The exporter label of *stream_type* (``UsageError`` for an unknown type)."""
    try:
        return STREAM_KEY_LABELS[StreamType(stream_type)]
    except ValueError:
        raise UsageError(f"no key label for stream type {stream_type!r}", vid="GBP-AEAD-STREAM") from None


def stream_key(exporter_secret: bytes, stream_type: int, suite: int = 1) -> bytes:
    """``MLS-Exporter(stream label, "", 32)`` of the given exporter secret (RFC 9420 §8.5)."""
    return CipherSuite.get(suite).mls_exporter(exporter_secret, stream_label(stream_type), b"",
                                               KEY_LENGTH)


# Cache: (exporter_secret, suite, stream_type) -> ChaCha20Poly1305. Keyed by the secret itself
# so that a changed key log can never serve a stale key. Bounded; cleared wholesale when full.
_CACHE_MAX = 4096
_aead_cache: Dict[Tuple[bytes, int, int], ChaCha20Poly1305] = {}


def _aead_for(exporter_secret: bytes, stream_type: int, suite: int) -> ChaCha20Poly1305:
    k = (exporter_secret, suite, stream_type)
    aead = _aead_cache.get(k)
    if aead is None:
        if len(_aead_cache) >= _CACHE_MAX:
            _aead_cache.clear()
        aead = _aead_cache[k] = ChaCha20Poly1305(stream_key(exporter_secret, stream_type, suite))
    return aead


def seal_payload(key: bytes, seq: int, plaintext: bytes) -> bytes:
    """ChaCha20-Poly1305 seal under a stream key: returns ciphertext ‖ tag."""
    return ChaCha20Poly1305(key).encrypt(nonce_for(seq), plaintext, None)


def open_payload(key: bytes, seq: int, ciphertext: bytes) -> bytes:
    """Open ciphertext ‖ tag under a stream key (:class:`DecryptError` when the tag fails)."""
    return _open(ChaCha20Poly1305(key), seq, ciphertext)


def _open(aead: ChaCha20Poly1305, seq: int, ciphertext: bytes) -> bytes:
    if len(ciphertext) < TAG_LENGTH:
        raise DecryptError(f"payload of {len(ciphertext)} bytes is shorter than the tag",
                           vid="GBP-AEAD-SHORT")
    nonce = _NONCES.get(seq)
    if nonce is None:
        nonce = nonce_for(seq)
        if len(_NONCES) < 65536:
            _NONCES[seq] = nonce
    try:
        return aead.decrypt(nonce, ciphertext, None)
    except InvalidTag:
        raise DecryptError("AEAD tag does not verify", vid="GBP-AEAD-TAG") from None


def open_frame(frame: GbpFrame, keylog, *, mls_epoch: Optional[int] = None) -> bytes:
    """Decrypt ``frame.payload`` with the key log's exporter secret for ``(gid, epoch)``.

    *keylog* is a :class:`gbp_lab.core.keylog.KeyLog` (anything with ``exporter_secret(gid,
    epoch)`` and ``suite(gid)``). The epoch is ``frame.epoch`` unless *mls_epoch* is given (see the
    module docstring). Raises :class:`MissingKeyError` (``GBP-AEAD-NOKEY``) when the log has no
    exporter secret, :class:`DecryptError` when the tag fails, :class:`DecodeError`
    (``GBP-AEAD-STREAM``) for a stream type without a key label.
    """
    gid = frame.group_id
    if len(gid) != 16:
        gid = frame.group_id16
    epoch = frame.epoch if mls_epoch is None else mls_epoch
    secret = keylog.exporter_secret(gid, epoch)
    if secret is None:
        raise MissingKeyError(f"no exporter secret for group {gid.hex()} epoch {epoch}",
                              vid="GBP-AEAD-NOKEY", where=(gid.hex(), epoch))
    st = frame.stream_type
    if not 0 <= st <= 3:
        raise DecodeError(f"stream type {st} has no key label", vid="GBP-AEAD-STREAM", where="st")
    return _open(_aead_for(secret, st, keylog.suite(gid)), frame.sequence_no, frame.payload)


def seal_frame(exporter_secret: bytes, group_id: bytes, epoch: int, transition_id: int,
               stream_type: int, stream_id: int, flags: int, sequence_no: int, plaintext: bytes,
               payload_format: int = PayloadCodec.CBOR, suite: int = 1) -> GbpFrame:
    """A frame whose payload is *plaintext* sealed as the reference's ``send_payload`` does."""
    pl = _aead_for(bytes(exporter_secret), int(stream_type), suite).encrypt(
        nonce_for(sequence_no), plaintext, None)
    return GbpFrame.build(group_id, epoch, transition_id, stream_type, stream_id, flags,
                          sequence_no, pl, payload_format, GBP_VERSION)


def clear_key_cache() -> None:
    """Drop every cached stream key."""
    _aead_cache.clear()


__all__ = ["stream_key", "stream_label", "nonce_for", "seal_payload", "open_payload", "open_frame",
           "seal_frame", "clear_key_cache", "KEY_LENGTH", "TAG_LENGTH"]
