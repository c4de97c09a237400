"""``gbp-lab export-decrypted``: the real ``tshark`` with ``gbp.lua`` on the exported PDUs shows,
frame for frame, our ``messages``, ``signals`` and ``audio`` tables, the original endpoints,
frame numbers and times; frames without a key stay, marked "not decrypted"."""
from __future__ import annotations

import pathlib
import struct
import subprocess
import sys
from decimal import Decimal

import pandas as pd
import pytest

from gbp_lab.capture import read_capture
from gbp_lab.core.gbp.frame import decode_frame
from gbp_lab.wireshark.export import (DISSECTOR_DECRYPTED, LINKTYPE_WIRESHARK_UPPER_PDU,
                                      decrypted_frame, export_decrypted, exported_pdu)

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # pytest runs with importlib mode
from test_wireshark import CAPS, DEMO, run_fields  # noqa: E402

KEYS = DEMO.with_name("keys.log")
CASES = {"demo": (DEMO, KEYS), "secrets": (CAPS / "secrets.pcapng", None),
         "multi_if": (CAPS / "multi_if.pcapng", None)}
FIELDS = ["frame.time_epoch", "exported_pdu.orig_fno", "exported_pdu.src_port",
          "exported_pdu.dst_port", "exported_pdu.ipv4_src", "exported_pdu.ipv6_dst",
          "exported_pdu.prot_name", "gtp.text", "gsp.signal", "gap.rtp_seq", "sframe.kid",
          "sframe.ctr", "gbp.seq", "gbp.mls", "_ws.expert.message"]


def _ns(t) -> int:
    if isinstance(t, pd.Timestamp):
        return int(t.value)
    if isinstance(t, Decimal):  # tshark's frame.time_epoch: exact to the nanosecond
        return int(t * 10 ** 9)
    return int(Decimal(repr(float(t))) * 10 ** 9)


def _by_frame(df, col):
    return {int(fr) + 1: v for fr, v in zip(df["frame"], df[col]) if not pd.isna(v)}


def _field(got, name, conv=str):
    return {no: conv(v[name][0]) for no, v in got.items() if v[name]}


@pytest.fixture(scope="module", params=sorted(CASES))
def exported(request, tmp_path_factory):
    cap_path, keys = CASES[request.param]
    cap = read_capture(str(cap_path), keys)
    out = tmp_path_factory.mktemp("export") / f"{request.param}.pcapng"
    stats = export_decrypted(cap, out)
    return cap, stats, run_fields(out, FIELDS), out


def test_plaintext_fields_equal_our_tables(exported):
    cap, stats, got, _ = exported
    assert _field(got, "gtp.text") == _by_frame(cap.messages, "text")
    assert _field(got, "gsp.signal", int) == _by_frame(cap.signals, "signal_type")
    assert _field(got, "gap.rtp_seq", int) == _by_frame(cap.audio, "rtp_sequence")
    assert _field(got, "sframe.kid", int) == _by_frame(cap.audio, "kid")
    assert _field(got, "sframe.ctr", int) == _by_frame(cap.audio, "ctr")
    assert stats.decrypted == int(cap.frames["decrypted"].sum())


def test_time_endpoints_and_frame_order_are_kept(exported):
    cap, stats, got, _ = exported
    f = cap.frames
    assert stats.packets == len(f) == len(got) > 0
    assert sorted(got) == list(range(1, len(f) + 1))
    for i, r in enumerate(f.itertuples(index=False)):
        v = got[i + 1]
        assert v["exported_pdu.orig_fno"] == [str(int(r.packet) + 1)]
        assert v["exported_pdu.src_port"] == [str(r.sport)]
        assert v["exported_pdu.dst_port"] == [str(r.dport)]
        assert _ns(Decimal(v["frame.time_epoch"][0])) == _ns(r.time)
        if ":" not in r.src:
            assert v["exported_pdu.ipv4_src"] == [r.src]
        if ":" in r.dst:
            assert v["exported_pdu.ipv6_dst"] == [r.dst]


def test_frames_without_a_key_stay_marked(exported):
    cap, _, got, _ = exported
    f = cap.frames
    for i, r in enumerate(f.itertuples(index=False)):
        v = got[i + 1]
        note = " ".join(v["_ws.expert.message"])
        if r.protocol == "MLS":
            assert v["gbp.mls"] and v["exported_pdu.prot_name"] == ["gbprec"]
        elif r.decrypted:
            assert v["exported_pdu.prot_name"] == [DISSECTOR_DECRYPTED]
            assert "not decrypted" not in note
        else:
            assert v["exported_pdu.prot_name"] == ["gbprec"]
            assert "not decrypted" in note
            assert v["gbp.seq"] == [str(r.sequence_no)]


def test_export_file_layout(exported):
    """One IDB of link type 252 at nanosecond resolution; the PDU after the end tag is the frame
    (re-encoded with the plaintext when decrypted)."""
    cap, _, _, out = exported
    data = out.read_bytes()
    assert struct.unpack_from("<II", data, 0)[0] == 0x0A0D0D0A
    shb_len = struct.unpack_from("<I", data, 4)[0]
    btype, _, linktype = struct.unpack_from("<IIH", data, shb_len)
    assert (btype, linktype) == (1, LINKTYPE_WIRESHARK_UPPER_PDU)
    i = next((k for k, p in enumerate(cap.plaintexts) if p is not None), None)
    if i is not None:
        pdu = decrypted_frame(cap.record(i), cap.plaintexts[i])
        frame = decode_frame(pdu)
        assert frame.payload == cap.plaintexts[i] and frame.payload_size == len(frame.payload)
        assert frame.sequence_no == int(cap.frames["sequence_no"][i])
        assert exported_pdu(DISSECTOR_DECRYPTED, pdu).endswith(b"\x00\x00\x00\x00" + pdu)


def test_exported_pdu_tags():
    b = exported_pdu("gbpdec", b"PDU", src="10.0.0.1", dst="fd00::2", transport="udp",
                     sport=1, dport=7878, frame_number=5)
    assert b.startswith(struct.pack(">HH", 12, 8) + b"gbpdec\x00\x00")
    assert struct.pack(">HH", 20, 4) + bytes([10, 0, 0, 1]) in b
    assert struct.pack(">HH", 23, 16) + b"\xfd" + b"\x00" * 14 + b"\x02" in b
    assert struct.pack(">HHI", 24, 4, 3) + struct.pack(">HHI", 25, 4, 1) in b
    assert struct.pack(">HHI", 30, 4, 5) in b and b.endswith(b"\x00" * 4 + b"PDU")
    assert exported_pdu("gbprec", b"", src="not-an-ip", transport="sll") == \
        struct.pack(">HH", 12, 8) + b"gbprec\x00\x00" + b"\x00" * 4


def test_export_decrypted_command(tmp_path):
    exe = pathlib.Path(sys.executable).with_name("gbp-lab")
    out = tmp_path / "dec.pcapng"
    res = subprocess.run([str(exe), "export-decrypted", str(DEMO), "--keylog", str(KEYS),
                          str(out)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "85 decrypted" in res.stdout and out.stat().st_mode & 0o077 == 0
    got = run_fields(out, ["gtp.text"], "-Y", "gtp.text")
    assert {v["gtp.text"][0] for v in got.values()} == \
        set(read_capture(str(DEMO), str(KEYS)).messages["text"])
    bad = subprocess.run([str(exe), "export-decrypted", str(tmp_path / "missing.pcap"),
                          str(tmp_path / "x.pcapng")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "cannot export" in bad.stderr
    assert not (tmp_path / "x.pcapng").exists() and not (tmp_path / "x.pcapng.part").exists()


def test_protobuf_and_flatbuffers_payloads_are_exported_in_cbor():
    from gbp_lab.core.gtp.message import GtpMessage
    from gbp_lab.core.payload_codec import decode

    cap = read_capture(str(DEMO), str(KEYS))
    codecs = {"PROTOBUF": 1, "FLATBUFFERS": 2}
    seen = set()
    for i, codec in enumerate(cap.frames["codec"]):
        if codec in codecs and cap.frames["protocol"][i] == "GTP":
            frame = decode_frame(decrypted_frame(cap.record(i), cap.plaintexts[i]))
            assert frame.payload_format == 0
            assert decode(GtpMessage, frame.payload) == \
                decode(GtpMessage, cap.plaintexts[i], codecs[codec])
            seen.add(codec)
    assert seen == set(codecs)
