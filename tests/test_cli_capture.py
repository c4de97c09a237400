"""``gbp-lab dissect`` and ``gbp-lab inject-secrets`` (through gbp_lab.cli.main, as the console
script runs them)."""
from __future__ import annotations

import pathlib
import re
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # pytest runs with importlib mode
import refpeer  # noqa: E402

from gbp_lab.capture.model import read_capture  # noqa: E402
from gbp_lab.capture.pcap import read_packets  # noqa: E402
from gbp_lab.cli import main  # noqa: E402

CAPTURES = pathlib.Path(__file__).parent / "captures"
LINE = re.compile(r"^\s*(\d+)\s+(\d+\.\d{6})\s+(\S+)\s+→\s+(\S+)\s+(GTP|GAP|GSP|GBP|MLS)\s+(.*)$")


def test_dissect_prints_one_tshark_like_line_per_frame(capsys):
    assert main(["dissect", str(CAPTURES / "secrets.pcapng")]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    cap = read_capture(CAPTURES / "secrets.pcapng")
    assert len(lines) == len(cap.frames)
    for line, row in zip(lines, cap.frames.itertuples()):
        m = LINE.match(line)
        assert m, line
        assert int(m.group(1)) == row.Index and m.group(5) == row.protocol
        assert m.group(3).endswith(f":{row.sport}") and m.group(4).endswith(f":{row.dport}")
        assert row.info in m.group(6)
        # the relative time, seconds since the first packet (as tshark shows it)
        assert float(m.group(2)) == pytest.approx(row.rel_time, abs=1e-6)
    assert 0.0 <= float(LINE.match(lines[0]).group(2)) < 1.0
    assert "GBP-AEAD-TAG" in err  # defects on stderr


def test_dissect_filter_errors_findings_and_bad_input(capsys, tmp_path):
    assert main(["dissect", str(CAPTURES / "secrets.pcapng"), "--filter", "protocol == 'GTP'"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(" GTP " in l for l in out)
    assert main(["dissect", str(CAPTURES / "defects.pcap"), "--errors", "--findings"]) == 0
    out = capsys.readouterr().out
    assert "GBP-RECORD-OVERSIZE" in out and "findings" in out and "capture_defect" in out
    assert main(["dissect", str(CAPTURES / "defects.pcap"), "--filter", "nope ==="]) == 2
    assert "bad --filter" in capsys.readouterr().err
    missing = tmp_path / "missing.pcap"
    assert main(["dissect", str(missing)]) == 2
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    assert main(["dissect", str(junk)]) == 2
    assert "CAP-MAGIC" in capsys.readouterr().err
    bad_keys = tmp_path / "bad.log"
    bad_keys.write_text("MLS_EXPORTER_SECRET zz 1 00\n")
    assert main(["dissect", str(CAPTURES / "defects.pcap"), "--keylog", str(bad_keys)]) == 2


@pytest.mark.interop
def test_inject_secrets_then_dissect_decrypts(tmp_path, capsys):
    """A live reference session captured without keys; inject the key log; dissect decrypts."""
    from test_capture_model import tap_capture

    with refpeer.two_member_group() as grp:
        frames = refpeer.reference_frames(grp)
        keys = grp.keylog("bob")
    bare = tap_capture(tmp_path / "bare.pcap", [(True, f.wire) for f in frames])
    assert main(["dissect", str(bare)]) == 0
    plain = capsys.readouterr().out
    assert "encrypted" in plain and "hello CBOR" not in plain
    log = tmp_path / "keys.log"
    log.write_text(keys.dump())
    out = tmp_path / "with_keys.pcapng"
    assert main(["inject-secrets", str(bare), str(log), str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    packets, reader = read_packets(out)
    assert reader.gbp_keylog_text == keys.dump()
    assert len(packets) == len(read_packets(bare)[0])
    assert main(["dissect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "GTP mid=100 from=1 ct=0 'hello CBOR ✓'" in text and "encrypted" not in text
    # bad key log: nothing written
    bad = tmp_path / "bad.log"
    bad.write_text("MLS_EXPORTER_SECRET 00 x\n")
    assert main(["inject-secrets", str(bare), str(bad), str(tmp_path / "x.pcapng")]) == 2
    assert not (tmp_path / "x.pcapng").exists()
    assert main(["inject-secrets", str(bare), str(log), str(bare)]) == 2
