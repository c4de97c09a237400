"""The shipped notebooks read as lessons (issue 21): no test code in the cells a student sees.

Every check of a notebook lives in a code cell tagged ``check`` whose source JupyterLab shows
collapsed (``metadata.jupyter.source_hidden``), right after the cell it checks. These tests read
the notebooks' JSON (no kernel): no ``assert`` in a visible cell, at least as many checks as the
notebooks had before they moved, every teaching cell ending in something to see.
``tests/test_notebooks.py`` executes the notebooks, check cells included, and proves that each
notebook's checks still fail when a value they check changes (:data:`tests.test_notebooks.MUTATIONS`).
"""
import ast
import functools
import glob
import os

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
IDS = [os.path.basename(p) for p in NOTEBOOKS]

#: ``assert`` statements per notebook: 01–08 as counted with ``ast`` before the checks moved into
#: hidden cells (the floor: a notebook may gain checks, never lose one); 00 as written
CHECK_FLOOR = {
    "00_start_here.ipynb": 11,
    "01_quick_start.ipynb": 5,
    "02_dissecting_a_capture.ipynb": 31,
    "03_mls_epochs.ipynb": 10,
    "04_control_plane.ipynb": 8,
    "05_audio_jitter_sframe.ipynb": 26,
    "06_security_analysis.ipynb": 25,
    "07_interop_gbp_stack.ipynb": 9,
    "08_live.ipynb": 2,
    "09_quic.ipynb": 14,
}
CHECK_TAG = "check"  #: plus MyST-NB's "hide-input": the docs site shows them collapsed too


def is_check(cell) -> bool:
    """A check cell: tagged ``check`` or with its source hidden (both, see the consistency test)."""
    meta = cell.get("metadata", {})
    return CHECK_TAG in meta.get("tags", []) or bool(meta.get("jupyter", {}).get("source_hidden"))


def python_of(cell) -> ast.Module:
    """The cell's source as Python (IPython's ``%magic`` / ``!shell`` lines blanked)."""
    lines = cell.source.splitlines()
    return ast.parse("\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines))


def asserts_in(cell) -> list:
    """What in a cell is test code: ``assert`` statements and ``AssertionError`` names (line numbers)."""
    return [n.lineno for n in ast.walk(python_of(cell))
            if isinstance(n, ast.Assert) or (isinstance(n, ast.Name) and n.id == "AssertionError")]


def n_asserts(cell) -> int:
    return sum(isinstance(n, ast.Assert) for n in ast.walk(python_of(cell)))


@functools.lru_cache(maxsize=None)
def code_cells(path):
    return [(i, c) for i, c in enumerate(nbformat.read(path, as_version=4).cells) if c.cell_type == "code"]


def test_every_shipped_notebook_has_a_floor():
    assert sorted(CHECK_FLOOR) == IDS, "a new notebook needs its check count in CHECK_FLOOR"


def test_the_detector_sees_test_code():
    """The detector itself: an assert (even nested), a raised AssertionError — but not a check cell."""
    visible = nbformat.v4.new_code_cell("for x in range(3):\n    assert x < 3\nprint(x)")
    raising = nbformat.v4.new_code_cell("%matplotlib inline\nraise AssertionError('no')")
    hidden = nbformat.v4.new_code_cell("assert 1", metadata={"tags": [CHECK_TAG],
                                                             "jupyter": {"source_hidden": True}})
    assert asserts_in(visible) == [2] and asserts_in(raising) == [2]
    assert is_check(hidden) and not is_check(visible) and n_asserts(hidden) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_test_code_in_a_visible_cell(path):
    found = [(i, asserts_in(c)) for i, c in code_cells(path) if not is_check(c) and asserts_in(c)]
    assert not found, f"{os.path.basename(path)}: assert in visible cells (cell, lines): {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_checks_are_tagged_hidden_named_and_follow_a_lesson(path):
    cells = code_cells(path)
    for k, (i, c) in enumerate(cells):
        if not is_check(c):
            continue
        meta = c.metadata
        assert CHECK_TAG in meta.get("tags", []) and meta.get("jupyter", {}).get("source_hidden") is True, \
            f"cell {i}: a check cell is tagged 'check' and has jupyter.source_hidden = true"
        assert c.source.startswith("# check"), f"cell {i}: a check cell says so on its first line"
        assert n_asserts(c), f"cell {i}: a check cell without a check"
        assert k and not is_check(cells[k - 1][1]), f"cell {i}: a check follows the cell it checks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_checks_not_fewer_than_before(path):
    name = os.path.basename(path)
    n = sum(n_asserts(c) for _, c in code_cells(path) if is_check(c))
    assert n >= CHECK_FLOOR[name], f"{name}: {n} checks, fewer than the {CHECK_FLOOR[name]} it had"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_a_checked_cell_ends_in_something_to_see(path):
    """The cell a check follows ends in an expression (a print, a display, a table, a plot) or in
    a loop / ``with`` / ``if`` that prints — not in an assignment or definition made only for the
    check (that belongs in the check cell)."""
    cells = code_cells(path)
    shows = (ast.Expr, ast.For, ast.While, ast.With, ast.If, ast.Try)
    bare = [i for k, (i, c) in enumerate(cells[:-1]) if is_check(cells[k + 1][1])
            and not (python_of(c).body and isinstance(python_of(c).body[-1], shows))]
    assert not bare, f"{os.path.basename(path)}: cells {bare} end in nothing to see"
