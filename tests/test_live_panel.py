"""LiveCapture.view(): the panel's view-model (gbp_lab.widgets.live_panel.LivePanel) and its
ipywidgets view driven without a browser, over a real LiveCapture following the simulator's demo
capture as it is written; every number is compared with read_capture of the same bytes."""
from __future__ import annotations

import time

import pandas as pd

from gbp_lab.capture.live import LiveCapture
from gbp_lab.capture.model import read_capture
from gbp_lab.sim.demo import DEMO_KEYS, DEMO_PCAP
from gbp_lab.widgets import LivePanel
from gbp_lab.widgets.live_panel import LAST_COLUMNS

DATA = DEMO_PCAP.read_bytes()
REF = read_capture(DEMO_PCAP, keylog=str(DEMO_KEYS))


def _wait(pred, timeout=20.0):
    deadline = time.time() + timeout
    while not pred() and time.time() < deadline:
        time.sleep(0.02)
    assert pred()


def test_panel_view_model_follows_a_growing_capture(tmp_path):
    pcap = tmp_path / "c.pcap"
    half = len(DATA) // 2
    pcap.write_bytes(DATA[:half])
    live = LiveCapture(str(pcap), keylog=str(DEMO_KEYS), poll=0.01).start()
    panel = LivePanel(live, interval=0.3, last=12, ladder_arrows=30, rate_window=10)
    redraws = []
    panel.observe(lambda m: redraws.append(m.counters["frames"]))
    _wait(lambda: live.counters["frames"] > 0)
    time.sleep(0.2)  # the half file is read to its end
    assert panel.update(now=100.0)
    n1 = panel.counters["frames"]
    assert 0 < n1 < len(REF.frames)
    pd.testing.assert_frame_equal(panel.last.reset_index(drop=True),
                                  REF.frames.iloc[:n1].tail(12)[list(LAST_COLUMNS)]
                                  .reset_index(drop=True))
    assert not panel.update(now=100.1)  # throttled: a few redraws per second at most
    with open(pcap, "ab") as f:
        f.write(DATA[half:])
    _wait(lambda: live.counters["frames"] == len(REF.frames))
    live.stop()
    assert panel.update(now=102.0)
    assert panel.rate == (len(REF.frames) - n1) / 2.0
    assert redraws == [n1, len(REF.frames)]
    assert not panel.update(now=103.0)  # nothing new: no redraw
    # counters per protocol as in the finished capture
    for proto, n in REF.frames["protocol"].value_counts().items():
        assert panel.counters[proto] == n
        assert f'data-name="{proto}"><b>{proto}</b> {n}<' in panel.counters_html()
    assert panel.counters["decrypted"] == int(REF.frames["decrypted"].sum())
    assert f"{len(REF.frames)} frames" in panel.status_text() and "stopped" in panel.status_text()
    # the last frames, the current epoch and its members
    pd.testing.assert_frame_equal(panel.last, REF.frames.tail(12)[list(LAST_COLUMNS)])
    cur = REF.epochs.iloc[-1]
    assert (panel.epoch, panel.members) == (int(cur["epoch"]), list(cur["members"]))
    assert f"epoch <b>{panel.epoch}</b>" in panel.epoch_html()
    pd.testing.assert_frame_equal(panel.epochs, REF.epochs)
    # the ladder: the last 30 frames, with epoch bands
    assert [a.label for a in panel.ladder.arrows] == list(REF.frames["info"].tail(30))
    svg = panel.ladder_svg()
    assert svg.count('class="arrow"') == 30
    assert {f'data-epoch="{e}"' for e in REF.frames["epoch"].tail(30).dropna().astype(int)} \
        <= set(s.split(" ")[0] for s in svg.split('class="band" ')[1:])
    # findings: all of them, each new once
    assert len(REF.findings) > 0
    pd.testing.assert_frame_equal(panel.findings, REF.findings)
    assert panel.findings_html().count('class="gbp-finding"') == len(REF.findings)
    assert panel.update(now=110.0, force=True) and len(panel.new_findings) == 0


def test_view_redraws_in_the_background_while_the_capture_grows(tmp_path):
    """LiveCapture.view(): a background thread redraws while packets arrive (the counters grow
    from one redraw to the next), ends after the capture stops with its final numbers."""
    pcap = tmp_path / "c.pcap"
    live = LiveCapture(str(pcap), keylog=str(DEMO_KEYS), poll=0.01).start()
    view = live.view(interval=0.05)
    seen = []
    view.model.observe(lambda m: seen.append(m.counters.get("frames", 0)))
    assert view.active
    with open(pcap, "wb") as f:
        for i in range(0, len(DATA), 2000):
            f.write(DATA[i:i + 2000])
            f.flush()
            time.sleep(0.03)
    _wait(lambda: live.counters["frames"] == len(REF.frames))
    live.stop()
    _wait(lambda: not view.active, timeout=10)
    assert len(set(seen)) >= 3 and seen == sorted(seen) and seen[-1] == len(REF.frames)
    assert f"stopped: {len(REF.frames)} frames" in view.status.value
    assert view.last_html.value.count("<tr") == 12 + 1
    assert view.ladder_html.value.startswith("<svg")
    assert view.findings_html.value.count('class="gbp-finding"') == len(REF.findings)
    assert f"epoch <b>{int(REF.epochs['epoch'].iloc[-1])}</b>" in view.epoch_html.value
    view.close()


def test_view_without_thread_and_before_any_frame(tmp_path):
    live = LiveCapture(str(tmp_path / "not-yet.pcap"), poll=0.01)
    view = live.view(autostart=False)
    assert not view.active
    assert "no frames yet" in view.last_html.value and "no epoch yet" in view.epoch_html.value
    assert view.status.value.count("0 frames") == 1 and "stopped" in view.status.value
    view.close()
