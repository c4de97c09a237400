"""Per-stream AEAD: open the reference's frames, and have the reference accept ours."""
from __future__ import annotations

import pathlib
import sys

import gbp_stack
import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import refpeer  # noqa: E402

from gbp_lab.core.errors import DecodeError, DecryptError, MissingKeyError, UsageError  # noqa: E402
from gbp_lab.core.gbp import registry as R  # noqa: E402
from gbp_lab.core.gbp.aead import (nonce_for, open_frame, open_payload, seal_frame, seal_payload,  # noqa: E402
                                   stream_key)
from gbp_lab.core.gbp.control import ControlMessage  # noqa: E402
from gbp_lab.core.gbp.frame import GbpFrame, decode_frame  # noqa: E402
from gbp_lab.core.keylog import KeyLog  # noqa: E402
from gbp_lab.core.mls.suites import CipherSuite  # noqa: E402

pytestmark = pytest.mark.interop


@pytest.fixture
def grp():
    with refpeer.two_member_group() as g:
        yield g


def test_nonce_layout():
    assert nonce_for(1) == b"\x00\x00\x00\x01" + bytes(8)
    assert nonce_for(0x01020304) == bytes([1, 2, 3, 4]) + bytes(8)
    with pytest.raises(UsageError):
        nonce_for(2**32)


def test_stream_key_is_the_rfc9420_exporter():
    secret = bytes(range(32))
    cs = CipherSuite.get(1)
    for st_, label in R.STREAM_KEY_LABELS.items():
        k = stream_key(secret, st_)
        assert k == cs.mls_exporter(secret, label, b"", 32) and len(k) == 32
    assert len({stream_key(secret, s) for s in R.StreamType}) == 4


def test_reference_frames_decrypt_with_keylog_from_export_state(grp):
    log = grp.keylog("bob")  # the receiver's export; the sender's gives the same secrets
    assert log == grp.keylog("alice")
    frames = refpeer.reference_frames(grp) + refpeer.reference_frames(grp, "bob", "alice")
    for rf in frames:
        pt = open_frame(decode_frame(rf.wire), log)
        if rf.plaintext is not None:
            assert pt == rf.plaintext
        else:
            assert ControlMessage.build(*rf.control[:4], rf.control[4]).to_cbor() == pt


def test_missing_key_and_bad_tag(grp):
    rf = refpeer.reference_frames(grp)[0]
    f = decode_frame(rf.wire)
    with pytest.raises(MissingKeyError) as ei:
        open_frame(f, KeyLog())
    assert ei.value.vid == "GBP-AEAD-NOKEY"
    log = grp.keylog()
    with pytest.raises(MissingKeyError):
        open_frame(f, log, mls_epoch=f.epoch + 1)
    tampered = GbpFrame.build(f.group_id, f.epoch, f.transition_id, f.stream_type, f.stream_id,
                              f.flags, f.sequence_no, f.payload[:-1] + bytes([f.payload[-1] ^ 1]))
    with pytest.raises(DecryptError):
        open_frame(tampered, log)
    wrong_seq = GbpFrame.build(f.group_id, f.epoch, f.transition_id, f.stream_type, f.stream_id,
                               f.flags, f.sequence_no + 1, f.payload)
    with pytest.raises(DecryptError):
        open_frame(wrong_seq, log)
    wrong_stream = GbpFrame.build(f.group_id, f.epoch, f.transition_id, 3, f.stream_id,
                                  f.flags, f.sequence_no, f.payload)
    with pytest.raises(DecryptError):
        open_frame(wrong_stream, log)
    with pytest.raises(DecryptError):
        open_frame(GbpFrame.build(f.group_id, f.epoch, 0, 2, 1, 0, 1, b"short"), log)
    with pytest.raises(DecodeError):
        open_frame(GbpFrame.build(f.group_id, f.epoch, 0, 9, 1, 0, 1, bytes(20)), log)


@pytest.mark.parametrize("codec", [0, 1, 2])
def test_our_sealed_frames_are_accepted_by_the_reference(grp, codec):
    """alice's secret, our encoder and sealer; bob's reference node delivers our plaintext."""
    log = grp.keylog("alice")
    gid, ep = grp.group_id, grp.epoch
    secret = log.exporter_secret(gid, ep)
    for seq, st_ in enumerate((R.StreamType.TEXT, R.StreamType.AUDIO, R.StreamType.SIGNAL), 1):
        plaintext = f"our payload {st_.name} {codec}".encode() * seq
        f = seal_frame(secret, gid, ep, 0, st_, R.stream_id(st_, 1), R.sent_flags(st_), seq,
                       plaintext, payload_format=codec)
        evs = refpeer.deliver(grp, "bob", f.to_cbor())
        assert [e.kind for e in evs] == ["payload_received"], evs
        e = evs[0]
        assert (e.plaintext, e.stream_type, e.stream_id, e.sequence_no, e.flags, int(e.codec)) == (
            plaintext, st_, f.stream_id, seq, int(R.sent_flags(st_)), codec)
        assert open_frame(f, log) == plaintext


def test_our_control_message_is_handled_by_the_reference(grp):
    log = grp.keylog("alice")
    gid, ep = grp.group_id, grp.epoch
    msg = ControlMessage.build(R.ControlOpcode.CAPABILITIES_ADVERTISE, 0, 1, 0, b"\xa1\x00\xf5")
    f = seal_frame(log.exporter_secret(gid, ep), gid, ep, 0, 0, R.stream_id(0, 1),
                   R.sent_flags(0, msg.opcode), 1, msg.to_cbor())
    evs = refpeer.deliver(grp, "bob", f.to_cbor())
    kinds = {e.kind: e for e in evs}
    assert "coordinator_claim" in kinds and kinds["coordinator_claim"].claimant == 1
    assert kinds["control"].opcode_code == int(R.ControlOpcode.CAPABILITIES_ADVERTISE)


def test_reference_rejects_our_frame_under_a_wrong_key(grp):
    gid, ep = grp.group_id, grp.epoch
    f = seal_frame(bytes(32), gid, ep, 0, 2, 101, 7, 1, b"nope")
    evs = refpeer.deliver(grp, "bob", f.to_cbor())
    assert [e.code for e in evs if e.kind == "error"] == [R.ErrorCode.DECRYPT_FAILED]


def test_transition_frames_use_the_mls_epoch_of_the_sender():
    flow = refpeer.transition_flow()
    try:
        for _, _, wire in flow.frames:  # sealed under the old MLS epoch, node epoch == old epoch
            f = decode_frame(wire)
            assert f.epoch == flow.old_epoch
            open_frame(f, flow.keylog_old)
            with pytest.raises(MissingKeyError):
                open_frame(f, flow.keylog_new)
        f = decode_frame(flow.text_after)
        assert f.epoch == flow.new_epoch and f.transition_id == 1
        body = open_frame(f, flow.keylog_new)
        assert b"after the transition" in body
        # every member's export agrees on the new epoch's secrets
        assert flow.group.keylog("carol") == flow.group.keylog("bob") == flow.keylog_new
        # a node epoch that differs from the MLS epoch: pick the key explicitly
        shifted = GbpFrame.build(f.group_id, 40, f.transition_id, f.stream_type, f.stream_id,
                                 f.flags, f.sequence_no, f.payload)
        assert open_frame(shifted, flow.keylog_new, mls_epoch=flow.new_epoch) == body
    finally:
        flow.group.close()


@settings(max_examples=100, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), seq=st.integers(0, 2**32 - 1), pt=st.binary(max_size=200))
def test_seal_open_payload_is_plain_chacha20poly1305(key, seq, pt):
    ct = seal_payload(key, seq, pt)
    assert ct == ChaCha20Poly1305(key).encrypt(seq.to_bytes(4, "big") + bytes(8), pt, b"")
    assert open_payload(key, seq, ct) == pt and len(ct) == len(pt) + 16


def test_same_key_and_nonce_across_senders(grp):
    """The reference's design: alice's and bob's seq 1 text frames share key and nonce."""
    a = decode_frame(refpeer.reference_frames(grp)[0].wire)
    b = decode_frame(refpeer.reference_frames(grp, "bob", "alice")[0].wire)
    assert (a.sequence_no, a.stream_type) == (b.sequence_no, b.stream_type) == (1, 2)
    log = grp.keylog()
    pa, pb = open_frame(a, log), open_frame(b, log)
    n = min(len(pa), len(pb))
    ks_a = bytes(x ^ y for x, y in zip(a.payload[:n], pa[:n]))
    ks_b = bytes(x ^ y for x, y in zip(b.payload[:n], pb[:n]))
    assert ks_a == ks_b  # identical keystream: nonce reuse between senders
    assert gbp_stack.version()
