"""Thin ipywidgets views over the view-models of :mod:`.models`.

Each view is an ``ipywidgets.VBox`` holding ``.model``; user input calls the model, and the
model's ``observe`` callback re-renders the HTML parts. All output goes through
``ipywidgets.HTML`` values (strings from :mod:`.render`), so a test can drive a view without a
browser: set ``view.slider.value``, click ``view.next_button`` (``.click()``), read
``view.tree_html.value``.
"""
from __future__ import annotations

import threading
from typing import Any, Optional, Sequence

import ipywidgets as W

from gbp_lab.capture.columns import rel_time_of

from . import render
from .base import WidgetError
from .epoch_stepper import EpochStepper
from .flow_ladder import FlowLadder
from .frame_inspector import FrameInspector
from .live_panel import LivePanel

__all__ = ["EpochStepperView", "FrameInspectorView", "FlowLadderView", "LiveCaptureView"]


def _df_html(df, max_rows: int = 200) -> str:
    if df is None or not len(df):
        return "<i>no traffic in this epoch</i>"
    return df.head(max_rows).to_html(classes="gbp-traffic", na_rep="", max_cols=20)


class EpochStepperView(W.VBox):
    """Slider + prev/next + "reveal secrets" over an :class:`EpochStepper` (or anything it
    accepts: MlsContexts, a capture)."""

    def __init__(self, source: Any, **kw: Any) -> None:
        model = source if isinstance(source, EpochStepper) else EpochStepper(source, **kw)
        self.model = model
        self.slider = W.IntSlider(value=model.index, min=0, max=max(len(model) - 1, 0),
                                  description="step", continuous_update=False)
        self.prev_button = W.Button(description="◀ prev")
        self.next_button = W.Button(description="next ▶")
        self.reveal_toggle = W.ToggleButton(value=model.reveal, description="reveal secrets")
        self.title = W.HTML()
        self.tree_html = W.HTML()
        self.members_html = W.HTML()
        self.secrets_html = W.HTML()
        self.commit_html = W.HTML()
        self.diff_html = W.HTML()
        self.traffic_html = W.HTML()
        self.slider.observe(lambda ch: model.go(int(ch["new"])), names="value")
        self.prev_button.on_click(lambda _b: model.prev())
        self.next_button.on_click(lambda _b: model.next())
        self.reveal_toggle.observe(lambda ch: setattr(model, "reveal", bool(ch["new"])), names="value")
        model.observe(lambda _m: self.refresh())
        super().__init__([W.HBox([self.prev_button, self.slider, self.next_button, self.reveal_toggle]),
                          self.title, W.HBox([self.tree_html, self.members_html]),
                          self.commit_html, self.diff_html, self.secrets_html, self.traffic_html])
        self.refresh()

    def refresh(self) -> None:
        v = self.model.current
        if self.slider.value != v.index:
            self.slider.value = v.index
        if self.reveal_toggle.value != v.revealed:
            self.reveal_toggle.value = v.revealed
        gid = v.group_id.hex() if v.group_id else "?"
        self.title.value = (f"<h4>epoch {v.epoch} <small>group {render.esc(gid)} · "
                            f"step {v.index + 1}/{len(self.model)}</small></h4>")
        note = "" if v.tree_known else "<div><i>" + "<br>".join(render.esc(u) for u in v.unknown) + "</i></div>"
        self.tree_html.value = v.tree_svg + note
        senders = (f"<div>GBP members seen sending: {render.esc(', '.join(map(str, v.senders)))}</div>"
                   if v.senders else "")
        self.members_html.value = (render.table_html(list(v.members), ["leaf_index", "identity"])
                                   if v.members else "<i>MLS members unknown</i>") + senders
        self.commit_html.value = (f"<b>commit:</b> {render.esc(v.commit)}" +
                                  ("<ul>" + "".join(f"<li>{render.esc(p)}</li>" for p in v.proposals)
                                   + "</ul>" if v.proposals else ""))
        self.diff_html.value = (v.diff.html() if v.diff is not None else
                                "<i>first epoch shown: nothing to compare with</i>")
        self.secrets_html.value = v.secrets_html()
        self.traffic_html.value = _df_html(v.traffic)


class FrameInspectorView(W.VBox):
    """Filter boxes, the frame list, the protocol tree, a field chooser and the hex dump.

    The view follows its model, not only its own boxes: a filter set from code
    (``view.model.set_filter(query="epoch == 2")``), a frame selected from code or by a linked
    plot (``plots=[...]``, :meth:`link`; :func:`gbp_lab.plots.link`), or another model assigned to
    ``view.model`` all redraw the list, the boxes and the tree."""

    def __init__(self, source: Any, *, max_list: int = 5000, plots: Sequence[Any] = (),
                 **kw: Any) -> None:
        model = source if isinstance(source, FrameInspector) else FrameInspector(source, **kw)
        self._model: Optional[FrameInspector] = None
        self.max_list = max_list
        self.filter_text = W.Text(placeholder="filter: protocol / info / src / dst",
                                  continuous_update=False)
        self.query_text = W.Text(placeholder="pandas query, e.g. epoch == 1 and sender == 2",
                                 continuous_update=False)
        self.status = W.HTML()
        self.frame_list = W.Select(options=[], rows=12, layout=W.Layout(width="100%"))
        self.field_list = W.Dropdown(options=[], description="field")
        self.tree_html = W.HTML()
        self.hex_html = W.HTML()
        self._busy = False
        self._listed: Any = None  # the model's rows object the list shows
        self._linked: list = []  # highlight(label) of linked plots
        self.filter_text.observe(lambda ch: self._filter(text=ch["new"]), names="value")
        self.query_text.observe(lambda ch: self._filter(query=ch["new"]), names="value")
        self.frame_list.observe(self._on_frame, names="value")
        self.field_list.observe(self._on_field, names="value")
        super().__init__([W.HBox([self.filter_text, self.query_text]), self.status,
                          self.frame_list, self.field_list, W.HBox([self.tree_html, self.hex_html])])
        self.add_class("gbp-inspector")  # the view's DOM class (tests/test_browser.py)
        self.model = model
        for p in plots:  # interactive plots (gbp_lab.plots.interactive): a click selects here
            self.link(p)

    def link(self, plot: Any) -> Any:
        """A click on a point of ``plot`` (an interactive plot: ``plot_*(..., interactive=True)``)
        selects that frame here — in whichever model the view shows then. Returns ``plot``."""
        on_select = getattr(plot, "on_select", None)
        if not callable(on_select):
            raise WidgetError("only an interactive plot (plot_*(..., interactive=True)) can be "
                              "linked", vid="LAB-WIDGET-LINK")
        on_select(lambda label: self.model.select(label))
        highlight = getattr(plot, "highlight", None)
        if callable(highlight):  # the view's selection rings the frame's points on the plot
            self._linked.append(highlight)
            highlight(self.model.selected)
        return plot

    @property
    def model(self) -> FrameInspector:
        assert self._model is not None
        return self._model

    @model.setter
    def model(self, model: FrameInspector) -> None:
        """Show another :class:`FrameInspector` (the view observes it from now on)."""
        if not isinstance(model, FrameInspector):
            raise WidgetError("FrameInspectorView.model must be a FrameInspector",
                              vid="LAB-WIDGET-MODEL")
        if self._model is not None:
            self._model.unobserve(self._on_model)
        self._model = model
        self._listed = None
        model.observe(self._on_model)
        self._on_model(model)

    def _on_model(self, _m: Any = None) -> None:
        """The model changed (from the boxes, from code or from a linked plot): refill the
        list when its rows changed, show the model's filter in the boxes, redraw the tree."""
        m = self.model
        if m.rows is not self._listed:
            self._fill_list()
        self._busy = True
        try:  # the boxes show the model's filter (without filtering again)
            if self.filter_text.value != m.text:
                self.filter_text.value = m.text
            if self.query_text.value != m.query:
                self.query_text.value = m.query
        finally:
            self._busy = False
        self.refresh()
        for highlight in list(self._linked):
            highlight(m.selected)

    def _filter(self, **kw: Any) -> None:
        if self._busy:
            return
        try:
            self.model.set_filter(**kw)  # the model's observer (_on_model) refills the list
        except WidgetError as exc:
            self.status.value = f"<span style='color:#b00'>{render.esc(exc.message)}</span>"

    def _fill_list(self) -> None:
        all_rows = self.model.rows
        rows = all_rows.head(self.max_list)  # a Select with 10^5 options would choke the browser
        opts = [(f"{lab:>5} {t:.6f} {p} {info}", int(lab))
                for lab, t, p, info in zip(rows.index, rel_time_of(rows), rows["protocol"],
                                            rows["info"])]
        self._busy = True
        try:
            self.frame_list.options = opts
            sel = self.model.selected
            self.frame_list.value = sel if sel in set(rows.index) else None
        finally:
            self._busy = False
        self._listed = all_rows
        more = f" (first {len(rows)} listed: narrow the filter)" if len(all_rows) > len(rows) else ""
        self.status.value = f"{len(all_rows)} of {len(self.model.capture.frames)} frames{more}"

    def _on_frame(self, ch) -> None:
        if self._busy or ch["new"] is None:
            return
        self.model.select(int(ch["new"]))

    def _on_field(self, ch) -> None:
        if self._busy or not ch["new"]:
            return
        self.model.select_field(ch["new"])

    def refresh(self) -> None:
        m = self.model
        self._busy = True
        try:  # the list shows the model's selection (made in the list, from code or a plot)
            listed = {v for _t, v in self.frame_list.options}
            want = m.selected if m.selected in listed else None
            if self.frame_list.value != want:
                self.frame_list.value = want
        finally:
            self._busy = False
        if m.selected is None:
            self.tree_html.value = "<i>select a frame</i>"
            self.hex_html.value = ""
            self._busy = True
            try:
                self.field_list.options = []
            finally:
                self._busy = False
            return
        paths = m.fields()
        names = [n for n in paths if "/" in n]
        sel = m.selected_field_path
        self._busy = True
        try:
            if list(self.field_list.options) != names:
                self.field_list.options = names
            current = next((n for n, p in paths.items() if p == sel), None)
            self.field_list.value = current if current in names else None
        finally:
            self._busy = False
        self.tree_html.value = m.tree_html()
        self.hex_html.value = m.hexdump_html()


class FlowLadderView(W.VBox):
    """The ladder SVG with a slider paging through the arrows."""

    def __init__(self, source: Any, **kw: Any) -> None:
        model = source if isinstance(source, FlowLadder) else FlowLadder(source, **kw)
        self.model = model
        self.slider = W.IntSlider(value=0, min=0, max=max(len(model.arrows) - 1, 0),
                                  description="from frame", continuous_update=False)
        self.svg_html = W.HTML()
        self.slider.observe(lambda ch: model.window(int(ch["new"])), names="value")
        model.observe(lambda _m: self.refresh())
        super().__init__([self.slider, self.svg_html])
        self.refresh()

    def refresh(self) -> None:
        if self.slider.value != self.model.start:
            self.slider.value = self.model.start
        self.svg_html.value = self.model.svg()


class LiveCaptureView(W.VBox):
    """The panel of a running live capture (:class:`~.live_panel.LivePanel`): status line with
    frames/s, per-protocol counters, current epoch and members, the last frames, a live ladder
    with epoch bands, the epoch timeline and the findings. A background thread redraws it every
    ``interval`` seconds while the capture runs (the kernel stays free for other cells) and once
    more after it stops; :meth:`close` ends the thread. ``autostart=False``: no thread (call
    :meth:`refresh` yourself)."""

    def __init__(self, live: Any, *, autostart: bool = True, **kw: Any) -> None:
        model = live if isinstance(live, LivePanel) else LivePanel(live, **kw)
        self.model = model
        self.status = W.HTML()
        self.counters_html = W.HTML()
        self.epoch_html = W.HTML()
        self.last_html = W.HTML()
        self.ladder_html = W.HTML()
        self.timeline_html = W.HTML()
        self.findings_html = W.HTML()
        self._closing = threading.Event()
        self._thread: Optional[threading.Thread] = None
        super().__init__([self.status, self.counters_html, self.epoch_html,
                          W.HBox([self.ladder_html, self.timeline_html]), self.last_html,
                          self.findings_html])
        self.add_class("gbp-live")  # the panel's DOM class (tests/test_browser.py)
        self.refresh(force=True)
        if autostart:
            self._thread = threading.Thread(target=self._loop, name="gbp-live-view", daemon=True)
            self._thread.start()

    def refresh(self, *, force: bool = False) -> bool:
        """Update the model if due (or ``force``) and redraw the parts; True when redrawn."""
        m = self.model
        changed = m.update(force=force)
        self.status.value = f'<div class="gbp-live-status">{render.esc(m.status_text())}</div>'
        if changed:
            self.counters_html.value = m.counters_html()
            self.epoch_html.value = m.epoch_html()
            self.last_html.value = m.last_html()
            self.ladder_html.value = m.ladder_svg()
            self.timeline_html.value = m.timeline_html()
            self.findings_html.value = m.findings_html()
        return changed

    def _loop(self) -> None:
        live = self.model.live
        while not self._closing.wait(self.model.interval):
            running = live.running
            self.refresh()
            if not running and getattr(live, "started", None) is not None:
                self.refresh(force=True)  # the capture's last rows and findings
                break

    @property
    def active(self) -> bool:
        """Is the background redraw thread running?"""
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        super().close()
