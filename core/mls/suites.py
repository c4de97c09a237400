"""MLS cipher suites and the labelled KDF functions (RFC 9420 §5.1, §8, §8.5).

This module is the one place where a ciphersuite's primitives are chosen. ``CipherSuite.get(id)``
returns a frozen description; its methods implement the labelled derivations of RFC 9420:

* ``expand_with_label(secret, label, context, length)`` — §8
* ``derive_secret(secret, label)`` — §8
* ``mls_exporter(exporter_secret, label, context, length)`` — §8.5
* ``extract``, ``expand``, ``hash``, ``mac`` — the suite's KDF and hash.

HPKE and signature operations are added on the same class (``suites`` owns *every* primitive
choice; callers never import hash classes themselves).
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum
from typing import Dict

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from ..errors import UsageError
from ..tls import Writer, encode_vec

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


class KemId(IntEnum):
    """RFC 9180 §7.1 KEM identifiers."""

    DHKEM_P256_HKDF_SHA256 = 0x0010
    DHKEM_P384_HKDF_SHA384 = 0x0011
    DHKEM_P521_HKDF_SHA512 = 0x0012
    DHKEM_X25519_HKDF_SHA256 = 0x0020
    DHKEM_X448_HKDF_SHA512 = 0x0021


class KdfId(IntEnum):
    """RFC 9180 §7.2 KDF identifiers."""

    HKDF_SHA256 = 0x0001
    HKDF_SHA384 = 0x0002
    HKDF_SHA512 = 0x0003


class AeadId(IntEnum):
    """RFC 9180 §7.3 AEAD identifiers."""

    AES_128_GCM = 0x0001
    AES_256_GCM = 0x0002
    CHACHA20_POLY1305 = 0x0003


class SignatureScheme(IntEnum):
    """TLS SignatureScheme values used by MLS (RFC 8446 §4.2.3)."""

    ECDSA_SECP256R1_SHA256 = 0x0403
    ECDSA_SECP384R1_SHA384 = 0x0503
    ECDSA_SECP521R1_SHA512 = 0x0603
    ED25519 = 0x0807
    ED448 = 0x0808


_HASHES = {
    KdfId.HKDF_SHA256: ("sha256", hashes.SHA256, 32),
    KdfId.HKDF_SHA384: ("sha384", hashes.SHA384, 48),
    KdfId.HKDF_SHA512: ("sha512", hashes.SHA512, 64),
}

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
        return hashlib.new(self.hash_name, data).digest()

    def mac(self, key: bytes, data: bytes) -> bytes:
        """``MAC(key, data)`` = HMAC with the suite's hash (RFC 9420 §5.1)."""
        return hmac.new(key, data, self.hash_name).digest()

    def extract(self, salt: bytes, ikm: bytes) -> bytes:
        """``KDF.Extract(salt, ikm)`` = HKDF-Extract (RFC 5869 §2.2)."""
        if not salt:
            salt = bytes(self.hash_length)
        return hmac.new(salt, ikm, self.hash_name).digest()

    def expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        """``KDF.Expand(prk, info, length)`` = HKDF-Expand (RFC 5869 §2.3)."""
        return HKDFExpand(self.hash_algorithm(), length, info).derive(prk)

    def expand_with_label(self, secret: bytes, label: bytes | str, context: bytes, length: int) -> bytes:
        """RFC 9420 §8 ``ExpandWithLabel``: KDFLabel = uint16 length ‖ opaque label<V> ‖ opaque context<V>."""
        if isinstance(label, str):
            label = label.encode()
        info = Writer().u16(length).vec(MLS_LABEL_PREFIX + label).vec(context).getvalue()
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
