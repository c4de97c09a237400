"""``GroupInfo.from_bytes`` (RFC 9420 §12.4.3) and its ``ratchet_tree`` extension when present.
Oracle: an accepted GroupInfo encodes back to its input."""
from __future__ import annotations

from gbp_lab.core.mls.messages import GroupInfo

from ..common import Limits
from .mls_oracle import round_trip

LIMITS = Limits()
MAX_LEN = 8192


def check(data: bytes) -> None:
    gi = round_trip(GroupInfo, data)
    gi.ratchet_tree()
