"""Notebooks 03 and 08 in a real browser: JupyterLab + headless Debian Chromium (Playwright).

The test starts its own JupyterLab server on the loopback (random port and token, a temp copy of
``notebooks/``), opens ``03_mls_epochs.ipynb``, runs every cell through the *Run* menu, waits for
the ``EpochStepperView`` over the notebook's own capture (DOM class ``gbp-stepper-capture``) to
render, then moves it twice — the *next ▶* button, then the keyboard on the slider — and checks
each time that the epoch shown in the title and the decrypted-traffic table both changed (to the
values the view-model itself reports for that step). A screenshot lands in ``tmp_path``.

Prerequisites are not optional: a missing ``/usr/bin/chromium`` is a FAILURE that names the
exact install command (``make test`` installs it when run as root); Playwright is used only as a
driver (``executable_path``), never ``playwright install``.
"""
from __future__ import annotations

import contextlib
import pathlib
import re
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import browser_util as bu  # noqa: E402

NOTEBOOK = "03_mls_epochs.ipynb"
STEPPER = ".gbp-stepper-capture"
TIMEOUT_MS = 60_000


def _epoch(title: str) -> int:
    m = re.search(r"epoch (\d+)", title)
    assert m, f"no epoch in the stepper title {title!r}"
    return int(m.group(1))


def _wait_kernel_idle(page, timeout_s: float = 60) -> None:
    """Wait until the notebook's kernel is up and idle (status bar ``Python 3 … | Idle``). If
    JupyterLab asks which kernel to start (it should not: the test's settings say start the
    preferred one), accept the notebook's own kernelspec."""
    idle = page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"Python 3.*\| Idle"))
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if dialog.count():
            dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        if idle.count():
            return
        page.wait_for_timeout(250)
    raise AssertionError("the notebook's kernel did not start: "
                         + " / ".join(page.locator(".jp-StatusBar-TextItem").all_inner_texts()))


def _run_all_cells(page) -> None:
    """Run → Run All Cells (menu item found by its label; JupyterLab 4 binds it to the command
    ``runmenu:run-all``)."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).first.click()
    item = page.locator(".lm-Menu-item", has=page.locator(".lm-Menu-itemLabel",
                                                          has_text=re.compile(r"^Run All Cells$")))
    item.wait_for(state="visible", timeout=10_000)
    item.click()


@contextlib.contextmanager
def _rendered_widget(tmp_path, notebook: str, selector: str, what: str):
    """Open *notebook* in JupyterLab (Chromium), run all its cells, wait for the widget matching
    *selector* and yield ``(page, widget)``; afterwards no page error may mention gbp."""
    bu.require_chromium()
    bu.require_module("playwright")
    bu.require_module("jupyterlab")
    from playwright.sync_api import sync_playwright

    page_errors: list = []
    with bu.LabServer(tmp_path / "lab") as lab, sync_playwright() as pw:
        ctx = bu.launch_chromium(pw, tmp_path / "chromium-profile")
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(lab.url(f"lab/tree/{notebook}?reset"), wait_until="domcontentloaded")
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(state="visible")
            _wait_kernel_idle(page)
            _run_all_cells(page)
            widget = page.locator(selector)
            try:
                widget.wait_for(state="visible", timeout=TIMEOUT_MS)
            except Exception:
                page.screenshot(path=str(tmp_path / f"no-{what.replace(' ', '-')}.png"), full_page=True)
                raise AssertionError(f"the {what} did not render; page errors: "
                                     f"{page_errors}; server log:\n{lab.log_tail()}")
            yield page, widget
        finally:
            ctx.close()
    assert not [e for e in page_errors if "gbp" in e.lower()], page_errors


@pytest.mark.slow
def test_epoch_stepper_in_jupyterlab(tmp_path):
    with _rendered_widget(tmp_path, NOTEBOOK, STEPPER, "EpochStepperView") as (page, stepper):
        from playwright.sync_api import expect  # checked by _rendered_widget

        stepper.scroll_into_view_if_needed()
        title = stepper.locator("h4").first
        traffic = stepper.locator("table.gbp-traffic").first
        expect(traffic).to_be_visible()
        epoch0, table0 = _epoch(title.inner_text()), traffic.inner_text()
        assert epoch0 == 1, "the notebook leaves the capture stepper on epoch 1"
        assert "text" in table0 and "control" in table0, table0

        # 1. the next button
        stepper.locator("button", has_text="next").click()
        expect(title).not_to_have_text(re.compile(rf"epoch {epoch0}\b"))
        epoch1 = _epoch(title.inner_text())
        expect(traffic).not_to_have_text(table0)
        table1 = traffic.inner_text()
        assert epoch1 == epoch0 + 1
        assert table1 != table0 and table1.strip()

        # 2. the keyboard on the slider (ipywidgets 8: a noUiSlider handle)
        handle = stepper.locator(".noUi-handle").first
        handle.focus()
        handle.press("ArrowRight")
        expect(title).not_to_have_text(re.compile(rf"epoch {epoch1}\b"))
        epoch2 = _epoch(title.inner_text())
        assert epoch2 == epoch1 + 1
        expect(traffic).not_to_have_text(table1)

        stepper.scroll_into_view_if_needed()
        shot = tmp_path / "notebook03-epoch-stepper.png"
        page.screenshot(path=str(shot), full_page=False)
        stepper.screenshot(path=str(tmp_path / "epoch-stepper-widget.png"))
        assert shot.stat().st_size > 10_000


LIVE_NOTEBOOK = "08_live.ipynb"


def _live_status(panel) -> tuple:
    """(state, frames) of the live panel's status line (``running: 57 frames (…/s), …``)."""
    panel.scroll_into_view_if_needed()  # JupyterLab's windowing hides cells out of view
    text = panel.locator(".gbp-live-status").first.text_content() or ""
    m = re.search(r"(running|stopped): (\d+) frames", text)
    assert m, f"no frame count in the live panel's status {text!r}"
    return m.group(1), int(m.group(2))


@pytest.mark.slow
def test_live_panel_counters_grow_in_jupyterlab(tmp_path):
    """Notebook 08 in JupyterLab: the live panel (``LiveCapture.view()``) is redrawn by its own
    thread while the kernel is busy waiting for the simulation: its frame counter grows from
    one reading to the next, then it shows the stopped capture's final count, as the notebook
    prints it, with the per-protocol counters and the ladder."""
    with _rendered_widget(tmp_path, LIVE_NOTEBOOK, ".gbp-live", "live panel") as (page, panel):
        from playwright.sync_api import expect  # checked by _rendered_widget

        readings = []  # distinct (state, frames) seen, in order
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            r = _live_status(panel)
            if not readings or readings[-1] != r:
                readings.append(r)
            if r[0] == "stopped":
                break
            page.wait_for_timeout(100)
        running = [n for state, n in readings if state == "running"]
        assert len([n for n in running if n > 0]) >= 2, readings
        assert running == sorted(running), readings
        assert readings[-1][0] == "stopped" and readings[-1][1] >= running[-1] > running[0], readings
        final = readings[-1][1]
        printed = page.locator(".jp-OutputArea-output pre",
                               has_text="LiveCapture('lo', stopped:").first
        printed.wait_for(state="attached")
        printed.scroll_into_view_if_needed()
        expect(printed).to_contain_text(f"stopped: {final} frames")
        panel.scroll_into_view_if_needed()
        gtp = panel.locator('.gbp-count[data-name="GTP"]').first.text_content() or ""
        assert int(gtp.split()[-1]) > 0, gtp
        assert panel.locator("svg.gbp-ladder g.arrow").count() > 0
        panel.scroll_into_view_if_needed()
        panel.screenshot(path=str(tmp_path / "live-panel.png"))


def test_missing_chromium_fails_with_the_install_command(monkeypatch, tmp_path):
    """No Chromium is a failure (not a skip) that names the exact command."""
    monkeypatch.setattr(bu, "CHROMIUM", str(tmp_path / "no-such-chromium"))
    with pytest.raises(pytest.fail.Exception) as exc:
        bu.require_chromium()
    assert "apt-get install -y chromium" in str(exc.value)
    assert str(tmp_path / "no-such-chromium") in str(exc.value)
