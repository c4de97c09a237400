"""Widgets: view-models driven without a browser, thin ipywidgets views, render helpers.

(a) live MlsContexts: create a group, add 3 members, remove one — the stepper sees every epoch;
(b) a capture built here (:func:`build_capture`): GBP frames encoded by the reference wheel
    (``gbp_stack.encode_gbp_frame``), payloads sealed under the exporter secrets that live
    MlsContexts wrote to their key log, the Commit/Welcome/KeyPackage bytes those contexts made,
    written as pcapng by the lab's writer. Expected values come from the generator's inputs.
"""
from __future__ import annotations

import pathlib
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from gbp_lab.core.errors import GbpLabError  # noqa: E402
from gbp_lab.core.keylog import KeyLog  # noqa: E402
from gbp_lab.core.mls.context import MlsContext  # noqa: E402
from gbp_lab.widgets import (EpochStepper, FlowLadder, FrameInspector, TreeRecorder,  # noqa: E402
                             WidgetError, cbor_fields)
from gbp_lab.widgets import render  # noqa: E402

# =============================================================================================
# (a) live contexts
# =============================================================================================


@pytest.fixture(scope="module")
def live():
    """alice creates, adds bob, carol, dave (one commit each), then removes carol."""
    alice = MlsContext.create("alice")
    others = {n: MlsContext.create(n) for n in ("bob", "carol", "dave")}
    rec = TreeRecorder(alice)
    joined = []
    for ctx in others.values():
        commit, welcome = alice.invite_full(ctx.export_key_package())
        alice.finalize_commit()
        for j in joined:
            j.process_message(commit)
            j.finalize_commit()
        ctx.accept_welcome(welcome)
        joined.append(ctx)
        rec.snap(alice)
    carol_leaf = next(m.leaf_index for m in alice.members if m.identity == b"carol")
    commit = alice.remove_member(carol_leaf)
    alice.finalize_commit()
    for n in ("bob", "dave"):
        others[n].process_message(commit)
        others[n].finalize_commit()
    rec.snap(alice)
    return alice, others, rec, carol_leaf


def test_stepper_sees_every_epoch(live):
    alice, others, _rec, _ = live
    st = EpochStepper(alice)
    assert st.epochs == [0, 1, 2, 3, 4]
    assert [k.group_id for k in st.keys] == [alice.group_id] * 5
    want = [["alice"], ["alice", "bob"], ["alice", "bob", "carol"],
            ["alice", "bob", "carol", "dave"], ["alice", "bob", "dave"]]
    for i, names in enumerate(want):
        v = st.go(i)
        assert v.epoch == i and st.index == i
        assert sorted(m["identity"] for m in v.members) == names
        for n in names:
            assert f">{n}<" in v.tree_svg
        for n in {"alice", "bob", "carol", "dave"} - set(names):
            assert f">{n}<" not in v.tree_svg
    # the current epoch has alice's whole tree; the past ones only members (said so)
    assert st.go(4).tree_known is True
    assert st.go(1).tree_known is False and st.go(1).unknown
    assert 'class="node parent unknown"' in st.go(1).tree_svg


def test_stepper_merges_histories_and_infers_commits(live):
    alice, others, _rec, carol_leaf = live
    st = EpochStepper([others["dave"], alice])  # dave joined at 3; alice saw 0..4
    assert st.epochs == [0, 1, 2, 3, 4]
    assert "Add(bob" in st.go(1).commit and st.go(1).proposals[0].startswith("Add(bob")
    assert any(p.startswith(f"Remove(leaf {carol_leaf}: carol)") for p in st.go(4).proposals)
    assert st.go(0).commit.startswith("group created")


def test_secrets_hidden_until_reveal(live):
    alice, _o, _r, _ = live
    st = EpochStepper(alice)
    seen = []
    st.observe(lambda m: seen.append((m.index, m.reveal)))
    st.go(2)
    v = st.current
    assert v.revealed is False
    assert v.secrets and all(s["value"] is None for s in v.secrets)
    assert all(s["known"] for s in v.secrets if s["name"] != "commit_secret")
    html_hidden = st.secrets_html()
    summary = alice.history[2]
    exporter = summary.epoch_secrets.exporter_secret.reveal().hex()
    assert exporter not in html_hidden
    st.reveal = True
    v2 = st.current
    assert v2.revealed is True
    vals = {s["name"]: s["value"] for s in v2.secrets}
    assert vals["exporter_secret"] == exporter
    assert vals["init_secret"] == summary.epoch_secrets.init_secret.reveal().hex()
    assert exporter in st.secrets_html()
    assert seen == [(2, False), (2, True)]
    # the snapshot taken before the toggle did not change (frozen)
    assert all(s["value"] is None for s in v.secrets)


def test_stepper_navigation_bounds(live):
    st = EpochStepper(live[0])
    assert st.prev().index == 0
    st.go(4)
    assert st.next().index == 4
    assert st.go_epoch(2).epoch == 2
    for bad in (-1, 5, "1", True):
        with pytest.raises(WidgetError):
            st.go(bad)
    with pytest.raises(WidgetError):
        st.go_epoch(99)


def test_recorded_trees_draw_every_node(live):
    alice, _o, rec, carol_leaf = live
    st = EpochStepper(alice, trees=rec)
    for i in range(5):
        v = st.go(i)
        assert v.tree_known
        tree = rec[(alice.group_id, i)]
        assert v.tree_svg.count('<g class="node') == tree.n_nodes
        for row in tree.describe():
            if row["unmerged_leaves"]:
                assert f"unmerged {','.join(map(str, row['unmerged_leaves']))}" in v.tree_svg
        for m in tree.members():
            assert f">leaf {m.leaf_index}<" in v.tree_svg
    # carol's leaf is blank after the removal
    last = st.go(4).tree_svg
    # (outlined: it changed from the previous epoch, gbp_lab.widgets.epoch_diff)
    assert f'class="node leaf blank changed" data-node="{2 * carol_leaf}"' in last


def test_tree_svg_from_members_only():
    @dataclass(frozen=True)
    class M:
        leaf_index: int
        identity: bytes

    rows = render.tree_rows(members=[M(0, b"a"), M(2, b"\xff\x00")])
    assert len(rows) == 7  # 4 leaves
    svg = render.tree_svg(rows)
    assert svg.count('class="node leaf blank"') == 2  # leaves 1 and 3
    assert svg.count('class="node parent unknown"') == 3
    assert ">ff00<" in svg  # non-text identity shown in hex
    with pytest.raises(GbpLabError):
        render.tree_rows()


# =============================================================================================
# render helpers
# =============================================================================================

def test_hexdump_highlight_covers_exactly_the_range():
    data = bytes(range(40))
    html_ = render.hexdump_html(data, (5, 21))
    assert html_.count('class="hl" data-off=') == 16
    offs = [int(x.split('"')[0]) for x in html_.split('data-off="')[1:]]
    assert offs == list(range(5, 21))
    lines = render.hexdump_lines(data, (15, 17))
    assert len(lines) == 3 and "[0f]" in lines[0] and "[10]" in lines[1]
    assert render.hexdump_html(b"") .startswith("<pre")


def test_protocol_tree_html_and_repr_helpers(live):
    from gbp_lab.core.gbp.events import NodeEvent
    from gbp_lab.widgets.models import FieldNode

    tree = [FieldNode("L", "x", 0, 4, "frame", (FieldNode("a<b", "1&2", 1, 2, "frame"),))]
    h = render.protocol_tree_html(tree, selected=(0, 0))
    assert "a&lt;b" in h and "1&amp;2" in h and 'class="sel"' in h and "[1, 2)" in h
    ev = NodeEvent("epoch_advanced", epoch=3, transition_id=7)
    eh = render.event_html(ev)
    assert "<b>epoch_advanced</b>" in eh and "epoch=3" in eh and "from_state" not in eh
    assert render.event_html([ev, ev]).count("<li>") == 2
    alice = live[0]
    th = render.mls_tree_html(alice.tree)
    assert "<svg" in th and ">alice<" in th and ">bob<" in th and "carol" not in th
    fh = render.frame_html({"info": "<x>", "epoch": 1})
    assert "&lt;x&gt;" in fh


# =============================================================================================
# CBOR offsets
# =============================================================================================

@settings(max_examples=200, deadline=None)
@given(hs.dictionaries(hs.text(max_size=6),
                       hs.one_of(hs.integers(0, 2**64 - 1), hs.binary(max_size=40),
                                 hs.text(max_size=10), hs.booleans()), max_size=8))
def test_cbor_fields_ranges_decode_to_values(d):
    data = cbor2.dumps(d)
    got = cbor_fields(data)
    assert [k for k, *_ in got] == list(d)
    for k, v, s, e in got:
        assert cbor2.loads(data[s:e]) == v == d[k]


@settings(max_examples=200, deadline=None)
@given(hs.binary(max_size=64))
def test_cbor_fields_fuzz_only_typed_errors(data):
    try:
        out = cbor_fields(data)
    except GbpLabError:
        return
    for _k, _v, s, e in out:
        assert 0 <= s <= e <= len(data)


@pytest.mark.interop
def test_cbor_fields_on_reference_frame():
    import gbp_stack

    gid = bytes(range(16))
    wire = gbp_stack.encode_gbp_frame(1, gid, 300, 7, 2, 101, 7, 65536, b"\x01" * 30)
    got = {k: (v, s, e) for k, v, s, e in cbor_fields(wire)}
    assert list(got) == ["v", "gid", "ep", "tid", "st", "sid", "fl", "seq", "psz", "pl"]
    assert got["gid"][0] == gid and got["ep"][0] == 300 and got["seq"][0] == 65536
    for _k, (v, s, e) in got.items():
        assert cbor2.loads(wire[s:e]) == v
    s, e = got["pl"][1:]
    assert wire[e - 30:e] == b"\x01" * 30 and e == len(wire)


# =============================================================================================
# (b) a capture
# =============================================================================================

DS = ("10.0.0.100", 7878)
HOSTS = {1: ("10.0.0.1", 40001), 2: ("10.0.0.2", 40002), 3: ("10.0.0.3", 40003)}
BASE = {0: 0, 1: 2, 2: 1, 3: 3}
FLAGS = {0: 0x000B, 1: 0x0001, 2: 0x0007, 3: 0x0007}
T0 = 1_700_000_000.0


@dataclass
class Built:
    path: pathlib.Path
    keylog: KeyLog
    group_id: bytes
    frames: List[dict] = field(default_factory=list)  # in file order: what was put on the wire
    audio: Dict[int, List[Tuple[float, int, int]]] = field(default_factory=dict)  # msid → (t, seq, ts)
    transitions: Dict[int, Tuple[float, float]] = field(default_factory=dict)  # tid → (prep, exec)


def build_capture(tmp_path: pathlib.Path) -> Built:
    """Three members over a delivery service; epochs 0..3 (two Add commits, an empty one)."""
    import gbp_stack
    from scapy.layers.inet import IP, TCP
    from scapy.packet import Raw

    from gbp_lab.capture.pcap import LinkType, PcapngWriter
    from gbp_lab.core.gap.payload import GapPayload
    from gbp_lab.core.gbp.aead import seal_payload, stream_key
    from gbp_lab.core.gbp.control import ControlMessage
    from gbp_lab.core.gbp.registry import ControlOpcode
    from gbp_lab.core.gsp.args import mute_args
    from gbp_lab.core.gsp.signal import GspSignal, SignalType
    from gbp_lab.core.gtp.message import GtpMessage
    from gbp_lab.core.payload_codec import encode

    log = KeyLog()
    alice = MlsContext.create("alice", keylog=log)
    bob = MlsContext.create("bob", keylog=log)
    carol = MlsContext.create("carol", keylog=log)
    gid = alice.group_id
    out = Built(tmp_path / "widgets.pcapng", log, gid)
    events: List[Tuple[float, int, int, bytes]] = []  # (time, from, to, record body); 0 = DS
    seqs: Dict[Tuple[int, int], int] = {}
    clock = [T0]

    def tick(dt=0.010):
        clock[0] = round(clock[0] + dt, 6)
        return clock[0]

    def send(member, st, plaintext, epoch, tid, t=None, kind=None, extra=None):
        sid = BASE[st] + member * 100
        seq = seqs[(st, sid)] = seqs.get((st, sid), 0) + 1
        secret = log.exporter_secret(gid, epoch)
        pl = seal_payload(stream_key(secret, st), seq, plaintext)
        wire = gbp_stack.encode_gbp_frame(1, gid, epoch, tid, st, sid, FLAGS[st], seq, pl)
        t = tick() if t is None else t
        events.append((t, member, 0, wire))
        out.frames.append(dict(time=t, member=member, to=0, st=st, epoch=epoch, tid=tid, seq=seq,
                               wire=wire, plaintext=plaintext, kind=kind, **(extra or {})))

    def raw(frm, to, blob, what):
        t = tick()
        events.append((t, frm, to, blob))
        out.frames.append(dict(time=t, member=frm, to=to, st=None, epoch=None, wire=blob, kind=what))

    def transition(tid, epoch, joiner, name):
        raw(joiner, 0, joiner_ctx[name].export_key_package(), "KeyPackage")
        commit, welcome = alice.invite_full(joiner_ctx[name].export_key_package())
        prep = ControlMessage.build(ControlOpcode.PREPARE_TRANSITION, tid, 1, tid, commit).to_cbor()
        tp = tick()
        send(1, 0, prep, epoch, tid - 1, t=tp, kind="PREPARE")
        if epoch >= 1:
            send(2, 0, ControlMessage.build(ControlOpcode.READY_FOR_TRANSITION, tid, 2, tid).to_cbor(),
                 epoch, tid - 1, kind="READY")
            bob.process_message(commit)
        te = tick(0.005 * tid)
        send(1, 0, ControlMessage.build(ControlOpcode.EXECUTE_TRANSITION, tid, 1, tid).to_cbor(),
             epoch, tid - 1, t=te, kind="EXECUTE")
        alice.finalize_commit()
        if epoch >= 1:
            bob.finalize_commit()
        joiner_ctx[name].accept_welcome(welcome)
        raw(0, joiner, welcome, "Welcome")
        out.transitions[tid] = (tp, te)
        seqs.clear()  # counters reset on apply_transition

    joiner_ctx = {"bob": bob, "carol": carol}
    # epoch 0: alice alone
    for i in range(2):
        send(1, 2, encode(GtpMessage.plain(i + 1, 1, f"hello {i}")), 0, 0, kind="GTP")
    transition(1, 0, 2, "bob")
    # epoch 1: text from bob, audio from alice (seq 3 lost) and bob, with uneven arrivals
    send(2, 2, encode(GtpMessage.plain(10, 2, "hi alice")), 1, 1, kind="GTP")
    arrivals = {1: [0, 0.001, 0.0, 0.004, -0.002, 0.0], 2: [0, 0.0, 0.003, 0.0]}
    t_audio = tick()
    for member, offs in arrivals.items():
        msid = 1000 + member
        rtp_seqs = [s for s in range(1, len(offs) + 2) if not (member == 1 and s == 3)]
        for k, (s, off) in enumerate(zip(rtp_seqs, offs)):
            t = round(t_audio + 0.020 * (s - 1) + off + 0.0001 * member, 6)
            ts = 960 * s
            g = GapPayload(msid, s, ts, 1, bytes([0xF8, s]) * 10)
            send(member, 1, encode(g), 1, 1, t=t, kind="GAP")
            out.audio.setdefault(msid, []).append((t, s, ts))
    clock[0] = max(e[0] for e in events)
    transition(2, 1, 3, "carol")
    # epoch 2: carol speaks, alice mutes bob
    send(3, 2, encode(GtpMessage.plain(20, 3, "hi all")), 2, 2, kind="GTP")
    send(1, 3, encode(GspSignal(SignalType.MUTE, 5, 1, args=mute_args(2))), 2, 2, kind="GSP")
    # epoch 2 → 3: alice rotates her keys (an empty commit with a path)
    commit = alice.self_update()
    tp = tick()
    send(1, 0, ControlMessage.build(ControlOpcode.PREPARE_TRANSITION, 3, 1, 3, commit).to_cbor(),
         2, 2, t=tp, kind="PREPARE")
    for ctx in (bob, carol):
        ctx.process_message(commit)
    te = tick(0.002)
    send(1, 0, ControlMessage.build(ControlOpcode.EXECUTE_TRANSITION, 3, 1, 3).to_cbor(), 2, 2,
         t=te, kind="EXECUTE")
    for ctx in (alice, bob, carol):
        ctx.finalize_commit()
    out.transitions[3] = (tp, te)
    seqs.clear()
    send(2, 2, encode(GtpMessage.plain(30, 2, "new keys")), 3, 3, kind="GTP")

    # the wire: one TCP connection per (from, to) pair, records u32-LE length-prefixed
    events.sort(key=lambda e: e[0])
    order = sorted(range(len(out.frames)), key=lambda i: out.frames[i]["time"])
    out.frames = [out.frames[i] for i in order]
    conns: Dict[Tuple[int, int], int] = {}
    with PcapngWriter(out.path) as w:
        w.add_interface(LinkType.IPV4)
        w.add_secrets(log.dump())
        for t, frm, to, body in events:
            a, b = (HOSTS[frm] if frm else DS), (HOSTS[to] if to else DS)
            key = (frm, to)
            ip = IP(src=a[0], dst=b[0])
            if key not in conns:
                w.write_packet(bytes(ip / TCP(sport=a[1], dport=b[1], seq=999, flags="S")),
                               time=t - 0.000001)
                conns[key] = 1000
            rec = len(body).to_bytes(4, "little") + body
            w.write_packet(bytes(ip / TCP(sport=a[1], dport=b[1], seq=conns[key], flags="PA")
                                 / Raw(rec)), time=t)
            conns[key] += len(rec)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("gbp_stack")
    return build_capture(tmp_path_factory.mktemp("widgets"))


@pytest.fixture(scope="module")
def cap(built):
    from gbp_lab.capture.model import read_capture

    return read_capture(built.path)


@pytest.mark.interop
def test_capture_matches_generator(built, cap):
    assert len(cap.frames) == len(built.frames)
    # time is datetime64[ns, UTC] (exact); the generator's times are float seconds
    assert list(cap.frames["time"].astype("int64") / 1e9) == pytest.approx(
        [f["time"] for f in built.frames])
    assert str(cap.frames["time"].dtype) == "datetime64[ns, UTC]"
    assert cap.frames["rel_time"].iloc[0] >= 0 and cap.frames["rel_time"].is_monotonic_increasing
    gbp = cap.frames[cap.frames["protocol"] != "MLS"]
    assert bool(gbp["decrypted"].all())


@pytest.mark.interop
def test_capture_stepper_traffic_changes_with_epoch(built, cap):
    st = EpochStepper(cap)
    assert st.epochs == [0, 1, 2, 3]
    sizes = []
    for i, ep in enumerate(st.epochs):
        v = st.go(i)
        want = [f for f in built.frames if f["epoch"] == ep]
        assert len(v.traffic) == len(want)
        assert list(v.traffic["time"].astype("int64") / 1e9) == pytest.approx(  # datetime64
            [f["time"] for f in want])
        assert set(v.traffic["epoch"]) == {ep}
        sizes.append(len(v.traffic))
    assert len(set(sizes)) > 1
    # a capture knows the key-log secrets and the trees its commits rebuild (Capture.trees), and
    # says what it does not know: the creator's epoch-0 leaf is never on the wire
    v0 = st.go(0)
    assert v0.tree_known is False and "unknown" in v0.tree_svg
    assert any("ratchet tree" in u and "epoch-0 leaf" in u for u in v0.unknown)
    v = st.go(1)
    assert v.tree_known is True and [m["identity"] for m in v.members] == ["alice", "bob"]
    assert 'class="node leaf changed"' in v.tree_svg and v.changed == (0, 1, 2)
    assert not any("ratchet tree" in u for u in v.unknown)
    known = {s["name"] for s in v.secrets if s["known"]}
    assert known == {"exporter_secret", "sender_data_secret", "encryption_secret", "epoch_secret"}
    assert all(s["value"] is None for s in v.secrets)
    st.reveal = True
    vals = {s["name"]: s["value"] for s in st.current.secrets}
    assert vals["exporter_secret"] == built.keylog.exporter_secret(built.group_id, 1).hex()
    assert vals["joiner_secret"] is None
    # the commit that led to epoch 1: the PREPARE of epoch 0 carrying alice's Commit
    prep = next(f for f in built.frames if f.get("kind") == "PREPARE" and f["epoch"] == 0)
    assert "PREPARE_TRANSITION tid=1 from member 1" in v.commit
    # times shown relative to the capture's first packet (cap.t0, integer ns)
    assert f"t={(round(prep['time'] * 1e6) * 1000 - cap.t0) / 1e9:.6f}" in v.commit
    assert "PrivateMessage" in v.commit
    assert "no commit" in st.go(0).commit
    for i, ep in enumerate(st.epochs):
        assert st.go(i).senders == tuple(sorted({f["member"] for f in built.frames
                                                 if f["epoch"] == ep}))


@pytest.mark.interop
def test_inspector_filter_and_query(built, cap):
    fi = FrameInspector(cap)
    assert len(fi.rows) == len(built.frames)
    n_audio = sum(1 for f in built.frames if f["st"] == 1)
    assert len(fi.set_filter(text="gap")) == n_audio
    assert len(fi.set_filter(text="GAP", query="sender == 2")) == \
        sum(1 for f in built.frames if f["st"] == 1 and f["member"] == 2)
    assert len(fi.set_filter(text="", query="epoch == 2")) == \
        sum(1 for f in built.frames if f["epoch"] == 2)
    assert len(fi.set_filter(text="10.0.0.3", query="")) == \
        sum(1 for f in built.frames if 3 in (f["member"], f["to"]))
    assert len(fi.set_filter(text="welcome")) == 2
    before = fi.rows
    with pytest.raises(WidgetError):
        fi.set_filter(query="epoch ==")
    assert fi.rows is before


@pytest.mark.interop
@pytest.mark.parametrize("use_dissectors", [True, False])
def test_inspector_selection_and_highlights(built, cap, use_dissectors):
    fi = FrameInspector(cap, use_dissectors=use_dissectors)
    fi.set_filter(text="GTP")
    gtp = [f for f in built.frames if f["st"] == 2]
    assert len(fi.rows) == len(gtp)
    for pos, want in enumerate(gtp):
        tree = fi.select_position(pos)
        assert fi.record() == want["wire"]
        assert fi.plaintext() == want["plaintext"]
        assert len(tree) >= 2  # the frame and the decrypted GTP layer
        # every positioned field decodes, from its highlighted bytes, to its value
        checked = 0
        for name, path in fi.fields().items():
            n = fi.node(path)
            if n.start is None or not n.buffer or n.children:
                continue
            fi.select_field(path)
            buf, s, e = fi.highlight
            assert cbor2.loads(fi.buffer(buf)[s:e]) == cbor2.loads(fi.buffer(buf))[
                name.split("/")[-1]]
            checked += 1
        assert checked >= 10 + 8 - 1
    # the GTP body field: the highlighted bytes are the text generator sent
    fi.select_position(0)
    fi.select_field(next(n for n in fi.fields() if n.endswith("/body")))
    buf, s, e = fi.highlight
    assert buf == "plaintext"
    assert cbor2.loads(fi.buffer(buf)[s:e]) == b"hello 0"
    h = fi.hexdump_html()
    assert h.count('class="hl" data-off=') == e - s
    fi.select_field(next(n for n in fi.fields() if n.startswith("GBP Frame/seq")))
    buf, s, e = fi.highlight
    assert buf == "frame" and cbor2.loads(fi.record()[s:e]) == gtp[0]["seq"]
    assert 'class="sel"' in fi.tree_html()


@pytest.mark.interop
@pytest.mark.parametrize("use_dissectors", [True, False])
def test_inspector_gsp_args_and_control(built, cap, use_dissectors):
    fi = FrameInspector(cap, use_dissectors=use_dissectors)
    fi.set_filter(text="MUTE")
    assert len(fi.rows) == 1
    fi.select_position(0)
    names = fi.fields()
    # the integer-keyed CBOR map inside the args bstr (core: args/0, scapy: GSP Args layer)
    sub = [n for n in names if "/args/" in n or n.endswith("/target_member_id")]
    assert len(sub) == 1
    fi.select_field(sub[0])
    buf, s, e = fi.highlight
    assert buf == "plaintext"
    assert cbor2.loads(fi.buffer(buf)[s:e]) == 2  # target member id (mute_args(2))
    fi.set_filter(text="PREPARE")
    fi.select_position(0)
    names = fi.fields()
    if use_dissectors:  # the dissectors open the Commit with the key log's epoch secrets
        assert "MLS Commit" in names and "MLS PrivateMessage/epoch" in names
    else:
        assert any("MLSMessage" in n for n in names)


@pytest.mark.interop
def test_inspector_mls_rows_and_errors(built, cap):
    fi = FrameInspector(cap)
    with pytest.raises(WidgetError):
        fi.tree
    with pytest.raises(WidgetError):
        fi.select(10_000)
    fi.set_filter(text="KeyPackage")
    fi.select_position(0)
    kp = next(f for f in built.frames if f["kind"] == "KeyPackage")
    assert fi.record() == kp["wire"]
    assert fi.tree[0].name.startswith("MLS") and "KeyPackage" in fi.tree[0].name
    fi.set_filter(text="Welcome")
    fi.select_position(0)
    assert [n.name for n in fi.tree][-1] == "MLS Welcome"
    with pytest.raises(WidgetError):
        fi.select_field("nope")
    fi2 = FrameInspector(cap, source=built.path.read_bytes())
    fi2.select(0)
    assert fi2.record() == built.frames[0]["wire"]


@pytest.mark.interop
def test_flow_ladder(built, cap):
    fl = FlowLadder(cap, max_arrows=1000)
    kinds = [ln.kind for ln in fl.lanes]
    assert kinds.count("ds") == 1 and kinds.count("member") == 3
    assert fl.lanes[0].endpoint == f"{DS[0]}:{DS[1]}"
    assert {ln.name.split(" ")[1] for ln in fl.lanes[1:]} == {"1", "2", "3"}
    assert len(fl.arrows) == len(built.frames)
    ds = 0
    for a, f in zip(fl.arrows, built.frames):
        assert (a.dst == ds) == (f["to"] == 0)
        assert fl.lanes[a.src if f["to"] == 0 else a.dst].name.startswith(
            f"member {f['member'] or f['to']}") or f["kind"] == "KeyPackage"
    assert [b.epoch for b in fl.bands] == [0, 1, 2, 3]
    svg = fl.svg()
    assert svg.count('<g class="arrow"') == len(built.frames)
    fl.window(5, 4)
    assert [a.row for a in fl.visible] == [5, 6, 7, 8]
    assert fl.svg().count('<g class="arrow"') == 4


# =============================================================================================
# views (ipywidgets, no browser)
# =============================================================================================

def test_epoch_stepper_view_live(live):
    from gbp_lab.widgets import EpochStepperView

    alice = live[0]
    v = EpochStepperView(alice)
    assert v.slider.max == 4 and "epoch 0" in v.title.value
    v.slider.value = 3
    assert v.model.index == 3 and "epoch 3" in v.title.value and ">dave<" in v.tree_html.value
    v.prev_button.click()
    assert v.slider.value == 2 and "epoch 2" in v.title.value
    v.next_button.click()
    v.next_button.click()
    assert v.slider.value == 4 and "Remove(" in v.commit_html.value
    secret = alice.history[4].epoch_secrets.exporter_secret.reveal().hex()
    assert secret not in v.secrets_html.value
    v.reveal_toggle.value = True
    assert secret in v.secrets_html.value
    v.model.reveal = False
    assert v.reveal_toggle.value is False and secret not in v.secrets_html.value


@pytest.mark.interop
def test_views_on_capture(built, cap):
    from gbp_lab.widgets import EpochStepperView, FlowLadderView, FrameInspectorView

    ev = EpochStepperView(cap)
    t0 = ev.traffic_html.value
    ev.slider.value = 2
    assert ev.traffic_html.value != t0 and "hi all" in ev.traffic_html.value
    fv = FrameInspectorView(cap)
    assert len(fv.frame_list.options) == len(built.frames)
    fv.filter_text.value = "GTP"
    assert len(fv.frame_list.options) == sum(1 for f in built.frames if f["st"] == 2)
    fv.query_text.value = "epoch =="
    assert "bad query" in fv.status.value
    fv.query_text.value = "epoch == 1"
    assert len(fv.frame_list.options) == 1
    fv.frame_list.value = fv.frame_list.options[0][1]
    assert fv.model.selected == fv.frame_list.options[0][1]
    body = next(n for n in fv.field_list.options if n.endswith("/body"))
    fv.field_list.value = body
    buf, s, e = fv.model.highlight
    assert fv.hex_html.value.count('class="hl" data-off=') == e - s
    lv = FlowLadderView(cap, max_arrows=3)
    lv.slider.value = 4
    assert lv.model.start == 4 and lv.svg_html.value.count('<g class="arrow"') == 3


@pytest.mark.interop
def test_capture_stepper_shows_decrypted_commit_proposals(built, cap):
    st = EpochStepper(cap)
    assert any(p.startswith("Add(") and "bob" in p for p in st.go(1).proposals)
    assert any(p.startswith("Add(") and "carol" in p for p in st.go(2).proposals)
    assert not any("proposals" in u for u in st.go(1).unknown)
    assert st.go(3).proposals[0].startswith("no proposals: an empty commit")
    assert any(p.startswith("UpdatePath") for p in st.go(3).proposals)


def test_demo_capture_widgets():
    """The embedded demo capture (gbp_lab.demo_capture): every epoch steps, every positioned
    field of every frame decodes, from its highlighted bytes, to the value in the tree."""
    import gbp_lab

    demo = getattr(gbp_lab, "demo_capture", None)
    if demo is None:
        pytest.skip("no demo capture in this tree yet")
    cap = demo()
    st = EpochStepper(cap)
    assert st.epochs == sorted(set(int(e) for e in cap.frames["epoch"].dropna()))
    counts = [len(st.go(i).traffic) for i in range(len(st))]
    assert sum(counts) == int(cap.frames["epoch"].notna().sum())
    from span_decode import decode_span

    from gbp_lab.core.gbp.registry import PayloadCodec
    from gbp_lab.widgets.field_tree import payload_class

    fi = FrameInspector(cap)
    n = 0
    for pos in range(len(cap.frames)):
        fi.select_position(pos)
        row = cap.frames.iloc[pos]
        codec = PayloadCodec[row["codec"]] if isinstance(row["codec"], str) else PayloadCodec.CBOR
        for name, path in fi.fields().items():
            node = fi.node(path)
            if node.start is None or node.children or not node.buffer:
                continue
            buf = fi.buffer(node.buffer)
            cls = payload_class(int(row["stream_type"])) if node.buffer == "plaintext" and \
                codec is not PayloadCodec.CBOR else None
            if cls is not None and name.split("/")[-1] in {f.key for f in cls.SCHEMA.fields}:
                # a Protobuf/FlatBuffers payload field: its bytes are the core message's value
                msg = cls.from_bytes(buf, codec)
                want = getattr(msg, cls.SCHEMA.fields[[f.key for f in cls.SCHEMA.fields].index(
                    name.split("/")[-1])].attr)
                assert decode_span(buf, node.start, node.end, codec, want) == want, name
                n += 1
                continue
            value = cbor2.loads(buf[node.start:node.end])
            if isinstance(node.raw, (bytes, int, str)) and not isinstance(node.raw, bool):
                if node.raw == value:
                    n += 1
                else:  # scapy shows an enum / flags value: compare with the raw wire map
                    assert cbor2.loads(buf)[name.split("/")[-1]] == value
    assert n > 10 * len(cap.frames)
    fl = FlowLadder(cap)
    assert len(fl.arrows) == len(cap.frames)


def test_svgs_are_well_formed_xml(live):
    import xml.etree.ElementTree as ET

    alice, _o, rec, _ = live
    st = EpochStepper(alice, trees=rec)
    ns = "{http://www.w3.org/2000/svg}"
    for i in range(len(st)):
        root = ET.fromstring(st.go(i).tree_svg)
        nodes = [g for g in root.iter(f"{ns}g") if "node" in g.get("class", "")]
        tree = rec[(alice.group_id, i)]
        assert len(nodes) == tree.n_nodes
        # leaves sit on one row, below every parent
        ys = {}
        for g in nodes:
            shape = g.find(f"{ns}rect") if g.get("class").startswith("node leaf") else g.find(f"{ns}circle")
            ys[int(g.get("data-node"))] = float(shape.get("y") or shape.get("cy"))
        leaf_y = {ys[k] for k in ys if k % 2 == 0}
        assert len(leaf_y) == 1
        assert all(ys[k] < min(leaf_y) for k in ys if k % 2 == 1)
    ET.fromstring(render.hexdump_html(bytes(range(50)), (3, 9)))
    ET.fromstring(render.protocol_tree_html([]))


@pytest.mark.interop
def test_ladder_svg_is_well_formed(cap):
    import xml.etree.ElementTree as ET

    root = ET.fromstring(FlowLadder(cap).svg())
    assert root.tag.endswith("svg")


@pytest.mark.interop
def test_inspector_view_caps_the_list(built, cap):
    from gbp_lab.widgets import FrameInspectorView

    v = FrameInspectorView(cap, max_list=5)
    assert len(v.frame_list.options) == 5 and "first 5 listed" in v.status.value
    assert f"{len(built.frames)} of {len(built.frames)}" in v.status.value
    v.filter_text.value = "welcome"
    assert len(v.frame_list.options) == 2 and "listed" not in v.status.value


@pytest.mark.interop
@pytest.mark.parametrize("use_dissectors", [True, False])
def test_protocol_tree_of_bad_plaintext_and_no_key(use_dissectors):
    import gbp_stack

    from gbp_lab.widgets import frame_protocol_tree

    wire = gbp_stack.encode_gbp_frame(1, bytes(16), 1, 0, 2, 101, 7, 1, b"\x00" * 20)
    # no key: just the frame layer, every field positioned
    layers = frame_protocol_tree(wire, None, KeyLog(), use_dissectors=use_dissectors)
    assert layers[0].name == "GBP Frame"
    ranged = [c for c in layers[0].children if c.start is not None]
    assert {c.name for c in ranged} >= {"v", "gid", "ep", "tid", "st", "sid", "fl", "seq", "psz", "pl"}
    # a "plaintext" that is not a GTP message: said so, no exception
    layers = frame_protocol_tree(wire, b"\xff\x00", KeyLog(), use_dissectors=use_dissectors)
    assert layers[-1].name.endswith("(does not decode)") and layers[-1].buffer == "plaintext"


def test_epoch_view_is_read_only(live):
    import dataclasses

    v = EpochStepper(live[0]).current
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.revealed = True
    with pytest.raises(TypeError):
        v.secrets[0]["value"] = "00"
    with pytest.raises(TypeError):
        v.members[0]["identity"] = "mallory"
    assert "<svg" in v._repr_html_() and "epoch 0" in v._repr_html_()


def test_inspector_shows_frame_errors():
    """secrets.pcapng (tests/captures): one frame with a corrupted tag, one without a key."""
    from gbp_lab.capture.model import read_capture

    cap = read_capture(pathlib.Path(__file__).parent / "captures" / "secrets.pcapng")
    fi = FrameInspector(cap)
    bad = [i for i, e in zip(cap.frames.index, cap.frames["error"]) if isinstance(e, str)]
    assert len(bad) == 2
    for label in bad:
        fi.select(label)
        html_ = fi.tree_html()
        assert "gbp-frame-error" in html_
        assert render.esc(cap.frames.loc[label, "error"]) in html_
        assert len(fi.tree) == 1  # no decrypted layer
    good = next(i for i in cap.frames.index if i not in bad)
    fi.select(good)
    assert "gbp-frame-error" not in fi.tree_html() and len(fi.tree) >= 2
