"""Plots of a capture: interactive in a notebook, static (matplotlib) elsewhere.

* :mod:`.tables` — the data: :func:`audio_table`, :func:`control_table`, :func:`rtp_jitter`
  (RFC 3550 §6.4.1), :func:`rtp_loss` (RFC 3550 A.3), :func:`transition_latency`,
  :func:`throughput_bins`;
* :mod:`.static` — matplotlib figures built without pyplot (tests, exported HTML);
* :mod:`.interactive` — plotly ``FigureWidget`` plots whose points are frames: zoom, hover shows
  the frame, a click selects it in a linked FrameInspector (:func:`link`).

The time-series plots :func:`plot_epoch_timeline`, :func:`plot_throughput`,
:func:`plot_gap_jitter` and :func:`plot_transition_latency` take ``interactive=``: ``True`` →
an :class:`~.interactive.InteractivePlot` (its static twin: ``.static()``), ``False`` → the
matplotlib :class:`~matplotlib.figure.Figure`, ``None`` (default) → interactive when running in
a Jupyter kernel with plotly and anywidget installed (:func:`interactive_default`), static
otherwise (scripts, tests). ``GBP_LAB_PLOTS=static`` (environment) makes the default static
everywhere. :func:`plot_flow_ladder` stays static (its interactive form is the
:class:`gbp_lab.widgets.FlowLadder` widget).
"""
from __future__ import annotations

import os
from typing import Any, Optional

from . import interactive as _interactive_mod
from .interactive import InteractivePlot, link
from .static import plot_flow_ladder
from . import static as _static
from .tables import (AUDIO_COLUMNS, CONTROL_COLUMNS, OPUS_CLOCK_RATE, RTP_STREAM_KEYS, audio_table,
                     control_table, rtp_jitter, rtp_loss, throughput_bins, transition_latency)

__all__ = ["audio_table", "control_table", "rtp_jitter", "rtp_loss", "transition_latency",
           "throughput_bins",
           "plot_epoch_timeline", "plot_throughput", "plot_gap_jitter", "plot_transition_latency",
           "plot_flow_ladder", "OPUS_CLOCK_RATE", "AUDIO_COLUMNS", "CONTROL_COLUMNS",
           "RTP_STREAM_KEYS", "InteractivePlot", "link", "interactive_default"]


def interactive_default() -> bool:
    """Whether ``interactive=None`` means interactive here: inside a Jupyter kernel (an IPython
    shell with a ``kernel``), with plotly and anywidget importable, unless the environment says
    ``GBP_LAB_PLOTS=static``."""
    if os.environ.get("GBP_LAB_PLOTS", "").lower() == "static":
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    return _interactive_mod.available()


def _want(interactive: Optional[bool]) -> bool:
    return interactive_default() if interactive is None else bool(interactive)


def plot_epoch_timeline(capture: Any, *, interactive: Optional[bool] = None) -> Any:
    """Epochs as bands over time, every frame as a point on its stream's row (module docstring
    for ``interactive``)."""
    if _want(interactive):
        return _interactive_mod.epoch_timeline(capture)
    return _static.plot_epoch_timeline(capture)


def plot_throughput(capture: Any, bin_seconds: float = 1.0, *,
                    interactive: Optional[bool] = None) -> Any:
    """Payload bytes per second per sending member, in ``bin_seconds`` bins."""
    if _want(interactive):
        return _interactive_mod.throughput(capture, bin_seconds)
    return _static.plot_throughput(capture, bin_seconds)


def plot_gap_jitter(capture: Any, clock_rate: int = OPUS_CLOCK_RATE, *,
                    interactive: Optional[bool] = None) -> Any:
    """RFC 3550 jitter per RTP stream over time, and its loss (``capture``: a Capture or an
    audio table)."""
    if _want(interactive):
        return _interactive_mod.gap_jitter(capture, clock_rate)
    return _static.plot_gap_jitter(capture, clock_rate)


def plot_transition_latency(capture: Any, *, interactive: Optional[bool] = None) -> Any:
    """PREPARE → EXECUTE latency per transition id (``capture``: a Capture or a control table)."""
    if _want(interactive):
        return _interactive_mod.transition_latency_plot(capture)
    return _static.plot_transition_latency(capture)
