"""Deterministic time and randomness of a simulated run (:mod:`gbp_lab.sim.simulator`):
:class:`VirtualClock` (protocol milliseconds for the nodes and the GAP client, seconds since
2026-01-01 for MLS KeyPackage lifetimes, RFC 9420 §7.2) and :class:`DeterministicRng` (the
``rng=`` of :class:`~gbp_lab.core.mls.context.MlsContext`)."""
from __future__ import annotations

import hashlib

__all__ = ["EPOCH_BASE", "VirtualClock", "DeterministicRng"]

#: Unix time of virtual millisecond 0 (2026-01-01T00:00:00Z).
EPOCH_BASE = 1_767_225_600


class VirtualClock:
    """Deterministic protocol time: :attr:`now_ms` (nodes, GAP) and :meth:`seconds` (MLS)."""

    def __init__(self, base_unix: float = EPOCH_BASE) -> None:
        self.base = base_unix
        self.now_ms = 0

    def advance(self, ms: int) -> int:
        self.now_ms += int(ms)
        return self.now_ms

    def seconds(self) -> float:
        return self.base + self.now_ms / 1000.0


class DeterministicRng:
    """A seeded byte generator ``rng(n) -> bytes`` (SHA-256 in counter mode over
    ``seed ‖ label``): the ``rng=`` of :class:`MlsContext`. Not for real keys."""

    def __init__(self, seed: int, label: str) -> None:
        self._key = hashlib.sha256(b"gbp-lab sim rng\x00" + int(seed).to_bytes(16, "big", signed=True)
                                   + label.encode("utf-8")).digest()
        self._counter = 0
        self._buf = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._buf += hashlib.sha256(self._key + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        out, self._buf = self._buf[:n], self._buf[n:]
        return out
