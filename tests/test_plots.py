"""Plots and the tables behind them, on the capture built by ``test_widgets.build_capture``
(reference-wheel frames, live-MLS key log); expected values come from the generator's inputs."""
from __future__ import annotations

import pathlib
import sys

import pandas as pd
import pytest
from matplotlib.figure import Figure

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from gbp_lab import plots  # noqa: E402
from gbp_lab.core.errors import GbpLabError  # noqa: E402

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("gbp_stack")
    import test_widgets

    return test_widgets.build_capture(tmp_path_factory.mktemp("plots"))


@pytest.fixture(scope="module")
def cap(built):
    from gbp_lab.capture.model import read_capture

    return read_capture(built.path)


def test_audio_table_and_loss(built, cap):
    audio = plots.audio_table(cap)
    assert len(audio) == sum(len(v) for v in built.audio.values())
    for msid, pkts in built.audio.items():
        a = audio[audio["media_source_id"] == msid].sort_values("time")
        assert list(a["rtp_sequence"]) == [s for _t, s, _ts in pkts]
        assert list(a["rtp_timestamp"]) == [ts for _t, _s, ts in pkts]
    loss = plots.rtp_loss(audio).set_index("media_source_id")
    assert loss.loc[1001, "lost"] == 1 and loss.loc[1001, "gaps"] == [3]
    assert loss.loc[1002, "lost"] == 0 and loss.loc[1002, "gaps"] == []
    assert loss.loc[1001, "expected"] == max(s for _t, s, _ts in built.audio[1001])


def test_rtp_loss_wraps_sequence_numbers():
    df = pd.DataFrame({"media_source_id": [7] * 5, "time": [0.0, 0.02, 0.04, 0.06, 0.08],
                       "rtp_sequence": [65534, 65535, 1, 2, 0], "rtp_timestamp": [0] * 5})
    loss = plots.rtp_loss(df).iloc[0]
    assert loss["first"] == 65534 and loss["last"] == 65536 + 2
    assert loss["received"] == 5 and loss["lost"] == 0 and loss["gaps"] == []
    late = pd.DataFrame({"media_source_id": [7] * 4, "time": [0.0, 0.02, 0.04, 0.06],
                         "rtp_sequence": [65535, 1, 65534, 3], "rtp_timestamp": [0] * 4})
    row = plots.rtp_loss(late).iloc[0]
    assert row["first"] == 65534 and row["gaps"] == [65536, 65536 + 2]


def test_rtp_jitter_per_rfc3550(built, cap):
    jit = plots.rtp_jitter(plots.audio_table(cap))
    for msid, pkts in built.audio.items():
        j, prev, want = 0.0, None, []
        for t, _s, ts in sorted(pkts):
            # the capture's times are exact µs (datetime64[ns]); float seconds since the epoch
            # carry ~2e-7 s of rounding, so the expectation works from exact microseconds
            transit = (round(t * 1e6) - 1_700_000_000 * 10**6) / 1e6 - ts / 48000
            if prev is not None:
                j = j + (abs(transit - prev) - j) / 16
            prev = transit
            want.append(j)
        got = list(jit[jit["media_source_id"] == msid]["jitter"])
        assert got == pytest.approx(want, abs=1e-9)
    assert jit["jitter"].max() > 0


def test_transition_latency(built, cap):
    ctl = plots.control_table(cap)
    assert set(ctl["opcode_name"]) == {"PREPARE_TRANSITION", "READY_FOR_TRANSITION",
                                       "EXECUTE_TRANSITION"}
    lat = plots.transition_latency(ctl).set_index("transition_id")
    assert sorted(lat.index) == sorted(built.transitions)
    for tid, (tp, te) in built.transitions.items():
        assert lat.loc[tid, "latency"] == pytest.approx(te - tp, abs=2e-6)
    assert lat.loc[2, "ready"] == 1 and lat.loc[1, "ready"] == 0


def test_plot_epoch_timeline(built, cap):
    fig = plots.plot_epoch_timeline(cap)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    epochs = {f["epoch"] for f in built.frames if f["epoch"] is not None}
    streams = {f["st"] for f in built.frames if f["st"] is not None}
    has_mls = any(f["st"] is None for f in built.frames)
    # one band per epoch, one scatter per stream type, one for the MLS messages
    assert len(ax.collections) == len(epochs) + len(streams) + int(has_mls)
    offsets = sum(len(c.get_offsets()) for c in ax.collections[len(epochs):])
    assert offsets == len(built.frames)


def test_plot_throughput(built, cap):
    fig = plots.plot_throughput(cap, bin_seconds=0.05)
    ax = fig.axes[0]
    senders = {f["member"] for f in built.frames if f["st"] is not None}
    assert len(ax.lines) == len(senders)
    total = sum(line.get_ydata().sum() * 0.05 for line in ax.lines)
    want = sum(len(f["wire"]) for f in built.frames if f["st"] is not None)
    assert 0 < total < want  # payload bytes only: less than the frame bytes
    with pytest.raises(GbpLabError):
        plots.plot_throughput(cap, bin_seconds=0)


def test_plot_gap_jitter(built, cap):
    fig = plots.plot_gap_jitter(cap)
    ax, ax2 = fig.axes
    assert len(ax.lines) == len(built.audio)
    assert len(ax2.patches) == len(built.audio)
    heights = sorted(p.get_height() for p in ax2.patches)
    assert heights == [0, 1]
    assert len(ax.collections) == 1  # the one gap marked


def test_plot_transition_latency(built, cap):
    fig = plots.plot_transition_latency(cap)
    ax = fig.axes[0]
    assert len(ax.patches) == len(built.transitions)
    for p, tid in zip(ax.patches, sorted(built.transitions)):
        tp, te = built.transitions[tid]
        assert p.get_height() == pytest.approx((te - tp) * 1000, abs=0.01)


def test_plots_reject_non_captures():
    with pytest.raises(GbpLabError):
        plots.plot_epoch_timeline(object())


def test_own_tables_and_fallback_agree(cap):
    """The capture's derived tables (gbp_lab.capture.tables) and the decoding done here when a
    capture has none give the same rows."""
    from types import SimpleNamespace

    bare = SimpleNamespace(frames=cap.frames, plaintexts=cap.plaintexts)
    a1, a2 = plots.audio_table(cap), plots.audio_table(bare)
    assert len(a1) == len(a2) > 0
    for c in ("time", "media_source_id", "rtp_sequence", "rtp_timestamp", "row", "sender"):
        assert [int(x) if c != "time" else x for x in a1[c]] == \
            [int(x) if c != "time" else x for x in a2[c]]
    c1, c2 = plots.control_table(cap), plots.control_table(bare)
    assert len(c1) == len(c2) > 0
    for c in ("opcode", "transition_id", "sender", "row"):
        assert [int(x) for x in c1[c]] == [int(x) for x in c2[c]]


def test_plots_on_demo_capture():
    import gbp_lab

    if not hasattr(gbp_lab, "demo_capture"):
        pytest.skip("no demo capture in this tree yet")
    cap = gbp_lab.demo_capture()
    for fn in (plots.plot_epoch_timeline, plots.plot_throughput, plots.plot_gap_jitter,
               plots.plot_transition_latency):
        fig = fn(cap)
        assert isinstance(fig, Figure) and fig.axes
    lat = plots.transition_latency(plots.control_table(cap))
    assert (lat["latency"].dropna() >= 0).all()
    ax = plots.plot_transition_latency(cap).axes[0]
    assert len(ax.patches) == int(lat["latency"].notna().sum())


def test_empty_capture(tmp_path):
    from gbp_lab.capture.model import read_capture
    from gbp_lab.capture.pcap import LinkType, PcapngWriter
    from gbp_lab.core.errors import GbpLabError as E
    from gbp_lab.widgets import EpochStepper, FlowLadder, FrameInspector

    p = tmp_path / "empty.pcapng"
    with PcapngWriter(p) as w:
        w.add_interface(LinkType.IPV4)
    cap = read_capture(p)
    assert len(cap.frames) == 0
    for fn in (plots.plot_epoch_timeline, plots.plot_throughput, plots.plot_gap_jitter,
               plots.plot_transition_latency):
        assert isinstance(fn(cap), Figure)
    assert len(plots.audio_table(cap)) == 0 and len(plots.control_table(cap)) == 0
    with pytest.raises(E):
        EpochStepper(cap)
    fi = FrameInspector(cap)
    assert len(fi.set_filter(text="x", query="epoch == 1")) == 0
    with pytest.raises(E):
        fi.select_position(0)
    fl = FlowLadder(cap)
    assert fl.arrows == [] and "<svg" in fl.svg()


def test_plot_flow_ladder(built, cap):
    from matplotlib.text import Annotation

    from gbp_lab.widgets import FlowLadder

    fig = plots.plot_flow_ladder(cap, start=2, max_arrows=6)
    ax = fig.axes[0]
    model = FlowLadder(cap)
    assert len(ax.lines) == len(model.lanes)  # one axvline per lane
    arrows = [t for t in ax.texts if isinstance(t, Annotation)]
    assert len(arrows) == 6
    for k, (ann, a) in enumerate(zip(arrows, model.arrows[2:8]), start=1):
        assert ann.xy == (a.dst, k) and tuple(ann.xyann) == (a.src, k)
    # frames from a member go to the delivery service (lane 0); Welcomes come from it
    for ann, f in zip(arrows, built.frames[2:8]):
        assert (ann.xy[0] == 0) == (f["to"] == 0)
    labels = " ".join(t.get_text() for t in ax.texts)
    for info in cap.frames["info"].iloc[2:8]:
        assert str(info)[:40] in labels


def test_relay_copies_and_epochs_are_separate_rtp_streams():
    """In the demo every GAP frame crosses the relay three times (sender → relay, relay → each
    other member) and sequence numbers restart per epoch: each is a receiver's own stream, so
    nothing counts as lost or duplicated."""
    import gbp_lab

    cap = gbp_lab.demo_capture()
    loss = plots.rtp_loss(plots.audio_table(cap))
    assert {"media_source_id", "epoch", "dst", "dport"} <= set(loss.columns)
    assert len(loss) > len(loss["media_source_id"].unique())
    assert (loss["lost"] == 0).all() and (loss["received"] == loss["expected"]).all()
