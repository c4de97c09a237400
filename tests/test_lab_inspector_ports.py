"""FrameInspector shows, for frame N, frame N's record — also for a capture read with custom ports.

The inspector used to read the file a second time with the *default* ports (and heuristic) to get
the record bytes, so a capture read with ``ports=(9000,)`` could mis-align. Now the bytes come from
the capture itself (``Capture.record``). The capture here has the group's connections on port
9000 and a second relay port (7878) carrying other connections, so that a default-port read sees
another set of flows than the custom-port read.
"""
from __future__ import annotations

import dataclasses

import pytest

from gbp_lab.capture import read_capture
from gbp_lab.core.gbp.classify import RecordKind, classify_record
from gbp_lab.core.gbp.frame import decode_frame
from gbp_lab.sim.simulator import simulate
from gbp_lab.sim.tap import TapKind, write_pcap
from gbp_lab.widgets import FrameInspector, WidgetError

CUSTOM = 9000


@pytest.fixture(scope="module")
def capture_9000(tmp_path_factory):
    out = tmp_path_factory.mktemp("ports")
    res = simulate("demo", out, seed=3)
    events = []
    for ev in res.pcap_events(timestamps="virtual"):
        if ev.kind is TapKind.OPEN:  # odd connections on the custom port, even ones on 7878
            port = CUSTOM if ev.conn % 2 else 7878
            ev = dataclasses.replace(ev, server=("127.0.0.1", port))
        events.append(ev)
    path = out / "ports.pcap"
    write_pcap(events, path)
    keys = str(out / "keys.log")
    custom = read_capture(str(path), keylog=keys, ports=(CUSTOM,), heuristic=False)
    default = read_capture(str(path), keylog=keys)
    return custom, default


def _check_aligned(cap):
    fi = FrameInspector(cap)
    f = cap.frames
    assert len(f) > 0
    for label in f.index:
        data = fi.record(label)
        row = f.loc[label]
        assert data == cap.record(f.index.get_loc(label))
        rc = classify_record(data)
        if row["protocol"] == "MLS":
            assert rc.kind.is_mls
            continue
        assert rc.kind is RecordKind.GBP_FRAME
        fr = decode_frame(data)
        assert (fr.epoch, fr.stream_id, fr.sequence_no) == (
            row["epoch"], row["stream_id"], row["sequence_no"]), label
    return fi


def test_custom_ports_line_up(capture_9000):
    custom, default = capture_9000
    assert 0 < len(custom.frames) < len(default.frames)  # the reads see different flows
    assert ((custom.frames["sport"] == CUSTOM) | (custom.frames["dport"] == CUSTOM)).all()
    fi = _check_aligned(custom)
    # the tree of a selected frame is built from that frame's bytes
    gbp = custom.frames.index[custom.frames["protocol"] != "MLS"]
    fi.select(int(gbp[-1]))
    assert fi.tree[0].start == 0 and fi.tree[0].end == len(fi.record())
    _check_aligned(default)


def test_records_argument_and_missing_bytes(capture_9000):
    custom, _ = capture_9000
    given = [b"x" * (i + 1) for i in range(len(custom.frames))]
    fi = FrameInspector(custom, records=given)
    assert fi.record(custom.frames.index[2]) == given[2]
    bare = dataclasses.replace(custom, records=[])
    with pytest.raises(WidgetError) as err:
        FrameInspector(bare).record(custom.frames.index[0])
    assert err.value.vid == "LAB-WIDGET-SOURCE"
