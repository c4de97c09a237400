"""Row tuples → typed DataFrame columns, in bulk: the one way the capture tables are built.

The readers and table builders collect plain Python rows (tuples, or one flat cell list) and turn
them into columns once: the rows become one 2-D object array in a single C call (far cheaper than
transposing with ``zip(*rows)``), then every column gets its dtype —

* nullable integers (``Int64``/``UInt64``): one ``astype`` when nothing is missing, else pandas'
  element-wise path;
* floats (``time`` …): missing values as NaN;
* booleans;
* text: pandas' ``str`` dtype (Arrow-backed since pandas 3) from one ``pyarrow.array`` call —
  several times faster than pandas' own inference on a million Info lines, and the same result;
  anything else (bytes, lists, mixed types, all-missing) stays an object column, as pandas
  itself would keep it.

Rows whose cells are themselves sequences (a list of frame numbers …) take the column-by-column
path (:func:`columns_of_tuples`), which gives the same dtypes.
"""
from __future__ import annotations

import math
from typing import Any, Collection, Dict, List, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["text_column", "int_column", "typed_columns", "columns_of_rows", "columns_of_tuples",
           "frame_of_rows"]

#: the dtype pandas gives a column of Python strings (``str``, Arrow-backed since pandas 3)
_STR_DTYPE = pd.Series(np.array(["a"], dtype=object)).dtype
_ARROW_TEXT = getattr(_STR_DTYPE, "storage", None) == "pyarrow"


def text_column(col: np.ndarray):
    """An object column as pandas would store it: strings (and missing values) as the ``str``
    dtype, built with one ``pyarrow.array`` call; anything else (bytes, mixed types, an
    all-missing column) as a contiguous object array, for pandas to infer as usual."""
    col = np.ascontiguousarray(col)  # Arrow walks a strided object array far more slowly
    if _ARROW_TEXT and len(col):
        try:
            arr = pa.array(col, from_pandas=True)  # inferred: only all-text columns are strings
        except (pa.ArrowException, TypeError, ValueError, UnicodeError):
            arr = None
        if arr is not None and arr.type in (pa.string(), pa.large_string()):
            return pd.array(arr.cast(pa.large_string()), dtype=_STR_DTYPE)
    return col


def int_column(col: np.ndarray, dtype: str):
    """A nullable integer array (``Int64``/``UInt64``) from an object column: one ``astype``
    when no value is missing (``astype`` refuses a None), else pandas' element-wise path."""
    try:
        vals = col.astype(np.uint64 if dtype == "UInt64" else np.int64)
    except (TypeError, OverflowError, ValueError):
        return pd.array(col.tolist(), dtype=dtype)
    return pd.arrays.IntegerArray(vals, np.zeros(len(col), dtype=bool))


def typed_columns(table: np.ndarray, order: Sequence[str], ints: Mapping[str, str],
                  floats: Collection[str] = ("time",), bools: Collection[str] = ()) -> Dict[str, Any]:
    """A 2-D object array (one row per table row, one column per name in *order*) → typed
    column arrays by name (*bools* first, then *ints*: name → nullable integer dtype, then
    *floats*, the rest as text or objects)."""
    data: Dict[str, Any] = {}
    for i, c in enumerate(order):
        col = table[:, i]
        dt = ints.get(c)
        if c in bools:
            data[c] = col.astype(bool)
        elif dt is not None:
            data[c] = int_column(col, dt)
        elif c in floats:
            missing = col == None  # noqa: E711 - elementwise on an object array
            if missing.any():
                col = np.where(missing, math.nan, col)
            data[c] = col.astype(np.float64)
        else:
            data[c] = text_column(col)
    return data


def columns_of_rows(rows: List[tuple], order: Sequence[str], ints: Mapping[str, str],
                    floats: Collection[str] = ("time",), bools: Collection[str] = ()) -> Dict[str, Any]:
    """Row tuples → typed column arrays (see the module docstring)."""
    n = len(rows)
    table = None
    if n:
        try:
            table = np.array(rows, dtype=object)
        except ValueError:  # cells holding sequences of different lengths
            table = None
    if table is None or table.shape != (n, len(order)):
        return columns_of_tuples(rows, order, ints, floats, bools)
    return typed_columns(table, order, ints, floats, bools)


def columns_of_tuples(rows: List[tuple], order: Sequence[str], ints: Mapping[str, str],
                      floats: Collection[str] = ("time",), bools: Collection[str] = ()) -> Dict[str, Any]:
    """:func:`columns_of_rows` for rows that ``np.array`` cannot stack (cells that are
    sequences themselves) and for no rows at all: the 2-D object array is filled cell by cell,
    then typed as usual (:func:`typed_columns`)."""
    table = np.empty((len(rows), len(order)), dtype=object)
    for r, row in enumerate(rows):
        for c, x in enumerate(row):  # one cell at a time: a list cell stays one object
            table[r, c] = x
    return typed_columns(table, order, ints, floats, bools)


def frame_of_rows(rows: List[tuple], order: Sequence[str], ints: Mapping[str, str],
                  floats: Collection[str] = ("time",), bools: Collection[str] = ()) -> pd.DataFrame:
    """Row tuples → a DataFrame with the columns of *order*."""
    return pd.DataFrame(columns_of_rows(rows, order, ints, floats, bools), columns=list(order))
