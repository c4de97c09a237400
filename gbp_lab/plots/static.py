"""Matplotlib plots of a capture (the static renderer of :mod:`gbp_lab.plots`): each
``plot_*`` returns its :class:`matplotlib.figure.Figure`, built without pyplot, so nothing global
changes and tests run headless; exported notebooks (HTML) and the tests see these. Plots:
:func:`plot_epoch_timeline`, :func:`plot_throughput`, :func:`plot_gap_jitter`,
:func:`plot_transition_latency`, :func:`plot_flow_ladder` (the static twin of
:class:`gbp_lab.widgets.FlowLadder`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gbp_lab.core.errors import UsageError
from gbp_lab.core.gbp.registry import STREAM_NAMES, StreamType

from .tables import (OPUS_CLOCK_RATE, audio_table, control_table, frames_of, rel_seconds,
                     rtp_jitter, rtp_keys, rtp_loss, stream_label, throughput_bins,
                     transition_latency)

__all__ = ["plot_epoch_timeline", "plot_throughput", "plot_gap_jitter", "plot_transition_latency",
           "plot_flow_ladder"]


# --- plots ----------------------------------------------------------------------------------

def _fig(nrows: int = 1, **kw):
    fig = Figure(figsize=kw.pop("figsize", (9, 3.2 * nrows)), layout="constrained")
    axes = fig.subplots(nrows, 1, squeeze=False)[:, 0]
    return fig, axes


def plot_epoch_timeline(capture: Any) -> Figure:
    """Epochs as bands over time (one ``broken_barh`` collection per epoch) and every frame as a
    dot on its stream's row (one scatter collection per stream type present)."""
    f = frames_of(capture)
    fig, (ax,) = _fig()
    ep = f[f["epoch"].notna()]
    if len(ep):
        for i, (e, g) in enumerate(ep.groupby("epoch", sort=True)):
            rel = rel_seconds(capture, g["time"])
            t0, t1 = float(np.nanmin(rel)), float(np.nanmax(rel))
            ax.broken_barh([(t0, max(t1 - t0, 1e-6))], (-0.5, 5), alpha=0.15,
                           facecolors=f"C{i % 10}", label=f"epoch {int(e)}")
    streams = f["stream_type"].dropna().astype(int)
    for st in sorted(set(streams)):
        g = f[f["stream_type"].eq(st).fillna(False).astype(bool)]
        ax.scatter(rel_seconds(capture, g["time"]), [st] * len(g), s=12, label=STREAM_NAMES.get(st, str(st)))
    mls = f[f["protocol"] == "MLS"]
    if len(mls):
        ax.scatter(rel_seconds(capture, mls["time"]), [4] * len(mls), s=12, marker="x", label="MLS")
    rows = sorted(int(st) for st in StreamType)  # the stream types' rows, then MLS on top
    ax.set_yticks([*rows, 4], [*(STREAM_NAMES[r] for r in rows), "MLS"])
    ax.set_xlabel("time since the first packet (s)")
    ax.set_title("epochs and frames over time")
    if len(f):
        ax.legend(loc="upper left", fontsize="small", ncols=4)
    return fig


def plot_throughput(capture: Any, bin_seconds: float = 1.0) -> Figure:
    """Bytes per second (``payload_size`` summed per time bin, :func:`.tables.throughput_bins`)
    per sending member: one line per member id."""
    tab = throughput_bins(capture, bin_seconds)
    fig, (ax,) = _fig()
    if len(tab):
        for sender, g in tab.groupby("sender", sort=True):
            ax.plot(g["center"], g["bytes_per_s"].to_numpy(dtype=float), marker=".",
                    label=f"member {sender}")
        ax.legend(fontsize="small")
    ax.set_xlabel("time since the first packet (s)")
    ax.set_ylabel("payload bytes / s")
    ax.set_title(f"throughput per member ({bin_seconds:g} s bins)")
    return fig


def plot_gap_jitter(capture: Any, clock_rate: int = OPUS_CLOCK_RATE) -> Figure:
    """Top: RFC 3550 jitter (ms) per media source over time (one line per source). Bottom:
    lost packets per source (one bar per source), gaps marked on the top axis as red ``x``."""
    audio = capture if isinstance(capture, pd.DataFrame) else audio_table(capture)
    fig, (ax, ax2) = _fig(2)
    if len(audio):
        jit = rtp_jitter(audio, clock_rate)
        keys = rtp_keys(audio)
        for key, g in jit.groupby(keys, sort=True, dropna=False):
            ax.plot(rel_seconds(capture, g["time"]), g["jitter"] * 1000.0, label=stream_label(keys, key))
        loss = rtp_loss(audio)
        labels = [stream_label(keys, tuple(r)) for r in loss[keys].itertuples(index=False)]
        ax2.bar(labels, loss["lost"], color="C3")
        for key, gaps in zip(loss[keys].itertuples(index=False), loss["gaps"]):
            if not gaps:
                continue
            a = audio.loc[(audio[keys] == pd.Series(tuple(key), index=keys)).all(axis=1)].sort_values("time")
            # a gap shows at the arrival of the first packet after it
            rel = pd.Series(rel_seconds(capture, a["time"]), index=a.index)
            after = [float(rel[a["rtp_sequence"] > (x & 0xFFFF)].min()) for x in gaps]
            ax.scatter(after, [0.0] * len(after), marker="x", color="red")
        ax.legend(fontsize="small")
    ax.set_ylabel("jitter (ms)")
    ax.set_title("GAP interarrival jitter (RFC 3550 §6.4.1)")
    ax2.set_xlabel("RTP stream (source, epoch, receiver)")
    ax2.set_ylabel("lost packets")
    ax2.set_title("GAP loss from RTP sequence gaps")
    return fig


def plot_transition_latency(capture: Any) -> Figure:
    """PREPARE→EXECUTE latency (ms) per transition id: one bar per transition."""
    control = capture if isinstance(capture, pd.DataFrame) else control_table(capture)
    fig, (ax,) = _fig()
    lat = transition_latency(control) if len(control) else pd.DataFrame(
        columns=["transition_id", "latency"])
    lat = lat[lat["latency"].notna()]
    ax.bar([str(t) for t in lat["transition_id"]], lat["latency"] * 1000.0, color="C2")
    ax.set_xlabel("transition id")
    ax.set_ylabel("PREPARE → EXECUTE (ms)")
    ax.set_title("transition latency")
    return fig


def plot_flow_ladder(capture: Any, *, start: int = 0, max_arrows: int = 40) -> Figure:
    """A sequence diagram (the model of :class:`gbp_lab.widgets.flow_ladder.FlowLadder`): one vertical
    lane per endpoint (the delivery service first), one arrow per frame of the window
    ``[start, start + max_arrows)`` labelled with its ``info``, epochs as shaded bands."""
    from gbp_lab.widgets.flow_ladder import FlowLadder

    model = FlowLadder(capture, max_arrows=max_arrows)
    model.window(start)
    arrows = model.visible
    n = max(len(model.lanes), 1)
    fig, (ax,) = _fig(figsize=(max(6.0, 2.6 * n), 1.2 + 0.32 * max(len(arrows), 1)))
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(len(arrows) + 0.5, -0.8)
    for i, ln in enumerate(model.lanes):
        ax.axvline(i, color="0.7", lw=1, zorder=0)
        ax.text(i, -0.6, ln.name, ha="center", va="bottom", fontsize=8, fontweight="bold")
    k = 0
    while k < len(arrows):
        j = k
        while j + 1 < len(arrows) and arrows[j + 1].epoch == arrows[k].epoch:
            j += 1
        ep = arrows[k].epoch
        ax.axhspan(k + 0.5, j + 1.5, color=f"C{(ep or 0) % 10}", alpha=0.08, zorder=0)
        ax.text(-0.45, k + 0.7, model.epoch_text(ep), fontsize=7, color="0.4")
        k = j + 1
    for r, a in enumerate(arrows, start=1):
        ax.annotate("", xy=(a.dst, r), xytext=(a.src, r),
                    arrowprops=dict(arrowstyle="-|>", color="0.2", lw=1))
        label = a.label if len(a.label) <= 60 else a.label[:59] + "…"
        ax.text((a.src + a.dst) / 2, r - 0.12, label, ha="center", va="bottom", fontsize=7)
    ax.set_yticks([])
    ax.set_xticks([])
    ax.set_title("flow ladder")
    return fig
