"""GTP resync helpers: a bounded message log and a per-sender high-water mark.

Mirrors ``gbp_stack.MessageHistory`` / ``Watermark`` 1.9.1 (crates/gtp/src/history.rs): the
history keeps the last ``capacity`` messages in arrival order, deduplicated on
``(sender_id, message_id)``; :meth:`MessageHistory.since` yields what a peer with a given
:class:`Watermark` has not seen (gtp_rfc.md, resync).  Quirk kept on purpose: a watermark
starts at an implicit 0, so observing ``message_id`` 0 records nothing.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Deque, Dict, Iterator, Optional, Set, Tuple

from ..errors import UsageError

__all__ = ["MessageEntry", "MessageHistory", "Watermark"]


@dataclass(frozen=True)
class MessageEntry:
    """One remembered GTP message."""

    sender_id: int
    message_id: int
    text: str


class Watermark:
    """Highest accepted ``message_id`` per sender."""

    __slots__ = ("_marks",)

    def __init__(self) -> None:
        self._marks: Dict[int, int] = {}

    def observe(self, sender_id: int, message_id: int) -> None:
        """Raise ``sender_id``'s mark to ``message_id`` if higher (marks start at 0)."""
        if message_id > self._marks.get(sender_id, 0):
            self._marks[sender_id] = message_id

    def last_seen(self, sender_id: int) -> Optional[int]:
        """The mark for ``sender_id``, ``None`` if nothing was recorded."""
        return self._marks.get(sender_id)

    def snapshot(self) -> Dict[int, int]:
        """A copy of all marks."""
        return dict(self._marks)

    def __len__(self) -> int:
        return len(self._marks)

    def clear(self) -> None:
        self._marks.clear()


class MessageHistory:
    """Ring buffer of the last ``capacity`` messages, unique on ``(sender_id, message_id)``."""

    __slots__ = ("_capacity", "_log", "_keys")

    def __init__(self, capacity: int) -> None:
        if not isinstance(capacity, int) or capacity <= 0:
            raise UsageError("capacity must be > 0", vid="GTP-HISTORY-CAPACITY")
        self._capacity = capacity
        self._log: Deque[MessageEntry] = deque()
        self._keys: Set[Tuple[int, int]] = set()

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return len(self._log)

    def push(self, entry: MessageEntry) -> bool:
        """Remember ``entry``; ``False`` if that (sender, message) is already held."""
        key = (entry.sender_id, entry.message_id)
        if key in self._keys:
            return False
        if len(self._log) == self._capacity:
            old = self._log.popleft()
            self._keys.discard((old.sender_id, old.message_id))
        self._log.append(entry)
        self._keys.add(key)
        return True

    def contains(self, sender_id: int, message_id: int) -> bool:
        return (sender_id, message_id) in self._keys

    def since(self, watermark: Watermark) -> Iterator[MessageEntry]:
        """Messages above ``watermark`` (all of a sender it has no mark for), oldest first."""
        for entry in list(self._log):
            mark = watermark.last_seen(entry.sender_id)
            if mark is None or entry.message_id > mark:
                yield entry

    def since_for_sender(self, sender_id: int, since_message_id: int) -> Iterator[MessageEntry]:
        """Messages of one sender with ``message_id > since_message_id``, oldest first."""
        for entry in list(self._log):
            if entry.sender_id == sender_id and entry.message_id > since_message_id:
                yield entry

    def clear(self) -> None:
        self._log.clear()
        self._keys.clear()
