"""Every teaching notebook runs top to bottom (outputs are stripped in git), its hidden ``check``
cells included (tests/test_notebook_lessons.py: where the checks live); and each notebook's
checks still fail when a value they check changes (:data:`MUTATIONS`)."""
import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))

#: per notebook: (a line of one of its check cells, a statement changing a value that check reads).
#: A probe cell right after that check cell runs it again — as the notebook left it (it passes),
#: then in a copy of the namespace with the value changed (it must raise AssertionError): the
#: checks are live, not decoration. The copy leaves the rest of the notebook unchanged.
MUTATIONS = {
    "00_start_here.ipynb": ("assert list(packets.columns) ==", "packets = packets.drop(columns=['info'])"),
    "01_quick_start.ipynb": ("assert received ==", "received = {**received, PayloadCodec.CBOR: 'hello'}"),
    "02_dissecting_a_capture.ipynb": ("assert members == [1, 2, 3]", "members = [1, 2]"),
    "03_mls_epochs.ipynb": ("assert len(staged) == 5", "staged = staged[:-1] + [(4, 'carol', 'proposal')]"),
    "04_control_plane.ipynb": ("assert staged == {", "staged = {'bob': 'commit', 'carol': 'proposal'}"),
    "05_audio_jitter_sframe.ipynb": ("assert replay.startswith", "replay = 'accepted'"),
    "06_security_analysis.ipynb": ("assert delivered ==", "delivered = ['error']"),
    "07_interop_gbp_stack.ipynb": ("assert len(same) == 3", "same = {**same, 'exporter_secret': False}"),
    "08_live.ipynb": ("assert exit_code == 0", "exit_code = 1"),
    "09_quic.ipynb": ("assert quic_frames == tcp_frames", "quic_frames = quic_frames[1:]"),
}
PROBE = """\
_check = {check!r}
exec(_check, dict(globals()))              # as the notebook left it: passes
_changed = dict(globals())
exec({mutation!r}, _changed)
try:
    exec(_check, _changed)
except AssertionError:
    print({marker!r})
else:
    raise RuntimeError("the check did not notice: " + {mutation!r})
"""


def add_probe(nb, name: str) -> str:
    """Insert the :data:`MUTATIONS` probe cell of notebook ``name`` after its check cell;
    returns what the probe prints when the check caught the change."""
    line, mutation = MUTATIONS[name]
    (at,) = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and line in c.source
             and "check" in c.metadata.get("tags", [])]
    marker = f"check caught the change: {mutation}"
    probe = PROBE.format(check=nb.cells[at].source, mutation=mutation, marker=marker)
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(probe))
    return marker


def test_notebooks_exist():
    assert NOTEBOOKS, "no notebooks found"
    assert any(p.endswith("08_live.ipynb") for p in NOTEBOOKS)
    assert sorted(MUTATIONS) == [os.path.basename(p) for p in NOTEBOOKS], "every notebook has a probe"


def test_readme_lists_every_notebook():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    missing = [os.path.basename(p) for p in NOTEBOOKS
               if f"(notebooks/{os.path.basename(p)})" not in readme]
    assert not missing, f"README's notebook list misses {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_is_stripped_and_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{os.path.basename(path)}: outputs must be stripped in git"
    marker = add_probe(nb, os.path.basename(path))
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on any failing cell
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert ran and all(c.get("execution_count") for c in ran)
    errors = [o for c in ran for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert marker in "".join(o.get("text", "") for c in ran for o in c.get("outputs", []))
