"""HTML/SVG rendering helpers of the lab's widgets (pure functions: strings in, strings out).

* :func:`tree_svg` — a ratchet tree (RFC 9420 §4.1, §7.1) in array order: leaves at even node
  indices along the bottom, parents above them at their level (§4.2 / Appendix C tree math),
  blank nodes dashed, leaves labelled with identity and leaf index, parent nodes with their
  unmerged leaves (§7.1 ``ParentNode.unmerged_leaves``), unknown nodes (a past epoch whose tree
  was not kept) marked ``?``.
* :func:`hexdump_html` / :func:`hexdump_lines` — a hex dump with one highlighted byte range.
* :func:`protocol_tree_html` — a protocol tree (nested ``<details>``) of any objects with
  ``name``, ``value``, ``start``, ``end``, ``children`` attributes
  (:class:`gbp_lab.widgets.field_tree.FieldNode`).
* ``*_html`` — ``_repr_html_`` helpers for frames (rows of the capture's ``frames`` table),
  node events (:class:`~gbp_lab.core.gbp.events.NodeEvent`), MLS trees
  (:class:`~gbp_lab.core.mls.tree.RatchetTree`) and tables of rows.

Nothing here imports ipywidgets or matplotlib; every string is escaped with :func:`html.escape`.
"""
from __future__ import annotations

import html
from dataclasses import fields, is_dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from gbp_lab.core.errors import UsageError
from gbp_lab.core.mls import treemath as tm

__all__ = [
    "esc", "tree_rows", "tree_svg", "hexdump_lines", "hexdump_html", "protocol_tree_html",
    "table_html", "frame_html", "event_html", "mls_tree_html", "secrets_html", "identity_text", "short",
]

esc = html.escape


def identity_text(identity: Any) -> str:
    """A printable identity: UTF-8 text when it decodes to printable text, else hex."""
    if identity is None:
        return "?"
    if isinstance(identity, str):
        return identity
    b = bytes(identity)
    try:
        s = b.decode("utf-8")
        if s.isprintable():
            return s
    except UnicodeDecodeError:
        pass
    return b.hex()


# --- ratchet tree ---------------------------------------------------------------------------

def tree_rows(tree: Any = None, *, members: Optional[Iterable[Any]] = None,
              n_leaves: Optional[int] = None) -> List[Dict[str, Any]]:
    """Rows describing each node of a tree for :func:`tree_svg`.

    ``tree``: a :class:`~gbp_lab.core.mls.tree.RatchetTree` (everything known: blanks, parents,
    unmerged leaves). Without a tree, ``members`` (objects with ``leaf_index`` and ``identity``,
    e.g. :class:`~gbp_lab.core.mls.tree.Member`) give the leaves only; leaves without a member
    are blank and every parent node is ``unknown`` (its content is not known, only its place).
    """
    if tree is not None:
        rows = []
        nodes = tree.nodes
        for i, node in enumerate(nodes):
            row: Dict[str, Any] = {"node": i, "kind": "leaf" if i % 2 == 0 else "parent",
                                   "level": tm.level(i), "blank": node is None,
                                   "leaf_index": i // 2 if i % 2 == 0 else None,
                                   "identity": None, "unmerged_leaves": (), "unknown": False}
            if node is not None:
                if i % 2 == 0:
                    row["identity"] = getattr(getattr(node, "credential", None), "identity", None)
                else:
                    row["unmerged_leaves"] = tuple(node.unmerged_leaves)
            rows.append(row)
        return rows
    if members is None:
        raise UsageError("tree_rows needs a tree or members", vid="LAB-WIDGET-TREE")
    by_leaf = {int(m.leaf_index): m for m in members}
    n = n_leaves or 1
    need = max(by_leaf, default=0) + 1
    while n < need:
        n *= 2
    rows = []
    for i in range(2 * n - 1):
        if i % 2 == 0:
            m = by_leaf.get(i // 2)
            rows.append({"node": i, "kind": "leaf", "level": 0, "blank": m is None,
                         "leaf_index": i // 2, "identity": None if m is None else m.identity,
                         "unmerged_leaves": (), "unknown": False})
        else:
            rows.append({"node": i, "kind": "parent", "level": tm.level(i), "blank": False,
                         "leaf_index": None, "identity": None, "unmerged_leaves": (),
                         "unknown": True})
    return rows


def tree_svg(rows: Sequence[Mapping[str, Any]], *, highlight_leaf: Optional[int] = None,
             dx: int = 56, dy: int = 64, changed: Iterable[int] = ()) -> str:
    """An SVG drawing of the tree described by ``rows`` (:func:`tree_rows` or
    :meth:`RatchetTree.describe`). Each node is a ``<g class="node leaf|parent [blank]
    [unknown] [changed]" data-node="i">`` with a ``<title>``; edges go from each node to its parent
    (RFC 9420 Appendix C ``parent``). ``changed`` nodes (e.g. since the previous epoch) are
    drawn with a thick orange outline."""
    changed = frozenset(int(c) for c in changed)
    n_nodes = len(rows)
    if n_nodes == 0:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    n_leaves = (n_nodes + 1) // 2
    top = max(int(r.get("level", tm.level(int(r["node"])))) for r in rows)
    width = max(n_nodes * dx // 2 + dx, 120)
    height = (top + 1) * dy + 46

    def xy(i: int) -> Tuple[float, float]:
        lvl = tm.level(i)
        return dx / 2 + i * dx / 2, 24 + (top - lvl) * dy

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="gbp-tree" width="{width}" '
           f'height="{height}" font-family="sans-serif" font-size="11">']
    # edges first (under the nodes)
    for r in rows:
        i = int(r["node"])
        if n_leaves > 1 and i != tm.root(n_leaves):
            p = int(tm.parent(i, n_leaves))
            (x1, y1), (x2, y2) = xy(i), xy(p)
            out.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
                       f'stroke="#999" stroke-width="1"/>')
    for r in rows:
        i = int(r["node"])
        x, y = xy(i)
        leaf = i % 2 == 0
        blank = bool(r.get("blank"))
        unknown = bool(r.get("unknown"))
        cls = ["node", "leaf" if leaf else "parent"] + (["blank"] if blank else []) + \
              (["unknown"] if unknown else []) + (["changed"] if i in changed else [])
        dash = ' stroke-dasharray="4 3"' if blank or unknown else ""
        stroke = "#333"
        if i in changed:
            stroke, dash = "#e67e00", dash + ' stroke-width="3"'
        fill = "#fff" if blank else ("#eee" if unknown else ("#d8ecff" if leaf else "#e6f5e1"))
        if leaf and highlight_leaf is not None and r.get("leaf_index") == highlight_leaf:
            fill = "#ffe9a8"
        if leaf:
            ident = "" if blank else identity_text(r.get("identity"))
            title = (f"node {i}, leaf {r.get('leaf_index')}: " +
                     ("blank" if blank else f"member {ident}"))
            out.append(f'<g class="{" ".join(cls)}" data-node="{i}"><title>{esc(title)}</title>'
                       f'<rect x="{x - 24:.0f}" y="{y - 12:.0f}" width="48" height="24" rx="4" '
                       f'fill="{fill}" stroke="{stroke}"{dash}/>'
                       f'<text x="{x:.0f}" y="{y + 4:.0f}" text-anchor="middle">'
                       f'{esc(short(ident) if not blank else "_")}</text>'
                       f'<text x="{x:.0f}" y="{y + 26:.0f}" text-anchor="middle" fill="#555">'
                       f'leaf {esc(str(r.get("leaf_index")))}</text></g>')
        else:
            unmerged = tuple(r.get("unmerged_leaves") or ())
            state = "unknown (not kept)" if unknown else ("blank" if blank else "parent")
            title = f"node {i}: {state}"
            if unmerged:
                title += f", unmerged leaves {list(unmerged)}"
            label = "?" if unknown else ("_" if blank else str(i))
            out.append(f'<g class="{" ".join(cls)}" data-node="{i}"><title>{esc(title)}</title>'
                       f'<circle cx="{x:.0f}" cy="{y:.0f}" r="13" fill="{fill}" stroke="{stroke}"{dash}/>'
                       f'<text x="{x:.0f}" y="{y + 4:.0f}" text-anchor="middle">{esc(label)}</text>')
            if unmerged:
                out.append(f'<text class="unmerged" x="{x:.0f}" y="{y - 17:.0f}" '
                           f'text-anchor="middle" fill="#a33">unmerged '
                           f'{esc(",".join(map(str, unmerged)))}</text>')
            out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def short(s: str, n: int = 8) -> str:
    """``s`` cut to ``n`` characters (the last one an ellipsis when cut)."""
    return s if len(s) <= n else s[: n - 1] + "…"


# --- hex dump -------------------------------------------------------------------------------

def hexdump_lines(data: bytes, highlight: Optional[Tuple[int, int]] = None,
                  width: int = 16) -> List[str]:
    """Plain-text hex dump lines (``offset  hex  ascii``); highlighted bytes are in ``[..]``."""
    lo, hi = highlight if highlight else (-1, -1)
    lines = []
    for off in range(0, len(data), width):
        chunk = data[off:off + width]
        cells = []
        for j, b in enumerate(chunk):
            k = off + j
            cell = f"{b:02x}"
            if lo <= k < hi:
                cell = f"[{cell}]"
            cells.append(cell)
        asc = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{off:04x}  {' '.join(cells)}  {asc}")
    return lines


def hexdump_html(data: bytes, highlight: Optional[Tuple[int, int]] = None,
                 width: int = 16) -> str:
    """A ``<pre class="gbp-hex">`` hex dump; the bytes of ``highlight = (start, end)`` (end
    exclusive) are wrapped in ``<span class="hl" data-off="k">`` in both the hex and the ASCII
    column."""
    data = bytes(data)
    lo, hi = highlight if highlight else (-1, -1)
    out = ['<pre class="gbp-hex" style="font-family:monospace;line-height:1.25">']
    for off in range(0, len(data), width):
        chunk = data[off:off + width]
        hexs, ascs = [], []
        for j, b in enumerate(chunk):
            k = off + j
            h, a = f"{b:02x}", esc(chr(b) if 32 <= b < 127 else ".")
            if lo <= k < hi:
                h = f'<span class="hl" data-off="{k}" style="background:#ffd54f">{h}</span>'
                a = f'<span class="hl" style="background:#ffd54f">{a}</span>'
            hexs.append(h)
            ascs.append(a)
        pad = "   " * (width - len(chunk))
        out.append(f'<span class="off" style="color:#888">{off:04x}</span>  '
                   f'{" ".join(hexs)}{pad}  {"".join(ascs)}\n')
    out.append("</pre>")
    return "".join(out)


# --- protocol tree --------------------------------------------------------------------------

def protocol_tree_html(nodes: Sequence[Any], *, selected: Optional[Tuple[int, ...]] = None,
                       open_depth: int = 2) -> str:
    """Nested ``<details>`` for a protocol tree; each field shows ``name: value`` and, when
    known, its byte range ``[start, end)``. ``selected`` is the path (child indexes) of the
    field to mark with ``class="sel"``."""

    def one(node: Any, path: Tuple[int, ...], depth: int) -> str:
        rng = ""
        if getattr(node, "start", None) is not None:
            rng = f' <span class="rng" style="color:#888">[{node.start}, {node.end})</span>'
        val = getattr(node, "value", None)
        label = f"<b>{esc(str(node.name))}</b>"
        if getattr(node, "label", None):
            label += f' <i style="color:#666">({esc(str(node.label))})</i>'
        if val not in (None, ""):
            label += f": {esc(str(val))}"
        sel = ' class="sel" style="background:#fff3c4"' if selected == path else ""
        data = f' data-path="{".".join(map(str, path))}"'
        kids = getattr(node, "children", ()) or ()
        if not kids:
            return f"<div{sel}{data}>{label}{rng}</div>"
        inner = "".join(one(k, path + (i,), depth + 1) for i, k in enumerate(kids))
        opened = " open" if depth < open_depth else ""
        return (f'<details{opened}{data}><summary{sel}>{label}{rng}</summary>'
                f'<div style="margin-left:1.2em">{inner}</div></details>')

    return ('<div class="gbp-ptree" style="font-family:monospace">'
            + "".join(one(n, (i,), 0) for i, n in enumerate(nodes)) + "</div>")


# --- tables and _repr_html_ helpers ---------------------------------------------------------

def table_html(rows: Sequence[Mapping[str, Any]], columns: Optional[Sequence[str]] = None,
               *, cls: str = "gbp-table") -> str:
    """A plain HTML table of dict rows (values escaped)."""
    if columns is None:
        columns = list(rows[0].keys()) if rows else []
    head = "".join(f"<th>{esc(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(_cell(r.get(c)))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex() if len(v) <= 32 else bytes(v[:32]).hex() + f"… ({len(v)}B)"
    return str(v)


def frame_html(row: Any) -> str:
    """``_repr_html_`` of one frame: a row of the capture's ``frames`` table (a pandas Series
    or a mapping), as a two-column table."""
    items = row.items() if hasattr(row, "items") else dict(row).items()
    body = "".join(f"<tr><th style='text-align:left'>{esc(str(k))}</th><td>{esc(_cell(_na(v)))}</td></tr>"
                   for k, v in items)
    return f'<table class="gbp-frame">{body}</table>'


def _na(v: Any) -> Any:
    try:
        import pandas as pd

        if v is pd.NA or (isinstance(v, float) and v != v):
            return None
    except ImportError:  # pragma: no cover
        pass
    return v


def event_html(event: Any) -> str:
    """``_repr_html_`` of a :class:`~gbp_lab.core.gbp.events.NodeEvent` (or a list of them):
    the kind in bold and only the fields that are set."""
    if isinstance(event, (list, tuple)):
        return "<ol class='gbp-events'>" + "".join(f"<li>{event_html(e)}</li>" for e in event) + "</ol>"
    if is_dataclass(event):
        vals = {f.name: getattr(event, f.name) for f in fields(event)}
    else:
        vals = dict(vars(event))
    kind = vals.pop("kind", type(event).__name__)
    parts = [f"{esc(k)}={esc(_cell(v))}" for k, v in vals.items() if v is not None]
    return f'<span class="gbp-event"><b>{esc(str(kind))}</b> {" ".join(parts)}</span>'


def mls_tree_html(tree: Any, *, members: Optional[Iterable[Any]] = None) -> str:
    """``_repr_html_`` of a :class:`~gbp_lab.core.mls.tree.RatchetTree`: the SVG drawing and a
    table of members."""
    rows = tree_rows(tree)
    mem = [{"leaf": m.leaf_index, "identity": identity_text(m.identity),
            "encryption_key": bytes(m.encryption_key).hex()[:16] + "…"}
           for m in (members if members is not None else tree.members())]
    return f'<div class="gbp-mls-tree">{tree_svg(rows)}{table_html(mem, ["leaf", "identity", "encryption_key"])}</div>'


def secrets_html(rows: Sequence[Mapping[str, Any]], reveal: bool, *,
                 unknown_text: str = "unknown") -> str:
    """The key schedule of an epoch (RFC 9420 §8): name, derivation and — only when ``reveal``
    and the row carries one — the value in hex; hidden values show as dots, secrets the source
    does not have as ``unknown_text``."""
    shown = []
    for r in rows:
        if not r.get("known"):
            value = unknown_text
        elif reveal and r.get("value") is not None:
            value = r["value"]
        else:
            value = "•••• hidden"
        shown.append({"name": r["name"], "derivation": r["derivation"], "value": value})
    return table_html(shown, ["name", "derivation", "value"], cls="gbp-secrets")
