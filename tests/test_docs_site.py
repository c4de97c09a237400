"""The documentation site: the reference pages build offline with warnings as errors and say
what the code says.

The build here is the reference pages alone (``GBP_DOCS_ONLY=reference``: a few seconds);
``make docs`` builds the whole site, API pages included, with the same checks plus "every public
name of ``gbp_lab.core`` and ``gbp_lab`` is documented, with a docstring" (CI runs it).

What is compared with the code is read back from the built HTML:

* tables: every table of ``Capture.TABLES``, its columns in order = the owners' specs
  (``readpath.FRAME_TABLE``/``ERROR_ROW``, ``tables.*_COLUMNS``, ``findings.FINDING_COLUMNS``),
  dtypes, a meaning for each;
* findings: ``KINDS`` in order with ``SEVERITY``;
* vids: every vid the source raises (an independent regular-expression scan) is on the page;
* CLI: every subcommand and every option of ``gbp_lab.cli.build_parser()``;
* "RFC 9605 §4.3" in a page became a link to that section.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _load_generator():
    """docs/_ext/gbp_reference.py (the extension's render functions), imported by path."""
    if "gbp_reference" in sys.modules:
        return sys.modules["gbp_reference"]
    spec = importlib.util.spec_from_file_location("gbp_reference", DOCS / "_ext" / "gbp_reference.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gbp_reference"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


gen = _load_generator()


class _Tables(HTMLParser):
    """Section title (h1/h2 text) → the rows of the tables under it (cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: Dict[str, List[List[str]]] = {}
        self.links: List[str] = []
        self._title = ""
        self._in_h = False
        self._h = ""
        self._row: List[str] | None = None
        self._cell: List[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in ("h1", "h2"):
            self._in_h, self._h = True, ""
        elif tag == "tr":
            self._row = []
        elif tag == "th":
            self._row = None  # header rows are left out
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)

    def handle_endtag(self, tag):
        if tag in ("h1", "h2") and self._in_h:
            self._in_h = False
            self._title = self._h.replace("¶", "").strip()
            self.sections.setdefault(self._title, [])
        elif tag == "td" and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.sections.setdefault(self._title, []).append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._in_h:
            self._h += data
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The reference pages built with warnings as errors (a failing build fails every test)."""
    out = tmp_path_factory.mktemp("docs")
    env = dict(os.environ, GBP_DOCS_ONLY="reference", GBP_DOCS_FAST="1", COLUMNS="100")
    res = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E",
                          "-b", "html", "-d", str(out / ".doctrees"), str(DOCS), str(out / "html")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, f"docs build failed:\n{res.stdout}\n{res.stderr}"
    assert "WARNING" not in res.stderr and "ERROR" not in res.stderr, res.stderr
    return out / "html"


def _page(site: Path, name: str) -> _Tables:
    p = _Tables()
    p.feed((site / "reference" / f"{name}.html").read_text(encoding="utf-8"))
    return p


def _body_rows(rows: List[List[str]]) -> List[List[str]]:
    return [r for r in rows if r]


def test_tables_reference_is_the_code(site):
    from gbp_lab.analysis.findings import FINDING_COLUMNS
    from gbp_lab.capture import tables
    from gbp_lab.capture.model import Capture
    from gbp_lab.capture.readpath import ERROR_ROW, FRAME_TABLE

    page = _page(site, "tables")
    layout = {"Int64": "Int64", "UInt64": "UInt64", "float": "float64", "bool": "bool", "text": "str",
              "time": "datetime64[ns, UTC]"}

    def derived(cols):  # every table with a time column ends with rel_time (Capture adds it)
        cols = list(cols)
        return [(n, None) for n in cols + (["rel_time"] if "time" in cols and "rel_time" not in cols else [])]

    expected: Dict[str, List[Tuple[str, str | None]]] = {
        "frames": [(n, layout[FRAME_TABLE.dtypes[n]]) for n in FRAME_TABLE.names],
        "errors": [(n, layout[ERROR_ROW.dtypes[n]]) for n in ERROR_ROW.names],
        "messages": derived(tables.MESSAGE_COLUMNS),
        "audio": derived(tables.AUDIO_COLUMNS),
        "signals": derived(tables.SIGNAL_COLUMNS),
        "control": derived(tables.CONTROL_COLUMNS),
        "epochs": derived(tables.EPOCH_COLUMNS),
        "findings": derived(FINDING_COLUMNS),
    }
    assert set(expected) == set(Capture.TABLES)  # every table of Capture is compared
    for table, cols in expected.items():
        rows = _body_rows(page.sections[f"Capture.{table}"])
        assert [r[0] for r in rows] == [n for n, _ in cols], table
        for (name, dtype), row in zip(cols, rows):
            assert len(row) == 3 and row[2], f"{table}.{name} has no meaning"
            if dtype is not None:
                assert row[1] == dtype, f"{table}.{name}: {row[1]} != {dtype}"
            else:
                assert row[1] in ("Int64", "UInt64", "float64", "bool", "object", "str",
                                  "datetime64[ns, UTC]"), row
    # spot checks of the builders' dtypes: nullable integers, floats, the control table's bools
    ctrl = {r[0]: r[1] for r in _body_rows(page.sections["Capture.control"])}
    assert ctrl["opcode"] == "Int64" and ctrl["mls_epoch"] == "UInt64"
    assert ctrl["time"] == "datetime64[ns, UTC]" and ctrl["rel_time"] == "float64" and ctrl["decrypted"] == "bool"


def test_a_column_without_a_meaning_is_a_warning(tmp_path, monkeypatch):
    text = gen.COLUMNS_YAML.read_text(encoding="utf-8")
    assert "  payload_size: " in text
    bad = tmp_path / "columns.yaml"
    bad.write_text(text.replace("  payload_size: ", "  payload_sizes: "), encoding="utf-8")
    monkeypatch.setattr(gen, "COLUMNS_YAML", bad)
    del gen.WARNINGS[:]
    gen.render_tables()
    assert any("no meaning for column frames.payload_size" in w for w in gen.WARNINGS)
    assert any("payload_sizes" in w and "does not have" in w for w in gen.WARNINGS)
    monkeypatch.undo()
    del gen.WARNINGS[:]
    gen.render_tables()
    assert gen.WARNINGS == []


def test_findings_reference_is_the_code(site):
    from gbp_lab.analysis.findings import KINDS, SEVERITY

    rows = _body_rows(_page(site, "findings").sections["Findings reference"])
    assert [r[0] for r in rows] == list(KINDS)
    for kind, sev, meaning in rows:
        assert sev == SEVERITY[kind] and len(meaning) > 20, kind
    assert "keystream" in dict((r[0], r[2]) for r in rows)["nonce_reuse"]


_RAISED = re.compile(r"""\b(?:vid|default_vid)\s*=\s*["']([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*)["']""")


def _vids_in_source() -> set:
    found = set()
    for folder in ("core", "dissectors", "gbp_lab"):
        for p in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in p.parts:
                found.update(_RAISED.findall(p.read_text(encoding="utf-8")))
    return found


def test_vid_reference_is_the_code(site):
    page = _page(site, "errors")
    on_page = {r[0] for rows in page.sections.values() for r in _body_rows(rows)}
    raised = _vids_in_source()
    assert len(raised) > 250 and {"GBP-RECORD-OVERSIZE", "KEYLOG", "CRYPTO-DECRYPT"} <= raised
    assert not sorted(raised - on_page), "vids raised but not on the error reference page"
    # and nothing on the page that the source does not have (patterns such as {prefix}-TYPE
    # and vid_prefix X-* come from f-strings and prefixes, so they are checked as text)
    source = "".join(p.read_text(encoding="utf-8") for f in ("core", "dissectors", "gbp_lab")
                     for p in (ROOT / f).rglob("*.py") if "__pycache__" not in p.parts)
    for vid in on_page - raised:
        assert vid.rstrip("-*").split("{")[0].strip("-") in source or vid.startswith("{"), vid
    # every prefix section has its meaning (from docs/architecture.md's Error model table)
    prefixes = {gen.vid_prefix(v) for v in raised}
    assert prefixes <= set(page.sections), sorted(prefixes - set(page.sections))
    assert set(gen.prefix_meanings()) >= prefixes


def test_cli_reference_is_the_code(site):
    from gbp_lab.cli import COMMANDS, build_parser

    page = _page(site, "cli")
    top = build_parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS)
    for name, parser in sub.choices.items():
        rows = _body_rows(page.sections[f"gbp-lab {name}"])
        text = " ".join(" ".join(r) for r in rows)
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            for opt in action.option_strings:
                assert opt in text, f"gbp-lab {name} {opt} missing"
            if not action.option_strings:
                assert action.dest in text or (action.metavar or "") in text, (name, action.dest)
    assert "--version" in " ".join(" ".join(r) for r in page.sections["Command line reference"])


def test_rfc_sections_are_links(site):
    links = _page(site, "tables").links
    assert "https://www.rfc-editor.org/rfc/rfc9605.html#section-4.3" in links
    assert gen.rfc_url("9420", "8.5") == "https://www.rfc-editor.org/rfc/rfc9420.html#section-8.5"


def test_public_name_check_finds_a_missing_one():
    import gbp_lab.core

    names = gen.public_names()
    assert "gbp_lab.core.MlsContext" in names and "gbp_lab.read_capture" in names
    assert names["gbp_lab.core.KeyLog"] is gbp_lab.core.KeyLog
    owners = [f"{o.__module__}.{o.__qualname__}" for o in names.values() if hasattr(o, "__qualname__")]
    data = ["gbp_lab.core.sframe.AES_128_GCM", "gbp_lab.core.sframe.AES_256_GCM"]
    assert gen.undocumented(owners + data) == []
    missing = gen.undocumented([o for o in owners if not o.endswith(".MlsContext")] + data)
    assert missing == ["gbp_lab.core.MlsContext is not in the API reference"]


def test_public_classes_and_functions_have_docstrings():
    # what make docs also fails on: an entry of ``__all__`` defined in its module, undocumented
    assert gen.undocumented_owners() == []


def test_version_matches_changelog_and_is_printed():
    import gbp_lab

    exe = shutil.which("gbp-lab", path=str(Path(sys.executable).parent))
    assert exe, "the gbp-lab command is not installed next to this interpreter"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"gbp-lab {gbp_lab.__version__}"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'version = "{gbp_lab.__version__}"' in pyproject
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## (\d+\.\d+\.\d+)\b", changelog, re.M)
    assert releases and releases[0] == gbp_lab.__version__


def test_site_in_a_real_browser(site, tmp_path):
    """Headless Debian Chromium opens the built index, follows the link to the error reference
    (whose exception classes autodoc rendered) and finds the generated content there."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import browser_util as bu
    finally:
        sys.path.remove(str(ROOT / "tests"))
    bu.require_chromium()
    bu.require_module("playwright")
    from playwright.sync_api import sync_playwright

    errors: list = []
    with sync_playwright() as pw:
        ctx = bu.launch_chromium(pw, tmp_path / "chromium-profile")
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((site / "reference" / "index.html").as_uri())  # the root of this build
            assert page.locator("h1").first.inner_text().startswith("Reference")
            page.get_by_role("link", name="Error reference").first.click()
            page.wait_for_url("**/reference/errors.html")
            exceptions = page.locator("dl.py.exception")
            assert exceptions.count() >= 14  # every class of core/errors.py, rendered by autodoc
            first = " ".join(exceptions.first.inner_text().split())
            assert first.startswith("exception gbp_lab.core.errors.GbpLabError") and "Root of every" in first
            assert page.locator("table").count() > 20  # one table of vids per prefix
            page.screenshot(path=str(tmp_path / "errors.png"))
        finally:
            ctx.close()
    assert errors == []


def _modules_with_examples() -> List[str]:
    """Dotted names (as installed: ``gbp_lab.core.…``) of our modules whose source has a
    ``>>>`` example."""
    out = []
    for pkg, folder in gen.SOURCE_ROOTS.items():
        for p in sorted(folder.rglob("*.py")):
            if "__pycache__" in p.parts or ">>>" not in p.read_text(encoding="utf-8"):
                continue
            parts = [x for x in p.relative_to(folder).with_suffix("").parts if x != "__init__"]
            out.append(".".join([pkg, *parts]))
    return out


def test_docstring_examples_run():
    """Every ``>>>`` example in a docstring of ours is executed and gives what it shows (the
    API pages show these examples)."""
    import doctest
    import importlib

    names = _modules_with_examples()
    assert "gbp_lab.core.mls.secrets" in names  # the scan sees the tree
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    finder = doctest.DocTestFinder()
    for name in names:
        mod = importlib.import_module(name)
        for test in finder.find(mod, name):
            runner.run(test)
    res = runner.summarize(verbose=False)
    assert res.attempted >= 10 and res.failed == 0, res
