"""``Welcome.from_bytes`` (RFC 9420 §12.4.3.1). Oracle: an accepted Welcome encodes back to its input."""
from __future__ import annotations

from gbp_lab.core.mls.messages import Welcome

from ..common import Limits
from .mls_oracle import round_trip

LIMITS = Limits()
MAX_LEN = 8192


def check(data: bytes) -> None:
    round_trip(Welcome, data)
