"""Row tuples → typed DataFrame columns, in bulk: the one way the capture tables are built.

The readers and table builders collect plain Python rows (tuples, or one flat cell list) and turn
them into columns once: the rows become one 2-D object array in a single C call (far cheaper than
transposing with ``zip(*rows)``), then every column gets its dtype —

* nullable integers (``Int64``/``UInt64``): one ``astype`` when nothing is missing, else pandas'
  element-wise path;
* times (``time``, ``first_time`` …): ``datetime64[ns, UTC]`` from integer nanoseconds since
  the epoch (pcapng timestamps kept exactly; NaN / None / ``iNaT`` → ``NaT``);
* floats: missing values as NaN;
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

import contextlib
import gc
import math
from typing import Any, Collection, Dict, Iterator, List, Mapping, Sequence, Tuple

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["gc_paused", "text_column", "int_column", "typed_columns", "columns_of_rows", "columns_of_tuples",
           "frame_of_rows", "RowLayout", "INT64", "UINT64", "FLOAT", "BOOL", "TEXT", "TIME",
           "TIME_COLUMNS", "time_column", "time_cells", "rel_seconds", "rel_time_of",
           "with_rel_time"]

#: the column dtypes a :class:`RowLayout` knows (text: pandas' ``str`` dtype or objects;
#: TIME: ``datetime64[ns, UTC]`` from integer nanoseconds)
INT64, UINT64, FLOAT, BOOL, TEXT, TIME = "Int64", "UInt64", "float", "bool", "text", "time"
#: the column names typed as TIME by default (every table's timestamps)
TIME_COLUMNS = ("time", "first_time", "last_time", "prepare_time", "execute_time")
_NAT = np.iinfo(np.int64).min  # pandas' iNaT
_MAX = np.iinfo(np.int64).max


def representable_ns(v: "int | float | np.integer") -> bool:
    """Whether nanoseconds *v* fit a ``datetime64[ns]`` time cell (else the cell is missing: a
    corrupted timestamp; NaN, no timestamp, fits nothing)."""
    return bool(_NAT < v <= _MAX)


def _ns_cell(v) -> int:
    """One time cell → integer nanoseconds (``iNaT``: missing, or outside ``datetime64[ns]``'s
    range — a corrupted timestamp)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v) if representable_ns(v) else _NAT
    if isinstance(v, (pd.Timestamp, np.datetime64)) or hasattr(v, "tzinfo"):
        ts = pd.Timestamp(v)
        return _NAT if ts is pd.NaT else int(ts.value)
    return _NAT  # None, NaN, anything else


def time_column(col):
    """Integer nanoseconds since the epoch (NaN / None missing; ``pd.Timestamp`` cells too;
    values outside the ``datetime64[ns]`` range → ``NaT``) → a ``datetime64[ns, UTC]`` array,
    exact."""
    col = np.asarray(col, dtype=object)
    ns = None
    if not any(type(v) is float for v in col[:1]):  # the common case: all plain ints
        try:
            ns = col.astype(np.int64)
        except (TypeError, ValueError, OverflowError):
            ns = None
        if ns is not None and (ns == _NAT).any():
            ns = None
    if ns is None:
        ns = np.fromiter((_ns_cell(v) for v in col), dtype=np.int64, count=len(col))
    return pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC").array


def time_cells(times) -> List[Any]:
    """A time column (``datetime64``) → Python cells for row tuples: integer nanoseconds,
    NaN where missing (comparisons with NaN are false, as with float seconds)."""
    ns = np.asarray(pd.Series(times).array.asi8 if len(times) else np.zeros(0, np.int64))
    cells: List[Any] = ns.tolist()
    if (ns == _NAT).any():
        cells = [math.nan if v == _NAT else v for v in cells]
    return cells


def rel_seconds(times, t0) -> np.ndarray:
    """Seconds (float) of a time column since ``t0`` (integer nanoseconds, a Timestamp, or
    None/NaN: the column's own first value); NaN where the time is missing."""
    ns = pd.Series(times).array.asi8 if len(times) else np.zeros(0, np.int64)
    if isinstance(t0, pd.Timestamp):
        t0 = int(t0.value)
    if isinstance(t0, (int, np.integer)) and not representable_ns(t0):
        t0 = None  # a corrupted first timestamp: the column's own first time instead
    if t0 is None or (isinstance(t0, float) and t0 != t0) or t0 is pd.NaT:
        ok = ns[ns != _NAT]
        t0 = int(ok.min()) if len(ok) else 0
    rel = (ns - np.int64(t0)).astype(np.float64) / 1e9
    rel[ns == _NAT] = math.nan
    return rel


def rel_time_of(df: pd.DataFrame) -> np.ndarray:
    """A table's ``rel_time`` (seconds since the first packet) as floats: its own column, else
    seconds since its first ``time`` (:func:`rel_seconds`)."""
    if "rel_time" in df.columns:
        return df["rel_time"].to_numpy(dtype=np.float64, na_value=np.nan)
    return rel_seconds(df["time"], None)


def with_rel_time(df: pd.DataFrame, t0) -> pd.DataFrame:
    """*df* with a ``rel_time`` column (seconds since ``t0``, :func:`rel_seconds`) as its last
    column — after every column list a table promised (in place; returned). Tables without
    ``time`` are returned unchanged."""
    if "time" in df.columns and "rel_time" not in df.columns:
        df["rel_time"] = rel_seconds(df["time"], t0)
    return df


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a table is built (restored, whatever happens):
    the row tuples and index entries a table builder makes (one or more per row, alive until the
    DataFrame exists) would otherwise trigger collections that walk them again and again; they
    make no cycles and are freed by reference counting. Cyclic garbage made meanwhile is
    collected after, as usual."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


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
                  floats: Collection[str] = (), bools: Collection[str] = (),
                  times: Collection[str] = TIME_COLUMNS) -> Dict[str, Any]:
    """A 2-D object array (one row per table row, one column per name in *order*) → typed
    column arrays by name (*bools* first, then *ints*: name → nullable integer dtype, then
    *times* (:func:`time_column`), *floats*, the rest as text or objects)."""
    data: Dict[str, Any] = {}
    for i, c in enumerate(order):
        col = table[:, i]
        dt = ints.get(c)
        if c in bools:
            data[c] = col.astype(bool)
        elif dt is not None:
            data[c] = int_column(col, dt)
        elif c in times:
            data[c] = time_column(col)
        elif c in floats:
            missing = col == None  # noqa: E711 - elementwise on an object array
            if missing.any():
                col = np.where(missing, math.nan, col)
            data[c] = col.astype(np.float64)
        else:
            data[c] = text_column(col)
    return data


def columns_of_rows(rows: List[tuple], order: Sequence[str], ints: Mapping[str, str],
                    floats: Collection[str] = (), bools: Collection[str] = (),
                    times: Collection[str] = TIME_COLUMNS) -> Dict[str, Any]:
    """Row tuples → typed column arrays (see the module docstring)."""
    n = len(rows)
    table = None
    if n:
        try:
            table = np.array(rows, dtype=object)
        except ValueError:  # cells holding sequences of different lengths
            table = None
    if table is None or table.shape != (n, len(order)):
        return columns_of_tuples(rows, order, ints, floats, bools, times)
    return typed_columns(table, order, ints, floats, bools, times)


def columns_of_tuples(rows: List[tuple], order: Sequence[str], ints: Mapping[str, str],
                      floats: Collection[str] = (), bools: Collection[str] = (),
                      times: Collection[str] = TIME_COLUMNS) -> Dict[str, Any]:
    """:func:`columns_of_rows` for rows that ``np.array`` cannot stack (cells that are
    sequences themselves) and for no rows at all: the 2-D object array is filled cell by cell,
    then typed as usual (:func:`typed_columns`)."""
    table = np.empty((len(rows), len(order)), dtype=object)
    for r, row in enumerate(rows):
        for c, x in enumerate(row):  # one cell at a time: a list cell stays one object
            table[r, c] = x
    return typed_columns(table, order, ints, floats, bools, times)


def frame_of_rows(rows: List[tuple], order: Sequence[str], ints: Mapping[str, str],
                  floats: Collection[str] = (), bools: Collection[str] = (),
                  times: Collection[str] = TIME_COLUMNS) -> pd.DataFrame:
    """Row tuples → a DataFrame with the columns of *order*."""
    return pd.DataFrame(columns_of_rows(rows, order, ints, floats, bools, times),
                        columns=list(order))


def frame_of_columns(columns: Sequence[Sequence[Any]], order: Sequence[str], ints: Mapping[str, str],
                     floats: Collection[str] = (), bools: Collection[str] = (),
                     times: Collection[str] = TIME_COLUMNS) -> pd.DataFrame:
    """Columns (equal-length sequences of cells, in *order*) → a DataFrame typed as
    :func:`frame_of_rows` types row tuples: one 2-D object array filled column by column."""
    table = np.empty((len(columns[0]), len(order)), dtype=object)
    for j, column in enumerate(columns):
        table[:, j] = column
    return pd.DataFrame(typed_columns(table, order, ints, floats, bools, times), columns=list(order))


class RowLayout:
    """The row of a table: its column names in order, one dtype per column (:data:`INT64`,
    :data:`UINT64`, :data:`FLOAT`, :data:`BOOL`, :data:`TIME` or :data:`TEXT`).

    The readers write rows (tuples, or one flat cell list) in this order; :meth:`frame` and
    :meth:`columns_of_cells` turn them into typed columns (:func:`typed_columns`). ``names``,
    ``ints`` (name → nullable integer dtype), ``floats`` and ``bools`` are what the column
    functions of this module take; :meth:`index` gives a column's position (for the owner's
    hot loops)."""

    __slots__ = ("names", "dtypes", "ints", "floats", "bools", "times", "width", "_pos")

    def __init__(self, spec: Sequence[Tuple[str, str]]) -> None:
        self.names: Tuple[str, ...] = tuple(n for n, _ in spec)
        self.dtypes: Dict[str, str] = dict(spec)
        if len(self.dtypes) != len(self.names):
            raise ValueError("RowLayout: duplicate column name")
        bad = {d for d in self.dtypes.values()} - {INT64, UINT64, FLOAT, BOOL, TEXT, TIME}
        if bad:
            raise ValueError(f"RowLayout: unknown dtype(s) {sorted(bad)}")
        self.ints: Dict[str, str] = {n: d for n, d in spec if d in (INT64, UINT64)}
        self.floats: Tuple[str, ...] = tuple(n for n, d in spec if d == FLOAT)
        self.bools: Tuple[str, ...] = tuple(n for n, d in spec if d == BOOL)
        self.times: Tuple[str, ...] = tuple(n for n, d in spec if d == TIME)
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
        return columns_of_rows(rows, self.names, self.ints, self.floats, self.bools, self.times)

    def columns_of_cells(self, cells: List[Any]) -> Dict[str, Any]:
        """One flat list of cells (rows one after the other) → typed column arrays by name: one
        ``fromiter`` makes the 2-D object array."""
        if not cells:
            return columns_of_tuples([], self.names, self.ints, self.floats, self.bools, self.times)
        table = np.fromiter(cells, dtype=object, count=len(cells))
        return typed_columns(table.reshape(-1, self.width), self.names, self.ints, self.floats,
                             self.bools)

    def frame(self, rows: List[tuple]) -> pd.DataFrame:
        """Row tuples → a DataFrame with these columns (:func:`frame_of_rows`)."""
        return frame_of_rows(rows, self.names, self.ints, self.floats, self.bools, self.times)
