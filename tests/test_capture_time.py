"""Readable time (issue 14): every table's ``time`` is ``datetime64[ns, UTC]`` with the pcapng
nanosecond timestamps kept exactly, plus ``rel_time`` (seconds since the first packet, as
Wireshark shows by default); summary / HTML / parquet keep them."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gbp_lab.capture.model import read_capture
from gbp_lab.capture.pcapfile import read_packets, time_ns
from gbp_lab.capture.pcapwriter import PcapngWriter
from gbp_lab.capture.stream import iter_capture

CAPTURES = Path(__file__).parent / "captures"
#: 2026-12-06 07:00:00 UTC and an odd number of nanoseconds: not representable as float seconds
BASE_NS = 1_796_540_400_000_000_000 + 123_456_789


@pytest.fixture(scope="module")
def ns_capture(tmp_path_factory):
    """secrets.pcapng rewritten with nanosecond timestamps (if_tsresol 9), its DSB kept; each
    packet i at BASE_NS + i * 1.000000007 s; returns (path, ns per packet index)."""
    packets, reader = read_packets(CAPTURES / "secrets.pcapng")
    path = tmp_path_factory.mktemp("ns") / "ns.pcapng"
    stamps = [BASE_NS + i * 1_000_000_007 for i in range(len(packets))]
    with PcapngWriter(path) as w:
        for iface in reader.interfaces:
            w.add_interface(iface.linktype, snaplen=iface.snaplen, tsresol=9)
        for s in reader.secrets:
            w.add_secrets(s.data, s.secrets_type)
        for p, ns in zip(packets, stamps):
            w.write_packet(p.data, ticks=ns, ts_units=10**9, interface=p.interface,
                           origlen=p.origlen)
    return path, stamps


def test_time_ns_is_exact_for_decimal_resolutions():
    assert time_ns(BASE_NS, 10**9) == BASE_NS
    assert time_ns(1_700_000_000_123_456, 10**6) == 1_700_000_000_123_456_000
    assert time_ns(3 * 2**20 + 2**19, 2**20) == 3_500_000_000  # binary resolution
    assert time_ns(-1, 10**6) != time_ns(-1, 10**6)  # no timestamp: NaN


def test_frames_and_errors_keep_nanoseconds_and_rel_time(ns_capture):
    path, stamps = ns_capture
    cap = read_capture(path)
    f = cap.frames
    assert len(f) > 5 and f["decrypted"].any()
    assert str(f["time"].dtype) == "datetime64[ns, UTC]"
    got = [t.value for t in f["time"]]
    # exact to the nanosecond: each row's time is one packet's stamp (the packet its record
    # began in: at or before the row's ``packet``, the one that completed it)
    assert set(got) <= set(stamps)
    assert all(g <= stamps[int(p)] for g, p in zip(got, f["packet"]))
    assert sum(g == stamps[int(p)] for g, p in zip(got, f["packet"])) >= len(f) // 2
    assert float(BASE_NS / 1e9) * 10**9 != BASE_NS  # (float seconds could not have kept it)
    assert cap.t0 == stamps[0]
    rel = [(g - stamps[0]) / 1e9 for g in got]
    assert list(f["rel_time"]) == pytest.approx(rel, abs=1e-9)
    assert f.columns[-1] == "rel_time"
    e = cap.errors
    assert len(e) and str(e["time"].dtype) == "datetime64[ns, UTC]"
    assert e["rel_time"].notna().all() and (e["rel_time"] >= 0).all()


def test_every_table_with_time_has_datetime_and_rel_time(ns_capture):
    path, stamps = ns_capture
    cap = read_capture(path)
    for name in cap.TABLES:
        df = getattr(cap, name)
        assert "time" in df.columns, name
        assert str(df["time"].dtype) == "datetime64[ns, UTC]", name
        assert "rel_time" in df.columns and df["rel_time"].dtype == "float64", name
        ok = df["time"].notna()
        want = (df.loc[ok, "time"].astype("int64") - stamps[0]) / 1e9
        assert list(df.loc[ok, "rel_time"]) == pytest.approx(list(want), abs=1e-9), name
    assert len(cap.messages) and len(cap.epochs)
    ep = cap.epochs
    assert str(ep["first_time"].dtype) == "datetime64[ns, UTC]"
    assert (ep["last_time"] >= ep["first_time"]).all()


def test_summary_html_and_dissect_show_relative_time(ns_capture, capsys):
    path, stamps = ns_capture
    cap = read_capture(path)
    text = cap.summary()
    assert "first packet 2026-12-06T07:00:00.123456789+00:00" in text
    last = (int(cap.epochs["last_time"].iloc[-1].value) - stamps[0]) / 1e9
    assert f"{last:.3f}s" in text
    html = cap._repr_html_()
    assert "rel_time" in html and "2026-12-06 07:00" not in html.split("Frames (head)")[1]
    from gbp_lab.cli import main

    assert main(["dissect", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(cap.frames)
    for line, rt in zip(lines, cap.frames["rel_time"]):
        assert f"{rt:11.6f}" in line


def test_iter_capture_chunks_share_the_first_packet(ns_capture):
    path, stamps = ns_capture
    whole = read_capture(path).frames
    chunks = list(iter_capture(path, chunksize=7, progress=False))
    assert len(chunks) > 1
    both = pd.concat(chunks)
    assert list(both["time"]) == list(whole["time"])
    assert list(both["rel_time"]) == list(whole["rel_time"])


@pytest.mark.parametrize("bad", [1, 2])
def test_a_corrupted_first_timestamp_is_skipped_alike_whole_and_chunked(ns_capture, tmp_path, bad):
    """A fuzzing finding (fuzz/FINDINGS.md F2): when the first packets' timestamps do not fit a
    time cell (pcapng ticks of 2**63 ns and more), ``rel_time`` counts from the first packet
    whose time fits — the same packet for ``read_capture`` and for every ``iter_capture`` chunk
    (a chunk used to measure from its own earliest frame)."""
    path, stamps = ns_capture
    packets, reader = read_packets(path)
    out = tmp_path / "corrupt.pcapng"
    big = 2**63 + 12345  # ns: past datetime64[ns]
    with PcapngWriter(out) as w:
        for iface in reader.interfaces:
            w.add_interface(iface.linktype, snaplen=iface.snaplen, tsresol=9)
        for s in reader.secrets:
            w.add_secrets(s.data, s.secrets_type)
        for i, p in enumerate(packets):
            w.write_packet(p.data, ticks=big + i if i < bad else stamps[i], ts_units=10**9,
                           interface=p.interface, origlen=p.origlen)
    cap = read_capture(out)
    whole = cap.frames
    assert cap.t0 == stamps[bad]  # the first packet whose time fits
    chunks = list(iter_capture(out, chunksize=7, progress=False))
    assert len(chunks) > 1
    both = pd.concat(chunks)
    assert both["rel_time"].tolist() == pytest.approx(whole["rel_time"].tolist(), nan_ok=True)
    ok = whole["time"].notna()
    assert ok.sum() > 7
    expect = (whole.loc[ok, "time"].astype("int64") - stamps[bad]) / 1e9
    assert whole.loc[ok, "rel_time"].tolist() == pytest.approx(expect.tolist())
    assert whole.loc[~ok, "rel_time"].isna().all()


def test_parquet_keeps_the_time_types(ns_capture, tmp_path):
    path, _ = ns_capture
    cap = read_capture(path)
    out = cap.to_parquet(tmp_path / "pq")
    for name in ("frames", "errors", "messages", "findings", "epochs"):
        back = pd.read_parquet(out[name])
        df = getattr(cap, name)
        assert str(back["time"].dtype) == "datetime64[ns, UTC]", name
        assert back["time"].astype("int64").tolist() == df["time"].astype("int64").tolist()
        assert back["rel_time"].dtype == "float64"
