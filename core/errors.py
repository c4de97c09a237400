"""The exceptions of gbp-lab: one root, two branches (as h11 has).

``GbpLabError`` is the one root. Below it:

* :class:`UsageError` — *our* caller misused the API (wrong argument, wrong state for the call).
* :class:`ProtocolError` — bytes from a peer or a file are bad. Its branches say how:
  :class:`DecodeError` (malformed encoding), :class:`CryptoError` (authentication, signatures,
  missing keys), :class:`StateError` (well-formed but not acceptable now: stale epoch, replay …).

Every error carries a stable validation id ``vid`` (openmls ``ValSem`` style, e.g.
``"GBP-FRAME-PSZ"``) and optionally ``where`` (a field name, offset or line number), so tests,
tables and people can match on something that does not change with the wording.

Any other exception escaping one of our decoders is a bug.
"""
from __future__ import annotations

from typing import Any, Optional


class GbpLabError(Exception):
    """Root of every exception raised by gbp-lab."""

    default_vid = "GBPLAB"

    def __init__(self, message: str, *, vid: Optional[str] = None, where: Any = None) -> None:
        self.vid = vid or self.default_vid
        self.where = where
        self.message = message
        text = f"[{self.vid}] {message}"
        if where is not None:
            text += f" (at {where})"
        super().__init__(text)

    def __reduce__(self):
        # keep vid/where across pickling (dask, multiprocessing)
        return (_rebuild, (type(self), self.message, self.vid, self.where))


def _rebuild(cls, message, vid, where):
    return cls(message, vid=vid, where=where)


# --- misuse of our API -----------------------------------------------------------------------
class UsageError(GbpLabError, ValueError):
    """The caller used the API wrongly (bad argument, call not allowed in this state)."""

    default_vid = "USAGE"


# --- a peer's (or a file's) bad bytes --------------------------------------------------------
class ProtocolError(GbpLabError):
    """Bytes received from a peer or read from a file are not acceptable."""

    default_vid = "PROTO"


class DecodeError(ProtocolError):
    """Malformed encoding: truncated, trailing bytes, wrong type, bad length, invalid CBOR …"""

    default_vid = "DECODE"


class TrailingBytesError(DecodeError):
    """A decoder was given more bytes than the structure holds."""

    default_vid = "DECODE-TRAILING"


class TruncatedError(DecodeError):
    """A decoder ran out of bytes before the structure ended."""

    default_vid = "DECODE-TRUNCATED"


class OversizeError(DecodeError):
    """A length field exceeds the allowed maximum; nothing was buffered for it."""

    default_vid = "DECODE-OVERSIZE"


class CryptoError(ProtocolError):
    """Cryptographic failure: bad tag, bad signature, bad MAC, wrong key."""

    default_vid = "CRYPTO"


class DecryptError(CryptoError):
    """AEAD authentication failed."""

    default_vid = "CRYPTO-DECRYPT"


class SignatureError(CryptoError):
    """A signature did not verify."""

    default_vid = "CRYPTO-SIGNATURE"


class MissingKeyError(CryptoError):
    """No secret is known (key log, secret tree) for what we were asked to decrypt."""

    default_vid = "CRYPTO-NOKEY"


class StateError(ProtocolError):
    """Well-formed input that is not acceptable in the current state (stale epoch, replay …)."""

    default_vid = "STATE"


class ReplayError(StateError):
    """A sequence number / generation / counter was already used."""

    default_vid = "STATE-REPLAY"


class KeyLogError(DecodeError):
    """A key-log file is malformed or contradicts itself (``where`` = line number)."""

    default_vid = "KEYLOG"


__all__ = [
    "GbpLabError",
    "UsageError",
    "ProtocolError",
    "DecodeError",
    "TrailingBytesError",
    "TruncatedError",
    "OversizeError",
    "CryptoError",
    "DecryptError",
    "SignatureError",
    "MissingKeyError",
    "StateError",
    "ReplayError",
    "KeyLogError",
]
