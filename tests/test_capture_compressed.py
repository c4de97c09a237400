"""Compressed captures (gzip, xz, bzip2, Zstandard) read transparently, detected by magic bytes,
decompressed as a stream (gbp_lab/capture/pcapfile.py); key logs the lab writes are owner-only."""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pathlib
import stat
import zlib

import pandas as pd
import pytest
import zstandard

from gbp_lab.capture.model import read_capture
from gbp_lab.capture.pcapfile import CaptureFormatError, CaptureReader, compression_of
from gbp_lab.capture.stream import iter_capture
from gbp_lab.cli import main
from gbp_lab.core.keylog import KeyLog

CAPTURES = pathlib.Path(__file__).parent / "captures"
SOURCE = CAPTURES / "segmented.pcap"
SECRETS = CAPTURES / "secrets.pcapng"  # GBPK secrets block: decrypts without a key log
COMPRESS = {"gz": gzip.compress, "xz": lzma.compress, "bz2": bz2.compress}


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_compressed_capture_reads_like_the_plain_one(tmp_path, kind):
    plain = read_capture(SECRETS)
    assert plain.frames["decrypted"].any()
    data = COMPRESS[kind](SECRETS.read_bytes())
    assert compression_of(data[:6]) == kind
    path = tmp_path / "capture.bin"  # the name says nothing: the magic decides
    path.write_bytes(data)
    cap = read_capture(path)
    pd.testing.assert_frame_equal(cap.frames, plain.frames)
    pd.testing.assert_frame_equal(cap.errors, plain.errors)
    assert cap.plaintexts == plain.plaintexts
    # bytes and file objects too, and the streaming reader
    assert read_capture(data).frames["info"].tolist() == plain.frames["info"].tolist()
    with open(path, "rb") as fh:
        assert len(read_capture(fh).frames) == len(plain.frames)
    chunks = list(iter_capture(path, chunksize=2, progress=False))
    assert sum(len(c) for c in chunks) == len(plain.frames)


def test_cut_short_and_corrupt_compressed_files(tmp_path):
    data = gzip.compress(SOURCE.read_bytes())
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(data[: len(data) // 2])
    cap = read_capture(cut)  # what decompressed is read; the truncation is a defect row
    assert 0 < len(cap.frames) < len(read_capture(SOURCE).frames)
    assert cap.errors["vid"].str.startswith("CAP-TRUNCATED").any()
    bad = tmp_path / "bad.xz"
    bad.write_bytes(b"\xfd7zXZ\x00" + bytes(64))
    with pytest.raises(CaptureFormatError) as ei:
        CaptureReader(bad)
    assert ei.value.vid == "CAP-COMPRESSED"


def _zst_blocks(data: bytes, block: int = 1024) -> bytes:
    """*data* as one Zstandard frame of many blocks (a cut then still leaves whole blocks)."""
    buf = io.BytesIO()
    w = zstandard.ZstdCompressor().stream_writer(buf, closefd=False)
    for i in range(0, len(data), block):
        w.write(data[i:i + block])
        w.flush(zstandard.FLUSH_BLOCK)
    w.close()
    return buf.getvalue()


def test_zstandard_capture_reads_like_the_plain_one(tmp_path):
    plain = read_capture(SECRETS)
    data = _zst_blocks(SECRETS.read_bytes())
    assert compression_of(data[:6]) == "zst"
    path = tmp_path / "capture.bin"  # by magic, not by name
    path.write_bytes(data)
    cap = read_capture(path)
    pd.testing.assert_frame_equal(cap.frames, plain.frames)
    pd.testing.assert_frame_equal(cap.errors, plain.errors)
    assert cap.plaintexts == plain.plaintexts and plain.frames["decrypted"].any()
    assert sum(len(c) for c in iter_capture(path, chunksize=3, progress=False)) == len(plain.frames)
    # two frames back to back (zstd -c a b > c.zst): one capture and the junk after it
    two = zstandard.ZstdCompressor().compress(SOURCE.read_bytes()[:100])
    path.write_bytes(zstandard.ZstdCompressor().compress(SOURCE.read_bytes()[:24]) + two)
    assert CaptureReader(path).size == 124


def test_truncated_zstandard_capture_is_an_error_row(tmp_path):
    full = read_capture(SOURCE)
    data = _zst_blocks(SOURCE.read_bytes())
    path = tmp_path / "cut.zst"
    for cut in (len(data) // 2, len(data) - 3):  # mid-file; in the last block (all packets may be whole)
        path.write_bytes(data[:cut])
        cap = read_capture(path)  # what decompressed is read; the cut is one defect row
        assert len(cap.frames) < len(full.frames) or cut == len(data) - 3
        assert cap.frames["info"].tolist() == full.frames["info"].tolist()[:len(cap.frames)]
        cut_rows = cap.errors[cap.errors["vid"].str.startswith("CAP-TRUNCATED")]
        assert len(cut_rows) == 1, cap.errors
    # cut inside the frame header: nothing decompressed → a typed error, not an empty capture
    path.write_bytes(data[:6])
    with pytest.raises(CaptureFormatError) as ei:
        read_capture(path)
    assert ei.value.vid == "CAP-COMPRESSED" and "zst" in ei.value.message
    path.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(range(200)))  # garbage after the magic
    with pytest.raises(CaptureFormatError) as ei:
        CaptureReader(path)
    assert ei.value.vid == "CAP-COMPRESSED"


def test_a_cut_on_a_packet_boundary_is_still_reported(tmp_path):
    """The decompressed bytes end exactly after a whole packet: only the compressed stream knows
    the file was cut (``CAP-TRUNCATED-COMPRESSED``), for zstd and gzip alike."""
    raw = SOURCE.read_bytes()
    n_packets = sum(1 for _ in CaptureReader(SOURCE))
    reader = CaptureReader(SOURCE)
    ends = [24]
    for p in reader:
        ends.append(ends[-1] + 16 + len(p.data))
    keep = raw[:ends[n_packets // 2]]
    comp = zstandard.ZstdCompressor()
    cobj = comp.compressobj()
    zdata = cobj.compress(keep) + cobj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)  # no frame end
    gz = gzip.compress(raw)
    for kind, data in (("zst", zdata), ("gz", None)):
        path = tmp_path / f"cut.{kind}"
        if data is None:
            d = zlib_stream_cut(raw, len(keep))
            data = d
        path.write_bytes(data)
        r = CaptureReader(path)
        got = sum(1 for _ in r)
        assert got == n_packets // 2
        assert [i.vid for i in r.issues] == ["CAP-TRUNCATED-COMPRESSED"], (kind, r.issues)
    assert gz  # the whole file reads without defects
    r = CaptureReader(gz)
    assert sum(1 for _ in r) == n_packets and r.issues == []


def zlib_stream_cut(raw: bytes, keep: int) -> bytes:
    """A gzip member holding *raw*, cut right after the deflate output of its first *keep*
    bytes was flushed (no trailer): the decompressed bytes end on that boundary."""
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(raw[:keep]) + c.flush(zlib.Z_SYNC_FLUSH)


def test_dissect_cli_reads_a_compressed_capture(tmp_path, capsys):
    path = tmp_path / "capture.pcapng.bz2"
    path.write_bytes(bz2.compress(SECRETS.read_bytes()))
    assert main(["dissect", str(SECRETS)]) == 0
    plain = capsys.readouterr().out
    assert main(["dissect", str(path)]) == 0
    assert capsys.readouterr().out == plain and plain


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_key_logs_the_lab_writes_are_owner_only(tmp_path):
    log = KeyLog.parse(read_capture(SECRETS).keylog.dump())
    path = tmp_path / "keys.log"
    old = os.umask(0o022)
    try:
        log.append_to(path)
        assert _mode(path) == 0o600
        log.append_to(path)
        assert _mode(path) == 0o600 and KeyLog.load(path) == log
        out = tmp_path / "with_keys.pcapng"
        assert main(["inject-secrets", str(SOURCE), str(path), str(out)]) == 0
        assert _mode(out) == 0o600
        assert read_capture(out).keylog == log
    finally:
        os.umask(old)
