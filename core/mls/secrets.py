"""A bytes wrapper for secret values that never prints its contents by accident.

``Secret`` is what the key schedule (:mod:`.schedule`), the secret tree (:mod:`.secret_tree`) and
the PSK code (:mod:`.psk`) hand out: ``repr``/``str`` show only the length and a short
fingerprint-free tag, ``.reveal()`` returns the raw bytes for the one place that needs them (a KDF
call, a key log, a teaching UI that asked explicitly). Comparison is constant time.

This mirrors openmls' ``Secret`` type, whose ``Debug`` implementation is redacted unless a
feature flag is set.
"""
from __future__ import annotations

import hmac
from typing import Union

from ..errors import UsageError

BytesLike = Union[bytes, bytearray, memoryview, "Secret"]


class Secret:
    """An immutable secret byte string, redacted in ``repr``/``str``.

    >>> s = Secret(b"\\x01\\x02")
    >>> s
    Secret(<2 bytes redacted>)
    >>> s.reveal()
    b'\\x01\\x02'
    """

    __slots__ = ("_value", "label")
    _value: bytes
    label: str

    def __init__(self, value: BytesLike, label: str = "") -> None:
        if isinstance(value, Secret):
            value = value._value
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise UsageError(f"Secret needs bytes, got {type(value).__name__}", vid="MLS-SECRET-TYPE")
        object.__setattr__(self, "_value", bytes(value))
        object.__setattr__(self, "label", label)

    def __setattr__(self, name, value):  # immutable
        raise AttributeError("Secret is immutable")

    def reveal(self) -> bytes:
        """The raw secret bytes (the only way to get them)."""
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return hmac.compare_digest(self._value, other._value)
        if isinstance(other, (bytes, bytearray)):
            return hmac.compare_digest(self._value, bytes(other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __repr__(self) -> str:
        tag = f"{self.label}: " if self.label else ""
        return f"Secret({tag}<{len(self._value)} bytes redacted>)"

    __str__ = __repr__

    def __bytes__(self) -> bytes:
        # Deliberately unsupported: bytes(secret) would make leaking too easy.
        raise UsageError("use Secret.reveal() to get the raw bytes", vid="MLS-SECRET-REVEAL")


def raw(value: BytesLike) -> bytes:
    """Bytes of ``value`` whether it is a :class:`Secret` or plain bytes (internal helper)."""
    if isinstance(value, Secret):
        return value.reveal()
    return bytes(value)


__all__ = ["Secret", "raw"]
