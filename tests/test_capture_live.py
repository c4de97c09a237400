"""Live capture (gbp_lab.capture.live): a capture file followed while it is written, a binary
stream through a pipe, the key log followed (late keys decrypt earlier frames), bounded tables.
The bytes are the simulator's demo capture (gbp_lab/data/demo) and pcapng written by our writer;
every snapshot is compared with read_capture of the same bytes."""
from __future__ import annotations

import os
import threading
import time

import pandas as pd
import pytest

from gbp_lab.capture.live import LiveCapture, LiveCaptureError
from gbp_lab.capture.model import read_capture
from gbp_lab.capture.pcapfile import read_packets
from gbp_lab.capture.pcapwriter import PcapngWriter
from gbp_lab.sim.demo import DEMO_KEYS, DEMO_PCAP

DATA = DEMO_PCAP.read_bytes()
KEY_LINES = DEMO_KEYS.read_text().splitlines(True)


def _write_slowly(path, data: bytes, piece: int = 777, pause: float = 0.001) -> None:
    with open(path, "wb") as f:
        for i in range(0, len(data), piece):
            f.write(data[i:i + piece])
            f.flush()
            time.sleep(pause)


def _assert_same(snap, ref):
    pd.testing.assert_frame_equal(snap.frames, ref.frames)
    pd.testing.assert_frame_equal(snap.errors, ref.errors)
    pd.testing.assert_frame_equal(snap.messages, ref.messages)
    pd.testing.assert_frame_equal(snap.epochs, ref.epochs)
    assert snap.records == ref.records and snap.plaintexts == ref.plaintexts
    assert snap.stats == ref.stats


def test_follow_a_growing_file_with_late_keys(tmp_path):
    """The capture grows in 777-byte pieces (records cut anywhere); the key log gets every
    secret only after the last packet: the frames that came before their keys are decrypted
    when the keys appear, and the snapshot equals read_capture with the whole key log."""
    pcap, keys = tmp_path / "c.pcap", tmp_path / "keys.log"
    keys.write_text("")
    seen = []
    live = LiveCapture(str(pcap), keylog=str(keys), poll=0.01, on_frame=seen.append).start()
    _write_slowly(pcap, DATA)
    deadline = time.time() + 20
    while live.counters["frames"] < 95 and time.time() < deadline:
        time.sleep(0.02)
    assert live.counters["decrypted"] == 0  # no key yet
    with open(keys, "a") as f:
        for line in KEY_LINES:
            f.write(line)
            f.flush()
    while live.counters["decrypted"] < 85 and time.time() < deadline:
        time.sleep(0.02)
    live.stop()
    ref = read_capture(DEMO_PCAP, keylog=str(DEMO_KEYS))
    assert len(ref.frames) == 95 and int(ref.frames["decrypted"].sum()) == 85
    assert live.counters["redecoded"] == 85  # every GBP frame arrived before its key
    snap = live.snapshot()
    _assert_same(snap, ref)
    assert snap.keylog == ref.keylog
    # on_frame saw every row once, in order, with the frames table's columns
    assert [r["no"] for r in seen] == list(range(95))
    assert [r["info"] for r in seen if r["protocol"] == "MLS"] == \
        list(ref.frames.loc[ref.frames["protocol"] == "MLS", "info"])
    assert live.counters["GTP"] == int((ref.frames["protocol"] == "GTP").sum())


def test_follow_pcapng_with_secrets_block_in_the_middle(tmp_path):
    """pcapng written block by block (SHB, two IDBs, packets, a GBPK secrets block halfway):
    interface numbers, times and the secrets block's keys as in read_capture."""
    pkts, _ = read_packets(DEMO_PCAP)
    path = tmp_path / "c.pcapng"
    live = LiveCapture(str(path), poll=0.01).start()
    with open(path, "wb") as f:
        w = PcapngWriter(f)
        w.add_interface(1, tsresol=9, name="lo")
        w.add_interface(1, tsresol=6, name="eth9")
        for i, p in enumerate(pkts):
            if i == len(pkts) // 2:
                w.add_secrets("".join(KEY_LINES))
            w.write_packet(p.data, ticks=p.ts_ticks, ts_units=p.ts_units, interface=i % 2)
            f.flush()
            if i % 20 == 0:
                time.sleep(0.005)
    live.stop()
    ref = read_capture(path)
    snap = live.snapshot()
    _assert_same(snap, ref)
    assert 0 < int(snap.frames["decrypted"].sum()) < 85  # keys only from the middle on
    assert [i.name for i in snap.interfaces] == ["lo", "eth9"]
    assert len(snap.secrets) == 1 and snap.secrets[0].offset == ref.secrets[0].offset


def test_binary_stream_through_a_pipe():
    """``dumpcap -w - | …``: a pipe; the capture ends when the writer closes it."""
    r, w = os.pipe()
    src = os.fdopen(r, "rb")
    live = LiveCapture(src, keylog=DEMO_KEYS.read_text(), poll=0.01).start()

    def feed():
        with os.fdopen(w, "wb") as out:
            for i in range(0, len(DATA), 500):
                out.write(DATA[i:i + 500])
                out.flush()

    t = threading.Thread(target=feed)
    t.start()
    t.join()
    assert live.wait(20), "the capture did not end with its stream"
    live.stop()
    src.close()
    _assert_same(live.snapshot(), read_capture(DEMO_PCAP, keylog=str(DEMO_KEYS)))


def test_max_frames_keeps_the_last_rows(tmp_path):
    pcap = tmp_path / "c.pcap"
    pcap.write_bytes(DATA)
    with LiveCapture(str(pcap), keylog=str(DEMO_KEYS), max_frames=10, follow=False) as live:
        assert live.wait(20)
    ref = read_capture(DEMO_PCAP, keylog=str(DEMO_KEYS)).frames
    f = live.frames
    assert len(f) == 10 and list(f.index) == list(range(85, 95))
    pd.testing.assert_frame_equal(f, ref.iloc[85:])
    assert live.counters["frames"] == 95 and live.counters["decrypted"] == 85
    snap = live.snapshot()
    assert len(snap.frames) == 10 and len(snap.records) == 10 and snap.records == \
        read_capture(DEMO_PCAP).records[85:]


def test_a_cut_file_ends_with_the_same_truncation_rows(tmp_path):
    """Stopping while the last packet is half written: the same error rows as read_capture of
    the bytes on disk (record cut by the end of the capture, file truncated)."""
    pcap = tmp_path / "c.pcap"
    cut = DATA[:len(DATA) * 2 // 3 + 5]
    live = LiveCapture(str(pcap), keylog=str(DEMO_KEYS), poll=0.01).start()
    _write_slowly(pcap, cut, piece=4096)
    time.sleep(0.1)
    live.stop()
    ref = read_capture(pcap, keylog=str(DEMO_KEYS))
    assert "CAP-TRUNCATED-RECORD" in set(ref.errors["vid"])
    _assert_same(live.snapshot(), ref)


def test_not_a_capture_is_an_error_row(tmp_path):
    p = tmp_path / "junk.pcap"
    p.write_bytes(b"this is not a capture file at all")
    with LiveCapture(str(p), follow=False) as live:
        assert live.wait(10)
    err = live.snapshot().errors
    assert list(err["vid"]) == ["CAP-MAGIC"] and len(live.frames) == 0


def test_bad_arguments_are_typed_errors():
    with pytest.raises(LiveCaptureError) as e:
        LiveCapture(12345)
    assert e.value.vid == "CAP-LIVE-SOURCE"
    with pytest.raises(LiveCaptureError) as e:
        LiveCapture(str(DEMO_PCAP), max_frames=0)
    assert e.value.vid == "CAP-LIVE-MAX"
    live = LiveCapture(str(DEMO_PCAP), follow=False).start()
    with pytest.raises(LiveCaptureError) as e:
        live.start()
    assert e.value.vid == "CAP-LIVE-STATE"
    live.stop()


# --- a real interface: loopback sniffing while `gbp-lab simulate` runs over real sockets -------
GBP_LAB = os.path.join(os.path.dirname(__import__("sys").executable), "gbp-lab")  # the venv's
# this process's own loopback addresses: other traffic on lo — another test run on the same machine
# included — is filtered out
SIM_HOST = f"127.{50 + os.getpid() % 150}.1.77"


def _gbp_rows(frames):
    cols = ["epoch", "stream_id", "sequence_no", "decrypted"]
    gbp = frames[frames["protocol"] != "MLS"]
    return sorted(map(tuple, gbp[cols].astype(str).values.tolist()))


def test_loopback_while_the_simulator_runs(tmp_path):
    """``LiveCapture("lo", keylog=<the run's keys.log>)`` during ``gbp-lab simulate classroom``:
    the GBP frames (epoch, stream id, sequence, decrypted) equal those of the run's own
    capture.pcap, all decrypted with the secrets the run appended while it went on."""
    import subprocess

    keys = tmp_path / "keys.log"
    assert not keys.exists()
    with LiveCapture("lo", keylog=str(keys), poll=0.02, bpf=f"host {SIM_HOST}") as live:
        r = subprocess.run([GBP_LAB, "simulate", "classroom", "--out", str(tmp_path), "--seed",
                            "3", "--real-ports", "--quiet", "--host", SIM_HOST],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        deadline = time.time() + 20
        ref = read_capture(tmp_path / "capture.pcap", keylog=str(keys))
        while live.counters["frames"] < len(ref.frames) and time.time() < deadline:
            time.sleep(0.05)
    snap = live.snapshot()
    assert len(ref.frames) > 100 and ref.frames.loc[ref.frames["protocol"] != "MLS",
                                                    "decrypted"].all()
    assert _gbp_rows(snap.frames) == _gbp_rows(ref.frames)
    assert sorted(snap.frames["info"]) == sorted(ref.frames["info"])
    assert ((snap.frames["src"] == SIM_HOST) | (snap.frames["dst"] == SIM_HOST)).all()
    assert len(snap.errors) == 0
    assert snap.keylog == ref.keylog
    assert (keys.stat().st_mode & 0o777) == 0o600


def test_no_capture_permission_is_a_typed_error_naming_the_fix():
    """As an unprivileged user (setpriv to nobody), sniffing raises LiveCapturePermissionError
    that points at the file-follow and pipe alternatives."""
    import subprocess
    import sys

    code = ("from gbp_lab.capture.live import LiveCapture, LiveCapturePermissionError\n"
            "try:\n    LiveCapture('lo').start()\n"
            "except LiveCapturePermissionError as e:\n    print('TYPED', e.vid, e.message)\n")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "TYPED CAP-LIVE-PERMISSION" in r.stdout, r.stdout + r.stderr
    assert "CAP_NET_RAW" in r.stdout and "dumpcap -i lo -w live.pcapng" in r.stdout
    assert "--live -" in r.stdout


def test_cli_dissect_live_from_a_pipe_prints_what_dissect_prints():
    """``… | gbp-lab dissect --live -`` (the installed command): the same lines as reading
    the finished file, then a summary on stderr."""
    import subprocess

    keys = str(DEMO_KEYS)
    live = subprocess.run([GBP_LAB, "dissect", "--live", "-", "--keylog", keys], input=DATA,
                          capture_output=True, timeout=120)
    whole = subprocess.run([GBP_LAB, "dissect", str(DEMO_PCAP), "--keylog", keys],
                           capture_output=True, timeout=120)
    assert live.returncode == 0 and whole.returncode == 0, live.stderr
    assert live.stdout.decode().splitlines() == whole.stdout.decode().splitlines()
    assert len(live.stdout.splitlines()) == 95
    assert b"95 frames, 85 decrypted, 0 errors" in live.stderr
    bad = subprocess.run([GBP_LAB, "dissect"], capture_output=True, timeout=60)
    assert bad.returncode == 2 and b"--live" in bad.stderr


# --- dumpcap (Wireshark's capture engine, `make tshark`) writing a file and a pipe --------------
DUMPCAP_HOST = f"127.{50 + os.getpid() % 150}.1.79"


def _dumpcap(*args):
    import shutil
    import subprocess

    exe = shutil.which("dumpcap")
    if exe is None:
        pytest.fail("dumpcap is missing: run `make tshark` as root (apt-get install -y tshark)")
    p = subprocess.Popen([exe, "-i", "lo", "-f", f"host {DUMPCAP_HOST}", *args],
                         stdout=subprocess.PIPE if "-" in args else subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    line = p.stderr.readline().decode()  # "Capturing on 'Loopback: lo'" once it listens
    assert "Capturing on" in line, line + p.stderr.read().decode()
    return p


def test_dumpcap_file_and_pipe_while_the_simulator_runs(tmp_path):
    """dumpcap writes a pcapng file and another dumpcap a pipe (``-w -``) while
    ``gbp-lab simulate classroom`` runs: following the file gives exactly read_capture of the
    finished file, the pipe the GBP frames of the run's own capture; both all decrypted with
    the key log the run appends as it goes."""
    import signal
    import subprocess

    keys, path = tmp_path / "run" / "keys.log", tmp_path / "dumpcap.pcapng"
    to_file = _dumpcap("-w", str(path))
    to_pipe = _dumpcap("-w", "-")
    try:
        follow = LiveCapture(str(path), keylog=str(keys), poll=0.02).start()
        piped = LiveCapture(to_pipe.stdout, keylog=str(keys), poll=0.02).start()
        r = subprocess.run([GBP_LAB, "simulate", "classroom", "--out", str(tmp_path / "run"),
                            "--seed", "5", "--real-ports", "--quiet", "--host", DUMPCAP_HOST],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        ref = read_capture(tmp_path / "run" / "capture.pcap", keylog=str(keys))
        deadline = time.time() + 20
        while (piped.counters["frames"] < len(ref.frames)
               or follow.counters["frames"] < len(ref.frames)) and time.time() < deadline:
            time.sleep(0.05)
    finally:
        for p in (to_file, to_pipe):
            p.send_signal(signal.SIGTERM)
            p.wait(30)
    assert piped.wait(20), "the pipe's capture did not end with dumpcap"
    follow.stop()
    piped.stop()
    to_pipe.stdout.close()
    assert len(ref.frames) > 100 and ref.frames.loc[ref.frames["protocol"] != "MLS",
                                                    "decrypted"].all()
    snap = follow.snapshot()
    _assert_same(snap, read_capture(path, keylog=str(keys)))
    assert [i.name for i in snap.interfaces] == ["lo"] and snap.interfaces[0].linktype == 1
    for s in (snap, piped.snapshot()):
        assert _gbp_rows(s.frames) == _gbp_rows(ref.frames)
        assert sorted(s.frames["info"]) == sorted(ref.frames["info"])
        assert len(s.errors) == 0 and s.keylog == ref.keylog
