"""A tqdm progress bar counting a capture's bytes, for the bulk readers
(:func:`~.model.read_capture`, :func:`~.stream.iter_capture`).

The read loop reports every packet tuple (:meth:`~.pcapfile.CaptureReader.iter_tuples`, data
last) to :meth:`ByteProgress.on_raw`; the bar is updated once per MiB read (a record header is
counted as 16 bytes: close enough for a bar), and :meth:`ByteProgress.close` fills it to the file
size. ``tqdm.auto`` picks the notebook widget or the terminal bar.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional

__all__ = ["ByteProgress", "size_of", "PROGRESS_MIN_BYTES"]

#: :func:`~.model.read_capture` shows a bar for files of at least this size (4 MiB)
PROGRESS_MIN_BYTES = 4 << 20
_STEP = 1 << 20
_OVERHEAD = 16


def size_of(source) -> Optional[int]:
    """The byte size of a capture path or in-memory capture; ``None`` for a file object."""
    if isinstance(source, (str, os.PathLike)):
        try:
            return os.path.getsize(source)
        except OSError:
            return None
    if isinstance(source, (bytes, bytearray, memoryview)):
        return len(source)
    return None


class ByteProgress:
    """A bytes bar over one capture read, shown when ``enabled`` and the capture has at least
    ``min_bytes`` (a source of unknown size counts as large enough only when ``min_bytes`` is
    0). :attr:`on_raw` is the read loop's per-packet hook (``None`` when no bar is shown, so the
    loop pays nothing)."""

    def __init__(self, source, *, enabled: bool = True, min_bytes: int = 0,
                 desc: str = "capture") -> None:
        self.total = size_of(source)
        self.bar: Any = None
        self._seen = 0
        self._shown = 0
        big = min_bytes <= 0 or (self.total is not None and self.total >= min_bytes)
        if enabled and big:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, unit="B", unit_scale=True, desc=desc, leave=False)
        self.on_raw: Optional[Callable[[tuple], None]] = self._on_raw if self.bar else None

    def _on_raw(self, t: tuple) -> None:
        self._seen += len(t[7]) + _OVERHEAD
        if self._seen - self._shown >= _STEP:
            self.bar.update(self._seen - self._shown)
            self._shown = self._seen

    def close(self) -> None:
        """Fill the bar to the file size and close it (idempotent)."""
        if self.bar is not None:
            if self.total is not None:
                self.bar.update(max(0, self.total - self.bar.n))
            self.bar.close()
            self.bar = None
