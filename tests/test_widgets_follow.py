"""Issue 21 part B: interactive plots whose points are frames, widgets that follow the code,
byte ranges of Protobuf/FlatBuffers payload fields, the EpochStepper's diff from the previous
epoch, and FlowLadder epoch labels with wall-clock time. Driven without a browser
(tests/test_browser.py does the same in JupyterLab)."""
from __future__ import annotations

import pathlib
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import gbp_lab  # noqa: E402
from gbp_lab import plots  # noqa: E402
from gbp_lab.core.errors import DecodeError, GbpLabError, UsageError  # noqa: E402
from gbp_lab.core.gbp.registry import PayloadCodec  # noqa: E402
from gbp_lab.core.gtp.message import GtpMessage  # noqa: E402
from gbp_lab.core.mls import treemath as tm  # noqa: E402
from gbp_lab.core.mls.context import MlsContext  # noqa: E402
from gbp_lab.core.payload_codec import encode, field_spans  # noqa: E402
from gbp_lab.widgets import (EpochStepper, FlowLadder, FrameInspector, TreeRecorder,  # noqa: E402
                             WidgetError)
from gbp_lab.widgets.field_tree import frame_protocol_tree, payload_class  # noqa: E402
from span_decode import decode_span  # noqa: E402


@pytest.fixture(scope="module")
def demo():
    return gbp_lab.demo_capture()


# =============================================================================================
# interactive plots
# =============================================================================================

PLOTS = {"epoch-timeline": plots.plot_epoch_timeline, "throughput": plots.plot_throughput,
         "gap-jitter": plots.plot_gap_jitter, "transition-latency": plots.plot_transition_latency}


def test_default_is_static_outside_a_kernel(demo, monkeypatch):
    from matplotlib.figure import Figure

    assert plots.interactive_default() is False  # pytest is no Jupyter kernel
    for fn in PLOTS.values():
        assert isinstance(fn(demo), Figure)
        assert isinstance(fn(demo, interactive=False), Figure)


def test_default_is_interactive_in_a_kernel_unless_told(monkeypatch):
    import IPython

    class Shell:
        kernel = object()

    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell())
    monkeypatch.delenv("GBP_LAB_PLOTS", raising=False)
    assert plots.interactive_default() is True
    monkeypatch.setenv("GBP_LAB_PLOTS", "static")
    assert plots.interactive_default() is False


@pytest.mark.parametrize("kind", sorted(PLOTS))
def test_every_point_is_its_frame(demo, kind):
    """Each point of each trace: its x is its frame's time (time-series plots), its hover text
    names the frame number and the frame's info, a click selects that frame."""
    f = demo.frames
    p = PLOTS[kind](demo, interactive=True)
    assert isinstance(p, plots.InteractivePlot) and p.kind == kind
    assert len(p.traces) >= 1 and sum(len(t.frames) for t in p.traces) > 0
    clicked = []
    p.on_select(clicked.append)
    n = 0
    for ti, (tr, data) in enumerate(zip(p.traces, p.figure.data)):
        assert list(data.customdata) == list(tr.frames)
        for pi, label in enumerate(tr.frames):
            if label == -1:
                continue  # an empty throughput bin stands for no frame
            assert f"frame {label} " in tr.text[pi] and str(f["info"].loc[label]) in tr.text[pi]
            if kind in ("epoch-timeline", "gap-jitter"):
                assert data.x[pi] == pytest.approx(f["rel_time"].loc[label], abs=1e-9)
            if kind == "throughput":  # the bin of the point holds its frame
                b = data.x[pi]
                assert abs(f["rel_time"].loc[label] - b) <= 0.5 + 1e-9
            assert p.hover(ti, pi) == label and p.hovered == label
            assert f"frame {label} " in p.status.value
            assert p.click(ti, pi) == label and p.selected == label
            n += 1
    assert n and clicked[-1] == p.selected and len(clicked) == n


def test_timeline_points_per_stream(demo):
    p = plots.plot_epoch_timeline(demo, interactive=True)
    f = demo.frames
    by_name = {t.name: set(t.frames) for t in p.traces}
    for name, g in f.groupby("stream_name"):
        assert by_name[name] == set(int(x) for x in g.index)
    assert by_name["MLS"] == set(int(x) for x in f.index[f["protocol"] == "MLS"])
    assert len(p.figure.layout.shapes) == f["epoch"].nunique()  # one band per epoch


def test_transition_bar_is_its_prepare_frame(demo):
    p = plots.plot_transition_latency(demo, interactive=True)
    f = demo.frames
    lat = plots.transition_latency(plots.control_table(demo)).dropna(subset=["latency"])
    (tr,) = p.traces
    assert list(p.figure.data[0].y) == pytest.approx(list(lat["latency"] * 1000.0))
    for label, tid in zip(tr.frames, lat["transition_id"]):
        assert "PREPARE_TRANSITION" in f["info"].loc[label] and f["transition_id"].loc[label] is not None
        assert f"tid={int(tid)}" in f["info"].loc[label]


def test_click_selects_in_a_linked_inspector_and_its_view(demo):
    from gbp_lab.widgets import FrameInspectorView

    p = plots.plot_gap_jitter(demo, interactive=True)
    view = FrameInspectorView(demo, plots=[p])
    label = p.click(0, 1)
    assert view.model.selected == label and view.frame_list.value == label
    assert "GAP" in view.tree_html.value
    data = p.figure.data[0]
    assert p.ringed == [(data.x[1], data.y[1])]  # the selection is ringed on the plot
    other = p.traces[1].frames[0]
    view.model.select(other)  # selected in the inspector: the plot follows
    assert p.ringed == [(p.figure.data[1].x[0], p.figure.data[1].y[0])]
    view.model.set_filter(query="epoch == -1")  # the selection filtered out: no ring
    assert p.ringed == []
    view.model.set_filter(query="")
    # link() on a bare model
    fi = FrameInspector(demo)
    p2 = plots.link(plots.plot_epoch_timeline(demo, interactive=True), fi)
    assert fi.selected is None
    lab2 = p2.click(2, 0)
    assert fi.selected == lab2 and len(p2.ringed) == 1
    fi.select(p2.traces[0].frames[3])
    assert p2.ringed == [(p2.figure.data[0].x[3], p2.figure.data[0].y[3])]
    with pytest.raises(UsageError):
        plots.link(plots.plot_epoch_timeline(demo, interactive=False), fi)
    with pytest.raises(WidgetError):
        view.link(object())


def test_throughput_bins_sum_the_payloads(demo):
    f = demo.frames
    tab = plots.throughput_bins(demo, 0.02)
    for sender, g in tab.groupby("sender"):
        mine = f[f["sender"] == sender]
        assert g["bytes_per_s"].sum() * 0.02 == pytest.approx(float(mine["payload_size"].sum()))
        assert int(g["frames"].sum()) == len(mine)
        for b, lab in zip(g["bin"], g["first_frame"]):
            in_bin = mine[(mine["rel_time"] // 0.02).astype(int) == b]
            assert lab == (int(in_bin.index[0]) if len(in_bin) else -1)
    with pytest.raises(UsageError):
        plots.throughput_bins(demo, -1)


def test_interactive_plot_carries_its_static_twin(demo):
    from matplotlib.figure import Figure

    p = plots.plot_throughput(demo, 0.05, interactive=True)
    st = p.static()
    assert isinstance(st, Figure) and len(st.axes[0].lines) == len(p.traces)
    for line, data in zip(st.axes[0].lines, p.figure.data):
        assert np.allclose(line.get_ydata(), data.y)
    bundle = p._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    import base64

    assert base64.b64decode(data["image/png"]).startswith(b"\x89PNG")


def test_interactive_plots_of_an_audio_table_and_bad_input():
    arrivals = pd.DataFrame({"time": [0.0, 0.02, 0.05], "media_source_id": [1, 1, 1],
                             "rtp_sequence": [1, 2, 4], "rtp_timestamp": [0, 960, 2880]})
    p = plots.plot_gap_jitter(arrivals, interactive=True)
    assert len(p.traces) == 1 and list(p.traces[0].frames) == [-1, -1, -1]
    assert p.click(0, 0) is None and p.selected is None  # no frame behind these points
    with pytest.raises(UsageError):
        p.click(0, 99)
    with pytest.raises(UsageError):
        plots.plot_epoch_timeline(object(), interactive=True)
    with pytest.raises(UsageError):
        plots.plot_throughput(gbp_lab.demo_capture(), 0, interactive=True)


# =============================================================================================
# FrameInspectorView follows its model
# =============================================================================================

def test_inspector_view_follows_the_model(demo):
    from gbp_lab.widgets import FrameInspectorView

    v = FrameInspectorView(demo)
    assert len(v.frame_list.options) == len(demo.frames)
    v.model.set_filter(query="epoch == 2")  # from code, not from the boxes
    want = [int(x) for x in demo.frames.index[demo.frames["epoch"] == 2]]
    assert [val for _t, val in v.frame_list.options] == want
    assert v.query_text.value == "epoch == 2"
    assert f"{len(want)} of {len(demo.frames)} frames" in v.status.value
    v.model.set_filter(text="GTP")
    assert v.filter_text.value == "GTP"
    assert all("GTP" in t for t, _v in v.frame_list.options)
    pick = v.frame_list.options[-1][1]
    v.model.select(pick)  # selection from code shows in the list and the tree
    assert v.frame_list.value == pick and "select a frame" not in v.tree_html.value
    v.model.set_filter(text="", query="")
    assert len(v.frame_list.options) == len(demo.frames) and v.frame_list.value == pick
    # the boxes still drive the model
    v.query_text.value = "sender == 1"
    assert v.model.query == "sender == 1" and len(v.frame_list.options) == int(
        (demo.frames["sender"] == 1).sum())
    # another model
    other = FrameInspector(demo)
    other.set_filter(query="epoch == 1")
    old = v.model
    v.model = other
    assert v.query_text.value == "epoch == 1"
    assert len(v.frame_list.options) == int((demo.frames["epoch"] == 1).sum())
    old.set_filter(query="")  # the old model no longer drives the view
    assert v.query_text.value == "epoch == 1"
    with pytest.raises(WidgetError):
        v.model = "not a model"


# =============================================================================================
# byte ranges of Protobuf / FlatBuffers payload fields
# =============================================================================================

def _check_tree(layers, wire, plaintext, codec, cls):
    """Every field of the payload layer that is on the wire has a range, whose bytes decode to
    the core message's value for that field."""
    msg = cls.from_bytes(plaintext, codec)
    spans = field_spans(cls, plaintext, codec)
    payload = layers[1]
    by_name = {n.name: n for n in payload.children}
    checked = 0
    for f in cls.SCHEMA.fields:
        want = getattr(msg, f.attr)
        node = by_name[f.key]
        if f.attr not in spans:  # not on the wire: the codec's default value
            assert not want and node.start is None
            continue
        assert node.buffer == "plaintext" and (node.start, node.end) == spans[f.attr]
        assert decode_span(plaintext, node.start, node.end, codec, want) == want, f.key
        checked += 1
    return checked


@pytest.mark.interop
@pytest.mark.parametrize("use_dissectors", [True, False])
def test_payload_field_ranges_on_reference_frames(use_dissectors):
    """Frames of every stream type in the three codecs, sent by the reference wheel: each
    payload field's byte range decodes to that field's value."""
    import refpeer

    with refpeer.two_member_group() as grp:
        frames = refpeer.reference_frames(grp)
        keylog = grp.keylog("alice")
    seen = set()
    for fr in frames:
        if fr.stream_type == 0:
            continue
        cls = payload_class(fr.stream_type)
        layers = frame_protocol_tree(fr.wire, fr.plaintext, keylog, use_dissectors=use_dissectors)
        n = _check_tree(layers, fr.wire, fr.plaintext, PayloadCodec(fr.codec), cls)
        assert n >= 3, (fr.kind, fr.codec)
        seen.add((fr.stream_type, fr.codec))
        if fr.kind == "gsp" and fr.codec != 0:  # args: a CBOR map inside the bytes field
            args = next(n for n in layers[1].children if n.name == "args") if not use_dissectors \
                else None
            if args is not None and args.children:
                import cbor2

                for a in args.children:
                    assert cbor2.loads(fr.plaintext[a.start:a.end]) == a.raw
    assert seen == {(st, c) for st in (1, 2, 3) for c in (0, 1, 2)}


def test_field_spans_cover_the_encoding():
    m = GtpMessage.plain(7, 300, "héllo")
    for codec in PayloadCodec:
        data = encode(m, codec)
        spans = field_spans(GtpMessage, data, codec)
        for f in GtpMessage.SCHEMA.fields:
            want = getattr(m, f.attr)
            if f.attr in spans:
                s, e = spans[f.attr]
                assert 0 <= s <= e <= len(data)
                assert decode_span(data, s, e, codec, want) == want
            else:
                assert codec is not PayloadCodec.CBOR and not want
        assert {"message_id", "sender_id", "content"} <= set(spans)


@settings(max_examples=150, deadline=None)
@given(hs.binary(max_size=80), hs.sampled_from(list(PayloadCodec)))
def test_field_spans_fuzz_only_typed_errors(data, codec):
    try:
        spans = field_spans(GtpMessage, data, codec)
    except GbpLabError:
        return
    for s, e in spans.values():
        assert 0 <= s <= e <= len(data)


def test_field_spans_refuses_bad_bytes():
    with pytest.raises(DecodeError):
        field_spans(GtpMessage, b"\x0a\x05ab", PayloadCodec.PROTOBUF)
    with pytest.raises(UsageError):
        field_spans(int, b"", PayloadCodec.CBOR)


# =============================================================================================
# EpochStepper: what changed from the previous epoch
# =============================================================================================

@pytest.fixture(scope="module")
def history():
    """alice creates, adds bob, carol, dave (one commit each, alice's UpdatePath), removes
    carol; the recorder keeps every epoch's whole tree."""
    alice = MlsContext.create("alice")
    others = {n: MlsContext.create(n) for n in ("bob", "carol", "dave")}
    rec = TreeRecorder(alice)
    for ctx in others.values():
        commit, welcome = alice.invite_full(ctx.export_key_package())
        alice.finalize_commit()
        ctx.accept_welcome(welcome)
        rec.snap(alice)
    carol_leaf = next(m.leaf_index for m in alice.members if m.identity == b"carol")
    alice.remove_member(carol_leaf)
    alice.finalize_commit()
    rec.snap(alice)
    return alice, rec, carol_leaf


def test_epoch_diff_names_the_leaves_and_nodes(history):
    alice, rec, carol_leaf = history
    st = EpochStepper(alice, trees=rec)
    gid = alice.group_id
    assert st.go(0).diff is None
    expect = {1: ("bob", "add"), 2: ("carol", "add"), 3: ("dave", "add"), 4: ("carol", "remove")}
    for ep, (who, what) in expect.items():
        v = st.go(ep)
        d = v.diff
        old, new = rec[(gid, ep - 1)], rec[(gid, ep)]
        leaf = next(m.leaf_index for m in (new if what == "add" else old).members()
                    if m.identity == who.encode())
        if what == "add":
            assert d.added == ((leaf, who),) and d.removed == ()
        else:
            assert d.removed == ((leaf, who),) and d.added == () and leaf == carol_leaf
        assert d.updated == ((0, "alice"),)  # the committer's new leaf node (its UpdatePath)
        # the committer's path: a new path secret at every non-blank parent of its direct path
        path = [int(x) for x in tm.direct_path(tm.leaf_to_node(0), new.n_leaves)]
        assert d.tree_compared and set(d.new_path_secrets) == {p for p in path if new.node(p) is not None}
        def node(t, i):
            return t.nodes[i] if i < t.n_nodes else None

        changed = {i for i in range(max(old.n_nodes, new.n_nodes)) if node(old, i) != node(new, i)}
        assert set(d.changed_nodes) == changed
        assert {0, 2 * leaf} | set(d.new_path_secrets) <= set(d.changed_nodes)
        assert v.changed == d.changed_nodes
        for i in d.changed_nodes:  # highlighted in the drawing
            assert f'changed" data-node="{i}"' in v.tree_svg or \
                f' changed" data-node="{i}"' in v.tree_svg
        assert any(who in line for line in d.lines())
        html = v._repr_html_()
        assert "gbp-epoch-diff" in html and f"changes from epoch {ep - 1} to {ep}" in html


def test_epoch_diff_from_members_only(history):
    alice, _rec, carol_leaf = history
    st = EpochStepper(alice)  # past epochs: members only
    d = st.go(4).diff
    assert d.removed == ((carol_leaf, "carol"),) and not d.tree_compared
    assert set(d.changed_nodes) == {0, 2 * carol_leaf}
    assert any("not compared" in x for x in d.lines())


def test_epoch_stepper_view_shows_the_diff(history):
    from gbp_lab.widgets import EpochStepperView

    alice, rec, _ = history
    v = EpochStepperView(alice, trees=rec)
    assert "nothing to compare" in v.diff_html.value
    v.slider.value = 2
    assert "carol joined at leaf 2" in v.diff_html.value and "parent nodes 1, 3" in v.diff_html.value


def test_capture_stepper_diffs_rebuilt_trees(demo):
    st = EpochStepper(demo)
    diffs = [st.go(i).diff for i in range(len(st))]
    known = [d for d in diffs if d is not None and d.tree_compared]
    trees = demo.trees
    if not known:
        pytest.fail(f"no epoch of the demo capture has two rebuilt trees: {trees}")
    for d in known:
        assert d.added or d.removed or d.updated or d.changed_nodes


# =============================================================================================
# FlowLadder: epoch labels with the UTC time of the epoch's first frame
# =============================================================================================

def test_flow_ladder_epoch_labels_carry_utc_time(demo):
    fl = FlowLadder(demo, max_arrows=len(demo.frames))
    f = demo.frames
    assert fl.bands
    for band in fl.bands:
        first = f.loc[f["epoch"] == band.epoch, "time"].min()
        utc = pd.Timestamp(first).tz_convert("UTC")
        want = f"epoch {band.epoch} · {utc.strftime('%H:%M:%S')}.{utc.microsecond // 1000:03d}"
        assert band.label == want == fl.epoch_text(band.epoch)
        assert want in fl.svg()
    fig = plots.plot_flow_ladder(demo, max_arrows=len(demo.frames))
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert fl.bands[0].label in texts
    from gbp_lab.widgets.flow_ladder import epoch_label

    assert epoch_label(3, pd.Timestamp("2026-12-06 08:41:07.123456", tz="UTC")) == \
        "epoch 3 · 08:41:07.123"
    assert epoch_label(3, pd.Timestamp("2026-12-06 09:41:07.5", tz="Europe/Berlin")) == \
        "epoch 3 · 08:41:07.500"
    assert epoch_label(None, None) == "MLS" and epoch_label(2, None) == "epoch 2"
