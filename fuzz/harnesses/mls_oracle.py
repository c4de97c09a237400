"""Shared oracle of the MLS parser harnesses (a helper, not a harness) (RFC 9420 §2.1 TLS presentation language)."""
from __future__ import annotations

from typing import Any


def round_trip(cls: Any, data: bytes) -> Any:
    """``cls.from_bytes(data)``; an accepted structure must encode back to the very same bytes
    (the presentation language has one encoding per value: minimal varints, 0/1 optionals)."""
    obj = cls.from_bytes(data)
    assert obj.to_bytes() == data, f"{cls.__name__}: to_bytes() of a decoded structure differs from its input"
    return obj
