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

1. *read* — one task per part: a file, or a slice of a big pcap/pcapng (:class:`Part`, below) →
   a :class:`~.model.Capture` of the packets that part owns;
2. *layout* — one small task: each part's counts (frames, errors, packets), first packet time,
   flows and TCP offsets → the global numbering (:class:`Layout`);
3. ``frames`` and ``errors`` — one partition per part, renumbered to the whole (row index,
   ``frame``, ``packet``, ``flow_id``, TCP ``offset``, ``rel_time`` since the first packet of the
   first file) with a ``file`` column;
4. the derived tables (``messages``, ``audio``, ``signals``, ``control``, ``epochs``) — each
   part emits its frames as *local facts* (the row, its global frame number, payload and
   plaintext as Arrow binary columns); dask's own ``groupby.apply`` shuffles them by
   ``group_id`` so that one task sees every frame of a group from every part, in capture order,
   and builds the tables there (:class:`~.model.Capture` on those frames): the receivers'
   verdicts (GTP duplicates, SFrame replay windows) and the rebuilt trees come out as on the
   whole capture;
5. ``findings`` — one shuffle of the facts per scope of
   :func:`~gbp_lab.analysis.findings.find_in` (each kind needs the frames of one key only):
   ``nonce`` (nonce reuse, modified replays, tag failures) by a hash bucket of (group, epoch,
   stream type, seq), ``direction`` (replays, receive windows, epoch regressions) by a hash
   bucket of (flow, source, port, group) — many buckets, so one group's frames are spread over
   every worker — and ``group`` (SFrame nonce reuse, stale keys, the tree kinds) by group; the
   ``errors``-table findings (capture defects, malformed records) come from each part alone.
   Each task renders its rows with the frames' global numbers (``frames`` and ``detail``), and
   :func:`~gbp_lab.analysis.findings.sort_findings` puts them in :func:`~.model.read_capture`'s
   order. The ``group`` scope is still one task per group (it opens the group's media in order).

Capture order: rows are sorted by ``packet`` (global: the packets of the earlier files come
first), then TCP stream ``offset``. :func:`~.model.read_capture` emits a record when it
completes, and a TCP flow already running when a file starts (no SYN) is held until its base is
fixed, so one file's own row order can differ from the order of the same rows in a longer
capture; the packet order is the same in both.

TCP across part boundaries — what is chosen:

* *files* are read each by its own reassembler: a cut between files is safe where no record
  straddles it (a record cut in two is lost, ``errors`` says where). A flow continuing from an
  earlier file keeps its ``flow_id`` (same addresses and ports) and its ``offset`` continues
  from the end of its last record there. Flow ids are numbered over the flows that carry rows.
* a *big pcap or pcapng* (more than ``split_bytes``) is read in slices at packet boundaries that
  *overlap*: each slice also reads ``overlap`` packets before its first packet (so the
  reassembler has re-synchronised on the mid-stream flows when its own packets start) and after
  its last (so a record that starts in the slice completes), then keeps the rows whose packet is
  its own; a record is owned by the slice of the packet that carried it. The offsets of a
  flow's direction are joined through a record both slices read. Records longer than
  ``overlap`` packets at a cut are the limit (use a larger ``overlap``). A pcapng slice is cut
  between blocks and carries every non-packet block before it (Section Headers, Interface
  Descriptions, Decryption Secrets …) in front of its packets. Compressed files are one part
  each.
"""
from __future__ import annotations

import math
import mmap
import os
import struct
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from gbp_lab.core.errors import UsageError

from .columns import with_rel_time

__all__ = ["TABLES", "NO_KEY", "SPLIT_BYTES", "OVERLAP", "MissingExtraError", "Part", "Layout",
           "read_captures", "findings_across", "write_dataset", "plan_parts", "keylog_text",
           "require"]

#: the tables :func:`read_captures` gives (= :attr:`.model.Capture.TABLES`)
TABLES = ("frames", "errors", "messages", "audio", "signals", "control", "epochs", "findings")
#: the tables built on each group's frames after the shuffle
_BY_GROUP = ("messages", "audio", "signals", "control", "epochs", "findings")
#: the partition directory of rows without a group or an epoch in :func:`write_dataset` (hive
#: null partitions do not read back everywhere)
NO_KEY = "none"
#: a pcap or pcapng bigger than this is read in slices (:func:`plan_parts`)
SPLIT_BYTES = 64 * 1024 * 1024
#: packets a slice reads beyond each of its ends (see the module docstring)
OVERLAP = 2000
#: the classic pcap file header of an empty capture (for the tables' empty shapes)
_EMPTY_PCAP = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"  # a Section Header Block first
_PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
                b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}


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


# -- 1. parts and reading ----------------------------------------------------------------------
@dataclass(frozen=True)
class Part:
    """One read task: slice ``k`` of ``n`` of a file (``n == 1``: the whole file)."""

    path: str
    k: int = 0
    n: int = 1
    overlap: int = OVERLAP


def plan_parts(paths: Sequence, split_bytes: Optional[int] = SPLIT_BYTES,
               overlap: int = OVERLAP) -> List[Part]:
    """The parts of ``paths``: an uncompressed pcap or pcapng bigger than ``split_bytes`` in
    ``ceil(size / split_bytes)`` slices, every other file whole. Only the sizes and magics are
    read here; the slices' packet boundaries are found by their own tasks."""
    if split_bytes is not None and split_bytes < 1:
        raise UsageError("split_bytes must be >= 1 (or None: one part per file)",
                         vid="CAP-SPLIT-BYTES", where="read_captures")
    if overlap < 0:
        raise UsageError("overlap must be >= 0", vid="CAP-SPLIT-BYTES", where="read_captures")
    out: List[Part] = []
    for p in paths:
        p = os.fspath(p) if isinstance(p, os.PathLike) else p
        n = 1
        if split_bytes is not None and isinstance(p, str):
            try:
                size = os.path.getsize(p)
                with open(p, "rb") as fh:
                    magic = fh.read(4)
            except OSError:  # not visible here: read whole where the task runs
                size, magic = 0, b""
            if (magic in _PCAP_MAGICS or magic == _PCAPNG_MAGIC) and size > split_bytes:
                n = math.ceil(size / split_bytes)
        out.extend(Part(p, k, n, overlap) for k in range(n))
    return out


@dataclass
class _Slice:
    """Where a slice's bytes lie in its file, in packets (file-relative, 0-based)."""

    first: int  #: the first packet read (own packets minus the leading overlap)
    own: Tuple[int, int]  #: the packets this slice owns, [lo, hi)
    last: bool  #: the file's last slice (rows without a packet belong to it)


def _slice_bytes(path: str, k: int, n: int, overlap: int,
                 from_start: bool = False) -> Tuple[bytes, _Slice]:
    """The bytes of slice ``k`` of ``n`` (file header + its packets with the overlaps): its own
    packets are those starting in its ``1/n`` of the file's bytes; ``from_start``: every packet
    before them too (the reassembler's state at the cut is then the whole read's). Walks the
    16-byte record headers from the start (memory-mapped)."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if bytes(mm[:4]) == _PCAPNG_MAGIC:
            return _pcapng_slice(mm, k, n, overlap, from_start)
        size = len(mm)
        endian = _PCAP_MAGICS[bytes(mm[:4])]
        caplen = struct.Struct(endian + "I")
        lo_b = 24 + (size - 24) * k // n
        hi_b = 24 + (size - 24) * (k + 1) // n
        before: deque = deque(maxlen=overlap + 1)  # offsets of the last packets before own lo
        pos, i = 24, 0
        own_lo = own_hi = None
        lo_pos = hi_pos = end_pos = size
        while pos + 16 <= size:
            if own_lo is None and pos >= lo_b:
                own_lo, lo_pos = i, pos
            if own_hi is None and pos >= hi_b:
                own_hi, hi_pos = i, pos
            if own_hi is not None and i >= own_hi + overlap:
                end_pos = pos
                break
            if own_lo is None:
                before.append(pos)
            pos += 16 + caplen.unpack_from(mm, pos + 8)[0]
            i += 1
        else:
            end_pos = min(pos, size)
        if own_lo is None:
            own_lo, lo_pos = i, end_pos
        if own_hi is None:
            own_hi, hi_pos = i, end_pos
        start = before[0] if len(before) and overlap else lo_pos
        skipped = len(before) if overlap else 0
        if from_start:
            start, skipped = 24, own_lo
        data = bytes(mm[:24]) + bytes(mm[start:end_pos])
    return data, _Slice(own_lo - skipped, (own_lo, own_hi), k == n - 1)


def _pcapng_slice(mm, k: int, n: int, overlap: int,
                  from_start: bool) -> Tuple[bytes, _Slice]:
    """:func:`_slice_bytes` of a pcapng file: the packets are its packet blocks (EPB, SPB, PB),
    cut at block boundaries (:func:`~.pcapfile.pcapng_blocks`); every other block before the
    slice's first byte (Section Headers, Interface Descriptions, Decryption Secrets, name
    resolution, statistics) is carried in front of it, in file order — the interfaces its
    packets name, and the secrets the whole read knew there (a DSB's keys apply from where it
    is). Blocks after a truncated or corrupt one: the last slice reads them (the reader's
    issue)."""
    from .pcapfile import BT_EPB, BT_PB, BT_SPB, pcapng_blocks

    size = len(mm)
    blocks = list(pcapng_blocks(mm))
    packet_types = (BT_EPB, BT_SPB, BT_PB)
    first = blocks[0][2] if blocks else size  # the first SHB: the slices' bytes start after it
    lo_b = first + (size - first) * k // n
    hi_b = first + (size - first) * (k + 1) // n
    pk = [pos for pos, bt, _l in blocks if bt in packet_types]
    own_lo = next((i for i, p in enumerate(pk) if p >= lo_b), len(pk))
    own_hi = next((i for i, p in enumerate(pk) if p >= hi_b), len(pk))
    lead = own_lo if from_start else min(overlap, own_lo)
    start = pk[own_lo - lead] if own_lo - lead < len(pk) else size
    if from_start:
        start = 0
    end_i = own_hi + overlap
    end_pos = pk[end_i] if end_i < len(pk) else size
    if k == n - 1:
        end_pos = size  # the file's tail (a truncated block: the reader's issue) is the last's
    carried = b"".join(bytes(mm[pos:pos + ln]) for pos, bt, ln in blocks
                       if pos < start and bt not in packet_types)
    data = carried + bytes(mm[start:end_pos])
    return data, _Slice(own_lo - lead, (own_lo, own_hi), k == n - 1)


def _read(part: Part, keys: Optional[str], read_kw: Dict[str, Any], from_start: bool = False):
    """One part → ``(Capture of the rows it owns, {"seen": records per TCP direction, "resync":
    re-synchronisations in its own packets})`` (a task: no progress bar)."""
    from .model import read_capture

    if part.n == 1:
        cap = read_capture(part.path, keylog=keys, progress=False, **read_kw)
        return cap, {"seen": {}, "resync": 0, "k": 0, "absolute": True}
    data, sl = _slice_bytes(part.path, part.k, part.n, part.overlap, from_start)
    cap = read_capture(data, keylog=keys, progress=False, **read_kw)
    own, info = _own(cap, sl)
    # offsets counted from the file's start (its flows' SYNs): read from the first packet
    return own, dict(info, k=part.k, absolute=part.k == 0 or from_start)


def _hold_segments(read_kw: Dict[str, Any]) -> int:
    """How many segments the reassembler holds a mid-stream direction (its default or the
    ``reasm_kw`` given to the read)."""
    import inspect

    from .reassembly import TcpReassembler

    default = inspect.signature(TcpReassembler).parameters["hold_segments"].default
    return int((read_kw.get("reasm_kw") or {}).get("hold_segments", default))


def _unverified(facts: Sequence[Dict[str, Any]], parts: Sequence[Part], hold: int) -> List[int]:
    """The slices whose join with the slice before does not verify: in the packets both read
    past the cut (the earlier slice's trailing overlap, read with the state of the whole) the
    later one must have read the same records at the same packets, its offsets shifted by one
    constant per TCP direction, and it must not have re-synchronised in its own packets; a
    direction it carries on past the overlap must have had ``hold`` record packets by then (the
    reassembler's hold of a mid-stream direction is over)."""
    bad: List[int] = []
    po = 0
    prev: Dict[tuple, Dict[int, int]] = {}
    for i, (fa, part) in enumerate(zip(facts, parts)):
        seen = {dk: {p + po: off for p, off in m.items()} for dk, m in fa["seen"].items()}
        if part.k > 0:
            lo, hi = po, po + part.overlap
            ok = fa["resync"] == 0
            for dk in set(seen) | set(prev):
                a = {p: o for p, o in prev.get(dk, {}).items() if lo <= p < hi}
                b = {p: o for p, o in seen.get(dk, {}).items() if lo <= p < hi}
                if a.keys() != b.keys() or len({a[p] - b[p] for p in a}) > 1:
                    ok = False
                # a direction the earlier slice knew, with records in this slice's own packets,
                # must show in the overlap that this slice joined it (else: joined later, blind)
                if (not a and dk in prev and dk in seen
                        and any(p >= lo for p in seen[dk])):
                    ok = False
                # a mid-stream direction's records name other packets while the reassembler
                # holds it (until ``hold_segments`` segments): the comparison must cover that
                mine = seen.get(dk, {})
                if (dk in prev and any(p >= hi for p in mine)
                        and len([p for p in mine if p < hi]) < hold):
                    ok = False
            if not ok:
                bad.append(i)
        prev = seen
        po += fa["packets"]
    return bad


def _verified(read, part: Part, bad: List[int], i: int, keys: Optional[str],
              read_kw: Dict[str, Any]):
    """Part ``i``'s read, again from the file's start when its join did not verify."""
    return _read(part, keys, read_kw, from_start=True) if i in bad else read


def _plain(v) -> Any:
    return None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v


def _own(cap, sl: _Slice):
    """The rows of a slice's capture whose packet it owns, packets counted from its first own
    packet; plus, per TCP direction, ``{packet: offset}`` of every record it read (the layout
    joins the offsets of neighbouring slices through them)."""
    from .records import PipelineStats

    shift = sl.own[0] - sl.first  # slice packet -> own packet
    n_own = sl.own[1] - sl.own[0]
    f = cap.frames
    seen: Dict[tuple, Dict[int, int]] = {}
    cols = [f[c].tolist() for c in ("src", "sport", "dst", "dport", "transport", "offset",
                                    "packet")]
    for s, sp, d, dp, tr, off, pk in zip(*cols):
        if tr == "tcp" and _plain(off) is not None and _plain(pk) is not None:
            seen.setdefault(_dir_key(s, sp, d, dp, tr), {})[int(pk) - shift] = int(off)
    pk = f["packet"].to_numpy(dtype="float64", na_value=np.nan) - shift
    keep = ((pk >= 0) & (pk < n_own)).nonzero()[0]
    new_of = {int(j): r for r, j in enumerate(keep.tolist())}
    frames = f.iloc[keep].reset_index(drop=True)
    frames["packet"] = frames["packet"] - shift
    e = cap.errors
    epk = e["packet"].to_numpy(dtype="float64", na_value=np.nan) - shift
    efr = e["frame"].to_numpy(dtype="float64", na_value=np.nan)
    ekeep = [r for r in range(len(e))
             if ((0 <= epk[r] < n_own) if epk[r] == epk[r] else sl.last)
             and (efr[r] != efr[r] or int(efr[r]) in new_of)]
    errors = e.iloc[ekeep].reset_index(drop=True)
    if not len(errors):  # the empty table's own dtypes, as a read without errors has them
        from .readpath import errors_table

        errors = errors_table([], cap.stats.first_time if cap.stats is not None else None)
    else:
        errors["packet"] = errors["packet"] - shift
        errors["frame"] = pd.array([None if _plain(v) is None else new_of[int(v)]
                                    for v in errors["frame"].tolist()], dtype=errors["frame"].dtype)
    kl = keep.tolist()
    stats = replace(cap.stats or PipelineStats(), packets=n_own)
    if sl.own[0] != 0:  # the first packet time of this slice's own packets
        t = frames["time"]
        stats.first_time = int(t.min().value) if len(t) and t.notna().any() else math.nan
    resync = int(errors["vid"].astype(str).str.startswith("REC-RESYNC").sum()) if len(errors) else 0
    own = replace(cap, frames=frames, errors=errors,
                  plaintexts=[cap.plaintexts[j] for j in kl],
                  payloads=[cap.payloads[j] for j in kl] if cap.payloads else [],
                  records=[cap.records[j] for j in kl] if cap.records else [],
                  media={new_of[j]: m for j, m in cap.media.items() if j in new_of},
                  stats=stats, _cache={})
    return own, {"seen": seen, "resync": resync}


_NO_INFO: Dict[str, Any] = {"seen": {}, "resync": 0, "k": 0, "absolute": True}


def _empty(keys: Optional[str] = None, read_kw: Optional[Dict[str, Any]] = None):
    """The capture of an empty file: every table's columns and dtypes (dask's ``meta``)."""
    from .model import read_capture

    return read_capture(_EMPTY_PCAP, keylog=keys, progress=False, **(read_kw or {}))


# -- 2. layout ---------------------------------------------------------------------------------
def _order(frames: pd.DataFrame) -> np.ndarray:
    """The capture order of a part's frames: by packet, then TCP offset (stable)."""
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


_DIR_COLUMNS = ["transport", "src", "sport", "dst", "dport"]


def _facts_of(read) -> Dict[str, Any]:
    """What the layout needs of one part (small: counts, flows, per-direction stream ends and
    the records of the overlaps)."""
    cap, info = read
    f, e = cap.frames, cap.errors
    flows: Dict[int, tuple] = {}
    for df in (f, e):
        if len(df):
            u = df[["flow_id", *_DIR_COLUMNS]].dropna(subset=["flow_id", "src"])
            for fid, tr, s, sp, d, dp in u.drop_duplicates("flow_id").itertuples(index=False):
                flows.setdefault(int(fid), _flow_key(s, sp, d, dp, tr))
    ends: Dict[tuple, int] = {}
    if len(f) and cap.records:
        t = f[_DIR_COLUMNS].copy()
        t["end"] = (f["offset"].to_numpy(dtype="float64", na_value=np.nan) + 4
                    + np.fromiter(map(len, cap.records), dtype=np.float64, count=len(f)))
        t = t[(t["transport"] == "tcp").to_numpy(dtype=bool, na_value=False)].dropna()
        for key, end in t.groupby(_DIR_COLUMNS, sort=False)["end"].max().items():
            ends[_dir_key(key[1], key[2], key[3], key[4], key[0])] = int(end)
    return {"frames": len(f), "errors": len(e),
            "packets": cap.stats.packets if cap.stats is not None else 0, "t0": cap.t0,
            "flows": flows, "ends": ends, "seen": info["seen"], "resync": info["resync"],
            "k": info["k"], "absolute": info["absolute"]}


@dataclass
class Layout:
    """The global numbering of many parts (made by one small task from each part's facts)."""

    frame_offsets: List[int]
    error_offsets: List[int]
    packet_offsets: List[int]
    t0: float  #: the first part's first packet (ns), where every ``rel_time`` starts
    #: per part: local flow id -> global flow id
    flow_ids: List[Dict[int, int]] = field(default_factory=list)
    #: per part: TCP direction -> what to add to its offsets (the bytes before them)
    offset_bases: List[Dict[tuple, int]] = field(default_factory=list)

    @classmethod
    def single(cls) -> "Layout":
        return cls([0], [0], [0], float("nan"), [{}], [{}])


def _layout(facts: Sequence[Dict[str, Any]]) -> Layout:
    cum: Dict[str, List[int]] = {k: [0] for k in ("frames", "errors", "packets")}
    for fa in facts:
        for name, v in cum.items():
            v.append(v[-1] + fa[name])
    t0 = next((fa["t0"] for fa in facts if fa["t0"] == fa["t0"]), float("nan"))
    seen_flows: Dict[tuple, int] = {}
    ends: Dict[tuple, int] = {}  # direction -> its end in the whole (offset + record)
    bases: List[Dict[tuple, int]] = []
    #: direction -> {global packet: whole offset} of the previous part's records
    prev: Dict[tuple, Dict[int, int]] = {}
    file_base: Dict[tuple, int] = {}
    flow_ids: List[Dict[int, int]] = []
    for i, fa in enumerate(facts):
        flow_ids.append({fid: seen_flows.setdefault(key, len(seen_flows))
                         for fid, key in sorted(fa["flows"].items())})
        po = cum["packets"][i]
        base: Dict[tuple, int] = {}
        if fa["k"] == 0:
            file_base = base  # the bases of the file's first part, for those read from its start
        elif fa["absolute"]:
            base = dict(file_base)
        for dk in (set(fa["ends"]) | set(fa["seen"])) if not (fa["k"] and fa["absolute"]) else ():
            mine = fa["seen"].get(dk, {})
            common = [p for p in sorted(mine) if p >= 0 and p + po in prev.get(dk, {})]
            if common:  # a record both parts read: the same bytes, two offsets
                base[dk] = prev[dk][common[0] + po] - mine[common[0]]
            elif dk in ends:  # no overlap: the direction goes on where it stopped
                base[dk] = ends[dk]
        bases.append(base)
        prev = {dk: {p + po: off + base.get(dk, 0) for p, off in m.items()}
                for dk, m in fa["seen"].items()}
        for dk, end in fa["ends"].items():
            ends[dk] = end + base.get(dk, 0)
    return Layout(cum["frames"][:-1], cum["errors"][:-1], cum["packets"][:-1], t0, flow_ids,
                  bases)


# -- 3. frames and errors ----------------------------------------------------------------------
def _ranks(cap) -> np.ndarray:
    """local frame row -> its rank in the part's capture order."""
    order = _order(cap.frames)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank


def _renumber(df: pd.DataFrame, lay: Layout, i: int, rank: np.ndarray) -> pd.DataFrame:
    """Global ``frame``, ``packet``, ``flow_id``, ``offset``, ``rel_time`` of part ``i``'s rows."""
    out = df.copy()
    if "frame" in out.columns and len(out):
        out["frame"] = pd.array([None if _plain(v) is None else
                                 int(rank[int(v)]) + lay.frame_offsets[i]
                                 for v in out["frame"].tolist()], dtype=out["frame"].dtype)
    if "packet" in out.columns and len(out):
        out["packet"] = out["packet"] + lay.packet_offsets[i]
    if "flow_id" in out.columns and len(out) and lay.flow_ids[i]:
        m = pd.Series(list(lay.flow_ids[i].values()), index=list(lay.flow_ids[i]))
        col = out["flow_id"]
        out["flow_id"] = col.map(m).fillna(col).astype(col.dtype)
    if "offset" in out.columns and len(out) and lay.offset_bases[i]:
        bases = pd.DataFrame([(tr, s, sp, d, dp, b) for (tr, s, sp, d, dp), b
                              in lay.offset_bases[i].items()], columns=[*_DIR_COLUMNS, "_base"])
        keys = out[_DIR_COLUMNS].astype(object).reset_index(drop=True)
        base = keys.merge(bases.astype(object), how="left", on=_DIR_COLUMNS)["_base"]
        add = base.to_numpy(dtype="float64", na_value=0.0)
        add = np.nan_to_num(add).astype(np.int64)
        out["offset"] = out["offset"] + pd.array(add, dtype=out["offset"].dtype)
    if "rel_time" in out.columns:
        out = with_rel_time(out.drop(columns="rel_time"), lay.t0)
    return out


def _with_file(df: pd.DataFrame, files) -> pd.DataFrame:
    df.insert(0, "file", pd.array(files if isinstance(files, list) else [files] * len(df),
                                  dtype=object))
    return df


def _table(read, lay: Layout, i: int, path: str, table: str) -> pd.DataFrame:
    """Part ``i``'s rows of ``frames`` or ``errors``, numbered as in the whole (a partition)."""
    cap = read[0]
    rank = _ranks(cap)
    if table == "frames":
        df = _renumber(cap.frames.iloc[_order(cap.frames)], lay, i, rank)
        df.index = pd.RangeIndex(lay.frame_offsets[i], lay.frame_offsets[i] + len(df))
    else:
        df = _renumber(cap.errors, lay, i, rank)
        df.index = pd.RangeIndex(lay.error_offsets[i], lay.error_offsets[i] + len(df))
    return _with_file(df, path)


# -- 4. derived tables: local facts, shuffled by group -----------------------------------------
#: the columns the facts add to a frames row (``_group``: the shuffle key, a copy of
#: ``group_id`` — pandas' ``groupby.apply`` hides the key column from the function)
_FACT_COLUMNS = ("_frame", "_file", "_payload", "_plaintext", "_t0", "_group")


def _binary(values: List[Optional[bytes]]):
    import pyarrow as pa

    return pd.array(pa.array(values, type=pa.binary()), dtype=pd.ArrowDtype(pa.binary()))


def _blobs(col: pd.Series) -> List[Optional[bytes]]:
    """An Arrow binary column as bytes, ``None`` where missing."""
    return [None if _plain(b) is None else bytes(b) for b in col.tolist()]


def _local_facts(read, lay: Layout, i: int, path: str) -> pd.DataFrame:
    """Part ``i``'s frames in capture order, globally numbered (``_frame``), with the bytes the
    tables need (payload, plaintext) as Arrow binary columns."""
    cap = read[0]
    order = _order(cap.frames)
    df = _renumber(cap.frames.iloc[order], lay, i, _ranks(cap)).reset_index(drop=True)
    df["_frame"] = np.arange(len(df), dtype=np.int64) + lay.frame_offsets[i]
    df["_file"] = pd.array([path] * len(df), dtype=object)
    pl, pt = cap.payloads, cap.plaintexts
    ol = order.tolist()
    df["_payload"] = _binary([pl[j] if j < len(pl) else None for j in ol])
    df["_plaintext"] = _binary([pt[j] if j < len(pt) else None for j in ol])
    # where rel_time starts: integer nanoseconds (a float64 would round them)
    df["_t0"] = pd.array([None if lay.t0 != lay.t0 else int(lay.t0)] * len(df), dtype="Int64")
    df["_group"] = df["group_id"]
    return df


def _group_capture(facts: pd.DataFrame, keys: Optional[str], read_kw: Dict[str, Any]):
    """One group's frames from every part (in capture order) as a :class:`~.model.Capture`,
    its media opened again in that order (receivers' replay windows)."""
    from gbp_lab.core.keylog import KeyLog
    from gbp_lab.core.sframe import DEFAULT_LABEL

    from .media import open_media
    from .model import Capture
    from .records import PipelineStats

    frames = facts.drop(columns=list(_FACT_COLUMNS), errors="ignore").reset_index(drop=True)
    plaintexts, payloads = _blobs(facts["_plaintext"]), _blobs(facts["_payload"])
    keylog = KeyLog.parse(keys) if keys else None
    t0 = _plain(facts["_t0"].iloc[0]) if len(facts) else None
    t0 = math.nan if t0 is None else int(t0)
    media, _errors = open_media(frames, plaintexts,
                                keylog if read_kw.get("decrypt", True) else None,
                                read_kw.get("sframe_label", DEFAULT_LABEL))
    return Capture(frames, _empty(keys).errors, plaintexts, keylog,
                   stats=PipelineStats(first_time=t0), payloads=payloads, media=media)


def _numbered_findings(facts: pd.DataFrame, scope: str, keys: Optional[str],
                       read_kw: Dict[str, Any]) -> pd.DataFrame:
    """The findings of one scope (:data:`~gbp_lab.analysis.findings.SCOPES`) on the frames of
    one shuffle partition (every frame of each of its keys, from every part), rendered with the
    frames' global numbers (``frames`` and ``detail``)."""
    from gbp_lab.analysis.findings import find, find_in

    facts = facts.sort_values("_frame", kind="stable")
    glob = facts["_frame"].tolist()
    if scope == "group":  # media, control and trees: the group's Capture
        return find(_group_capture(facts, keys, read_kw), ("group",), glob)
    frames = facts.drop(columns=list(_FACT_COLUMNS), errors="ignore").reset_index(drop=True)
    t0 = _plain(facts["_t0"].iloc[0]) if len(facts) else None
    fi = find_in(frames, _empty().errors, _blobs(facts["_plaintext"]), _blobs(facts["_payload"]),
                 scopes=(scope,), numbers=glob)
    return with_rel_time(fi, math.nan if t0 is None else int(t0))


def _scope_apply(df: pd.DataFrame, scope: str, keys, read_kw) -> pd.DataFrame:
    """``groupby.apply``'s function for the findings of a scope (module-level: picklable)."""
    return _numbered_findings(df, scope, keys, read_kw).reset_index(drop=True)


#: dask's shuffle for the findings: task-based (distributed's p2p shuffle costs about a second
#: of set-up per shuffle, more than the findings of a few hundred thousand frames)
_SHUFFLE = "tasks"
#: the shuffle key of each frame scope of the findings (the group scope: ``_group``)
_SCOPE_KEYS = {"nonce": ["group_id", "epoch", "stream_type", "sequence_no"],
               "direction": ["flow_id", "src", "sport", "group_id"]}


def _group_scope_facts(df: pd.DataFrame) -> pd.DataFrame:
    """A part's facts the ``group`` scope needs: control and audio frames (trees, commits,
    media), frames sealed with another epoch's key (stale), and one frame per (group, epoch,
    sender, key epoch) — the newest key each sender used, the group's epochs; text and signal
    frames otherwise never change a group finding, and are most of the traffic."""
    from gbp_lab.core.gbp.registry import StreamType

    st = df["stream_type"].to_numpy(dtype="float64", na_value=-1.0)
    keep = ~np.isin(st, [int(StreamType.TEXT), int(StreamType.SIGNAL)])
    if "key_epoch" in df.columns:
        ke = df["key_epoch"].to_numpy(dtype="float64", na_value=-1.0)
        ep = df["epoch"].to_numpy(dtype="float64", na_value=-1.0)
        keep |= (ke >= 0) & (ke != ep)
        keep |= ~df.duplicated(subset=["group_id", "epoch", "sender", "key_epoch"]).to_numpy()
    return df[keep]


def _with_bucket(df: pd.DataFrame, cols: List[str], buckets: int,
                 plaintexts: bool) -> pd.DataFrame:
    """``df`` with a ``_bucket`` column: a hash of its ``cols`` (the same in every process:
    pandas' fixed-key hash) modulo ``buckets``; without the plaintexts unless ``plaintexts``
    (only the ``nonce`` scope reads them: less to shuffle)."""
    df = df.copy()
    if not plaintexts:
        df["_plaintext"] = _binary([None] * len(df))
    if len(df):
        h = pd.util.hash_pandas_object(df[cols].astype(object), index=False).to_numpy()
        df["_bucket"] = (h % np.uint64(buckets)).astype(np.int64)
    else:
        df["_bucket"] = pd.Series([], dtype=np.int64)
    return df


def _group_table(facts: pd.DataFrame, table: str, keys: Optional[str],
                 read_kw: Dict[str, Any]) -> pd.DataFrame:
    """One group's rows of a derived table (a ``groupby.apply`` task), frames numbered
    globally; ``file`` of each row's frame (not for ``epochs``: they span files)."""
    facts = facts.sort_values("_frame", kind="stable")
    cap = _group_capture(facts, keys, read_kw)
    glob = facts["_frame"].tolist()
    df = getattr(cap, table).copy()
    local = [None if _plain(v) is None else int(v) for v in df["frame"].tolist()]
    df["frame"] = pd.array([None if v is None else glob[v] for v in local],
                           dtype=df["frame"].dtype)
    if table != "epochs":
        files = facts["_file"].tolist()
        df = _with_file(df, [None if v is None else files[v] for v in local])
    return df.reset_index(drop=True)


def _apply(df: pd.DataFrame, table: str, keys, read_kw) -> pd.DataFrame:
    """``groupby.apply``'s function (module-level: picklable)."""
    return _group_table(df, table, keys, read_kw)


def _error_findings(read, lay: Layout, i: int) -> pd.DataFrame:
    """The findings of part ``i``'s ``errors`` table (defects, malformed records)."""
    from gbp_lab.analysis.findings import find_in

    cap = read[0]
    errors = _renumber(cap.errors, lay, i, _ranks(cap))
    fi = find_in(_empty().frames, errors.reset_index(drop=True), [], [], scopes=("errors",))
    fi["errors"] = [[e + lay.error_offsets[i] for e in er] for er in fi["errors"].tolist()]
    return with_rel_time(fi, lay.t0)


def _group_meta(table: str, keys: Optional[str], read_kw) -> pd.DataFrame:
    df = getattr(_empty(keys, read_kw), table).iloc[:0].copy()
    if table not in ("epochs", "findings"):
        df = _with_file(df, [])
    return df


# -- the graph ---------------------------------------------------------------------------------
def read_captures(paths: Sequence, keylog=None, table: str = "frames", *,
                  split_bytes: Optional[int] = SPLIT_BYTES, overlap: int = OVERLAP, **read_kw):
    """One table of many captures as a lazy ``dask.dataframe.DataFrame`` (see the module
    docstring): ``frames`` and ``errors`` have one partition per part (a file, or a slice of a
    pcap or pcapng bigger than ``split_bytes``: ``None`` never slices), the derived tables
    (``messages``, ``audio``, ``signals``, ``control``, ``epochs``, ``findings``) are built per
    group after a shuffle (their ``findings`` with each part's ``errors`` findings). A ``file``
    column (not in ``epochs``/``findings``) says where a row came from; ``frame``, ``packet``,
    ``flow_id``, ``offset`` and the index of ``frames``/``errors`` are those of the files
    concatenated. ``keylog`` (a KeyLog, path or text) applies to every file, sent to the workers
    as text; each file's own secrets blocks apply to that file. Other keyword arguments go to
    :func:`~.model.read_capture` (``ports``, ``heuristic``, ``decrypt``, ``sframe_label`` …).
    Works with any dask scheduler, a ``dask.distributed`` ``Client`` included (``pip install
    'gbp-lab[cluster]'``)."""
    dask = require("dask")
    # object columns keep their Python values (bytes, lists, None): dask's string conversion is
    # decided when the graph is built
    with dask.config.set({"dataframe.convert-string": False}):
        return _read_captures(paths, keylog, table, split_bytes, overlap, read_kw)


def _read_captures(paths: Sequence, keylog, table: str, split_bytes, overlap,
                   read_kw: Dict[str, Any]):
    dd = require("dask.dataframe")
    delayed = require("dask").delayed
    if table not in TABLES:
        raise UsageError(f"unknown table {table!r}: one of {', '.join(TABLES)}",
                         vid="CAP-TABLE", where="read_captures")
    parts = plan_parts(paths, split_bytes, overlap)
    if not parts:
        raise UsageError("read_captures needs at least one path", vid="CAP-NO-PATHS")
    keys = keylog_text(keylog)
    reads = [delayed(_read, pure=True)(p, keys, read_kw) for p in parts]
    if any(p.n > 1 for p in parts):  # slices: verify each join, re-read what does not verify
        bad = delayed(_unverified, pure=True)([delayed(_facts_of, pure=True)(r) for r in reads],
                                              parts, _hold_segments(read_kw))
        reads = [delayed(_verified, pure=True)(r, p, bad, i, keys, read_kw)
                 for i, (r, p) in enumerate(zip(reads, parts))]
    layout = delayed(_layout, pure=True)([delayed(_facts_of, pure=True)(r) for r in reads])
    if table in ("frames", "errors"):
        meta = _table((_empty(keys, read_kw), _NO_INFO), Layout.single(), 0, "", table)
        return dd.from_delayed([delayed(_table, pure=True)(r, layout, k, p.path, table)
                                for k, (r, p) in enumerate(zip(reads, parts))],
                               meta=meta, verify_meta=False)
    fmeta = _local_facts((_empty(keys, read_kw), _NO_INFO), Layout.single(), 0, "")
    facts = dd.from_delayed([delayed(_local_facts, pure=True)(r, layout, k, p.path)
                             for k, (r, p) in enumerate(zip(reads, parts))],
                            meta=fmeta, verify_meta=False)
    meta = _group_meta(table, keys, read_kw)
    if table == "findings":
        return _findings_graph(facts, reads, layout, keys, read_kw, meta)
    # frames without a group (raw MLS blobs) are dropped by the groupby: no table uses them
    out = facts.groupby("_group").apply(_apply, table, keys, read_kw, meta=meta)
    return out.reset_index(drop=True)


def _findings_graph(facts, reads, layout, keys: Optional[str], read_kw: Dict[str, Any], meta):
    """The findings: one shuffle per scope of :func:`~gbp_lab.analysis.findings.find_in` —
    ``nonce`` and ``direction`` by a hash bucket of their key (many buckets: one group's frames
    spread over every worker), ``group`` by group — and each part's ``errors`` findings."""
    dd = require("dask.dataframe")
    delayed = require("dask").delayed
    buckets = max(8, 4 * facts.npartitions)
    outs = []
    for scope, cols in _SCOPE_KEYS.items():
        bf = facts.map_partitions(_with_bucket, cols, buckets, scope == "nonce",
                                  meta=_with_bucket(facts._meta, cols, buckets, True))
        outs.append(bf.groupby("_bucket").apply(_scope_apply, scope, keys, read_kw, meta=meta,
                                                shuffle_method=_SHUFFLE)
                    .reset_index(drop=True))
    # the group scope sees only the frames its kinds use (_group_scope_facts); frames without a
    # group (raw MLS blobs) are dropped by this groupby: no group finding uses them
    gf = facts.map_partitions(_group_scope_facts, meta=facts._meta)
    outs.append(gf.groupby("_group").apply(_scope_apply, "group", keys, read_kw, meta=meta,
                                           shuffle_method=_SHUFFLE)
                .reset_index(drop=True))
    outs.append(dd.from_delayed([delayed(_error_findings, pure=True)(r, layout, k)
                                 for k, r in enumerate(reads)], meta=meta, verify_meta=False))
    return dd.concat(outs)


def findings_across(paths: Sequence, keylog=None, *, scheduler=None, **read_kw) -> pd.DataFrame:
    """The findings of many captures together, computed on dask (``read_captures(paths, keylog,
    table="findings")``) and sorted by time: what :func:`~.model.read_capture` finds on the files
    concatenated, ``frames`` and ``errors`` numbered as in :func:`read_captures`' tables.
    ``scheduler``: dask's (``None``: the default one — a ``dask.distributed`` ``Client`` once
    made — else e.g. ``"threads"``, ``"processes"`` or a ``Client``)."""
    from gbp_lab.analysis.findings import sort_findings

    df = read_captures(paths, keylog, table="findings", **read_kw).compute(scheduler=scheduler)
    return sort_findings(df)


def write_dataset(paths: Sequence, out_dir, keylog=None, tables: Sequence[str] = TABLES,
                  **read_kw) -> Dict[str, str]:
    """Write the tables of many captures as a Parquet dataset: ``out_dir/<table>/``, partitioned
    by ``group_id`` and ``epoch`` (hive layout ``group_id=…/epoch=…/``; rows without a group or
    an epoch, such as raw MLS blobs, under :data:`NO_KEY` ``none``) where the table has them;
    cells made Parquet-safe as :meth:`.model.Capture.to_parquet` does (bytes as hex text,
    lists/dicts as JSON text). Each partition is written by its own task (on the workers when a
    ``dask.distributed`` client is the default scheduler: ``out_dir`` must then be shared).
    Readable by pandas, dask, DuckDB, Spark. Returns ``{table: directory}``."""
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
    directory name)."""
    from .model import parquet_safe

    out = parquet_safe(df)
    for c in ("group_id", "epoch"):
        if c in out.columns:
            out[c] = pd.array([NO_KEY if _plain(v) is None else str(v) for v in out[c].tolist()],
                              dtype=object)
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
