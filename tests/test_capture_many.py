"""Many captures on a dask.distributed cluster (gbp_lab.capture.many): every table and the
findings of a capture split into several files equal read_capture's on the whole file.

ONE LocalCluster for this module (2 worker processes, 1 thread each: the suite runs on 2 cores);
captures are small (the demo, 211 packets)."""
from __future__ import annotations

import os
import pathlib
import struct
import sys

import pandas as pd
import pytest

from gbp_lab.capture.many import (MissingExtraError, findings_across, keylog_text, read_captures,
                                  require, write_dataset)
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
