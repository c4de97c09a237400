"""The scapy dissectors against real bytes of the reference (``gbp_stack`` wheel).

Every frame kind the reference sends (GTP/GAP/GSP × CBOR/Protobuf/FlatBuffers, control opcodes,
the PREPARE → READY → EXECUTE flow with its MLS Commit, Welcome and KeyPackage blobs, SFrame audio)
is dissected and compared with the core decoders' output and with the values the wheel was asked
to send; with a key log from ``KeyLog.from_gbp_stack_state`` the payloads decrypt into child
layers; captures written with scapy read back with ``rdpcap``; packets built with the layers are
accepted by the wheel's ``GroupNode.on_wire``.
"""
from __future__ import annotations

import pathlib
import sys

import gbp_stack as g
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw, ls
from scapy.sendrecv import sniff
from scapy.utils import rdpcap, wrpcap

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import refpeer  # noqa: E402

from gbp_lab.core.gap.payload import GapPayload as CoreGap  # noqa: E402
from gbp_lab.core.gbp.control import decode_control  # noqa: E402
from gbp_lab.core.gbp.framing import encode_record  # noqa: E402
from gbp_lab.core.gbp.frame import decode_frame  # noqa: E402
from gbp_lab.core.gsp.signal import GspSignal as CoreGsp  # noqa: E402
from gbp_lab.core.gtp.message import GtpMessage as CoreGtp  # noqa: E402
from gbp_lab.core.keylog import ENCRYPTION, EXPORTER, SENDER_DATA, KeyLog  # noqa: E402
from gbp_lab.core.mls.framing import MLSMessage as CoreMLS  # noqa: E402
from gbp_lab.core.mls.key_package import KeyPackage as CoreKP  # noqa: E402
from gbp_lab.core.mls.welcome import Welcome as CoreWelcome  # noqa: E402
from gbp_lab.dissectors import (GapPayload, GbpCborArgs, GbpControl, GbpFrame, GbpRecord,  # noqa: E402
                                GspArgs, GspSignal, GtpMessage, MLSCommit, MLSKeyPackage,
                                MLSMessage, MLSPrivateMessage, MLSProposal, MLSWelcome, SFrame,
                                keylog_in_use, mls_layer, use_keylog)

pytestmark = pytest.mark.interop

CORE = {1: CoreGap, 2: CoreGtp, 3: CoreGsp}
LAYER = {0: GbpControl, 1: GapPayload, 2: GtpMessage, 3: GspSignal}


@pytest.fixture(autouse=True)
def _no_keylog():
    use_keylog(None)
    yield
    use_keylog(None)


@pytest.fixture(scope="module")
def ref():
    grp = refpeer.two_member_group()
    frames = refpeer.reference_frames(grp)
    log = grp.keylog("bob")
    yield grp, frames, log
    grp.close()


@pytest.fixture(scope="module")
def flow():
    tf = refpeer.transition_flow()
    yield tf
    tf.group.close()


def _frame_fields(pkt):
    return (pkt.v, bytes(pkt.gid), pkt.ep, pkt.tid, pkt.st, pkt.sid, int(pkt.fl), pkt.seq,
            pkt.psz, bytes(pkt.pl), pkt.pf)


def _core_fields(f):
    return (f.version, f.group_id, f.epoch, f.transition_id, f.stream_type, f.stream_id, f.flags,
            f.sequence_no, f.payload_size, f.payload, f.payload_format)


# -- frames without keys -------------------------------------------------------------------------
def test_frames_dissect_like_the_core_decoder(ref):
    grp, frames, _log = ref
    assert len(frames) == 13
    for rf in frames:
        pkt = GbpFrame(rf.wire)
        core = decode_frame(rf.wire)
        assert _frame_fields(pkt) == _core_fields(core)
        assert bytes(pkt.gid) == grp.group_id and pkt.ep == grp.epoch
        assert pkt.st == rf.stream_type and pkt.pf == rf.codec
        assert "no key log" in pkt.crypto
        assert not pkt.payload  # nothing to show without keys
        assert bytes(pkt) == rf.wire
        assert pkt.getfieldval("error") is None


def test_display_functions_do_not_raise(ref):
    _grp, frames, log = ref
    for keys in (None, log):
        use_keylog(keys)
        for rf in frames:
            pkt = GbpRecord(encode_record(rf.wire))
            text = pkt.show(dump=True)
            assert "GBP Frame" in text
            summary = pkt.summary()
            assert summary.startswith(f"GBP record len={len(rf.wire)} [")
            assert ("GBP " in summary) if keys is None else (rf.kind.upper() in summary.upper())
            pkt.show2(dump=True)
    ls(GbpFrame)


# -- with the key log ----------------------------------------------------------------------------
def test_payloads_decrypt_into_child_layers(ref):
    grp, frames, log = ref
    use_keylog(log)
    for rf in frames:
        pkt = GbpFrame(rf.wire)
        assert pkt.crypto.startswith("decrypted"), pkt.crypto
        child = pkt.payload
        assert isinstance(child, LAYER[rf.stream_type])
        if rf.stream_type:
            # the child's bytes are what the reference receiver delivered
            assert bytes(child) == rf.plaintext
            core = CORE[rf.stream_type].from_bytes(rf.plaintext, rf.codec)
            for f in core.SCHEMA.fields:
                got = child.getfieldval(f.key)
                want = getattr(core, f.attr)
                assert (int(got) if f.kind.is_int else bytes(got)) == want, (rf.kind, f.key)
        assert bytes(pkt) == rf.wire


def test_values_are_those_the_wheel_was_asked_to_send(ref):
    grp, frames, log = ref
    use_keylog(log)
    by_kind = {}
    for rf in frames:
        by_kind.setdefault(rf.kind, []).append(GbpFrame(rf.wire))
    for i, (codec, pkt) in enumerate(zip(refpeer.CODECS, by_kind["gtp"])):
        m = pkt[GtpMessage]
        assert pkt.pf == int(codec)
        assert (m.mid, m.sid, int(m.fl), m.ct) == (100 + i, 1, 0x01, 0)
        assert m.text == f"hello {codec.name} ✓"
        assert m.len == len(m.body)
    for i, pkt in enumerate(by_kind["gap"]):
        a = pkt[GapPayload]
        assert (a.msid, a.ts, a.kp) == (7, 960 * i, grp.epoch)
        assert a.opus == bytes([0xFC, i]) * 20
        assert SFrame not in pkt  # plain Opus stays in the field
    sigs = [(100, b"", None), (200, b"\xa1\x00\x02", (2, None)), (102, b"\xa2\x00\x02\x01\x03", (2, 3))]
    for i, (pkt, (t, args, parsed)) in enumerate(zip(by_kind["gsp"], sigs)):
        s = pkt[GspSignal]
        assert (s.t, s.rid, s.sid, s.rc, s.args, s.alen) == (t, 500 + i, 1, 1, args, len(args))
        if parsed is None:
            assert GspArgs not in pkt
        else:
            a = pkt[GspArgs]
            assert (a.target_member_id, a.new_role) == parsed
    for rf, pkt in zip([f for f in frames if f.kind == "control"], by_kind["control"]):
        c = pkt[GbpControl]
        assert (c.op, c.rid, c.sid, c.tid, bytes(c.args)) == rf.control
        core = decode_control(open_frame_plain(pkt, log))
        assert (core.opcode, core.args_length) == (c.op, c.alen)
        assert int(pkt.fl) == (0x000B)
    claim = by_kind["control"][1]
    assert claim[GbpCborArgs].value == repr({0: True})


def open_frame_plain(pkt, log):
    from gbp_lab.core.gbp.aead import open_frame

    return open_frame(decode_frame(bytes(pkt)), log)


def test_keylog_from_file_and_failures_are_annotations(ref, tmp_path):
    grp, frames, log = ref
    path = tmp_path / "keys.log"
    log.append_to(path)
    use_keylog(str(path))
    assert GbpFrame(frames[0].wire)[GtpMessage].mid == 100
    # a wrong exporter secret: tag failure, shown, not raised
    bad = KeyLog()
    bad.add(EXPORTER, grp.group_id, grp.epoch, bytes(32))
    use_keylog(bad)
    for rf in frames:
        pkt = GbpFrame(rf.wire)
        assert pkt.crypto.startswith("decryption failed") and "GBP-AEAD-TAG" in pkt.crypto
        assert not pkt.payload
        pkt.show(dump=True)
    # no secret for the frame's epoch
    other = KeyLog()
    other.add(EXPORTER, grp.group_id, grp.epoch + 5, bytes(32))
    with keylog_in_use(other):
        pkt = GbpFrame(frames[0].wire)
        assert "GBP-AEAD-NOKEY" in pkt.crypto
    from gbp_lab.dissectors import current_keylog
    assert current_keylog() is bad


# -- transition flow: control plane, MLS ---------------------------------------------------------
def test_transition_flow_mls_layers(flow):
    keys = KeyLog()
    keys.update(flow.keylog_old)
    keys.update(flow.keylog_new)
    use_keylog(keys)
    names = []
    for sender, op, wire in flow.frames:
        pkt = GbpFrame(wire)
        c = pkt[GbpControl]
        names.append(c.sprintf("%op%"))
        assert bytes(pkt) == wire
    assert names == ["PREPARE_TRANSITION", "READY_FOR_TRANSITION", "EXECUTE_TRANSITION"]
    prep = GbpFrame(flow.frames[0][2])
    assert int(prep.fl) == 0x001B
    assert bytes(prep[GbpControl].args) == flow.commit
    core = CoreMLS.from_bytes(flow.commit)
    msg = prep[MLSMessage]
    assert (msg.version, msg.wire_format) == (1, 2)
    pm = prep[MLSPrivateMessage]
    assert (bytes(pm.group_id), pm.epoch, pm.content_type) == (
        core.message.group_id, core.message.epoch, core.message.content_type)
    assert bytes(pm.ciphertext) == core.message.ciphertext
    assert pm.epoch == flow.old_epoch
    assert pm.crypto.startswith("decrypted"), pm.crypto
    assert pm.leaf_index == "0"  # alice, the committer, is leaf 0
    commit = prep[MLSCommit]
    assert commit.proposal_count == 1
    prop = prep[MLSProposal]
    assert prop.proposal_type == 1 and prop.detail == "add 'carol'"
    assert prep[MLSKeyPackage].identity == "carol"
    assert commit.path.startswith("present")
    # the new epoch's text frame
    after = GbpFrame(flow.text_after)
    assert after.ep == flow.new_epoch and after[GtpMessage].text == "after the transition"


def test_private_message_without_content_secret(flow):
    partial = KeyLog()
    for e in flow.keylog_old:
        if e.label != ENCRYPTION:
            partial.add(e.label, e.group_id, e.epoch, e.secret)
    use_keylog(partial)
    pm = GbpFrame(flow.frames[0][2])[MLSPrivateMessage]
    assert pm.leaf_index == "0" and "content not" in pm.crypto
    assert MLSCommit not in pm
    wrong = KeyLog()
    for e in flow.keylog_old:
        wrong.add(e.label, e.group_id, e.epoch, bytes(len(e.secret)) if e.label == SENDER_DATA
                  else e.secret)
    use_keylog(wrong)
    pm = GbpFrame(flow.frames[0][2])[MLSPrivateMessage]
    assert pm.crypto.startswith("sender data not decrypted")
    pm.show(dump=True)


def test_welcome_and_key_package_blobs(flow):
    w = mls_layer(flow.welcome)
    core = CoreMLS.from_bytes(flow.welcome).message
    assert isinstance(core, CoreWelcome)
    assert (w.wire_format, w[MLSWelcome].cipher_suite, w[MLSWelcome].secrets_count) == (
        3, core.cipher_suite, len(core.secrets))
    assert bytes(w[MLSWelcome].encrypted_group_info) == core.encrypted_group_info
    assert bytes(w) == flow.welcome
    with g.MlsContext.create("dave") as dave:
        kp = dave.export_key_package()
    k = mls_layer(kp)
    assert isinstance(k, MLSKeyPackage) and k.identity == "dave"
    assert bytes(k.init_key) == CoreKP.from_bytes(kp).init_key
    assert bytes(k) == kp
    # as records on the transport
    rec = GbpRecord(encode_record(kp) + encode_record(flow.welcome) + encode_record(flow.text_after))
    assert isinstance(rec.body, MLSKeyPackage)
    assert isinstance(rec.payload.body, MLSMessage)
    assert isinstance(rec.payload.payload.body, GbpFrame)
    assert bytes(rec) == encode_record(kp) + encode_record(flow.welcome) + encode_record(flow.text_after)


# -- SFrame --------------------------------------------------------------------------------------
def test_sframe_audio_decrypts(ref):
    grp, _frames, log = ref
    alice = grp.mls["alice"]
    opus = bytes(range(60))
    with g.SFrameSession.create(alice) as session:
        enc = session.create_encryptor(alice, 0)
        sealed = [enc.encrypt(opus), enc.encrypt(opus[::-1])]
        enc.close()
    gap = g.GapClient.create()
    try:
        wires = [gap.send(grp.nodes["alice"], alice, 2, media_source_id=9, rtp_timestamp=0,
                          opus=s, codec=g.PayloadCodec.CBOR).wire for s in sealed]
    finally:
        gap.close()
    # with the key log both layers open: GBP (stream key) and SFrame (its own exporter key)
    use_keylog(log)
    for ctr, (wire, s, plain) in enumerate(zip(wires, sealed, (opus, opus[::-1]))):
        pkt = GbpFrame(wire)
        sf = pkt[SFrame]
        assert sf.crypto.startswith("decrypted (rfc9605"), sf.crypto
        assert (sf.kid, sf.ctr, sf.leaf, sf.epoch_bits) == (grp.epoch & 0xFFFF, ctr, "0",
                                                            str(grp.epoch))
        assert sf[Raw].load == plain
        assert bytes(sf) == s
        assert bytes(pkt) == wire
    # the GAP payload on its own (no frame, so no group id to look a key up with): the SFrame
    # header is still recognised by its KID (epoch bits = kp) and shown encrypted
    pkt = GapPayload(open_frame_plain(GbpFrame(wires[0]), log))
    assert (pkt[SFrame].kid, pkt[SFrame].ctr) == (grp.epoch & 0xFFFF, 0)
    assert pkt[SFrame].crypto.startswith("encrypted")


# -- captures ------------------------------------------------------------------------------------
def test_pcap_roundtrip_on_7878_other_port_and_udp(ref, flow, tmp_path):
    grp, frames, log = ref
    stream = b"".join(encode_record(rf.wire) for rf in frames[:4])
    pkts = [
        Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=7878, flags="PA") / Raw(stream),
        Ether() / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=7878, dport=40000, flags="PA")
        / Raw(encode_record(flow.welcome)),
        Ether() / IP() / TCP(sport=40001, dport=9999, flags="PA") / Raw(encode_record(frames[9].wire)),
        Ether() / IP() / UDP(sport=5000, dport=7878) / Raw(frames[6].wire),
        Ether() / IP() / TCP(sport=40002, dport=9999, flags="PA") / Raw(b"GET / HTTP/1.1\r\n\r\n"),
    ]
    path = tmp_path / "gbp.pcap"
    wrpcap(str(path), pkts)
    use_keylog(log)
    back = rdpcap(str(path))
    assert len(back) == 5
    recs = []
    r = back[0][GbpRecord]
    while isinstance(r, GbpRecord):
        recs.append(r)
        r = r.payload
    assert [bytes(x.body) for x in recs] == [rf.wire for rf in frames[:4]]
    assert [x.body.payload.__class__ for x in recs] == [GtpMessage] * 3 + [GapPayload]
    assert isinstance(back[1][GbpRecord].body, MLSMessage)
    assert back[2][GbpControl].op == 0x0009  # heuristic on port 9999
    assert back[3][GspSignal].t == 100
    assert GbpRecord not in back[4] and GbpFrame not in back[4]
    for p in back:
        p.show(dump=True)
        p.summary()
    assert [bytes(p) for p in back] == [bytes(p) for p in pkts]
    sniffed = sniff(offline=str(path))
    assert [p.summary() for p in sniffed] == [p.summary() for p in back]
    assert sniffed[0][GtpMessage].text == "hello CBOR ✓"


# -- building ------------------------------------------------------------------------------------
def test_built_packets_are_accepted_by_the_wheel():
    grp = refpeer.two_member_group()
    try:
        use_keylog(grp.keylog("alice"))
        gid, ep, tid = grp.group_id, grp.epoch, grp.nodes["alice"].last_transition_id
        seq = 0

        def nxt():
            nonlocal seq
            seq += 1
            return seq

        built = []
        for i, codec in enumerate(refpeer.CODECS):
            built.append((2, GbpFrame(gid=gid, ep=ep, tid=tid, sid=101, fl="ORDERED+RELIABLE+ACK_REQUESTED",
                                      seq=nxt(), pf=int(codec))
                          / GtpMessage(mid=7 + i, sid=1, fl="URGENT", body="built ✓".encode())))
        seq = 0
        built.append((1, GbpFrame(gid=gid, ep=ep, tid=tid, sid=102, fl="ORDERED", seq=nxt())
                      / GapPayload(msid=3, seq=1, ts=960, kp=ep, opus=b"\xfc\x01\x02")))
        seq = 0
        built.append((3, GbpFrame(gid=gid, ep=ep, tid=tid, sid=103, fl=7, seq=nxt(), pf=1)
                      / GspSignal(t="MUTE", rid=9, sid=1, rc=1) / GspArgs(target_member_id=2)))
        seq = 0
        built.append((0, GbpFrame(gid=gid, ep=ep, tid=tid, sid=100, fl=0x0B, seq=nxt())
                      / GbpControl(op="CAPABILITIES_ADVERTISE", sid=1, tid=tid) / GbpCborArgs(value={0: True})))
        for st, pkt in built:
            assert pkt.st == st  # bind_layers sets st from the child layer
            wire = bytes(pkt)
            again = GbpFrame(wire)
            assert again.crypto.startswith("decrypted")
            assert bytes(again.payload) == bytes(pkt.payload)
            events = refpeer.deliver(grp, "bob", wire)
            assert not [e for e in events if e.kind == "error"], events
            if st:
                (ev,) = refpeer.payloads(events)
                assert ev.stream_type == st and ev.plaintext == bytes(pkt.payload)
            else:
                assert any(e.kind == "coordinator_claim" and e.claimant == 1 for e in events), events
                assert any(e.kind == "control" and e.opcode_code == 0x0008 for e in events), events
        # the GTP plaintexts read back by the reference's own GTP client
        with g.GtpClient.create() as gtp:
            for i, (_st, pkt) in enumerate(built[:3]):
                res = gtp.accept(bytes(pkt.payload), ep, g.PayloadCodec(pkt.pf))
                assert (res.status, res.sender, res.message_id, res.text) == (
                    "new", 1, 7 + i, "built ✓"), res
        # the GSP args built by GspArgs are the reference's encoding of MUTE {0: 2}
        assert bytes(built[4][1][GspSignal].payload) == b"\xa1\x00\x02"
        assert bytes(built[4][1])  # and the record layer
        rec = GbpRecord(body=built[0][1])
        assert bytes(rec) == encode_record(bytes(built[0][1]))
    finally:
        grp.close()
