"""The Capture model's sub-protocol tables, epoch timeline, summary/HTML/parquet (gbp_lab.capture).

Traffic comes from live reference members (gbp_stack 1.9.1, tests/refpeer.py): the expected field
values are what the reference was asked to send and what its receivers delivered — never our own
reader's output. Captures are written by the lab tap (gbp_lab.sim.tap) or taken from
tests/captures/ (generated from reference-encoded frames)."""
from __future__ import annotations

import itertools
import pathlib
import sys

import pandas as pd
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # pytest runs with importlib mode
import refpeer  # noqa: E402

import gbp_stack as g  # noqa: E402

from gbp_lab.capture.model import FRAME_COLUMNS, PACKET_LIST_COLUMNS, Capture, read_capture  # noqa: E402
from gbp_lab.capture.tables import decode_prepare_commit  # noqa: E402
from gbp_lab.core.gbp.framing import encode_record  # noqa: E402
from gbp_lab.core.keylog import ENCRYPTION, KeyLog  # noqa: E402
from gbp_lab.sim import Tap  # noqa: E402

pytestmark = pytest.mark.interop
CAPTURES = pathlib.Path(__file__).parent / "captures"


def tap_capture(path, conversation):
    """conversation: list of (from_client, wire) on one TCP connection client → :7878."""
    c = itertools.count()
    tap = Tap(clock=lambda: 1_700_000_000.0 + 0.001 * next(c))
    tap.open(0, ("10.0.0.2", 40000), ("10.0.0.1", 7878))
    for from_client, w in conversation:
        tap.data(0, from_client, encode_record(w))
    tap.close(0, by_client=True)
    tap.write_pcap(path)
    return path


@pytest.fixture(scope="module")
def ref_capture(tmp_path_factory):
    """Every stream type × codec from alice, plus control frames; and a duplicate GTP message."""
    with refpeer.two_member_group() as grp:
        frames = refpeer.reference_frames(grp)
        gtp = g.GtpClient.create()
        dup = [gtp.send(grp.nodes["alice"], grp.mls["alice"], 2, message_id=100, text="again").wire]
        gtp.close()
        keys = grp.keylog("bob")
    path = tap_capture(tmp_path_factory.mktemp("ref") / "ref.pcap",
                       [(True, f.wire) for f in frames] + [(True, w) for w in dup])
    return read_capture(path, keylog=keys), frames


def test_tables_have_time_and_frame_columns_linking_back(ref_capture):
    cap, _ = ref_capture
    for name in ("messages", "audio", "signals", "control", "epochs"):
        df = getattr(cap, name)
        assert "time" in df.columns and "frame" in df.columns, name
        assert len(df) > 0
        for t, i in zip(df["time"], df["frame"]):
            assert cap.frames["time"].iloc[int(i)] == t
    assert cap.messages is cap.messages  # built once, cached


def test_messages_match_what_the_reference_sent(ref_capture):
    cap, frames = ref_capture
    m = cap.messages
    texts = [f"hello {c.name} ✓" for c in refpeer.CODECS] + ["again"]
    assert list(m["text"]) == texts
    assert list(m["message_id"]) == [100, 101, 102, 100]
    assert list(m["codec"]) == [c.name for c in refpeer.CODECS] + ["CBOR"]
    assert (m["sender"] == 1).all() and (m["sender_id"] == 1).all()
    assert (m["content_type"] == 0).all() and (m["flags"] == 1).all()  # reference: URGENT, plain
    # the receiver saw message 100 from member 1 already: the reference GtpClient agrees
    assert list(m["status"]) == ["new", "new", "new", "duplicate"]
    ref = g.GtpClient.create()
    verdicts = [ref.accept(cap.plaintexts[int(i)], 1, c).status
                for i, c in zip(m["frame"], [0, 1, 2, 0])]
    ref.close()
    assert verdicts == list(m["status"])


def test_audio_signals_control_fields(ref_capture):
    cap, frames = ref_capture
    a = cap.audio
    assert list(a["media_source_id"]) == [7, 7, 7]
    assert list(a["rtp_timestamp"]) == [0, 960, 1920]
    assert list(a["payload_len"]) == [40, 40, 40]
    assert list(a["key_phase"]) == [1, 1, 1]  # kp = epoch
    assert a["kid"].isna().all()  # raw opus bytes (FC ..): no SFrame header for this epoch
    s = cap.signals
    assert list(s["signal"]) == ["JOIN", "MUTE", "ROLE_CHANGE"]
    assert list(s["args"]) == [{}, {0: 2}, {0: 2, 1: 3}]
    assert list(s["request_id"]) == [500, 501, 502] and (s["role_claim"] == 1).all()
    c = cap.control
    sent = [f.control for f in frames if f.kind == "control"]
    assert list(c["opcode"]) == [op for op, *_ in sent]
    assert list(c["request_id"]) == [rid for _, rid, *_ in sent]
    assert list(c["args_len"]) == [len(args) for *_, args in sent]
    assert list(c["sender_id"]) == [sid for _, _, sid, _, _ in sent]
    assert c["decrypted"].all() and c["mls_type"].isna().all()


def test_sframe_header_fields_of_reference_sframe_audio(tmp_path):
    """GAP frames whose opus field is an SFrame payload sealed by the reference's SFrame session
    (leaf 1 = bob): profile, KID and CTR come from the header."""
    with refpeer.two_member_group() as grp:
        bob = grp.mls["bob"]
        with g.SFrameSession.create(bob) as session:
            enc = session.create_encryptor(bob, 1)
            sealed = [enc.encrypt(bytes(range(60))), enc.encrypt(bytes(30))]
            enc.close()
        gap = g.GapClient.create()
        wires = [gap.send(grp.nodes["bob"], bob, 1, media_source_id=4, rtp_timestamp=0, opus=x,
                          codec=g.PayloadCodec.CBOR).wire for x in sealed]
        gap.close()
        keys, epoch = grp.keylog("alice"), grp.epoch
    cap = read_capture(tap_capture(tmp_path / "sf.pcap", [(True, w) for w in wires]), keylog=keys)
    a = cap.audio
    assert list(a["profile"]) == ["rfc9605", "rfc9605"]
    assert list(a["kid"]) == [(1 << 16) | epoch] * 2  # reference-map §7: leaf << 16 | epoch
    assert list(a["ctr"]) == [0, 1]
    assert list(a["payload_len"]) == [len(x) for x in sealed] and (a["sender"] == 2).all()


def test_transition_commit_decrypted_and_epoch_timeline(tmp_path):
    fl = refpeer.transition_flow()
    try:
        conv = [(who == "alice", w) for who, _, w in fl.frames] + [(True, fl.text_after)]
        path = tap_capture(tmp_path / "tr.pcap", conv)
        keys = KeyLog()
        keys.update(fl.keylog_old)
        keys.update(fl.keylog_new)
        cap = read_capture(path, keylog=keys)
        c = cap.control
        assert list(c["opcode_name"]) == ["PREPARE_TRANSITION", "READY_FOR_TRANSITION",
                                          "EXECUTE_TRANSITION"]
        prep = c.iloc[0]
        assert prep["mls_type"] == "PrivateMessage/commit" and prep["mls_epoch"] == fl.old_epoch
        assert list(prep["proposals"]) == ["add"] and list(prep["added"]) == ["carol"]
        assert list(prep["removed"]) == [] and prep["commit_error"] is None
        assert prep["commit_sender_leaf"] == 0  # alice is leaf 0
        back = pd.read_parquet(cap.to_parquet(tmp_path / "pq")["control"])
        assert '"identity": "carol"' in back["commit"].iloc[0] and back["added"].iloc[0] == '["carol"]'
        # the timeline: old epoch (alice + bob), new epoch after EXECUTE with tid 1
        ep = cap.epochs
        assert list(ep["epoch"]) == [fl.old_epoch, fl.new_epoch]
        assert [list(x) for x in ep["members"]] == [[1, 2], [1]]
        assert list(ep["frames"]) == [3, 1] and list(ep["transition_id"]) == [0, 1]
        assert ep["first_time"].iloc[1] > ep["last_time"].iloc[0]
        from gbp_lab.analysis import transitions

        tr = transitions(cap)
        assert tr.iloc[0]["transition_id"] == 1 and list(tr.iloc[0]["ready_from"]) == [2]
        assert tr.iloc[0]["epoch_before"] == fl.old_epoch and tr.iloc[0]["epoch_after"] == fl.new_epoch
        # without the encryption secret the commit cannot be read, and the table says why
        partial = KeyLog.parse("\n".join(l for l in keys.lines() if not l.startswith(ENCRYPTION)))
        c2 = read_capture(path, keylog=partial).control
        assert c2.iloc[0]["proposals"] is None
        assert "MLS_ENCRYPTION_SECRET" in c2.iloc[0]["commit_error"]
        # the reference's own control plane reuses the control nonce: PREPARE (alice, seq 1) and
        # READY (bob, seq 1) share the epoch's control key
        nr = cap.findings[cap.findings["kind"] == "nonce_reuse"]
        assert list(zip(nr["stream_type"], nr["sequence_no"])) == [(0, 1)]
    finally:
        fl.group.close()


def test_decode_prepare_commit_rejects_garbage():
    d = decode_prepare_commit(b"\x00\x01\x00", None)
    assert d["mls_type"] is None and "not an MLSMessage" in d["error"]
    d = decode_prepare_commit(b"\x00\x01\x00\x05" + bytes(10), None)
    assert d["error"]


def test_summary_html_parquet(ref_capture, tmp_path):
    cap, _ = ref_capture
    s = cap.summary()
    assert "13 frames" in s or f"{len(cap.frames)} frames" in s
    assert "GTP 4" in s and "GAP 3" in s and "GSP 3" in s and "members seen: [1]" in s
    html = cap._repr_html_()
    assert "<table" in html and "Frames (head)" in html
    out = cap.to_parquet(tmp_path / "pq")
    assert set(out) == set(Capture.TABLES)
    for name, p in out.items():
        back = pd.read_parquet(p)
        assert len(back) == len(getattr(cap, name)), name
    sig = pd.read_parquet(out["signals"])
    assert list(sig["args"]) == ['{}', '{"0": 2}', '{"0": 2, "1": 3}']


def test_packet_list_is_the_compact_default_view():
    """Wireshark's packet list on the demo capture: six columns, every frame under its own index;
    the notebook view shows it instead of the 26-column ``frames`` table, which stays one call away."""
    import dataclasses

    import gbp_lab

    cap = gbp_lab.demo_capture()
    pl = cap.packet_list()
    assert list(pl.columns) == list(PACKET_LIST_COLUMNS) == [
        "rel_time", "endpoints", "epoch", "sender", "protocol", "info"]
    assert len(pl) == len(cap.frames) == 95 and pl.index.equals(cap.frames.index)
    assert pl.loc[0, "rel_time"] == 0.0 and pl.loc[0, "endpoints"] == "127.0.0.1:40001 → 127.0.0.1:7878"
    assert (pl.loc[0, "epoch"], pl.loc[0, "sender"], pl.loc[0, "protocol"]) == (0, 1, "GBP")
    assert pl.loc[1, "info"].startswith("KeyPackage") and pd.isna(pl.loc[1, "epoch"])
    assert (pl["info"] == cap.frames["info"]).all() and (pl["rel_time"] == cap.frames["rel_time"]).all()
    assert cap.packet_list(full=True) is cap.frames
    shown = cap._repr_html_().split("Frames (head)")[1]
    assert "endpoints" in shown and "stream_id" not in shown and "flow_id" not in shown
    assert "cap.packet_list()" in cap.summary() and f"all {len(cap.frames.columns)} columns" in cap.summary()
    empty = dataclasses.replace(cap, frames=cap.frames.iloc[:0], _cache={})
    assert list(empty.packet_list().columns) == list(PACKET_LIST_COLUMNS) and not len(empty.packet_list())


def test_bad_inputs_error_rows_and_good_frames_kept():
    d = read_capture(CAPTURES / "defects.pcap")
    assert list(d.frames.columns) == FRAME_COLUMNS
    assert {"GBP-RECORD-OVERSIZE", "TCP-GAP", "REC-UNKNOWN", "REC-TRUNCATED-END"} <= set(d.errors["vid"])
    assert len(d.frames) == 17 and (d.frames["payload_size"] > 0).all()
    t = read_capture(CAPTURES / "truncated.pcap")
    assert "CAP-TRUNCATED-RECORD" in set(t.errors["vid"]) and len(t.frames) == 5
    # corrupt CBOR / wrong psz / unknown link type: crafted records on 7878 around good frames
    from gbp_lab.capture.pcap import LinkType, PcapngWriter
    import io
    import struct

    with refpeer.two_member_group() as grp:
        good = [f.wire for f in refpeer.reference_frames(grp)[:3]]
        keys = grp.keylog("bob")
    bad_psz = bytearray(good[0])
    i = bad_psz.index(b"cpsz") + 4
    bad_psz[i + 1] ^= 0x01  # psz no longer equals len(pl)
    corrupt = b"\xaa\x61v\x01\xff\xff"  # a map that breaks off into a break byte
    buf = io.BytesIO()
    stream = b"".join(encode_record(r) for r in [good[0], bytes(bad_psz), good[1], corrupt, good[2]])
    with PcapngWriter(buf) as w:
        w.add_interface(LinkType.IPV4)
        w.add_interface(147)  # a DLT_USER link type nobody decodes
        w.write_packet(_ipv4_tcp(stream), time=1_700_000_000.0)
        w.write_packet(b"\x00" * 40, time=1_700_000_001.0, interface=1)
    cap = read_capture(buf.getvalue(), keylog=keys)
    assert list(cap.messages["text"]) == [f"hello {c.name} ✓" for c in refpeer.CODECS]
    vids = list(cap.errors["vid"])
    assert sorted(vids) == ["CAP-LINKTYPE", "GBP-FRAME-CBOR", "GBP-FRAME-PSZ"], vids
    assert "psz" in cap.errors.set_index("vid").loc["GBP-FRAME-PSZ", "error"]
    fi = cap.findings
    kind_of = {d.split("]")[0][1:]: k for k, d in zip(fi["kind"], fi["detail"])}
    assert kind_of == {"CAP-LINKTYPE": "capture_defect", "GBP-FRAME-PSZ": "malformed",
                       "GBP-FRAME-CBOR": "malformed"}


def _ipv4_tcp(payload: bytes) -> bytes:
    import struct

    tcp = struct.pack("!HHIIBBHHH", 40000, 7878, 1, 0, 5 << 4, 0x18, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0,
                     bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1]))
    return ip + tcp


# -- fuzz: tables never raise (the CBOR fast path: tests/test_cbor_shape.py) ---------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


_SECRETS = (CAPTURES / "secrets.pcapng").read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(24, len(_SECRETS) - 1), st.integers(0, 255)), min_size=1,
                max_size=10))
def test_tables_and_findings_never_raise_on_corrupted_captures(flips):
    data = bytearray(_SECRETS)
    for pos, val in flips:
        data[pos] = val
    cap = read_capture(bytes(data))
    for name in ("messages", "audio", "signals", "control", "epochs", "findings"):
        df = getattr(cap, name)
        assert (df["frame"] < len(cap.frames)).all() if "frame" in df.columns and len(df) else True
    assert isinstance(cap.summary(), str)
