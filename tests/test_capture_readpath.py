"""The capture read path (gbp_lab.capture.readpath): named row layouts, MLS records named by the
core's one classifier (by parsing), the record bytes kept by the Capture (Capture.record) and
lined up with the frames table whatever ports the read used."""
from __future__ import annotations

import pathlib
import sys
import itertools

import pytest

from gbp_lab.capture.columns import RowLayout
from gbp_lab.capture.model import read_capture
from gbp_lab.capture.readpath import (ERROR_COLUMNS, ERROR_ROW, FRAME_COLUMNS, FRAME_ROW, FRAME_TABLE,
                                      errors_table)
from gbp_lab.capture.records import ITEM_FIELDS, RecordItem
from gbp_lab.core.gbp.aead import seal_frame
from gbp_lab.core.gbp.framing import encode_record
from gbp_lab.core.gtp.message import GtpMessage
from gbp_lab.core.payload_codec import encode
from gbp_lab.sim.tap import Tap, pcap_bytes

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import mls_structs  # noqa: E402

SUITES = range(1, 8)
GID, SECRET = bytes(range(16)), bytes(range(32))


def _clock(start: float = 1_700_000_000.0, step: float = 0.001):
    counter = itertools.count()
    return lambda: start + step * next(counter)


def _frame(seq: int) -> bytes:
    msg = encode(GtpMessage.plain(1, seq, f"hello {seq}"))
    return seal_frame(SECRET, GID, 1, 0, 2, 101, 7, seq, msg).to_cbor()


def test_layouts_are_named_and_agree():
    # rel_time (seconds since the first packet) is every table's last column
    assert FRAME_COLUMNS == list(FRAME_TABLE.names) and ERROR_COLUMNS == list(ERROR_ROW.names) + ["rel_time"]
    assert set(FRAME_TABLE.names) - set(FRAME_ROW.names) == {"stream_name", "sender", "codec", "key_epoch",
                                                              "protocol", "quic_connection",
                                                              "quic_stream", "rel_time"}
    assert "pf" in FRAME_ROW and "pf" not in FRAME_TABLE
    assert FRAME_TABLE.dtypes["epoch"] == "UInt64" and FRAME_TABLE.dtypes["decrypted"] == "bool"
    assert ITEM_FIELDS == tuple(RecordItem.__dataclass_fields__)
    with pytest.raises(ValueError):
        RowLayout([("a", "Int64"), ("a", "text")])
    with pytest.raises(ValueError):
        RowLayout([("a", "int")])
    df = errors_table([(10**18 + 1, "a", 1, "b", 2, 0, "tcp", 5, 3, "record", "V", "text", None)],
                      10**18)
    assert list(df.columns) == ERROR_COLUMNS and str(df["frame"].dtype) == "Int64"
    # integer nanoseconds kept exactly; rel_time in seconds since t0
    assert str(df["time"].dtype) == "datetime64[ns, UTC]" and df["time"][0].value == 10**18 + 1
    assert df["rel_time"][0] == pytest.approx(1e-9)


@pytest.mark.parametrize("suite", SUITES)
def test_raw_key_packages_welcomes_group_infos_named_in_frames_table(suite):
    kp, w, gi = mls_structs.raw_structs(suite)
    tap = Tap(clock=_clock())
    tap.open(1, ("10.0.0.2", 50123), ("10.0.0.1", 7878))
    tap.data(1, True, encode_record(kp))
    tap.data(1, False, encode_record(w))
    tap.data(1, False, encode_record(gi))
    tap.data(1, True, encode_record(_frame(1)))
    tap.close(1, by_client=True)
    cap = read_capture(pcap_bytes(tap), f"EXPORTER_SECRET {GID.hex()} 1 {SECRET.hex()}\n")
    f = cap.frames
    mls = f[f["protocol"] == "MLS"]
    names = [i.split(" (")[0] for i in mls["info"]]
    assert names == [f"KeyPackage suite {suite}", f"Welcome suite {suite}",
                     f"GroupInfo suite {suite}"], list(mls["info"])
    assert list(f["protocol"]) == ["MLS", "MLS", "MLS", "GTP"]
    assert cap.errors.empty, cap.errors
    # the record bytes are kept, row by row
    assert [cap.record(i) for i in range(len(f))] == [kp, w, gi, _frame(1)]


def test_record_bytes_line_up_with_custom_ports():
    tap = Tap(clock=_clock())
    tap.open(1, ("10.0.0.2", 40000), ("10.0.0.1", 9999))  # not the default GBP port
    tap.open(2, ("10.0.0.3", 40001), ("10.0.0.1", 7878))  # the default port: not selected
    frames = [_frame(s) for s in range(1, 6)]
    for i, fr in enumerate(frames):
        tap.data(1, True, encode_record(fr))
        tap.data(2, True, encode_record(_frame(100 + i)))
    tap.close(1, by_client=True)
    tap.close(2, by_client=True)
    data = pcap_bytes(tap)
    cap = read_capture(data, ports=(9999,), heuristic=False)
    assert list(cap.frames["dport"]) == [9999] * 5
    assert [cap.record(i) for i in range(len(cap.frames))] == frames
    assert cap.record(-1) == frames[-1]
    with pytest.raises(IndexError):
        cap.record(5)
    both = read_capture(data)  # default port + heuristic: both connections, in packet order
    assert len(both.records) == len(both.frames) == 10
    for i, (sport, seq) in enumerate(zip(both.frames["sport"], both.frames["sequence_no"])):
        assert both.record(i) == _frame(int(seq)), (i, sport)
