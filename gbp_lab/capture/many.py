"""Many captures at once, on dask (threads, processes or a ``dask.distributed`` cluster): every
table of :class:`~.model.Capture` and the findings across all the files.

:func:`read_captures` gives one table of many files as a lazy ``dask.dataframe``;
:func:`findings_across` the findings of all of them together, as :func:`~.model.read_capture`
finds them on the files concatenated (a nonce reused by two members whose frames landed in
different files is still one ``nonce_reuse``); :func:`write_dataset` writes a Parquet dataset
partitioned by group and epoch. Optional dependencies: ``pip install 'gbp-lab[cluster]'``
(dask + distributed); without them these raise :class:`MissingExtraError`.

The graph (every task function is module-level and picklable; the key log travels as text; a
worker keeps no state between tasks):

1. *read* — one task per file: :func:`~.model.read_capture` → a :class:`~.model.Capture`;
2. *layout* — one small task: each file's counts (frames, errors, packets, table rows), its
   first packet time, its flows → the global numbering (:class:`Layout`);
3. *tables* — one task per file: its table renumbered to the whole (row index, ``frame``,
   ``packet``, ``flow_id``, TCP ``offset``, ``rel_time`` since the first file's first packet)
   plus a ``file`` column;
4. *findings* — one task per file emits its frames as *local facts* (the row, its global frame
   number, payload, plaintext and opened media as Arrow binary columns); dask's own
   ``groupby(group_id).apply`` shuffles them so that one task sees every frame of a group from
   every file, in capture order, and runs :func:`gbp_lab.analysis.findings.find` on them (every
   frame kind of the findings is keyed by group: nonce reuse, replays, windows, epoch
   regressions, SFrame nonce reuse, stale keys, the rebuilt trees); the ``errors``-table kinds
   (capture defects, malformed records) come from each file alone. ``epochs`` goes the same way.

Capture order: the rows of these tables are sorted by ``packet`` (global: the packets of the
earlier files come first), then by TCP stream ``offset``. :func:`~.model.read_capture` emits a
record when it completes, and a TCP flow already running when a file starts (no SYN) is held
until its base is fixed, so one file's own row order can differ from the order of the same rows
in a longer capture; the packet order is the same in both.

TCP across file boundaries: each file is read by its own reassembler, so a cut is *safe* where
no record straddles it (a record cut in two is lost: ``errors`` says where). A flow continuing
from an earlier file keeps its ``flow_id`` (same addresses and ports) and its ``offset`` continues
from the end of its last record there. Flow ids are numbered over the flows that carry rows.
"""
from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from gbp_lab.core.errors import UsageError

from .columns import with_rel_time

__all__ = ["TABLES", "MissingExtraError", "Layout", "read_captures", "findings_across",
           "write_dataset", "keylog_text", "require", "NO_KEY"]

#: the tables :func:`read_captures` gives (= :attr:`.model.Capture.TABLES`)
TABLES = ("frames", "errors", "messages", "audio", "signals", "control", "epochs", "findings")
#: tables with a ``frame`` column pointing into ``frames``
_FRAME_REFS = ("errors", "messages", "audio", "signals", "control", "epochs")
#: the partition directory of rows without a group or an epoch in :func:`write_dataset` (hive
#: null partitions do not read back everywhere)
NO_KEY = "none"
#: the classic pcap file header of an empty capture (for the tables' empty shapes)
_EMPTY_PCAP = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")


class MissingExtraError(UsageError, ImportError):
    """An optional dependency is not installed: the message names the ``pip install`` extra."""

    default_vid = "CAP-EXTRA-MISSING"


def require(module: str, extra: str = "cluster"):
    """``import module`` or :class:`MissingExtraError` naming ``pip install 'gbp-lab[extra]'``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(f"{module} is not installed (needed for many captures on dask): "
                                f"pip install 'gbp-lab[{extra}]'", vid="CAP-EXTRA-MISSING",
                                where=module) from e


def keylog_text(keylog) -> Optional[str]:
    """A key log as text, to travel to the workers: ``None``, a
    :class:`~gbp_lab.core.keylog.KeyLog`, a path (read here, where the caller is) or text."""
    from gbp_lab.core.keylog import KeyLog

    if keylog is None:
        return None
    if isinstance(keylog, KeyLog):
        return keylog.dump()
    if isinstance(keylog, os.PathLike) or (isinstance(keylog, str) and "\n" not in keylog
                                           and os.path.exists(keylog)):
        with open(keylog, encoding="utf-8") as fh:
            return fh.read()
    if isinstance(keylog, bytes):
        return keylog.decode("utf-8")
    return str(keylog)


# -- 1. read -----------------------------------------------------------------------------------
def _read(path: str, keys: Optional[str], read_kw: Dict[str, Any]):
    """One file → its :class:`~.model.Capture` (a task: no progress bar on a worker)."""
    from .model import read_capture

    return read_capture(path, keylog=keys, progress=False, **read_kw)


def _empty(keys: Optional[str] = None, read_kw: Optional[Dict[str, Any]] = None):
    """The capture of an empty file: every table's columns and dtypes (dask's ``meta``)."""
    from .model import read_capture

    return read_capture(_EMPTY_PCAP, keylog=keys, progress=False, **(read_kw or {}))


# -- 2. layout ---------------------------------------------------------------------------------
def _order(frames: pd.DataFrame) -> np.ndarray:
    """The capture order of a file's frames: by packet, then TCP offset (stable)."""
    if not len(frames):
        return np.zeros(0, dtype=np.int64)
    pk = frames["packet"].to_numpy(dtype="float64", na_value=np.inf)
    off = frames["offset"].to_numpy(dtype="float64", na_value=-1.0)
    return np.lexsort((off, pk)).astype(np.int64)


def _dir_key(src, sport, dst, dport, transport) -> tuple:
    return (transport, src, sport, dst, dport)


def _flow_key(src, sport, dst, dport, transport) -> tuple:
    a, b = (src, sport), (dst, dport)
    return (transport,) + (a + b if a <= b else b + a)


def _facts_of(cap, table: str) -> Dict[str, Any]:
    """What the layout needs of one file (small: counts, flows, per-direction stream ends)."""
    f, e = cap.frames, cap.errors
    flows: Dict[int, tuple] = {}
    ends: Dict[tuple, int] = {}
    starts: Dict[tuple, int] = {}
    for df, recs in ((f, cap.records), (e, None)):
        if not len(df):
            continue
        cols = [df[c].tolist() for c in ("flow_id", "src", "sport", "dst", "dport", "transport",
                                         "offset")]
        for i, (fid, s, sp, d, dp, tr, off) in enumerate(zip(*cols)):
            if fid is None or fid is pd.NA or s is None or s is pd.NA:
                continue
            flows.setdefault(int(fid), _flow_key(s, sp, d, dp, tr))
            if recs is None or off is None or off is pd.NA or tr != "tcp":
                continue
            dk = _dir_key(s, sp, d, dp, tr)
            starts[dk] = min(starts.get(dk, int(off)), int(off))
            ends[dk] = max(ends.get(dk, 0), int(off) + 4 + len(recs[i]))
    n_rows = len(f) if table in ("frames", "findings", "epochs") else len(getattr(cap, table))
    return {"frames": len(f), "errors": len(e), "rows": n_rows,
            "packets": cap.stats.packets if cap.stats is not None else 0, "t0": cap.t0,
            "flows": flows, "ends": ends, "starts": starts}


@dataclass
class Layout:
    """The global numbering of many files (made by one small task from each file's facts)."""

    frame_offsets: List[int]
    error_offsets: List[int]
    row_offsets: List[int]
    packet_offsets: List[int]
    t0: float  #: the first file's first packet (ns), where every ``rel_time`` starts
    #: per file: local flow id -> global flow id
    flow_ids: List[Dict[int, int]] = field(default_factory=list)
    #: per file: TCP direction -> bytes of that direction in the earlier files (its offset base)
    offset_bases: List[Dict[tuple, int]] = field(default_factory=list)


def _layout(facts: Sequence[Dict[str, Any]]) -> Layout:
    cum = {k: [0] for k in ("frames", "errors", "rows", "packets")}
    for fa in facts:
        for k, v in cum.items():
            v.append(v[-1] + fa[k])
    t0 = next((fa["t0"] for fa in facts if fa["t0"] == fa["t0"]), float("nan"))
    seen: Dict[tuple, int] = {}
    ends: Dict[tuple, int] = {}
    flow_ids: List[Dict[int, int]] = []
    bases: List[Dict[tuple, int]] = []
    for fa in facts:
        m = {}
        for fid in sorted(fa["flows"]):
            key = fa["flows"][fid]
            m[fid] = seen.setdefault(key, len(seen))
        flow_ids.append(m)
        # a direction seen before continues: its offsets count from where it stopped
        bases.append({dk: ends[dk] for dk in fa["starts"] if dk in ends})
        for dk, end in fa["ends"].items():
            ends[dk] = end + bases[-1].get(dk, 0)
    return Layout(cum["frames"][:-1], cum["errors"][:-1], cum["rows"][:-1], cum["packets"][:-1],
                  t0, flow_ids, bases)


# -- 3. tables ---------------------------------------------------------------------------------
def _ranks(cap) -> np.ndarray:
    """local frame row -> its rank in the file's capture order."""
    order = _order(cap.frames)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank


def _renumber(df: pd.DataFrame, lay: Layout, i: int, rank: np.ndarray) -> pd.DataFrame:
    """Global ``frame``, ``packet``, ``flow_id``, ``offset``, ``rel_time`` of file ``i``'s rows."""
    out = df.copy()
    if "frame" in out.columns and len(out):
        fr = out["frame"].to_numpy(dtype="float64", na_value=np.nan)
        ok = ~np.isnan(fr)
        g = np.full(len(fr), -1, dtype=np.int64)
        g[ok] = rank[fr[ok].astype(np.int64)] + lay.frame_offsets[i]
        out["frame"] = pd.array(np.where(ok, g, 0), dtype=out["frame"].dtype)
        out.loc[~ok, "frame"] = pd.NA
    if "packet" in out.columns and len(out):
        out["packet"] = out["packet"] + lay.packet_offsets[i]
    if "flow_id" in out.columns and len(out):
        m = lay.flow_ids[i]
        out["flow_id"] = pd.array([None if v is None or v is pd.NA else m.get(int(v), v)
                                   for v in out["flow_id"].tolist()], dtype=out["flow_id"].dtype)
    if "offset" in out.columns and len(out) and lay.offset_bases[i]:
        bases = lay.offset_bases[i]
        cols = [out[c].tolist() for c in ("src", "sport", "dst", "dport", "transport", "offset")]
        out["offset"] = pd.array(
            [off if off is None or off is pd.NA else
             off + bases.get(_dir_key(s, sp, d, dp, tr), 0) for s, sp, d, dp, tr, off in zip(*cols)],
            dtype=out["offset"].dtype)
    if "rel_time" in out.columns:
        out = with_rel_time(out.drop(columns="rel_time"), lay.t0)
    return out


def _with_file(df: pd.DataFrame, path: str) -> pd.DataFrame:
    df.insert(0, "file", pd.array([path] * len(df), dtype=object))
    return df


def _table(cap, lay: Layout, i: int, path: str, table: str) -> pd.DataFrame:
    """File ``i``'s rows of ``table``, numbered as in the whole (a partition)."""
    rank = _ranks(cap)
    if table == "frames":
        df = cap.frames.iloc[_order(cap.frames)]
        df = _renumber(df, lay, i, rank)
        df.index = pd.RangeIndex(lay.frame_offsets[i], lay.frame_offsets[i] + len(df))
        return _with_file(df, path)
    df = _renumber(getattr(cap, table), lay, i, rank)
    if table != "errors" and len(df):  # the derived tables follow the frames' order
        df = df.sort_values("frame", kind="stable")
    df.index = pd.RangeIndex(lay.row_offsets[i], lay.row_offsets[i] + len(df))
    return _with_file(df, path)


# -- 4. findings and epochs: local facts, shuffled by group ------------------------------------
#: the columns the facts add to a frames row (``_group``: the shuffle key, a copy of
#: ``group_id`` — pandas' ``groupby.apply`` hides the key column from the function)
_FACT_COLUMNS = ("_payload", "_plaintext", "_media", "_t0", "_group")


def _binary(values: List[Optional[bytes]]):
    import pyarrow as pa

    return pd.array(pa.array(values, type=pa.binary()), dtype=pd.ArrowDtype(pa.binary()))


def _local_facts(cap, lay: Layout, i: int) -> pd.DataFrame:
    """File ``i``'s frames in capture order, globally numbered (``_frame``), with the bytes the
    findings need (payload, plaintext, the opened media pickled) as Arrow binary columns."""
    order = _order(cap.frames)
    df = _renumber(cap.frames.iloc[order], lay, i, _ranks(cap))
    df = df.reset_index(drop=True)
    df.insert(0, "_frame", np.arange(len(df), dtype=np.int64) + lay.frame_offsets[i])
    pl, pt = cap.payloads, cap.plaintexts
    ol = order.tolist()
    df["_payload"] = _binary([pl[j] if j < len(pl) else None for j in ol])
    df["_plaintext"] = _binary([pt[j] if j < len(pt) else None for j in ol])
    df["_media"] = _binary([pickle.dumps(cap.media[j]) if j in cap.media else None for j in ol])
    df["_t0"] = np.full(len(df), lay.t0, dtype=np.float64)  # where rel_time starts
    df["_group"] = df["group_id"]
    return df


def _group_capture(facts: pd.DataFrame, keys: Optional[str], t0: float):
    """One group's frames from every file (in capture order) as a :class:`~.model.Capture`."""
    from gbp_lab.core.keylog import KeyLog

    from .model import Capture
    from .records import PipelineStats

    facts = facts.sort_values("_frame", kind="stable")
    frames = facts.drop(columns=["_frame", *_FACT_COLUMNS], errors="ignore").reset_index(drop=True)
    media = {k: pickle.loads(b) for k, b in enumerate(_blobs(facts["_media"])) if b is not None}
    stats = PipelineStats(first_time=t0)
    empty = _empty(keys).errors
    return Capture(frames, empty, _blobs(facts["_plaintext"]), KeyLog.parse(keys) if keys else None,
                   stats=stats, payloads=_blobs(facts["_payload"]), media=media)


def _blobs(col: pd.Series) -> List[Optional[bytes]]:
    """An Arrow binary column as bytes, ``None`` where missing."""
    return [None if b is None or b is pd.NA else bytes(b) for b in col.tolist()]


_FRAME_REF = re.compile(r"\b(frames? |frame\(s\) \[|frames \()(\d+(?:, \d+)*)")


def _global_detail(text: str, glob: List[int]) -> str:
    """The frame numbers a finding's ``detail`` names, from the group's rows to the whole's."""
    def sub(m):
        nums = ", ".join(str(glob[int(x)]) if int(x) < len(glob) else x
                         for x in m.group(2).split(", "))
        return m.group(1) + nums
    return _FRAME_REF.sub(sub, text)


def _group_findings(facts: pd.DataFrame, keys: Optional[str], t0: float) -> pd.DataFrame:
    """The frame findings of one group (a ``groupby.apply`` task), frames numbered globally."""
    if not len(facts):
        return _empty(keys).findings.iloc[:0]
    cap = _group_capture(facts, keys, t0)
    glob = facts.sort_values("_frame", kind="stable")["_frame"].tolist()
    fi = cap.findings.copy()
    fi["frames"] = [[glob[k] for k in fr] for fr in fi["frames"].tolist()]
    fi["detail"] = [_global_detail(d, glob) if isinstance(d, str) else d
                    for d in fi["detail"].tolist()]
    return fi.reset_index(drop=True)


def _group_epochs(facts: pd.DataFrame, keys: Optional[str], t0: float) -> pd.DataFrame:
    """The ``epochs`` rows of one group (rebuilt trees included), ``frame`` numbered globally."""
    if not len(facts):
        return _empty(keys).epochs.iloc[:0]
    cap = _group_capture(facts, keys, t0)
    glob = facts.sort_values("_frame", kind="stable")["_frame"].tolist()
    ep = cap.epochs.copy()
    ep["frame"] = pd.array([glob[int(k)] for k in ep["frame"].tolist()], dtype=ep["frame"].dtype)
    return ep.reset_index(drop=True)


def _error_findings(cap, lay: Layout, i: int, keys: Optional[str]) -> pd.DataFrame:
    """The findings of file ``i``'s ``errors`` table (defects, malformed records)."""
    from gbp_lab.analysis.findings import find_in

    empty = _empty(keys)
    fi = find_in(empty.frames, cap.errors, [], [])
    fi["errors"] = [[e + lay.error_offsets[i] for e in er] for er in fi["errors"].tolist()]
    return with_rel_time(fi, lay.t0)


def _findings_meta(keys: Optional[str]) -> pd.DataFrame:
    return _empty(keys).findings.iloc[:0]


# -- the graph ---------------------------------------------------------------------------------
@dataclass
class _Graph:
    paths: List[str]
    keys: Optional[str]
    caps: list
    layout: Any


def _graph(paths: Sequence, keylog, read_kw: Dict[str, Any], table: str) -> _Graph:
    delayed = require("dask").delayed
    paths = [os.fspath(p) if isinstance(p, os.PathLike) else p for p in paths]
    if not paths:
        raise UsageError("read_captures needs at least one path", vid="CAP-NO-PATHS")
    if table not in TABLES:
        raise UsageError(f"unknown table {table!r}: one of {', '.join(TABLES)}",
                         vid="CAP-TABLE", where="read_captures")
    keys = keylog_text(keylog)
    caps = [delayed(_read, pure=True)(p, keys, read_kw) for p in paths]
    facts = [delayed(_facts_of, pure=True)(c, table) for c in caps]
    layout = delayed(_layout, pure=True)(facts)
    return _Graph(paths, keys, caps, layout)


def _facts_frame(g: _Graph, meta: pd.DataFrame):
    dd = require("dask.dataframe")
    delayed = require("dask").delayed
    parts = [delayed(_local_facts, pure=True)(c, g.layout, k) for k, c in enumerate(g.caps)]
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


def _facts_meta(keys: Optional[str], read_kw) -> pd.DataFrame:
    empty = _empty(keys, read_kw)
    lay = Layout([0], [0], [0], [0], float("nan"), [{}], [{}])
    return _local_facts(empty, lay, 0)


def _by_group(g: _Graph, fn, meta: pd.DataFrame, read_kw):
    facts = _facts_frame(g, _facts_meta(g.keys, read_kw))
    # frames without a group (raw MLS blobs) are dropped by the groupby: no frame kind uses them
    return facts.groupby("_group").apply(_apply_with_t0, fn, g.keys, meta=meta)


def _apply_with_t0(df: pd.DataFrame, fn, keys) -> pd.DataFrame:
    """``fn(group's facts, keys, t0)``: one group of the shuffled facts."""
    return fn(df, keys, float(df["_t0"].iloc[0]) if len(df) else float("nan"))


def read_captures(paths: Sequence, keylog=None, table: str = "frames", **read_kw):
    """One table of many captures as a lazy ``dask.dataframe.DataFrame`` (see the module
    docstring): ``frames``, ``errors``, ``messages``, ``audio``, ``signals``, ``control`` — one
    partition per file — or ``epochs`` and ``findings`` — partitions by group after a shuffle
    (their files' errors too, for ``findings``). A ``file`` column (not in ``epochs``/``findings``)
    says where a row came from; ``frame``, ``packet``, ``flow_id`` and the index are global.
    ``keylog`` (a KeyLog, path or text) applies to every file, sent to the workers as text; each
    file's own secrets blocks apply to that file. Other keyword arguments go to
    :func:`~.model.read_capture` (``ports``, ``heuristic`` …). Works with any dask scheduler, a
    ``dask.distributed`` ``Client`` included (``pip install 'gbp-lab[cluster]'``)."""
    dask = require("dask")
    # object columns keep their Python values (bytes, lists, None): dask's string conversion is
    # decided when the graph is built
    with dask.config.set({"dataframe.convert-string": False}):
        return _read_captures(paths, keylog, table, read_kw)


def _read_captures(paths: Sequence, keylog, table: str, read_kw: Dict[str, Any]):
    dd = require("dask.dataframe")
    delayed = require("dask").delayed
    g = _graph(paths, keylog, read_kw, table)
    empty = _empty(g.keys, read_kw)
    if table == "findings":
        meta = _findings_meta(g.keys)
        by_group = _by_group(g, _group_findings, meta, read_kw)
        errs = dd.from_delayed([delayed(_error_findings, pure=True)(c, g.layout, k, g.keys)
                                for k, c in enumerate(g.caps)], meta=meta, verify_meta=False)
        return dd.concat([by_group.reset_index(drop=True), errs])
    if table == "epochs":
        meta = empty.epochs.iloc[:0]
        return _by_group(g, _group_epochs, meta, read_kw).reset_index(drop=True)
    meta = _table(empty, Layout([0], [0], [0], [0], float("nan"), [{}], [{}]), 0, "", table)
    parts = [delayed(_table, pure=True)(c, g.layout, k, p, table)
             for k, (c, p) in enumerate(zip(g.caps, g.paths))]
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


def findings_across(paths: Sequence, keylog=None, *, scheduler=None, **read_kw) -> pd.DataFrame:
    """The findings of many captures together, computed on dask (``read_captures(paths, keylog,
    table="findings")``) and sorted by time: what :func:`~.model.read_capture` finds on the files
    concatenated, ``frames`` and ``errors`` numbered as in :func:`read_captures`' tables.
    ``scheduler``: dask's (``None``: the default one — a ``dask.distributed`` ``Client`` once
    made — else e.g. ``"threads"``, ``"processes"`` or a ``Client``)."""
    df = read_captures(paths, keylog, table="findings", **read_kw).compute(scheduler=scheduler)
    return df.sort_values("time", kind="stable", na_position="last").reset_index(drop=True)


def write_dataset(paths: Sequence, out_dir, keylog=None,
                  tables: Sequence[str] = ("frames", "errors", "messages", "audio", "signals",
                                           "control", "epochs", "findings"),
                  **read_kw) -> Dict[str, str]:
    """Write the tables of many captures as a Parquet dataset: ``out_dir/<table>/``, partitioned
    by ``group_id`` and ``epoch`` (hive layout ``group_id=…/epoch=…/``; rows without a group or
    an epoch, such as raw MLS blobs, under :data:`NO_KEY` ``none``) where the table has them; cells made Parquet-safe as
    :meth:`.model.Capture.to_parquet` does (bytes as hex text, lists/dicts as JSON text). Each
    partition is written by its own task (on the workers when a ``dask.distributed`` client is
    the default scheduler: ``out_dir`` must then be shared). Readable by pandas, dask, DuckDB,
    Spark. Returns ``{table: directory}``."""
    dask = require("dask")
    out: Dict[str, str] = {}
    os.makedirs(out_dir, exist_ok=True)
    for table in tables:
        ddf = read_captures(paths, keylog, table=table, **read_kw)
        where = os.path.join(os.fspath(out_dir), table)
        os.makedirs(where, exist_ok=True)
        part_on = [c for c in ("group_id", "epoch") if c in ddf.columns]
        schema = _dataset_schema(ddf._meta)
        with dask.config.set({"dataframe.convert-string": False}):
            done = ddf.map_partitions(_write_part, where, part_on, schema,
                                      meta=pd.DataFrame({"rows": pd.Series([], dtype="int64")}))
        done.compute()
        out[table] = where
    return out


def _dataset_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Parquet-safe cells (:func:`.model.parquet_safe`), the partition keys as text (a hive
    directory name) and no ``file`` path objects."""
    from .model import parquet_safe

    out = parquet_safe(df)
    for c in ("group_id", "epoch"):
        if c in out.columns:
            out[c] = pd.array([NO_KEY if v is None or v is pd.NA or v != v else str(v)
                               for v in out[c].tolist()], dtype=object)
    return out


def _dataset_schema(meta: pd.DataFrame):
    """One Arrow schema for every partition: object (text after :func:`_dataset_safe`) and
    all-missing columns as strings."""
    import pyarrow as pa

    schema = pa.Schema.from_pandas(_dataset_safe(meta), preserve_index=False)
    for k, f in enumerate(schema):
        if pa.types.is_null(f.type):
            schema = schema.set(k, pa.field(f.name, pa.string()))
    return schema


def _write_part(df: pd.DataFrame, where: str, part_on: List[str], schema,
                partition_info=None) -> pd.DataFrame:
    """Write one partition into the dataset (its own file names: ``part-<n>-<i>.parquet``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = partition_info["number"] if partition_info else 0
    if len(df):
        table = pa.Table.from_pandas(_dataset_safe(df), schema=schema, preserve_index=False)
        pq.write_to_dataset(table, where, partition_cols=part_on or None,
                            basename_template=f"part-{n}-{{i}}.parquet")
    return pd.DataFrame({"rows": pd.Series([len(df)], dtype="int64")})
