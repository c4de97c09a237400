"""The project's shape, checked from the source (no import is executed):

* no import cycle among our modules -- imports inside functions count, ``if TYPE_CHECKING:``
  imports do not (they never run);
* no private name (``_x``) of one of our modules is imported or read by another module
  (``from m import _x``, ``m._x``); what is shared is public in its owner;
* the three roots import one way: ``gbp_lab.core`` imports neither ``gbp_lab.dissectors`` nor the
  lab, ``gbp_lab.dissectors`` never imports the lab.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: folder in the checkout -> the package it is installed as
ROOTS = {"gbp_lab": ROOT / "gbp_lab", "gbp_lab.core": ROOT / "core", "gbp_lab.dissectors": ROOT / "dissectors"}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg, folder in ROOTS.items():
        for p in folder.rglob("*.py"):  # rglob does not descend into the links inside gbp_lab/
            rel = p.relative_to(folder).with_suffix("")
            parts = [x for x in rel.parts if x != "__init__"]
            out[".".join([pkg, *parts])] = p
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(current: str, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    base = current.split(".")
    if not _is_package(current):
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                for inner in ast.walk(sub):
                    if hasattr(inner, "lineno"):
                        lines.add(inner.lineno)
    return lines


def _scan(name: str):
    """(edges, private uses) of one module: edges = {target module: first line}."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    edges: dict[str, int] = {}
    private: list[tuple[int, str]] = []
    aliases: dict[str, str] = {}  # local name -> our module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in MODULES:
                    if node.lineno not in skip:
                        edges.setdefault(a.name, node.lineno)
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node.level, node.module)
            if base not in MODULES:
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                target = sub if sub in MODULES else base
                if node.lineno not in skip:
                    edges.setdefault(target, node.lineno)
                if sub in MODULES:
                    aliases[a.asname or a.name] = sub
                elif a.name.startswith("_") and not a.name.startswith("__") and base != name:
                    private.append((node.lineno, f"from {base} import {a.name}"))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            target = aliases[node.value.id]
            if target != name and f"{target}.{node.attr}" not in MODULES:
                private.append((node.lineno, f"{node.value.id}.{node.attr} ({target})"))
    edges.pop(name, None)
    return edges, private


SCANS = {name: _scan(name) for name in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in SCANS[v][0]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(MODULES):
        if v not in index:
            visit(v)
    return out


def _describe(comp: list[str]) -> str:
    lines = []
    for m in comp:
        for t, line in SCANS[m][0].items():
            if t in comp:
                lines.append(f"  {MODULES[m].relative_to(ROOT)}:{line} -> {t}")
    return "\n".join(lines)


def test_the_scan_sees_the_tree():
    assert len(MODULES) >= 120
    assert "gbp_lab.core.mls.group" in MODULES and "gbp_lab.dissectors.gbp" in MODULES
    edges, _ = SCANS["gbp_lab.core.gbp.frame"]
    assert any(t.startswith("gbp_lab.core.") for t in edges)


def test_no_import_cycles():
    cycles = _cycles()
    assert not cycles, "import cycles:\n" + "\n\n".join(_describe(c) for c in cycles)


def test_no_private_names_across_modules():
    found = [f"{MODULES[m].relative_to(ROOT)}:{line}: {what}"
             for m in sorted(MODULES) for line, what in SCANS[m][1]]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_layers_import_one_way():
    bad = []
    for m, (edges, _) in SCANS.items():
        for t in edges:
            lab = t.startswith("gbp_lab.") and not t.startswith(("gbp_lab.core", "gbp_lab.dissectors"))
            lab = lab or t == "gbp_lab"
            if m.startswith("gbp_lab.core") and (t.startswith("gbp_lab.dissectors") or lab):
                bad.append(f"{m} -> {t}")
            if m.startswith("gbp_lab.dissectors") and lab:
                bad.append(f"{m} -> {t}")
    assert not bad, bad
