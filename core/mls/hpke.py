"""HPKE (RFC 9180) on ``cryptography`` primitives, as MLS needs it (RFC 9420 §5.1.3).

``cryptography``'s own HPKE lacks X448 and ``DeriveKeyPair``, so DHKEM is written here (§4.1):

* KEMs (§7.1): DHKEM(P-256/P-384/P-521, HKDF-SHA256/384/512), DHKEM(X25519, HKDF-SHA256),
  DHKEM(X448, HKDF-SHA512) — :class:`Kem`, obtained with :func:`kem`.
* KDFs (§7.2): HKDF-SHA256/384/512 — :class:`Kdf`, via :func:`kdf`.
* AEADs (§7.3): AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305 — :class:`Aead`, via :func:`aead`.
* Modes (§5.1): base, psk, auth, auth_psk — :class:`Hpke` ``setup_s``/``setup_r`` give a
  :class:`Context` (``seal``/``open`` with the sequence number of §5.2, ``export`` of §5.3);
  ``Hpke.seal``/``Hpke.open`` are the single-shot APIs of §6.1 (base mode unless keys say so).

Keys cross this API as bytes: ``SerializePublicKey`` (uncompressed SEC1 points for the NIST curves,
raw 32/56 bytes for X25519/X448) and ``SerializePrivateKey`` (big-endian scalar of ``Nsk`` bytes,
raw bytes for X25519/X448), exactly as the MLS test vectors hold them.

Randomness is injectable: every random choice takes ``rng`` (``Callable[[int], bytes]``, default
:func:`os.urandom`) and encapsulation accepts a fixed ephemeral private key (``ephemeral=``), which
is how the RFC 9180 known-answer tests are reproduced.

Errors: a malformed key is :class:`DecodeError` (vid ``HPKE-PUBKEY`` / ``HPKE-PRIVKEY``), a DH that
fails (small-order point, all-zero secret) :class:`CryptoError` (``HPKE-DH``), an AEAD tag that does
not verify :class:`DecryptError` (``HPKE-OPEN`` / ``AEAD-OPEN``), misuse :class:`UsageError`.
"""
from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field
from enum import IntEnum
from types import ModuleType
from typing import Callable, Dict, Optional, Tuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ..errors import CryptoError, DecodeError, DecryptError, UsageError

Rng = Callable[[int], bytes]

HPKE_V1 = b"HPKE-v1"


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
    """RFC 9180 §7.3 AEAD identifiers (``EXPORT_ONLY`` = 0xFFFF: a context that only exports)."""

    AES_128_GCM = 0x0001
    AES_256_GCM = 0x0002
    CHACHA20_POLY1305 = 0x0003
    EXPORT_ONLY = 0xFFFF


class Mode(IntEnum):
    """RFC 9180 §5 Table 1 HPKE modes."""

    BASE = 0x00
    PSK = 0x01
    AUTH = 0x02
    AUTH_PSK = 0x03


# ------------------------------------------------------------------------------------------
# KDF (RFC 9180 §4, §7.2)
# ------------------------------------------------------------------------------------------
_hmac_digest = hmac.digest


def hkdf_expand(hash_name: str, nh: int, prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 §2.3 HKDF-Expand with one-shot HMACs (``T(i) = HMAC(prk, T(i-1) ‖ info ‖ i)``).

    Same output as ``cryptography``'s ``HKDFExpand``, a few times faster for the one-block
    outputs MLS derives by the thousand; the caller checks ``0 < length <= 255·Nh``."""
    prk = bytes(prk)
    info = bytes(info)
    if length <= nh:
        return _hmac_digest(prk, info + b"\x01", hash_name)[:length]
    out = bytearray()
    t = b""
    i = 1
    while len(out) < length:
        t = _hmac_digest(prk, t + info + bytes((i,)), hash_name)
        out += t
        i += 1
    return bytes(out[:length])


_KDF_HASH = {
    KdfId.HKDF_SHA256: ("sha256", hashes.SHA256, 32),
    KdfId.HKDF_SHA384: ("sha384", hashes.SHA384, 48),
    KdfId.HKDF_SHA512: ("sha512", hashes.SHA512, 64),
}


@dataclass(frozen=True)
class Kdf:
    """HKDF with one hash (RFC 5869), plus the HPKE labelled forms of RFC 9180 §4."""

    id: KdfId
    hash_name: str
    Nh: int

    def extract(self, salt: bytes, ikm: bytes) -> bytes:
        """``Extract(salt, ikm)`` — HKDF-Extract; an empty salt equals ``Nh`` zero bytes."""
        return _hmac_digest(salt or bytes(self.Nh), ikm, self.hash_name)

    def expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        """``Expand(prk, info, L)`` — HKDF-Expand; ``L`` ≤ 255·Nh."""
        if not 0 < length <= 255 * self.Nh:
            raise UsageError(f"HKDF-Expand length {length} out of range", vid="HPKE-KDF-LENGTH")
        return hkdf_expand(self.hash_name, self.Nh, prk, info, length)

    def labeled_extract(self, suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
        """RFC 9180 §4 ``LabeledExtract``: ``Extract(salt, "HPKE-v1" ‖ suite_id ‖ label ‖ ikm)``."""
        return self.extract(salt, HPKE_V1 + suite_id + label + ikm)

    def labeled_expand(self, suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
        """RFC 9180 §4 ``LabeledExpand``: ``Expand(prk, I2OSP(L,2) ‖ "HPKE-v1" ‖ suite_id ‖ label ‖ info, L)``."""
        if not 0 < length < 1 << 16:
            raise UsageError(f"LabeledExpand length {length} out of range", vid="HPKE-KDF-LENGTH")
        return self.expand(prk, length.to_bytes(2, "big") + HPKE_V1 + suite_id + label + info, length)


def kdf(kdf_id: int) -> Kdf:
    """The :class:`Kdf` for an RFC 9180 KDF id."""
    try:
        kid = KdfId(kdf_id)
    except ValueError:
        raise UsageError(f"unsupported HPKE KDF {kdf_id!r}", vid="HPKE-KDF") from None
    name, _, nh = _KDF_HASH[kid]
    return Kdf(kid, name, nh)


# ------------------------------------------------------------------------------------------
# AEAD (RFC 9180 §7.3)
# ------------------------------------------------------------------------------------------
_AEAD_PARAMS = {  # Nk, Nn, Nt
    AeadId.AES_128_GCM: (16, 12, 16),
    AeadId.AES_256_GCM: (32, 12, 16),
    AeadId.CHACHA20_POLY1305: (32, 12, 16),
    AeadId.EXPORT_ONLY: (0, 0, 0),
}


@dataclass(frozen=True)
class Aead:
    """One AEAD algorithm: ``seal(key, nonce, aad, pt)`` → ``ct ‖ tag``, ``open`` the reverse."""

    id: AeadId
    Nk: int
    Nn: int
    Nt: int

    def _cipher(self, key: bytes):
        if self.id == AeadId.EXPORT_ONLY:
            raise UsageError("export-only HPKE context cannot seal or open", vid="HPKE-EXPORT-ONLY")
        if len(key) != self.Nk:
            raise UsageError(f"AEAD key must be {self.Nk} bytes, got {len(key)}", vid="AEAD-KEY")
        if self.id == AeadId.CHACHA20_POLY1305:
            return ChaCha20Poly1305(bytes(key))
        return AESGCM(bytes(key))

    def _check_nonce(self, nonce: bytes) -> None:
        if len(nonce) != self.Nn:
            raise UsageError(f"AEAD nonce must be {self.Nn} bytes, got {len(nonce)}", vid="AEAD-NONCE")

    def seal(self, key: bytes, nonce: bytes, aad: bytes, pt: bytes) -> bytes:
        cipher = self._cipher(key)
        self._check_nonce(nonce)
        return cipher.encrypt(bytes(nonce), bytes(pt), bytes(aad))

    def open(self, key: bytes, nonce: bytes, aad: bytes, ct: bytes) -> bytes:
        """Decrypt and authenticate; a bad tag (or a ciphertext shorter than the tag) is
        :class:`DecryptError` ``AEAD-OPEN``."""
        cipher = self._cipher(key)
        self._check_nonce(nonce)
        if len(ct) < self.Nt:
            raise DecryptError(f"ciphertext of {len(ct)} bytes is shorter than the tag", vid="AEAD-OPEN")
        try:
            return cipher.decrypt(bytes(nonce), bytes(ct), bytes(aad))
        except InvalidTag:
            raise DecryptError("AEAD authentication failed", vid="AEAD-OPEN") from None


def aead(aead_id: int) -> Aead:
    """The :class:`Aead` for an RFC 9180 AEAD id."""
    try:
        aid = AeadId(aead_id)
    except ValueError:
        raise UsageError(f"unsupported HPKE AEAD {aead_id!r}", vid="HPKE-AEAD") from None
    return Aead(aid, *_AEAD_PARAMS[aid])


# ------------------------------------------------------------------------------------------
# DHKEM (RFC 9180 §4.1, §7.1)
# ------------------------------------------------------------------------------------------
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P384_ORDER = int(
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16)
_P521_ORDER = int("01FF" + "FFFFFFFF" * 7 + "FFFFFFFA"
                  "51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16)
#: Group orders of the NIST curves (SEC 2 §2.4), shared with :mod:`.signatures`.
CURVE_ORDERS = {"secp256r1": _P256_ORDER, "secp384r1": _P384_ORDER, "secp521r1": _P521_ORDER}

# kem id → (curve kind, curve object factory or None, KDF id, Nsecret, Nenc(=Npk), Nsk, order, bitmask)
_KEM_PARAMS = {
    KemId.DHKEM_P256_HKDF_SHA256: ("ec", ec.SECP256R1, KdfId.HKDF_SHA256, 32, 65, 32, _P256_ORDER, 0xFF),
    KemId.DHKEM_P384_HKDF_SHA384: ("ec", ec.SECP384R1, KdfId.HKDF_SHA384, 48, 97, 48, _P384_ORDER, 0xFF),
    KemId.DHKEM_P521_HKDF_SHA512: ("ec", ec.SECP521R1, KdfId.HKDF_SHA512, 64, 133, 66, _P521_ORDER, 0x01),
    KemId.DHKEM_X25519_HKDF_SHA256: ("x25519", None, KdfId.HKDF_SHA256, 32, 32, 32, None, None),
    KemId.DHKEM_X448_HKDF_SHA512: ("x448", None, KdfId.HKDF_SHA512, 64, 56, 56, None, None),
}


@dataclass(frozen=True)
class Kem:
    """A DHKEM (RFC 9180 §4.1). Keys in and out are serialised bytes."""

    id: KemId
    kind: str  # "ec", "x25519", "x448"
    curve: Optional[type]
    kdf: Kdf
    Nsecret: int
    Nenc: int
    Nsk: int
    order: Optional[int] = field(default=None, repr=False)
    bitmask: Optional[int] = field(default=None, repr=False)

    @property
    def Npk(self) -> int:
        return self.Nenc

    @property
    def suite_id(self) -> bytes:
        """``"KEM" ‖ I2OSP(kem_id, 2)`` (§4.1)."""
        return _KEM_SUITE_ID[self.id]

    # -- key (de)serialisation ----------------------------------------------------------------
    def _load_private(self, sk: bytes):
        sk = bytes(sk)
        if len(sk) != self.Nsk:
            raise DecodeError(f"{self.id.name} private key must be {self.Nsk} bytes, got {len(sk)}",
                              vid="HPKE-PRIVKEY")
        if self.kind == "x25519":
            return x25519.X25519PrivateKey.from_private_bytes(sk)
        if self.kind == "x448":
            return x448.X448PrivateKey.from_private_bytes(sk)
        assert self.order is not None and self.curve is not None  # set for every "ec" KEM
        scalar = int.from_bytes(sk, "big")
        if not 0 < scalar < self.order:
            raise DecodeError(f"{self.id.name} private scalar out of range", vid="HPKE-PRIVKEY")
        return ec.derive_private_key(scalar, self.curve())

    def _load_public(self, pk: bytes):
        pk = bytes(pk)
        if len(pk) != self.Npk:
            raise DecodeError(f"{self.id.name} public key must be {self.Npk} bytes, got {len(pk)}",
                              vid="HPKE-PUBKEY")
        try:
            if self.kind == "x25519":
                return x25519.X25519PublicKey.from_public_bytes(pk)
            if self.kind == "x448":
                return x448.X448PublicKey.from_public_bytes(pk)
            if pk[0] != 0x04:
                raise DecodeError(f"{self.id.name} public key is not an uncompressed point",
                                  vid="HPKE-PUBKEY")
            assert self.curve is not None  # set for every "ec" KEM
            return ec.EllipticCurvePublicKey.from_encoded_point(self.curve(), pk)
        except ValueError as exc:
            raise DecodeError(f"{self.id.name} public key is invalid: {exc}", vid="HPKE-PUBKEY") from None

    def _ser_public(self, key) -> bytes:
        if self.kind == "ec":
            return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def _ser_private(self, key) -> bytes:
        if self.kind == "ec":
            return key.private_numbers().private_value.to_bytes(self.Nsk, "big")
        return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())

    def serialize_public_key(self, pk: bytes) -> bytes:
        """Validate and return the canonical serialisation of ``pk`` (``SerializePublicKey``)."""
        return self._ser_public(self._load_public(pk))

    def deserialize_public_key(self, pk: bytes):
        """``DeserializePublicKey``: a ``cryptography`` key object, or :class:`DecodeError`."""
        return self._load_public(pk)

    def deserialize_private_key(self, sk: bytes):
        """``DeserializePrivateKey``: a ``cryptography`` key object, or :class:`DecodeError`."""
        return self._load_private(sk)

    def public_key(self, sk: bytes) -> bytes:
        """The serialised public key of the serialised private key ``sk``."""
        return self._ser_public(self._load_private(sk).public_key())

    def check_public_key(self, pk: bytes) -> None:
        """Raise :class:`DecodeError` unless ``pk`` is a valid public key of this KEM."""
        self._load_public(pk)

    # -- key generation -----------------------------------------------------------------------
    def derive_key_pair(self, ikm: bytes) -> Tuple[bytes, bytes]:
        """RFC 9180 §7.1.3 ``DeriveKeyPair(ikm)`` → ``(SerializePrivateKey(sk), SerializePublicKey(pk))``.

        X25519/X448: ``sk = LabeledExpand(dkp_prk, "sk", "", Nsk)``. NIST curves: rejection sampling
        of ``LabeledExpand(dkp_prk, "candidate", I2OSP(counter, 1), Nsk)`` with the top byte masked
        (0xFF, or 0x01 for P-521) until ``0 < sk < order``; more than 256 tries is an error."""
        sk = self._derive_private(ikm)
        return sk, self.public_key(sk)

    def _derive_private(self, ikm: bytes) -> bytes:
        """The ``SerializePrivateKey`` half of :meth:`derive_key_pair` (no scalar multiplication)."""
        k = self.kdf
        dkp_prk = k.labeled_extract(self.suite_id, b"", b"dkp_prk", bytes(ikm))
        if self.kind != "ec":
            return k.labeled_expand(self.suite_id, dkp_prk, b"sk", b"", self.Nsk)
        assert self.order is not None and self.bitmask is not None  # set for every "ec" KEM
        for counter in range(256):
            cand = bytearray(k.labeled_expand(self.suite_id, dkp_prk, b"candidate", bytes((counter,)), self.Nsk))
            cand[0] &= self.bitmask
            scalar = int.from_bytes(cand, "big")
            if 0 < scalar < self.order:
                return bytes(cand)
        raise CryptoError("DeriveKeyPair found no valid scalar", vid="HPKE-DERIVE-KEY-PAIR")

    def generate_key_pair(self, rng: Optional[Rng] = None) -> Tuple[bytes, bytes]:
        """``GenerateKeyPair()`` as ``DeriveKeyPair(random(Nsk))`` (allowed by §4)."""
        return self.derive_key_pair((rng or os.urandom)(self.Nsk))

    # -- DH and the KEM -----------------------------------------------------------------------
    def dh(self, sk: bytes, pk: bytes) -> bytes:
        """``DH(skX, pkY)``: the X coordinate (NIST curves) or the raw X25519/X448 output."""
        return self._dh(self._load_private(sk), self._load_public(pk))

    def _dh(self, priv, pub) -> bytes:
        """:meth:`dh` on loaded key objects (loading a private key costs a scalar multiplication:
        the encapsulation and decapsulation below load each key once)."""
        try:
            if self.kind == "ec":
                out = priv.exchange(ec.ECDH(), pub)
            else:
                out = priv.exchange(pub)
        except ValueError as exc:
            raise CryptoError(f"{self.id.name} DH failed: {exc}", vid="HPKE-DH") from None
        if not any(out):
            raise CryptoError(f"{self.id.name} DH produced the all-zero value", vid="HPKE-DH")
        return out

    def _extract_and_expand(self, dh: bytes, kem_context: bytes) -> bytes:
        eae_prk = self.kdf.labeled_extract(self.suite_id, b"", b"eae_prk", dh)
        return self.kdf.labeled_expand(self.suite_id, eae_prk, b"shared_secret", kem_context, self.Nsecret)

    def _ephemeral(self, ephemeral: Optional[bytes], rng: Optional[Rng]):
        """``(skE object, SerializePublicKey(pkE))``: ``ephemeral`` or ``GenerateKeyPair()``
        (= ``DeriveKeyPair(random(Nsk))``), loaded once."""
        if ephemeral is None:
            ephemeral = self._derive_private((rng or os.urandom)(self.Nsk))
        obj = self._load_private(ephemeral)
        return obj, self._ser_public(obj.public_key())

    def _public_obj(self, pk: bytes):
        """``(key object, SerializePublicKey(pk))`` of a peer's public key (validated)."""
        obj = self._load_public(pk)
        return obj, self._ser_public(obj)

    def encap(self, pk_r: bytes, *, ephemeral: Optional[bytes] = None,
              rng: Optional[Rng] = None) -> Tuple[bytes, bytes]:
        """``Encap(pkR)`` → ``(shared_secret, enc)``; ``ephemeral`` = a fixed serialised ``skE``."""
        pub_r, pk_r = self._public_obj(pk_r)
        obj_e, pk_e = self._ephemeral(ephemeral, rng)
        dh = self._dh(obj_e, pub_r)
        return self._extract_and_expand(dh, pk_e + pk_r), pk_e

    def decap(self, enc: bytes, sk_r: bytes) -> bytes:
        """``Decap(enc, skR)`` → ``shared_secret``."""
        pub_e, enc = self._public_obj(enc)
        obj_r = self._load_private(sk_r)
        dh = self._dh(obj_r, pub_e)
        return self._extract_and_expand(dh, enc + self._ser_public(obj_r.public_key()))

    def auth_encap(self, pk_r: bytes, sk_s: bytes, *, ephemeral: Optional[bytes] = None,
                   rng: Optional[Rng] = None) -> Tuple[bytes, bytes]:
        """``AuthEncap(pkR, skS)`` → ``(shared_secret, enc)`` (§4.1)."""
        pub_r, pk_r = self._public_obj(pk_r)
        obj_e, pk_e = self._ephemeral(ephemeral, rng)
        obj_s = self._load_private(sk_s)
        dh = self._dh(obj_e, pub_r) + self._dh(obj_s, pub_r)
        return self._extract_and_expand(dh, pk_e + pk_r + self._ser_public(obj_s.public_key())), pk_e

    def auth_decap(self, enc: bytes, sk_r: bytes, pk_s: bytes) -> bytes:
        """``AuthDecap(enc, skR, pkS)`` → ``shared_secret`` (§4.1)."""
        pub_e, enc = self._public_obj(enc)
        pub_s, pk_s = self._public_obj(pk_s)
        obj_r = self._load_private(sk_r)
        dh = self._dh(obj_r, pub_e) + self._dh(obj_r, pub_s)
        return self._extract_and_expand(dh, enc + self._ser_public(obj_r.public_key()) + pk_s)


def kem(kem_id: int) -> Kem:
    """The :class:`Kem` for an RFC 9180 KEM id."""
    try:
        kid = KemId(kem_id)
    except ValueError:
        raise UsageError(f"unsupported HPKE KEM {kem_id!r}", vid="HPKE-KEM") from None
    kind, curve, kdf_id, nsecret, nenc, nsk, order, mask = _KEM_PARAMS[kid]
    return Kem(kid, kind, curve, kdf(kdf_id), nsecret, nenc, nsk, order, mask)


# ------------------------------------------------------------------------------------------
# Key schedule and context (RFC 9180 §5.1–§5.3)
# ------------------------------------------------------------------------------------------
@dataclass
class Context:
    """An HPKE encryption context (§5.1). ``seq`` counts messages sealed/opened so far (§5.2).

    Mutable on purpose: the sequence number advances with each ``seal``/``open``."""

    suite_id: bytes
    kdf: Kdf
    aead: Aead
    key: bytes
    base_nonce: bytes
    exporter_secret: bytes
    seq: int = 0

    def _nonce(self) -> bytes:
        if self.seq >= (1 << (8 * self.aead.Nn)) - 1:
            raise UsageError("HPKE message limit reached", vid="HPKE-SEQ-OVERFLOW")
        if self.seq == 0:  # single-shot (§6.1): the base nonce itself
            return bytes(self.base_nonce)
        seq_bytes = self.seq.to_bytes(self.aead.Nn, "big")
        return bytes(a ^ b for a, b in zip(self.base_nonce, seq_bytes))

    def seal(self, aad: bytes, pt: bytes) -> bytes:
        """``ContextS.Seal(aad, pt)`` (§5.2)."""
        ct = self.aead.seal(self.key, self._nonce(), aad, pt)
        self.seq += 1
        return ct

    def open(self, aad: bytes, ct: bytes) -> bytes:
        """``ContextR.Open(aad, ct)`` (§5.2); :class:`DecryptError` ``HPKE-OPEN`` on failure."""
        try:
            pt = self.aead.open(self.key, self._nonce(), aad, ct)
        except DecryptError:
            raise DecryptError("HPKE open failed", vid="HPKE-OPEN") from None
        self.seq += 1
        return pt

    def export(self, exporter_context: bytes, length: int) -> bytes:
        """``Context.Export(exporter_context, L)`` (§5.3)."""
        return self.kdf.labeled_expand(self.suite_id, self.exporter_secret, b"sec", exporter_context, length)


@dataclass(frozen=True)
class Hpke:
    """One HPKE ciphersuite (KEM, KDF, AEAD) and the setup/single-shot APIs of RFC 9180 §5–§6."""

    kem: Kem
    kdf: Kdf
    aead: Aead

    @classmethod
    def of(cls, kem_id: int, kdf_id: int, aead_id: int) -> "Hpke":
        return cls(kem(kem_id), kdf(kdf_id), aead(aead_id))

    @property
    def suite_id(self) -> bytes:
        """``"HPKE" ‖ I2OSP(kem_id, 2) ‖ I2OSP(kdf_id, 2) ‖ I2OSP(aead_id, 2)`` (§5.1)."""
        sid = _HPKE_SUITE_ID.get((self.kem.id, self.kdf.id, self.aead.id))
        if sid is None:
            sid = (b"HPKE" + int(self.kem.id).to_bytes(2, "big") + int(self.kdf.id).to_bytes(2, "big")
                   + int(self.aead.id).to_bytes(2, "big"))
            _HPKE_SUITE_ID[(self.kem.id, self.kdf.id, self.aead.id)] = sid
        return sid

    def _labeled_hash(self, label: bytes, value: bytes) -> bytes:
        """``LabeledExtract("", label, value)`` for the ``psk_id_hash``/``info_hash`` of §5.1:
        public inputs, the same for every encryption to one UpdatePath context, so the last
        few are kept (keyed by suite, label and the value itself: never stale)."""
        key = (self.suite_id, label, value)
        h = _LABELED_HASHES.get(key)
        if h is None:
            h = self.kdf.labeled_extract(self.suite_id, b"", label, value)
            if len(_LABELED_HASHES) >= 64:
                _LABELED_HASHES.pop(next(iter(_LABELED_HASHES)))
            _LABELED_HASHES[key] = h
        return h

    def key_schedule(self, mode: Mode, shared_secret: bytes, info: bytes, psk: bytes = b"",
                     psk_id: bytes = b"") -> Context:
        """``KeySchedule<ROLE>(mode, shared_secret, info, psk, psk_id)`` (§5.1)."""
        has_psk, has_id = bool(psk), bool(psk_id)
        if has_psk != has_id:
            raise UsageError("psk and psk_id must both be given or both be empty", vid="HPKE-PSK")
        if has_psk != (mode in (Mode.PSK, Mode.AUTH_PSK)):
            raise UsageError(f"psk given/missing for mode {Mode(mode).name}", vid="HPKE-PSK")
        sid, k = self.suite_id, self.kdf
        psk_id_hash = self._labeled_hash(b"psk_id_hash", bytes(psk_id))
        info_hash = self._labeled_hash(b"info_hash", bytes(info))
        ks_context = bytes((int(mode),)) + psk_id_hash + info_hash
        secret = k.labeled_extract(sid, shared_secret, b"secret", psk)
        if self.aead.id == AeadId.EXPORT_ONLY:
            key = base_nonce = b""
        else:
            key = k.labeled_expand(sid, secret, b"key", ks_context, self.aead.Nk)
            base_nonce = k.labeled_expand(sid, secret, b"base_nonce", ks_context, self.aead.Nn)
        exporter_secret = k.labeled_expand(sid, secret, b"exp", ks_context, k.Nh)
        return Context(sid, k, self.aead, key, base_nonce, exporter_secret)

    # -- setup (§5.1.1–§5.1.4) ----------------------------------------------------------------
    def setup_s(self, pk_r: bytes, info: bytes = b"", *, psk: bytes = b"", psk_id: bytes = b"",
                sk_s: Optional[bytes] = None, ephemeral: Optional[bytes] = None,
                rng: Optional[Rng] = None) -> Tuple[bytes, Context]:
        """``SetupBaseS``/``SetupPSKS``/``SetupAuthS``/``SetupAuthPSKS`` by the arguments given:
        a sender key ``sk_s`` selects auth, a ``psk`` selects psk. Returns ``(enc, context)``."""
        if sk_s is None:
            shared, enc = self.kem.encap(pk_r, ephemeral=ephemeral, rng=rng)
        else:
            shared, enc = self.kem.auth_encap(pk_r, sk_s, ephemeral=ephemeral, rng=rng)
        return enc, self.key_schedule(_mode(bool(psk), sk_s is not None), shared, info, psk, psk_id)

    def setup_r(self, enc: bytes, sk_r: bytes, info: bytes = b"", *, psk: bytes = b"",
                psk_id: bytes = b"", pk_s: Optional[bytes] = None) -> Context:
        """``SetupBaseR`` and friends (see :meth:`setup_s`)."""
        if pk_s is None:
            shared = self.kem.decap(enc, sk_r)
        else:
            shared = self.kem.auth_decap(enc, sk_r, pk_s)
        return self.key_schedule(_mode(bool(psk), pk_s is not None), shared, info, psk, psk_id)

    # -- single shot (§6.1) -------------------------------------------------------------------
    def seal(self, pk_r: bytes, info: bytes, aad: bytes, pt: bytes, *,
             ephemeral: Optional[bytes] = None, rng: Optional[Rng] = None, **mode_args) -> Tuple[bytes, bytes]:
        """``Seal<MODE>(pkR, info, aad, pt, ...)`` → ``(enc, ct)``; base mode by default.

        Base mode with an empty ``aad`` and OS randomness (no ``ephemeral``, ``rng`` None or
        :func:`os.urandom`, and ``os.urandom`` not patched) — every MLS ``EncryptWithLabel`` of a
        live group — runs in one call of
        ``cryptography``'s own RFC 9180 HPKE where it has the suite (not X448); anything it
        refuses (e.g. a small-order key) goes the written-out way below, which raises the typed
        error."""
        if (not mode_args and ephemeral is None and not aad and os.urandom is _OS_URANDOM
                and (rng is None or rng is _OS_URANDOM)):
            native = _native_suite(self)
            if native is not None:
                try:
                    out = native.encrypt(bytes(pt), self.kem._load_public(pk_r), bytes(info))
                except Exception:  # noqa: BLE001 - the written-out path below raises the typed error
                    pass
                else:
                    n = self.kem.Nenc
                    return out[:n], out[n:]
        enc, ctx = self.setup_s(pk_r, info, ephemeral=ephemeral, rng=rng, **mode_args)
        return enc, ctx.seal(aad, pt)

    def open(self, enc: bytes, sk_r: bytes, info: bytes, aad: bytes, ct: bytes, **mode_args) -> bytes:
        """``Open<MODE>(enc, skR, info, aad, ct, ...)`` → ``pt``; :class:`DecryptError` on failure.

        Base mode with an empty ``aad`` — every MLS ``DecryptWithLabel`` (§5.1.3: Welcome
        GroupSecrets, UpdatePath ciphertexts) — runs in one call of ``cryptography``'s RFC 9180
        HPKE where it has the suite, as :meth:`seal` does; when that call fails for any reason
        (a bad key, a forged ciphertext) the written-out way below runs and raises the typed error."""
        if not mode_args and not aad and len(enc) == self.kem.Nenc:
            native = _native_suite(self)
            if native is not None:
                try:
                    return native.decrypt(bytes(enc) + bytes(ct), self.kem._load_private(sk_r), bytes(info))
                except Exception:  # noqa: BLE001 - the written-out path below raises the typed error
                    pass
        return self.setup_r(enc, sk_r, info, **mode_args).open(aad, ct)


def _mode(psk: bool, auth: bool) -> Mode:
    if auth:
        return Mode.AUTH_PSK if psk else Mode.AUTH
    return Mode.PSK if psk else Mode.BASE


_CACHE: Dict[Tuple[int, int, int], Hpke] = {}
_KEM_SUITE_ID = {k: b"KEM" + int(k).to_bytes(2, "big") for k in KemId}
_HPKE_SUITE_ID: Dict[tuple, bytes] = {}
_LABELED_HASHES: Dict[tuple, bytes] = {}

_native_hpke: Optional[ModuleType]
try:  # cryptography >= 47: RFC 9180 HPKE in Rust (X25519 and NIST curves)
    from cryptography.hazmat.primitives import hpke as _native_hpke
except ImportError:  # pragma: no cover - older cryptography: the written-out HPKE only
    _native_hpke = None

_NATIVE: Dict[Tuple[int, int, int], object] = {}
#: the real OS randomness: with ``os.urandom`` patched (a seeded run), the native path is skipped
_OS_URANDOM = os.urandom


def _native_suite(h: "Hpke"):
    """The ``cryptography`` HPKE ``Suite`` for ``h``'s ids, or ``None`` when it has none."""
    key = (int(h.kem.id), int(h.kdf.id), int(h.aead.id))
    if key in _NATIVE:
        return _NATIVE[key]
    suite = None
    if _native_hpke is not None:
        kems = {KemId.DHKEM_X25519_HKDF_SHA256: "X25519", KemId.DHKEM_P256_HKDF_SHA256: "P256",
                KemId.DHKEM_P384_HKDF_SHA384: "P384", KemId.DHKEM_P521_HKDF_SHA512: "P521"}
        kdfs = {KdfId.HKDF_SHA256: "HKDF_SHA256", KdfId.HKDF_SHA384: "HKDF_SHA384",
                KdfId.HKDF_SHA512: "HKDF_SHA512"}
        aeads = {AeadId.AES_128_GCM: "AES_128_GCM", AeadId.AES_256_GCM: "AES_256_GCM",
                 AeadId.CHACHA20_POLY1305: "CHACHA20_POLY1305"}
        kem_name, kdf_name, aead_name = kems.get(h.kem.id), kdfs.get(h.kdf.id), aeads.get(h.aead.id)
        if kem_name is not None and kdf_name is not None and aead_name is not None:
            try:
                suite = _native_hpke.Suite(getattr(_native_hpke.KEM, kem_name),
                                           getattr(_native_hpke.KDF, kdf_name),
                                           getattr(_native_hpke.AEAD, aead_name))
            except Exception:  # noqa: BLE001 - an unsupported combination: written-out HPKE
                suite = None
    _NATIVE[key] = suite
    return suite


def hpke(kem_id: int, kdf_id: int, aead_id: int) -> Hpke:
    """A (cached) :class:`Hpke` for the three ids; unknown ids are :class:`UsageError`."""
    key = (int(kem_id), int(kdf_id), int(aead_id))
    if key not in _CACHE:
        _CACHE[key] = Hpke.of(*key)
    return _CACHE[key]


__all__ = ["KemId", "KdfId", "AeadId", "Mode", "Kdf", "Aead", "Kem", "Context", "Hpke",
           "kdf", "aead", "kem", "hpke", "Rng"]
