"""The :class:`FlowLadder` view-model: the sequence diagram of a capture's members and delivery
service (one lane per endpoint, one arrow per frame, epochs as bands)."""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, NamedTuple, Optional

import pandas as pd

from gbp_lab.capture.columns import rel_time_of

from . import render
from .base import Observable

__all__ = ["FlowLadder", "Lane", "Arrow", "EpochBand", "epoch_label"]


class Lane(NamedTuple):
    name: str
    endpoint: str
    kind: str  # "member" | "ds"


class Arrow(NamedTuple):
    time: float
    src: int  # lane index
    dst: int
    label: str
    epoch: Optional[int]
    row: int  # row label in frames
    protocol: str


class EpochBand(NamedTuple):
    epoch: int
    start: float
    end: float
    #: UTC wall-clock time of the epoch's first frame (``None`` when the capture has no times)
    first_utc: Optional[pd.Timestamp] = None

    @property
    def label(self) -> str:
        """``epoch 3 · 08:41:07.123``: the epoch and the UTC time (ms) of its first frame."""
        return epoch_label(self.epoch, self.first_utc)


def epoch_label(epoch: Optional[int], first_utc: Optional[pd.Timestamp]) -> str:
    """An epoch band's label: ``epoch N · HH:MM:SS.mmm`` (UTC of its first frame), ``MLS`` for
    frames outside any epoch (MLS handshake records)."""
    if epoch is None:
        return "MLS"
    if first_utc is None or pd.isna(first_utc):
        return f"epoch {epoch}"
    t = pd.Timestamp(first_utc)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return f"epoch {epoch} · {t.strftime('%H:%M:%S')}.{t.microsecond // 1000:03d}"


class FlowLadder(Observable):
    """Sequence diagram of a capture: one lane per endpoint (the delivery service = the endpoint
    on the GBP port, :data:`gbp_lab.capture.records.GBP_PORT`), one arrow per frame labelled with
    its ``info``, epochs as bands. ``window(start, count)`` pages through long captures."""

    def __init__(self, capture: Any, *, max_arrows: int = 60, ds_ports: Iterable[int] = ()) -> None:
        super().__init__()
        from gbp_lab.capture.records import GBP_PORT

        self.capture = capture
        ports = set(ds_ports) or {GBP_PORT}
        f = capture.frames
        lanes: List[Lane] = []
        index: Dict[str, int] = {}
        senders: Dict[str, set] = {}
        for src, sp, dst, dp, snd in zip(f["src"], f["sport"], f["dst"], f["dport"], f["sender"]):
            a, b = _ep(src, sp), _ep(dst, dp)
            if not pd.isna(snd):
                senders.setdefault(a, set()).add(int(snd))
            for e, port in ((a, sp), (b, dp)):
                if e not in index:
                    is_ds = (not pd.isna(port)) and int(port) in ports
                    index[e] = len(lanes)
                    lanes.append(Lane("", e, "ds" if is_ds else "member"))
        named = []
        for ln in lanes:
            if ln.kind == "ds":
                name = f"DS {ln.endpoint}"
            else:
                ids = sorted(senders.get(ln.endpoint, ()))
                name = (f"member {','.join(map(str, ids))}" if ids else "peer") + f" {ln.endpoint}"
            named.append(Lane(name, ln.endpoint, ln.kind))
        # delivery service lanes in the middle-left: members left to right after the first DS
        order = sorted(range(len(named)), key=lambda i: (named[i].kind != "ds", i))
        remap = {old: new for new, old in enumerate(order)}
        self.lanes: List[Lane] = [named[i] for i in order]
        self.arrows: List[Arrow] = []
        for label, src, sp, dst, dp, t, info, ep, proto in zip(
                f.index, f["src"], f["sport"], f["dst"], f["dport"], rel_time_of(f), f["info"],
                f["epoch"], f["protocol"]):
            self.arrows.append(Arrow(float(t), remap[index[_ep(src, sp)]], remap[index[_ep(dst, dp)]],
                                     str(info), None if pd.isna(ep) else int(ep), int(label), str(proto)))
        times = f["time"] if "time" in f.columns else pd.Series([None] * len(f), index=f.index)
        #: UTC time of each epoch's first frame (the epoch labels), by epoch number
        self.epoch_first_utc: Dict[int, pd.Timestamp] = {}
        for arrow, t in zip(self.arrows, times):
            if arrow.epoch is not None and not pd.isna(t):
                ts = pd.Timestamp(t)
                old = self.epoch_first_utc.get(arrow.epoch)
                if old is None or ts < old:
                    self.epoch_first_utc[arrow.epoch] = ts
        self.bands: List[EpochBand] = []
        for arrow in self.arrows:
            if arrow.epoch is None:
                continue
            if self.bands and self.bands[-1].epoch == arrow.epoch:
                band = self.bands[-1]
                self.bands[-1] = band._replace(end=arrow.time)
            else:
                self.bands.append(EpochBand(arrow.epoch, arrow.time, arrow.time,
                                            self.epoch_first_utc.get(arrow.epoch)))
        self.max_arrows = max_arrows
        self._start = 0

    @property
    def start(self) -> int:
        return self._start

    def window(self, start: int, count: Optional[int] = None) -> List[Arrow]:
        if count is not None:
            self.max_arrows = int(count)
        self._start = max(0, min(int(start), max(len(self.arrows) - 1, 0)))
        self.changed()
        return self.visible

    def epoch_text(self, epoch: Optional[int]) -> str:
        """The label of an epoch's band: ``epoch 3 · 08:41:07.123`` (:func:`epoch_label`)."""
        return epoch_label(epoch, None if epoch is None else self.epoch_first_utc.get(epoch))

    @property
    def visible(self) -> List[Arrow]:
        return self.arrows[self._start:self._start + self.max_arrows]

    def svg(self, *, lane_dx: int = 170, row_dy: int = 26) -> str:
        """The visible window as SVG: lanes as vertical lines, one ``<g class="arrow">`` per
        frame (text = info), epoch bands as ``<rect class="band">``."""
        arrows = self.visible
        n = len(self.lanes)
        width = max(n, 1) * lane_dx + 40
        height = 50 + row_dy * (len(arrows) + 1)
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="gbp-ladder" width="{width}" '
               f'height="{height}" font-family="sans-serif" font-size="10">']
        # epoch bands over the rows of the window
        colors = ("#f3f7ff", "#fff7ec")
        k = 0
        while k < len(arrows):
            ep = arrows[k].epoch
            j = k
            while j + 1 < len(arrows) and arrows[j + 1].epoch == ep:
                j += 1
            y0 = 40 + row_dy * k + row_dy // 2
            h = row_dy * (j - k + 1)
            out.append(f'<rect class="band" data-epoch="{"" if ep is None else ep}" x="0" y="{y0}" '
                       f'width="{width}" height="{h}" fill="{colors[(ep or 0) % 2]}"/>'
                       f'<text class="epoch-label" x="2" y="{y0 + 11}" fill="#777">'
                       f'{render.esc(self.epoch_text(ep))}</text>')
            k = j + 1
        for i, ln in enumerate(self.lanes):
            x = 20 + lane_dx * i + lane_dx // 2
            out.append(f'<text class="lane" x="{x}" y="16" text-anchor="middle" '
                       f'font-weight="bold">{render.esc(ln.name)}</text>'
                       f'<line x1="{x}" y1="24" x2="{x}" y2="{height}" stroke="#aaa"/>')
        out.append('<defs><marker id="gbp-ah" markerWidth="8" markerHeight="8" refX="7" refY="3" '
                   'orient="auto"><path d="M0,0 L7,3 L0,6 z" fill="#333"/></marker></defs>')
        for r, a in enumerate(arrows):
            y = 40 + row_dy * (r + 1)
            x1 = 20 + lane_dx * a.src + lane_dx // 2
            x2 = 20 + lane_dx * a.dst + lane_dx // 2
            out.append(f'<g class="arrow" data-row="{a.row}"><title>{render.esc(f"t={a.time:.6f} {a.label}")}</title>'
                       f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#333" '
                       f'marker-end="url(#gbp-ah)"/>'
                       f'<text x="{(x1 + x2) / 2:.0f}" y="{y - 4}" text-anchor="middle">'
                       f'{render.esc(render.short(a.label, 48))}</text></g>')
        out.append("</svg>")
        return "".join(out)


def _ep(host: Any, port: Any) -> str:
    h = "?" if host is None or (isinstance(host, float) and host != host) else str(host)
    p = "?" if port is None or pd.isna(port) else str(int(port))
    return f"[{h}]:{p}" if ":" in h else f"{h}:{p}"
