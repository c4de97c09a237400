"""Many captures on a dask.distributed cluster (gbp_lab.capture.many): every table and the
findings of a capture split into several files equal read_capture's on the whole file.

ONE LocalCluster for this module (2 worker processes, 1 thread each: the suite runs on 2 cores);
captures are small (the demo, 211 packets)."""
from __future__ import annotations

import importlib.util
import os
import pathlib
import struct
import sys

import pandas as pd
import pytest

from gbp_lab.analysis.findings import sort_findings
from gbp_lab.capture.many import (MissingExtraError, findings_across, keylog_text, plan_parts,
                                  read_captures, require, write_dataset)
from gbp_lab.capture.model import read_capture
from gbp_lab.core.errors import GbpLabError, UsageError
from gbp_lab.core.keylog import KeyLog
from gbp_lab.sim.demo import demo_paths

ROOT = pathlib.Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "tests" / "captures"
#: packet numbers (0-based) where the demo is cut: 100 falls between the two halves of the
#: nonce reuse of frames 33-35 (packet 75) and 72-74 (packet 153)
CUTS = (30, 100, 160)


def split_pcap(path, cuts, out_dir) -> list:
    """A classic pcap cut into files at packet boundaries (each file: the header + its packets)."""
    data = pathlib.Path(path).read_bytes()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    offs, pos = [], 24
    while pos < len(data):
        offs.append(pos)
        pos += 16 + struct.unpack(endian + "I", data[pos + 8:pos + 12])[0]
    offs.append(len(data))
    bounds = [0, *cuts, len(offs) - 1]
    out = []
    for k in range(len(bounds) - 1):
        p = pathlib.Path(out_dir) / f"part{k}.pcap"
        p.write_bytes(data[:24] + data[offs[bounds[k]]:offs[bounds[k + 1]]])
        out.append(p)
    return out


@pytest.fixture(scope="module")
def client():
    distributed = require("distributed")
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=None, scheduler_port=0)
    c = distributed.Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def demo_split(tmp_path_factory):
    pcap, keys = demo_paths()
    keylog = pathlib.Path(keys).read_text()
    whole = read_capture(pcap, keylog=keylog, progress=False)
    files = split_pcap(pcap, CUTS, tmp_path_factory.mktemp("split"))
    return whole, files, keylog


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got.drop(columns=["file"], errors="ignore"), want,
                                  check_index_type=False)


def test_split_is_at_packet_boundaries_and_inside_a_nonce_reuse(demo_split):
    whole, files, keylog = demo_split
    parts = [read_capture(f, keylog=keylog, progress=False) for f in files]
    assert [p.stats.packets for p in parts] == [30, 70, 60, whole.stats.packets - 160]
    assert sum(len(p.frames) for p in parts) == len(whole.frames) == 95
    fi = whole.findings
    reuse = fi[fi["kind"] == "nonce_reuse"]
    straddle = [fr for fr in reuse["frames"]
                if min(whole.frames.loc[fr, "packet"]) < 100 <= max(whole.frames.loc[fr, "packet"])]
    assert straddle, "a nonce-reuse pair must sit on both sides of a cut"
    # no file alone sees that reuse: it needs the frames of two files
    for p in parts:
        pf = p.findings
        assert len(pf[pf["kind"] == "nonce_reuse"]) < len(reuse)


@pytest.mark.parametrize("table", ["frames", "errors", "messages", "audio", "signals", "control"])
def test_every_table_across_files_equals_the_whole_file(client, demo_split, table):
    whole, files, keylog = demo_split
    ddf = read_captures(files, keylog, table=table)
    assert ddf.npartitions == len(files)
    got = ddf.compute(scheduler=client)
    assert set(got["file"]) <= {str(f) for f in files}
    _same(got, getattr(whole, table))


def test_epochs_and_findings_across_files_equal_the_whole_file(client, demo_split):
    whole, files, keylog = demo_split
    ep = read_captures(files, keylog, table="epochs").compute(scheduler=client)
    ep = ep.sort_values(["first_time", "epoch"], kind="stable").reset_index(drop=True)
    _same(ep, whole.epochs)
    fi = findings_across(files, KeyLog.parse(keylog), scheduler=client)
    _same(fi, whole.findings)
    assert (fi["kind"] == "nonce_reuse").sum() == 10


def test_errors_are_numbered_across_files_and_their_findings_point_at_them(client):
    files = [CAPTURES / "defects.pcap", CAPTURES / "secrets.pcapng"]
    caps = [read_capture(f, progress=False) for f in files]
    errs = read_captures(files, table="errors").compute(scheduler=client)
    assert list(errs.index) == list(range(sum(len(c.errors) for c in caps)))
    assert list(errs["vid"]) == [v for c in caps for v in c.errors["vid"]]
    # an AEAD failure's ``frame`` is a global frames row
    n0 = len(caps[0].frames)
    want = [None if pd.isna(x) else int(x) + n0 for x in caps[1].errors["frame"]]
    got = [None if pd.isna(x) else int(x) for x in errs["frame"][len(caps[0].errors):]]
    assert want == got and any(w is not None for w in want)
    fi = findings_across(files, scheduler=client)
    from_errors = fi[fi["errors"].map(len) > 0]
    assert len(from_errors) >= len(caps[0].errors)
    for row in from_errors.itertuples():
        (e,) = row.errors
        assert f"[{errs.loc[e, 'vid']}]" in row.detail


@pytest.fixture(scope="module")
def coalesced(tmp_path_factory):
    """A synthetic capture (benchmarks/capture_bench.py): 4000 text frames in 4 TCP flows,
    records packed into 1448-byte segments and split across them, some segments out of order,
    1000 nonce reuses; 1.4 MB, so 300 kB slices cut records and reorderings in two."""
    spec = importlib.util.spec_from_file_location("_capture_bench",
                                                  ROOT / "benchmarks" / "capture_bench.py")
    cb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cb)
    p = tmp_path_factory.mktemp("coalesced") / "cap.pcap"
    cb.build(str(p), 4000, 4, seed=7)
    keylog = f"MLS_EXPORTER_SECRET {cb.GID.hex()} 1 {cb.SECRET.hex()}\n"
    return p, keylog, read_capture(p, keylog=keylog, progress=False)


@pytest.mark.parametrize("overlap, joins_verify", [(150, True), (10, False)])
def test_a_big_file_in_overlapping_slices_equals_the_whole(client, coalesced, overlap,
                                                           joins_verify):
    from gbp_lab.capture.many import _facts_of, _read, _unverified

    path, keylog, whole = coalesced
    parts = plan_parts([path], split_bytes=300_000, overlap=overlap)
    assert [(p.k, p.n) for p in parts] == [(k, 5) for k in range(5)]
    # the joins: checked against the records both neighbours read; a slice whose join does
    # not verify (overlap too short for the reassembler to catch up) is read from the start
    facts = [_facts_of(_read(p, keylog, {})) for p in parts]
    assert (_unverified(facts, parts, 16) == []) == joins_verify
    _slices_equal_whole(client, path, keylog, whole, overlap)


def _slices_equal_whole(client, path, keylog, whole, overlap):
    """The coalesced capture read in 5 slices of 300 kB: frames, errors and findings (its 1000
    nonce reuses) equal the whole file's; one compute, the three tables share the read tasks."""
    kw = dict(split_bytes=300_000, overlap=overlap)
    tables = [read_captures([path], keylog, t, **kw) for t in ("frames", "errors", "findings")]
    assert tables[0].npartitions == 5
    frames, errors, fi = require("dask").compute(*tables, scheduler=client)
    _same(frames, whole.frames)
    _same(errors, whole.errors)
    _same(sort_findings(fi), whole.findings)
    assert (fi["kind"] == "nonce_reuse").sum() == 1000


def test_a_big_pcapng_in_overlapping_slices_equals_the_whole(client, coalesced, tmp_path):
    """The same capture as pcapng, its key log in a Decryption Secrets Block up front (no key
    log given): every slice carries the SHB, the IDB and the DSB; cut between blocks."""
    from gbp_lab.capture.many import _slice_bytes
    from gbp_lab.capture.pcapfile import BT_DSB, BT_IDB, BT_SHB, pcapng_blocks
    from gbp_lab.capture.pcapwriter import inject_secrets

    path, keylog, _whole = coalesced
    ng = tmp_path / "cap.pcapng"
    inject_secrets(path, ng, keylog)
    whole = read_capture(ng, progress=False)
    assert whole.frames["decrypted"].all() and len(whole.frames) == 4000
    parts = plan_parts([ng], split_bytes=300_000, overlap=150)
    assert [(p.k, p.n) for p in parts] == [(k, 5) for k in range(5)]
    data, sl = _slice_bytes(str(ng), 3, 5, 150)
    types = [bt for _pos, bt, _ln in pcapng_blocks(data)]
    assert types[:3] == [BT_SHB, BT_IDB, BT_DSB] and BT_DSB not in types[3:]
    assert sl.own[0] - sl.first == 150 and sum(1 for t in types if t == 6) > 150
    _slices_equal_whole(client, ng, None, whole, 150)


def test_write_dataset_is_partitioned_by_group_and_epoch(client, demo_split, tmp_path):
    whole, files, keylog = demo_split
    dask = require("dask")
    with dask.config.set(scheduler=client):
        out = write_dataset(files, tmp_path / "ds", keylog, tables=("frames", "messages",
                                                                   "findings"))
    gid = whole.frames["group_id"].dropna().iloc[0]
    assert (pathlib.Path(out["frames"]) / f"group_id={gid}" / "epoch=1").is_dir()
    back = pd.read_parquet(out["frames"])  # pandas reads the hive partitions back
    assert len(back) == len(whole.frames)
    assert sorted(back["sequence_no"].dropna().astype(int)) == sorted(
        whole.frames["sequence_no"].dropna().astype(int))
    per_epoch = back.groupby(back["epoch"].astype(str), observed=True).size()
    want = whole.frames["epoch"].dropna().astype(int).astype(str).value_counts()
    assert per_epoch.reindex(want.index).tolist() == want.tolist()
    dd = require("dask.dataframe")
    msgs = dd.read_parquet(out["messages"]).compute(scheduler=client)
    assert sorted(msgs["text"]) == sorted(whole.messages["text"]) and len(msgs) == 14
    fi = pd.read_parquet(out["findings"])
    assert (fi["kind"] == "nonce_reuse").sum() == 10


def test_keylog_travels_as_text_and_bad_arguments_are_typed(demo_split, tmp_path):
    _whole, _files, keylog = demo_split
    p = tmp_path / "keys.log"
    p.write_text(keylog)
    assert keylog_text(p) == keylog == keylog_text(str(p))
    assert KeyLog.parse(keylog_text(KeyLog.parse(keylog))).lines() == KeyLog.parse(keylog).lines()
    assert keylog_text(None) is None
    with pytest.raises(UsageError) as e:
        read_captures([])
    assert e.value.vid == "CAP-NO-PATHS"
    with pytest.raises(UsageError) as e:
        read_captures(_files, table="nonsense")
    assert e.value.vid == "CAP-TABLE" and "findings" in str(e.value)
    with pytest.raises(UsageError) as e:
        read_captures(_files, split_bytes=0)
    assert e.value.vid == "CAP-SPLIT-BYTES"
    # a pcap or pcapng bigger than split_bytes is sliced; smaller files are whole
    sizes = [os.path.getsize(f) for f in _files]
    assert sizes[1] > 10_000 > max(sizes[0], sizes[2], sizes[3])
    parts = plan_parts([*_files, CAPTURES / "secrets.pcapng"], 10_000)
    assert [(p.k, p.n) for p in parts] == [(0, 1), (0, 2), (1, 2), (0, 1), (0, 1), (0, 1)]
    assert 1000 < os.path.getsize(CAPTURES / "secrets.pcapng") < 3000
    ng = CAPTURES / "secrets.pcapng"
    assert [(p.k, p.n) for p in plan_parts([ng], 1000)] == [(0, 3), (1, 3), (2, 3)]
    whole = read_capture(ng, progress=False)  # its key log only in its secrets blocks
    for table in ("frames", "errors"):
        got = read_captures([ng], table=table, split_bytes=1000, overlap=2).compute(
            scheduler="sync")
        want = getattr(whole, table)
        # a slice whose text column is all missing has it as object, not str: the values count
        _same(got.drop(columns="file").astype(want.dtypes.to_dict()), want)
    assert [p.n for p in plan_parts(_files, None)] == [1, 1, 1, 1]



def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import → ImportError
    with pytest.raises(MissingExtraError) as e:
        require("distributed")
    err = e.value
    assert isinstance(err, GbpLabError) and isinstance(err, ImportError)
    assert err.vid == "CAP-EXTRA-MISSING" and "pip install 'gbp-lab[cluster]'" in str(err)
    monkeypatch.setitem(sys.modules, "dask.dataframe", None)
    with pytest.raises(MissingExtraError):
        read_captures([os.devnull])
