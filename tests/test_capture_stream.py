"""Streaming big captures (gbp_lab.capture.stream): iter_capture chunks, bounded memory, and
read_captures as a dask DataFrame with one partition per file."""
from __future__ import annotations

import importlib.util
import pathlib
import tracemalloc

import pandas as pd
import pytest

from gbp_lab.capture.model import FRAME_COLUMNS, read_capture
from gbp_lab.capture.stream import iter_capture, read_captures
from gbp_lab.core.errors import UsageError

ROOT = pathlib.Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "tests" / "captures"


def _bench():
    spec = importlib.util.spec_from_file_location("_capture_bench", ROOT / "benchmarks" / "capture_bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Two synthetic captures (text frames sealed under a fixed secret, 20 TCP flows, records
    split across segments, some reordering): 4k and 16k frames (4x; kept small because tracemalloc
    slows reading about tenfold)."""
    cb = _bench()
    d = tmp_path_factory.mktemp("big")
    out = {}
    for n in (4_000, 16_000):
        p = d / f"cap{n}.pcap"
        cb.build(str(p), n, 20, seed=n)
        out[n] = p
    keylog = f"MLS_EXPORTER_SECRET {cb.GID.hex()} 1 {cb.SECRET.hex()}\n"
    return out, keylog


def test_chunks_concatenate_to_read_capture(generated):
    paths, keylog = generated
    p = paths[4_000]
    chunks = list(iter_capture(p, keylog, chunksize=1200, progress=False))
    assert [len(c) for c in chunks] == [1200, 1200, 1200, 400]
    assert all(list(c.columns) == FRAME_COLUMNS for c in chunks)
    whole = pd.concat(chunks)
    assert list(whole.index) == list(range(4_000))
    ref = read_capture(p, keylog=keylog).frames
    pd.testing.assert_frame_equal(whole, ref)
    assert whole["decrypted"].all()


def test_peak_memory_does_not_grow_with_capture_size(generated):
    paths, _ = generated
    peaks = {}
    for n, p in paths.items():
        tracemalloc.start()
        rows = 0
        try:
            for chunk in iter_capture(p, chunksize=800, progress=False, summarize=False):
                rows += len(chunk)
                del chunk
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert rows == n
    # 4x the frames, (about) the same peak: nothing accumulates per frame
    assert peaks[16_000] < 1.25 * peaks[4_000] + 1_000_000, peaks


def test_errors_are_collected_per_chunk_and_progress_bar_runs(capsys):
    errs: list = []
    frames = list(iter_capture(CAPTURES / "defects.pcap", chunksize=4, errors=errs, progress=True))
    assert sum(len(f) for f in frames) == 17
    got = pd.concat(errs)
    want = read_capture(CAPTURES / "defects.pcap").errors
    assert sorted(got["vid"]) == sorted(want["vid"])
    with pytest.raises(UsageError):
        next(iter_capture(CAPTURES / "defects.pcap", chunksize=0))
    # an AEAD failure's ``frame`` is the global row number, whatever the chunking
    errs = []
    list(iter_capture(CAPTURES / "secrets.pcapng", chunksize=2, errors=errs, progress=False))
    whole = read_capture(CAPTURES / "secrets.pcapng").errors
    assert list(pd.concat(errs)["frame"]) == list(whole["frame"]) and whole["frame"].notna().all()


def test_read_captures_one_partition_per_file(generated):
    paths, keylog = generated
    files = [CAPTURES / "defects.pcap", CAPTURES / "secrets.pcapng", CAPTURES / "segmented.pcap"]
    ddf = read_captures(files)
    assert ddf.npartitions == 3
    assert list(ddf.columns) == ["file"] + FRAME_COLUMNS
    df = ddf.compute()
    for f in files:
        part = df[df["file"] == str(f)].drop(columns="file")
        ref = read_capture(f).frames
        assert len(part) == len(ref)
        assert list(part["sequence_no"]) == list(ref["sequence_no"])
    # lazily filtered / aggregated across files
    per_file = ddf.groupby("file")["payload_size"].count().compute()
    assert int(per_file.sum()) == len(df)
    with pytest.raises(UsageError):
        read_captures([])
