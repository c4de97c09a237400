"""The live panel's view-model (:class:`LivePanel`): what ``LiveCapture.view()`` shows, in plain
Python so a test drives it without a browser.

It reads a running :class:`gbp_lab.capture.live.LiveCapture` (duck-typed: ``counters``,
``snapshot()``, ``running``, ``started``) at most every ``interval`` seconds (a few redraws per
second, however fast frames arrive) and keeps: frames per second (over the last ``rate_window``
seconds), the per-protocol counters, the last frames, the current epoch and its members (the
``epochs`` timeline, RFC 9420 §8: one epoch per commit), a :class:`~.flow_ladder.FlowLadder` of
the last frames with its epoch bands, and the findings (recomputed at most every
``findings_interval`` seconds; ``new_findings`` are those that appeared since the last update).
"""
from __future__ import annotations

import time
from collections import deque
from types import SimpleNamespace
from typing import Any, Deque, Dict, List, Optional, Tuple

import pandas as pd

from . import render
from .base import Observable
from .flow_ladder import FlowLadder

__all__ = ["LivePanel", "LAST_COLUMNS"]

#: the ``frames`` columns of the "last frames" list
LAST_COLUMNS = ("time", "src", "dst", "protocol", "epoch", "sender", "sequence_no", "decrypted",
                "info")
_PROTOCOLS = ("MLS", "GTP", "GAP", "GSP", "GBP")


class LivePanel(Observable):
    """View-model of a live capture's panel; :meth:`update` refreshes it (throttled)."""

    def __init__(self, live: Any, *, interval: float = 0.3, last: int = 12,
                 ladder_arrows: int = 30, rate_window: float = 3.0,
                 findings_interval: float = 1.0) -> None:
        super().__init__()
        self.live = live
        self.interval = float(interval)
        self.last_n = int(last)
        self.ladder_arrows = int(ladder_arrows)
        self.rate_window = float(rate_window)
        self.findings_interval = float(findings_interval)
        self.updates = 0  #: redraws so far
        self.rate = 0.0  #: frames per second over the last ``rate_window`` seconds
        self.counters: Dict[str, int] = {}
        self.last = pd.DataFrame(columns=list(LAST_COLUMNS))
        self.epochs = pd.DataFrame()
        self.group_id: Optional[str] = None
        self.epoch: Optional[int] = None
        self.members: List[int] = []
        self.ladder: Optional[FlowLadder] = None
        self.findings = pd.DataFrame()
        self.new_findings = pd.DataFrame()
        self._samples: Deque[Tuple[float, int]] = deque()
        self._drawn_at: Optional[float] = None
        self._drawn_frames = -1
        self._findings_at: Optional[float] = None
        self._findings_frames = -1
        self._seen_findings: set = set()

    # -- refresh -----------------------------------------------------------------------------
    def due(self, now: Optional[float] = None) -> bool:
        """Is a redraw allowed (``interval`` seconds since the last one)?"""
        now = time.monotonic() if now is None else now
        return self._drawn_at is None or now - self._drawn_at >= self.interval

    def update(self, now: Optional[float] = None, *, force: bool = False) -> bool:
        """Read the live capture again if due (or ``force``); True when the panel changed."""
        now = time.monotonic() if now is None else now
        if not force and not self.due(now):
            return False
        frames = int(self.live.counters["frames"])
        self._samples.append((now, frames))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.rate_window:
            self._samples.popleft()
        t0, n0 = self._samples[0]
        self.rate = (frames - n0) / (now - t0) if now > t0 else 0.0
        self._drawn_at = now
        counters = {k: int(v) for k, v in self.live.counters.items()}
        if frames == self._drawn_frames and counters == self.counters and not force:
            return False  # nothing new: only the rate moved (shown at the next change)
        self.counters = counters
        self._drawn_frames = frames
        snap = self.live.snapshot()
        f = snap.frames
        self.last = f.tail(self.last_n)[list(LAST_COLUMNS)]
        self.ladder = FlowLadder(SimpleNamespace(frames=f.tail(self.ladder_arrows)),
                                 max_arrows=self.ladder_arrows)
        self.epochs = snap.epochs
        if len(self.epochs):
            cur = self.epochs.iloc[-1]
            self.group_id, self.epoch = str(cur["group_id"]), int(cur["epoch"])
            self.members = [int(m) for m in cur["members"]]
        if force or (self._findings_at is None
                     or now - self._findings_at >= self.findings_interval) \
                and frames != self._findings_frames:
            self._findings_at, self._findings_frames = now, frames
            self.findings = snap.findings
            keys = [(str(k), str(d)) for k, d in zip(self.findings["kind"],
                                                     self.findings["detail"])] \
                if len(self.findings) else []
            fresh = [i for i, k in enumerate(keys) if k not in self._seen_findings]
            self._seen_findings.update(keys)
            self.new_findings = self.findings.iloc[fresh]
        self.updates += 1
        self.changed()
        return True

    # -- presentation (HTML strings for the view) --------------------------------------------
    def status_text(self) -> str:
        state = "running" if self.live.running else "stopped"
        c = self.counters
        return (f"{state}: {c.get('frames', 0)} frames ({self.rate:.1f}/s), "
                f"{c.get('decrypted', 0)} decrypted, {c.get('errors', 0)} errors")

    def counters_html(self) -> str:
        cells = "".join(f'<td class="gbp-count" data-name="{p}"><b>{p}</b> '
                        f'{self.counters.get(p, 0)}</td>' for p in _PROTOCOLS
                        if p in self.counters or p in ("MLS", "GTP", "GAP", "GSP"))
        return f'<table class="gbp-counters"><tr>{cells}</tr></table>'

    def epoch_html(self) -> str:
        if self.epoch is None:
            return "<i>no epoch yet</i>"
        return (f'<div class="gbp-epoch">group <code>{render.esc(render.short(self.group_id or "", 16))}'
                f'</code> epoch <b>{self.epoch}</b>, members '
                f'{", ".join(map(str, self.members)) or "?"}</div>')

    def timeline_html(self) -> str:
        if not len(self.epochs):
            return ""
        cols = [c for c in ("epoch", "members", "frames", "decrypted") if c in self.epochs]
        return self.epochs[cols].to_html(classes="gbp-epochs", index=False)

    def last_html(self) -> str:
        if not len(self.last):
            return "<i>no frames yet</i>"
        return self.last.to_html(classes="gbp-last", na_rep="")

    def ladder_svg(self) -> str:
        return self.ladder.svg() if self.ladder is not None and self.ladder.arrows else ""

    def findings_html(self) -> str:
        if not len(self.findings):
            return "<i>no findings</i>"
        rows = "".join(f'<li class="gbp-finding"><b>{render.esc(str(k))}</b> '
                       f'({render.esc(str(s))}): {render.esc(render.short(str(d), 160))}</li>'
                       for k, s, d in zip(self.findings["kind"], self.findings["severity"],
                                          self.findings["detail"]))
        return f"<ul>{rows}</ul>"
