"""The generated Wireshark dissector (gbp_lab/wireshark/gbp.lua) run by the real ``tshark``
(Debian's 4.0 via ``make tshark``) on the reference-made test captures and the demo: frame for
frame the header values of our ``frames`` table; defects show as expert info, never a Lua error."""
from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gbp_lab.capture import read_capture
from gbp_lab.wireshark.generator import PLUGIN_NAME, generate, plugin_path

ROOT = Path(__file__).resolve().parents[1]
CAPS = ROOT / "tests" / "captures"
DEMO = ROOT / "gbp_lab" / "data" / "demo" / "capture.pcap"
SEP = "\x1f"  # tshark aggregator for repeated fields (never in our values)
HEADER = ["gbp.version", "gbp.epoch", "gbp.transition_id", "gbp.stream_type", "gbp.stream_id",
          "gbp.sender", "gbp.flags", "gbp.seq", "gbp.psz", "gbp.codec"]
COLUMNS = ["epoch", "transition_id", "stream_type", "stream_id", "sender", "flags",
           "sequence_no", "payload_size"]


def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.fail("tshark is missing: run `make tshark` as root (apt-get install -y tshark)")
    return path


def run_fields(cap, fields, *extra, lua=None):
    """{frame number: {field: [values]}} for the packets that carry any of *fields*."""
    cmd = [tshark(), "-X", f"lua_script:{lua or plugin_path()}", "-r", str(cap), "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=a", "-E", f"aggregator={SEP}",
           "-e", "frame.number"]
    for f in fields:
        cmd += ["-e", f]
    res = subprocess.run(cmd + list(extra), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 or "cut short" in res.stderr, res.stderr
    assert "Lua Error" not in res.stderr + res.stdout, res.stderr
    out = {}
    for line in res.stdout.splitlines():
        cells = line.split("\t")
        vals = {f: (c.split(SEP) if c else []) for f, c in zip(fields, cells[1:])}
        if any(vals.values()):
            out[int(cells[0])] = vals
    return out


def ours(cap):
    """Our frames table as {frame number: [header tuple per GBP frame]} and MLS names."""
    c = read_capture(str(cap))
    f = c.frames
    frames, mls = {}, {}
    for r in f.itertuples(index=False):
        if r.protocol == "MLS":
            mls.setdefault(int(r.packet) + 1, []).append(r.info.split(" ")[0])
        else:
            frames.setdefault(int(r.packet) + 1, []).append(
                tuple(int(getattr(r, k)) for k in COLUMNS))
    return frames, mls, c


@functools.lru_cache(maxsize=None)
def theirs(cap):
    got = run_fields(cap, HEADER + ["gbp.mls"])
    frames, mls = {}, {}
    for no, v in got.items():
        if v["gbp.mls"]:
            mls[no] = v["gbp.mls"]
        rows = list(zip(*(v[h] for h in ["gbp.epoch", "gbp.transition_id", "gbp.stream_type",
                                          "gbp.stream_id", "gbp.sender", "gbp.flags",
                                          "gbp.seq", "gbp.psz"])))
        if rows:
            frames[no] = [tuple(int(x, 0) for x in row) for row in rows]
        assert all(x == "1" for x in v["gbp.version"])
    return frames, mls


def test_checked_in_plugin_is_the_generators_output():
    assert plugin_path().name == PLUGIN_NAME
    assert plugin_path().read_text(encoding="utf-8") == generate(), \
        "run: python -m gbp_lab.wireshark.generator"


def test_plugin_is_made_from_the_registries():
    from gbp_lab.core.gbp.registry import STREAM_TYPES, ControlOpcode
    from gbp_lab.core.gsp.signal import SignalType

    lua = generate()
    for info in STREAM_TYPES.values():
        assert f'="{info.name}"' in lua and f'="{info.protocol}"' in lua
    for op in ControlOpcode:
        assert f'[{int(op)}]="{op.name}"' in lua
    for s in SignalType:
        assert f'[{int(s)}]="{s.name}"' in lua
    for name in ["gbp.version", "gbp.group_id", "gbp.epoch", "gbp.transition_id",
                 "gbp.stream_type", "gbp.stream_id", "gbp.sender", "gbp.flags", "gbp.seq",
                 "gbp.psz", "gbp.payload", "gbp.codec", "gbpctl.opcode", "gbpctl.request_id",
                 "gtp.message_id", "gtp.sender_id", "gtp.text", "gap.media_source_id",
                 "gap.rtp_seq", "gap.rtp_timestamp", "sframe.kid", "sframe.ctr", "gsp.signal",
                 "gsp.request_id"]:
        assert f'F["{name}"] = ProtoField.' in lua, name


def test_tshark_registers_every_filter_field():
    res = subprocess.run([tshark(), "-G", "fields", "-X", f"lua_script:{plugin_path()}"],
                         capture_output=True, text=True, timeout=120)
    names = {line.split("\t")[2] for line in res.stdout.splitlines()
             if line.startswith("F\t")}
    for name in ["gbp.epoch", "gbp.sender", "gbp.flags.critical", "gbpctl.opcode", "gtp.text",
                 "gap.rtp_seq", "sframe.kid", "gsp.signal", "gsp.request_id"]:
        assert name in names


@pytest.mark.parametrize("cap", [CAPS / "segmented.pcap", CAPS / "multi_if.pcapng",
                                 CAPS / "secrets.pcapng", DEMO],
                         ids=lambda p: p.name)
def test_frame_for_frame_equal_to_our_frames_table(cap):
    want, want_mls, c = ours(cap)
    got, got_mls = theirs(cap)
    assert sum(map(len, want.values())) > 0
    assert got == want  # frame for frame (secrets.pcapng: the mid-stream SLL flow included)
    assert got_mls == want_mls


def test_segmented_capture_reassembles_split_coalesced_and_heuristic_records():
    got, _ = theirs(CAPS / "segmented.pcap")
    counts = sorted(len(v) for v in got.values())
    assert max(counts) >= 4  # coalesced records, one packet
    sids = {row[3] for rows in got.values() for row in rows}
    assert 301 in sids  # port 9000: found by the heuristic


def _crafted(tmp_path):
    """A pcapng: TCP 7878 record with psz != len(pl), one with a bad CBOR map, a UDP datagram."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    from gbp_lab.capture.pcapwriter import PcapngWriter
    from gbp_lab.core.gbp.frame import encode_frame
    from gbp_lab.core.gbp.framing import encode_record

    gid = bytes(range(16))
    bad_psz = encode_frame(gid, 3, 1, 2, 101, 7, 9, b"x" * 20, payload_size=21)
    broken = b"\xaa\x61\x76\x01\x63gid\x50" + b"\x00" * 5  # map cut inside the group id
    good = encode_frame(gid, 3, 1, 1, 202, 1, 5, b"y" * 30)
    path = tmp_path / "crafted.pcapng"
    seq = 1000
    with PcapngWriter(path) as w:
        w.add_interface(1)
        for i, rec in enumerate([encode_record(bad_psz), encode_record(broken)]):
            pkt = (Ether() / IP(src="10.0.0.1", dst="10.0.0.2") /
                   TCP(sport=40000, dport=7878, seq=seq, flags="PA") / rec)
            seq += len(rec)
            w.write_packet(bytes(pkt), time=1.0 + i)
        pkt = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000, dport=7878) / good
        w.write_packet(bytes(pkt), time=3.0)
    return path


def test_psz_mismatch_and_malformed_records_are_expert_info_not_lua_errors(tmp_path):
    cap = _crafted(tmp_path)
    got = run_fields(cap, ["gbp.psz", "gbp.seq", "gbp.stream_id", "_ws.expert.message"])
    msgs = {no: " ".join(v["_ws.expert.message"]) for no, v in got.items()}
    assert "psz=21 but pl has 20 bytes" in msgs[1]
    assert "frame: truncated" in msgs[2]
    assert got[3]["gbp.stream_id"] == ["202"] and got[3]["gbp.seq"] == ["5"]  # UDP
    assert not any("internal" in m or "gbp.lua:" in m for m in msgs.values())


@pytest.mark.parametrize("cap", [CAPS / "defects.pcap", CAPS / "truncated.pcap"],
                         ids=lambda p: p.name)
def test_defective_captures_never_raise_lua_errors(cap):
    got = run_fields(cap, ["gbp.seq", "_ws.expert.message"])
    text = " ".join(" ".join(v["_ws.expert.message"]) for v in got.values())
    assert "gbp.lua:" not in text  # a Lua error caught by the dissector would name the file
    assert any(v["gbp.seq"] for v in got.values())


def test_wireshark_plugin_command_writes_a_plugin_tshark_loads(tmp_path):
    exe = Path(sys.executable).with_name("gbp-lab")
    res = subprocess.run([str(exe), "wireshark-plugin", str(tmp_path / "plugins")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "plugins" / PLUGIN_NAME
    assert out.read_text(encoding="utf-8") == generate()
    assert f"tshark -X lua_script:{out}" in res.stdout
    got = run_fields(CAPS / "segmented.pcap", ["gbp.stream_id"], "-Y", "gbp.sender == 3", lua=out)
    assert {v for vals in got.values() for v in vals["gbp.stream_id"]} == {"301"}


def test_personal_plugin_dir_follows_wireshark_conventions(tmp_path, monkeypatch):
    from gbp_lab.wireshark.plugin_cmd import install_plugin, personal_plugin_dir

    assert personal_plugin_dir({"XDG_CONFIG_HOME": "/x"}, windows=False) == \
        Path("/x/wireshark/plugins")
    assert personal_plugin_dir({"HOME": "/h"}, windows=False) == \
        Path("/h/.config/wireshark/plugins")
    assert personal_plugin_dir({"APPDATA": "C:/a"}, windows=True) == \
        Path("C:/a/Wireshark/plugins")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert install_plugin() == tmp_path / "wireshark" / "plugins" / PLUGIN_NAME
