"""The :class:`EpochStepper` view-model: step through the MLS epochs (RFC 9420 §8) of live
:class:`~gbp_lab.core.mls.context.MlsContext` objects (their ``history``) or of a capture with its
key log: ratchet tree (§7), members, key schedule (§8, hidden until :attr:`EpochStepper.reveal`),
the commit that led there (§12.4, inferred from the members of both epochs, or read from the
capture's PREPARE_TRANSITION) and the traffic of the epoch.

What a capture can tell: its key log holds four secrets per epoch (exporter, sender data,
encryption, epoch secret — :mod:`gbp_lab.core.keylog`), never the ratchet tree; the stepper shows
what is known and lists what is not in :attr:`EpochView.unknown`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields as dc_fields
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import pandas as pd

from gbp_lab.core.errors import GbpLabError
from gbp_lab.core.gbp.control import decode_control
from gbp_lab.core.gbp.registry import ControlOpcode, StreamType
from gbp_lab.core.mls.schedule import EpochSecrets

from gbp_lab.capture.columns import rel_time_of

from . import render
from .base import Observable, WidgetError
from .epoch_diff import EpochDiff, epoch_diff
from .field_tree import mls_summary

__all__ = ["TreeRecorder", "EpochKey", "EpochView", "EpochStepper", "TRAFFIC_COLUMNS"]


class TreeRecorder(dict):
    """``{(group_id, epoch): RatchetTree}`` filled by :meth:`snap` — call it after each step of a
    scenario so that :class:`EpochStepper` (``trees=recorder``) can draw every epoch's whole
    tree, parent nodes and unmerged leaves included (``MlsContext.history`` keeps only the
    members of past epochs)."""

    def __init__(self, *contexts: Any) -> None:
        super().__init__()
        self.contexts = list(contexts)
        self.snap()

    def snap(self, *contexts: Any) -> "TreeRecorder":
        for ctx in contexts or self.contexts:
            self[(bytes(ctx.group_id), int(ctx.epoch))] = ctx.tree
        return self


class EpochKey(NamedTuple):
    group_id: Optional[bytes]
    epoch: int


#: columns of the traffic table (a subset of the capture's ``frames`` columns)
TRAFFIC_COLUMNS = ["time", "rel_time", "src", "dst", "epoch", "transition_id", "stream_name", "sender",
                   "sequence_no", "protocol", "info", "decrypted", "error"]

_DERIVATIONS = {f.name: f.metadata["derivation"] for f in dc_fields(EpochSecrets)
                if "derivation" in f.metadata}
#: the secrets a key log holds (gbp_lab.core.keylog), by their EpochSecrets / KeyLog method names
_KEYLOG_SECRETS = frozenset({"exporter_secret", "sender_data_secret", "encryption_secret",
                             "epoch_secret"})


@dataclass(frozen=True, eq=False)
class EpochView:
    """A frozen snapshot of one epoch as the stepper shows it.

    ``secrets``: one dict per secret of RFC 9420 §8 (``name``, ``derivation``, ``known``,
    ``value`` = hex, or ``None`` while hidden or unknown). ``unknown`` lists what the source does
    not tell (e.g. the ratchet tree of a capture)."""

    key: EpochKey
    index: int
    tree_svg: str
    tree_known: bool
    members: Tuple[Mapping[str, Any], ...]
    secrets: Tuple[Mapping[str, Any], ...]
    revealed: bool
    commit: str
    proposals: Tuple[str, ...]
    traffic: pd.DataFrame
    unknown: Tuple[str, ...]
    source: str
    senders: Tuple[int, ...] = ()  #: GBP member ids seen sending in this epoch (captures)
    #: tree nodes that changed since the previous epoch (outlined in ``tree_svg``)
    changed: Tuple[int, ...] = ()
    #: what changed from the previous epoch (``None`` for the first epoch, or after a gap)
    diff: Optional[EpochDiff] = None

    @property
    def epoch(self) -> int:
        return self.key.epoch

    @property
    def group_id(self) -> Optional[bytes]:
        return self.key.group_id

    def secrets_html(self) -> str:
        why = "unknown (not in the key log)" if self.source == "capture" else "unknown (not kept)"
        return render.secrets_html(self.secrets, self.revealed, unknown_text=why)

    def _repr_html_(self) -> str:
        gid = self.group_id.hex() if self.group_id else "?"
        parts = [f"<h4>epoch {self.epoch} <small>group {render.esc(gid)}</small></h4>",
                 self.tree_svg,
                 render.table_html(list(self.members), ["leaf_index", "identity"]) if self.members else "",
                 f"<p><b>commit:</b> {render.esc(self.commit)}</p>",
                 self.diff.html() if self.diff is not None else "",
                 "<ul>" + "".join(f"<li>{render.esc(p)}</li>" for p in self.proposals) + "</ul>"
                 if self.proposals else "",
                 self.secrets_html(),
                 "".join(f"<p><i>{render.esc(u)}</i></p>" for u in self.unknown)]
        return "".join(parts)


@dataclass
class _EpochData:
    key: EpochKey
    tree: Any = None  # RatchetTree or None
    members: Optional[List[Any]] = None  # Member-like (leaf_index, identity)
    secrets: List[Tuple[str, str, Optional[bytes]]] = field(default_factory=list)
    commit: str = ""
    proposals: List[str] = field(default_factory=list)
    unknown: List[str] = field(default_factory=list)
    senders: List[int] = field(default_factory=list)
    changed: Tuple[int, ...] = ()  # tree nodes changed since the previous epoch
    diff: Optional[EpochDiff] = None


class EpochStepper(Observable):
    """Step through MLS epochs (see the module docstring).

    ``source``: an :class:`~gbp_lab.core.mls.context.MlsContext`, a list of them (their
    ``history`` is merged — only the group most of them are in now, unless ``group_id`` says
    which; the current epoch of a context also contributes its full ratchet tree, since a
    history entry keeps the members but not the parent nodes; ``trees`` = a
    :class:`TreeRecorder` gives the others), or a capture
    (:class:`gbp_lab.capture.model.Capture`, with its key log)."""

    def __init__(self, source: Any, *, group_id: Optional[bytes] = None,
                 trees: Optional[Mapping[Tuple[bytes, int], Any]] = None) -> None:
        super().__init__()
        self._capture = None
        self._reveal = False
        if hasattr(source, "frames") and hasattr(source, "keylog"):
            self._capture = source
            self._data = _epochs_of_capture(source, group_id)
            self.source_kind = "capture"
        else:
            ctxs = list(source) if isinstance(source, (list, tuple)) else [source]
            self._data = _epochs_of_contexts(ctxs, group_id, trees or {})
            self.source_kind = "contexts"
        if not self._data:
            raise WidgetError("no epoch to show (no history, no key log, no frames)",
                              vid="LAB-WIDGET-NO-EPOCH")
        _diff_epochs(self._data)
        self._index = 0
        self._cache: Dict[Tuple[int, bool], EpochView] = {}

    # -- navigation --------------------------------------------------------------------------
    @property
    def keys(self) -> Tuple[EpochKey, ...]:
        return tuple(d.key for d in self._data)

    @property
    def epochs(self) -> List[int]:
        """The epoch numbers, in order (one per step)."""
        return [d.key.epoch for d in self._data]

    @property
    def index(self) -> int:
        return self._index

    def go(self, i: int) -> EpochView:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(self._data):
            raise WidgetError(f"epoch step {i!r} outside 0..{len(self._data) - 1}",
                              vid="LAB-WIDGET-INDEX")
        if i != self._index:
            self._index = i
            self.changed()
        return self.current

    def go_epoch(self, epoch: int) -> EpochView:
        """Go to the first step showing ``epoch``."""
        for i, d in enumerate(self._data):
            if d.key.epoch == epoch:
                return self.go(i)
        raise WidgetError(f"epoch {epoch} is not in this source", vid="LAB-WIDGET-INDEX")

    def next(self) -> EpochView:
        return self.go(min(self._index + 1, len(self._data) - 1))

    def prev(self) -> EpochView:
        return self.go(max(self._index - 1, 0))

    @property
    def reveal(self) -> bool:
        """Whether secret values are shown (hidden by default)."""
        return self._reveal

    @reveal.setter
    def reveal(self, value: bool) -> None:
        value = bool(value)
        if value != self._reveal:
            self._reveal = value
            self.changed()

    def __len__(self) -> int:
        return len(self._data)

    # -- the snapshot ------------------------------------------------------------------------
    @property
    def current(self) -> EpochView:
        key = (self._index, self._reveal)
        view = self._cache.get(key)
        if view is None:
            view = self._cache[key] = self._build(self._index)
        return view

    def _build(self, i: int) -> EpochView:
        d = self._data[i]
        if d.tree is not None:
            rows = render.tree_rows(d.tree)
            members = d.tree.members()
            tree_known = True
        elif d.members is not None:
            rows = render.tree_rows(members=d.members)
            members = d.members
            tree_known = False
        else:
            rows, members, tree_known = [], [], False
        svg = render.tree_svg(rows, changed=d.changed) if rows else _unknown_svg()
        mem = tuple(MappingProxyType({"leaf_index": int(m.leaf_index),
                                      "identity": render.identity_text(m.identity)})
                    for m in members)
        secrets = tuple(MappingProxyType({"name": n, "derivation": how, "known": v is not None,
                                          "value": v.hex() if (v is not None and self._reveal) else None})
                        for n, how, v in d.secrets)
        traffic = self._traffic(d.key)
        return EpochView(d.key, i, svg, tree_known, mem, secrets, self._reveal, d.commit,
                         tuple(d.proposals), traffic, tuple(d.unknown), self.source_kind,
                         tuple(d.senders), tuple(d.changed), d.diff)

    def _traffic(self, key: EpochKey) -> pd.DataFrame:
        if self._capture is None:
            return pd.DataFrame(columns=TRAFFIC_COLUMNS)
        f = self._capture.frames
        mask = f["epoch"].eq(key.epoch).fillna(False).astype(bool)
        if key.group_id is not None:
            mask &= f["group_id"].eq(key.group_id.hex()).fillna(False).astype(bool)
        cols = [c for c in TRAFFIC_COLUMNS if c in f.columns]
        return f.loc[mask, cols]

    def secrets_html(self) -> str:
        return self.current.secrets_html()

    def _repr_html_(self) -> str:
        return self.current._repr_html_()


def _members_of(d: _EpochData) -> Optional[List[Any]]:
    if d.tree is not None:
        return list(d.tree.members())
    return d.members


def _diff_epochs(data: Sequence[_EpochData]) -> None:
    """Each epoch's :class:`EpochDiff` from the epoch before it (same group, consecutive):
    node by node when both trees are known, else leaf by leaf from the members; the changed
    nodes are outlined in the tree (a capture's own ``Capture.trees`` diff is kept)."""
    for prev, d in zip(data, data[1:]):
        if prev.key.group_id != d.key.group_id or prev.key.epoch + 1 != d.key.epoch:
            continue
        old_m, new_m = _members_of(prev), _members_of(d)
        if prev.tree is not None and d.tree is not None:
            d.diff = epoch_diff(prev.key.epoch, d.key.epoch, old_tree=prev.tree, new_tree=d.tree)
        elif old_m is not None and new_m is not None:
            d.diff = epoch_diff(prev.key.epoch, d.key.epoch, old_members=old_m, new_members=new_m)
        else:
            continue
        if not d.changed:
            d.changed = d.diff.changed_nodes


def _unknown_svg() -> str:
    return ('<svg xmlns="http://www.w3.org/2000/svg" class="gbp-tree unknown" width="260" '
            'height="30"><text x="4" y="20" font-family="sans-serif" font-size="12">ratchet tree '
            'unknown (not in the key log)</text></svg>')


def _epochs_of_contexts(ctxs: Sequence[Any], group_id: Optional[bytes],
                        trees: Mapping[Tuple[bytes, int], Any]) -> List[_EpochData]:
    if group_id is None:  # the group most of the contexts are in now (not their own old ones)
        counts: Dict[bytes, int] = {}
        for ctx in ctxs:
            try:
                counts[bytes(ctx.group_id)] = counts.get(bytes(ctx.group_id), 0) + 1
            except GbpLabError:
                continue
        if counts:
            group_id = max(counts, key=lambda g: counts[g])
    by_key: Dict[EpochKey, _EpochData] = {}
    for ctx in ctxs:
        for s in ctx.history:
            if group_id is not None and s.group_id != group_id:
                continue
            key = EpochKey(bytes(s.group_id), int(s.epoch))
            if key in by_key:
                continue
            by_key[key] = _EpochData(
                key, None, list(s.members),
                [(n, how, None if v is None else v.reveal()) for n, how, v in s.epoch_secrets.explain()])
    # full trees: recorded ones (TreeRecorder), and where a context sits in that epoch now
    for (gid, ep), tree in dict(trees).items():
        key = EpochKey(bytes(gid), int(ep))
        if key in by_key:
            by_key[key].tree = tree
    for ctx in ctxs:
        try:
            key = EpochKey(bytes(ctx.group_id), int(ctx.epoch))
            if key in by_key and by_key[key].tree is None:
                by_key[key].tree = ctx.tree
        except GbpLabError:  # closed context
            continue
    out = sorted(by_key.values(), key=lambda d: (d.key.group_id or b"", d.key.epoch))
    prev: Optional[_EpochData] = None
    for d in out:
        if d.tree is None:
            d.unknown.append("parent nodes and unmerged leaves: a past epoch keeps only its "
                             "members (MlsContext.history), not the whole tree")
        _infer_commit(prev if prev is not None and prev.key.group_id == d.key.group_id else None, d)
        prev = d
    return out


def _ident(m: Any) -> str:
    return render.identity_text(m.identity)


def _infer_commit(prev: Optional[_EpochData], d: _EpochData) -> None:
    """The commit that led to ``d`` from the change of members (RFC 9420 §12.1 proposals)."""
    if prev is None:
        if d.key.epoch == 0:
            who = ", ".join(_ident(m) for m in (d.members or []))
            d.commit = f"group created (epoch 0) by {who}" if who else "group created (epoch 0)"
        else:
            d.commit = "first epoch seen (joined by Welcome or history truncated): commit unknown"
        return
    if prev.key.epoch + 1 != d.key.epoch:
        d.commit = f"epochs {prev.key.epoch + 1}..{d.key.epoch - 1} not seen: commit unknown"
        return
    old = {int(m.leaf_index): m for m in (prev.members or [])}
    new = {int(m.leaf_index): m for m in (d.members or [])}
    props = []
    for li in sorted(set(old) - set(new)):
        props.append(f"Remove(leaf {li}: {_ident(old[li])})")
    for li in sorted(set(new) - set(old)):
        props.append(f"Add({_ident(new[li])} → leaf {li})")
    for li in sorted(set(old) & set(new)):
        if old[li].identity != new[li].identity:
            props.append(f"Remove(leaf {li}: {_ident(old[li])}) + Add({_ident(new[li])} → leaf {li})")
        elif old[li].encryption_key != new[li].encryption_key:
            props.append(f"Update / path of leaf {li} ({_ident(new[li])}): new encryption key")
    d.proposals = props
    d.commit = (f"Commit epoch {prev.key.epoch} → {d.key.epoch}: " +
                ("; ".join(props) if props else "no membership change (empty commit)") +
                " (inferred from the members of both epochs)")


def _epochs_of_capture(cap: Any, group_id: Optional[bytes]) -> List[_EpochData]:
    frames = cap.frames
    keys: Dict[EpochKey, _EpochData] = {}
    gids = set()
    if len(frames):
        sub = frames[frames["group_id"].notna() & frames["epoch"].notna()]
        for gid_hex, ep in sub[["group_id", "epoch"]].drop_duplicates().itertuples(index=False):
            try:
                gid = bytes.fromhex(gid_hex)
            except ValueError:
                continue
            gids.add(gid)
            keys.setdefault(EpochKey(gid, int(ep)), _EpochData(EpochKey(gid, int(ep))))
    log = cap.keylog
    framed = set(gids)
    if log is not None:
        for gid in log.groups():
            if framed and gid not in framed and group_id is None:
                continue  # a group of the key log that no frame of the capture belongs to
            gids.add(gid)
            for ep in log.epochs(gid):
                keys.setdefault(EpochKey(gid, int(ep)), _EpochData(EpochKey(gid, int(ep))))
    if group_id is not None:
        keys = {k: v for k, v in keys.items() if k.group_id == group_id}
    out = sorted(keys.values(), key=lambda d: (d.key.group_id or b"", d.key.epoch))
    control = _control_rows(cap)
    trees = getattr(cap, "trees", None)  # Capture.trees: each epoch's tree rebuilt by an observer
    for d in out:
        gid_or_none, ep = d.key
        assert gid_or_none is not None  # a capture's epochs are keyed by their group id
        gid = gid_or_none
        for name, how in _DERIVATIONS.items():
            value = None
            if log is not None and name in _KEYLOG_SECRETS:
                value = getattr(log, name)(gid, ep)
            d.secrets.append((name, how, value))
        missing = [n for n, _h, v in d.secrets if v is None]
        if missing:
            d.unknown.append("secrets not in the key log: " + ", ".join(missing))
        et = trees.epochs.get((gid, ep)) if trees is not None else None
        if et is not None and et.tree is not None:  # rebuilt from the decrypted commits
            d.tree, d.changed = et.tree, tuple(et.changed)
        else:
            d.unknown.append("ratchet tree and MLS members: " + (
                et.reason if et is not None and et.reason else "a capture's key log carries secrets only"))
        if len(frames):
            m = frames["epoch"].eq(ep).fillna(False).astype(bool) & \
                frames["group_id"].eq(gid.hex()).fillna(False).astype(bool)
            d.senders = sorted({int(s) for s in frames.loc[m, "sender"].dropna()})
        # the commit that led here: PREPARE of the previous epoch whose EXECUTE advanced to ep
        prep = [c for c in control if c["group_id"] == gid.hex() and c["epoch"] == ep - 1
                and c["opcode"] == ControlOpcode.PREPARE_TRANSITION]
        exe = [c for c in control if c["group_id"] == gid.hex() and c["epoch"] == ep - 1
               and c["opcode"] == ControlOpcode.EXECUTE_TRANSITION]
        if prep:
            p = prep[0]
            d.commit = (f"PREPARE_TRANSITION tid={p['tid']} from member {p['sender']} at "
                        f"t={p['time']:.6f}: {mls_summary(p['args'])}"
                        + (f"; EXECUTE tid={exe[0]['tid']} at t={exe[0]['time']:.6f}" if exe else ""))
            commit = p.get("commit")
            if isinstance(commit, dict) and commit.get("proposals") is not None:
                d.proposals = [_proposal_text(x) for x in commit["proposals"]]
                if not d.proposals:
                    d.proposals.append("no proposals: an empty commit (key rotation, §12.4)")
                if commit.get("path"):
                    d.proposals.append("UpdatePath (the committer's new path secrets, §12.4.1)")
            else:
                why = p.get("commit_error") or ("an MLS PrivateMessage; opening it needs the "
                                                "epoch's sender-data and encryption secrets")
                d.proposals = []
                d.unknown.append(f"the commit's proposals ({why})")
        elif ep == 0:
            d.commit = "epoch 0: group creation (no commit)"
        else:
            d.commit = "no PREPARE_TRANSITION of the previous epoch in the capture: commit unknown"
    return out


def _proposal_text(p: Any) -> str:
    if not isinstance(p, dict):
        return str(p)
    kind = str(p.get("type", "?"))
    rest = ", ".join(f"{k}={v}" for k, v in p.items() if k != "type")
    return f"{kind.capitalize()}({rest})"


def _control_rows(cap: Any) -> List[Dict[str, Any]]:
    """Decrypted control messages of a capture, with the PREPARE commit's decoded proposals when
    the capture's ``control`` table (:mod:`gbp_lab.capture.tables`) has them."""
    f = cap.frames
    out: List[Dict[str, Any]] = []
    if not len(f):
        return out
    extra: Dict[int, Dict[str, Any]] = {}
    try:
        table = cap.control
        if isinstance(table, pd.DataFrame) and {"frame", "commit"} <= set(table.columns):
            for fr, commit, err in zip(table["frame"], table["commit"],
                                       table.get("commit_error", [None] * len(table))):
                if not pd.isna(fr):
                    extra[int(fr)] = {"commit": commit, "commit_error": err}
    except (AttributeError, GbpLabError):
        pass  # an older Capture without derived tables
    m = f["stream_type"].eq(int(StreamType.CONTROL)).fillna(False).astype(bool) & f["decrypted"]
    rel = rel_time_of(f)  # seconds since the first packet
    for pos in m.to_numpy().nonzero()[0]:
        pt = cap.plaintexts[pos]
        if pt is None:
            continue
        try:
            c = decode_control(pt)
        except GbpLabError:
            continue
        row = f.iloc[pos]
        out.append({"time": float(rel[pos]), "group_id": row["group_id"],
                    "epoch": int(row["epoch"]), "opcode": c.opcode, "tid": c.transition_id,
                    "sender": c.sender_id, "args": c.args, "row": int(pos),
                    **extra.get(int(pos), {})})
    return out
