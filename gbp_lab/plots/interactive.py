"""Interactive time-series plots of a capture: zoom and pan, hover shows the frame (its number
and ``info``), a click selects that frame — in a linked :class:`~gbp_lab.widgets.FrameInspector`
(:func:`link`).

Library: **plotly**'s ``FigureWidget``. Since plotly 6 it is an anywidget (a widget whose
front-end code ships inside the Python package), so JupyterLab 4 needs no extension to build or
enable; zoom, pan and hover labels run in the browser, and ``on_click`` / ``on_hover`` call back
into the kernel with the trace and the point indexes — exactly the two events the lab needs. The
alternatives cost more for the same two callbacks: bokeh needs ``jupyter_bokeh`` plus a
``TapTool``/``HoverTool`` wired to a ``CustomJS`` → comm round trip; altair's selections reach
Python only as ``JupyterChart`` parameters (no hover callback with the point); ipympl gives
mouse events in data coordinates and leaves the hit test (and hover labels) to us.

:class:`InteractivePlot` (an ``ipywidgets.VBox``: the figure and a status line) keeps, for each
trace, the frame label of every point (``customdata``), so a click or a hover maps back to a row
of ``capture.frames``. Its static twin is :meth:`InteractivePlot.static` (the matplotlib figure
of :mod:`.static`); its ``_repr_mimebundle_`` carries that figure as ``image/png`` besides the
widget view, so an exported notebook (HTML without widget state) still shows the plot.

The data of the plots come from :mod:`.tables` (the same tables the static plots draw).
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import ipywidgets as W
import numpy as np
import pandas as pd

from gbp_lab.core.errors import UsageError
from gbp_lab.core.gbp.registry import STREAM_NAMES, ControlOpcode, StreamType

from . import static
from .tables import (OPUS_CLOCK_RATE, audio_table, control_table, frames_of, rel_seconds,
                     rtp_jitter, rtp_keys, rtp_loss, stream_label, throughput_bins,
                     transition_latency)

__all__ = ["InteractivePlot", "TraceFrames", "link", "epoch_timeline", "throughput",
           "gap_jitter", "transition_latency_plot", "available"]

#: a point that stands for no frame (an empty throughput bin)
NO_FRAME = -1


def available() -> bool:
    """Can interactive plots be built here (plotly with its FigureWidget, and anywidget)?"""
    try:
        import anywidget  # noqa: F401
        import plotly.graph_objects as go

        return hasattr(go, "FigureWidget")
    except ImportError:
        return False


@dataclass(frozen=True)
class TraceFrames:
    """What the points of one trace stand for: ``frames[i]`` is the row label (in
    ``capture.frames``) of point ``i`` (:data:`NO_FRAME` for none), ``text[i]`` its hover text."""

    name: str
    frames: Sequence[int]
    text: Sequence[str]


class InteractivePlot(W.VBox):
    """A plotly ``FigureWidget`` over a capture, whose points are frames (module docstring).

    ``figure``: the ``FigureWidget``; ``traces``: one :class:`TraceFrames` per figure trace;
    ``hovered`` / ``selected``: the frame label last hovered / clicked; ``status``: an HTML
    line showing it (``frame 12 · 0.120000 s · GTP · …``). :meth:`on_select` registers a
    ``callback(label)`` run on every click (what :func:`link` uses); :meth:`click` and
    :meth:`hover` do in Python what the browser's events do."""

    def __init__(self, capture: Any, figure: Any, traces: Sequence[TraceFrames],
                 static_figure: Callable[[], Any], kind: str) -> None:
        self.capture = capture
        self.figure = figure
        self.traces: List[TraceFrames] = list(traces)
        self.kind = kind
        self._static = static_figure
        self._callbacks: List[Callable[[int], None]] = []
        self.hovered: Optional[int] = None
        self.selected: Optional[int] = None
        self.status = W.HTML("<span class='gbp-plot-status'>hover a point to see its frame, "
                             "click it to select the frame</span>")
        for i, tr in enumerate(figure.data):
            if i < len(self.traces):
                tr.on_click(self._on_click)
                tr.on_hover(self._on_hover)
        # the frame selected elsewhere (a linked inspector), ringed: the last trace, no events
        figure.add_scatter(x=[], y=[], mode="markers", name="selected", showlegend=False,
                           hoverinfo="skip", marker=dict(size=18, symbol="circle-open",
                                                         color="black", line=dict(width=2)))
        self._ring = figure.data[-1]
        super().__init__([figure, self.status])
        self.add_class("gbp-plot")
        self.add_class(f"gbp-plot-{kind}")

    # -- events ------------------------------------------------------------------------------
    def _index_of(self, trace: Any) -> int:
        for i, t in enumerate(self.figure.data):
            if t is trace or t.uid == getattr(trace, "uid", None):
                return i
        raise UsageError("not a trace of this plot", vid="LAB-PLOT-TRACE")

    def _on_click(self, trace: Any, points: Any, _state: Any) -> None:
        for p in points.point_inds:
            self.click(self._index_of(trace), int(p))

    def _on_hover(self, trace: Any, points: Any, _state: Any) -> None:
        for p in points.point_inds:
            self.hover(self._index_of(trace), int(p))

    def frame_at(self, trace: int, point: int) -> int:
        """The frame label of point ``point`` of trace ``trace`` (:data:`NO_FRAME` for none)."""
        try:
            return int(self.traces[trace].frames[point])
        except IndexError:
            raise UsageError(f"no point {point} in trace {trace}", vid="LAB-PLOT-TRACE") from None

    def hover(self, trace: int, point: int) -> Optional[int]:
        """What hovering a point does: remember its frame and show its text in :attr:`status`."""
        label = self.frame_at(trace, point)
        if label == NO_FRAME:
            return None
        self.hovered = label
        self.status.value = (f"<span class='gbp-plot-status'>"
                             f"{_esc(self.traces[trace].text[point])}</span>")
        return label

    def click(self, trace: int, point: int) -> Optional[int]:
        """What clicking a point does: select its frame and run the :meth:`on_select` callbacks."""
        label = self.frame_at(trace, point)
        if label == NO_FRAME:
            return None
        self.selected = label
        self.status.value = (f"<span class='gbp-plot-status'>selected "
                             f"{_esc(self.traces[trace].text[point])}</span>")
        for cb in list(self._callbacks):
            cb(label)
        return label

    def points_of(self, label: int) -> List[tuple]:
        """``(trace, point)`` of every point standing for frame ``label``."""
        return [(ti, pi) for ti, tr in enumerate(self.traces)
                for pi, lab in enumerate(tr.frames) if lab == label]

    def highlight(self, label: Optional[int]) -> None:
        """Ring the points of frame ``label`` (``None``: none) — what a linked inspector's
        selection does to the plot."""
        pts = [] if label is None else self.points_of(int(label))
        with self.figure.batch_update():
            self._ring.x = [self.figure.data[ti].x[pi] for ti, pi in pts]
            self._ring.y = [self.figure.data[ti].y[pi] for ti, pi in pts]
            xaxis = getattr(self.figure.data[pts[0][0]], "xaxis", None) if pts else None
            if xaxis:  # subplots: the ring on the axes of the point
                self._ring.xaxis = xaxis
                self._ring.yaxis = self.figure.data[pts[0][0]].yaxis

    @property
    def ringed(self) -> List[tuple]:
        """``(x, y)`` of the ringed points."""
        return list(zip(self._ring.x or (), self._ring.y or ()))

    def on_select(self, callback: Callable[[int], None]) -> None:
        """Run ``callback(frame label)`` after every click on a point that is a frame."""
        self._callbacks.append(callback)

    # -- the static twin ---------------------------------------------------------------------
    def static(self) -> Any:
        """The same plot as a matplotlib :class:`~matplotlib.figure.Figure` (:mod:`.static`)."""
        return self._static()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view, plus the static figure as ``image/png`` for renderers without
        widgets (exported HTML, nbconvert): a front end picks the richest it can show."""
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            buf = io.BytesIO()
            self.static().savefig(buf, format="png", dpi=80)
            data["image/png"] = base64.b64encode(buf.getvalue()).decode("ascii")
        return bundle


def link(plot: Any, inspector: Any) -> Any:
    """Clicking a point of ``plot`` (an :class:`InteractivePlot`) selects its frame in
    ``inspector`` (a :class:`~gbp_lab.widgets.FrameInspector`, or a
    :class:`~gbp_lab.widgets.FrameInspectorView`, whose list and tree follow their model); a
    frame selected in the inspector is ringed on the plot (:meth:`InteractivePlot.highlight`).
    Returns ``plot``."""
    if not isinstance(plot, InteractivePlot):
        raise UsageError("link() needs an interactive plot (plot_*(..., interactive=True))",
                         vid="LAB-PLOT-LINK")
    target = getattr(inspector, "model", inspector)
    if not callable(getattr(target, "select", None)):
        raise UsageError("link() needs a FrameInspector or FrameInspectorView",
                         vid="LAB-PLOT-LINK")
    plot.on_select(lambda label: target.select(label))
    follow = getattr(target, "observe", None)
    if callable(follow):  # and the inspector's selection rings its points on the plot
        follow(lambda m: plot.highlight(getattr(m, "selected", None)))
    return plot


# --- helpers ----------------------------------------------------------------------------------

def _esc(s: str) -> str:
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def _go() -> Any:
    if not available():
        raise UsageError("interactive plots need plotly>=6 and anywidget: pip install plotly "
                         "anywidget (or interactive=False)", vid="LAB-PLOT-INTERACTIVE")
    import plotly.graph_objects as go

    return go


def _frame_text(f: pd.DataFrame, rel: np.ndarray, label: Any) -> str:
    pos = f.index.get_loc(label)
    info = f["info"].iloc[pos] if "info" in f.columns else ""
    proto = f["protocol"].iloc[pos] if "protocol" in f.columns else ""
    t = rel[pos]
    return f"frame {label} · {t:.6f} s · {proto} · {info}"


def _labels(f: pd.DataFrame, positions: Sequence[Any]) -> List[int]:
    """Row labels of ``capture.frames`` from the tables' ``frame`` positions."""
    out = []
    for p in positions:
        out.append(NO_FRAME if p is None or pd.isna(p) else int(f.index[int(p)]))
    return out


def _layout(fig: Any, title: str, xtitle: str, ytitle: str) -> None:
    fig.update_layout(title=title, xaxis_title=xtitle, yaxis_title=ytitle, hovermode="closest",
                      height=360, margin=dict(l=60, r=20, t=50, b=50), dragmode="zoom",
                      legend=dict(orientation="h", y=-0.25))


XLABEL = "time since the first packet (s)"


# --- the plots --------------------------------------------------------------------------------

def epoch_timeline(capture: Any) -> InteractivePlot:
    """Epochs as bands over time and every frame as a point on its stream's row (MLS records on
    top), as :func:`.static.plot_epoch_timeline`; a point is its frame."""
    go = _go()
    f = frames_of(capture)
    rel = rel_seconds(capture, f["time"])
    fig = go.FigureWidget()
    traces: List[TraceFrames] = []
    streams = f["stream_type"]
    rows = sorted(int(st) for st in StreamType)
    for st in sorted(set(int(s) for s in streams.dropna())):
        mask = streams.eq(st).fillna(False).astype(bool).to_numpy()
        labels = [int(x) for x in f.index[mask]]
        text = [_frame_text(f, rel, lab) for lab in labels]
        name = STREAM_NAMES.get(st, str(st))
        fig.add_scatter(x=rel[mask], y=[st] * len(labels), mode="markers", name=name,
                        customdata=labels, hovertext=text, hoverinfo="text",
                        marker=dict(size=8))
        traces.append(TraceFrames(name, labels, text))
    mls = (f["protocol"] == "MLS").fillna(False).astype(bool).to_numpy()
    if mls.any():
        labels = [int(x) for x in f.index[mls]]
        text = [_frame_text(f, rel, lab) for lab in labels]
        fig.add_scatter(x=rel[mls], y=[4] * len(labels), mode="markers", name="MLS",
                        customdata=labels, hovertext=text, hoverinfo="text",
                        marker=dict(size=9, symbol="x"))
        traces.append(TraceFrames("MLS", labels, text))
    ep = f["epoch"]
    for i, (e, pos) in enumerate(sorted(_epoch_spans(ep).items())):
        t0, t1 = float(np.nanmin(rel[pos])), float(np.nanmax(rel[pos]))
        fig.add_vrect(x0=t0, x1=max(t1, t0 + 1e-6), fillcolor=_PALETTE[i % len(_PALETTE)],
                      opacity=0.15, line_width=0, annotation_text=f"epoch {e}",
                      annotation_position="top left", layer="below")
    _layout(fig, "epochs and frames over time", XLABEL, "stream")
    fig.update_yaxes(tickvals=[*rows, 4], ticktext=[*(STREAM_NAMES[r] for r in rows), "MLS"],
                     range=[-0.6, 4.6])
    return InteractivePlot(capture, fig, traces, lambda: static.plot_epoch_timeline(capture),
                           "epoch-timeline")


_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")


def _epoch_spans(ep: pd.Series) -> Dict[int, np.ndarray]:
    """Epoch → positions of its frames."""
    out: Dict[int, np.ndarray] = {}
    vals = ep.to_numpy(dtype=np.float64, na_value=np.nan)
    for e in sorted(set(int(v) for v in vals[~np.isnan(vals)])):
        out[e] = np.nonzero(vals == e)[0]
    return out


def throughput(capture: Any, bin_seconds: float = 1.0) -> InteractivePlot:
    """Payload bytes per second per sending member (one line per member, time bins of
    ``bin_seconds``), as :func:`.static.plot_throughput`; a point is its bin, standing for the
    member's first frame in it (a click selects that frame)."""
    tab = throughput_bins(capture, bin_seconds)
    go = _go()
    f = frames_of(capture)
    rel = rel_seconds(capture, f["time"])
    fig = go.FigureWidget()
    traces: List[TraceFrames] = []
    for sender, g in tab.groupby("sender", sort=True):
        first = [int(x) for x in g["first_frame"]]
        text = [f"member {sender} · {b * bin_seconds:g}–{(b + 1) * bin_seconds:g} s · "
                f"{bps:.0f} B/s · {k} frames" +
                ("" if lab == NO_FRAME else " · first " + _frame_text(f, rel, lab))
                for b, bps, k, lab in zip(g["bin"], g["bytes_per_s"], g["frames"], first)]
        fig.add_scatter(x=list(g["center"]), y=list(g["bytes_per_s"]), mode="lines+markers",
                        name=f"member {sender}", customdata=first, hovertext=text,
                        hoverinfo="text")
        traces.append(TraceFrames(f"member {sender}", first, text))
    _layout(fig, f"throughput per member ({bin_seconds:g} s bins)", XLABEL, "payload bytes / s")
    return InteractivePlot(capture, fig, traces,
                           lambda: static.plot_throughput(capture, bin_seconds), "throughput")


def gap_jitter(capture: Any, clock_rate: int = OPUS_CLOCK_RATE) -> InteractivePlot:
    """RFC 3550 §6.4.1 jitter (ms) of each RTP stream over time (a point is a GAP frame) and
    its loss (RFC 3550 A.3, bars, second row), as :func:`.static.plot_gap_jitter`."""
    go = _go()
    from plotly.subplots import make_subplots

    audio = capture if isinstance(capture, pd.DataFrame) else audio_table(capture)
    f = None if isinstance(capture, pd.DataFrame) else frames_of(capture)
    rel_all = None if f is None else rel_seconds(capture, f["time"])
    fig = go.FigureWidget(make_subplots(rows=2, cols=1, row_heights=[0.65, 0.35],
                                        vertical_spacing=0.18))
    traces: List[TraceFrames] = []
    if len(audio):
        jit = rtp_jitter(audio, clock_rate)
        keys = rtp_keys(audio)
        # rtp_jitter keeps the table's order inside each stream: the frame of each point
        order = audio.sort_values(keys + ["time"], kind="stable")
        frames_by_stream = ({k: list(g["row"]) for k, g in order.groupby(keys, sort=True, dropna=False)}
                            if "row" in order.columns else {})
        for key, g in jit.groupby(keys, sort=True, dropna=False):
            name = stream_label(keys, key)
            rows = frames_by_stream.get(key, [])
            labels = _labels(f, rows) if f is not None else [NO_FRAME] * len(g)
            t = rel_seconds(capture, g["time"])
            text = [(_frame_text(f, rel_all, lab) if f is not None and rel_all is not None and lab != NO_FRAME
                     else f"seq {s}") + f" · jitter {j * 1000:.2f} ms"
                    for lab, s, j in zip(labels, g["rtp_sequence"], g["jitter"])]
            fig.add_scatter(x=t, y=g["jitter"] * 1000.0, mode="lines+markers", name=name,
                            customdata=labels, hovertext=text, hoverinfo="text", row=1, col=1)
            traces.append(TraceFrames(name, labels, text))
        loss = rtp_loss(audio)
        names = [stream_label(keys, tuple(r)) for r in loss[keys].itertuples(index=False)]
        fig.add_bar(x=names, y=loss["lost"], name="lost packets", marker_color="#d62728",
                    row=2, col=1)
    _layout(fig, "GAP interarrival jitter (RFC 3550 §6.4.1) and loss", XLABEL, "jitter (ms)")
    fig.update_layout(height=520)
    fig.update_yaxes(title_text="lost packets", row=2, col=1)
    return InteractivePlot(capture, fig, traces,
                           lambda: static.plot_gap_jitter(capture, clock_rate), "gap-jitter")


def transition_latency_plot(capture: Any) -> InteractivePlot:
    """PREPARE→EXECUTE latency (ms) per transition id (one bar each), as
    :func:`.static.plot_transition_latency`; a bar stands for its PREPARE_TRANSITION frame."""
    go = _go()
    control = capture if isinstance(capture, pd.DataFrame) else control_table(capture)
    f = None if isinstance(capture, pd.DataFrame) else frames_of(capture)
    fig = go.FigureWidget()
    traces: List[TraceFrames] = []
    lat = transition_latency(control) if len(control) else pd.DataFrame(
        columns=["transition_id", "latency"])
    lat = lat[lat["latency"].notna()]
    if len(lat):
        prep = control[control["opcode"] == ControlOpcode.PREPARE_TRANSITION]
        first = prep.sort_values("time", kind="stable").drop_duplicates("transition_id")
        row_of = dict(zip(first["transition_id"].astype(int), first["row"]))
        labels = _labels(f, [row_of.get(int(t)) for t in lat["transition_id"]]) if f is not None \
            else [NO_FRAME] * len(lat)
        text = [f"transition {int(t)} · {ms:.3f} ms" +
                ("" if lab == NO_FRAME or f is None else f" · PREPARE frame {lab} · "
                 f"{f['info'].loc[lab]}")
                for t, ms, lab in zip(lat["transition_id"], lat["latency"] * 1000.0, labels)]
        fig.add_bar(x=[str(t) for t in lat["transition_id"]], y=lat["latency"] * 1000.0,
                    name="PREPARE → EXECUTE", customdata=labels, hovertext=text,
                    hoverinfo="text", marker_color="#2ca02c")
        traces.append(TraceFrames("PREPARE → EXECUTE", labels, text))
    _layout(fig, "transition latency", "transition id", "PREPARE → EXECUTE (ms)")
    fig.update_xaxes(type="category")
    return InteractivePlot(capture, fig, traces,
                           lambda: static.plot_transition_latency(capture), "transition-latency")
