"""``RatchetTree``'s public signatures use the typed indices of ``treemath``: results are
``LeafIndex`` / ``NodeIndex`` (still ints: callers keep working), and the wrong kind of index is
refused with ``MLS-TREEMATH-TYPE`` (the ``2*i`` slip)."""
from __future__ import annotations

import pytest

from gbp_lab.core.mls import treemath as tm
from gbp_lab.core.mls.context import MlsContext


def _tree(n: int):
    a = MlsContext.create("a")
    others = [MlsContext.create(f"m{i}") for i in range(1, n)]
    a.invite_many([o.export_key_package() for o in others])
    a.finalize_commit()
    return a.tree


def test_results_are_typed_and_still_ints():
    t = _tree(5)
    assert type(t.root) is tm.NodeIndex and t.root == 7
    leaves = list(t.leaves())
    assert [type(i) for i, _ in leaves] == [tm.LeafIndex] * 5 and [int(i) for i, _ in leaves] == [0, 1, 2, 3, 4]
    assert all(type(p) is tm.NodeIndex for p in t.direct_path(tm.LeafIndex(4)) + t.copath(4))
    assert t.direct_path(4) == [9, 11, 7]
    assert all(type(p) is tm.NodeIndex for p in t.filtered_direct_path(0) + t.resolution(t.root))
    for p, child, res in t.copath_resolutions(0):
        assert type(p) is type(child) is tm.NodeIndex and all(type(r) is tm.NodeIndex for r in res)
    assert [type(m.leaf_index) for m in t.members()] == [tm.LeafIndex] * 5
    assert f"leaf {tm.LeafIndex(3)}" == "leaf 3" and repr(tm.NodeIndex(3)) == "NodeIndex(3)"
    new = t.copy()
    li = new.add_leaf(MlsContext.create("z").member.key_package.leaf_node)
    assert type(li) is tm.LeafIndex and li == 5


def test_the_wrong_kind_is_refused():
    t = _tree(3)
    node = t.direct_path(0)[0]          # a NodeIndex
    with pytest.raises(tm.TreeMathError) as ei:
        t.leaf(node)
    assert ei.value.vid == "MLS-TREEMATH-TYPE"
    for call in (lambda: t.direct_path(node), lambda: t.filtered_direct_path(node),
                 lambda: t.node(tm.LeafIndex(1)), lambda: t.resolution(tm.LeafIndex(1))):
        with pytest.raises(tm.TreeMathError):
            call()
    # plain ints stay accepted for both
    assert t.leaf(1) is not None and t.node(2) is t.leaf(1)
