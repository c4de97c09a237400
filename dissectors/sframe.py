"""Scapy layer of SFrame, the end-to-end audio encryption inside GAP (RFC 9605 §4.3; reference-map
§7, §9; both wire profiles of :mod:`gbp_lab.core.sframe`).

:class:`SFrame` shows the header (``kid``, ``ctr``; the ``leaf`` and ``epoch_bits`` carried in the
KID) and ``ciphertext`` (ciphertext ‖ 16-byte tag); ``profile`` and ``suite`` are not on the wire
(they say how the bytes were read / are to be sealed). Header parsing and encoding, key schedule and
AEAD are the core's (:func:`~gbp_lab.core.sframe.parse_header`, :class:`~gbp_lab.core.sframe.SFrameHeader`,
:func:`~gbp_lab.core.sframe.derive_key_salt`, :func:`~gbp_lab.core.sframe.sframe_open` /
:func:`~gbp_lab.core.sframe.sframe_seal`).

When is the GAP ``opus`` field an SFrame? :func:`sframe_layer_for` decides:

* with the epoch's exporter secret in the key log: when it authenticates (trial decryption over
  both profiles and both suites, no replay state) — the Opus plaintext becomes a ``Raw`` child;
* without a key: when the RFC 9605 (or, failing that, the draft-1.5) header parses, leaves room
  for the tag, and the KID's epoch bits equal the frame's epoch (``ep``, or ``kp`` outside a frame);
  ``crypto`` then says it was not decrypted.

Otherwise the bytes are plain Opus and no child layer is added.
"""
from __future__ import annotations

from typing import Optional, Tuple

from scapy.fields import ByteEnumField, LongField, StrField, XLongField
from scapy.packet import NoPayload, Raw

from gbp_lab.core.errors import GbpLabError
from gbp_lab.core.sframe import (AES_128_GCM, AES_256_GCM, PROFILE_DRAFT_1_5, PROFILE_RFC9605,
                                 TAG_LENGTH, as_profile, SFrameHeader, SFrameSession, derive_key_salt,
                                 detect_profile, epoch_from_kid, parse_header, sframe_open,
                                 sframe_seal)

from . import keystore
from ._common import NO_DEFAULT, CoreLayer, annotation, find_under, text_field
from .gbp import GbpFrame

__all__ = ["SFrame", "sframe_layer_for", "sframe_base_key"]

SUITE_NAMES = {AES_128_GCM: "AES_128_GCM_SHA256_128", AES_256_GCM: "AES_256_GCM_SHA512_128"}


def sframe_base_key(group_id: bytes, epoch: int) -> Optional[bytes]:
    """``MLS-Exporter("gbp/sframe v1", epoch, 32)`` from the installed key log, or ``None``."""
    log = keystore.current_keylog()
    if log is None:
        return None
    gid16 = bytes(group_id)[:16].ljust(16, b"\0")
    secret = log.exporter_secret(gid16, epoch)
    if secret is None:
        return None
    return SFrameSession.from_exporter_secret(secret, epoch,
                                              mls_cipher_suite=log.suite(gid16)).base_key


class SFrame(CoreLayer):
    """One SFrame payload: header ‖ ciphertext ‖ tag (RFC 9605 §4.2)."""

    name = "SFrame"
    annotations = ("error", "leaf", "epoch_bits", "crypto")
    fields_desc = [
        XLongField("kid", 0),
        LongField("ctr", 0),
        StrField("ciphertext", NO_DEFAULT),
        text_field("profile", PROFILE_RFC9605.value),
        ByteEnumField("suite", AES_128_GCM, SUITE_NAMES),
        annotation("leaf"),
        annotation("epoch_bits"),
        annotation("crypto"),
        annotation("error"),
    ]

    _plaintext: Optional[bytes] = None

    def _profile(self) -> str:
        p = self.getfieldval("profile")
        return p.decode() if isinstance(p, bytes) else p

    def decode_core(self, s: bytes) -> Tuple[SFrameHeader, int]:
        return parse_header(s, self._profile())

    def fill(self, obj) -> None:
        header, n = obj
        self.fields["kid"] = header.kid
        self.fields["ctr"] = header.ctr
        self.fields["ciphertext"] = bytes(self._orig_input[n:])
        self.fields["leaf"] = str(header.leaf)
        self.fields["epoch_bits"] = str(header.epoch_bits)

    def do_dissect(self, s: bytes) -> bytes:
        self._orig_input = bytes(s)
        return super().do_dissect(s)

    def dissect_children(self) -> None:
        if self._plaintext is not None:
            self.add_payload(Raw(self._plaintext, _internal=1, _underlayer=self))

    def _header(self) -> SFrameHeader:
        return SFrameHeader(int(self.kid), int(self.ctr), as_profile(self._profile()))

    def encode_core(self) -> bytes:
        header = self._header()
        ct = self.getfieldval("ciphertext")
        if ct is not None:
            return header.encode() + bytes(ct)
        plaintext = b"" if isinstance(self.payload, NoPayload) else bytes(self.payload)
        frame = find_under(self, GbpFrame)
        base = None if frame is None else sframe_base_key(
            bytes(frame.gid), int(frame.ep) + keystore.mls_epoch_offset())
        if base is None:
            return header.encode() + plaintext  # no key: carried in clear (for crafting)
        key, salt = derive_key_salt(base, header.kid, int(self.suite), self._profile())
        return sframe_seal(key, salt, header, plaintext)

    def build_trailer(self) -> bytes:
        return b""

    def describe(self) -> str:
        return f"SFrame kid={int(self.kid):#x} ctr={self.ctr} ({self._profile()})"


def _make(data: bytes, parent, profile: str, suite: int, plaintext: Optional[bytes],
          crypto: str) -> SFrame:
    pkt = SFrame(_underlayer=parent)
    pkt.fields["profile"] = profile
    pkt.fields["suite"] = suite
    pkt._plaintext = plaintext
    pkt.dissect(data)
    pkt.fields["crypto"] = crypto
    return pkt


def sframe_layer_for(gap) -> Optional[SFrame]:
    """The :class:`SFrame` child of a dissected GAP layer, or ``None`` for plain Opus (see the
    module docstring)."""
    opus = bytes(gap.opus or b"")
    if not opus:
        return None
    frame = find_under(gap, GbpFrame)
    epoch = (int(frame.ep) + keystore.mls_epoch_offset()) if frame is not None else int(gap.kp)
    base = sframe_base_key(bytes(frame.gid), epoch) if frame is not None else None
    if base is not None:
        for profile in (PROFILE_RFC9605, PROFILE_DRAFT_1_5):
            for suite in (AES_128_GCM, AES_256_GCM):
                try:
                    header, _n = parse_header(opus, profile)
                    key, salt = derive_key_salt(base, header.kid, suite, profile)
                    _h, pt = sframe_open(key, salt, opus, b"", profile)
                except GbpLabError:
                    continue
                return _make(opus, gap, profile.value, suite, pt,
                             f"decrypted ({profile.value}, {SUITE_NAMES[suite]}, epoch {epoch})")
    try:
        profile = detect_profile(opus, epoch)
        header, n = parse_header(opus, profile)
    except GbpLabError:
        return None
    if len(opus) - n < TAG_LENGTH:
        return None
    want = epoch & 0xFFFF if profile is PROFILE_RFC9605 else epoch
    if epoch_from_kid(header.kid, profile) != want:
        return None
    note = ("encrypted (no key for this epoch)" if base is None
            else "not decrypted: no profile/suite authenticates with the epoch's key")
    return _make(opus, gap, profile.value, AES_128_GCM, None, note)
