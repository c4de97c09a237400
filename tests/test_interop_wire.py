"""End to end over a byte stream: reference bytes through our reader/decoder/decryptor, and our
records into the reference's nodes and clients."""
from __future__ import annotations

import pathlib
import random
import sys

import cbor2
import gbp_stack
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import refpeer  # noqa: E402

from gbp_lab.core.errors import MissingKeyError  # noqa: E402
from gbp_lab.core.gbp import registry as R  # noqa: E402
from gbp_lab.core.gbp.aead import open_frame, seal_frame  # noqa: E402
from gbp_lab.core.gbp.control import decode_control  # noqa: E402
from gbp_lab.core.gbp.frame import GbpFrame  # noqa: E402
from gbp_lab.core.gbp.framing import FrameReader, RecordReader, encode_record  # noqa: E402
from gbp_lab.core.keylog import KeyLog  # noqa: E402

pytestmark = pytest.mark.interop


def _split_feed(reader, data, rng):
    out, i = [], 0
    while i < len(data):
        n = rng.choice([1, 2, 3, 7, 64, 500, 4096])
        out += reader.feed(data[i:i + n])
        i += n
    return out + reader.close()


def test_reference_session_stream_decodes_and_decrypts():
    """KeyPackage + Welcome (raw) then both directions of traffic and a whole epoch change."""
    flow = refpeer.transition_flow()
    try:
        keys = KeyLog()
        keys.update(flow.keylog_old)
        keys.update(flow.keylog_new)
        with refpeer.two_member_group() as grp2:  # a second group in the same capture
            traffic = refpeer.reference_frames(grp2) + refpeer.reference_frames(grp2, "bob", "alice")
            keys.update(grp2.keylog())
        wires = [w for _, _, w in flow.frames] + [flow.text_after] + [rf.wire for rf in traffic]
        stream = encode_record(flow.welcome) + b"".join(encode_record(w) for w in wires)
        for seed in range(5):
            reader = FrameReader(decode=False)
            rng = random.Random(seed)
            first = reader.feed(stream[:len(flow.welcome) + 4])
            assert first == [flow.welcome]
            reader.decode = True
            items = _split_feed(reader, stream[len(flow.welcome) + 4:], rng)
            assert all(isinstance(i, GbpFrame) for i in items), items
            assert [f.to_cbor() for f in items] == wires
            plains = [open_frame(f, keys) for f in items]
            ops = [decode_control(p).op.name for p in plains[:3]]
            assert ops == ["PREPARE_TRANSITION", "READY_FOR_TRANSITION", "EXECUTE_TRANSITION"]
            assert decode_control(plains[0]).args == flow.commit
            assert items[3].epoch == flow.new_epoch and b"after the transition" in plains[3]
            for rf, pt in zip(traffic, plains[4:]):
                if rf.plaintext is not None:
                    assert pt == rf.plaintext
    finally:
        flow.group.close()


def _gtp_body(mid: int, sid: int, text: bytes) -> bytes:
    """A GTP message as the reference writes it (reference-map §3: key order, fl=1, ts=rid=ct=0)."""
    return cbor2.dumps({"mid": mid, "sid": sid, "ts": 0, "rid": 0, "fl": 1, "ct": 0,
                        "len": len(text), "body": text})


def test_our_stream_is_accepted_by_reference_node_and_gtp_client():
    with refpeer.two_member_group() as grp:
        gid, ep = grp.group_id, grp.epoch
        secret = grp.keylog("bob").exporter_secret(gid, ep)
        texts = [f"message {i} ✓".encode() for i in range(1, 6)]
        records = b"".join(
            encode_record(seal_frame(secret, gid, ep, 0, R.StreamType.TEXT, R.stream_id(2, 1),
                                     R.sent_flags(2), seq, _gtp_body(seq, 1, t)).to_cbor())
            for seq, t in enumerate(texts, 1))
        # the receiving side reassembles with our reader (arbitrary TCP segmentation) …
        wires = _split_feed(RecordReader(), records, random.Random(7))
        gtp = gbp_stack.GtpClient.create()
        try:
            got = []
            for wire in wires:
                evs = refpeer.payloads(refpeer.deliver(grp, "bob", wire))
                assert len(evs) == 1
                res = gtp.accept(evs[0].plaintext, grp.mls["bob"].epoch)
                assert res.status == "new", res
                got.append((res.sender, res.message_id, res.text))
            # … and the reference's replay window drops a re-sent record
            evs = refpeer.deliver(grp, "bob", wires[2])
            assert [e.code for e in evs if e.kind == "error"] == [R.ErrorCode.REPLAY_DETECTED]
        finally:
            gtp.close()
    assert got == [(1, i, t.decode()) for i, t in enumerate(texts, 1)]


def test_reference_receives_our_control_flow_for_a_transition():
    """We play the coordinator's wire side for ABORT: PREPARE and ABORT sealed by us."""
    with refpeer.two_member_group() as grp:
        gid, ep = grp.group_id, grp.epoch
        secret = grp.keylog().exporter_secret(gid, ep)
        from gbp_lab.core.gbp.control import ControlMessage

        def ctl(seq, op, tid):
            m = ControlMessage.build(op, seq, 1, tid, b"")
            return seal_frame(secret, gid, ep, 0, 0, R.stream_id(0, 1), R.sent_flags(0, op), seq,
                              m.to_cbor()).to_cbor()

        evs = refpeer.deliver(grp, "bob", ctl(1, R.ControlOpcode.PREPARE_TRANSITION, 1))
        assert [(e.kind, e.opcode_code, e.transition_id) for e in evs] == [
            ("control", R.ControlOpcode.PREPARE_TRANSITION, 1)]
        evs = refpeer.deliver(grp, "bob", ctl(2, R.ControlOpcode.EXECUTE_TRANSITION, 1))
        assert {e.kind for e in evs} == {"control", "epoch_advanced"}
        assert grp.nodes["bob"].epoch == ep + 1 and grp.nodes["bob"].last_transition_id == 1
        # the node epoch moved without an MLS commit: bob's next frame says ep+1 but is sealed
        # under MLS epoch ep — the case open_frame's ``mls_epoch=`` exists for
        gtp = gbp_stack.GtpClient.create()
        try:
            wire = gtp.send(grp.nodes["bob"], grp.mls["bob"], 1, 9, "odd epoch").wire
        finally:
            gtp.close()
        log = grp.keylog()
    f = FrameReader().feed(encode_record(wire))[0]
    assert f.epoch == ep + 1
    with pytest.raises(MissingKeyError) as ei:
        open_frame(f, log)
    assert ei.value.vid == "GBP-AEAD-NOKEY"
    assert b"odd epoch" in open_frame(f, log, mls_epoch=ep)
