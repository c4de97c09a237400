"""Unit tests of the scapy layers: round trips, annotations, transport dispatch, building,
the key store. Reference bytes where the reference map gives them; interop ones are marked."""
from __future__ import annotations

import cbor2
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import NoPayload, Raw

from gbp_lab.core.errors import KeyLogError, UsageError
from gbp_lab.core.gbp.aead import seal_frame
from gbp_lab.core.gbp.frame import GbpFrame as CoreFrame
from gbp_lab.core.gbp.framing import encode_record
from gbp_lab.core.gbp.registry import ERROR_SPECS, lookup_error
from gbp_lab.core.gap.payload import GapPayload as CoreGap
from gbp_lab.core.keylog import EXPORTER, KeyLog
from gbp_lab.core.sframe import SFrameSession
from gbp_lab.dissectors import (GapPayload, GbpErrorObject, GbpFrame, GbpRecord, GtpMessage,
                                SFrame, current_keylog, disable_heuristic, enable_heuristic,
                                keylog_in_use, set_mls_epoch_offset, use_keylog)
from gbp_lab.dissectors.transport import MAX_CHAIN, GbpRecordList, looks_like_record

GID = bytes.fromhex("00112233445566778899aabbccddeeff")
SECRET = bytes(range(100, 132))
#: reference-map §3: the GTP body the reference writes for mid 7, sid 1, "hi"
GTP_HI = (b"\xa8\x63mid\x07\x63sid\x01\x62ts\x00\x63rid\x00\x62fl\x01\x62ct\x00\x63len\x02"
          b"\x64body\x42hi")


@pytest.fixture(autouse=True)
def _reset():
    use_keylog(None)
    set_mls_epoch_offset(0)
    yield
    use_keylog(None)
    set_mls_epoch_offset(0)


def _log(epoch=1):
    log = KeyLog()
    log.add(EXPORTER, GID, epoch, SECRET)
    return log


def test_gtp_reference_bytes():
    m = GtpMessage(GTP_HI)
    assert (m.mid, m.sid, m.ts, m.rid, int(m.fl), m.ct, m.len, m.body) == (7, 1, 0, 0, 1, 0, 2, b"hi")
    assert m.text == "hi" and m.sprintf("%fl%") == "URGENT" and m.sprintf("%ct%") == "PLAIN"
    assert bytes(m) == GTP_HI
    assert bytes(GtpMessage(mid=7, sid=1, fl="URGENT", body=b"hi")) == GTP_HI
    m.mid = 8
    assert bytes(m) == GTP_HI.replace(b"mid\x07", b"mid\x08")


def test_non_canonical_frame_round_trips_then_reencodes():
    core = CoreFrame.build(GID, 3, 0, 2, 201, 7, 1, b"\x01\x02\x03")
    d = {"zz": [1, 2]}  # unknown key first, keys in reverse order
    obj = cbor2.loads(core.to_cbor())
    d.update(dict(reversed(list(obj.items()))))
    wire = cbor2.dumps(d)
    pkt = GbpFrame(wire)
    assert (pkt.ep, pkt.sid, pkt.seq, pkt.pl, pkt.psz) == (3, 201, 1, b"\x01\x02\x03", 3)
    assert bytes(pkt) == wire  # dissected bytes come back as they were
    pkt.seq = 2
    assert bytes(pkt) == CoreFrame.build(GID, 3, 0, 2, 201, 7, 2, b"\x01\x02\x03").to_cbor()


def test_defects_and_malformed_are_annotations():
    core = CoreFrame(1, GID, 1, 0, 2, 101, 7, 1, 9, b"abc")  # psz != len(pl)
    wire = core.to_cbor()
    pkt = GbpFrame(wire)
    assert "GBP-FRAME-PSZ" in pkt.defects and pkt.psz == 9
    assert bytes(pkt) == wire
    bad = GbpFrame(b"\x01\x02\x03")
    assert "GBP-FRAME-NOT-MAP" in bad.error and bad[Raw].load == b"\x01\x02\x03"
    assert bytes(bad) == b"\x01\x02\x03"
    assert "GBP-FRAME" in bad.show(dump=True)


def test_records_truncated_oversize_and_chained():
    f1 = CoreFrame.build(GID, 1, 0, 2, 101, 7, 1, b"x").to_cbor()
    f2 = CoreFrame.build(GID, 1, 0, 2, 101, 7, 2, b"yy").to_cbor()
    data = encode_record(f1) + encode_record(f2)
    rec = GbpRecord(data)
    assert rec.len == len(f1) and rec.body.seq == 1 and rec.payload.body.seq == 2
    assert bytes(rec) == data
    cut = GbpRecord(data[:len(data) - 3])
    last = cut.payload
    assert isinstance(last, GbpRecord) and "GBP-RECORD-TRUNCATED" in last.error
    # the declared length stays readable; the cut bytes (prefix included) are the Raw payload
    assert last.len == len(f2) and last[Raw].load == encode_record(f2)[:-3]
    assert bytes(cut) == data[:len(data) - 3]
    big = (2 ** 20 + 1).to_bytes(4, "little") + b"abc"
    over = GbpRecord(big)
    assert "GBP-RECORD-OVERSIZE" in over.error and bytes(over) == big
    built = GbpRecord(body=GbpFrame(f1))
    assert bytes(built) == encode_record(f1)
    assert bytes(GbpRecord(len=99, body=GbpFrame(f1)))[:4] == (99).to_bytes(4, "little")


@pytest.mark.parametrize("n", [MAX_CHAIN - 1, MAX_CHAIN, MAX_CHAIN + 1, 500])
def test_a_segment_of_many_records_dissects_them_all_without_deep_recursion(n, monkeypatch):
    """Scapy recurses once per chained layer: the fuzz finding (fuzz/FINDINGS.md F1) was a
    segment of ~160 tiny records that exhausted Python's stack under ``conf.debug_dissector``
    (a RecursionError; without it, scapy hid the rest as Raw and logged "dissector failed").
    After MAX_CHAIN chained records the rest is one GbpRecordList: every frame is still there,
    decrypted, and the packet rebuilds to its bytes — with a stack far smaller than Python's."""
    import sys

    from scapy.config import conf

    frames = [seal_frame(SECRET, GID, 1, 0, 2, 101, 7, i + 1, GTP_HI).to_cbor() for i in range(n)]
    cut = encode_record(frames[0])[:-2]
    wire = b"".join(encode_record(f) for f in frames) + cut
    monkeypatch.setattr(conf, "debug_dissector", True)  # an exception in a layer escapes
    monkeypatch.setattr(sys, "setrecursionlimit", sys.setrecursionlimit)
    sys.setrecursionlimit(600)  # below what a chain of 500 records would need
    try:
        with keylog_in_use(_log()):
            pkt = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=7878) / Raw(wire)
            pkt = Ether(bytes(pkt))
            text = pkt.show(dump=True)
            records, layer = [], pkt[GbpRecord]
            while isinstance(layer, GbpRecord):
                records.append(layer)
                layer = layer.payload
            assert len(records) == min(n + 1, MAX_CHAIN)
            if n + 1 > MAX_CHAIN:
                assert isinstance(layer, GbpRecordList) and "more GBP records" in layer.summary()
                records += layer.records
            else:  # the cut record ends the chain, its bytes Raw
                assert isinstance(layer, Raw) and isinstance(layer.payload, NoPayload)
            assert len(records) == n + 1
            assert [r.body.seq for r in records[:n]] == list(range(1, n + 1))
            assert all(r.body[GtpMessage].text == "hi" for r in records[:n])
            assert "GBP-RECORD-TRUNCATED" in records[-1].error and records[-1][Raw].load == cut
            assert bytes(pkt[TCP].payload) == wire and "GBP-RECORD-TRUNCATED" in text
    finally:
        sys.setrecursionlimit(1000)


def test_udp_datagrams_with_and_without_prefix():
    f = CoreFrame.build(GID, 1, 0, 3, 103, 7, 1, b"z").to_cbor()
    for payload, layer in ((f, GbpFrame), (encode_record(f), GbpRecord)):
        p = Ether(bytes(Ether() / IP() / UDP(sport=3, dport=7878) / Raw(payload)))
        assert isinstance(p[UDP].payload, layer)
        assert p[GbpFrame].sid == 103


def test_heuristic_other_ports_and_fallback():
    f = CoreFrame.build(GID, 1, 0, 2, 101, 7, 1, b"x").to_cbor()
    rec = encode_record(f)
    assert looks_like_record(rec) and not looks_like_record(rec[:-1]) and not looks_like_record(b"GET /")
    wire = bytes(Ether() / IP() / TCP(sport=5555, dport=6666) / Raw(rec))
    assert GbpFrame in Ether(wire)
    disable_heuristic()
    try:
        assert GbpFrame not in Ether(wire) and Raw in Ether(wire)
    finally:
        enable_heuristic()
    enable_heuristic()  # idempotent
    assert sum(1 for _f, c in TCP.payload_guess if c.__name__ == "GbpHeuristic") == 1
    # a layer bound after us is still found through the heuristic's fallback
    from scapy.layers.http import HTTPRequest

    http = Ether(bytes(Ether() / IP() / TCP(sport=40000, dport=80) / Raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")))
    assert HTTPRequest in http


def test_decryption_with_epoch_offset_and_keystore_api(tmp_path):
    pt = CoreGap(5, 1, 960, 7, b"\x01\x02").to_bytes()
    wire = seal_frame(SECRET, GID, 7, 0, 1, 102, 1, 3, pt).to_cbor()
    use_keylog(_log(epoch=2))
    assert "GBP-AEAD-NOKEY" in GbpFrame(wire).crypto
    set_mls_epoch_offset(-5)
    pkt = GbpFrame(wire)
    assert pkt.crypto == "decrypted (MLS epoch 2)" and pkt[GapPayload].msid == 5
    with pytest.raises(UsageError):
        use_keylog(42)
    bad = tmp_path / "bad.log"
    bad.write_text("MLS_EXPORTER_SECRET nothex 1 00\n")
    with pytest.raises(KeyLogError):
        use_keylog(bad)
    good = tmp_path / "good.log"
    _log(1).append_to(good)
    with keylog_in_use(good) as log:
        assert current_keylog() is log and log.exporter_secret(GID, 1) == SECRET
    assert current_keylog() is not None and current_keylog().exporter_secret(GID, 2) == SECRET


@pytest.mark.parametrize("profile", ["rfc9605", "draft-1.5"])
def test_sframe_built_sealed_and_opened_by_the_core_session(profile):
    use_keylog(_log(epoch=1))
    opus = b"\xfc" + bytes(range(30))
    kid = 3 << 16 | 1 if profile == "rfc9605" else 1 << 16 | 3
    frame = (GbpFrame(gid=GID, ep=1, sid=202, fl=1, seq=4)
             / GapPayload(msid=9, seq=1, ts=960, kp=1)
             / SFrame(kid=kid, ctr=5, profile=profile) / Raw(opus))
    wire = bytes(frame)
    pkt = GbpFrame(wire)
    sf = pkt[SFrame]
    assert sf.crypto.startswith(f"decrypted ({profile}") and sf[Raw].load == opus
    assert (sf.kid, sf.ctr, sf.leaf) == (kid, 5, "3")
    # an independent path: the core's SFrame session on the GAP opus bytes
    session = SFrameSession.from_keylog(current_keylog(), GID, 1, profile=profile)
    res = session.decrypt(bytes(pkt[GapPayload].opus))
    assert (res.plaintext, res.sender_leaf) == (opus, 3)
    if profile == "rfc9605":
        assert bytes(pkt[GapPayload].opus)[:4] == bytes.fromhex("a5030001")  # reference-map §7 form
    use_keylog(None)
    assert isinstance(GbpFrame(wire).payload, NoPayload)


@pytest.mark.interop
def test_error_objects_match_the_reference_lookup():
    import gbp_stack

    for code, spec in ERROR_SPECS.items():
        ref = gbp_stack.lookup_error(code)
        assert ref == lookup_error(code)
        e = GbpErrorObject(ref)
        assert (e.code, e.cls, bool(e.retryable), bool(e.fatal)) == (
            code, int(spec.error_class), spec.retryable, spec.fatal)
        assert e.reason == spec.name.encode() or e.reason == spec.name
        assert bytes(e) == ref
        assert e.sprintf("%code%") == spec.code.name


def test_every_layer_lists_and_builds_with_defaults(capsys):
    import gbp_lab.dissectors as d
    from scapy.packet import ls

    for name in ("GbpFrame", "GbpRecord", "GbpControl", "GbpCborArgs", "GbpErrorObject",
                 "GtpMessage", "GtpAttachmentManifest", "GtpAttachmentChunk", "GapPayload",
                 "SFrame", "GspSignal", "MLSMessage", "MLSWelcome", "MLSKeyPackage"):
        cls = getattr(d, name)
        ls(cls)
        assert cls.fields_desc[0].name in capsys.readouterr().out  # ls prints the fields
        # defaults build with the core and dissect back (MLS views need a core object; the
        # empty CBOR-args value and an MLSMessage without a body are not valid messages)
        if name not in ("MLSWelcome", "MLSKeyPackage", "MLSMessage", "GbpCborArgs"):
            pkt = cls()
            again = cls(bytes(pkt))  # defaults build with the core and dissect back
            assert again.getfieldval("error") is None, (name, again.error)
            assert bytes(again) == bytes(pkt)


def test_gtp_attachment_children():
    from gbp_lab.core.gtp.message import GtpMessage as CoreGtp, split_attachment
    from gbp_lab.dissectors import GtpAttachmentChunk, GtpAttachmentManifest

    manifest, chunks = split_attachment(42, "a.txt", "text/plain", b"0123456789", chunk_size=4)
    for codec in (0, 1, 2):
        for part, layer in ((manifest, GtpAttachmentManifest), (chunks[1], GtpAttachmentChunk)):
            body = part.to_bytes(codec)
            msg = CoreGtp(message_id=1, sender_id=2, content_type=3, content=body).to_bytes(codec)
            pkt = GtpMessage.dissect_as(msg, codec)
            child = pkt[layer]
            assert child.aid == 42 and bytes(pkt) == msg
            if layer is GtpAttachmentManifest:
                assert (child.nc, bytes(child.hash)) == (3, manifest.sha256)
            else:
                assert (child.idx, child.data) == (1, b"4567")


def test_out_of_range_flags_show_and_round_trip():
    """A frame whose ``fl`` is negative (lenient decoding keeps it as a defect) still shows,
    summarises and rebuilds to its own bytes (found by hypothesis: show() never returned)."""
    import cbor2

    from gbp_lab.dissectors import GbpFrame as GbpFrameLayer

    raw = cbor2.dumps({"v": 1, "gid": bytes(16), "ep": 1, "tid": 0, "st": 2, "sid": 101,
                       "fl": -5, "seq": 1, "psz": 2, "pl": b"hi"})
    pkt = GbpFrameLayer(raw)
    text = pkt.show(dump=True)
    assert "fl" in text and pkt.defects
    assert bytes(pkt) == raw
