"""MLS signature schemes (RFC 9420 §5.1.2) on ``cryptography`` primitives.

Key encodings are those of the MLS test vectors (mlswg/mls-implementations ``test-vectors.md``):

* Ed25519 / Ed448 — public and private keys are the raw 32 / 57 byte strings (RFC 8032).
* ECDSA P-256/P-384/P-521 — public key = uncompressed SEC1 point (``04 ‖ X ‖ Y``); private key =
  the scalar as a big-endian ``Field-Element-to-Octet-String`` (32 / 48 / 66 bytes).
  Signatures are DER-encoded ``ECDSA-Sig-Value`` (as openmls and the vectors use), hashed with
  SHA-256 / SHA-384 / SHA-512 respectively.

API (scheme = :class:`SignatureScheme` value):

* :func:`generate_key_pair(scheme, rng=None)` → ``(priv, pub)``
* :func:`public_key(scheme, priv)` → ``pub``
* :func:`sign(scheme, priv, message)` → ``signature``
* :func:`verify(scheme, pub, message, signature)` → ``None`` or :class:`SignatureError` (a triple
  that verified before in this process is answered by :data:`verified_signatures`)
* :func:`verify_all(checks)` → ``None`` or ``(lowest failing index, error)``: many independent
  checks, spread over the threads of :data:`.workers.pool` (``cryptography`` releases the GIL)
* :func:`check_public_key(scheme, pub)` → ``None`` or :class:`DecodeError`

The labelled forms ``SignWithLabel``/``VerifyWithLabel`` live on
:class:`gbp_lab.core.mls.suites.CipherSuite`.

Errors: malformed keys are :class:`DecodeError` (``SIG-PUBKEY``/``SIG-PRIVKEY``); a signature that
does not verify, including a malformed DER signature, is :class:`SignatureError` (``SIG-VERIFY``).
"""
from __future__ import annotations

import hashlib
import os
from enum import IntEnum
from functools import lru_cache
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519

from ..errors import DecodeError, GbpLabError, SignatureError, UsageError
from . import workers
from .hpke import CURVE_ORDERS
from .workers import WorkerPool

Rng = Callable[[int], bytes]


class SignatureScheme(IntEnum):
    """TLS SignatureScheme values used by MLS (RFC 8446 §4.2.3)."""

    ECDSA_SECP256R1_SHA256 = 0x0403
    ECDSA_SECP384R1_SHA384 = 0x0503
    ECDSA_SECP521R1_SHA512 = 0x0603
    ED25519 = 0x0807
    ED448 = 0x0808


# scheme → (curve class, hash class, scalar length, group order)
_ECDSA = {
    SignatureScheme.ECDSA_SECP256R1_SHA256: (ec.SECP256R1, hashes.SHA256, 32, CURVE_ORDERS["secp256r1"]),
    SignatureScheme.ECDSA_SECP384R1_SHA384: (ec.SECP384R1, hashes.SHA384, 48, CURVE_ORDERS["secp384r1"]),
    SignatureScheme.ECDSA_SECP521R1_SHA512: (ec.SECP521R1, hashes.SHA512, 66, CURVE_ORDERS["secp521r1"]),
}
_EdPrivate = Union[Type[ed25519.Ed25519PrivateKey], Type[ed448.Ed448PrivateKey]]
_EdPublic = Union[Type[ed25519.Ed25519PublicKey], Type[ed448.Ed448PublicKey]]
# scheme → (private key class, public key class, key length)
_EDDSA: Dict[SignatureScheme, Tuple[_EdPrivate, _EdPublic, int]] = {
    SignatureScheme.ED25519: (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey, 32),
    SignatureScheme.ED448: (ed448.Ed448PrivateKey, ed448.Ed448PublicKey, 57),
}


def _scheme(scheme: int) -> SignatureScheme:
    if type(scheme) is SignatureScheme:  # the suites pass members: skip the enum lookup
        return scheme
    try:
        return SignatureScheme(scheme)
    except ValueError:
        raise UsageError(f"unsupported signature scheme {scheme!r}", vid="SIG-SCHEME") from None


def private_key_length(scheme: int) -> int:
    """Length in bytes of a private key of signature *scheme* in its MLS encoding."""
    s = _scheme(scheme)
    return _EDDSA[s][2] if s in _EDDSA else _ECDSA[s][2]


def public_key_length(scheme: int) -> int:
    """Length in bytes of a public key of signature *scheme* (ECDSA: uncompressed point)."""
    s = _scheme(scheme)
    return _EDDSA[s][2] if s in _EDDSA else 1 + 2 * _ECDSA[s][2]


def load_private_key(scheme: int, priv: bytes):
    """A ``cryptography`` private key from its MLS encoding, or :class:`DecodeError`."""
    s, priv = _scheme(scheme), bytes(priv)
    n = private_key_length(s)
    if len(priv) != n:
        raise DecodeError(f"{s.name} private key must be {n} bytes, got {len(priv)}", vid="SIG-PRIVKEY")
    if s in _EDDSA:
        return _EDDSA[s][0].from_private_bytes(priv)
    curve, _, _, order = _ECDSA[s]
    scalar = int.from_bytes(priv, "big")
    if not 0 < scalar < order:
        raise DecodeError(f"{s.name} private scalar out of range", vid="SIG-PRIVKEY")
    return ec.derive_private_key(scalar, curve())


def load_public_key(scheme: int, pub: bytes):
    """A ``cryptography`` public key from its MLS encoding, or :class:`DecodeError`.

    Loaded keys are kept (an LRU of 4096 keys by ``(scheme, pub)``): a member's signature key is
    used for every message it signs and every tree that carries its leaf; a key is immutable, so
    only the loading is saved, never a verification. An invalid key is never kept."""
    return _load_public_cached(_scheme(scheme), bytes(pub))


@lru_cache(maxsize=4096)
def _load_public_cached(s: SignatureScheme, pub: bytes):
    n = public_key_length(s)
    if len(pub) != n:
        raise DecodeError(f"{s.name} public key must be {n} bytes, got {len(pub)}", vid="SIG-PUBKEY")
    try:
        if s in _EDDSA:
            return _EDDSA[s][1].from_public_bytes(pub)
        if pub[0] != 0x04:
            raise DecodeError(f"{s.name} public key is not an uncompressed point", vid="SIG-PUBKEY")
        return ec.EllipticCurvePublicKey.from_encoded_point(_ECDSA[s][0](), pub)
    except ValueError as exc:
        raise DecodeError(f"{s.name} public key is invalid: {exc}", vid="SIG-PUBKEY") from None


def check_public_key(scheme: int, pub: bytes) -> None:
    """Raise :class:`DecodeError` unless ``pub`` decodes as a public key of ``scheme``."""
    load_public_key(scheme, pub)


def _ser_public(s: SignatureScheme, key) -> bytes:
    if s in _EDDSA:
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def public_key(scheme: int, priv: bytes) -> bytes:
    """The MLS-encoded public key of the MLS-encoded private key ``priv``."""
    s = _scheme(scheme)
    return _ser_public(s, load_private_key(s, priv).public_key())


def generate_key_pair(scheme: int, rng: Optional[Rng] = None) -> Tuple[bytes, bytes]:
    """A fresh ``(priv, pub)`` pair. With ``rng`` the private key is derived from ``rng`` output
    (EdDSA: the seed; ECDSA: rejection-sampled scalar), otherwise from the OS."""
    s = _scheme(scheme)
    rng = rng or os.urandom
    n = private_key_length(s)
    if s in _EDDSA:
        priv = rng(n)
        return priv, public_key(s, priv)
    order = _ECDSA[s][3]
    mask = 0x01 if s == SignatureScheme.ECDSA_SECP521R1_SHA512 else 0xFF
    while True:
        cand = bytearray(rng(n))
        cand[0] &= mask
        if 0 < int.from_bytes(cand, "big") < order:
            priv = bytes(cand)
            return priv, public_key(s, priv)


def sign(scheme: int, priv: bytes, message: bytes) -> bytes:
    """``Signature.Sign(priv, message)``; ECDSA signatures are DER-encoded."""
    s = _scheme(scheme)
    key = load_private_key(s, priv)
    if s in _EDDSA:
        return key.sign(bytes(message))
    return key.sign(bytes(message), ec.ECDSA(_ECDSA[s][1]()))


class VerifiedSignatures:
    """The signatures that verified in this process: a bounded memo (FIFO, ``maxsize`` entries).

    Members of one group living in one process — the simulator, a notebook, the benchmarks —
    each check the same signatures: every joiner every leaf of the tree (RFC 9420 §12.4.3.1),
    every member every commit. A verification is a pure function of ``(scheme, pub, message,
    signature)``, so a triple that verified once verifies again: :func:`verify` keeps a digest of
    each triple that passed and answers a repeat from here. Only successes are kept (a failure
    is recomputed, and raises, every time); the digest is SHA-256 over an unambiguous encoding
    of the whole triple, so a different key, message or signature is never a hit.
    ``enabled = False`` (or :meth:`clear`) makes every check run the primitive, as a process
    that saw nothing would (``benchmarks/mls_bench.py`` measures both)."""

    def __init__(self, maxsize: int = 16384) -> None:
        self.maxsize = maxsize
        self.enabled = True
        self.hits = 0
        self._seen: Dict[bytes, None] = {}

    @staticmethod
    def digest(s: SignatureScheme, pub: bytes, message: bytes, signature: bytes) -> bytes:
        h = hashlib.sha256(int(s).to_bytes(2, "big") + len(pub).to_bytes(4, "big") + pub
                           + len(signature).to_bytes(4, "big") + signature)
        h.update(message)
        return h.digest()

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._seen

    def add(self, digest: bytes) -> None:
        seen = self._seen
        if len(seen) >= self.maxsize:
            seen.pop(next(iter(seen), b""), None)
        seen[digest] = None

    def clear(self) -> None:
        self._seen.clear()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._seen)


#: the process-wide memo :func:`verify` uses
verified_signatures = VerifiedSignatures()


def _check(s: SignatureScheme, pub: bytes, message: bytes, signature: bytes) -> Optional[GbpLabError]:
    """Run the primitive on one triple: ``None`` if it verifies, else the error :func:`verify`
    raises (safe in any thread: ``cryptography`` keys are immutable, the key LRU is locked)."""
    try:
        key = load_public_key(s, pub)
    except DecodeError as exc:
        return exc
    try:
        if s in _EDDSA:
            key.verify(signature, message)
        else:
            key.verify(signature, message, ec.ECDSA(_ECDSA[s][1]()))
    except (InvalidSignature, ValueError):
        return SignatureError(f"{s.name} signature does not verify", vid="SIG-VERIFY")
    return None


def verify(scheme: int, pub: bytes, message: bytes, signature: bytes) -> None:
    """``Signature.Verify(pub, message, signature)``: returns ``None`` or raises
    :class:`SignatureError` (``SIG-VERIFY``); a malformed ``pub`` is :class:`DecodeError`.
    A triple that already verified in this process is answered by :data:`verified_signatures`."""
    s = _scheme(scheme)
    pub, message, signature = bytes(pub), bytes(message), bytes(signature)
    memo = verified_signatures
    digest = memo.digest(s, pub, message, signature) if memo.enabled else None
    if digest is not None and digest in memo:
        memo.hits += 1
        return
    err = _check(s, pub, message, signature)
    if err is not None:
        raise err
    if digest is not None:
        memo.add(digest)


# -- many independent checks at once ---------------------------------------------------------
#: one check of :func:`verify_all`: ``(scheme, pub, message, signature)``
Check = Tuple[int, bytes, bytes, bytes]
_Todo = Tuple[SignatureScheme, bytes, bytes, bytes]
Failure = Tuple[int, GbpLabError]


class PendingChecks:
    """A batch of checks under way (:func:`start_verify_all`): :meth:`result` waits for it."""

    def __init__(self, todo: Sequence[_Todo], index: Sequence[int], digests: Sequence[Optional[bytes]],
                 early: Optional[Failure], pool: WorkerPool, parallel: Optional[bool]) -> None:
        self._todo, self._index, self._digests, self._early = todo, index, digests, early
        par = pool.wants(len(todo), parallel)
        self._chunks = pool.chunks(len(todo), par)
        self._failures: List[Failure] = []
        self._cancelled = False
        self._futures = pool.helpers(self._work) if par else []

    def _work(self) -> None:
        failures = self._failures
        for lo, hi in self._chunks:  # next() on a list iterator is atomic: each chunk runs once
            if self._cancelled:
                return
            if failures and min(f[0] for f in failures) < lo:
                continue  # a failure below this chunk already decides the answer
            todo = self._todo
            for pos in range(lo, hi):
                err = _check(*todo[pos])
                if err is not None:
                    failures.append((pos, err))
                    break

    def cancel(self) -> None:
        """Stop taking chunks (the caller gave up on the batch: an earlier check failed)."""
        self._cancelled = True

    def result(self) -> Optional[Failure]:
        """``None`` if every check verified, else ``(lowest failing index, its error)``."""
        self._work()  # the caller takes the chunks no thread took yet
        for f in self._futures:
            f.result()
        found = min(self._failures, key=_position) if self._failures else None
        passed = len(self._todo) if found is None else found[0]
        memo = verified_signatures
        for digest in self._digests[:passed]:  # the memo is only touched from the caller's thread
            if digest is not None:
                memo.add(digest)
        if found is not None:
            return self._index[found[0]], found[1]
        return self._early


def _position(found: Failure) -> int:
    return found[0]


def start_verify_all(checks: Iterable[Check], *, parallel: Optional[bool] = None) -> PendingChecks:
    """Start :func:`verify_all` on ``checks`` and return at once; the pool's threads verify while
    the caller does other work, ``.result()`` gives the answer (``.cancel()`` abandons it)."""
    memo = verified_signatures
    todo: List[_Todo] = []
    index: List[int] = []
    digests: List[Optional[bytes]] = []
    early: Optional[Failure] = None
    for i, (scheme, pub, message, signature) in enumerate(checks):
        try:
            s = _scheme(scheme)
        except UsageError as exc:
            early = (i, exc)
            break
        pub, message, signature = bytes(pub), bytes(message), bytes(signature)
        digest = memo.digest(s, pub, message, signature) if memo.enabled else None
        if digest is not None and digest in memo:
            memo.hits += 1
            continue
        todo.append((s, pub, message, signature))
        index.append(i)
        digests.append(digest)
    return PendingChecks(todo, index, digests, early, workers.pool, parallel)


def verify_all(checks: Iterable[Check], *, parallel: Optional[bool] = None) -> Optional[Failure]:
    """Make every check :func:`verify` would make, on the threads of :data:`.workers.pool` for a large
    batch: ``None`` if all verify, else ``(index, error)`` for the LOWEST failing index, the error
    being exactly what :func:`verify` raises for that check (:class:`SignatureError`
    ``SIG-VERIFY``, :class:`DecodeError` ``SIG-PUBKEY``, :class:`UsageError` ``SIG-SCHEME``) —
    the answer of verifying one by one and stopping at the first failure, whichever thread met
    it. :data:`verified_signatures` answers repeats and learns the checks that passed below the
    failure. ``parallel``: ``None`` = by batch size (``workers.pool.min_batch``), ``True`` =
    the pool whenever it has threads, ``False`` = the calling thread only."""
    return start_verify_all(checks, parallel=parallel).result()


__all__ = ["SignatureScheme", "generate_key_pair", "public_key", "sign", "verify", "check_public_key",
           "VerifiedSignatures", "verified_signatures", "Check", "Failure", "verify_all", "start_verify_all", "PendingChecks",
           "load_private_key", "load_public_key", "private_key_length", "public_key_length"]
