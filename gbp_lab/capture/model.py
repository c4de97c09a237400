"""``read_capture``: a capture file → a :class:`Capture` with a ``frames`` and an ``errors`` table.

The data's way (architecture.md): records from :mod:`.records` → :func:`~gbp_lab.core.gbp.frame.
decode_frame` → :func:`~gbp_lab.core.gbp.aead.open_frame` with the key log → sub-protocol decode
(control / GAP / GTP / GSP with the frame's ``pf`` codec) → one flat row per record. The rows'
cells are collected in one flat list and turned into a DataFrame once, at the end (one 2-D
array, then typed columns: nullable integers, Arrow-backed ``str`` text).

Keys: ``keylog=`` (a :class:`~gbp_lab.core.keylog.KeyLog`, a path, or key-log text) merged with
the GBPK Decryption Secrets Blocks found in a pcapng (type 0x4742504B, see :mod:`.pcapfile`).

``frames`` has one row per GBP frame and per raw MLS message (KeyPackage / Commit / Welcome, the
blobs the reference sends with the same length prefix — ``protocol`` = ``"MLS"``). Its ``error``
column holds what went wrong *with that frame* (no key for its epoch, AEAD tag failure,
undecodable plaintext). ``errors`` has one row per defect: everything the record pipeline reports
(file, TCP, record framing), records that are neither a frame nor an MLS message, and AEAD
failures; ``kind`` says which layer found it; ``frame`` links an AEAD failure to its row.

On top of these, :class:`Capture` builds on first access (in bulk, cached): ``messages`` (GTP),
``audio`` (GAP + SFrame header, the media opened with the key log: :mod:`.media`), ``signals`` (GSP), ``control`` (with PREPARE's commit decrypted
when the key log allows), ``epochs`` (:mod:`.tables`) and ``findings``
(:mod:`gbp_lab.analysis.findings`); plus :meth:`Capture.summary`, a notebook view
(``_repr_html_``) and :meth:`Capture.to_parquet`. Streaming: :mod:`.stream`.

Compact view: ``frames`` has 26 columns, too wide for a notebook cell. :meth:`Capture.packet_list`
is Wireshark's packet list — :data:`PACKET_LIST_COLUMNS` (``rel_time``, ``endpoints`` =
``src:sport → dst:dport``, ``epoch``, ``sender``, ``protocol``, ``info``), same index as
``frames`` — and the notebook view shows it; ``cap.frames`` (or ``cap.packet_list(full=True)``)
is the whole table.

Hot path: decryption keeps this read's own ``(group, epoch, stream type) → AEAD`` table and only
goes through :func:`~gbp_lab.core.gbp.aead.open_frame` for the unusual cases (no key, bad tag …),
which raise the typed errors; frames and CBOR payloads in the canonical form every sender writes
are read by exact-shape matchers (:data:`~gbp_lab.core.gbp.frame.FRAME_MATCHERS`,
:func:`~gbp_lab.core.payload_codec.cbor_values_matcher`) without building objects, everything
else by the full decoders (:mod:`.readpath` owns the loop, the row layouts and the per-record
decode). ``python benchmarks/capture_bench.py`` prints the speed against scapy and a raw loop.

Record bytes: :meth:`Capture.record` gives any row's record as read (no second read of the file).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import pandas as pd

from gbp_lab.core.keylog import KeyLog

from gbp_lab.core.sframe import DEFAULT_LABEL

from .columns import gc_paused, with_rel_time
from .media import MediaOpen, open_media
from .pcapfile import DecryptionSecrets, Interface
from .progress import PROGRESS_MIN_BYTES, ByteProgress
from .readpath import (ERROR_COLUMNS, FRAME_COLUMNS, ReadState, errors_table, frames_table,
                       read_chunks)
from .records import GBP_PORT, PipelineStats

__all__ = ["Capture", "read_capture", "parquet_safe", "FRAME_COLUMNS", "ERROR_COLUMNS", "PACKET_LIST_COLUMNS"]

#: the columns of :meth:`Capture.packet_list`, Wireshark's packet list (No. = the index)
PACKET_LIST_COLUMNS = ("rel_time", "endpoints", "epoch", "sender", "protocol", "info")


@dataclass
class Capture:
    """A read capture: the ``frames`` and ``errors`` tables plus what was learnt on the way.

    Derived tables, built in bulk on first access and cached (:mod:`.tables`,
    :mod:`gbp_lab.analysis`): :attr:`messages` (GTP), :attr:`audio` (GAP), :attr:`signals` (GSP),
    :attr:`control` (GBP control, PREPARE's commit decrypted when the key log allows),
    :attr:`epochs` (timeline) and :attr:`findings` (security/robustness findings). Each has
    ``time`` and ``frame`` columns (``frame`` = index into :attr:`frames`).

    Shown in a notebook (``cap`` as a cell's last line, ``display(cap)``): the :meth:`summary`,
    the findings and the head of the compact :meth:`packet_list`; the full frames table is
    :attr:`frames`.
    """

    frames: pd.DataFrame
    errors: pd.DataFrame
    plaintexts: List[Optional[bytes]]  #: decrypted payload per ``frames`` row (None if not)
    keylog: Optional[KeyLog]
    secrets: List[DecryptionSecrets] = field(default_factory=list)
    interfaces: List[Interface] = field(default_factory=list)
    stats: Optional[PipelineStats] = None
    source: Optional[str] = None
    payloads: List[Optional[bytes]] = field(default_factory=list)  #: frame ``pl`` per row
    #: the record bytes (body after the ``u32-LE`` length prefix) per row: :meth:`record`
    records: List[bytes] = field(default_factory=list, repr=False)
    #: each decrypted GAP frame's opened media by ``frames`` row (:func:`.media.open_media`)
    media: Dict[int, MediaOpen] = field(default_factory=dict, repr=False)
    #: the read loop's decoded payload values per row (:attr:`.readpath.ReadChunk.values`),
    #: kept until the ``messages`` table is built from them (then emptied)
    values: List[Optional[tuple]] = field(default_factory=list, repr=False, compare=False)
    _cache: Dict[str, pd.DataFrame] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        return (f"Capture({self.source!r}: {len(self.frames)} frames, {len(self.errors)} errors, "
                f"{int(self.frames['decrypted'].sum()) if len(self.frames) else 0} decrypted)")

    def record(self, frame_no: int) -> bytes:
        """The record bytes of ``frames`` row ``frame_no`` (its position, = the ``frame``
        column of the derived tables): the body after the ``u32-LE`` length prefix, as read —
        a CBOR GbpFrame or a raw MLS blob. Kept by :func:`read_capture`, so a consumer never
        reads the file again (and the record is the one the read's own ports selected)."""
        n = len(self.records)
        if not -n <= frame_no < n:
            raise IndexError(f"frame {frame_no} out of range: the capture keeps {n} records")
        return self.records[frame_no]

    def opus(self, frame_no: int) -> Optional[bytes]:
        """The Opus bytes of ``frames`` row ``frame_no``: the SFrame plaintext (RFC 9605 §4.4)
        when the key log opened it, the ``opus`` field itself for raw Opus; ``None`` for an
        SFrame payload that did not open and for frames that are no decrypted GAP audio."""
        n = len(self.frames)
        if not -n <= frame_no < n:
            raise IndexError(f"frame {frame_no} out of range: the capture has {n} frames")
        m = self.media.get(frame_no % n if n else frame_no)
        return None if m is None else m.opus

    # -- derived tables (lazy) -----------------------------------------------------------------
    def _get(self, name: str, build) -> pd.DataFrame:
        df = self._cache.get(name)
        if df is None:
            with gc_paused():  # a tuple per row until the DataFrame exists: no collections
                df = self._cache[name] = with_rel_time(build(), self.t0)
        return df

    @property
    def t0(self):
        """The first packet's time (integer nanoseconds since the epoch, NaN if unknown): where
        every table's ``rel_time`` (seconds, float) starts, as Wireshark's relative time."""
        return self.stats.first_time if self.stats is not None else math.nan

    @property
    def messages(self) -> pd.DataFrame:
        """GTP text messages (see :func:`.tables.build_messages`)."""
        from . import tables
        df = self._get("messages", lambda: tables.build_messages(self.frames, self.plaintexts,
                                                                 self.values))
        self.values = []  # used: the decoded bodies need not stay in memory
        return df

    @property
    def audio(self) -> pd.DataFrame:
        """GAP audio payloads with SFrame header fields (see :func:`.tables.build_audio`)."""
        from . import tables
        return self._get("audio", lambda: tables.build_audio(self.frames, self.plaintexts,
                                                             self.media))

    @property
    def signals(self) -> pd.DataFrame:
        """GSP signals with decoded args (see :func:`.tables.build_signals`)."""
        from . import tables
        return self._get("signals", lambda: tables.build_signals(self.frames, self.plaintexts))

    @property
    def control(self) -> pd.DataFrame:
        """GBP control messages (see :func:`.tables.build_control`)."""
        from . import tables
        return self._get("control", lambda: tables.build_control(self.frames, self.plaintexts,
                                                                 self.keylog))

    @property
    def epochs(self) -> pd.DataFrame:
        """Epoch timeline (see :func:`.tables.build_epochs`) with each epoch's rebuilt tree hash
        and leaves (:func:`.trees.with_tree_columns`)."""
        from . import tables, trees
        return self._get("epochs", lambda: trees.with_tree_columns(tables.build_epochs(self.frames),
                                                                   self.trees))

    @property
    def trees(self):
        """Every epoch's public ratchet tree rebuilt from the decrypted commits, with the
        observer's verifications (:func:`.trees.trees_of`; cached)."""
        from . import trees
        t = self.__dict__.get("_trees")
        if t is None:
            t = self.__dict__["_trees"] = trees.trees_of(self)
        return t

    def tree(self, epoch: int, group_id: Optional[bytes] = None):
        """One epoch's :class:`~.trees.EpochTree` (``tree`` is ``None`` when unknown: see ``reason``)."""
        return self.trees.tree(epoch, group_id)

    @property
    def findings(self) -> pd.DataFrame:
        """Findings (nonce reuse, replays, …; kinds in :data:`gbp_lab.analysis.findings.KINDS`)."""
        from gbp_lab.analysis.findings import find
        return self._get("findings", lambda: find(self))

    TABLES = ("frames", "errors", "messages", "audio", "signals", "control", "epochs", "findings")

    # -- presentation ----------------------------------------------------------------------------
    def packet_list(self, full: bool = False) -> pd.DataFrame:
        """The frames as Wireshark's packet list: one row per ``frames`` row (same index, the
        "No." column), the columns :data:`PACKET_LIST_COLUMNS` — ``rel_time`` (seconds since the
        first packet), ``endpoints`` (``"src:sport → dst:dport"``), ``epoch``, ``sender``,
        ``protocol`` and ``info``. ``full=True`` returns :attr:`frames` itself, all columns.
        Filter with ``cap.packet_list().loc[cap.frames.query(...).index]``."""
        f = self.frames
        if full:
            return f
        if not len(f):
            return pd.DataFrame({c: pd.Series(dtype=object) for c in PACKET_LIST_COLUMNS})
        ends = (f["src"].astype(object).fillna("?") + ":" + f["sport"].astype(object).fillna("?").astype(str)
                + " → " + f["dst"].astype(object).fillna("?") + ":"
                + f["dport"].astype(object).fillna("?").astype(str))
        out = f[["rel_time", "epoch", "sender", "protocol", "info"]].copy()
        out.insert(1, "endpoints", ends.astype(f["info"].dtype))
        return out

    def summary(self) -> str:
        """A text summary: counts per protocol / stream / epoch, members, findings."""
        f = self.frames
        lines = [f"capture {self.source or '<memory>'}: {len(f)} frames "
                 f"({int(f['decrypted'].sum()) if len(f) else 0} decrypted), "
                 f"{len(self.errors)} errors"]
        t0 = self.t0
        if t0 == t0 and 0 <= t0 < 2**63:
            lines.append(f"  first packet {pd.Timestamp(int(t0), tz='UTC').isoformat()} "
                         f"(times below: seconds since it)")
        if self.stats is not None:
            st = self.stats
            lines.append(f"  packets {st.packets}, records {st.records}, flows {st.flows} "
                         f"(GBP {st.gbp_flows}), TCP gaps {st.gaps}")
        if len(f):
            lines.append("  per protocol: " + ", ".join(
                f"{k} {v}" for k, v in f["protocol"].value_counts().sort_index().items()))
            gbp = f[f["stream_name"].notna()]
            if len(gbp):
                lines.append("  per stream: " + ", ".join(
                    f"{k} {v}" for k, v in gbp["stream_name"].value_counts().sort_index().items()))
        ep = self.epochs
        for r in ep.itertuples(index=False):
            lines.append(f"  epoch {r.epoch} (group {str(r.group_id)[:8]}…, tid {r.transition_id}): "
                         f"{r.frames} frames, {r.decrypted} decrypted, members {list(r.members)}, "
                         f"{self._rel(r.first_time)} … {self._rel(r.last_time)}")
        members = sorted({int(x) for x in f["sender"].dropna()}) if len(f) else []
        lines.append(f"  members seen: {members}")
        lines.append(f"  frames: cap.packet_list() ({', '.join(PACKET_LIST_COLUMNS)}); "
                     f"cap.frames (all {len(f.columns)} columns)")
        fi = self.findings
        if len(fi):
            lines.append(f"  findings: {len(fi)} — " + ", ".join(
                f"{k} {v}" for k, v in fi["kind"].value_counts().sort_index().items()))
        else:
            lines.append("  findings: none")
        return "\n".join(lines)

    def _rel(self, t) -> str:
        """A time cell as seconds since the first packet (``rel_time``), ``"?"`` if unknown."""
        if t is None or t is pd.NaT or not isinstance(t, pd.Timestamp):
            return "?"
        t0 = self.t0
        if t0 != t0:
            return "?"
        return f"{(t.value - int(t0)) / 1e9:.3f}s"

    def _repr_html_(self) -> str:
        import html

        from gbp_lab.analysis.findings import SEVERITY

        parts = [f"<pre>{html.escape(self.summary())}</pre>"]
        fi = self.findings
        if len(fi):
            def style(row):
                sev = SEVERITY.get(row["kind"], "info")
                color = {"high": "#f8d7da", "medium": "#fff3cd"}.get(sev, "#e2e3e5")
                return [f"background-color: {color}"] * len(row)

            shown = fi.drop(columns=[c for c in ("xor", "time") if c in fi.columns]).head(50)
            try:
                parts.append("<h4>Findings</h4>" + shown.style.apply(style, axis=1).to_html())
            except Exception:  # jinja2 missing: plain table
                parts.append("<h4>Findings</h4>" + shown.to_html())
        shown = self.packet_list().head(20)  # the compact view; cap.frames has every column
        parts.append(f"<h4>Frames (head): the packet list, {len(shown)} of {len(self.frames)} "
                     f"(every column: <code>cap.frames</code>)</h4>" + shown.to_html())
        return "\n".join(parts)

    def to_parquet(self, directory) -> Dict[str, str]:
        """Write every table to ``directory/<table>.parquet`` (object columns made parquet-safe:
        bytes as hex text, lists/dicts as JSON text). Returns ``{table: path}``."""
        os.makedirs(directory, exist_ok=True)
        out = {}
        for name in self.TABLES:
            df = getattr(self, name)
            path = os.path.join(str(directory), f"{name}.parquet")
            parquet_safe(df).to_parquet(path, index=True)
            out[name] = path
        return out


def _json_safe(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_json_safe(x) for x in v]
    return v


def parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns → one Arrow type each: str, bytes→hex, containers→JSON text."""
    import json

    out = df.copy()
    for c in out.columns:
        if out[c].dtype != object:
            continue
        vals = out[c].tolist()
        kinds = {type(v) for v in vals if v is not None and v is not pd.NA}
        if kinds <= {str}:
            continue
        conv: List[Optional[str]] = []
        for v in vals:
            if v is None or v is pd.NA:
                conv.append(None)
            elif isinstance(v, str):
                conv.append(v)
            elif isinstance(v, (bytes, bytearray, memoryview)):
                conv.append(bytes(v).hex())
            elif isinstance(v, (dict, list, tuple, set, frozenset)):
                conv.append(json.dumps(_json_safe(v), sort_keys=True, default=str))
            else:
                conv.append(str(v))
        out[c] = pd.array(conv, dtype=object)
    return out


def read_capture(path, keylog=None, *, ports=(GBP_PORT,), heuristic: bool = True,
                 decrypt: bool = True, summarize: bool = True,
                 sframe_label: str = DEFAULT_LABEL, progress: bool = True,
                 **pipeline_kw) -> Capture:
    """Read a pcap/pcapng capture of GBP traffic into a :class:`Capture` (see module docstring).

    ``path`` may also be bytes or a binary file object. ``keylog``: KeyLog, key-log path or text.
    ``ports`` / ``heuristic`` select the GBP flows (:class:`~.records.RecordPipeline`).
    ``sframe_label``: the ``MLS-Exporter`` label of the SFrame base key (:mod:`.media`).
    ``progress``: a tqdm bar (bytes) for files of :data:`~.progress.PROGRESS_MIN_BYTES` or more
    (:class:`~.progress.ByteProgress`); ``False`` hides it.
    """
    state = ReadState()
    chunk = None
    bar = ByteProgress(path, enabled=progress, min_bytes=PROGRESS_MIN_BYTES)
    try:
        for chunk in read_chunks(path, keylog, state, ports=ports, heuristic=heuristic,
                                 decrypt=decrypt, summarize=summarize, chunksize=None,
                                 on_raw=bar.on_raw, **pipeline_kw):
            pass  # chunksize=None: one chunk, at the end
    finally:
        bar.close()
    assert chunk is not None
    t0 = state.stats.first_time if state.stats is not None else None
    with gc_paused():  # tables in bulk (as Capture._get builds the derived ones): no collections
        frames = frames_table(chunk.frame_cells, chunk.key_epochs, t0, chunk.quic_flows)
        media, media_errors = open_media(frames, chunk.plaintexts,
                                         state.keys if decrypt else None, sframe_label,
                                         values=chunk.values)
        errors = errors_table(chunk.error_rows + media_errors, t0)
    return Capture(frames, errors, chunk.plaintexts, state.keys, state.secrets, state.interfaces,
                   state.stats, str(path) if isinstance(path, (str, os.PathLike)) else None,
                   chunk.payloads, chunk.records, media, chunk.values or [])
