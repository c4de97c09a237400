"""Per-stream payload AEAD of GBP frames — the one owner of the stream cipher (gbp-mls-binding.md; reference crates/gbp/mls/src/lib.rs
``export_stream_key`` / ``seal`` / ``open``).

* key = ``MLS-Exporter(label, context = "", 32)`` (RFC 9420 §8.5) with label ``gbp/control``,
  ``gbp/audio``, ``gbp/text`` or ``gbp/signal`` by stream type, from the exporter secret of the
  MLS epoch the sender was in;
* ChaCha20-Poly1305 (RFC 8439), nonce = ``seq`` as u32 big-endian ‖ 8 zero bytes, AAD empty;
  ``pl`` = ciphertext ‖ 16-byte tag.

:class:`StreamCipher` is that cipher (the shape of aioquic's ``quic/crypto.py`` pair): built from an
exporter (anything with ``export_raw(label, context, length)``: our ``MlsContext``, an
``ExporterView``) or from an exporter secret and a cipher suite, for one stream type; ``seal(seq,
plaintext)`` / ``open(seq, ciphertext)`` with the nonce cache inside. The node
(:mod:`.node`), :func:`open_frame` / :func:`seal_frame`, the capture reader and the dissectors all
use it; :class:`StreamCiphers` is the bounded cache of ciphers keyed by (exporter secret, suite,
stream type) and :class:`ExporterCiphers` the four ciphers of one exporter object at one epoch.

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

from typing import Any, Dict, List, Optional, Protocol, Tuple, Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ..errors import DecodeError, DecryptError, MissingKeyError, UsageError
from ..mls.suites import CipherSuite
from .frame import GbpFrame
from .registry import GBP_VERSION, STREAM_TYPES, PayloadCodec, StreamType

KEY_LENGTH = 32
TAG_LENGTH = 16
_ZERO8 = bytes(8)
#: seq -> nonce; nonces do not depend on the key, so every cipher shares this cache (bounded)
_NONCES: Dict[int, bytes] = {}
_NONCES_MAX = 65536
_nonce_get = _NONCES.get


class Exporter(Protocol):
    """What a stream cipher needs of an MLS group: ``MLS-Exporter(label, context, length)``
    (RFC 9420 §8.5) of its current epoch."""

    def export_raw(self, label: Any, context: bytes, length: int) -> bytes: ...


def nonce_for(seq: int) -> bytes:
    """``seq`` (u32) big-endian ‖ 8 zero bytes."""
    if not 0 <= seq <= 0xFFFFFFFF:
        raise UsageError(f"seq {seq} does not fit in u32", vid="GBP-AEAD-SEQ")
    return seq.to_bytes(4, "big") + _ZERO8


def _cached_nonce(seq: int) -> bytes:
    nonce = nonce_for(seq)
    if len(_NONCES) < _NONCES_MAX:
        _NONCES[seq] = nonce
    return nonce


def stream_label(stream_type: int) -> bytes:
    """The exporter label of *stream_type* (``UsageError`` for an unknown type)."""
    try:
        return STREAM_TYPES[StreamType(stream_type)].label
    except ValueError:
        raise UsageError(f"no key label for stream type {stream_type!r}", vid="GBP-AEAD-STREAM") from None


def stream_key(exporter_secret: bytes, stream_type: int, suite: int = 1) -> bytes:
    """``MLS-Exporter(stream label, "", 32)`` of the given exporter secret (RFC 9420 §8.5)."""
    return CipherSuite.get(suite).mls_exporter(exporter_secret, stream_label(stream_type), b"",
                                               KEY_LENGTH)


class StreamCipher:
    """The AEAD of one stream type in one epoch (gbp-mls-binding.md): ChaCha20-Poly1305 (RFC 8439)
    under ``MLS-Exporter(label, "", 32)``, nonce = ``seq`` (u32 BE) ‖ 8 zero bytes, AAD empty
    unless *aad* is given (the reference always uses none).

    Build with :meth:`from_exporter` (an MLS group, RFC 9420 §8.5), :meth:`from_secret` (an
    exporter secret from a key log) or directly from the 32-byte *key*. ``aead`` is the
    underlying ``ChaCha20Poly1305`` for a caller's own tight loop.
    """

    __slots__ = ("stream_type", "key", "aead", "_encrypt", "_decrypt")

    def __init__(self, key: bytes, stream_type: int = StreamType.CONTROL) -> None:
        self.stream_type = int(stream_type)
        self.key = bytes(key)
        self.aead = ChaCha20Poly1305(self.key)
        self._encrypt = self.aead.encrypt
        self._decrypt = self.aead.decrypt

    @classmethod
    def from_exporter(cls, exporter: Exporter, stream_type: int) -> "StreamCipher":
        """The cipher of *stream_type* from ``exporter.export_raw(label, b"", 32)`` (the label
        is passed as text, as the reference binding's adapters expect)."""
        label = stream_label(stream_type).decode()
        return cls(bytes(exporter.export_raw(label, b"", KEY_LENGTH)), stream_type)

    @classmethod
    def from_secret(cls, exporter_secret: bytes, stream_type: int, suite: int = 1) -> "StreamCipher":
        """The cipher of *stream_type* from an epoch's exporter secret and cipher suite."""
        return cls(stream_key(bytes(exporter_secret), stream_type, suite), stream_type)

    def seal(self, seq: int, plaintext: bytes, aad: Optional[bytes] = None) -> bytes:
        """Ciphertext ‖ tag of *plaintext* sent with sequence number *seq*."""
        return self._encrypt(_nonce_get(seq) or _cached_nonce(seq), plaintext, aad)

    def open(self, seq: int, ciphertext: bytes, aad: Optional[bytes] = None) -> bytes:
        """The plaintext of ciphertext ‖ tag received with *seq*; :class:`DecryptError`
        (``GBP-AEAD-SHORT`` / ``GBP-AEAD-TAG``) when it is shorter than the tag or the tag
        fails."""
        if len(ciphertext) < TAG_LENGTH:
            raise DecryptError(f"payload of {len(ciphertext)} bytes is shorter than the tag",
                               vid="GBP-AEAD-SHORT")
        try:
            return self._decrypt(_nonce_get(seq) or _cached_nonce(seq), ciphertext, aad)
        except InvalidTag:
            raise DecryptError("AEAD tag does not verify", vid="GBP-AEAD-TAG") from None

    def try_open(self, seq: int, ciphertext: bytes) -> Optional[bytes]:
        """:meth:`open` returning ``None`` instead of raising (the node's and the bulk readers'
        path; a ciphertext shorter than the tag fails like a bad tag)."""
        try:
            return self._decrypt(_nonce_get(seq) or _cached_nonce(seq), ciphertext, None)
        except InvalidTag:
            return None

    def __repr__(self) -> str:
        return f"StreamCipher(stream_type={self.stream_type})"


class StreamCiphers:
    """A bounded cache of :class:`StreamCipher` keyed by (exporter secret, suite, stream type).

    Keyed by the secret itself, so a changed key log can never serve a stale key; cleared
    wholesale when *max_size* entries are reached."""

    __slots__ = ("max_size", "_ciphers")

    def __init__(self, max_size: int = 4096) -> None:
        self.max_size = max_size
        self._ciphers: Dict[Tuple[bytes, int, int], StreamCipher] = {}

    def get(self, exporter_secret: bytes, stream_type: int, suite: int = 1) -> StreamCipher:
        """The cipher of *stream_type* under *exporter_secret* (made on first use)."""
        k = (exporter_secret, suite, stream_type)
        c = self._ciphers.get(k)
        if c is None:
            if len(self._ciphers) >= self.max_size:
                self._ciphers.clear()
            c = self._ciphers[k] = StreamCipher.from_secret(exporter_secret, stream_type, suite)
        return c

    def of_keylog(self, keylog: Any, group_id: bytes, epoch: int,
                  stream_type: int) -> Optional[StreamCipher]:
        """The cipher for a frame of ``(group_id, epoch, stream_type)`` from a key log (anything
        with ``exporter_secret(gid, epoch)`` and ``suite(gid)``); ``None`` when the log has no
        exporter secret for that epoch."""
        secret = keylog.exporter_secret(group_id, epoch)
        if secret is None:
            return None
        return self.get(secret, stream_type, keylog.suite(group_id))

    def clear(self) -> None:
        """Drop every cached cipher."""
        self._ciphers.clear()

    def __len__(self) -> int:
        return len(self._ciphers)


class ExporterCiphers:
    """The four stream ciphers of one exporter object (an MLS group at one epoch), made on first
    use and all dropped when the object, its ``epoch`` or its ``group_id`` (when it has one)
    changes — the node's key cache."""

    __slots__ = ("_owner", "_epoch", "_group_id", "_ciphers")

    def __init__(self) -> None:
        self._owner: Any = None
        self._epoch: Any = None
        self._group_id: Any = None
        self._ciphers: List[Optional[StreamCipher]] = [None] * len(STREAM_TYPES)

    def get(self, exporter: Any, stream_type: int) -> StreamCipher:
        """The cipher of *stream_type* (0..3) for *exporter*'s current epoch."""
        if (exporter is not self._owner or exporter.epoch != self._epoch
                or getattr(exporter, "group_id", None) != self._group_id):
            self._owner, self._epoch = exporter, exporter.epoch
            self._group_id = getattr(exporter, "group_id", None)
            self._ciphers = [None] * len(STREAM_TYPES)
        c = self._ciphers[stream_type]
        if c is None:
            c = self._ciphers[stream_type] = StreamCipher.from_exporter(exporter, stream_type)
        return c


#: The process-wide cache behind :func:`open_frame` / :func:`seal_frame`.
CIPHERS = StreamCiphers()


def seal_payload(key: bytes, seq: int, plaintext: bytes) -> bytes:
    """ChaCha20-Poly1305 seal under a stream key: returns ciphertext ‖ tag."""
    return StreamCipher(key).seal(seq, plaintext)


def open_payload(key: bytes, seq: int, ciphertext: bytes) -> bytes:
    """Open ciphertext ‖ tag under a stream key (:class:`DecryptError` when the tag fails)."""
    return StreamCipher(key).open(seq, ciphertext)


def open_frame(frame: GbpFrame, keylog: Any, *, mls_epoch: Optional[int] = None) -> bytes:
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
    return CIPHERS.get(secret, st, keylog.suite(gid)).open(frame.sequence_no, frame.payload)


def seal_frame(exporter_secret: bytes, group_id: bytes, epoch: int, transition_id: int,
               stream_type: int, stream_id: int, flags: int, sequence_no: int, plaintext: bytes,
               payload_format: int = PayloadCodec.CBOR, suite: int = 1) -> GbpFrame:
    """A frame whose payload is *plaintext* sealed as the reference's ``send_payload`` does."""
    pl = CIPHERS.get(bytes(exporter_secret), int(stream_type), suite).seal(sequence_no, plaintext)
    return GbpFrame.build(group_id, epoch, transition_id, stream_type, stream_id, flags,
                          sequence_no, pl, payload_format, GBP_VERSION)


def clear_key_cache() -> None:
    """Drop every cached stream key."""
    CIPHERS.clear()


__all__ = ["StreamCipher", "StreamCiphers", "ExporterCiphers", "Exporter", "CIPHERS",
           "stream_key", "stream_label", "nonce_for", "seal_payload", "open_payload", "open_frame",
           "seal_frame", "clear_key_cache", "KEY_LENGTH", "TAG_LENGTH"]
