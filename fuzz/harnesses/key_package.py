"""``KeyPackage.from_bytes`` (RFC 9420 §10) and, for a parsed one, its §10.1 validation (signature
with the leaf's key, leaf source, capabilities …). Oracle: an accepted KeyPackage encodes back to
its input."""
from __future__ import annotations

from gbp_lab.core.mls.messages import KeyPackage

from ..common import Limits
from .mls_oracle import round_trip

LIMITS = Limits()
MAX_LEN = 8192


def check(data: bytes) -> None:
    kp = round_trip(KeyPackage, data)
    kp.validate(now=None)
