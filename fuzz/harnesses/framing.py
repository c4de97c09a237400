"""``RecordReader`` / ``FrameReader`` (gbp_rfc §3: ``u32-LE length ‖ bytes``) fed arbitrary chunkings.

Input: ``mode`` byte (bit 0: FrameReader, bit 1: lenient frames, bit 2: small ``max_record``),
``n`` byte, ``n`` chunk-size bytes, then the stream. Oracle: the items are the same whatever the
chunking (compared with one feed of the whole stream), and the buffer never holds more than one
partial record (≤ 4 + ``max_record`` bytes).
"""
from __future__ import annotations

from typing import Any, List, Tuple

from gbp_lab.core import FrameReader, RecordReader

from ..common import Cursor, Limits, chunks

LIMITS = Limits()
MAX_LEN = 8192


def _key(item: Any) -> Tuple[Any, ...]:
    if isinstance(item, Exception):
        return ("error", type(item).__name__, getattr(item, "vid", None), getattr(item, "where", None),
                getattr(item, "offset", None), getattr(item, "record", None))
    return ("item", item)


def _run(mode: int, pieces: List[bytes]) -> List[Tuple[Any, ...]]:
    max_record = 64 if mode & 4 else 1 << 20
    reader: RecordReader
    if mode & 1:
        reader = FrameReader(strict=not mode & 2, max_record=max_record)
    else:
        reader = RecordReader(max_record=max_record)
    out: List[Tuple[Any, ...]] = []
    for piece in pieces:
        out.extend(_key(i) for i in reader.feed(piece))
        assert reader.buffered <= 4 + max_record, "reader buffers more than one record"
    out.extend(_key(i) for i in reader.close())
    return out


def check(data: bytes) -> None:
    cur = Cursor(data)
    mode = cur.u8()
    pattern = cur.take(cur.u8() % 16)
    stream = cur.rest()
    whole = _run(mode, [stream])
    cut = _run(mode, list(chunks(pattern, stream)))
    assert cut == whole, "items depend on how the stream was chunked"
