"""The scripted simulator (gbp_lab.sim.simulator / script / simulate_cmd / demo) and the shipped
demo capture.

What is checked, and against what:

* determinism — two runs of ``demo`` with one seed give the same decoded frames (timestamps
  aside), and with virtual timestamps byte-identical pcaps and key logs; another seed differs;
* the capture is read back by the capture reader with the written ``keys.log``: every GBP frame
  decrypts (the reader's own AEAD path, :func:`gbp_lab.core.gbp.aead.open_frame`), the texts and
  signals the script sent are in the decoded plaintexts, epochs advance as scripted, GAP frames
  carry SFrame payloads that open with keys derived from the key log alone;
* the reference (``gbp_stack``) GTP/GSP/GAP clients accept every decrypted plaintext;
* the shipped demo equals a regeneration, byte for byte, and is small;
* the script loader (YAML, Python, errors) and the CLI entry point.
"""
from __future__ import annotations

import os
import re
import textwrap
import time
from collections import Counter

import pytest

import gbp_lab
from gbp_lab.capture import read_capture
from gbp_lab.cli import main as cli_main
from gbp_lab.core.gap.payload import GapPayload
from gbp_lab.core.gbp.registry import PayloadCodec
from gbp_lab.core.gsp.signal import GspSignal, SignalType
from gbp_lab.core.gtp.message import GtpMessage
from gbp_lab.core.errors import DecodeError, UsageError
from gbp_lab.core.gbp.frame import decode_frame
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.sframe import SFrameSession
from gbp_lab.sim import demo as demo_mod
from gbp_lab.sim.script import (Create, Join, Script, ScriptError, Text,
                                builtin_scripts, load_script)
from gbp_lab.sim.simulator import EPOCH_BASE, DeterministicRng, Simulator, simulate

FRAME_KEYS = ["sport", "dport", "group_id", "epoch", "transition_id", "stream_type", "stream_id",
              "sender", "flags", "sequence_no", "payload_size", "codec", "decrypted", "protocol",
              "info", "error"]


def _tuples(cap):
    f = cap.frames[FRAME_KEYS].astype(object).where(cap.frames[FRAME_KEYS].notna(), None)
    return [tuple(r) for r in f.itertuples(index=False)]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo1")
    res = simulate("demo", out, seed=1)
    cap = read_capture(str(out / "capture.pcap"), keylog=str(out / "keys.log"))
    return res, cap, out


def _decoded(cap):
    """(stream_type, codec, plaintext, epoch, sender) of every decrypted frame."""
    out = []
    for (_, row), pt in zip(cap.frames.iterrows(), cap.plaintexts):
        if pt is not None:
            out.append((int(row.stream_type), PayloadCodec[row.codec], pt, int(row.epoch),
                        int(row.sender)))
    return out


# --- determinism ------------------------------------------------------------------------------
def test_same_seed_same_frames(demo_run, tmp_path):
    res, cap, out = demo_run
    res2 = simulate("demo", tmp_path, seed=1)  # wall-clock timestamps this time
    cap2 = read_capture(str(tmp_path / "capture.pcap"), keylog=str(tmp_path / "keys.log"))
    assert _tuples(cap) == _tuples(cap2)
    assert cap.plaintexts == cap2.plaintexts
    assert res.keylog == res2.keylog
    assert (out / "keys.log").read_bytes() == (tmp_path / "keys.log").read_bytes()


def test_virtual_timestamps_make_the_pcap_byte_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    simulate("demo", a, seed=7, timestamps="virtual")
    simulate("demo", b, seed=7, timestamps="virtual")
    assert (a / "capture.pcap").read_bytes() == (b / "capture.pcap").read_bytes()
    assert (a / "keys.log").read_bytes() == (b / "keys.log").read_bytes()


def test_other_seed_other_group(demo_run, tmp_path):
    res, cap, _ = demo_run
    res2 = simulate("demo", None, seed=2)
    assert res2.group_id != res.group_id
    assert res2.keylog != res.keylog


def test_rng_is_seeded_and_label_separated():
    a, b, c = DeterministicRng(1, "x"), DeterministicRng(1, "x"), DeterministicRng(1, "y")
    assert a(5) + a(40) == b(45)
    assert DeterministicRng(1, "x")(16) != c(16)
    assert DeterministicRng(2, "x")(16) != DeterministicRng(1, "x")(16)


# --- the capture reads back --------------------------------------------------------------------
def test_every_frame_decrypts(demo_run):
    res, cap, _ = demo_run
    assert len(cap.errors) == 0, cap.errors
    gbp = cap.frames[cap.frames.protocol != "MLS"]
    assert len(gbp) > 50
    assert gbp.decrypted.all()
    assert gbp.error.isna().all()
    assert not res.errors  # no member's node reported an unexpected error


def test_demo_is_small(demo_run):
    res, cap, out = demo_run
    assert len(cap.frames) < 200
    assert os.path.getsize(out / "capture.pcap") < 200_000
    assert set(res.members) == {"alice", "bob", "carol"}


def test_texts_and_signals_in_the_decoded_data(demo_run):
    res, cap, _ = demo_run
    texts, signals = [], []
    for st, codec, pt, _ep, sender in _decoded(cap):
        if st == 2:
            m = GtpMessage.from_bytes(pt, codec)
            assert m.sender_id == sender
            texts.append(m.content.decode())
        elif st == 3:
            signals.append(SignalType(GspSignal.from_bytes(pt, codec).signal_type).name)
    sent_texts = [d for _m, k, d in res.sent if k == "text"]
    assert sent_texts == ["hello bob", "hi alice", "hello everyone", "carol, see you", "just us now",
                          "bye"]  # the script's texts, in script order
    # each text reaches every other member: one client→relay and n-1 relay→client copies
    assert sorted(set(texts)) == sorted(sent_texts)
    assert Counter(texts)["hello everyone"] == 3  # carol → relay, relay → alice, relay → bob
    sent_signals = [d for _m, k, d in res.sent if k == "signal"]
    assert set(signals) == set(sent_signals) == {"JOIN", "STREAM_START", "MUTE", "CODEC_UPDATE",
                                                 "STREAM_STOP", "LEAVE"}
    codecs = {c for st, c, *_ in _decoded(cap) if st in (1, 2, 3)}
    assert codecs == {PayloadCodec.CBOR, PayloadCodec.PROTOBUF, PayloadCodec.FLATBUFFERS}


def test_epochs_advance_as_scripted(demo_run):
    res, cap, out = demo_run
    f = cap.frames[cap.frames.protocol != "MLS"]
    assert list(f.epoch.drop_duplicates()) == [0, 1, 2, 3]
    assert KeyLog.load(str(out / "keys.log")).epochs(res.group_id) == [0, 1, 2, 3]
    up = f[f.dport == 7878]  # what the members sent (one row per frame)
    execs = up[up["info"].str.startswith("EXECUTE_TRANSITION")]
    # control tid (in the message) vs frame tid (the last applied transition)
    assert [_ctid(i) for i in execs["info"]] == [1, 2, 3]
    assert list(execs.transition_id) == [0, 1, 2]
    assert list(execs.epoch) == [0, 1, 2]  # EXECUTE is sealed under the old epoch
    readies = up[up["info"].str.startswith("READY_FOR_TRANSITION")]
    assert [(_ctid(i), s) for i, s in zip(readies["info"], readies.sender)] == [(2, 2), (3, 2)]
    mls = cap.frames[(cap.frames.protocol == "MLS") & (cap.frames.dport == 7878)]
    assert [i.split()[0] for i in mls["info"]] == ["KeyPackage", "Welcome", "KeyPackage", "Welcome"]
    for name in ("alice", "bob"):
        m = res.members[name]
        assert m.node.epoch == m.mls.epoch == 3
    assert not res.members["carol"].in_group


def _ctid(info):
    return int(re.search(r"\btid=(\d+)", info).group(1))


def test_sframe_payloads_open_with_keylog_keys(demo_run):
    """GAP frames carry SFrame (RFC 9605) payloads: open them with keys derived from keys.log."""
    res, cap, out = demo_run
    keys = KeyLog.load(str(out / "keys.log"))
    sent_audio = [d for _m, k, d in res.sent if k == "audio"]
    opened, sessions = [], {}
    up = cap.frames.dport == 7878
    for (_, row), pt, first_hop in zip(cap.frames.iterrows(), cap.plaintexts, up):
        if pt is None or row.stream_type != 1 or not first_hop:
            continue
        g = GapPayload.from_bytes(pt, PayloadCodec[row.codec])
        assert g.key_phase == row.epoch
        suite = 1 if row.sender == 1 else 0  # the demo: alice uses AES-256-GCM, bob AES-128-GCM
        s = sessions.get((row.epoch, suite))
        if s is None:
            s = sessions[(row.epoch, suite)] = SFrameSession.from_keylog(keys, res.group_id,
                                                                          int(row.epoch), suite=suite)
        opened.append(bytes(s.decrypt(g.opus_frame).plaintext))
    assert opened == sent_audio and len(opened) == 10


# --- reference clients accept what we sent ------------------------------------------------------
@pytest.mark.interop
def test_reference_clients_accept_the_plaintexts(demo_run):
    g = pytest.importorskip("gbp_stack")
    res, cap, _ = demo_run
    n = Counter()
    for st, codec, pt, ep, sender in _decoded(cap):
        if st == 0:
            continue
        client = {1: g.GapClient, 2: g.GtpClient, 3: g.GspClient}[st].create()
        try:
            r = client.accept(pt, ep, g.PayloadCodec(int(codec)))
        finally:
            client.close()
        assert r.status == "new", (st, codec, r)
        n[st] += 1
    assert n[1] and n[2] and n[3]


# --- shipped demo -------------------------------------------------------------------------------
def test_shipped_demo_equals_regeneration(tmp_path):
    pcap, keys = demo_mod.regenerate_demo(tmp_path)
    hint = ("the shipped demo is stale (a core change altered the bytes?): regenerate it with "
            "`python -m gbp_lab.sim.demo`")
    assert open(keys, "rb").read() == demo_mod.DEMO_KEYS.read_bytes(), hint
    assert open(pcap, "rb").read() == demo_mod.DEMO_PCAP.read_bytes(), hint
    assert demo_mod.DEMO_PCAP.stat().st_size + demo_mod.DEMO_KEYS.stat().st_size < 200_000


def test_demo_capture_api():
    cap = gbp_lab.demo_capture()
    assert len(cap.errors) == 0
    gbp = cap.frames[cap.frames.protocol != "MLS"]
    assert gbp.decrypted.all() and len(gbp) > 50
    assert (cap.frames.dport.dropna() == 7878).any()


# --- scripts ------------------------------------------------------------------------------------
def test_builtin_scripts_load():
    assert {"demo", "classroom", "stress"} <= set(builtin_scripts())
    for name in ("demo", "classroom", "stress"):
        s = load_script(name)
        assert isinstance(s.steps[0], Create) and s.name == name
    demo = load_script("demo")
    assert len(demo.members) in (3, 4)


def test_yaml_text_and_file(tmp_path):
    text = textwrap.dedent("""\
        name: tiny
        steps:
          - create: {member: a}
          - join: {member: b, announce: false}
          - text: {member: b, text: hey, codec: fbs}
          - signal: {member: a, signal: mute, args: {target_member_id: b}}
          - audio: {member: a, frames: 2, sframe: false}
        """)
    s = load_script(text)
    assert s.name == "tiny" and s.members == ("a", "b")
    assert s.steps[2] == Text(member="b", text="hey", codec=PayloadCodec.FLATBUFFERS)
    assert s.steps[3].signal is SignalType.MUTE and s.steps[3].args == (("target_member_id", "b"),)
    p = tmp_path / "tiny.yaml"
    p.write_text(text)
    assert load_script(str(p)) == s
    res = Simulator(s, seed=3).run()
    assert not res.errors
    got = [r.detail for r in res.members["a"].received if r.kind == "text"]
    assert got == ["hey"]
    sig = [r.detail for r in res.members["b"].received if r.kind == "signal"]
    assert sig[0][0] == "MUTE" and sig[0][1].target_member_id == 2
    audio = [r.detail for r in res.members["b"].received if r.kind == "audio"]
    assert audio == [d for m, k, d in res.sent if k == "audio"]


def test_python_script(tmp_path):
    p = tmp_path / "s.py"
    p.write_text(textwrap.dedent("""\
        from gbp_lab.sim.script import Create, Join, Text
        def build(seed):
            return [Create(member="x"), Join(member="y"), Text(member="y", text=f"seed {seed}")]
        """))
    s = load_script(str(p), seed=5)
    assert isinstance(s, Script) and s.steps[2].text == "seed 5"
    q = tmp_path / "t.py"
    q.write_text("SCRIPT = {'name': 'py', 'steps': [{'create': {'member': 'x'}}]}\n")
    assert load_script(str(q)).name == "py"


_C = {"create": {"member": "a"}}


@pytest.mark.parametrize("doc, vid", [
    ({"steps": [{"join": {"member": "a"}}]}, "SIM-SCRIPT-ORDER"),
    ({"steps": [_C, {"dance": {}}]}, "SIM-SCRIPT-STEP"),
    ({"steps": [_C, {"text": {"member": "a", "codec": "xml"}}]}, "SIM-SCRIPT-CODEC"),
    ({"steps": [_C, {"text": {"member": "a", "colour": 1}}]}, "SIM-SCRIPT-ARGS"),
    ({"steps": [_C, {"signal": {"member": "a", "signal": "MUTE"}}]}, "SIM-SCRIPT-ARGS"),
    ({"steps": [_C, {"signal": {"member": "a", "signal": "WAVE"}}]}, "SIM-SCRIPT-SIGNAL"),
    ({"steps": [_C, {"audio": {"member": "a", "frames": -1}}]}, "SIM-SCRIPT-ARGS"),
    ({"steps": [{"create": {}}]}, "SIM-SCRIPT-ARGS"),
    ({"steps": [_C, {"text": {"member": "a", "text": 5}}]}, "SIM-SCRIPT-ARGS"),
    ({"steps": [_C, {"audio": {"member": "a", "suite": 2}}]}, "SIM-SCRIPT-ARGS"),
    ({"steps": [_C, {"join": {"member": "b", "impl": "java"}}]}, "SIM-SCRIPT-ARGS"),
    ({"steps": "create"}, "SIM-SCRIPT-FORMAT"),
    ({"steps": []}, "SIM-SCRIPT-ORDER"),
    ({"nosteps": []}, "SIM-SCRIPT-FORMAT"),
])
def test_bad_scripts(doc, vid):
    with pytest.raises(ScriptError) as ei:
        load_script(doc)
    assert ei.value.vid == vid


def test_missing_script_name():
    with pytest.raises(ScriptError) as ei:
        load_script("no-such-script")
    assert ei.value.vid == "SIM-SCRIPT-NOTFOUND"


@pytest.mark.parametrize("steps, vid", [
    ([Create(member="a"), Text(member="zed", text="x")], "SIM-SCRIPT-MEMBER"),
    ([Create(member="a"), Join(member="b"), Join(member="c"),
      {"disconnect": {"member": "c"}}, {"update": {}}], "SIM-SCRIPT-ORDER"),
    ([Create(member="a"), Join(member="b"), {"leave": {"member": "a"}}], "SIM-SCRIPT-ORDER"),
])
def test_impossible_runs_are_script_errors(steps, vid):
    with pytest.raises(ScriptError) as ei:
        Simulator({"steps": steps}, seed=1).run()
    assert ei.value.vid == vid


# --- CLI ----------------------------------------------------------------------------------------
def test_cli_simulate(tmp_path, capsys, demo_run):
    rc = cli_main(["simulate", "demo", "--out", str(tmp_path), "--seed", "1", "--quiet"])
    assert rc == 0
    assert "demo:" in capsys.readouterr().out
    cap = read_capture(str(tmp_path / "capture.pcap"), keylog=str(tmp_path / "keys.log"))
    assert _tuples(cap) == _tuples(demo_run[1])


def test_cli_bad_script(tmp_path, capsys):
    assert cli_main(["simulate", "nope", "--out", str(tmp_path)]) == 2
    assert "SIM-SCRIPT" in capsys.readouterr().err


# --- classroom: every feature --------------------------------------------------------------------
def test_classroom_every_feature(tmp_path):
    res = simulate("classroom", tmp_path, seed=11, canonical_ports=False)
    assert not res.errors
    cap = read_capture(str(tmp_path / "capture.pcap"), keylog=str(tmp_path / "keys.log"))
    assert len(cap.errors) == 0
    f = cap.frames[cap.frames.protocol != "MLS"]
    assert f.decrypted.all()
    assert sorted(f.epoch.unique()) == list(range(12))  # 7 joins, update, leave, remove, remove
    info = list(f["info"])
    # failover: ana (member 2) claims the coordinator role and commits the teacher's removal
    claims = f[f["info"].str.startswith("CAPABILITIES_ADVERTISE")]
    assert set(claims.sender) == {1, 2}
    last_prepare = f[f["info"].str.startswith("PREPARE_TRANSITION")].iloc[-1]
    assert last_prepare.sender == 2 and _ctid(last_prepare["info"]) == 11
    # reconnect + resync of eli (member 6)
    assert any(i.startswith("GROUP_STATE_DIGEST_REQUEST") and "from=6" in i for i in info)
    assert any(i.startswith("GROUP_STATE_DIGEST_RESPONSE") and "from=1" in i for i in info)
    assert res.members["eli"].node.state.name == "ACTIVE"
    # eli missed femi's question while away; everyone else got it
    q = "eli, are you there?"
    assert q not in [r.detail for r in res.members["eli"].received if r.kind == "text"]
    assert q in [r.detail for r in res.members["ana"].received if r.kind == "text"]
    # COORDINATOR_GONE was reported (and expected) by the surviving members
    assert any(e.code == 0x0013 for m in res.members.values() for e in m.expected_errors)
    signals = {SignalType(GspSignal.from_bytes(pt, PayloadCodec[c]).signal_type).name
               for (_, row), pt in zip(cap.frames.iterrows(), cap.plaintexts)
               if pt is not None and row.stream_type == 3 for c in [row.codec]}
    assert signals == {s.name for s in SignalType}
    survivors = [m for m in res.members.values() if m.in_group]
    assert sorted(m.name for m in survivors) == ["ana", "ben", "chen", "dara", "eli"]
    assert len({m.mls.epoch for m in survivors}) == 1


# --- seeded MLS contexts are deterministic, reuse guards included -------------------------------
def test_seeded_mls_commits_are_byte_identical():
    from gbp_lab.core import MlsContext
    from gbp_lab.core.mls.framing import MLSMessage
    from gbp_lab.sim.simulator import DeterministicRng

    def run():
        clock = lambda: EPOCH_BASE  # noqa: E731
        a = MlsContext.create("alice", rng=DeterministicRng(7, "alice"), clock=clock)
        b = MlsContext.create("bob", rng=DeterministicRng(7, "bob"), clock=clock)
        commit, welcome = a.invite_full(b.export_key_package())
        a.finalize_commit()
        b.accept_welcome(welcome)
        c = MlsContext.create("carol", rng=DeterministicRng(7, "carol"), clock=clock)
        commit2, _ = a.invite_full(c.export_key_package())
        return commit, welcome, commit2

    first, second = run(), run()
    assert first == second
    # the second commit is a PrivateMessage: its sender data (with the reuse guard) is identical
    assert MLSMessage.from_bytes(first[2]).wire_format == 2


# --- mixed capture: a reference (gbp_stack) member ----------------------------------------------
MIXED = {"name": "mixed", "steps": [
    {"create": {"member": "alice"}},
    {"join": {"member": "rusty", "impl": "reference"}},
    {"join": {"member": "bob"}},
    {"text": {"member": "rusty", "text": "hi from the reference", "codec": "protobuf"}},
    {"text": {"member": "bob", "text": "hi rusty", "codec": "flatbuffers"}},
    {"audio": {"member": "rusty", "frames": 3, "sframe": True}},
    {"audio": {"member": "bob", "frames": 2, "sframe": True, "suite": 1}},
    {"signal": {"member": "rusty", "signal": "MUTE", "args": {"target_member_id": "bob"}}},
    {"update": {}},
    {"text": {"member": "rusty", "text": "after update", "codec": "cbor"}},
    {"leave": {"member": "rusty"}},
    {"text": {"member": "bob", "text": "bye"}},
]}


@pytest.mark.interop
def test_mixed_capture_with_a_reference_member(tmp_path):
    pytest.importorskip("gbp_stack")
    res = simulate(MIXED, tmp_path, seed=4)
    assert not res.errors
    rusty, alice, bob = res.members["rusty"], res.members["alice"], res.members["bob"]
    assert rusty.impl == "reference"
    # the reference member joined through our Welcome, followed our commits (add bob, update,
    # its own removal) and its secrets — exported by the wheel — equal ours for every epoch
    gid = res.group_id
    assert rusty.keylog.epochs(gid) == [1, 2, 3]
    for ep in (1, 2, 3):
        assert rusty.keylog.exporter_secret(gid, ep) == alice.keylog.exporter_secret(gid, ep)
    # traffic both ways, SFrame both ways (ours AES-256-GCM to the wheel, the wheel's to us)
    texts = lambda m: [r.detail for r in m.received if r.kind == "text"]  # noqa: E731
    assert texts(bob) == ["hi from the reference", "after update"]
    assert texts(rusty) == ["hi rusty"]
    audio = lambda m, s: [r.detail for r in m.received if r.kind == "audio" and r.sender == s]  # noqa: E731
    sent = [d for n, k, d in res.sent if k == "audio"]
    assert audio(bob, 2) == sent[:3] and audio(rusty, 3) == sent[3:]
    cap = read_capture(str(tmp_path / "capture.pcap"), keylog=str(tmp_path / "keys.log"))
    assert len(cap.errors) == 0
    f = cap.frames[cap.frames.protocol != "MLS"]
    assert f.decrypted.all() and 2 in set(f.sender)
    assert sorted(f.epoch.unique()) == [0, 1, 2, 3, 4]


def test_reference_member_cannot_create():
    with pytest.raises(ScriptError) as ei:
        Simulator({"steps": [{"create": {"member": "a", "impl": "reference"}}]}).run()
    assert ei.value.vid == "SIM-SCRIPT-IMPL"


# --- the script parser never lets anything but ScriptError escape ---------------------------------
from hypothesis import given, settings, strategies as st  # noqa: E402

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), st.text(max_size=8),
                     st.sampled_from(["a", "MUTE", "cbor", "xml", "reference", "create", "text"]))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["member", "text", "codec", "signal", "args", "frames", "suite",
                                     "sframe", "target_member_id", "ms", "impl", "id", "x"]),
                    inner, max_size=4)), max_leaves=12)
_step_kinds = st.sampled_from(["create", "join", "leave", "remove", "update", "text", "audio",
                               "signal", "fail_coordinator", "disconnect", "reconnect", "advance",
                               "bogus"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.dictionaries(_step_kinds, _values, min_size=1, max_size=1), _values),
                max_size=5), _values)
def test_parse_script_fuzz(steps, name):
    try:
        s = load_script({"name": name, "steps": steps})
    except ScriptError as exc:
        assert exc.vid.startswith("SIM-SCRIPT")
    else:
        assert isinstance(s.steps[0], Create)


# --- live runs: keys.log appended per epoch (0600), --pace --------------------------------------
def test_keys_log_is_appended_as_each_epoch_exists(tmp_path):
    """The key log on disk, read at every socket event of the run (the tap's clock), grows epoch
    by epoch, and holds each epoch's secret before the first frame of that epoch crossed a socket."""
    keys = tmp_path / "keys.log"
    seen = []

    def wall_clock():
        text = keys.read_text() if keys.exists() else ""
        kl = KeyLog.parse(text)
        seen.append(max((max(kl.epochs(g), default=-1) for g in kl.groups()), default=-1))
        return time.time()

    res = Simulator("demo", 1, wall_clock=wall_clock, keylog_path=keys).run()
    assert (keys.stat().st_mode & 0o777) == 0o600
    assert seen == sorted(seen) and len(set(seen)) >= 4  # grew during the run, epoch by epoch
    res.write(tmp_path)  # completes the live log, never rewrites it
    assert KeyLog.load(keys) == res.keylog
    cap = read_capture(str(tmp_path / "capture.pcap"), keylog=str(keys))
    # the key log held each frame's epoch when the tap saw that frame's socket event
    gbp = cap.frames[cap.frames["protocol"] != "MLS"]
    assert gbp["decrypted"].all()
    checked = set()
    for i, ev in enumerate(res.tap_events):
        try:
            epoch = decode_frame(ev.data[4:]).epoch  # one record per socket write (lock-step)
        except DecodeError:
            continue  # an MLS blob, or no data
        assert seen[i] >= epoch, f"tap event {i}: frame of epoch {epoch} before its key"
        checked.add(epoch)
    assert checked == set(res.keylog.epochs(res.group_id))


def test_written_keys_log_is_owner_only(tmp_path):
    keys = tmp_path / "keys.log"
    keys.write_text("old")
    keys.chmod(0o644)
    res = simulate("demo", seed=1)
    res.write(tmp_path)
    assert (keys.stat().st_mode & 0o777) == 0o600 and "old" not in keys.read_text()


def test_pace_spaces_the_steps(tmp_path):
    sim = Simulator("demo", 1, pace=0.02)
    t0 = time.monotonic()
    sim.run()
    assert time.monotonic() - t0 >= 0.02 * (len(sim.script.steps) - 1)
    with pytest.raises(UsageError):
        Simulator("demo", 1, pace=-1)
