"""Per-source reorder buffer for GAP audio frames (the reference's ``JitterBuffer``).

GAP frames carry a 16-bit RTP sequence number (gap_rfc.md; crates/gap/src/jitter.rs).  The
buffer keeps up to ``capacity_per_source`` frames per ``media_source_id`` sorted by
``rtp_sequence`` so a decoder can take them in order; a frame below the next expected
sequence is *late* and dropped; on overflow the lowest queued frame is evicted.

Behaviour mirrors ``gbp_stack.JitterBuffer`` 1.9.1 exactly, including what it does *not* do:
sequence numbers are compared as plain integers (no 16-bit wrap-around handling), a duplicate
of a queued sequence is reported ``ACCEPTED`` and the first copy is kept, and the next expected
sequence only exists after the first pop.  Sans-IO: no clock; the caller decides when to pop.
"""
from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass
from typing import Dict, List, Optional

from ..errors import UsageError

__all__ = ["AudioFrame", "JitterBuffer", "JitterPushOutcome", "JitterPushResult"]


@dataclass(frozen=True)
class AudioFrame:
    """One decrypted GAP frame waiting in a :class:`JitterBuffer`."""

    media_source_id: int
    rtp_sequence: int
    plaintext: bytes


class JitterPushOutcome(enum.Enum):
    """What :meth:`JitterBuffer.push` did with a frame (string values as in ``gbp_stack``)."""

    ACCEPTED = "accepted"
    LATE = "late"
    EVICTED = "evicted"


@dataclass(frozen=True)
class JitterPushResult:
    """Outcome of a push; ``evicted`` is the frame pushed out when the source was full."""

    outcome: JitterPushOutcome
    evicted: Optional[AudioFrame] = None


class _Queue:
    __slots__ = ("seqs", "frames", "next_seq")

    def __init__(self) -> None:
        self.seqs: List[int] = []          # sorted rtp_sequence values
        self.frames: List[AudioFrame] = []  # same order
        self.next_seq: Optional[int] = None


class JitterBuffer:
    """Bounded reorder window keyed by ``media_source_id``."""

    __slots__ = ("_capacity", "_queues")

    def __init__(self, capacity_per_source: int) -> None:
        if not isinstance(capacity_per_source, int) or capacity_per_source <= 0:
            raise UsageError("capacity_per_source must be > 0", vid="GAP-JITTER-CAPACITY")
        self._capacity = capacity_per_source
        self._queues: Dict[int, _Queue] = {}

    @property
    def capacity_per_source(self) -> int:
        return self._capacity

    def push(self, frame: AudioFrame) -> JitterPushResult:
        """Queue ``frame``; LATE if it is below the source's next expected sequence."""
        q = self._queues.setdefault(frame.media_source_id, _Queue())
        seq = frame.rtp_sequence
        if q.next_seq is not None and seq < q.next_seq:
            return JitterPushResult(JitterPushOutcome.LATE)
        i = bisect.bisect_left(q.seqs, seq)
        if i < len(q.seqs) and q.seqs[i] == seq:  # duplicate: keep the first copy
            return JitterPushResult(JitterPushOutcome.ACCEPTED)
        q.seqs.insert(i, seq)
        q.frames.insert(i, frame)
        if len(q.frames) > self._capacity:
            q.seqs.pop(0)
            return JitterPushResult(JitterPushOutcome.EVICTED, q.frames.pop(0))
        return JitterPushResult(JitterPushOutcome.ACCEPTED)

    def _take_head(self, q: _Queue) -> AudioFrame:
        q.seqs.pop(0)
        head = q.frames.pop(0)
        q.next_seq = (head.rtp_sequence + 1) & 0xFFFFFFFF
        return head

    def pop_in_order(self, media_source_id: int) -> Optional[AudioFrame]:
        """The lowest queued frame if it is the next expected one (or nothing was popped yet)."""
        q = self._queues.get(media_source_id)
        if q is None or not q.frames:
            return None
        if q.next_seq is not None and q.seqs[0] != q.next_seq:
            return None
        return self._take_head(q)

    def pop_force(self, media_source_id: int) -> Optional[AudioFrame]:
        """The lowest queued frame whatever the gap before it (concealment case)."""
        q = self._queues.get(media_source_id)
        if q is None or not q.frames:
            return None
        return self._take_head(q)

    def length_for(self, media_source_id: int) -> int:
        """Frames queued for ``media_source_id``."""
        q = self._queues.get(media_source_id)
        return len(q.frames) if q is not None else 0

    def next_expected(self, media_source_id: int) -> Optional[int]:
        """The sequence :meth:`pop_in_order` waits for (``None`` before the first pop)."""
        q = self._queues.get(media_source_id)
        return q.next_seq if q is not None else None

    def clear(self) -> None:
        """Forget every source, queued frames and expected sequences alike."""
        self._queues.clear()
