"""The GAP (audio) client: send Opus (or SFrame-protected) frames over a GBP node and accept
delivered payloads with a per-source RTP replay window and key-phase check (gap_rfc.md §4, §7,
§10; reference crates/gap/src/client.rs and the ``gbp_stack.GapClient`` binding).

* :meth:`GapClient.send`: per ``media_source_id`` RTP sequence counter (first 1, 16-bit, wraps
  0xFFFF → 0), ``key_phase`` = node epoch as u32, audio stream ``2 + member_id * 100``, flags O
  (0x0001).
* :meth:`GapClient.accept`: ``key_phase`` == current epoch (as u32) → window of the current
  epoch; an older key phase is accepted only while that epoch's window is kept (``T_overlap`` =
  10 s after the epoch changed), else ``error`` (GAP_EPOCH_STALE). A sequence number not above
  the source's high-water mark (within half the 16-bit space) is ``late``, otherwise ``new``.
* Time is injected: pass ``now=`` (milliseconds, any monotonic origin) to :meth:`accept` /
  :meth:`send` / :meth:`sync_epoch`. Old windows expire ``T_overlap`` after the epoch change, as
  measured on that clock; a client never given a time keeps them until :meth:`reset`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ..errors import ClosedError, DecodeError, raises_builtin
from ..gbp.events import OutboundFrame
from ..gbp.registry import TIMEOUTS_MS, ErrorCode, PayloadCodec, StreamType, sent_flags
from ..gtp.client import decode_reason
from ..payload_codec import resolve_codec
from .payload import GapPayload

__all__ = ["GapClient", "GapAcceptResult"]

_AUDIO_FLAGS = int(sent_flags(StreamType.AUDIO))
_AUDIO_BASE = 2


@dataclass(frozen=True)
class GapAcceptResult:
    """Outcome of :meth:`GapClient.accept`: ``status`` is ``new``, ``late`` or ``error``;
    ``bytes_`` is the length of the Opus frame. ``payload`` (the decoded :class:`GapPayload`)
    and ``code`` are additions to the binding's result."""

    status: str
    source: Optional[int] = None
    seq: Optional[int] = None
    bytes_: Optional[int] = None
    reason: Optional[str] = None
    payload: Optional[GapPayload] = None
    code: Optional[int] = None


class GapClient:
    """Group Audio Protocol client."""

    __slots__ = ("_out_seq", "_in_hw", "_epoch", "_old", "_now", "overlap_ms", "_closed")

    def __init__(self, overlap_ms: int = TIMEOUTS_MS["T_overlap"]) -> None:
        self._out_seq: Dict[int, int] = {}
        self._in_hw: Dict[int, int] = {}
        self._epoch: Optional[int] = None
        #: (epoch, window, expires_ms) of earlier epochs still inside T_overlap
        self._old: List[Tuple[int, Dict[int, int], float]] = []
        self._now: float = 0
        self.overlap_ms = overlap_ms
        self._closed = False

    @classmethod
    def create(cls) -> "GapClient":
        """A fresh client."""
        return cls()

    def sync_epoch(self, epoch: int, now: Optional[float] = None) -> None:
        """Prune expired old windows; when *epoch* changed, keep the current window for
        ``T_overlap`` and start a new one (outgoing counters restart too)."""
        if now is not None:
            self._now = now
        t = self._now
        if self._old:
            self._old = [w for w in self._old if w[2] > t]
        if epoch != self._epoch:
            if self._epoch is not None and self._in_hw:
                self._old.append((self._epoch, self._in_hw, t + self.overlap_ms))
            self._in_hw = {}
            self._out_seq.clear()
            self._epoch = epoch

    def reset(self) -> None:
        """Forget counters, windows and the overlap buffer."""
        self._out_seq.clear()
        self._in_hw = {}
        self._old = []
        self._epoch = None

    @raises_builtin(OSError)
    def send(self, node: Any, mls: Any, target: int, media_source_id: int, rtp_timestamp: int,
             opus: bytes, codec: Any = PayloadCodec.CBOR, *,
             now: Optional[float] = None) -> OutboundFrame:
        """Send one audio frame (*opus* may be an SFrame ciphertext, RFC 9605). Errors are also
        ``OSError`` instances, as the binding's."""
        if self._closed:
            raise ClosedError("the client is closed", vid="GAP-CLIENT-CLOSED")
        c = resolve_codec(codec)
        epoch = node.epoch
        self.sync_epoch(epoch, now)
        seq = (self._out_seq.get(media_source_id, 0) + 1) & 0xFFFF
        payload = GapPayload(media_source_id, seq, rtp_timestamp, epoch & 0xFFFFFFFF, bytes(opus))
        body = payload.to_bytes(c)
        frame = node.send_payload(mls, target, StreamType.AUDIO,
                                  node.member_stream_id(_AUDIO_BASE), _AUDIO_FLAGS, body, c)
        self._out_seq[media_source_id] = seq
        return frame

    def accept(self, plaintext: bytes, current_epoch: Optional[int] = None,
               codec: Any = PayloadCodec.CBOR, *, now: Optional[float] = None) -> GapAcceptResult:
        """Decode a delivered plaintext (``codec`` = the event's ``codec``) and classify it.
        ``current_epoch`` ``None`` keeps the client's epoch (the first frame's key phase when it
        has none yet)."""
        if self._closed:
            return GapAcceptResult("error", reason="client closed")
        if current_epoch is not None:
            self.sync_epoch(current_epoch, now)
        elif now is not None:
            self._now = now
        try:
            p = GapPayload.from_bytes(plaintext, resolve_codec(codec))
        except DecodeError as exc:
            return GapAcceptResult("error", reason=decode_reason(exc),
                                   code=int(ErrorCode.GAP_DECODE_FAILED))
        kp = p.key_phase
        if current_epoch is None:
            if self._epoch is None:
                self.sync_epoch(kp)
            current_epoch = self._epoch
            assert current_epoch is not None  # sync_epoch just set it
        window: Optional[Dict[int, int]]
        if kp == current_epoch & 0xFFFFFFFF:
            window = self._in_hw
        else:
            window = next((w for e, w, exp in self._old if e == kp and exp > self._now), None)
            if window is None:
                return GapAcceptResult(
                    "error", reason=f"epoch stale: kp={kp}, expected={current_epoch & 0xFFFFFFFF}",
                    code=int(ErrorCode.GAP_EPOCH_STALE))
        src, seq = p.media_source_id, p.rtp_sequence
        hw = window.get(src, 0)
        n = len(p.opus_frame)
        if seq <= hw and hw - seq <= 0x7FFF:
            return GapAcceptResult("late", src, seq, n, None, p)
        window[src] = seq
        return GapAcceptResult("new", src, seq, n, None, p)

    def close(self) -> None:
        """Refuse further use (idempotent; nothing native to release): ``send`` then raises
        :class:`~gbp_lab.core.errors.ClosedError` (an ``OSError``) and ``accept`` returns an
        ``error`` result, as the binding's."""
        self._closed = True

    def __enter__(self) -> "GapClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
