"""MLS cipher suites and the labelled KDF functions (RFC 9420 §5.1, §8, §8.5).

This module is the one place where a ciphersuite's primitives are chosen. ``CipherSuite.get(id)``
returns a frozen description; its methods implement the labelled derivations of RFC 9420:

* ``expand_with_label(secret, label, context, length)`` — §8
* ``derive_secret(secret, label)`` — §8
* ``mls_exporter(exporter_secret, label, context, length)`` — §8.5
* ``extract``, ``expand``, ``hash``, ``mac`` — the suite's KDF and hash.
* ``ref_hash``, ``make_key_package_ref``, ``make_proposal_ref`` — §5.2
* ``derive_tree_secret(secret, label, generation, length)`` — §9
* HPKE (§5.1.3, RFC 9180 via :mod:`.hpke`): ``derive_key_pair(ikm)``, ``generate_key_pair(rng)``,
  ``hpke_public_key(priv)``, ``check_hpke_public_key(pub)``, ``hpke_seal``/``hpke_open``,
  ``encrypt_with_label(pub, label, context, pt, *, ephemeral=None) -> (kem_output, ct)``,
  ``decrypt_with_label(priv, label, context, kem_output, ct)``
* AEAD: ``aead_encrypt``/``aead_decrypt(key, nonce, aad, data)`` (``DecryptError`` on a bad tag),
  ``aead_key_length``, ``aead_nonce_length``
* Signatures (§5.1.2 via :mod:`.signatures`): ``generate_signature_key_pair(rng=None)``,
  ``signature_public_key(priv)``, ``check_signature_public_key(pub)``, ``sign``/``verify``,
  ``sign_with_label(priv, label, content)``, ``verify_with_label(pub, label, content, sig)``
  (``None`` or ``SignatureError``), ``verify_all_with_label(checks)`` (many at once, on threads).

Keys are bytes everywhere, in the encodings of the MLS test vectors (HPKE: SerializePublicKey /
SerializePrivateKey; signatures: raw EdDSA keys, ECDSA uncompressed points and big-endian scalars,
DER ECDSA signatures). Bad keys raise ``DecodeError``; failed authentication ``CryptoError``
subclasses. ``suites`` owns *every* primitive choice; callers never import hash classes themselves.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum
from typing import Dict, Iterable, Optional, Tuple

from cryptography.hazmat.primitives import hashes

from ..errors import UsageError
from ..tls import encode_vec
from . import signatures as _sig
from .hpke import AeadId, Hpke, KdfId, KemId, Rng, hkdf_expand, hpke as _hpke
from .signatures import SignatureScheme

MLS_LABEL_PREFIX = b"MLS 1.0 "


class CipherSuiteId(IntEnum):
    """RFC 9420 §17.1 MLS Cipher Suites registry (values 1–7)."""

    MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 = 0x0001
    MLS_128_DHKEMP256_AES128GCM_SHA256_P256 = 0x0002
    MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519 = 0x0003
    MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448 = 0x0004
    MLS_256_DHKEMP521_AES256GCM_SHA512_P521 = 0x0005
    MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448 = 0x0006
    MLS_256_DHKEMP384_AES256GCM_SHA384_P384 = 0x0007


_HASHES = {
    KdfId.HKDF_SHA256: ("sha256", hashes.SHA256, 32),
    KdfId.HKDF_SHA384: ("sha384", hashes.SHA384, 48),
    KdfId.HKDF_SHA512: ("sha512", hashes.SHA512, 64),
}

_HASH_CTOR = {KdfId.HKDF_SHA256: hashlib.sha256, KdfId.HKDF_SHA384: hashlib.sha384,
              KdfId.HKDF_SHA512: hashlib.sha512}


def _fixed_u16(v: int) -> bytes:
    if not 0 <= v < 1 << 16:
        raise UsageError(f"value {v} does not fit in uint16", vid="TLS-RANGE")
    return v.to_bytes(2, "big")


_AEAD_SIZES = {  # key length, nonce length
    AeadId.AES_128_GCM: (16, 12),
    AeadId.AES_256_GCM: (32, 12),
    AeadId.CHACHA20_POLY1305: (32, 12),
}


@dataclass(frozen=True)
class CipherSuite:
    """One MLS cipher suite and its labelled derivations."""

    id: CipherSuiteId
    kem: KemId
    kdf: KdfId
    aead: AeadId
    signature: SignatureScheme

    # -- registry -----------------------------------------------------------------------------
    @staticmethod
    def get(suite: int) -> "CipherSuite":
        try:
            return _SUITES[int(suite)]
        except KeyError:
            raise UsageError(f"unsupported MLS cipher suite {suite!r}", vid="MLS-SUITE") from None

    @staticmethod
    def of_peer(suite, error: type, vid: str) -> "CipherSuite":
        """The suite a peer's message names (a suite object passes through); an unsupported one
        is the peer's problem, raised as ``error(…, vid=vid)`` rather than as a misuse."""
        if isinstance(suite, CipherSuite):
            return suite
        try:
            return _SUITES[int(suite)]
        except KeyError:
            raise error(f"unsupported cipher suite {suite}", vid=vid) from None

    # -- sizes --------------------------------------------------------------------------------
    @property
    def hash_name(self) -> str:
        return _HASHES[self.kdf][0]

    @property
    def hash_length(self) -> int:
        """``Nh``: output size of the suite's hash (and KDF.Nh)."""
        return _HASHES[self.kdf][2]

    @property
    def aead_key_length(self) -> int:
        return _AEAD_SIZES[self.aead][0]

    @property
    def aead_nonce_length(self) -> int:
        return _AEAD_SIZES[self.aead][1]

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return _HASHES[self.kdf][1]()

    # -- hash / KDF ---------------------------------------------------------------------------
    def hash(self, data: bytes) -> bytes:
        return _HASH_CTOR[self.kdf](data).digest()

    def mac(self, key: bytes, data: bytes) -> bytes:
        """``MAC(key, data)`` = HMAC with the suite's hash (RFC 9420 §5.1)."""
        return hmac.digest(key, data, self.hash_name)

    def extract(self, salt: bytes, ikm: bytes) -> bytes:
        """``KDF.Extract(salt, ikm)`` = HKDF-Extract (RFC 5869 §2.2)."""
        if not salt:
            salt = bytes(self.hash_length)
        return hmac.digest(salt, ikm, self.hash_name)

    def expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        """``KDF.Expand(prk, info, length)`` = HKDF-Expand (RFC 5869 §2.3)."""
        nh = self.hash_length
        if not 0 <= length <= 255 * nh:
            raise UsageError(f"HKDF-Expand length {length} out of range", vid="MLS-KDF-LENGTH")
        return hkdf_expand(self.hash_name, nh, prk, info, length)

    def expand_with_label(self, secret: bytes, label: bytes | str, context: bytes, length: int) -> bytes:
        """RFC 9420 §8 ``ExpandWithLabel``: KDFLabel = uint16 length ‖ opaque label<V> ‖ opaque context<V>."""
        if isinstance(label, str):
            label = label.encode()
        info = _fixed_u16(length) + encode_vec(MLS_LABEL_PREFIX + label) + encode_vec(context)
        return self.expand(secret, info, length)

    def derive_secret(self, secret: bytes, label: bytes | str) -> bytes:
        """RFC 9420 §8 ``DeriveSecret(secret, label) = ExpandWithLabel(secret, label, "", Nh)``."""
        return self.expand_with_label(secret, label, b"", self.hash_length)

    def mls_exporter(self, exporter_secret: bytes, label: bytes | str, context: bytes, length: int) -> bytes:
        """RFC 9420 §8.5 ``MLS-Exporter(Label, Context, Length)`` from an epoch's exporter secret:
        ``ExpandWithLabel(DeriveSecret(exporter_secret, Label), "exported", Hash(Context), Length)``."""
        return self.expand_with_label(self.derive_secret(exporter_secret, label), b"exported",
                                      self.hash(context), length)

    def ref_hash(self, label: bytes | str, value: bytes) -> bytes:
        """RFC 9420 §5.2 ``RefHash(label, value) = Hash(RefHashInput)``."""
        if isinstance(label, str):
            label = label.encode()
        return self.hash(encode_vec(label) + encode_vec(value))

    def make_key_package_ref(self, key_package: bytes) -> bytes:
        """RFC 9420 §5.2 ``KeyPackageRef = RefHash("MLS 1.0 KeyPackage Reference", KeyPackage)``."""
        return self.ref_hash(b"MLS 1.0 KeyPackage Reference", key_package)

    def make_proposal_ref(self, authenticated_content: bytes) -> bytes:
        """RFC 9420 §5.2 ``ProposalRef = RefHash("MLS 1.0 Proposal Reference", AuthenticatedContent)``."""
        return self.ref_hash(b"MLS 1.0 Proposal Reference", authenticated_content)

    def derive_tree_secret(self, secret: bytes, label: bytes | str, generation: int, length: int) -> bytes:
        """RFC 9420 §9 ``DeriveTreeSecret(Secret, Label, Generation, Length) =
        ExpandWithLabel(Secret, Label, Generation, Length)`` with Generation as a uint32."""
        if not 0 <= generation < 1 << 32:
            raise UsageError(f"generation {generation} does not fit in uint32", vid="MLS-GENERATION")
        return self.expand_with_label(secret, label, generation.to_bytes(4, "big"), length)

    # -- HPKE (RFC 9420 §5.1.3, RFC 9180) -----------------------------------------------------
    @property
    def hpke(self) -> Hpke:
        """The suite's HPKE instance (KEM, KDF, AEAD) — see :mod:`gbp_lab.core.mls.hpke`."""
        return _hpke(self.kem, self.kdf, self.aead)

    @property
    def hpke_public_key_length(self) -> int:
        return self.hpke.kem.Npk

    @property
    def hpke_private_key_length(self) -> int:
        return self.hpke.kem.Nsk

    def derive_key_pair(self, ikm: bytes) -> Tuple[bytes, bytes]:
        """HPKE ``DeriveKeyPair(ikm)`` (RFC 9180 §7.1.3) → ``(priv, pub)`` serialised, as used for
        path secrets (RFC 9420 §7.4) and init keys."""
        return self.hpke.kem.derive_key_pair(ikm)

    def generate_key_pair(self, rng: Optional[Rng] = None) -> Tuple[bytes, bytes]:
        """A fresh HPKE ``(priv, pub)`` pair (``rng(n) -> bytes`` injectable for tests)."""
        return self.hpke.kem.generate_key_pair(rng)

    def hpke_public_key(self, priv: bytes) -> bytes:
        """The serialised HPKE public key of a serialised HPKE private key."""
        return self.hpke.kem.public_key(priv)

    def check_hpke_public_key(self, pub: bytes) -> None:
        """:class:`DecodeError` (``HPKE-PUBKEY``) unless ``pub`` is a valid HPKE public key."""
        self.hpke.kem.check_public_key(pub)

    def hpke_seal(self, pub: bytes, info: bytes, aad: bytes, plaintext: bytes, *,
                  ephemeral: Optional[bytes] = None, rng: Optional[Rng] = None) -> Tuple[bytes, bytes]:
        """HPKE ``SealBase(pkR, info, aad, pt)`` → ``(kem_output, ciphertext)``.
        ``ephemeral`` = a fixed serialised ephemeral private key (tests only)."""
        return self.hpke.seal(pub, info, aad, plaintext, ephemeral=ephemeral, rng=rng)

    def hpke_open(self, priv: bytes, kem_output: bytes, info: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        """HPKE ``OpenBase(enc, skR, info, aad, ct)``; :class:`DecryptError` on a bad tag,
        :class:`DecodeError` on a malformed ``kem_output``."""
        return self.hpke.open(kem_output, priv, info, aad, ciphertext)

    @staticmethod
    def _encrypt_context(label: bytes | str, context: bytes) -> bytes:
        if isinstance(label, str):
            label = label.encode()
        return encode_vec(MLS_LABEL_PREFIX + label) + encode_vec(context)

    def encrypt_with_label(self, pub: bytes, label: bytes | str, context: bytes, plaintext: bytes, *,
                           ephemeral: Optional[bytes] = None, rng: Optional[Rng] = None) -> Tuple[bytes, bytes]:
        """RFC 9420 §5.1.3 ``EncryptWithLabel``: ``SealBase(pub, EncryptContext, "", plaintext)``
        with ``EncryptContext = opaque label<V> = "MLS 1.0 " + Label ‖ opaque context<V>``.
        Returns ``(kem_output, ciphertext)``."""
        return self.hpke_seal(pub, self._encrypt_context(label, context), b"", plaintext,
                              ephemeral=ephemeral, rng=rng)

    def decrypt_with_label(self, priv: bytes, label: bytes | str, context: bytes, kem_output: bytes,
                           ciphertext: bytes) -> bytes:
        """RFC 9420 §5.1.3 ``DecryptWithLabel``: ``OpenBase(kem_output, priv, EncryptContext, "", ct)``."""
        return self.hpke_open(priv, kem_output, self._encrypt_context(label, context), b"", ciphertext)

    # -- AEAD (RFC 9420 §5.1) -----------------------------------------------------------------
    def aead_encrypt(self, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        """The suite's AEAD: ``ciphertext ‖ tag``."""
        return self.hpke.aead.seal(key, nonce, aad, plaintext)

    def aead_decrypt(self, key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        """The suite's AEAD open; :class:`DecryptError` (``AEAD-OPEN``) on a bad tag."""
        return self.hpke.aead.open(key, nonce, aad, ciphertext)

    # -- signatures (RFC 9420 §5.1.2) ---------------------------------------------------------
    @property
    def signature_public_key_length(self) -> int:
        return _sig.public_key_length(self.signature)

    @property
    def signature_private_key_length(self) -> int:
        return _sig.private_key_length(self.signature)

    def generate_signature_key_pair(self, rng: Optional[Rng] = None) -> Tuple[bytes, bytes]:
        """A fresh signature ``(priv, pub)`` pair in MLS encoding (see :mod:`.signatures`)."""
        return _sig.generate_key_pair(self.signature, rng)

    def signature_public_key(self, priv: bytes) -> bytes:
        """The MLS-encoded signature public key of ``priv``."""
        return _sig.public_key(self.signature, priv)

    def check_signature_public_key(self, pub: bytes) -> None:
        """:class:`DecodeError` (``SIG-PUBKEY``) unless ``pub`` is a valid signature public key."""
        _sig.check_public_key(self.signature, pub)

    def sign(self, priv: bytes, message: bytes) -> bytes:
        """Raw ``Signature.Sign`` (no label)."""
        return _sig.sign(self.signature, priv, message)

    def verify(self, pub: bytes, message: bytes, signature: bytes) -> None:
        """Raw ``Signature.Verify`` (no label); :class:`SignatureError` on failure."""
        _sig.verify(self.signature, pub, message, signature)

    @staticmethod
    def _sign_content(label: bytes | str, content: bytes) -> bytes:
        if isinstance(label, str):
            label = label.encode()
        return encode_vec(MLS_LABEL_PREFIX + label) + encode_vec(content)

    def sign_with_label(self, priv: bytes, label: bytes | str, content: bytes) -> bytes:
        """RFC 9420 §5.1.2 ``SignWithLabel``: sign ``SignContent = opaque label<V> = "MLS 1.0 " +
        Label ‖ opaque content<V>``."""
        return self.sign(priv, self._sign_content(label, content))

    def verify_with_label(self, pub: bytes, label: bytes | str, content: bytes, signature: bytes) -> None:
        """RFC 9420 §5.1.2 ``VerifyWithLabel``: ``None`` or :class:`SignatureError` (``SIG-VERIFY``);
        a malformed ``pub`` is :class:`DecodeError` (``SIG-PUBKEY``)."""
        self.verify(pub, self._sign_content(label, content), signature)

    def verify_all_with_label(self, checks: Iterable[Tuple[bytes, bytes | str, bytes, bytes]], *,
                              parallel: Optional[bool] = None) -> Optional[_sig.Failure]:
        """``VerifyWithLabel`` on every ``(pub, label, content, signature)`` of ``checks``, spread
        over threads for a large batch (:func:`~.signatures.verify_all`): ``None`` if all verify,
        else ``(lowest failing index, the error verify_with_label raises for it)``."""
        return self.start_verify_all_with_label(checks, parallel=parallel).result()

    def start_verify_all_with_label(self, checks: Iterable[Tuple[bytes, bytes | str, bytes, bytes]], *,
                                    parallel: Optional[bool] = None) -> _sig.PendingChecks:
        """:meth:`verify_all_with_label` started in the background (``.result()`` waits for it)."""
        scheme, sc = self.signature, self._sign_content
        return _sig.start_verify_all(
            ((scheme, pub, sc(label, content), sig) for pub, label, content, sig in checks), parallel=parallel)


_S = CipherSuiteId
_SUITES: Dict[int, CipherSuite] = {
    s.id: s
    for s in (
        CipherSuite(_S(1), KemId.DHKEM_X25519_HKDF_SHA256, KdfId.HKDF_SHA256, AeadId.AES_128_GCM,
                    SignatureScheme.ED25519),
        CipherSuite(_S(2), KemId.DHKEM_P256_HKDF_SHA256, KdfId.HKDF_SHA256, AeadId.AES_128_GCM,
                    SignatureScheme.ECDSA_SECP256R1_SHA256),
        CipherSuite(_S(3), KemId.DHKEM_X25519_HKDF_SHA256, KdfId.HKDF_SHA256, AeadId.CHACHA20_POLY1305,
                    SignatureScheme.ED25519),
        CipherSuite(_S(4), KemId.DHKEM_X448_HKDF_SHA512, KdfId.HKDF_SHA512, AeadId.AES_256_GCM,
                    SignatureScheme.ED448),
        CipherSuite(_S(5), KemId.DHKEM_P521_HKDF_SHA512, KdfId.HKDF_SHA512, AeadId.AES_256_GCM,
                    SignatureScheme.ECDSA_SECP521R1_SHA512),
        CipherSuite(_S(6), KemId.DHKEM_X448_HKDF_SHA512, KdfId.HKDF_SHA512, AeadId.CHACHA20_POLY1305,
                    SignatureScheme.ED448),
        CipherSuite(_S(7), KemId.DHKEM_P384_HKDF_SHA384, KdfId.HKDF_SHA384, AeadId.AES_256_GCM,
                    SignatureScheme.ECDSA_SECP384R1_SHA384),
    )
}
