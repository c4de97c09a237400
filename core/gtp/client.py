"""The GTP (text) client: send text over a GBP node, accept delivered payloads with
``(sender, message_id)`` idempotency (gtp_rfc.md §4-§5; reference crates/gtp/src/client.rs and the
``gbp_stack.GtpClient`` binding).

* :meth:`GtpClient.send` builds the message the reference builds (``fl`` = URGENT 0x01, ``ct`` =
  PLAIN, ``ts`` = ``rid`` = 0), encodes it in the chosen :class:`PayloadCodec` and sends it on the
  member's text stream (``1 + member_id * 100``) with flags O|R|A (0x0007).
  :meth:`GtpClient.send_message` sends any :class:`GtpMessage` (other content types and flags).
* :meth:`GtpClient.accept` decodes a delivered plaintext and answers ``new`` / ``duplicate`` /
  ``error`` in a :class:`GtpAcceptResult` — the fields of the binding's result plus ``message``
  (the decoded :class:`GtpMessage`) and ``code`` (the registry code of an error).
* The seen-set holds at most 10 000 entries per epoch, oldest evicted first, and is cleared when
  the epoch passed to ``send``/``accept`` changes (or on :meth:`GtpClient.reset`).
"""
from __future__ import annotations

from collections import deque
from itertools import repeat
from dataclasses import dataclass
from typing import Any, Deque, Dict, Hashable, Iterable, List, Optional, Set, Tuple

from ..errors import ClosedError, DecodeError, UsageError, raises_builtin
from ..gbp.events import OutboundFrame
from ..cbor import enc_head, enc_key, enc_uint
from ..gbp.registry import ErrorCode, PayloadCodec, StreamType, sent_flags
from ..payload_codec import (LengthMismatchError, cbor_values_matcher, decode as pc_decode,
                             resolve_codec)
from .message import GtpContentType, GtpFlags, GtpMessage

__all__ = ["GtpClient", "GtpAcceptResult", "GtpContentType", "GtpFlags", "BoundedSeen", "EpochScopedDedup",
           "SEEN_CAPACITY", "decode_reason", "GTP_FIELDS", "Verdict"]

#: Per-epoch dedup capacity (GTP §5, GSP §5).
SEEN_CAPACITY = 10_000
_TEXT_FLAGS = int(sent_flags(StreamType.TEXT))
_TEXT_BASE = 1

# --- the CBOR fast paths (hot path of every text message) -----------------------------------
# A GtpMessage in CBOR is the 8-entry text-keyed map mid sid ts rid fl ct len body, shortest-form
# integers (message.py). The fast paths only handle that exact shape and defer everything else
# to GtpMessage.to_bytes / from_bytes, so they cannot accept or produce anything different.
_KEYS = ("mid", "sid", "ts", "rid", "fl", "ct", "len", "body")
_K = {k: enc_key(k) for k in _KEYS}
_PLAIN_MID = b"\xa8" + _K["mid"]
_PLAIN_SID = _K["sid"]
_PLAIN_TAIL = _K["ts"] + b"\x00" + _K["rid"] + b"\x00" + _K["fl"] + b"\x01" + _K["ct"] + b"\x00" + _K["len"]
_new = object.__new__
_setattr = object.__setattr__

#: the order of the values :meth:`GtpClient.accept_many` returns: :class:`GtpMessage`'s schema
GTP_FIELDS = tuple(f.attr for f in GtpMessage.SCHEMA.fields)
#: the canonical-CBOR matcher :func:`~gbp_lab.core.payload_codec.decode` itself uses for GTP
_GTP_VALUES = cbor_values_matcher(GtpMessage.SCHEMA)
_MID, _SID = GTP_FIELDS.index("message_id"), GTP_FIELDS.index("sender_id")
#: one :meth:`GtpClient.accept_many` answer: ``(status, values in GTP_FIELDS order or None,
#: reason)`` — the ``status`` / ``reason`` of :class:`GtpAcceptResult`
Verdict = Tuple[str, Optional[tuple], Optional[str]]


def _plain_cbor(sender_id: int, message_id: int, text: str) -> bytes:
    """``GtpMessage.plain(sender_id, message_id, text).to_bytes()`` written directly."""
    body = text.encode("utf-8")
    n = len(body)
    return b"".join((_PLAIN_MID, enc_uint(message_id), _PLAIN_SID, enc_uint(sender_id),
                     _PLAIN_TAIL, enc_uint(n), _K["body"], enc_head(0x40, n), body))


class BoundedSeen:
    """A set that forgets its oldest entry beyond *capacity* (reference ``BoundedSeen``).

    A set for membership plus a deque for the insertion order: O(1) per insert at capacity.
    (Evicting ``next(iter(dict))`` instead slows down as deleted slots pile up at the front of
    the dict: ~2 µs per insert at 10,000 entries instead of ~0.1.)"""

    __slots__ = ("_set", "_order", "capacity")

    def __init__(self, capacity: int = SEEN_CAPACITY) -> None:
        self._set: Set[Hashable] = set()
        self._order: Deque[Hashable] = deque()
        self.capacity = capacity

    def insert(self, item: Hashable) -> bool:
        """Add *item*; ``False`` if it was already there."""
        s = self._set
        if item in s:
            return False
        s.add(item)
        order = self._order
        order.append(item)
        if len(order) > self.capacity:
            s.discard(order.popleft())
        return True

    def clear(self) -> None:
        self._set.clear()
        self._order.clear()

    def __len__(self) -> int:
        return len(self._set)

    def __contains__(self, item: object) -> bool:
        return item in self._set


class EpochScopedDedup:
    """Base of the GTP and GSP clients: a :class:`BoundedSeen` set of already-accepted ids that
    starts afresh whenever the epoch changes (the reference clients reset per epoch)."""

    __slots__ = ("_seen", "_epoch", "_closed")
    _closed_vid = "GTP-CLIENT-CLOSED"

    def __init__(self) -> None:
        self._seen = BoundedSeen()
        self._epoch: Optional[int] = None
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the client is closed", vid=self._closed_vid)

    def sync_epoch(self, epoch: int) -> None:
        """Clear the seen-set when *epoch* differs from the last one seen."""
        if epoch != self._epoch:
            self._seen.clear()
            self._epoch = epoch

    def reset(self) -> None:
        """Forget every seen id (and the epoch); nothing else of the client's state."""
        self._seen.clear()
        self._epoch = None


def decode_reason(exc: DecodeError) -> str:
    """The ``reason`` of a decode failure: the reference's text for a length mismatch, our
    message otherwise (always prefixed ``"decode: "`` like the reference)."""
    if isinstance(exc, LengthMismatchError):
        return "decode: payload_size/content_length/args_length mismatch"
    return f"decode: {exc.message}"


@dataclass(frozen=True)
class GtpAcceptResult:
    """Outcome of :meth:`GtpClient.accept`: ``status`` is ``new``, ``duplicate`` or ``error``."""

    status: str
    sender: Optional[int] = None
    message_id: Optional[int] = None
    text: Optional[str] = None
    reason: Optional[str] = None
    message: Optional[GtpMessage] = None
    code: Optional[int] = None


class GtpClient(EpochScopedDedup):
    """Group Text Protocol client (idempotency by ``(sender_id, message_id)``)."""

    __slots__ = ()

    @classmethod
    def create(cls) -> "GtpClient":
        """A fresh client."""
        return cls()

    @raises_builtin(OSError)
    def send(self, node: Any, mls: Any, target: int, message_id: int, text: str,
             codec: Any = PayloadCodec.CBOR) -> OutboundFrame:
        """Send *text* as message *message_id* to *target* (0 = everyone). Errors are also
        ``OSError`` instances, as the binding's."""
        self._check_open()
        if codec == 0 and type(message_id) is int and 0 <= message_id <= 0xFFFFFFFFFFFFFFFF \
                and type(text) is str:
            self.sync_epoch(node.epoch)
            return node.send_payload(mls, target, StreamType.TEXT,
                                     node.member_stream_id(_TEXT_BASE), _TEXT_FLAGS,
                                     _plain_cbor(node.member_id, message_id, text),
                                     PayloadCodec.CBOR)
        if not isinstance(text, str):
            raise UsageError("text must be str", vid="GTP-CLIENT-TEXT")
        return self.send_message(node, mls, target,
                                 GtpMessage.plain(node.member_id, message_id, text), codec)

    @raises_builtin(OSError)
    def send_message(self, node: Any, mls: Any, target: int, message: GtpMessage,
                     codec: Any = PayloadCodec.CBOR) -> OutboundFrame:
        """Send a prepared :class:`GtpMessage` (any content type / flags) in *codec*."""
        self._check_open()
        c = resolve_codec(codec)
        self.sync_epoch(node.epoch)
        return node.send_payload(mls, target, StreamType.TEXT, node.member_stream_id(_TEXT_BASE),
                                 _TEXT_FLAGS, message.to_bytes(c), c)

    def accept(self, plaintext: bytes, current_epoch: Optional[int] = None,
               codec: Any = PayloadCodec.CBOR) -> GtpAcceptResult:
        """Decode a delivered plaintext (``codec`` = the event's ``codec``) and check it against
        the seen-set of *current_epoch* (``None``: keep the current set, as the pre-1.5 binding
        whose ``accept`` took no epoch)."""
        if self._closed:
            return GtpAcceptResult("error", reason="client closed")
        if current_epoch is not None and current_epoch != self._epoch:
            self.sync_epoch(current_epoch)
        try:  # the canonical CBOR form takes payload_codec's one-step path
            m = pc_decode(GtpMessage, plaintext, codec)
        except DecodeError as exc:
            return GtpAcceptResult("error", reason=decode_reason(exc),
                                   code=int(ErrorCode.GTP_BAD_LENGTH)
                                   if isinstance(exc, LengthMismatchError) else None)
        try:
            text = m.content.decode("utf-8")
        except UnicodeDecodeError:
            text = "<binary>"
        sender, mid = m.sender_id, m.message_id
        res = _new(GtpAcceptResult)
        if self._seen.insert((sender, mid)):
            _setattr(res, "__dict__", {"status": "new", "sender": sender, "message_id": mid,
                                       "text": text, "reason": None, "message": m, "code": None})
        else:
            _setattr(res, "__dict__", {"status": "duplicate", "sender": sender,
                                       "message_id": mid, "text": text, "reason": None,
                                       "message": m,
                                       "code": int(ErrorCode.GTP_DUPLICATE_MESSAGE)})
        return res

    def accept_many(self, plaintexts: Iterable[bytes], epochs: Iterable[Optional[int]],
                    codecs: Iterable[Any],
                    values: Optional[Iterable[Optional[tuple]]] = None) -> List[Verdict]:
        """:meth:`accept` over a run of delivered payloads, in order (the capture's batch path):
        item *k* gets the verdict ``accept(plaintexts[k], epochs[k], codecs[k])`` would give
        after the items before it — same seen-set, same epoch reset, same decoder. Returns
        ``(status, values, reason)`` per item: ``values`` are the message's fields in
        :data:`GTP_FIELDS` order (``None`` on ``error``), no result objects are built.

        The canonical CBOR form (what every sender writes) is read by the very matcher
        :func:`~gbp_lab.core.payload_codec.decode` tries first and judged by the same
        seen-set insert; anything else (other codecs and forms, bad bytes, a closed client)
        goes through :meth:`accept` itself.

        ``values`` (optional, one entry per item): what that matcher already answered for the
        plaintext — :data:`GTP_FIELDS`-ordered values, or ``None`` (then the item is matched
        here as without ``values``): a reader that decoded the payload once (the capture's read
        loop, :attr:`gbp_lab.capture.readpath.ReadChunk.values`) hands the values on instead of
        matching twice. They are used only where the matcher would run (open client, ``bytes``,
        CBOR codec)."""
        out: List[Verdict] = []
        append = out.append
        match = _GTP_VALUES
        cbor = PayloadCodec.CBOR
        seen = self._seen
        for pt, ep, codec, vals in zip(plaintexts, epochs, codecs,
                                       repeat(None) if values is None else values):
            if not self._closed and type(pt) is bytes and (
                    codec is cbor or (type(codec) is int and codec == 0)):
                if vals is None:
                    vals = match(pt)
            else:
                vals = None
            if vals is None:
                r = self.accept(pt, ep, codec)  # the one full path
                m = r.message
                append((r.status, None if m is None else tuple(getattr(m, a) for a in GTP_FIELDS),
                        r.reason))
                continue
            if ep is not None and ep != self._epoch:
                self.sync_epoch(ep)
            append(("new" if seen.insert((vals[_SID], vals[_MID])) else "duplicate", vals, None))
        return out

    def close(self) -> None:
        """Refuse further use (idempotent; nothing native to release): ``send`` then raises
        :class:`~gbp_lab.core.errors.ClosedError` (an ``OSError``) and ``accept`` returns an
        ``error`` result, as the binding's."""
        self._closed = True

    def __enter__(self) -> "GtpClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
