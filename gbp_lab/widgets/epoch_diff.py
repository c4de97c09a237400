"""What changed from one MLS epoch to the next (RFC 9420 §12.4): members added and removed,
leaves with a new leaf node, the ratchet-tree nodes whose content changed and, among them, the
parent nodes that got a new key from a new path secret (§7.4: the committer's UpdatePath derives
``path_secret[n]`` → ``node_secret`` → the node's HPKE key pair for each node of its filtered
direct path) or were blanked. :func:`epoch_diff` computes it; :class:`EpochDiff` is what the
:class:`~.epoch_stepper.EpochStepper` shows (``EpochView.diff``, the changed nodes outlined in
the tree drawing).

With both epochs' whole trees the diff is node by node (leaf and parent nodes compared as
structures). With members only (a past epoch of ``MlsContext.history``), it is leaf by leaf
(identity, encryption key) and the parent nodes are reported unknown.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

from . import render

__all__ = ["EpochDiff", "epoch_diff"]


@dataclass(frozen=True)
class EpochDiff:
    """The change from epoch ``previous`` to ``epoch`` (module docstring).

    ``added`` / ``removed`` / ``updated``: ``(leaf index, identity)`` of members that joined, left,
    or kept their leaf with a new leaf node (new encryption key: an Update or the committer's
    path); ``changed_nodes``: node indexes (array tree, RFC 9420 Appendix C) whose content
    changed; ``new_path_secrets``: the parent nodes among them that now hold a new key (a new
    path secret reached them); ``blanked``: parent nodes that became blank; ``tree_compared``:
    both whole trees were known (else parents are not compared)."""

    previous: int
    epoch: int
    added: Tuple[Tuple[int, str], ...] = ()
    removed: Tuple[Tuple[int, str], ...] = ()
    updated: Tuple[Tuple[int, str], ...] = ()
    changed_nodes: Tuple[int, ...] = ()
    new_path_secrets: Tuple[int, ...] = ()
    blanked: Tuple[int, ...] = ()
    tree_compared: bool = False

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.updated or self.changed_nodes)

    def lines(self) -> Tuple[str, ...]:
        """The diff as short sentences (what the stepper lists)."""
        out = []
        for li, who in self.added:
            out.append(f"+ {who} joined at leaf {li} (node {2 * li})")
        for li, who in self.removed:
            out.append(f"− {who} left leaf {li} (node {2 * li}, now blank)")
        for li, who in self.updated:
            out.append(f"~ {who} (leaf {li}, node {2 * li}): new leaf node (new encryption key)")
        if self.tree_compared:
            if self.new_path_secrets:
                out.append("new path secrets → new keys at parent nodes "
                           + ", ".join(map(str, self.new_path_secrets)))
            if self.blanked:
                out.append("parent nodes blanked: " + ", ".join(map(str, self.blanked)))
        else:
            out.append("parent nodes not compared: the whole tree of both epochs is not known")
        if self.empty:
            out.append("nothing changed in the tree")
        return tuple(out)

    def html(self) -> str:
        items = "".join(f"<li>{render.esc(x)}</li>" for x in self.lines())
        return (f'<div class="gbp-epoch-diff"><b>changes from epoch {self.previous} to '
                f'{self.epoch}</b><ul>{items}</ul></div>')


def _identity(m: Any) -> str:
    return render.identity_text(m.identity)


def epoch_diff(previous: int, epoch: int, *, old_tree: Any = None, new_tree: Any = None,
               old_members: Optional[Sequence[Any]] = None,
               new_members: Optional[Sequence[Any]] = None) -> EpochDiff:
    """The :class:`EpochDiff` between two epochs: from their whole ratchet trees
    (:class:`~gbp_lab.core.mls.tree.RatchetTree`) when both are given, else from their members
    (objects with ``leaf_index``, ``identity``, ``encryption_key``: ``Member``)."""
    if old_tree is not None:
        old_members = old_tree.members()
    if new_tree is not None:
        new_members = new_tree.members()
    old: Dict[int, Any] = {int(m.leaf_index): m for m in (old_members or ())}
    new: Dict[int, Any] = {int(m.leaf_index): m for m in (new_members or ())}
    added, removed, updated = [], [], []
    for li in sorted(set(old) | set(new)):
        a, b = old.get(li), new.get(li)
        if a is None and b is not None:
            added.append((li, _identity(b)))
        elif b is None and a is not None:
            removed.append((li, _identity(a)))
        elif a is not None and b is not None:
            if a.identity != b.identity:
                removed.append((li, _identity(a)))
                added.append((li, _identity(b)))
            elif a.encryption_key != b.encryption_key:
                updated.append((li, _identity(b)))
    if old_tree is not None and new_tree is not None:
        a_nodes, b_nodes = old_tree.nodes, new_tree.nodes
        n = max(len(a_nodes), len(b_nodes))

        def at(nodes: Sequence[Any], i: int) -> Any:
            return nodes[i] if i < len(nodes) else None

        changed = tuple(i for i in range(n) if at(a_nodes, i) != at(b_nodes, i))
        fresh = tuple(i for i in changed if i % 2 == 1 and at(b_nodes, i) is not None and
                      (at(a_nodes, i) is None or
                       at(a_nodes, i).encryption_key != at(b_nodes, i).encryption_key))
        blanked = tuple(i for i in changed if i % 2 == 1 and at(b_nodes, i) is None)
        return EpochDiff(previous, epoch, tuple(added), tuple(removed), tuple(updated), changed,
                         fresh, blanked, True)
    leaves = sorted({2 * li for li, _ in added} | {2 * li for li, _ in removed} |
                    {2 * li for li, _ in updated})
    return EpochDiff(previous, epoch, tuple(added), tuple(removed), tuple(updated),
                     tuple(leaves), (), (), False)
