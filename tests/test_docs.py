"""docs/architecture.md and docs/keylog.md stay true to the tree.

* every module path the architecture names (``core/….py``, ``dissectors/….py``, ``gbp_lab/….py``)
  exists;
* every public module under core/, dissectors/, gbp_lab/ (not ``__init__``/``__main__``, not a
  ``_private`` file or package) is named in it;
* every top-level ``vid`` prefix raised in the tree appears in the document's vid table;
* the key-log labels and the pcapng secrets type in docs/keylog.md are the code's.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCH = ROOT / "docs" / "architecture.md"
KEYLOG_DOC = ROOT / "docs" / "keylog.md"
PACKAGES = ("core", "dissectors", "gbp_lab")
_PATH = re.compile(r"(?<![\w/.])((?:core|dissectors|gbp_lab)/[\w/]*?\w+\.py)\b")


def _text() -> str:
    return ARCH.read_text(encoding="utf-8")


def _mentioned() -> set:
    return set(_PATH.findall(_text()))


def _public_modules() -> list:
    out = []
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            rel = p.relative_to(ROOT)
            parts = rel.parts
            if "__pycache__" in parts or any(part.startswith("_") for part in parts[:-1]):
                continue
            if p.name.startswith("_"):  # __init__, __main__, _private
                continue
            out.append(rel.as_posix())
    return out


def test_pattern_finds_paths():
    # the checks below are only as good as the path pattern: it must see the document's paths
    found = _mentioned()
    assert "core/errors.py" in found and "gbp_lab/capture/model.py" in found
    assert "dissectors/keystore.py" in found and "core/mls/vectors/welcome.py" in found
    assert len(found) >= 100


def test_every_mentioned_module_exists():
    missing = sorted(p for p in _mentioned() if not (ROOT / p).is_file())
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_public_module_is_mentioned():
    modules = _public_modules()
    assert len(modules) >= 100  # the walk really saw the tree
    unnamed = sorted(set(modules) - _mentioned())
    assert not unnamed, f"modules missing from docs/architecture.md: {unnamed}"


def test_private_and_dunder_modules_are_excluded():
    modules = _public_modules()
    assert "core/mls/vectors/__main__.py" not in modules
    assert "dissectors/_common.py" not in modules
    assert not any(m.endswith("__init__.py") for m in modules)


_VID = re.compile(r"""(?:vid\s*=\s*|default_vid\s*=\s*|vid_prefix\s*=\s*)f?["']([A-Z][A-Z0-9]*)""")


def _vid_prefixes() -> set:
    found = set()
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            if "__pycache__" in p.parts:
                continue
            found.update(_VID.findall(p.read_text(encoding="utf-8")))
    return found


def test_every_vid_prefix_is_in_the_table():
    prefixes = _vid_prefixes()
    assert {"MLS", "GBP", "KEYLOG", "USAGE", "SFRAME"} <= prefixes  # the scan works
    section = _text().split("## Error model", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([A-Z][A-Z0-9]*)(?:-[^`]*)?`", section))
    missing = sorted(prefixes - listed)
    assert not missing, f"vid prefixes in use but not in docs/architecture.md: {missing}"


def test_keylog_doc_matches_the_code():
    from gbp_lab.capture.pcap import SECRETS_TYPE_GBP_KEYLOG
    from gbp_lab.core.keylog import CIPHER_SUITE, SECRET_LABELS, KeyLog
    from gbp_lab.core.gbp.registry import STREAM_KEY_LABELS
    from gbp_lab.core.sframe import DEFAULT_LABEL

    doc = KEYLOG_DOC.read_text(encoding="utf-8")
    for label in (*SECRET_LABELS, CIPHER_SUITE):
        assert label in doc
    assert f"0x{SECRETS_TYPE_GBP_KEYLOG:08X}" in doc
    for label in STREAM_KEY_LABELS.values():
        assert label.decode() in doc
    assert DEFAULT_LABEL in doc
    # the format block of the document parses with the real parser once filled in
    gid = "ab" * 16
    lines = [f"{lab} {gid} 3 {'11' * 32}" for lab in SECRET_LABELS] + [f"{CIPHER_SUITE} {gid} 1"]
    log = KeyLog.parse("\n".join(lines) + "\n# comment\n")
    assert log.epochs(bytes.fromhex(gid)) == [3] and log.suite(bytes.fromhex(gid)) == 1


@pytest.mark.parametrize("doc", [ARCH, KEYLOG_DOC], ids=lambda p: p.name)
def test_docs_are_compact(doc):
    assert doc.is_file()
    assert len(doc.read_text(encoding="utf-8").splitlines()) <= 300
