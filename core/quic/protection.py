"""QUIC packet protection, receiver side (RFC 9001 §5, §6), on ``cryptography`` primitives.

* :func:`hkdf_expand_label` — TLS 1.3 HKDF-Expand-Label (RFC 8446 §7.1) as QUIC uses it (§5.1);
* :func:`initial_secrets` — the Initial secrets from the client's Destination Connection ID and
  the QUIC v1 salt (RFC 9001 §5.2);
* :class:`PacketKeys` — key, IV and header-protection key of one secret (labels ``quic key``,
  ``quic iv``, ``quic hp``); :meth:`PacketKeys.mask` (§5.4.3 AES-ECB, §5.4.4 ChaCha20),
  :meth:`PacketKeys.open` (§5.3 AEAD: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305; nonce =
  IV xor packet number), :meth:`PacketKeys.next_generation` (§6.1 ``quic ku``: the header
  protection key is not updated);
* :class:`CipherSuite` — the three TLS 1.3 suites QUIC uses: AEAD, hash, key length.
"""
from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from ..errors import DecryptError, UsageError

__all__ = ["INITIAL_SALT_V1", "QUIC_V1", "CipherSuite", "SUITES", "AES_128_GCM_SHA256",
           "AES_256_GCM_SHA384", "CHACHA20_POLY1305_SHA256", "hkdf_expand_label",
           "initial_secrets", "PacketKeys", "suites_for_secret"]

#: RFC 9001 §5.2
INITIAL_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
QUIC_V1 = 0x00000001
_TAG = 16


@dataclass(frozen=True)
class CipherSuite:
    """A TLS 1.3 cipher suite as QUIC packet protection uses it (RFC 9001 §5.3, §5.4)."""

    code: int  #: TLS CipherSuite value (RFC 8446 §B.4)
    name: str
    hash_name: str  #: "sha256" | "sha384"
    key_length: int
    chacha: bool

    @property
    def hash_length(self) -> int:
        return 48 if self.hash_name == "sha384" else 32


AES_128_GCM_SHA256 = CipherSuite(0x1301, "TLS_AES_128_GCM_SHA256", "sha256", 16, False)
AES_256_GCM_SHA384 = CipherSuite(0x1302, "TLS_AES_256_GCM_SHA384", "sha384", 32, False)
CHACHA20_POLY1305_SHA256 = CipherSuite(0x1303, "TLS_CHACHA20_POLY1305_SHA256", "sha256", 32, True)
SUITES: Dict[int, CipherSuite] = {s.code: s for s in (AES_128_GCM_SHA256, AES_256_GCM_SHA384,
                                                       CHACHA20_POLY1305_SHA256)}


def suites_for_secret(secret: bytes) -> Tuple[CipherSuite, ...]:
    """The suites whose hash gives a secret of this length (when the ServerHello was not seen)."""
    if len(secret) == 48:
        return (AES_256_GCM_SHA384,)
    return (AES_128_GCM_SHA256, CHACHA20_POLY1305_SHA256)


def _hash(name: str) -> hashes.HashAlgorithm:
    return hashes.SHA384() if name == "sha384" else hashes.SHA256()


def hkdf_expand_label(secret: bytes, label: str, context: bytes, length: int,
                      hash_name: str = "sha256") -> bytes:
    """HKDF-Expand-Label (RFC 8446 §7.1): ``HkdfLabel = u16 length ‖ opaque label<7..255>
    ("tls13 " + label) ‖ opaque context<0..255>``."""
    full = b"tls13 " + label.encode("ascii")
    info = struct.pack(">HB", length, len(full)) + full + bytes([len(context)]) + context
    return HKDFExpand(_hash(hash_name), length, info).derive(secret)


def initial_secrets(client_dcid: bytes, salt: bytes = INITIAL_SALT_V1) -> Tuple[bytes, bytes]:
    """``(client_initial_secret, server_initial_secret)`` (RFC 9001 §5.2): HKDF-Extract with the
    version's salt over the client's first Destination Connection ID, SHA-256."""
    initial = hmac.new(salt, client_dcid, hashlib.sha256).digest()
    return (hkdf_expand_label(initial, "client in", b"", 32),
            hkdf_expand_label(initial, "server in", b"", 32))


class PacketKeys:
    """The receive keys of one traffic secret (RFC 9001 §5.1): AEAD key + IV (opened packets)
    and the header protection key (§5.4). ``generation``: key updates so far (§6)."""

    __slots__ = ("suite", "secret", "key", "iv", "hp", "generation", "_aead", "_hp_ecb", "_iv_int")

    def __init__(self, secret: bytes, suite: CipherSuite = AES_128_GCM_SHA256, *,
                 hp: Optional[bytes] = None, generation: int = 0) -> None:
        if len(secret) != suite.hash_length:
            raise UsageError(f"a {suite.name} traffic secret has {suite.hash_length} bytes, got "
                             f"{len(secret)}", vid="QUIC-SECRET-LENGTH")
        h = suite.hash_name
        self.suite = suite
        self.secret = secret
        self.generation = generation
        self.key = hkdf_expand_label(secret, "quic key", b"", suite.key_length, h)
        self.iv = hkdf_expand_label(secret, "quic iv", b"", 12, h)
        self.hp = hp if hp is not None else hkdf_expand_label(secret, "quic hp", b"",
                                                               suite.key_length, h)
        self._aead: Any = ChaCha20Poly1305(self.key) if suite.chacha else AESGCM(self.key)
        # one ECB encryptor for every mask: ECB has no state between 16-byte blocks, so a
        # context made once serves every packet (making one per packet was the read path's
        # largest per-packet cost)
        self._hp_ecb: Any = (None if suite.chacha else
                             Cipher(algorithms.AES(self.hp), modes.ECB()).encryptor())
        self._iv_int = int.from_bytes(self.iv, "big")

    def mask(self, sample: bytes) -> bytes:
        """The 5-byte header protection mask of a 16-byte ciphertext sample (§5.4.3, §5.4.4)."""
        if self.suite.chacha:  # counter = sample[0..4] LE, nonce = sample[4..16]: the 16-byte nonce
            enc = Cipher(algorithms.ChaCha20(self.hp, sample), mode=None).encryptor()
            return enc.update(b"\x00" * 5)
        return self._hp_ecb.update(sample)[:5]

    def nonce(self, packet_number: int) -> bytes:
        """IV xor the packet number left-padded to 12 bytes (§5.3)."""
        return (self._iv_int ^ packet_number).to_bytes(12, "big")

    def open(self, packet_number: int, header: bytes, ciphertext: bytes) -> bytes:
        """The payload of a packet: AEAD open with the (unprotected) header as associated data;
        :class:`DecryptError` (``QUIC-DECRYPT``) when the tag does not verify."""
        if len(ciphertext) < _TAG:
            raise DecryptError(f"packet {packet_number}: {len(ciphertext)} payload bytes, shorter "
                               f"than the AEAD tag", vid="QUIC-DECRYPT")
        try:
            return self._aead.decrypt(self.nonce(packet_number), ciphertext, header)
        except InvalidTag:
            raise DecryptError(f"packet {packet_number}: the AEAD tag does not verify "
                               f"({self.suite.name}, key generation {self.generation})",
                               vid="QUIC-DECRYPT") from None

    def seal(self, packet_number: int, header: bytes, plaintext: bytes) -> bytes:
        """The sender's side of :meth:`open` (tests craft packets with it)."""
        return self._aead.encrypt(self.nonce(packet_number), plaintext, header)

    def next_generation(self) -> "PacketKeys":
        """The keys after a key update (§6.1): ``secret' = HKDF-Expand-Label(secret, "quic ku",
        "", Hash.length)``; the header protection key stays."""
        nxt = hkdf_expand_label(self.secret, "quic ku", b"", self.suite.hash_length,
                                self.suite.hash_name)
        return PacketKeys(nxt, self.suite, hp=self.hp, generation=self.generation + 1)
