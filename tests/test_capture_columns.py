"""The capture tables' bulk column building (gbp_lab.capture.columns, used by the model): the fast ways — one flat
cell list turned into a 2-D array, integer columns by ``astype``, text columns by one
``pyarrow.array`` call — give exactly the table the plain ways give (row tuples transposed in
Python, pandas' own inference), on any mix of values, missing ones included."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from gbp_lab.capture.columns import columns_of_tuples, text_column
from gbp_lab.capture.readpath import FRAME_COLUMNS, FRAME_ROW, frames_table as _frames_table

# the read loop's row layout (names, dtypes) as the column functions take it
_ROW_COLUMNS, _INT_COLUMNS = FRAME_ROW.names, FRAME_ROW.ints
_FLOATS, _BOOLS = FRAME_ROW.floats, FRAME_ROW.bools

CELLS = st.one_of(st.none(), st.text(max_size=12), st.binary(max_size=6),
                  st.integers(-3, 2**40), st.just(math.nan), st.booleans())


def _obj(values) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


@settings(max_examples=300, deadline=None)
@given(st.lists(CELLS, max_size=8))
def test_text_column_is_what_pandas_infers(values):
    arr = _obj(values)
    expected = pd.DataFrame({"c": arr.copy()})["c"]
    got = pd.DataFrame({"c": text_column(arr)})["c"]
    assert got.dtype == expected.dtype
    pd.testing.assert_series_equal(got, expected)


def test_text_column_of_strings_is_the_str_dtype():
    got = text_column(_obj(["GTP mid=1", None, "x"]))
    assert str(pd.Series(got).dtype) == str(pd.Series(_obj(["a"])).dtype)
    assert list(pd.Series(got).isna()) == [False, True, False]


ADDR = st.sampled_from(["10.0.0.1", "10.0.0.2", "fe80::1"])
U = st.integers(0, 2**32 - 1)
INFO = st.text(max_size=20)
NS = st.integers(0, 4 * 10**18)  # packet times: integer nanoseconds since the epoch


@st.composite
def frame_rows(draw):
    """Rows as the read loop writes them (:data:`_ROW_COLUMNS`): GBP rows, and MLS rows without
    the frame fields."""
    if draw(st.booleans()):  # a GBP frame
        return (draw(NS), draw(ADDR), draw(st.integers(0, 65535)), draw(ADDR),
                7878, draw(st.sampled_from(["00" * 16, "ab" * 16])), draw(st.integers(0, 2**64 - 1)),
                draw(U), draw(st.integers(0, 255)), draw(U), draw(st.integers(0, 65535)),
                draw(U), draw(U), draw(st.integers(0, 255)), draw(st.booleans()), draw(INFO),
                draw(st.one_of(st.none(), INFO)), draw(st.integers(0, 50)),
                draw(st.sampled_from(["tcp", "udp"])), draw(U), draw(U))
    return (draw(NS), draw(ADDR), 40000, draw(ADDR), 7878, None, None, None, None,
            None, None, None, draw(U), None, False, draw(INFO), None, 1, "tcp", draw(U), draw(U))


def _norm(v):
    if isinstance(v, pd.Timestamp):  # time: datetime64[ns, UTC], exact to the nanosecond
        return v.value
    return None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v


@settings(max_examples=150, deadline=None)
@given(st.lists(frame_rows(), max_size=12))
def test_frames_table_from_flat_cells_equals_the_rows(rows):
    table = _frames_table([c for r in rows for c in r])
    assert list(table.columns) == FRAME_COLUMNS and len(table) == len(rows)
    for i, c in enumerate(_ROW_COLUMNS):
        if c == "pf":
            continue
        assert [_norm(v) for v in table[c].tolist()] == [r[i] for r in rows], c
        if c in _INT_COLUMNS:
            assert str(table[c].dtype) == _INT_COLUMNS[c], c
    if rows:  # text columns get the dtype pandas itself infers from the plain values
        for c in ("src", "group_id", "info", "error", "transport"):
            plain = _obj([r[_ROW_COLUMNS.index(c)] for r in rows])
            assert table[c].dtype == pd.DataFrame({c: plain})[c].dtype, c
        # rows that cannot be stacked in one call (cell by cell) give the same table
        slow = columns_of_tuples(rows, _ROW_COLUMNS, _INT_COLUMNS, _FLOATS, _BOOLS)
        for c, col in slow.items():
            if c != "pf":
                assert [_norm(v) for v in pd.Series(col).tolist()] == \
                    [_norm(v) for v in table[c].tolist()] and pd.Series(col).dtype == table[c].dtype, c
    framed = [r[8] is not None for r in rows]
    names = {0: "control", 1: "audio", 2: "text", 3: "signal"}
    assert [_norm(v) for v in table["stream_name"]] == \
        [names.get(r[8], f"unknown({r[8]})") if f else None for r, f in zip(rows, framed)]
    assert list(table["protocol"]) == [
        {0: "GBP", 1: "GAP", 2: "GTP", 3: "GSP"}.get(r[8], "GBP") if f else "MLS"
        for r, f in zip(rows, framed)]
    assert [_norm(v) for v in table["sender"]] == [r[9] // 100 if f else None
                                                    for r, f in zip(rows, framed)]
