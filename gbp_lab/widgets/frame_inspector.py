"""The :class:`FrameInspector` view-model: a Wireshark-like frame list with a text filter and a
pandas query, the protocol tree of the selected frame (every layer, decrypted ones included:
:mod:`.field_tree`) and the byte range of the selected field for the hex dump."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import pandas as pd

from . import render
from .base import Observable, WidgetError
from .field_tree import FieldNode, frame_protocol_tree, mls_tree

__all__ = ["FrameInspector"]


class FrameInspector(Observable):
    """Frame list + protocol tree + hex dump (see the module docstring).

    ``capture``: a :class:`~gbp_lab.capture.model.Capture`. The record bytes of a row are the
    ones the capture kept when it was read (:meth:`Capture.record <gbp_lab.capture.model.Capture.record>`:
    the read's own ports and heuristic, no second read of the file); ``records=`` may give them
    instead, as a list aligned with ``capture.frames``. ``source=`` is accepted for
    compatibility and no longer needed."""

    TEXT_COLUMNS = ("protocol", "info", "src", "dst")

    def __init__(self, capture: Any, *, source: Any = None,
                 records: Optional[Sequence[bytes]] = None, use_dissectors: bool = True) -> None:
        super().__init__()
        self.capture = capture
        self._records = list(records) if records is not None else None
        self._use_dissectors = use_dissectors
        self._text = ""
        self._query = ""
        self._rows = capture.frames
        self._selected: Optional[int] = None
        self._field: Optional[Tuple[int, ...]] = None
        self._tree_cache: Dict[int, List[FieldNode]] = {}

    # -- filtering ---------------------------------------------------------------------------
    @property
    def text(self) -> str:
        return self._text

    @property
    def query(self) -> str:
        return self._query

    def set_filter(self, text: Optional[str] = None, query: Optional[str] = None) -> pd.DataFrame:
        """Filter the list: ``text`` (case-insensitive substring of protocol/info/src/dst) and a
        pandas ``query`` string over the frame columns; ``None`` keeps the current one. A bad
        query raises :class:`WidgetError` (``LAB-WIDGET-QUERY``) and changes nothing."""
        text = self._text if text is None else str(text)
        query = self._query if query is None else str(query)
        f = self.capture.frames
        if text:
            needle = text.lower()
            mask = pd.Series(False, index=f.index)
            for c in self.TEXT_COLUMNS:
                mask |= f[c].astype("string").str.lower().str.contains(needle, regex=False).fillna(False)
            f = f[mask]
        if query.strip():
            try:
                f = f.query(query, engine="python")
            except Exception as exc:  # noqa: BLE001 - pandas raises many kinds
                raise WidgetError(f"bad query {query!r}: {exc}", vid="LAB-WIDGET-QUERY") from None
        self._text, self._query, self._rows = text, query, f
        if self._selected is not None and self._selected not in f.index:
            self._selected, self._field = None, None
        self.changed()
        return f

    @property
    def rows(self) -> pd.DataFrame:
        """The filtered frame list (index = row label in ``capture.frames``)."""
        return self._rows

    # -- selection ---------------------------------------------------------------------------
    @property
    def selected(self) -> Optional[int]:
        return self._selected

    def select(self, label: int) -> List[FieldNode]:
        """Select the frame with row label ``label`` (of ``capture.frames``); returns its tree."""
        if label not in self.capture.frames.index:
            raise WidgetError(f"no frame {label!r}", vid="LAB-WIDGET-INDEX")
        self._selected, self._field = int(label), None
        self.changed()
        return self.tree

    def select_position(self, pos: int) -> List[FieldNode]:
        """Select the ``pos``-th row of the filtered list."""
        if not 0 <= pos < len(self._rows):
            raise WidgetError(f"row {pos} outside the {len(self._rows)} listed", vid="LAB-WIDGET-INDEX")
        return self.select(int(self._rows.index[pos]))

    def _need(self) -> int:
        if self._selected is None:
            raise WidgetError("no frame selected", vid="LAB-WIDGET-NO-SELECTION")
        return self._selected

    def record(self, label: Optional[int] = None) -> bytes:
        """The bytes of a frame record (the CBOR frame or MLS message, without the length
        prefix)."""
        label = self._need() if label is None else label
        pos = self.capture.frames.index.get_loc(label)
        if self._records is not None:
            return self._records[pos]
        try:
            return self.capture.record(pos)
        except (AttributeError, IndexError):
            raise WidgetError(f"the capture keeps no record bytes for frame {label!r}: pass "
                              "records=", vid="LAB-WIDGET-SOURCE") from None

    def plaintext(self, label: Optional[int] = None) -> Optional[bytes]:
        label = self._need() if label is None else label
        return self.capture.plaintexts[self.capture.frames.index.get_loc(label)]

    @property
    def tree(self) -> List[FieldNode]:
        """The protocol tree of the selected frame."""
        label = self._need()
        t = self._tree_cache.get(label)
        if t is None:
            data = self.record(label)
            row = self.capture.frames.loc[label]
            if row["protocol"] == "MLS":
                t = mls_tree(data, use_dissectors=self._use_dissectors)
            else:
                t = frame_protocol_tree(data, self.plaintext(label), self.capture.keylog,
                                        use_dissectors=self._use_dissectors)
            self._tree_cache[label] = t
        return t

    def fields(self) -> Dict[str, Tuple[int, ...]]:
        """``"Layer/field"`` → path, for every field of the selected frame's tree."""
        out: Dict[str, Tuple[int, ...]] = {}

        def walk(nodes, path, prefix):
            for i, n in enumerate(nodes):
                name = f"{prefix}/{n.name}" if prefix else n.name
                out.setdefault(name, path + (i,))
                walk(n.children, path + (i,), name)

        walk(self.tree, (), "")
        return out

    def node(self, path: Sequence[int]) -> FieldNode:
        nodes: Sequence[FieldNode] = self.tree
        n: Optional[FieldNode] = None
        try:
            for i in path:
                n = nodes[i]
                nodes = n.children
        except (IndexError, TypeError):
            raise WidgetError(f"no field at {tuple(path)!r}", vid="LAB-WIDGET-FIELD") from None
        if n is None:
            raise WidgetError("empty field path", vid="LAB-WIDGET-FIELD")
        return n

    def select_field(self, path_or_name: Any) -> FieldNode:
        """Select a field by path (tuple of child indexes) or by ``"Layer/field"`` name."""
        if isinstance(path_or_name, str):
            paths = self.fields()
            if path_or_name not in paths:
                raise WidgetError(f"no field {path_or_name!r}", vid="LAB-WIDGET-FIELD")
            path = paths[path_or_name]
        else:
            path = tuple(path_or_name)
        n = self.node(path)
        self._field = path
        self.changed()
        return n

    @property
    def selected_field_path(self) -> Optional[Tuple[int, ...]]:
        return self._field

    @property
    def selected_field(self) -> Optional[FieldNode]:
        return None if self._field is None else self.node(self._field)

    @property
    def highlight(self) -> Optional[Tuple[str, int, int]]:
        """``(buffer, start, end)`` of the selected field, ``None`` when it has no position."""
        n = self.selected_field
        if n is None or n.start is None or n.end is None or n.buffer is None:
            return None
        return n.buffer, n.start, n.end

    def buffer(self, name: str = "frame") -> bytes:
        if name == "plaintext":
            return self.plaintext() or b""
        return self.record()

    def hexdump_html(self) -> str:
        """The hex dump of the buffer of the selected field (the frame when none) with the
        field's bytes highlighted."""
        hl = self.highlight
        name = hl[0] if hl else "frame"
        return (f"<div class='gbp-buffer'>{render.esc(name)}</div>" +
                render.hexdump_html(self.buffer(name), (hl[1], hl[2]) if hl else None))

    def tree_html(self) -> str:
        """The protocol tree, preceded by the frame's ``error`` (no key, tag failure, …) if any."""
        err = self.capture.frames.loc[self._need(), "error"] if "error" in self.capture.frames else None
        head = ""
        if isinstance(err, str) and err:
            head = f'<div class="gbp-frame-error" style="color:#b00">{render.esc(err)}</div>'
        return head + render.protocol_tree_html(self.tree, selected=self._field)
