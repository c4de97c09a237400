"""``MLSMessage.from_bytes`` (RFC 9420 §6: PublicMessage, PrivateMessage, Welcome, GroupInfo,
KeyPackage bodies). Oracle: an accepted message encodes back to its input."""
from __future__ import annotations

from gbp_lab.core.mls.messages import MLSMessage

from ..common import Limits
from .mls_oracle import round_trip

LIMITS = Limits()
MAX_LEN = 8192


def check(data: bytes) -> None:
    round_trip(MLSMessage, data)
