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

A table's row is described once, by a :class:`RowLayout` (column names in order, one dtype each):
the readers and table builders name their rows by it instead of keeping parallel name lists and
dtype maps.
"""
from __future__ import annotations

import math
from typing import Any, Collection, Dict, Iterator, List, Mapping, Sequence, Tuple

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["text_column", "int_column", "typed_columns", "columns_of_rows", "columns_of_tuples",
           "frame_of_rows", "RowLayout", "INT64", "UINT64", "FLOAT", "BOOL", "TEXT"]

#: the column dtypes a :class:`RowLayout` knows (text: pandas' ``str`` dtype or objects)
INT64, UINT64, FLOAT, BOOL, TEXT = "Int64", "UInt64", "float", "bool", "text"


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


class RowLayout:
    """The row of a table: its column names in order, one dtype per column (:data:`INT64`,
    :data:`UINT64`, :data:`FLOAT`, :data:`BOOL` or :data:`TEXT`).

    The readers write rows (tuples, or one flat cell list) in this order; :meth:`frame` and
    :meth:`columns_of_cells` turn them into typed columns (:func:`typed_columns`). ``names``,
    ``ints`` (name → nullable integer dtype), ``floats`` and ``bools`` are what the column
    functions of this module take; :meth:`index` gives a column's position (for the owner's
    hot loops)."""

    __slots__ = ("names", "dtypes", "ints", "floats", "bools", "width", "_pos")

    def __init__(self, spec: Sequence[Tuple[str, str]]) -> None:
        self.names: Tuple[str, ...] = tuple(n for n, _ in spec)
        self.dtypes: Dict[str, str] = dict(spec)
        if len(self.dtypes) != len(self.names):
            raise ValueError("RowLayout: duplicate column name")
        bad = {d for d in self.dtypes.values()} - {INT64, UINT64, FLOAT, BOOL, TEXT}
        if bad:
            raise ValueError(f"RowLayout: unknown dtype(s) {sorted(bad)}")
        self.ints: Dict[str, str] = {n: d for n, d in spec if d in (INT64, UINT64)}
        self.floats: Tuple[str, ...] = tuple(n for n, d in spec if d == FLOAT)
        self.bools: Tuple[str, ...] = tuple(n for n, d in spec if d == BOOL)
        self.width = len(self.names)
        self._pos = {n: i for i, n in enumerate(self.names)}

    def __repr__(self) -> str:
        return f"RowLayout({', '.join(f'{n}:{self.dtypes[n]}' for n in self.names)})"

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return self.width

    def __contains__(self, name: object) -> bool:
        return name in self._pos

    def index(self, name: str) -> int:
        """The position of column *name* in a row."""
        return self._pos[name]

    def derive(self, spec: Sequence[Tuple[str, str]], order: Sequence[str]) -> "RowLayout":
        """A layout with this one's columns plus *spec*'s, in *order* (a table whose extra
        columns are computed from the read ones)."""
        dtypes = dict(self.dtypes)
        dtypes.update(spec)
        return RowLayout([(n, dtypes[n]) for n in order])

    def columns(self, rows: List[tuple]) -> Dict[str, Any]:
        """Row tuples → typed column arrays by name (:func:`columns_of_rows`)."""
        return columns_of_rows(rows, self.names, self.ints, self.floats, self.bools)

    def columns_of_cells(self, cells: List[Any]) -> Dict[str, Any]:
        """One flat list of cells (rows one after the other) → typed column arrays by name: one
        ``fromiter`` makes the 2-D object array."""
        if not cells:
            return columns_of_tuples([], self.names, self.ints, self.floats, self.bools)
        table = np.fromiter(cells, dtype=object, count=len(cells))
        return typed_columns(table.reshape(-1, self.width), self.names, self.ints, self.floats,
                             self.bools)

    def frame(self, rows: List[tuple]) -> pd.DataFrame:
        """Row tuples → a DataFrame with these columns (:func:`frame_of_rows`)."""
        return frame_of_rows(rows, self.names, self.ints, self.floats, self.bools)
