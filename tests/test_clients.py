"""GtpClient / GapClient / GspClient: unit behaviour, and the same input sequences through the
reference binding's clients (gbp_stack 1.9.1) giving the same results."""
from __future__ import annotations

import pathlib
import random
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from gbp_lab.core.gap.client import GapClient  # noqa: E402
from gbp_lab.core.gap.payload import GapPayload  # noqa: E402
from gbp_lab.core.gbp.frame import decode_frame  # noqa: E402
from gbp_lab.core.gbp.node import GroupNode  # noqa: E402
from gbp_lab.core.gbp.registry import ErrorCode, PayloadCodec  # noqa: E402
from gbp_lab.core.gsp.args import mute_args, role_change_args, stream_args, codec_update_args  # noqa: E402
from gbp_lab.core.gsp.client import GspClient  # noqa: E402
from gbp_lab.core.gsp.roles import Permissions, RoleRegistry  # noqa: E402
from gbp_lab.core.gsp.signal import GspSignal, SignalType  # noqa: E402
from gbp_lab.core.gtp.client import BoundedSeen, GtpClient  # noqa: E402
from gbp_lab.core.gtp.message import GtpContentType, GtpFlags, GtpMessage  # noqa: E402
from gbp_lab.core.errors import UsageError  # noqa: E402
from gbp_lab.core.mls.exporter_view import ExporterView  # noqa: E402

CODECS = (PayloadCodec.CBOR, PayloadCodec.PROTOBUF, PayloadCodec.FLATBUFFERS)
GID = bytes(16)
V = ExporterView(b"\x05" * 32, 3)


def node(member=4, epoch=3):
    n = GroupNode.create(member, GID)
    n.bootstrap_as_creator(epoch)
    n.drain_events()
    return n


# --- GTP --------------------------------------------------------------------------------------
def test_gtp_send_builds_the_reference_message_on_the_text_stream():
    n, c = node(), GtpClient.create()
    for i, codec in enumerate(CODECS):
        f = decode_frame(c.send(n, V, 0, 99, "hé", codec).wire)
        assert (f.stream_type, f.stream_id, f.flags, f.sequence_no, f.payload_format) == (
            2, 401, 0x07, i + 1, int(codec))
    peer = node(5)
    ev = peer.on_wire(V, c.send(n, V, 5, 7, "x").wire)[0]
    m = GtpMessage.from_bytes(ev.plaintext)
    assert (m.flags, m.content_type, m.timestamp_ms, m.request_id, m.sender_id) == (1, 0, 0, 0, 4)


def test_gtp_accept_new_duplicate_error_epoch_and_reset():
    c = GtpClient.create()
    pt = GtpMessage.plain(1, 100, "hi").to_bytes()
    r = c.accept(pt, 1)
    assert (r.status, r.sender, r.message_id, r.text, r.reason) == ("new", 1, 100, "hi", None)
    assert r.message.content == b"hi"
    assert c.accept(pt, 1).status == "duplicate"
    assert c.accept(GtpMessage.plain(2, 100, "hi").to_bytes(), 1).status == "new"
    assert c.accept(pt, 2).status == "new"  # a new epoch clears the set
    c.reset()
    assert c.accept(pt, 2).status == "new"
    bad = c.accept(b"\xff\xff", 2)
    assert bad.status == "error" and bad.reason.startswith("decode: ")
    mismatch = c.accept(GtpMessage(1, 2, content=b"abc", content_length=5).to_bytes(), 2)
    assert mismatch.reason == "decode: payload_size/content_length/args_length mismatch"
    assert mismatch.code == ErrorCode.GTP_BAD_LENGTH
    assert c.accept(GtpMessage(9, 2, content=b"\xff").to_bytes(), 2).text == "<binary>"


def test_gtp_send_message_content_types_and_flags():
    n, peer, c = node(), node(5), GtpClient.create()
    for ct in GtpContentType:
        msg = GtpMessage(50 + ct, 4, timestamp_ms=1234, request_id=7,
                         flags=GtpFlags.EPHEMERAL | GtpFlags.PERSISTENT, content_type=ct,
                         content=b"**md**")
        ev = peer.on_wire(V, c.send_message(n, V, 5, msg, PayloadCodec.PROTOBUF).wire)[0]
        got = GtpClient().accept(ev.plaintext, 3, ev.codec).message
        assert got == msg


def test_bounded_seen_evicts_the_oldest():
    s = BoundedSeen(3)
    assert all(s.insert(i) for i in (1, 2, 3)) and not s.insert(2)
    assert s.insert(4) and 1 not in s and len(s) == 3
    assert s.insert(1) and 2 not in s and not s.insert(4)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5), st.lists(st.integers(0, 8), max_size=60))
def test_bounded_seen_is_a_fifo_set(capacity, items):
    s, model = BoundedSeen(capacity), []
    for x in items:
        new = x not in model
        assert s.insert(x) == new
        if new:
            model.append(x)
            del model[:-capacity]
        assert len(s) == len(model) and all(y in s for y in model)
    s.clear()
    assert len(s) == 0 and all(y not in s for y in model)


def test_gtp_seen_set_forgets_like_the_reference_beyond_its_capacity():
    """10,001 messages: the first is forgotten (accepted again), a recent one is a duplicate —
    the reference GtpClient says the same."""
    import gbp_stack

    from gbp_lab.core.payload_codec import encode

    ours, theirs = GtpClient(), gbp_stack.GtpClient.create()
    wires = [encode(GtpMessage.plain(1, mid, "m")) for mid in range(10_001)]
    for w in wires:
        assert ours.accept(w, 1, 0).status == theirs.accept(w, 1, 0).status == "new"
    again = [(ours.accept(wires[m], 1, 0).status, theirs.accept(wires[m], 1, 0).status)
             for m in (0, 9_000, 1)]
    assert again == [("new", "new"), ("duplicate", "duplicate"), ("new", "new")]
    assert [ours.accept(wires[m], 1, 0).status for m in (9_500, 2)] == ["duplicate", "new"]
    theirs.close()


# --- GAP --------------------------------------------------------------------------------------
def test_gap_send_sequence_wraps_and_key_phase_is_the_epoch():
    n, c = node(epoch=2**32 + 5), GapClient.create()
    peer = node(5, epoch=2**32 + 5)
    first = GapPayload.from_bytes(peer.on_wire(V, c.send(n, V, 5, 9, 0, b"").wire)[0].plaintext)
    assert first.rtp_sequence == 1
    c._out_seq[9] = 0xFFFE
    seqs = []
    for _ in range(3):
        f = c.send(n, V, 5, 9, 960, b"\x01\x02")
        fr = decode_frame(f.wire)
        assert (fr.stream_type, fr.stream_id, fr.flags) == (1, 402, 0x01)
        p = GapPayload.from_bytes(peer.on_wire(V, f.wire)[0].plaintext)
        seqs.append(p.rtp_sequence)
        assert p.key_phase == 5
    assert seqs == [0xFFFF, 0, 1]


def _gap(seq, kp, src=1):
    return GapPayload(src, seq, 960, kp, b"opus").to_bytes()


def test_gap_accept_windows_wrap_and_overlap_with_injected_time():
    c = GapClient.create()
    assert c.accept(_gap(0xFFFE, 1), 1).status == "new"
    assert c.accept(_gap(0xFFFF, 1), 1).status == "new"
    assert c.accept(_gap(0, 1), 1).status == "new"  # wrap
    assert c.accept(_gap(0, 1), 1).status == "late"
    assert c.accept(_gap(0xFFF0, 1), 1).status == "new"  # above hw 0: the reference's rule
    r = c.accept(_gap(0x8000, 1), 1)
    assert (r.status, r.source, r.seq, r.bytes_) == ("late", 1, 0x8000, 4)
    c2 = GapClient.create()
    assert c2.accept(_gap(5, 1), 1, now=0).status == "new"
    assert c2.accept(_gap(1, 2), 2, now=1_000).status == "new"  # epoch 1 window kept until 11 000
    assert c2.accept(_gap(6, 1), 2, now=10_999).status == "new"
    assert c2.accept(_gap(6, 1), 2, now=10_999).status == "late"
    stale = c2.accept(_gap(7, 1), 2, now=11_000)
    assert (stale.status, stale.reason, stale.code) == (
        "error", "epoch stale: kp=1, expected=2", ErrorCode.GAP_EPOCH_STALE)
    assert c2.accept(_gap(7, 9), 2).status == "error"
    c2.reset()
    assert c2.accept(_gap(1, 2), 2).status == "new"
    assert c2.accept(b"", 2).status == "error"


# --- GSP --------------------------------------------------------------------------------------
def _sig(t, rid, sender, args=b"", rc=0):
    return GspSignal(int(t), rid, sender, rc, None, args).to_bytes()


def test_gsp_membership_mute_dedup_and_errors():
    c = GspClient.create()
    assert c.accept(_sig(SignalType.JOIN, 1, 7), 0).status == "new" and c.members == {7}
    r = c.accept(_sig(SignalType.MUTE, 2, 7, mute_args(3)), 0)
    assert (r.status, r.signal, r.signal_code, r.args.target_member_id) == ("new", "MUTE", 200, 3)
    assert c.muted == {7}  # the reference mutes the sender
    d = c.accept(_sig(SignalType.LEAVE, 2, 7), 0)
    assert (d.status, d.request_id, d.signal) == ("duplicate", 2, None)
    assert c.accept(_sig(SignalType.LEAVE, 3, 7), 0).status == "new"
    assert c.members == set() and c.muted == set()
    assert c.accept(_sig(SignalType.JOIN, 1, 8), 1).status == "new"  # new epoch
    u = c.accept(_sig(999, 4, 1), 1)
    assert (u.status, u.reason, u.code) == ("error", "unknown signal_type: 999", ErrorCode.GSP_UNKNOWN_SIGNAL)
    b = c.accept(_sig(SignalType.ROLE_CHANGE, 5, 1, mute_args(3)), 1)
    assert b.status == "error" and b.reason.startswith("bad args schema: ")
    assert c.accept(_sig(SignalType.ROLE_CHANGE, 5, 1, role_change_args(3, 2)), 1).status == "new"
    with pytest.raises(UsageError):
        c.send(node(), V, 0, 12345, 0, 1)


def test_gsp_role_checks():
    roles = RoleRegistry()
    roles.define_role(1, "member", Permissions.SEND_SIGNAL)
    roles.define_role(2, "moderator", Permissions.SEND_SIGNAL | Permissions.MUTE_OTHERS
                      | Permissions.ASSIGN_ROLES)
    roles.assign(10, 1)
    roles.assign(20, 2)
    c = GspClient.create(roles=roles)
    assert c.accept(_sig(SignalType.MUTE, 1, 10, mute_args(10)), 0).status == "new"  # self
    denied = c.accept(_sig(SignalType.MUTE, 2, 10, mute_args(20)), 0)
    assert (denied.status, denied.code) == ("error", ErrorCode.GSP_UNAUTHORIZED)
    assert c.accept(_sig(SignalType.MUTE, 2, 20, mute_args(10)), 0).status == "new"  # rid 2 unused
    assert c.accept(_sig(SignalType.JOIN, 3, 99), 0).status == "error"  # no role at all
    assert c.accept(_sig(SignalType.ROLE_CHANGE, 4, 10, role_change_args(10, 2)), 0).status == "error"
    assert c.accept(_sig(SignalType.ROLE_CHANGE, 5, 20, role_change_args(10, 2)), 0).status == "new"
    assert roles.role_of(10).name == "moderator"


# --- never raise on hostile payloads ----------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120), st.sampled_from([0, 1, 2, 7]), st.integers(0, 3))
def test_accept_never_raises(data, codec, epoch):
    for client in (GtpClient(), GapClient(), GspClient()):
        r = client.accept(data, epoch, codec)
        assert r.status in ("new", "duplicate", "late", "error")


# --- differential against the reference binding's clients -------------------------------------
def _gtp_corpus(rng):
    out = []
    for i in range(60):
        codec = rng.choice(CODECS)
        m = GtpMessage(rng.choice([1, 2, 3, 2**40]), rng.choice([1, 2]), flags=rng.choice([0, 1, 7]),
                       content_type=rng.choice([0, 1, 2, 3]),
                       content=rng.choice([b"hi", "ü".encode(), b"\xff\xfe", b""]))
        pt = m.to_bytes(codec)
        if rng.random() < 0.15:
            pt = pt[: rng.randrange(len(pt) + 1)]
        out.append((pt, rng.choice([1, 1, 1, 2]), codec))
    return out


def _gap_corpus(rng):
    out = []
    for _ in range(80):
        codec = rng.choice(CODECS)
        p = GapPayload(rng.choice([1, 2]), rng.choice([1, 2, 3, 5, 0xFFFF, 0, 0x9000]), 960,
                       rng.choice([1, 1, 2, 3]), b"x" * rng.randrange(5))
        out.append((p.to_bytes(codec), rng.choice([1, 1, 2, 2, 3]), codec))
    return out


def _gsp_corpus(rng):
    out = []
    argsets = [b"", mute_args(3), role_change_args(3, 1), stream_args(2), codec_update_args(5),
               b"\xa0", b"\x01", b"\xa1\x00\x20", b"\xa1\x01\x02", b"\xa2\x00\x01\x00\x02"]
    for _ in range(120):
        codec = rng.choice(CODECS)
        t = rng.choice(list(SignalType) + [999, 0])
        s = GspSignal(int(t), rng.choice([1, 2, 3, 4]), rng.choice([1, 2]), rng.choice([0, 1]),
                      None, rng.choice(argsets))
        out.append((s.to_bytes(codec), rng.choice([1, 1, 1, 2]), codec))
    return out


@pytest.mark.interop
def test_clients_match_the_reference_on_the_same_sequences():
    import gbp_stack as g

    rng = random.Random(1234)
    for ours, ref, corpus, fields in (
            (GtpClient(), g.GtpClient.create(), _gtp_corpus(rng),
             ("status", "sender", "message_id", "text")),
            (GapClient(), g.GapClient.create(), _gap_corpus(rng),
             ("status", "source", "seq", "bytes_")),
            (GspClient(), g.GspClient.create(), _gsp_corpus(rng),
             ("status", "signal", "signal_code", "sender", "role_claim", "request_id"))):
        statuses = set()
        for pt, epoch, codec in corpus:
            a = ours.accept(pt, epoch, codec)
            b = ref.accept(pt, epoch, g.PayloadCodec(int(codec)))
            assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields], (pt.hex(), a, b)
            if a.status == "error":
                same_text = not (a.reason.startswith("decode: ") or a.reason.startswith("bad args"))
                if same_text or "mismatch" in a.reason:
                    assert a.reason == b.reason
                else:
                    assert a.reason.split(":")[0] == b.reason.split(":")[0]
            statuses.add(a.status)
        assert len(statuses) >= 3, statuses
        ref.close()


# --- the GTP CBOR fast paths equal the generic codec ------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.text(max_size=40))
def test_gtp_fast_encode_equals_generic(sender, mid, text):
    from gbp_lab.core.gtp.client import _plain_cbor

    assert _plain_cbor(sender, mid, text) == GtpMessage.plain(sender, mid, text).to_bytes()


_gtp_msgs = st.builds(GtpMessage, st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1),
                      st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1), st.integers(0, 255),
                      st.integers(0, 255), st.none(), st.binary(max_size=30))


def test_accept_without_an_epoch_like_the_old_binding():
    g = GtpClient()
    pt = GtpMessage.plain(1, 5, "x").to_bytes()
    assert [g.accept(pt).status, g.accept(pt).status] == ["new", "duplicate"]
    a = GapClient()
    assert [a.accept(_gap(3, 7)).status, a.accept(_gap(3, 7)).status] == ["new", "late"]
    assert a.accept(_gap(4, 8)).status == "error"  # key phase 8 is not the adopted epoch 7
    s = GspClient()
    assert [s.accept(_sig(SignalType.JOIN, 1, 2)).status,
            s.accept(_sig(SignalType.JOIN, 1, 2)).status] == ["new", "duplicate"]
