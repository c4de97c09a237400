"""Compressed captures (gzip, xz, bzip2, Zstandard) read transparently, detected by magic bytes,
decompressed as a stream (gbp_lab/capture/pcapfile.py); key logs the lab writes are owner-only."""
from __future__ import annotations

import bz2
import gzip
import lzma
import os
import pathlib
import stat

import pandas as pd
import pytest

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


def test_zstandard_capture(tmp_path):
    try:
        import zstandard
    except ImportError:
        zstandard = None
    path = tmp_path / "c.pcap.zst"
    if zstandard is None:  # without the optional package: a typed error naming it
        path.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(16))
        with pytest.raises(CaptureFormatError, match="zstandard") as ei:
            read_capture(path)
        assert ei.value.vid == "CAP-ZSTD"
    else:
        path.write_bytes(zstandard.ZstdCompressor().compress(SOURCE.read_bytes()))
        assert len(read_capture(path).frames) == len(read_capture(SOURCE).frames)


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
