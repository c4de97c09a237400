"""The official RFC 9420 test vectors (vendored, gzip) through the conformance runner.

Every file must pass completely: no failure and no skip. Files are recognised by content (the
official schemas), so a renamed official file runs its checker and an unknown one fails loudly."""
import glob
import json
import os
import subprocess
import sys

import pytest

from gbp_lab.core.mls.vectors import (FORMATS, UnknownVectorFormat, checker_for, detect_format, load_cases,
                                      run_file, vector_name)

HERE = os.path.dirname(__file__)
FILES = sorted(glob.glob(os.path.join(HERE, "vectors", "mls", "*.json.gz")))


def test_vendored_vectors_present():
    assert len(FILES) == 15


@pytest.mark.parametrize("path", FILES, ids=[vector_name(p) for p in FILES])
def test_vector_file(path):
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


def test_every_format_has_its_checker_and_every_vendored_file_is_recognised_by_content():
    assert all(callable(checker_for(name)) for name in FORMATS)
    seen = set()
    for path in FILES:
        name = vector_name(path)
        fmts = {detect_format(c) for c in load_cases(path)}
        want = "passive-client" if name.startswith("passive-client-") else name
        assert fmts == {want}, (name, fmts)
        seen.add(want)
    assert seen == set(FORMATS)  # the vendored files cover every official format


def test_an_official_file_under_another_name_runs_its_checker(tmp_path):
    """mlswg's ``passive-client-random.json`` has the passive-client schema: it is run, not skipped
    (here: the first vendored passive-client cases, uncompressed, under that name and another)."""
    src = os.path.join(HERE, "vectors", "mls", "passive-client-welcome.json.gz")
    cases = load_cases(src)[:3]
    for fname in ("passive-client-random.json", "my-copy.json"):
        p = tmp_path / fname
        p.write_text(json.dumps(cases))
        res = run_file(str(p))
        assert (res.format, res.passed, res.failed, res.skipped) == ("passive-client", 3, 0, 0)
        assert "[passive-client]" in res.line()


@pytest.mark.parametrize("content, what", [
    ('[{"foo": 1}]', "matches no official"),
    ('[]', "no test cases"),
    ('[1, 2]', "matches no official"),
    ('{"not json', "not a JSON vector file"),
    ('[{"vlbytes_header": "00", "length": 0}, {"cipher_suite": 1, "psks": [], "psk_secret": "00"}]',
     "several formats"),
])
def test_an_unrecognised_file_fails_loudly(tmp_path, content, what):
    p = tmp_path / "tree-math.json"  # a known name does not help: content decides
    p.write_text(content)
    with pytest.raises(UnknownVectorFormat, match=what) as info:
        run_file(str(p))
    assert info.value.vid == "MLS-VECTORS-FORMAT"
    good = tmp_path / "deser.json"
    good.write_text('[{"vlbytes_header": "00", "length": 0}]')
    out = subprocess.run([sys.executable, "-m", "gbp_lab.core.mls.vectors", str(p), str(good)],
                         capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 1 and what in lines[0] and lines[-1] == "1 passed, 1 failed", out.stdout


def test_detect_format_prefers_the_most_specific_schema():
    welcome = {k: None for k in FORMATS["welcome"][1]}
    assert detect_format(welcome) == "welcome"
    passive = {k: None for k in FORMATS["passive-client"][1]}  # shares init_priv/key_package/welcome
    assert detect_format(passive) == "passive-client"
    assert detect_format(dict(passive, signer_pub="00")) == "passive-client"
    assert detect_format({"cipher_suite": 1}) is None
