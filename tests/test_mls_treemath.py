"""Tree math (RFC 9420 §4.1, Appendix C): typed indices, navigation, properties, errors.

The official ``tree-math.json`` vectors (left/right/parent/sibling for 1…512 leaves) run through
``tests/test_mls_vectors.py``; here: the §4.1 example, structural properties and the error paths."""
import pytest
from hypothesis import given, settings, strategies as st

from gbp_lab.core.errors import UsageError
from gbp_lab.core.mls import treemath as tm
from gbp_lab.core.mls.treemath import LeafIndex, NodeIndex, TreeMathError

SIZES = st.integers(min_value=0, max_value=12).map(lambda k: 1 << k)


@st.composite
def tree_and_node(draw):
    n = draw(SIZES)
    return n, draw(st.integers(min_value=0, max_value=tm.node_width(n) - 1))


def test_rfc9420_section_4_1_example():
    """Eight leaves A…H: C is leaf 2 = node 4, direct path W V X = 5 3 7, copath D U Z = 6 1 11."""
    n = 8
    c = tm.leaf_to_node(2)
    assert c == 4 and isinstance(c, NodeIndex)
    assert tm.direct_path(c, n) == [5, 3, 7]
    assert tm.copath(c, n) == [6, 1, 11]
    assert tm.root(n) == 7 and tm.node_width(n) == 15
    assert tm.common_ancestor(tm.leaf_to_node(0), tm.leaf_to_node(2)) == 3  # A and C meet at V
    assert tm.common_ancestor(tm.leaf_to_node(2), tm.leaf_to_node(7)) == 7
    assert tm.subtree_leaves(3) == (0, 4) and tm.subtree_leaves(11) == (4, 8)


def test_basics():
    assert [tm.log2(x) for x in (0, 1, 2, 3, 4, 7, 8)] == [0, 0, 1, 1, 2, 2, 3]
    assert [tm.level(x) for x in (0, 1, 3, 7, 15, 2, 5)] == [0, 1, 2, 3, 4, 0, 1]
    assert [tm.node_width(n) for n in (0, 1, 2, 3, 4)] == [0, 1, 3, 5, 7]
    assert tm.is_leaf(6) and not tm.is_leaf(7)
    assert tm.node_to_leaf(6) == LeafIndex(3) and isinstance(tm.node_to_leaf(6), LeafIndex)
    assert tm.direct_path(0, 1) == [] and tm.copath(0, 1) == []
    assert repr(LeafIndex(3)) == "LeafIndex(3)" and repr(NodeIndex(3)) == "NodeIndex(3)"


def test_types_are_distinct():
    with pytest.raises(TreeMathError):
        NodeIndex(LeafIndex(1))
    with pytest.raises(TreeMathError):
        LeafIndex(NodeIndex(2))
    with pytest.raises(TreeMathError):
        tm.level(LeafIndex(1))  # a leaf index where a node index is expected
    with pytest.raises(TreeMathError):
        tm.parent(LeafIndex(0), 4)
    assert LeafIndex(3) == 3 and NodeIndex(3) == 3  # still ints for arithmetic and indexing


@pytest.mark.parametrize("call", [
    lambda: tm.left(4),                 # leaf has no children
    lambda: tm.right(0),
    lambda: tm.parent(7, 8),            # the root has no parent
    lambda: tm.sibling(3, 4),
    lambda: tm.parent(15, 8),           # outside the tree
    lambda: tm.direct_path(9, 4),
    lambda: tm.parent(1, 3),            # RFC 9420 trees have 2^k leaves
    lambda: tm.copath(0, 6),
    lambda: tm.root(0),
    lambda: tm.node_to_leaf(5),         # a parent is not a leaf
    lambda: tm.check_leaf(4, 4),
    lambda: tm.check_node(7, 4),
    lambda: NodeIndex(-1),
    lambda: LeafIndex(1 << 32),
    lambda: tm.log2(-1),
    lambda: tm.node_width(-1),
])
def test_out_of_range_is_a_typed_usage_error(call):
    with pytest.raises(TreeMathError) as ei:
        call()
    assert isinstance(ei.value, UsageError)
    assert ei.value.vid.startswith("MLS-TREEMATH")


@settings(max_examples=200, deadline=None)
@given(tree_and_node())
def test_parent_child_sibling_consistency(tn):
    n, x = tn
    r = tm.root(n)
    assert r == n - 1  # for 2^k leaves the root is the middle node
    if x == r:
        assert tm.direct_path(x, n) == []
        return
    p = tm.parent(x, n)
    assert isinstance(p, NodeIndex)
    assert tm.level(p) == tm.level(x) + 1
    assert x in (tm.left(p), tm.right(p))
    s = tm.sibling(x, n)
    assert s != x and tm.parent(s, n) == p and tm.sibling(s, n) == x
    assert {tm.left(p), tm.right(p)} == {x, s}
    assert tm.is_ancestor(p, x) and not tm.is_ancestor(x, p)


@settings(max_examples=200, deadline=None)
@given(SIZES.flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_direct_path_and_copath_of_a_leaf(nl):
    n, leaf = nl
    x = tm.leaf_to_node(leaf)
    assert tm.node_to_leaf(x) == leaf
    dp, cp = tm.direct_path(x, n), tm.copath(x, n)
    assert len(dp) == len(cp) == tm.log2(n)
    if dp:
        assert dp[-1] == tm.root(n)
    assert [tm.level(y) for y in dp] == list(range(1, len(dp) + 1))
    assert not set(dp) & set(cp)
    # the copath subtrees and the leaf itself partition the leaves
    covered = [leaf]
    for y in cp:
        first, end = tm.subtree_leaves(y)
        covered += range(first, end)
    assert sorted(covered) == list(range(n))


@settings(max_examples=200, deadline=None)
@given(SIZES.flatmap(lambda n: st.tuples(st.just(n), st.integers(0, 2 * n - 2), st.integers(0, 2 * n - 2))))
def test_common_ancestor_is_the_lowest_shared_node(nxy):
    n, x, y = nxy
    a = tm.common_ancestor(x, y)
    up_x = [NodeIndex(x)] + tm.direct_path(x, n)
    up_y = [NodeIndex(y)] + tm.direct_path(y, n)
    shared = [z for z in up_x if z in up_y]
    assert a == shared[0]
    assert tm.common_ancestor(y, x) == a
    assert tm.is_ancestor(a, x) and tm.is_ancestor(a, y)


def test_subtree_of_root_is_every_leaf():
    for k in range(10):
        n = 1 << k
        assert tm.subtree_leaves(tm.root(n)) == (0, n)
