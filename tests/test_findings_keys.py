"""The key-misuse findings on reference traffic: ``sframe_nonce_reuse`` (gbp_stack 1.9.1 restarts
the SFrame CTR when an encryptor is re-created) and ``stale_epoch_key`` (a removed member keeps
sealing with the epoch it was removed from). Every frame is made by the reference wheel."""
from __future__ import annotations

import itertools
import pathlib
import sys

import pandas as pd
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # pytest runs with importlib mode
import refpeer  # noqa: E402
from test_gtp_accept_many import assert_messages_row_by_row  # noqa: E402

import gbp_stack as g  # noqa: E402
from gbp_stack import ControlOpcode  # noqa: E402

from gbp_lab.analysis.findings import xor_bytes  # noqa: E402
from gbp_lab.capture.model import read_capture  # noqa: E402
from gbp_lab.core.gbp.framing import encode_record  # noqa: E402
from gbp_lab.core.keylog import KeyLog  # noqa: E402
from gbp_lab.sim import Tap  # noqa: E402

pytestmark = pytest.mark.interop
RELAY = ("10.0.0.1", 7878)


def capture_of(path, conversation):
    """conversation: (connection, to_relay, wire); connection k is 10.0.1.k:4000k → the relay."""
    c = itertools.count()
    tap = Tap(clock=lambda: 1_700_000_000.0 + 0.001 * next(c))
    conns = sorted({k for k, _, _ in conversation})
    for k in conns:
        tap.open(k, (f"10.0.1.{k + 1}", 40000 + k), RELAY)
    for k, up, w in conversation:
        tap.data(k, up, encode_record(w))
    for k in conns:
        tap.close(k, by_client=True)
    tap.write_pcap(path)
    return path


OPUS_A = [b"\xfc" + bytes(range(i, i + 40)) for i in range(3)]
OPUS_B = [b"\xfc" + bytes(range(200, 240)), b"\xfc" + bytes(41)]


def test_recreated_encryptor_is_sframe_nonce_reuse(tmp_path):
    with refpeer.two_member_group() as grp:
        bob = grp.mls["bob"]
        with g.SFrameSession.create(bob) as session:
            first = session.create_encryptor(bob, 1)
            sealed = [first.encrypt(x) for x in OPUS_A]
            first.close()
            again = session.create_encryptor(bob, 1)  # 1.9.1: CTR starts at 0 again
            sealed += [again.encrypt(x) for x in OPUS_B]
            again.close()
        wires = refpeer.gap_wires(grp, sealed)
        keys, epoch = grp.keylog("alice"), grp.epoch
    conv = [(0, True, w) for w in wires] + [(1, False, w) for w in wires]  # relay → alice
    cap = read_capture(capture_of(tmp_path / "nr.pcap", conv), keylog=keys)
    assert list(cap.audio["ctr"].iloc[:5]) == [0, 1, 2, 0, 1]
    fi = cap.findings[cap.findings["kind"] == "sframe_nonce_reuse"]
    assert list(fi["ctr"]) == [0, 1] and (fi["severity"] == "high").all()
    assert list(fi["kid"]) == [(1 << 16) | epoch] * 2 and list(fi["epoch"]) == [epoch] * 2
    # frames: both payloads, as sent and as forwarded
    assert [sorted(f) for f in fi["frames"]] == [[0, 3, 5, 8], [1, 4, 6, 9]]
    assert list(fi["xor"]) == [xor_bytes(OPUS_A[0], OPUS_B[0]), xor_bytes(OPUS_A[1], OPUS_B[1])]
    assert set(cap.findings["kind"]) >= {"sframe_nonce_reuse"}


def test_ordinary_audio_with_relay_copies_is_no_sframe_nonce_reuse(tmp_path):
    with refpeer.two_member_group() as grp:
        bob = grp.mls["bob"]
        with g.SFrameSession.create(bob) as session:
            enc = session.create_encryptor(bob, 1)
            sealed = [enc.encrypt(x) for x in OPUS_A + OPUS_B]
            enc.close()
        wires = refpeer.gap_wires(grp, sealed)
        keys = grp.keylog("alice")
    conv = [(0, True, w) for w in wires] + [(1, False, w) for w in wires]
    cap = read_capture(capture_of(tmp_path / "ok.pcap", conv), keylog=keys)
    assert cap.audio["sframe_decrypted"].all() and len(cap.audio) == 10
    assert not (cap.findings["kind"].isin(["sframe_nonce_reuse", "decrypt_failure"])).any()


def stale_flow():
    """alice removes bob (leaf 1); carol readies, alice executes. bob's node follows EXECUTE but
    his MLS state never leaves the old epoch: his next texts are labelled with the new epoch and
    sealed with the old epoch's key. The reference receivers drop them. Returns the wires
    ``(prepare, ready, execute, [stale, stale], fresh)``, the key log and the old epoch."""
    fl = refpeer.transition_flow()
    grp = fl.group
    try:
        alice, bob, carol = grp.mls["alice"], grp.mls["bob"], grp.mls["carol"]
        na, nb, nc = grp.nodes["alice"], grp.nodes["bob"], grp.nodes["carol"]
        old = alice.epoch
        keys = KeyLog()
        keys.update(grp.keylog("carol"))  # the old epoch, secret-tree root still in the state
        commit = alice.remove_member(1)
        tid = na.last_transition_id + 1
        prep = na.send_control(alice, 3, ControlOpcode.PREPARE_TRANSITION, tid, 1, commit).wire
        nb.on_wire(bob, prep)
        nc.on_wire(carol, prep)
        assert carol.process_message(commit) == "commit"
        ready = nc.send_control(carol, 1, ControlOpcode.READY_FOR_TRANSITION, tid, 2).wire
        na.on_wire(alice, ready)
        execute = na.send_control(alice, 3, ControlOpcode.EXECUTE_TRANSITION, tid, 3).wire
        nb.on_wire(bob, execute)
        nc.on_wire(carol, execute)
        na.apply_transition(tid)
        alice.finalize_commit()
        carol.finalize_commit()
        if nb.epoch != old + 1:  # bob's node follows the group's epoch label
            nb.set_epoch_for_testing(old + 1)
        assert bob.epoch == old and alice.epoch == carol.epoch == old + 1
        keys.update(grp.keylog("alice"))
        gtp = g.GtpClient.create()
        try:
            stale = [gtp.send(nb, bob, 3, message_id=50 + k, text=f"still here {k}").wire
                     for k in range(2)]
            fresh = gtp.send(na, alice, 3, message_id=1, text="bob is gone").wire
        finally:
            gtp.close()
        # the reference receiver (carol) drops bob's stale frames and takes alice's
        verdicts = [[e.kind for e in nc.on_wire(carol, w)] for w in stale + [fresh]]
        assert all("payload_received" not in v for v in verdicts[:2])
        assert "payload_received" in verdicts[2]
    finally:
        grp.close()
    return (prep, ready, execute, stale, fresh), keys, old


def test_removed_member_sending_with_its_old_key_is_stale_epoch_key(tmp_path):
    """bob, removed by a commit the capture shows, keeps sending with the old epoch's key."""
    (prep, ready, execute, stale, fresh), keys, old = stale_flow()
    conv = [(0, True, prep), (2, True, ready), (0, True, execute),
            (1, True, stale[0]), (1, True, stale[1]), (0, True, fresh)]
    cap = read_capture(capture_of(tmp_path / "stale.pcap", conv), keylog=keys)
    f = cap.frames
    assert list(f["key_epoch"].iloc[3:5]) == [old, old] and list(f["epoch"].iloc[3:5]) == [old + 1] * 2
    assert f["decrypted"].all() and f["key_epoch"].iloc[5] == old + 1
    assert f["error"].iloc[3].startswith("[GBP-AEAD-STALE-KEY]")
    assert list(cap.control["removed"].iloc[:1]) == [[1]]
    fi = cap.findings[cap.findings["kind"] == "stale_epoch_key"]
    assert len(fi) == 1 and list(fi["frames"].iloc[0]) == [3, 4]
    assert fi["key_epoch"].iloc[0] == old and fi["epoch"].iloc[0] == old + 1
    assert list(fi["senders"].iloc[0]) == [2] and bool(fi["removed"].iloc[0]) is True
    assert "decrypt_failure" not in set(cap.findings["kind"])
    # the plaintext counts; the receivers' verdict stays visible
    m = cap.messages
    assert list(m["text"]) == ["still here 0", "still here 1", "bob is gone"]
    assert list(m["status"]) == ["stale_key", "stale_key", "new"]
    assert_messages_row_by_row(cap)  # the column-wise build, stale rows included
    e = cap.errors[cap.errors["kind"] == "decrypt"]
    assert list(e["frame"]) == [3, 4] and e["error"].str.contains("stale key").all()


def test_stale_keys_are_judged_within_their_own_group(tmp_path):
    """Two groups: in A the capture shows the commit that removed bob; in B bob is stale too but
    B's commit is not in the capture. A's commit says nothing about B's members (RFC 9420 §8: a
    group's epochs, leaves and commits are its own): B's stale frames are ``removed: no``.
    findings_across (dask, the files cut between the groups' frames) agrees with read_capture."""
    from gbp_lab.capture.many import findings_across

    (prep, ready, execute, stale, fresh), keys, old = stale_flow()
    (_p, _r, _e, stale_b, fresh_b), keys_b, old_b = stale_flow()
    assert old_b == old  # the same epochs: only the group tells A's commit from B's
    keys.update(keys_b)
    conv = [(0, True, prep), (2, True, ready), (0, True, execute),
            (1, True, stale[0]), (1, True, stale[1]), (0, True, fresh),
            (4, True, stale_b[0]), (4, True, stale_b[1]), (3, True, fresh_b)]
    path = capture_of(tmp_path / "two.pcap", conv)
    cap = read_capture(path, keylog=keys)
    assert cap.frames["group_id"].nunique() == 2
    fi = cap.findings[cap.findings["kind"] == "stale_epoch_key"]
    assert [list(f) for f in fi["frames"]] == [[3, 4], [6, 7]]
    assert [bool(r) for r in fi["removed"]] == [True, False]
    assert "no commit in the capture removes a member in between" in fi["detail"].iloc[1]
    assert "removed leaves [1]" in fi["detail"].iloc[0]
    # the same findings on dask, from two files cut at the middle packet
    data = path.read_bytes()
    offs, pos = [], 24
    while pos < len(data):
        offs.append(pos)
        pos += 16 + int.from_bytes(data[pos + 8:pos + 12], "little")
    cut = offs[len(offs) // 2]
    files = [tmp_path / "a.pcap", tmp_path / "b.pcap"]
    files[0].write_bytes(data[:cut])
    files[1].write_bytes(data[:24] + data[cut:])
    across = findings_across(files, keys, scheduler="sync")
    pd.testing.assert_frame_equal(across, cap.findings, check_index_type=False)
