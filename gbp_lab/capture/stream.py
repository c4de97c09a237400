"""Big captures: :func:`iter_capture` streams ``frames`` chunks in bounded memory;
:func:`read_captures` (re-exported from :mod:`.many`) reads many files as ``dask.dataframe`` tables.

Memory: the capture file is memory-mapped (:class:`~.pcapfile.CaptureReader`), the record pipeline
forgets finished flows (:meth:`~.records.RecordPipeline._sweep`), and only one chunk of rows is
alive at a time, so the peak does not grow with the number of frames in the file (tested with
``tracemalloc``). The per-row plaintexts are not kept (use :func:`~.model.read_capture` on a
smaller file for the sub-protocol tables).

Each chunk's index continues the previous one: the index is the row number the frame would have
in ``read_capture(path).frames``.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import pandas as pd

from .progress import ByteProgress
from .many import read_captures
from .readpath import ReadState, errors_table, frames_table, read_chunks

__all__ = ["iter_capture", "read_captures"]


def iter_capture(path, keylog=None, chunksize: int = 100_000, *, progress: bool = True,
                 errors: Optional[list] = None, **read_kw) -> Iterator[pd.DataFrame]:
    """Yield the ``frames`` table of a capture in DataFrames of at most ``chunksize`` rows.

    A tqdm progress bar counts the file's bytes (``progress=False`` to hide it). ``errors``, if a
    list, receives one ``errors``-table DataFrame per chunk that had defects. Other keyword
    arguments go to the reader (``ports``, ``heuristic``, ``decrypt``, ``summarize`` …).
    """
    if chunksize < 1:
        from gbp_lab.core.errors import UsageError

        raise UsageError("chunksize must be >= 1", vid="CAP-CHUNKSIZE")
    progress_bar = ByteProgress(path, enabled=progress)
    state = ReadState()

    start = 0
    try:
        for chunk in read_chunks(path, keylog, state, chunksize=chunksize,
                                 on_raw=progress_bar.on_raw,
                                 **read_kw):
            # only the rows are kept: the chunk's plaintexts / payloads / record bytes go
            # with it (bounded memory)
            if errors is not None and chunk.error_rows:
                errors.append(errors_table(chunk.error_rows, state.stats.first_time
                                           if state.stats is not None else None))
            if not chunk.frame_cells:
                continue
            df = frames_table(chunk.frame_cells, chunk.key_epochs,
                              state.stats.first_time if state.stats is not None else None,
                              chunk.quic_flows)
            df.index = pd.RangeIndex(start, start + len(df))
            start += len(df)
            yield df
    finally:
        progress_bar.close()
