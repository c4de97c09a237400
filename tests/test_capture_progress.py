"""read_capture's tqdm bar (issue 14): bytes, shown for files of a few MB, ``progress=False``
hides it; small files read silently."""
from __future__ import annotations

import struct
from pathlib import Path

from gbp_lab.capture import model
from gbp_lab.capture.model import read_capture
from gbp_lab.capture.progress import PROGRESS_MIN_BYTES, ByteProgress, size_of

CAPTURES = Path(__file__).parent / "captures"


def _big_pcap(path: Path, size: int) -> Path:
    """A classic pcap (Ethernet) with one GBP-free UDP-less packet per 64 KiB: ``size`` bytes."""
    hdr = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    body = b"\x00" * 12 + b"\x88\xb5" + bytes(65536 - 14)  # local experimental ethertype
    rec = struct.pack("<IIII", 1_700_000_000, 0, len(body), len(body)) + body
    n = size // len(rec) + 1
    path.write_bytes(hdr + rec * n)
    return path


def test_read_capture_shows_a_byte_bar_on_big_files_only(tmp_path, capsys):
    big = _big_pcap(tmp_path / "big.pcap", PROGRESS_MIN_BYTES + (1 << 20))
    cap = read_capture(big)
    err = capsys.readouterr().err
    assert cap.stats.packets == size_of(big) // (65536 + 16) and cap.stats.non_ip == cap.stats.packets
    # tqdm's bytes bar: unit B, scaled, total = the file size
    assert "capture" in err and "B/s" in err and f"/{size_of(big) / 1e6:.2f}M" in err
    read_capture(big, progress=False)
    assert capsys.readouterr().err == ""
    small = read_capture(CAPTURES / "secrets.pcapng")  # a few kB: no bar
    assert len(small.frames) and capsys.readouterr().err == ""


def test_threshold_and_bar_reaches_the_file_size(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(model, "PROGRESS_MIN_BYTES", 1000)
    cap = read_capture(CAPTURES / "secrets.pcapng")
    assert len(cap.frames) and "capture" in capsys.readouterr().err
    p = ByteProgress(CAPTURES / "secrets.pcapng", min_bytes=1 << 30)
    assert p.bar is None and p.on_raw is None  # under the threshold: the loop pays nothing
    p = ByteProgress(CAPTURES / "secrets.pcapng", min_bytes=1)
    total = size_of(CAPTURES / "secrets.pcapng")
    p.on_raw((0, 0, 1, 0.0, 0, 1, 10, b"x" * 10))
    assert p.bar.total == total
    p.close()
    assert p.bar is None
    p.close()  # idempotent
    assert ByteProgress(open(CAPTURES / "secrets.pcapng", "rb"), min_bytes=100).bar is None
