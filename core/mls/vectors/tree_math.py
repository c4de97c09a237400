"""Checker for ``tree-math.json`` (test-vectors.md "Tree Math", RFC 9420 Appendix C).

For each node ``i`` of a tree with ``n_leaves`` leaves: ``left``/``right`` (``null`` for leaves),
``parent``/``sibling`` (``null`` for the root), plus ``n_nodes`` and ``root``."""
from __future__ import annotations

from typing import Any

from .. import treemath as tm
from . import expect


def _opt(fn, *args):
    try:
        return int(fn(*args))
    except tm.TreeMathError:
        return None


def check(case: dict[str, Any]) -> None:
    n = case["n_leaves"]
    expect("n_nodes", tm.node_width(n), case["n_nodes"])
    expect("root", int(tm.root(n)), case["root"])
    for name in ("left", "right", "parent", "sibling"):
        expect(f"len({name})", len(case[name]), case["n_nodes"])
    for i in range(case["n_nodes"]):
        expect(f"left[{i}]", _opt(tm.left, i), case["left"][i])
        expect(f"right[{i}]", _opt(tm.right, i), case["right"][i])
        expect(f"parent[{i}]", _opt(tm.parent, i, n), case["parent"][i])
        expect(f"sibling[{i}]", _opt(tm.sibling, i, n), case["sibling"][i])
