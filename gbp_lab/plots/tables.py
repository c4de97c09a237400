"""The tables behind the plots of :mod:`gbp_lab.plots` (pandas only, no drawing). Inputs are a
:class:`~gbp_lab.capture.model.Capture` (``frames`` + ``plaintexts``) or the tables derived
from it here:

* :func:`audio_table` — one row per decrypted GAP frame (gap_rfc §4 fields);
* :func:`control_table` — one row per decrypted control message (gbp-control-plane §3);
* :func:`rtp_jitter` — RFC 3550 §6.4.1 interarrival jitter per media source
  (``J += (|D| - J) / 16``, ``D`` in RTP timestamp units; Opus clock 48 kHz);
* :func:`rtp_loss` — RFC 3550 Appendix A.3 expected/received/lost per source from the 16-bit
  sequence numbers extended over wrap-around, with the gaps;
* :func:`transition_latency` — PREPARE_TRANSITION → EXECUTE_TRANSITION per transition id;
* :func:`throughput_bins` — payload bytes per second per sending member and time bin;
* the time axis every plot shares: :func:`rel_seconds` (seconds since the capture's first
  packet, as Wireshark shows time by default).
"""
from __future__ import annotations

from typing import Any, List, Optional

import numpy as np
import pandas as pd

from gbp_lab.core.errors import GbpLabError, UsageError
from gbp_lab.core.gbp.registry import ControlOpcode

from gbp_lab.capture.tables import build_audio, build_control

__all__ = ["audio_table", "control_table", "rtp_jitter", "rtp_loss", "transition_latency",
           "throughput_bins", "frames_of", "rel_seconds", "rtp_keys", "stream_label", "OPUS_CLOCK_RATE",
           "AUDIO_COLUMNS", "CONTROL_COLUMNS", "RTP_STREAM_KEYS"]

#: RTP clock rate of Opus (RFC 7587 §4.1)
OPUS_CLOCK_RATE = 48_000

AUDIO_COLUMNS = ["time", "epoch", "sender", "stream_id", "media_source_id", "rtp_sequence",
                 "rtp_timestamp", "key_phase", "opus_size", "row", "dst", "dport"]
#: what makes one RTP stream as a receiver sees it: the source, the epoch (GAP sequence numbers
#: restart with each epoch's counters) and the receiving endpoint (a relay delivers one copy of
#: every frame to each member: each copy is another receiver's stream, not a duplicate)
RTP_STREAM_KEYS = ["media_source_id", "epoch", "dst", "dport"]
CONTROL_COLUMNS = ["time", "epoch", "sender", "opcode", "opcode_name", "transition_id",
                   "request_id", "args_length", "row"]


def frames_of(capture: Any) -> pd.DataFrame:
    """The ``frames`` table of a capture; anything else is a :class:`UsageError` (``LAB-PLOT-INPUT``)."""
    f = getattr(capture, "frames", None)
    if not isinstance(f, pd.DataFrame):
        raise UsageError("expected a Capture (with a frames table)", vid="LAB-PLOT-INPUT")
    return f


def audio_table(capture: Any) -> pd.DataFrame:
    """One row per decrypted GAP frame (undecodable plaintexts are skipped: they are the
    ``error`` column's business). Taken from the capture's own ``audio`` table
    (:mod:`gbp_lab.capture.tables`), built with that module's builder when the object has
    none (e.g. frames + plaintexts only)."""
    own = _table_of(capture, "audio", {"time", "frame", "media_source_id", "rtp_sequence",
                                        "rtp_timestamp"})
    if own is None:
        own = build_audio(frames_of(capture), capture.plaintexts)
    df = own.rename(columns={"payload_len": "opus_size", "frame": "row"})
    f = capture.frames
    for col in ("stream_id", "dst", "dport"):
        if col not in df.columns and col in f.columns:
            df = df.assign(**{col: [None if pd.isna(r) else f[col].iloc[int(r)] for r in df["row"]]})
    for c in AUDIO_COLUMNS:
        if c not in df.columns:
            df = df.assign(**{c: None})
    return df[AUDIO_COLUMNS].reset_index(drop=True)


def control_table(capture: Any) -> pd.DataFrame:
    """One row per decrypted control message (the capture's ``control`` table, built with
    :func:`gbp_lab.capture.tables.build_control` when the object has none)."""
    own = _table_of(capture, "control", {"time", "frame", "opcode", "transition_id"})
    if own is None:
        own = build_control(frames_of(capture), capture.plaintexts)
    if "decrypted" in own.columns:
        own = own[own["decrypted"].fillna(False).astype(bool)]
    df = own.rename(columns={"args_len": "args_length", "frame": "row"})
    if "sender_id" in df.columns:
        df = df.drop(columns=["sender"], errors="ignore").rename(columns={"sender_id": "sender"})
    for c in CONTROL_COLUMNS:
        if c not in df.columns:
            df = df.assign(**{c: None})
    return df[CONTROL_COLUMNS].reset_index(drop=True)


def _table_of(capture: Any, name: str, need: set) -> Optional[pd.DataFrame]:
    """The capture's derived table ``name`` if it has one with the ``need`` columns."""
    frames_of(capture)
    try:
        df = getattr(capture, name, None)
    except GbpLabError:
        return None
    if isinstance(df, pd.DataFrame) and need <= set(df.columns):
        return df
    return None


def _is_time(ser: pd.Series) -> bool:
    return isinstance(ser.dtype, pd.DatetimeTZDtype) or ser.dtype.kind == "M"


def _first(times) -> int:
    """The earliest time of a column: integer nanoseconds (``datetime64``), else 0."""
    ser = pd.Series(times)
    if _is_time(ser) and ser.notna().any():
        return int(ser.min().value)
    return 0


def _secs(times, base: int = 0) -> np.ndarray:
    """A time column as float seconds since ``base`` (integer nanoseconds since the epoch) —
    ``datetime64`` columns are subtracted in integer nanoseconds first, so differences stay
    exact; NaN where missing. Plain numbers are taken as seconds already (``base`` unused)."""
    ser = pd.Series(times)
    if _is_time(ser):
        ns = ser.array.asi8 if len(ser) else np.zeros(0, np.int64)
        out = (ns - np.int64(base)).astype(np.float64) / 1e9
        out[ser.isna().to_numpy()] = np.nan
        return out
    return ser.to_numpy(dtype=np.float64, na_value=np.nan)


def rel_seconds(capture: Any, times) -> np.ndarray:
    """Seconds since the capture's first packet (``Capture.t0``, else the first time shown):
    the plots' time axis, as Wireshark shows time by default."""
    t0 = getattr(capture, "t0", None)
    if _is_time(pd.Series(times)):
        base = int(t0) if isinstance(t0, int) else _first(times)
        return _secs(times, base)
    secs = _secs(times)
    return secs - (float(np.nanmin(secs)) if len(secs) and not np.isnan(secs).all() else 0.0)


def rtp_jitter(audio: pd.DataFrame, clock_rate: int = OPUS_CLOCK_RATE) -> pd.DataFrame:
    """RFC 3550 §6.4.1 interarrival jitter, per RTP stream (:data:`RTP_STREAM_KEYS`: source,
    epoch, receiver) in arrival order: columns the stream keys, ``time``, ``rtp_sequence``, ``transit`` (s), ``d`` (s), ``jitter`` (s).
    ``D(i-1, i) = (R_i - R_{i-1}) - (S_i - S_{i-1})`` with ``S`` the RTP timestamp over
    ``clock_rate`` (the GAP ``ts`` field), ``J += (|D| - J) / 16``."""
    rows = []
    keys = rtp_keys(audio)
    base = _first(audio["time"])  # transit from times relative to it: exact to the ns
    for key, g in audio.sort_values(keys + ["time"], kind="stable").groupby(keys, sort=True, dropna=False):
        j = 0.0
        prev = None
        for t, sec, seq, ts in zip(g["time"], _secs(g["time"], base), g["rtp_sequence"],
                                   g["rtp_timestamp"]):
            transit = float(sec) - int(ts) / clock_rate
            d = 0.0 if prev is None else transit - prev
            if prev is not None:
                j += (abs(d) - j) / 16.0
            prev = transit
            rows.append((*key, t, int(seq), transit, d, j))
    out = pd.DataFrame(rows, columns=keys + ["time", "rtp_sequence", "transit", "d", "jitter"])
    if len(out) and not isinstance(audio["time"].dtype, pd.DatetimeTZDtype):
        out["time"] = out["time"].astype(float)
    return out


def rtp_keys(audio: pd.DataFrame) -> List[str]:
    """The :data:`RTP_STREAM_KEYS` the table has (and fills)."""
    return [k for k in RTP_STREAM_KEYS if k in audio.columns and audio[k].notna().any()]


def rtp_loss(audio: pd.DataFrame) -> pd.DataFrame:
    """RFC 3550 Appendix A.3 per RTP stream (:data:`RTP_STREAM_KEYS`: source, epoch, receiver): ``first``/``last`` extended sequence,
    ``expected = last - first + 1``, ``received``, ``lost = expected - received`` (negative with
    duplicates), ``gaps``: the missing extended sequence numbers. Sequence numbers are 16-bit and
    extended over wrap-around (a jump back by more than half the space is a new cycle)."""
    rows = []
    keys = rtp_keys(audio)
    for key, g in audio.sort_values(keys + ["time"], kind="stable").groupby(keys, sort=True, dropna=False):
        ext: List[int] = []
        cycles = 0
        max_seq = None
        for s in g["rtp_sequence"]:
            s = int(s) & 0xFFFF
            if max_seq is None:
                max_seq = s
                ext.append(s)
                continue
            if s < max_seq and max_seq - s > 0x8000:  # wrapped: a new cycle
                cycles += 0x10000
                max_seq = s
                ext.append(cycles + s)
            elif s > max_seq and s - max_seq > 0x8000:  # late packet of the previous cycle
                ext.append(cycles - 0x10000 + s)
            else:
                max_seq = max(max_seq, s)
                ext.append(cycles + s)
        first, hi = min(ext), max(ext)
        seen = set(ext)
        gaps = [x for x in range(first, hi + 1) if x not in seen]
        expected = hi - first + 1
        rows.append((*key, first, hi, expected, len(ext), expected - len(ext), gaps))
    return pd.DataFrame(rows, columns=keys + ["first", "last", "expected", "received", "lost", "gaps"])


def transition_latency(control: pd.DataFrame) -> pd.DataFrame:
    """Per transition id: first PREPARE_TRANSITION time, first EXECUTE_TRANSITION time and the
    latency between them in seconds (``NaN`` when one of them is missing); READY count as a
    bonus. ``prepare`` / ``execute``: the table's time values (``NaT``/NaN when missing)."""
    rows = []
    for tid, g in control.groupby("transition_id", sort=True):
        prep = g.loc[g["opcode"] == ControlOpcode.PREPARE_TRANSITION, "time"]
        exe = g.loc[g["opcode"] == ControlOpcode.EXECUTE_TRANSITION, "time"]
        ready = int((g["opcode"] == ControlOpcode.READY_FOR_TRANSITION).sum())
        if not len(prep) and not len(exe):
            continue
        p = prep.min() if len(prep) else None
        e = exe.min() if len(exe) else None
        lat = (float(_secs([e], _first([p]))[0] - _secs([p], _first([p]))[0])
               if p is not None and e is not None else float("nan"))
        rows.append((int(tid), p, e, lat, ready))
    return pd.DataFrame(rows, columns=["transition_id", "prepare", "execute", "latency", "ready"])


def stream_label(keys: List[str], key: tuple) -> str:
    """A readable name of one RTP stream (its :data:`RTP_STREAM_KEYS` values)."""
    parts = dict(zip(keys, key))
    text = f"source {parts.get('media_source_id')}"
    if "epoch" in parts:
        text += f" e{parts['epoch']}"
    if "dst" in parts:
        text += f" → {parts['dst']}:{parts.get('dport', '')}"
    return text


def throughput_bins(capture: Any, bin_seconds: float = 1.0) -> pd.DataFrame:
    """Payload bytes per second per sending member in time bins of ``bin_seconds`` (from the
    capture's first packet): one row per (sender, bin) for every bin up to the last one with
    traffic, empty bins included — columns ``sender``, ``bin``, ``center`` (s),
    ``bytes_per_s``, ``frames`` (how many) and ``first_frame`` (row label of the sender's first
    frame in the bin, -1 for none)."""
    if bin_seconds <= 0:
        raise UsageError("bin_seconds must be > 0", vid="LAB-PLOT-INPUT")
    f = frames_of(capture)
    cols = ["sender", "bin", "center", "bytes_per_s", "frames", "first_frame"]
    has = f["sender"].notna().to_numpy()
    if not has.any():
        return pd.DataFrame(columns=cols)
    rel = rel_seconds(capture, f["time"])
    bins = (rel // bin_seconds).astype(np.int64)
    n = int(bins[has].max()) + 1
    senders = f["sender"].to_numpy(dtype=np.float64, na_value=np.nan)
    size = f["payload_size"].to_numpy(dtype=np.float64, na_value=0.0)
    rows: List[tuple] = []
    for sender in sorted(set(int(s) for s in senders[has])):
        total = np.zeros(n)
        count = np.zeros(n, dtype=np.int64)
        first = [-1] * n
        for pos in np.nonzero(senders == sender)[0]:
            b = int(bins[pos])
            total[b] += size[pos]
            count[b] += 1
            if first[b] == -1:
                first[b] = int(f.index[pos])
        rows.extend((sender, b, (b + 0.5) * bin_seconds, total[b] / bin_seconds, int(count[b]),
                     first[b]) for b in range(n))
    return pd.DataFrame(rows, columns=cols)
