"""SFrame end-to-end media encryption for GAP audio, in both wire profiles the reference used.

Two profiles, chosen by the ``profile`` argument everywhere:

``"rfc9605"`` (gbp-stack 1.9.x, the default)
    RFC 9605 as implemented by the ``sframe`` crate:

    * header (§4.3): config byte ``X|K(3)|Y|C(3)``; ``X = 0`` → K *is* the KID (0–7),
      ``X = 1`` → the KID follows in K+1 big-endian bytes; the same for Y/C and the CTR;
    * KID (§5.2, MLS key id, E = 16 epoch bits, S = 16 index bits, context 0):
      ``(leaf & 0xFFFF) << 16 | (epoch & 0xFFFF)``;
    * key schedule (§4.4.2): ``secret = HKDF-Extract("", base_key)``,
      ``key = HKDF-Expand(secret, "SFrame 1.0 Secret key " ‖ KID u64 ‖ suite u16, Nk)``,
      ``salt = HKDF-Expand(secret, "SFrame 1.0 Secret salt " ‖ KID u64 ‖ suite u16, Nn)``
      with SHA-256 for AES-128-GCM (suite 0x0004) and SHA-512 for AES-256-GCM (0x0005);
    * nonce (§4.4.3): ``salt XOR CTR`` (CTR big-endian, right-aligned in 12 bytes);
    * AAD: ``extra_aad ‖ header``.  RFC 9605 §4.4.3 puts the header first; the reference (through
      the crate's "meta data") puts the caller's extra AAD first.  With empty ``extra_aad`` the
      two agree.

``"draft-1.5"`` (gbp-stack 1.5.x, docs/en/gbp-sframe.md)
    * header: byte ``0|K(3)|C(4)`` = (KID length − 1, CTR length − 1), then KID and CTR
      big-endian, each at least one byte (``V`` must be 0);
    * KID ``epoch << 16 | (leaf & 0xFFFF)`` (epoch up to 48 bits, full-epoch check);
    * ``key = HKDF-Expand(PRK = base_key, "gbp sframe key " ‖ leaf u32, Nk)``,
      ``salt = HKDF-Expand(PRK = base_key, "gbp sframe salt " ‖ leaf u32, 12)``, SHA-256 for both
      suites, no Extract step;
    * nonce: ``salt XOR (CTR u64 little-endian ‖ 00 00 00 00)``;
    * AAD: ``header ‖ extra_aad``.

Both: base key = ``MLS-Exporter(label, epoch u64 big-endian, 32)`` (RFC 9420 §8.5) with label
``"gbp/sframe v1"``; payload = ``header ‖ ciphertext ‖ 16-byte tag``; a 1024-counter sliding
replay window per KID (rfc9605) or per leaf (draft-1.5), in-window reordering accepted.

Sans-IO: nothing here reads clocks, sockets or files.  The public names mirror the reference's
Python binding (``gbp_stack.SFrameSession`` …), see :class:`SFrameSession` for the differences.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple, Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import (ClosedError, DecodeError, DecryptError, MissingKeyError, ReplayError,
                     StateError, TrailingBytesError, TruncatedError, UsageError, raises_builtin)
from .mls.suites import CipherSuite

__all__ = [
    "epoch_matches",
    "as_profile",
    "AES_128_GCM",
    "AES_256_GCM",
    "DEFAULT_LABEL",
    "PROFILE_DRAFT_1_5",
    "PROFILE_RFC9605",
    "REPLAY_WINDOW",
    "TAG_LENGTH",
    "ReplayWindow",
    "SFrameOpener",
    "SFrameCipherSuite",
    "SFrameDecryptResult",
    "SFrameEncryptor",
    "SFrameHeader",
    "SFrameProfile",
    "SFrameSession",
    "build_aad",
    "derive_base_key",
    "derive_key_salt",
    "detect_header",
    "detect_profile",
    "detect_profile_with_key",
    "frame_nonce",
    "kid_for",
    "leaf_from_kid",
    "epoch_from_kid",
    "parse_header",
    "rfc9605_labels",
    "sframe_open",
    "sframe_seal",
]

#: AES-128-GCM (16-byte key) — the binding's suite number 0 (default).
AES_128_GCM: int = 0
#: AES-256-GCM (32-byte key) — the binding's suite number 1.
AES_256_GCM: int = 1

DEFAULT_LABEL = "gbp/sframe v1"
TAG_LENGTH = 16
NONCE_LENGTH = 12
REPLAY_WINDOW = 1024
_U64 = (1 << 64) - 1
_new = object.__new__
_setattr = object.__setattr__


class SFrameProfile(str, enum.Enum):
    """Which wire profile: the 1.9.x RFC 9605 one or the 1.5.x in-house draft one."""

    RFC9605 = "rfc9605"
    DRAFT_1_5 = "draft-1.5"

    def __str__(self) -> str:  # plain value in messages and tables
        return self.value


PROFILE_RFC9605 = SFrameProfile.RFC9605
PROFILE_DRAFT_1_5 = SFrameProfile.DRAFT_1_5
# the members as plain module globals for the per-frame paths (an enum member read off its class
# goes through the enum metaclass: ~5x the cost of a global)
_RFC, _DRAFT = SFrameProfile.RFC9605, SFrameProfile.DRAFT_1_5

ProfileLike = Union[SFrameProfile, str]


class SFrameCipherSuite(enum.IntEnum):
    """RFC 9605 §8.1 "SFrame Cipher Suites" registry (the values the GBP suites map to)."""

    AES_128_CTR_HMAC_SHA256_80 = 0x0001
    AES_128_CTR_HMAC_SHA256_64 = 0x0002
    AES_128_CTR_HMAC_SHA256_32 = 0x0003
    AES_128_GCM_SHA256_128 = 0x0004
    AES_256_GCM_SHA512_128 = 0x0005


#: binding suite number → (RFC 9605 suite id, key length Nk, hash of the rfc9605 KDF;
#: draft-1.5 always uses SHA-256)
_SUITES = {
    AES_128_GCM: (SFrameCipherSuite.AES_128_GCM_SHA256_128, 16, "sha256"),
    AES_256_GCM: (SFrameCipherSuite.AES_256_GCM_SHA512_128, 32, "sha512"),
}
# The HKDF primitives already live in core.mls.suites; borrow a suite per hash.
_KDF = {"sha256": CipherSuite.get(0x0001), "sha512": CipherSuite.get(0x0005)}


def as_profile(profile: ProfileLike) -> SFrameProfile:
    """*profile* (a :class:`SFrameProfile` or its name) as the enum; ``UsageError``
    (``SFRAME-PROFILE``) for an unknown one."""
    if type(profile) is SFrameProfile:
        return profile
    try:
        return SFrameProfile(profile)
    except ValueError:
        raise UsageError(f"unknown SFrame profile {profile!r}", vid="SFRAME-PROFILE") from None


def _suite(suite: int) -> Tuple[SFrameCipherSuite, int, str]:
    try:
        return _SUITES[int(suite)]
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"unknown SFrame suite {suite!r} (0 = AES-128-GCM, 1 = AES-256-GCM)",
                         vid="SFRAME-SUITE") from None


def _u(value: int, bits: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << bits):
        raise UsageError(f"{name} must be an integer in [0, 2^{bits})", vid="SFRAME-RANGE", where=name)
    return value


# ---------------------------------------------------------------------------------------------
# KID layout
# ---------------------------------------------------------------------------------------------
def kid_for(epoch: int, leaf_index: int, profile: ProfileLike = PROFILE_RFC9605) -> int:
    """The KID a sender at ``leaf_index`` uses in ``epoch``.

    rfc9605: RFC 9605 §5.2 MLS key id with 16 epoch bits and 16 index bits —
    ``(leaf & 0xFFFF) << 16 | (epoch & 0xFFFF)``.  Leaves ≥ 65536 alias lower ones (as in the
    reference, which masks silently).  draft-1.5: ``epoch << 16 | (leaf & 0xFFFF)``.
    """
    p = as_profile(profile)
    _u(leaf_index, 32, "leaf_index")
    if p is SFrameProfile.RFC9605:
        _u(epoch, 64, "epoch")
        return ((leaf_index & 0xFFFF) << 16) | (epoch & 0xFFFF)
    _u(epoch, 48, "epoch")
    return (epoch << 16) | (leaf_index & 0xFFFF)


def leaf_from_kid(kid: int, profile: ProfileLike = PROFILE_RFC9605) -> int:
    """Sender leaf index carried in a KID (16 bits in both profiles)."""
    if as_profile(profile) is SFrameProfile.RFC9605:
        return (kid >> 16) & 0xFFFF
    return kid & 0xFFFF


def epoch_from_kid(kid: int, profile: ProfileLike = PROFILE_RFC9605) -> int:
    """Epoch bits carried in a KID: the low 16 bits (rfc9605) or everything above bit 16 (draft)."""
    if as_profile(profile) is SFrameProfile.RFC9605:
        return kid & 0xFFFF
    return kid >> 16


def epoch_matches(kid: int, epoch: int, profile: SFrameProfile) -> bool:
    """True when the epoch bits of *kid* name *epoch* under *profile* (RFC 9605 §5.2 /
    draft-1.5: the low 16 bits, resp. everything above them)."""
    if profile is _RFC:
        return (kid & 0xFFFF) == (epoch & 0xFFFF)
    return (kid >> 16) == epoch


# ---------------------------------------------------------------------------------------------
# Header codec (pull/push pair)
# ---------------------------------------------------------------------------------------------
def _min_len(value: int) -> int:
    return max(1, (value.bit_length() + 7) // 8)


@dataclass(frozen=True)
class SFrameHeader:
    """A decoded SFrame header.

    ``kid_len`` / ``ctr_len`` are ``None`` for the minimal encoding (what every sender writes).
    A decoder that meets a longer-than-needed field records its byte length there (for the rfc9605
    profile ``0`` means "inline in the config byte") so that ``encode()`` gives back the very
    bytes it read.
    """

    kid: int
    ctr: int
    profile: SFrameProfile = PROFILE_RFC9605
    kid_len: Optional[int] = None
    ctr_len: Optional[int] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "profile", as_profile(self.profile))
        _u(self.kid, 64, "kid")
        _u(self.ctr, 64, "ctr")
        for name, n, lo, hi in (("kid_len", self.kid_len, 0 if self._rfc else 1, 8),
                                ("ctr_len", self.ctr_len, 0 if self._rfc else 1,
                                 8 if self._rfc else 16)):
            if n is None:
                continue
            value = self.kid if name == "kid_len" else self.ctr
            if not isinstance(n, int) or not lo <= n <= hi:
                raise UsageError(f"{name} {n!r} outside [{lo}, {hi}]", vid="SFRAME-HDR-LEN", where=name)
            if (n == 0 and value > 7) or (n > 0 and value >= 1 << (8 * n)):
                raise UsageError(f"{name} {n} too short for the value", vid="SFRAME-HDR-LEN", where=name)

    @property
    def _rfc(self) -> bool:
        return self.profile is SFrameProfile.RFC9605

    @property
    def leaf(self) -> int:
        """Sender leaf index carried in the KID."""
        return leaf_from_kid(self.kid, self.profile)

    @property
    def epoch_bits(self) -> int:
        """Epoch bits carried in the KID (low 16 bits for rfc9605, the full epoch for draft-1.5)."""
        return epoch_from_kid(self.kid, self.profile)

    def _lengths(self) -> Tuple[int, int]:
        if self._rfc:
            k = self.kid_len if self.kid_len is not None else (0 if self.kid < 8 else _min_len(self.kid))
            c = self.ctr_len if self.ctr_len is not None else (0 if self.ctr < 8 else _min_len(self.ctr))
            return k, c
        k = self.kid_len if self.kid_len is not None else _min_len(self.kid)
        c = self.ctr_len if self.ctr_len is not None else _min_len(self.ctr)
        return k, c

    def __len__(self) -> int:
        k, c = self._lengths()
        return 1 + k + c

    def encode(self) -> bytes:
        """Serialise (RFC 9605 §4.3 for rfc9605; ``0|K|C`` layout for draft-1.5)."""
        k, c = self._lengths()
        if self._rfc:
            first = (0x80 | (k - 1) << 4) if k else self.kid << 4
            first |= (0x08 | (c - 1)) if c else self.ctr
        else:
            first = (k - 1) << 4 | (c - 1)
        out = bytes([first])
        if k:
            out += self.kid.to_bytes(k, "big")
        if c:
            out += self.ctr.to_bytes(c, "big")
        return out

    @classmethod
    def decode(cls, data: bytes, profile: ProfileLike = PROFILE_RFC9605) -> "SFrameHeader":
        """Strict decode of exactly one header; trailing bytes are an error."""
        header, n = parse_header(data, profile)
        if n != len(data):
            raise TrailingBytesError(f"{len(data) - n} bytes after the SFrame header",
                                     vid="SFRAME-HDR-TRAILING", where=n)
        return header


def parse_header(data: bytes, profile: ProfileLike = PROFILE_RFC9605) -> Tuple[SFrameHeader, int]:
    """Read the header at the front of ``data``; return it and its length (the pull half).

    ``profile="auto"`` picks the profile with :func:`detect_profile` first.
    """
    if type(data) is not bytes:
        data = bytes(data)
    if type(profile) is SFrameProfile:  # the per-frame callers pass the enum
        p = profile
    else:
        if profile == "auto":
            profile = detect_profile(data)
        p = as_profile(profile)
    if not data:
        raise TruncatedError("empty SFrame payload", vid="SFRAME-HDR-EMPTY", where=0)
    first = data[0]
    if p is _RFC:
        k = ((first >> 4) & 0x07) + 1 if first & 0x80 else 0
        c = (first & 0x07) + 1 if first & 0x08 else 0
    else:
        if first & 0x80:
            raise DecodeError(f"draft-1.5 header with V bit set (0x{first:02x})",
                              vid="SFRAME-HDR-VERSION", where=0)
        k = ((first >> 4) & 0x07) + 1
        c = (first & 0x0F) + 1
    total = 1 + k + c
    if len(data) < total:
        raise TruncatedError(f"SFrame header needs {total} bytes, {len(data)} present",
                             vid="SFRAME-HDR-TRUNC", where=len(data))
    kid = int.from_bytes(data[1:1 + k], "big") if k else (first >> 4) & 0x07
    ctr = int.from_bytes(data[1 + k:total], "big") if c else first & 0x07
    if ctr > _U64:
        raise DecodeError(f"SFrame CTR of {c} bytes exceeds 64 bits", vid="SFRAME-HDR-CTR-RANGE", where=1 + k)
    if p is _RFC:  # the minimal lengths (SFrameHeader._lengths of None, None)
        kid_len = 0 if kid < 8 else (kid.bit_length() + 7) >> 3
        ctr_len = 0 if ctr < 8 else (ctr.bit_length() + 7) >> 3
    else:
        kid_len = (kid.bit_length() + 7) >> 3 or 1
        ctr_len = (ctr.bit_length() + 7) >> 3 or 1
    # every value here is in range by construction (k, c ≤ 8 bytes, ctr checked): build the
    # frozen header without re-running __post_init__'s caller checks (hot path of captures)
    header = _new(SFrameHeader)
    _setattr(header, "__dict__", {"kid": kid, "ctr": ctr, "profile": p,
                                  "kid_len": None if k == kid_len else k,
                                  "ctr_len": None if c == ctr_len else c})
    return header, total


def detect_profile(payload: bytes, epoch: Optional[int] = None) -> SFrameProfile:
    """Guess which profile wrote ``payload`` from its header alone (no keys needed).

    The heuristic, in order:

    1. a set top bit (``X`` / ``V``) is only legal in rfc9605 → rfc9605;
    2. each profile's parse must succeed and leave room for the 16-byte tag;
    3. both reference senders always write minimal KID/CTR lengths — a non-minimal reading
       loses;
    4. with ``epoch`` known, the KID's epoch bits must match (low 16 bits for rfc9605, the whole
       epoch above bit 16 for draft-1.5).  A match read from bytes after the config byte counts
       much more than one read from the config byte itself (an rfc9605 inline KID, or a draft
       KID of ≤ 2 bytes at epoch 0), since a wrong guess makes those bytes ciphertext that
       matches only by chance; rfc9605 KIDs with context bits (≥ 2^32) lose points;
    5. a remaining tie goes to rfc9605, the current default.

    Limits: without ``epoch`` a header whose first byte has the top bit clear is often valid in
    both profiles — e.g. a draft frame at epoch 2 starts ``20 02 00 …``, which rfc9605 reads as
    KID 2 inline (leaf 0, epoch 2) — and the answer is a guess (rfc9605).  At epoch 0, draft
    frames of leaves < 256 (``00 LL CC``) tie with rfc9605 leaf-0 frames even with the epoch.
    With a key at hand :func:`detect_profile_with_key` (trial decryption) is the certain test.
    Raises :class:`DecodeError` if neither profile can parse the header.
    """
    return detect_header(payload, epoch)[0]


_BOTH = (_RFC, _DRAFT)


def detect_header(payload: bytes, epoch: Optional[int] = None
                  ) -> Tuple[SFrameProfile, SFrameHeader, int]:
    """:func:`detect_profile` and that profile's :func:`parse_header` in one pass:
    ``(profile, header, header length)`` — each profile's header is parsed once (the capture's
    per-frame path). Same heuristic and errors as :func:`detect_profile`."""
    if type(payload) is not bytes:
        payload = bytes(payload)
    if payload and payload[0] & 0x80:
        # a set top bit (X / V) is only legal in rfc9605: the one candidate wins whatever its
        # score (the loop below would rank it alone)
        try:
            h, n = parse_header(payload, _RFC)
        except DecodeError:
            raise DecodeError("no SFrame profile can parse this header", vid="SFRAME-DETECT",
                              where=0) from None
        return _RFC, h, n
    best: Optional[Tuple[int, bool, SFrameProfile, SFrameHeader, int]] = None
    for p in _BOTH:  # (a set top bit: rfc9605 alone, above)
        try:
            h, n = parse_header(payload, p)
        except DecodeError:
            continue
        score = 0
        if len(payload) - n >= TAG_LENGTH:
            score += 4
        if h.kid_len is None and h.ctr_len is None:
            score += 2
        if p is _RFC and h.kid >> 32:
            score -= 2
        if epoch is not None:
            if not epoch_matches(h.kid, epoch, p):
                score -= 8
            else:
                # How much of the epoch check rests on bytes after the config byte (which, were
                # the guess wrong, would be ciphertext matching only by chance)?
                kid_bytes = 0 if (p is _RFC and not payload[0] & 0x80) \
                    else ((payload[0] >> 4) & 0x07) + 1
                strong = kid_bytes >= 1 if p is _RFC else kid_bytes > 2
                score += 8 if strong else 1
        rank = (score, p is _RFC)  # a tie goes to rfc9605
        if best is None or rank > best[:2]:
            best = (score, rank[1], p, h, n)
    if best is None:
        raise DecodeError("no SFrame profile can parse this header", vid="SFRAME-DETECT", where=0)
    return best[2], best[3], best[4]


def detect_profile_with_key(payload: bytes, base_key: bytes, epoch: int, suite: int = AES_128_GCM,
                            extra_aad: bytes = b"") -> Optional[SFrameProfile]:
    """The certain test: the profile under which ``payload`` authenticates with ``base_key``
    (the epoch's ``MLS-Exporter`` output), or ``None`` if neither does.  No replay state."""
    payload = bytes(payload)
    for p in (SFrameProfile.RFC9605, SFrameProfile.DRAFT_1_5):
        try:
            header, n = parse_header(payload, p)
            if not epoch_matches(header.kid, epoch, p):
                continue
            key, salt = derive_key_salt(base_key, header.kid, suite, p)
            _open(key, salt, header, payload, n, extra_aad)
        except (DecodeError, DecryptError, UsageError):
            continue
        return p
    return None


# ---------------------------------------------------------------------------------------------
# Key schedule, nonce, AAD
# ---------------------------------------------------------------------------------------------
def derive_base_key(mls: Any, label: str = DEFAULT_LABEL, epoch: Optional[int] = None) -> bytes:
    """``MLS-Exporter(label, epoch u64 big-endian, 32)`` from any object with
    ``export_raw(label, context, length)`` (and ``epoch`` if ``epoch`` is not given)."""
    if epoch is None:
        epoch = int(mls.epoch)
    export = getattr(mls, "export_raw", None)
    if export is None:
        raise UsageError("the MLS object has no export_raw(label, context, length)", vid="SFRAME-MLS")
    return bytes(export(label, _u(epoch, 64, "epoch").to_bytes(8, "big"), 32))


def rfc9605_labels(kid: int, suite: int = AES_128_GCM) -> Tuple[bytes, bytes]:
    """RFC 9605 §4.4.2 HKDF-Expand ``info`` strings: ``"SFrame 1.0 Secret key " ‖ KID u64 ‖
    suite u16`` and the same with ``"salt"``."""
    tail = _u(kid, 64, "kid").to_bytes(8, "big") + int(_suite(suite)[0]).to_bytes(2, "big")
    return b"SFrame 1.0 Secret key " + tail, b"SFrame 1.0 Secret salt " + tail


def derive_key_salt(base_key: bytes, kid: int, suite: int = AES_128_GCM,
                    profile: ProfileLike = PROFILE_RFC9605,
                    leaf_index: Optional[int] = None) -> Tuple[bytes, bytes]:
    """Per-sender ``(key, salt)``.

    rfc9605 (RFC 9605 §4.4.2): extract-then-expand over the KID and suite id.
    draft-1.5: ``HKDF-Expand`` with ``base_key`` as the PRK over the leaf index (``leaf_index``,
    or the KID's low 16 bits when not given — what a receiver has).
    """
    p = as_profile(profile)
    suite_id, nk, hash_name = _suite(suite)
    base_key = bytes(base_key)
    if p is SFrameProfile.RFC9605:
        kdf = _KDF[hash_name]
        secret = kdf.extract(b"", base_key)
        key_label, salt_label = rfc9605_labels(kid, suite)
        return kdf.expand(secret, key_label, nk), kdf.expand(secret, salt_label, NONCE_LENGTH)
    if len(base_key) < 32:
        raise UsageError("draft-1.5 needs a base key of at least 32 bytes (SHA-256 PRK)",
                         vid="SFRAME-BASEKEY")
    leaf = (kid & 0xFFFF) if leaf_index is None else _u(leaf_index, 32, "leaf_index")
    kdf = _KDF["sha256"]
    leaf_be = leaf.to_bytes(4, "big")
    return (kdf.expand(base_key, b"gbp sframe key " + leaf_be, nk),
            kdf.expand(base_key, b"gbp sframe salt " + leaf_be, NONCE_LENGTH))


def frame_nonce(salt: bytes, ctr: int, profile: ProfileLike = PROFILE_RFC9605) -> bytes:
    """Per-frame nonce: ``salt XOR CTR`` (big-endian, right-aligned, rfc9605) or
    ``salt XOR (CTR u64 little-endian ‖ 4 zero bytes)`` (draft-1.5)."""
    _u(ctr, 64, "ctr")
    if profile is not _RFC and as_profile(profile) is not _RFC:
        ctr = int.from_bytes(ctr.to_bytes(8, "little") + bytes(4), "big")
    n = len(salt)  # salt XOR mask, right-aligned to the salt's length as zip() over the two
    if n < NONCE_LENGTH:
        return bytes(a ^ b for a, b in zip(salt, _nonce_mask(ctr)))
    return (int.from_bytes(salt[:NONCE_LENGTH], "big") ^ ctr).to_bytes(NONCE_LENGTH, "big")


def _nonce_mask(mask: int) -> bytes:
    return mask.to_bytes(NONCE_LENGTH, "big")


def build_aad(header_bytes: bytes, extra_aad: bytes, profile: ProfileLike = PROFILE_RFC9605) -> bytes:
    """AEAD associated data: ``extra_aad ‖ header`` (rfc9605 as the reference sends it) or
    ``header ‖ extra_aad`` (draft-1.5, and RFC 9605 §4.4.3 proper)."""
    if profile is _RFC or as_profile(profile) is _RFC:
        return bytes(extra_aad) + bytes(header_bytes)
    return bytes(header_bytes) + bytes(extra_aad)


def sframe_seal(key: bytes, salt: bytes, header: SFrameHeader, plaintext: bytes,
                extra_aad: bytes = b"") -> bytes:
    """Encrypt one frame under explicit key material: ``header ‖ ciphertext ‖ tag``."""
    hb = header.encode()
    nonce = frame_nonce(salt, header.ctr, header.profile)
    return hb + AESGCM(bytes(key)).encrypt(nonce, bytes(plaintext), build_aad(hb, extra_aad, header.profile))


def sframe_open(key: bytes, salt: bytes, payload: bytes, extra_aad: bytes = b"",
                profile: ProfileLike = PROFILE_RFC9605,
                parsed: Optional[Tuple[SFrameHeader, int]] = None) -> Tuple[SFrameHeader, bytes]:
    """Decrypt one frame under explicit key material (no replay state); returns
    ``(header, plaintext)``. ``parsed``: the ``(header, length)`` :func:`parse_header` /
    :func:`detect_header` already read from this very payload (not parsed again)."""
    if type(payload) is not bytes:
        payload = bytes(payload)
    header, n = parse_header(payload, profile) if parsed is None else parsed
    return header, _open(key, salt, header, payload, n, extra_aad)


_AEADS: Dict[bytes, AESGCM] = {}  #: AESGCM per key (the receivers of a capture reuse a few)


def _aead(key: bytes) -> AESGCM:
    a = _AEADS.get(key)
    if a is None:
        if len(_AEADS) >= 4096:
            _AEADS.clear()
        a = _AEADS[key] = AESGCM(key)
    return a


def _need_tag(payload: bytes, n: int) -> None:
    """SFRAME-SHORT unless at least a tag follows the ``n``-byte header (RFC 9605 §4.4.3)."""
    if len(payload) - n < TAG_LENGTH:
        raise TruncatedError(f"SFrame payload has {len(payload) - n} bytes after the header, "
                             f"the tag alone needs {TAG_LENGTH}", vid="SFRAME-SHORT", where=len(payload))


def _tag_failed(header: SFrameHeader) -> DecryptError:
    return DecryptError(f"SFrame AEAD tag check failed (KID {header.kid}, CTR {header.ctr})",
                        vid="SFRAME-DECRYPT")


def _open(key: bytes, salt: bytes, header: SFrameHeader, payload: bytes, n: int,
          extra_aad: bytes) -> bytes:
    _need_tag(payload, n)
    nonce = frame_nonce(salt, header.ctr, header.profile)
    try:
        return _aead(key if type(key) is bytes else bytes(key)).decrypt(nonce, payload[n:],
                                         build_aad(payload[:n], extra_aad, header.profile))
    except InvalidTag:
        raise _tag_failed(header) from None


class SFrameOpener:
    """One sender's ``(key, salt)`` (RFC 9605 §4.4.2) ready to open many payloads: the AEAD
    object and the salt as an integer are made once (the capture's per-frame path,
    ``gbp_lab.capture.media``). :meth:`open` gives what ``sframe_open(key, salt, payload,
    extra_aad, parsed=(header, n))`` gives — the same plaintext, the same errors — for either
    profile (the header's); an rfc9605 header takes the short path (nonce = salt XOR CTR,
    AAD = extra AAD ‖ header, RFC 9605 §4.4.3), anything else :func:`sframe_open`'s own."""

    __slots__ = ("key", "salt", "_decrypt", "_salt")

    def __init__(self, key: bytes, salt: bytes) -> None:
        self.key, self.salt = bytes(key), bytes(salt)
        self._decrypt = _aead(self.key).decrypt
        self._salt = (int.from_bytes(self.salt[:NONCE_LENGTH], "big")
                      if len(self.salt) >= NONCE_LENGTH else None)

    def open(self, payload: bytes, header: SFrameHeader, n: int, extra_aad: bytes = b"") -> bytes:
        """The plaintext of ``payload`` whose header (``n`` bytes) was read as ``header``."""
        ctr = header.ctr
        if (header.profile is not _RFC or self._salt is None or type(payload) is not bytes
                or type(extra_aad) is not bytes or not 0 <= ctr <= _U64):
            return _open(self.key, self.salt, header, bytes(payload), n, extra_aad)
        _need_tag(payload, n)
        try:  # frame_nonce and build_aad of the rfc9605 profile, the salt already an integer
            return self._decrypt((self._salt ^ ctr).to_bytes(NONCE_LENGTH, "big"), payload[n:],
                                 extra_aad + payload[:n])
        except InvalidTag:
            raise _tag_failed(header) from None


# ---------------------------------------------------------------------------------------------
# Replay window
# ---------------------------------------------------------------------------------------------
class ReplayWindow:
    """Sliding window over the last :data:`REPLAY_WINDOW` counters (RFC 9605 §9.3 / the 1.5.x
    ``ReplayWindow``): the first counter anchors it; higher counters slide it; a counter is
    acceptable iff it was not seen and ``highest − ctr < size``."""

    __slots__ = ("size", "highest", "_bits")

    def __init__(self, size: int = REPLAY_WINDOW) -> None:
        if size <= 0:
            raise UsageError("replay window size must be > 0", vid="SFRAME-REPLAY-SIZE")
        self.size = size
        self.highest: Optional[int] = None
        self._bits = 0  # bit i set ⇔ counter (highest − i) seen

    def check(self, ctr: int) -> None:
        """Raise :class:`ReplayError` if ``ctr`` is a duplicate or older than the window."""
        if self.highest is None or ctr > self.highest:
            return
        behind = self.highest - ctr
        if behind >= self.size:
            raise ReplayError(f"CTR {ctr} is {behind} behind the highest {self.highest}",
                              vid="SFRAME-REPLAY-OLD")
        if self._bits >> behind & 1:
            raise ReplayError(f"CTR {ctr} already received", vid="SFRAME-REPLAY")

    def record(self, ctr: int) -> None:
        """Mark ``ctr`` as received (call :meth:`check` first)."""
        if self.highest is None:
            self.highest, self._bits = ctr, 1
        elif ctr > self.highest:
            shift = ctr - self.highest
            self._bits = ((self._bits << shift) | 1) & ((1 << self.size) - 1) if shift < self.size else 1
            self.highest = ctr
        else:
            self._bits |= 1 << (self.highest - ctr)

    def check_and_record(self, ctr: int) -> None:
        self.check(ctr)
        self.record(ctr)


# ---------------------------------------------------------------------------------------------
# Session / encryptor (the binding's surface)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SFrameDecryptResult:
    """Result of :meth:`SFrameSession.decrypt` (fields as in ``gbp_stack``; ``header`` added)."""

    plaintext: bytes
    sender_leaf: int
    header: Optional[SFrameHeader] = field(default=None, compare=False)


class _Counter:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class SFrameEncryptor:
    """Stateful per-sender encryptor; each :meth:`encrypt` takes the next CTR.

    Encryptors that a session hands out for the same leaf share one counter (the 1.9.2 fix:
    1.9.1 restarted at 0 for every new encryptor and so reused nonces).
    """

    __slots__ = ("_key", "_salt", "_kid", "_profile", "_counter", "_aead", "_closed")

    def __init__(self, key: bytes, salt: bytes, kid: int, profile: ProfileLike = PROFILE_RFC9605,
                 counter: Optional[_Counter] = None) -> None:
        self._key = bytes(key)
        self._salt = bytes(salt)
        self._kid = _u(kid, 64, "kid")
        self._profile = as_profile(profile)
        self._counter = counter if counter is not None else _Counter()
        self._aead = AESGCM(self._key)
        self._closed = False

    @property
    def kid(self) -> int:
        return self._kid

    @property
    def counter(self) -> int:
        """The CTR the next frame will use (= frames encrypted so far)."""
        return self._counter.value

    @property
    def profile(self) -> SFrameProfile:
        return self._profile

    @raises_builtin(RuntimeError)
    def encrypt(self, plaintext: bytes, extra_aad: bytes = b"") -> bytes:
        """Encrypt one audio frame → ``header ‖ ciphertext ‖ tag`` (``extra_aad`` is authenticated,
        not sent).  Errors are also ``RuntimeError`` instances, as the binding's."""
        if self._closed:
            raise ClosedError("the SFrame encryptor is closed", vid="SFRAME-CLOSED")
        ctr = self._counter.value
        if ctr > _U64:
            raise StateError("SFrame counter exhausted", vid="SFRAME-CTR-EXHAUSTED")
        header = SFrameHeader(self._kid, ctr, self._profile)
        hb = header.encode()
        nonce = frame_nonce(self._salt, ctr, self._profile)
        out = hb + self._aead.encrypt(nonce, bytes(plaintext), build_aad(hb, extra_aad, self._profile))
        self._counter.value = ctr + 1
        return out

    def close(self) -> None:
        """Refuse further use (idempotent; no native handle to free)."""
        self._closed = True

    def __enter__(self) -> "SFrameEncryptor":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


class _Receiver:
    __slots__ = ("aead", "salt", "window")

    def __init__(self, key: bytes, salt: bytes) -> None:
        self.aead = AESGCM(key)
        self.salt = salt
        self.window = ReplayWindow()


class SFrameSession:
    """SFrame session for one MLS epoch: the send side (:meth:`create_encryptor`) and the
    multi-sender receive side (:meth:`decrypt`).  Create a new one after every commit.

    Build it from an MLS context (:meth:`create`, any object with ``epoch`` and
    ``export_raw(label, context, length)``), from a base key (:meth:`from_base_key`) or from the
    epoch's exporter secret (:meth:`from_exporter_secret`, e.g. out of a key log).

    Differences from ``gbp_stack`` 1.9.1, all deliberate:

    * errors are typed (:class:`DecodeError`, :class:`ReplayError`, :class:`DecryptError`,
      :class:`StateError` for a KID of another epoch; :class:`ClosedError` after :meth:`close`),
      and those of the binding's methods are also ``RuntimeError`` instances, as the binding's;
    * an empty payload raises :class:`TruncatedError` (the binding returns an empty result);
      a payload too short for the tag is rejected before touching the replay window;
    * by default a counter enters the replay window only after the tag verified (1.9.2 behaviour);
      ``record_before_decrypt=True`` reproduces 1.9.1/1.5.x, where a forged frame burns its CTR;
    * encryptors for the same leaf share one counter; ``create_encryptor`` uses the session's
      label and suite unless told otherwise, and refuses ones that differ.
    """

    def __init__(self, base_key: bytes, epoch: int, suite: int = AES_128_GCM,
                 profile: ProfileLike = PROFILE_RFC9605, *, label: Optional[str] = DEFAULT_LABEL,
                 record_before_decrypt: bool = False) -> None:
        self._profile = as_profile(profile)
        _suite(suite)
        self._suite = int(suite)
        self._epoch = _u(epoch, 48 if self._profile is SFrameProfile.DRAFT_1_5 else 64, "epoch")
        self._base_key = bytes(base_key)
        if not self._base_key:
            raise UsageError("empty SFrame base key", vid="SFRAME-BASEKEY")
        if self._profile is SFrameProfile.DRAFT_1_5 and len(self._base_key) < 32:
            raise UsageError("draft-1.5 needs a base key of at least 32 bytes", vid="SFRAME-BASEKEY")
        self._label = label
        self._record_before = bool(record_before_decrypt)
        self._receivers: Dict[int, _Receiver] = {}
        self._send_counters: Dict[int, _Counter] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the SFrame session is closed", vid="SFRAME-CLOSED")

    # -- constructors --------------------------------------------------------------------------
    @classmethod
    @raises_builtin(RuntimeError)
    def create(cls, mls: Any, label: str = DEFAULT_LABEL, suite: int = AES_128_GCM, *,
               profile: ProfileLike = PROFILE_RFC9605, **kw: Any) -> "SFrameSession":
        """Session for ``mls``'s current epoch: base key = ``MLS-Exporter(label, epoch, 32)``."""
        epoch = int(mls.epoch)
        return cls(derive_base_key(mls, label, epoch), epoch, suite, profile, label=label, **kw)

    @classmethod
    def from_base_key(cls, base_key: bytes, epoch: int, suite: int = AES_128_GCM,
                      profile: ProfileLike = PROFILE_RFC9605, **kw: Any) -> "SFrameSession":
        """Session from an already exported base key (the 32-byte ``MLS-Exporter`` output)."""
        kw.setdefault("label", None)
        return cls(base_key, epoch, suite, profile, **kw)

    @classmethod
    def from_exporter_secret(cls, exporter_secret: bytes, epoch: int, label: str = DEFAULT_LABEL,
                             suite: int = AES_128_GCM, profile: ProfileLike = PROFILE_RFC9605, *,
                             mls_cipher_suite: int = 0x0001, **kw: Any) -> "SFrameSession":
        """Session from the epoch's MLS ``exporter_secret`` (RFC 9420 §8.5), e.g. from a key log."""
        base = CipherSuite.get(mls_cipher_suite).mls_exporter(
            bytes(exporter_secret), label, _u(epoch, 64, "epoch").to_bytes(8, "big"), 32)
        return cls(base, epoch, suite, profile, label=label, **kw)

    @classmethod
    def from_keylog(cls, keylog: Any, group_id: bytes, epoch: int, label: str = DEFAULT_LABEL,
                    suite: int = AES_128_GCM, profile: ProfileLike = PROFILE_RFC9605,
                    **kw: Any) -> "SFrameSession":
        """Session from a key log (anything with ``exporter_secret(group_id, epoch)`` and,
        optionally, ``suite(group_id)`` — :class:`gbp_lab.core.keylog.KeyLog`)."""
        secret = keylog.exporter_secret(group_id, epoch)
        if secret is None:
            raise MissingKeyError(f"no exporter secret for group {bytes(group_id).hex()} epoch {epoch}",
                                  vid="SFRAME-NOKEY", where=epoch)
        mls_suite = keylog.suite(group_id) if hasattr(keylog, "suite") else 0x0001
        return cls.from_exporter_secret(secret, epoch, label, suite, profile,
                                        mls_cipher_suite=mls_suite, **kw)

    # -- properties ----------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def suite(self) -> int:
        return self._suite

    @property
    def profile(self) -> SFrameProfile:
        return self._profile

    @property
    def base_key(self) -> bytes:
        return self._base_key

    @property
    def label(self) -> Optional[str]:
        return self._label

    # -- send side -----------------------------------------------------------------------------
    @raises_builtin(RuntimeError)
    def create_encryptor(self, mls: Any = None, leaf_index: int = 0, label: Optional[str] = None,
                         suite: Optional[int] = None, *, fresh_counter: bool = False) -> SFrameEncryptor:
        """Encryptor for the local sender at ``leaf_index`` (``mls`` is accepted for signature
        compatibility and otherwise unused: the session already holds the base key).

        Encryptors of one session and leaf share a counter; ``fresh_counter=True`` starts a new
        one at 0 instead — the 1.9.1 behaviour, which reuses (key, nonce) pairs; for simulating
        that bug only."""
        self._check_open()
        if suite is not None and int(suite) != self._suite:
            raise UsageError(f"suite {suite} differs from the session's {self._suite}", vid="SFRAME-SUITE")
        if label is not None and self._label is not None and label != self._label:
            raise UsageError(f"label {label!r} differs from the session's {self._label!r}",
                             vid="SFRAME-LABEL")
        _u(leaf_index, 32, "leaf_index")
        kid = kid_for(self._epoch, leaf_index, self._profile)
        key, salt = derive_key_salt(self._base_key, kid, self._suite, self._profile, leaf_index)
        slot = kid if self._profile is SFrameProfile.RFC9605 else leaf_index
        counter = _Counter() if fresh_counter else self._send_counters.setdefault(slot, _Counter())
        return SFrameEncryptor(key, salt, kid, self._profile, counter)

    @raises_builtin(RuntimeError)
    def encryptor(self, leaf_index: int) -> SFrameEncryptor:
        """Short form of :meth:`create_encryptor` (the Rust API's name)."""
        return self.create_encryptor(None, leaf_index)

    # -- receive side --------------------------------------------------------------------------
    @raises_builtin(RuntimeError)
    def decrypt(self, payload: bytes, extra_aad: bytes = b"") -> SFrameDecryptResult:
        """Decrypt one payload from any sender of this epoch.

        Order: header → KID epoch check → tag room → replay check → AEAD → replay record.
        """
        self._check_open()
        payload = bytes(payload)
        header, n = parse_header(payload, self._profile)
        if not epoch_matches(header.kid, self._epoch, self._profile):
            raise StateError(f"KID {header.kid:#x} carries epoch {header.epoch_bits}, "
                             f"session is at {self._epoch}", vid="SFRAME-KID-EPOCH")
        if len(payload) - n < TAG_LENGTH:
            raise TruncatedError("SFrame payload shorter than header + tag", vid="SFRAME-SHORT",
                                 where=len(payload))
        rfc = self._profile is SFrameProfile.RFC9605
        slot = header.kid if rfc else header.leaf
        rx = self._receivers.get(slot)
        if rx is None:
            key, salt = derive_key_salt(self._base_key, header.kid, self._suite, self._profile)
            rx = _Receiver(key, salt)
            self._receivers[slot] = rx
        rx.window.check(header.ctr)
        if self._record_before:
            rx.window.record(header.ctr)
        nonce = frame_nonce(rx.salt, header.ctr, self._profile)
        try:
            plaintext = rx.aead.decrypt(nonce, payload[n:], build_aad(payload[:n], extra_aad, self._profile))
        except InvalidTag:
            raise DecryptError(f"SFrame AEAD tag check failed (KID {header.kid:#x}, CTR {header.ctr})",
                               vid="SFRAME-DECRYPT") from None
        if not self._record_before:
            rx.window.record(header.ctr)
        return SFrameDecryptResult(plaintext, header.leaf, header)

    def reset(self) -> None:
        """Forget every receiver's key and replay state."""
        self._receivers.clear()

    def close(self) -> None:
        """Refuse further use (idempotent; no native handle to free).  Encryptors it handed
        out keep working, as the binding's."""
        self._closed = True

    def __enter__(self) -> "SFrameSession":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"SFrameSession(epoch={self._epoch}, suite={self._suite}, "
                f"profile={self._profile.value!r})")
