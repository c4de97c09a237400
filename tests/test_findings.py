"""Findings of a capture (gbp_lab.analysis.findings) proven on real bytes.

The nonce-reuse proof: two live reference members (gbp_stack 1.9.1) each send text frames through
the lab relay (``gbp_lab.sim.relay``) in the same epoch — both reach seq 1 and 2 on the text
stream, so the reference's scheme (one key per epoch and stream type, nonce = seq) seals different
plaintexts under the same key and nonce. The tap records every socket, so each frame appears once
on the sender's connection and once more per receiver (the relay's forwarded copies). Exactly one
``nonce_reuse`` row per (epoch, stream type, seq) must appear, its XOR must equal the XOR of the
two plaintexts the reference receivers delivered, and forwarded copies must count for nothing.
"""
from __future__ import annotations

import itertools
import pathlib
import sys
from collections import Counter

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # pytest runs with importlib mode
import refpeer  # noqa: E402

import gbp_stack as g  # noqa: E402

from gbp_lab.analysis.findings import FINDING_COLUMNS, KINDS, SEVERITY, xor_bytes  # noqa: E402
from gbp_lab.capture.model import read_capture  # noqa: E402
from gbp_lab.core.gbp.aead import seal_frame  # noqa: E402
from gbp_lab.core.gbp.framing import encode_record  # noqa: E402
from gbp_lab.sim import RelayClient, RelayThread, Tap  # noqa: E402

CAPTURES = pathlib.Path(__file__).parent / "captures"
WAIT = 20.0
BRIEF = ["kind", "epoch", "stream_type", "sequence_no", "frames", "detail"]


def clock(start=1_700_000_000.0, step=0.001):
    c = itertools.count()
    return lambda: start + step * next(c)


def relay_session(tmp_path, n_each=2, observer=True):
    """alice and bob (live reference group) each send ``n_each`` texts via the relay; an
    observer client receives everything. Returns (capture path, port, keylog text, sent) where
    sent[(member, seq)] = (wire, plaintext the reference receiver delivered)."""
    tap = Tap(clock=clock())
    sent = {}
    with refpeer.two_member_group() as grp:
        gtp = g.GtpClient.create()
        try:
            wires = {"alice": [], "bob": []}
            for i in range(n_each):
                for who, to in (("alice", "bob"), ("bob", "alice")):
                    w = gtp.send(grp.nodes[who], grp.mls[who], 0, message_id=10 * i + len(who),
                                 text=f"{who} says {i} " + "x" * (5 * i + len(who))).wire
                    evs = refpeer.deliver(grp, to, w)
                    pls = refpeer.payloads(evs)
                    assert len(pls) == 1, evs
                    sent[(grp.member_ids[who], i + 1)] = (w, pls[0].plaintext)
                    wires[who].append(w)
        finally:
            gtp.close()
        keylog = "\n".join(grp.keylog("alice").lines()) + "\n"
    with RelayThread(port=0, idle_timeout=None, tap=tap) as relay:
        clients = [RelayClient(port=relay.port) for _ in range(3 if observer else 2)]
        relay.wait_for(lambda e: e.kind == "join", WAIT, count=len(clients))
        a, b = clients[0], clients[1]
        for wa, wb in zip(wires["alice"], wires["bob"]):
            a.send(wa)
            b.send(wb)
        assert len(a.recv_many(n_each, WAIT)) == n_each
        assert len(b.recv_many(n_each, WAIT)) == n_each
        if observer:
            assert len(clients[2].recv_many(2 * n_each, WAIT)) == 2 * n_each
        for c in clients:
            c.close()
        relay.wait_for(lambda e: e.kind == "leave", WAIT, count=len(clients))
        port = relay.port
    path = tmp_path / "relay.pcap"
    tap.write_pcap(path)
    return path, port, keylog, sent


@pytest.mark.interop
def test_nonce_reuse_one_row_per_seq_with_xor_and_forwarded_copies_ignored(tmp_path):
    path, port, keylog, sent = relay_session(tmp_path)
    for keys in (keylog, None):  # with plaintexts, and from ciphertexts alone
        cap = read_capture(path, keylog=keys, ports=(port,))
        f = cap.frames
        assert len(f) == 4 * 3  # every frame: on its sender's connection + 2 forwarded copies
        assert f["decrypted"].all() == (keys is not None)
        fi = cap.findings
        assert list(fi.columns[:6]) == BRIEF and list(fi.columns) == FINDING_COLUMNS
        nr = fi[fi["kind"] == "nonce_reuse"]
        assert sorted(zip(nr["epoch"], nr["stream_type"], nr["sequence_no"])) == [(1, 2, 1), (1, 2, 2)]
        for r in nr.itertuples(index=False):
            pa = sent[(1, r.sequence_no)][1]
            pb = sent[(2, r.sequence_no)][1]
            assert pa != pb and r.xor == xor_bytes(pa, pb) and r.xor.hex() in r.detail
            assert list(r.senders) == [1, 2]
            # every copy of both frames is listed, and only those
            wires = {sent[(1, r.sequence_no)][0], sent[(2, r.sequence_no)][0]}
            assert len(r.frames) == 6 and "sealed 2 distinct frames" in r.detail
            assert set(f.loc[list(r.frames), "sender"]) == {1, 2}
            assert r.severity == SEVERITY["nonce_reuse"] == "high"
            assert all(bytes(cap.payloads[i]) in b"".join(wires) for i in r.frames)
        # forwarded copies are neither replays nor window violations nor anything else
        assert set(fi["kind"]) == {"nonce_reuse"}, fi[["kind", "detail"]]
        # the notebook view highlights them (high severity) and the summary counts them
        assert "#f8d7da" in cap._repr_html_() and "nonce_reuse 2" in cap.summary()


@pytest.mark.interop
def test_one_sender_with_forwarded_copies_is_not_a_reuse(tmp_path):
    """Only alice's frames (bob silent): relay copies on several connections, no finding."""
    tap = Tap(clock=clock())
    with refpeer.two_member_group() as grp:
        gtp = g.GtpClient.create()
        wires = [gtp.send(grp.nodes["alice"], grp.mls["alice"], 0, message_id=i, text=f"m{i}").wire
                 for i in range(3)]
        gtp.close()
        keys = grp.keylog("alice")
    with RelayThread(port=0, idle_timeout=None, tap=tap) as relay:
        cs = [RelayClient(port=relay.port) for _ in range(3)]
        relay.wait_for(lambda e: e.kind == "join", WAIT, count=3)
        for w in wires:
            cs[0].send(w)
        cs[1].recv_many(3, WAIT), cs[2].recv_many(3, WAIT)
        for c in cs:
            c.close()
        relay.wait_for(lambda e: e.kind == "leave", WAIT, count=3)
        port = relay.port
    tap.write_pcap(tmp_path / "one.pcap")
    cap = read_capture(tmp_path / "one.pcap", keylog=keys, ports=(port,))
    assert len(cap.frames) == 9 and cap.frames["decrypted"].all()
    assert len(cap.findings) == 0
    assert (cap.messages["status"] == "new").all() and len(cap.messages) == 9


def by_scopes(cap, buckets=2):
    """The findings of ``cap`` computed apart, as gbp_lab.capture.many does on a cluster: each
    frame scope on ``buckets`` subsets of the frames (every frame of a key in one subset, keys
    dealt round-robin), frames numbered as in the whole; the group and errors scopes whole;
    put back in order by sort_findings."""
    import pandas as pd

    from gbp_lab.analysis.findings import find, find_in, sort_findings

    f = cap.frames
    pieces = [find(cap, ("group", "errors"))]
    for scope, cols in (("nonce", ["group_id", "epoch", "stream_type", "sequence_no"]),
                        ("direction", ["flow_id", "src", "sport", "group_id"])):
        deal: dict = {}
        keys = [deal.setdefault(k, len(deal) % buckets)
                for k in zip(*[f[c].astype(object).tolist() for c in cols])]
        for b in range(buckets):
            rows = [i for i, k in enumerate(keys) if k == b]
            pieces.append(find_in(f.iloc[rows].reset_index(drop=True), cap.errors.iloc[:0],
                                  [cap.plaintexts[i] for i in rows],
                                  [cap.payloads[i] for i in rows], scopes=(scope,),
                                  numbers=rows))
    out = pd.concat([p.drop(columns="rel_time", errors="ignore") for p in pieces],
                    ignore_index=True)
    return sort_findings(out)


def test_scopes_apart_are_the_whole_and_bad_scopes_are_typed():
    from gbp_lab.analysis.findings import find_in
    from gbp_lab.core.errors import UsageError
    from gbp_lab.sim.demo import demo_paths

    pcap, keys = demo_paths()
    cap = read_capture(pcap, keylog=pathlib.Path(keys).read_text(), progress=False)
    for b in (1, 3):
        pd_testing_equal(by_scopes(cap, b), cap.findings.drop(columns="rel_time"))
    with pytest.raises(UsageError) as e:
        find_in(cap.frames, cap.errors, [], [], scopes=("nonce", "everything"))
    assert e.value.vid == "CAP-FIND-SCOPE" and "everything" in str(e.value)


def pd_testing_equal(got, want):
    import pandas as pd

    assert len(want)
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True))


def _tap_capture(path, records_by_conn):
    """A deterministic capture: conn i = client → 7878 carrying ``records_by_conn[i]``."""
    tap = Tap(clock=clock())
    for i, recs in enumerate(records_by_conn):
        tap.open(i, (f"10.0.0.{i + 2}", 40000 + i), ("10.0.0.1", 7878))
    for i, recs in enumerate(records_by_conn):
        for r in recs:
            tap.data(i, True, encode_record(r))
    for i in range(len(records_by_conn)):
        tap.close(i, by_client=True)
    tap.write_pcap(path)
    return path


@pytest.mark.interop
def test_replays_window_modified_and_epoch_regression(tmp_path):
    with refpeer.two_member_group() as grp:
        gtp = g.GtpClient.create()
        w1 = gtp.send(grp.nodes["alice"], grp.mls["alice"], 0, message_id=1, text="one").wire
        w2 = gtp.send(grp.nodes["alice"], grp.mls["alice"], 0, message_id=2, text="two").wire
        gtp.close()
        keys = grp.keylog("alice")
        gid = grp.group_id
    secret = keys.exporter_secret(gid, 1)
    from gbp_lab.core.gbp.frame import decode_frame
    from gbp_lab.core.gtp.message import GtpMessage

    f1 = decode_frame(w1)
    pt_forged = GtpMessage.plain(1, 99, "forged, same seq").to_bytes()
    forged = seal_frame(secret, gid, f1.epoch, f1.transition_id, 2, f1.stream_id, f1.flags, 1,
                        pt_forged).to_cbor()
    # an old-epoch frame after a newer one: same stream, epoch 2 frame then epoch 1 frame
    newer = seal_frame(secret, gid, 2, 0, 2, f1.stream_id, f1.flags, 3,
                       GtpMessage.plain(1, 3, "new epoch").to_bytes()).to_cbor()
    path = _tap_capture(tmp_path / "r.pcap", [[w1, w2, w1, forged], [newer, w2]])
    keys.add("MLS_EXPORTER_SECRET", gid, 2, secret)  # lab key for the crafted epoch-2 frame
    cap = read_capture(path, keylog=keys)
    fi = cap.findings
    kinds = Counter(fi["kind"])
    assert kinds["replay"] == 1 and kinds["replay_modified"] == 1 and kinds["epoch_regression"] == 1
    # w1 again and the forged seq 1 (both <= 2 on that direction); w2 on the other connection is
    # in a window of its own (other epoch), flagged as the regression instead
    ow = fi[fi["kind"] == "outside_window"]
    assert [list(x) for x in ow["frames"]] == [[2], [3]]
    rep = fi[fi["kind"] == "replay"].iloc[0]
    assert list(rep["frames"]) == [0, 2] and rep["sequence_no"] == 1
    mod = fi[fi["kind"] == "replay_modified"].iloc[0]
    assert list(mod["frames"]) == [0, 3]
    assert mod["xor"] == xor_bytes(cap.plaintexts[0], pt_forged)
    reg = fi[fi["kind"] == "epoch_regression"].iloc[0]
    assert reg["epoch"] == 1 and list(reg["frames"]) == [5] and "after epoch 2" in reg["detail"]
    # the receiver's GTP verdict: the replayed message is a duplicate on that receiver
    st = cap.messages.set_index("frame")["status"]
    assert st[0] == "new" and st[2] == "duplicate" and st[1] == "new"
    assert set(fi["kind"]) <= set(KINDS)
    # each scope on its own subset of the frames, numbered as in the whole: the same rows,
    # details included ("frame 2 repeats frame 0 …")
    assert "frame 2 repeats frame 0" in rep["detail"]
    for b in (2, 3):
        pd_testing_equal(by_scopes(cap, b), fi.drop(columns="rel_time"))


@pytest.mark.interop
def test_defects_become_findings_with_reasons():
    _ = refpeer  # the capture's frames were encoded by gbp_stack (tests/captures/_common.py)
    cap = read_capture(CAPTURES / "defects.pcap")
    fi = cap.findings
    by_vid = {d.split("]")[0][1:]: k for k, d in zip(fi["kind"], fi["detail"]) if d.startswith("[")}
    assert by_vid["GBP-RECORD-OVERSIZE"] == "malformed" and by_vid["REC-UNKNOWN"] == "malformed"
    assert by_vid["TCP-GAP"] == "capture_defect" and by_vid["REC-TRUNCATED-END"] == "malformed"
    # every error row is referenced by exactly one finding
    refs = sorted(i for e in fi["errors"] for i in e)
    assert refs == list(range(len(cap.errors)))
    trunc = read_capture(CAPTURES / "truncated.pcap").findings
    assert "CAP-TRUNCATED-RECORD" in " ".join(trunc["detail"])
    sec = read_capture(CAPTURES / "secrets.pcapng")
    df = sec.findings[sec.findings["kind"] == "decrypt_failure"]
    bad = sec.frames.index[sec.frames["error"].fillna("").str.contains("GBP-AEAD-TAG")]
    assert list(df["frames"].iloc[0]) == list(bad) and len(df) == 1
    assert list(sec.errors["frame"]) == list(bad)  # the errors row links to its frame
    # a missing key is not a decrypt failure
    assert sec.frames["error"].fillna("").str.contains("NOKEY").sum() == 1


def test_find_leaves_the_garbage_collector_as_it_found_it():
    import gc

    from gbp_lab.analysis.findings import find_in

    cap = read_capture(CAPTURES / "defects.pcap")
    was = gc.isenabled()
    try:
        for state in (True, False):
            (gc.enable if state else gc.disable)()
            assert len(find_in(cap.frames, cap.errors, cap.plaintexts, cap.payloads)) > 0
            assert gc.isenabled() is state
            with pytest.raises(KeyError):  # a table without the frames columns
                find_in(cap.frames.drop(columns=["epoch"]), cap.errors, [], [])
            assert gc.isenabled() is state
    finally:
        (gc.enable if was else gc.disable)()


def test_bulk_checks_on_a_doubled_and_regressed_frames_table():
    """The per-frame checks run in bulk (key codes, group operations): on the demo capture's
    frames with every GBP frame sent twice in a row, each copy is one ``replay`` of the frame
    before it and ``outside_window`` (its seq is the highest already seen), nothing is
    ``replay_modified``; then the first epoch again at the end is one ``epoch_regression`` run
    per direction, its frames the run."""
    import gbp_lab
    from gbp_lab.analysis.findings import find_in

    cap = gbp_lab.demo_capture()
    f = cap.frames
    gbp = f.index[f["protocol"] != "MLS"].tolist()
    rows = [i for i in gbp for _ in range(2)]
    g2 = f.iloc[rows].reset_index(drop=True)
    pls = [cap.payloads[i] for i in rows]
    pts = [cap.plaintexts[i] for i in rows]
    fi = find_in(g2, cap.errors.iloc[:0], pts, pls)
    rep = fi[fi["kind"] == "replay"]
    assert sorted(map(list, rep["frames"])) == [[2 * k, 2 * k + 1] for k in range(len(gbp))]
    ow = fi[fi["kind"] == "outside_window"]
    assert sorted(x for fr in ow["frames"] for x in fr) == [2 * k + 1 for k in range(len(gbp))]
    assert not (fi["kind"] == "replay_modified").any()
    # the first epoch's frames of one direction again after the last epoch: one run, one row
    e0 = int(f.loc[gbp, "epoch"].min())
    d = f.loc[gbp[-1], ["flow_id", "src", "sport", "group_id"]]
    same_dir = f.index[(f["protocol"] != "MLS") & (f["flow_id"] == d["flow_id"])
                       & (f["src"] == d["src"]) & (f["sport"] == d["sport"])].tolist()
    tail = [i for i in same_dir if f.at[i, "epoch"] == e0][:3]
    assert f.loc[same_dir, "epoch"].max() > e0 and len(tail) >= 2
    g3 = f.iloc[gbp + tail].reset_index(drop=True)
    fi3 = find_in(g3, cap.errors.iloc[:0], [cap.plaintexts[i] for i in gbp + tail],
                  [cap.payloads[i] for i in gbp + tail])
    reg = fi3[fi3["kind"] == "epoch_regression"]
    assert len(reg) == 1
    assert list(reg["frames"].iloc[0]) == list(range(len(gbp), len(gbp) + len(tail)))
    assert reg["epoch"].iloc[0] == e0
