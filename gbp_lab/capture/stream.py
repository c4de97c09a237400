"""Big captures: :func:`iter_capture` streams ``frames`` chunks in bounded memory;
:func:`read_captures` (re-exported from :mod:`.many`) reads many files as ``dask.dataframe`` tables.

Memory: the capture file is memory-mapped (:class:`~.pcapfile.CaptureReader`), the record pipeline
forgets finished flows (:meth:`~.records.RecordPipeline._sweep`), and only one chunk of rows is
alive at a time, so the peak does not grow with the number of frames in the file (tested with
``tracemalloc``). The per-row plaintexts are not kept; each chunk's ``audio`` table (SFrame media
opened, :mod:`.media`) can be collected as the chunks go (``audio=[]``); for the other
sub-protocol tables use :func:`~.model.read_capture` on a smaller file.

Each chunk's index continues the previous one: the index is the row number the frame would have
in ``read_capture(path).frames``.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import pandas as pd

from gbp_lab.core.sframe import DEFAULT_LABEL

from .columns import with_rel_time
from .media import MediaState, open_media
from .progress import ByteProgress
from .many import read_captures
from .readpath import ReadState, errors_table, frames_table, read_chunks
from .tables import build_audio

__all__ = ["iter_capture", "read_captures"]


def iter_capture(path, keylog=None, chunksize: int = 100_000, *, progress: bool = True,
                 errors: Optional[list] = None, audio: Optional[list] = None,
                 sframe_label: str = DEFAULT_LABEL, **read_kw) -> Iterator[pd.DataFrame]:
    """Yield the ``frames`` table of a capture in DataFrames of at most ``chunksize`` rows.

    A tqdm progress bar counts the file's bytes (``progress=False`` to hide it). ``errors``, if a
    list, receives one ``errors``-table DataFrame per chunk that had defects. ``audio``, if a
    list, receives each chunk's ``audio`` table (GAP with the SFrame media opened with the key
    log, label ``sframe_label``: :func:`~.media.open_media`, one replay window per receiver
    across chunks; ``frame`` = the capture row), appended before the chunk is yielded: their
    concatenation is ``read_capture(path).audio`` (a text column all missing in a chunk is
    ``object`` there: ``.astype`` the whole table's dtypes); its SFrame tag failures are in ``errors``
    too. Other keyword arguments go to the reader (``ports``, ``heuristic``, ``decrypt``,
    ``summarize`` …).
    """
    if chunksize < 1:
        from gbp_lab.core.errors import UsageError

        raise UsageError("chunksize must be >= 1", vid="CAP-CHUNKSIZE")
    progress_bar = ByteProgress(path, enabled=progress)
    state = ReadState()
    media_state = MediaState(None, sframe_label) if audio is not None else None

    start = 0
    try:
        for chunk in read_chunks(path, keylog, state, chunksize=chunksize,
                                 on_raw=progress_bar.on_raw,
                                 **read_kw):
            # only the rows are kept: the chunk's plaintexts / payloads / record bytes go
            # with it (bounded memory)
            t0 = state.stats.first_time if state.stats is not None else None
            error_rows = chunk.error_rows
            df = None
            if chunk.frame_cells:
                df = frames_table(chunk.frame_cells, chunk.key_epochs, t0, chunk.quic_flows)
                if media_state is not None:
                    media_state.use(state.keys if read_kw.get("decrypt", True) else None)
                    media, media_errors = open_media(df, chunk.plaintexts, None,
                                                     state=media_state, first_row=start,
                                                     values=chunk.values)
                    au = build_audio(df, chunk.plaintexts, media)
                    au["frame"] += start
                    audio.append(with_rel_time(au, t0))  # type: ignore[union-attr]
                    error_rows = error_rows + media_errors
            if errors is not None and error_rows:
                errors.append(errors_table(error_rows, t0))
            if df is None:
                continue
            df.index = pd.RangeIndex(start, start + len(df))
            start += len(df)
            yield df
    finally:
        progress_bar.close()
