"""The official RFC 9420 test vectors (vendored, gzip) through the conformance runner.

A file whose checker exists must pass completely: no failure and no skip. A file without a
checker yet is reported as skipped (not counted as passing)."""
import glob
import os
import subprocess
import sys

import pytest

from gbp_lab.core.mls.vectors import checker_for, run_file, vector_name

HERE = os.path.dirname(__file__)
FILES = sorted(glob.glob(os.path.join(HERE, "vectors", "mls", "*.json.gz")))


def test_vendored_vectors_present():
    assert len(FILES) == 15


@pytest.mark.parametrize("path", FILES, ids=[vector_name(p) for p in FILES])
def test_vector_file(path):
    if checker_for(vector_name(path)) is None:
        pytest.skip(f"no checker for {vector_name(path)} yet")
    res = run_file(path)
    detail = "\n".join(res.failures[:5] + res.skips[:5])
    assert res.failed == 0 and res.skipped == 0, f"{res.line()}\n{detail}"
    assert res.passed > 0


def test_runner_command_line_reports_per_file_and_total(tmp_path):
    bad = tmp_path / "tree-math.json"
    bad.write_text('[{"n_leaves": 1, "n_nodes": 999, "root": 0, "left": [null], "right": [null],'
                   ' "parent": [null], "sibling": [null]}]')
    out = subprocess.run([sys.executable, "-m", "gbp_lab.core.mls.vectors", str(bad)],
                         capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    assert lines[-1].endswith("failed")
    assert lines[0].startswith("tree-math.json: ")
    if checker_for("tree-math") is not None:
        assert out.returncode == 1 and lines[-1] == "0 passed, 1 failed"
