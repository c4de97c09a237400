"""Notebooks 03 and 08, and the interactive plots, in a real browser: JupyterLab + headless
Debian Chromium (Playwright). The plot test (issue 21) runs its own small notebook: hovering a
point of the interactive epoch timeline shows its frame, clicking selects that frame in a linked
FrameInspectorView, a filter set from code changes the inspector's list; then it saves the first
screen of every shipped notebook under ``tmp_path/first-screens/`` (artifacts for reviewers).

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
from typing import Any, Dict, Optional

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
def _rendered_widget(tmp_path, notebook: str, selector: str, what: str, *,
                     extra_notebooks: Optional[Dict[str, Any]] = None, lab_out: Optional[list] = None):
    """Open *notebook* in JupyterLab (Chromium), run all its cells, wait for the widget matching
    *selector* and yield ``(page, widget)``; afterwards no page error may mention gbp.
    ``extra_notebooks``: name → nbformat notebook written beside the shipped ones first;
    ``lab_out``: receives the :class:`browser_util.LabServer` (for opening other notebooks)."""
    bu.require_chromium()
    bu.require_module("playwright")
    bu.require_module("jupyterlab")
    from playwright.sync_api import sync_playwright

    page_errors: list = []
    with bu.LabServer(tmp_path / "lab") as lab, sync_playwright() as pw:
        if extra_notebooks:
            import nbformat

            for name, nb in extra_notebooks.items():
                nbformat.write(nb, str(lab.root / name))
        if lab_out is not None:
            lab_out.append(lab)
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


# =============================================================================================
# interactive plots linked to the FrameInspector (issue 21)
# =============================================================================================

PLOT_CELLS = [
    "import gbp_lab\n"
    "from gbp_lab import plots\n"
    "from gbp_lab.widgets import FrameInspectorView\n"
    "cap = gbp_lab.demo_capture()\n"
    "timeline = plots.plot_epoch_timeline(cap, interactive=True)\n"
    "view = FrameInspectorView(cap, plots=[timeline])\n"
    "display(timeline, view)",
    "",  # the test types code here: the inspector's filter changed from code
]


def _isolated_point(plot) -> tuple:
    """(trace, point) of the timeline point farthest from its neighbours on its row (a hover or
    a click at its centre can only mean it)."""
    best, pick = -1.0, (0, 0)
    for ti, data in enumerate(plot.figure.data):
        xs = sorted((float(x), k) for k, x in enumerate(data.x))
        for j, (x, k) in enumerate(xs):
            gaps = [abs(x - xs[j + d][0]) for d in (-1, 1) if 0 <= j + d < len(xs)]
            gap = min(gaps) if gaps else 1e9
            if gap > best:
                best, pick = gap, (ti, k)
    return pick


#: open a notebook in JupyterLab (``window.jupyterapp``: LabServer exposes the app) and wait
#: until its model is loaded, its tab shown and its first cells drawn (at most 10 s)
_OPEN_NOTEBOOK_JS = """async (path) => {
  const w = await window.jupyterapp.commands.execute('docmanager:open', {path});
  await w.context.ready;
  await w.revealed;
  const want = Math.min(4, w.content.widgets.length);  // the first screen: a few cells drawn
  for (let i = 0; i < 100 && w.node.querySelectorAll('.jp-Cell .jp-InputArea').length < want; i++) {
    await new Promise(r => setTimeout(r, 100));
  }
  await new Promise(r => setTimeout(r, 300));
  window.__gbpOpened = w;
}"""
_CLOSE_NOTEBOOK_JS = """async () => {
  const w = window.__gbpOpened;
  if (w.sessionContext) { await w.sessionContext.shutdown(); }
  w.dispose();
}"""


def _selected_text(inspector) -> str:
    text = inspector.locator("select").first.evaluate(
        "el => Array.from(el.selectedOptions).map(o => o.textContent).join('|')")
    return text.replace("\xa0", " ").strip()  # ipywidgets shows spaces as no-break spaces


@pytest.mark.slow
def test_plot_hover_click_and_inspector_filter_in_jupyterlab(tmp_path):
    """An interactive epoch timeline linked to a FrameInspectorView in JupyterLab: hovering a
    point shows its frame's number and info (plotly's hover label and the plot's status line,
    a round trip through the kernel); clicking it selects that frame in the inspector; a filter
    set from code (``view.model.set_filter``) changes the inspector's list. Then every shipped
    notebook is opened in the same session and its first screen saved under ``tmp_path``."""
    import nbformat

    import gbp_lab
    from gbp_lab import plots

    cap = gbp_lab.demo_capture()
    plot = plots.plot_epoch_timeline(cap, interactive=True)  # what the kernel builds, the same
    ti, pi = _isolated_point(plot)
    label = plot.traces[ti].frames[pi]
    info = str(cap.frames["info"].loc[label])
    n_epoch2 = int((cap.frames["epoch"] == 2).sum())
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in PLOT_CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    labs: list = []
    with _rendered_widget(tmp_path, "plot_link.ipynb", ".gbp-inspector", "linked inspector",
                          extra_notebooks={"plot_link.ipynb": nb}, lab_out=labs) as (page, inspector):
        from playwright.sync_api import expect  # checked by _rendered_widget

        fig = page.locator(".gbp-plot-epoch-timeline").first
        fig.scroll_into_view_if_needed()
        points = fig.locator(".scatterlayer .trace").nth(ti).locator("path.point")
        expect(points).to_have_count(len(plot.traces[ti].frames), timeout=TIMEOUT_MS)
        point = points.nth(pi)
        box = point.bounding_box()
        assert box, "the plot point has no box"
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

        # 1. hover: plotly's label and the plot's status line (from the kernel) name the frame
        page.mouse.move(x - 30, y - 30)
        page.mouse.move(x, y, steps=5)
        hover = page.locator(".hoverlayer .hovertext").first
        expect(hover).to_contain_text(f"frame {label} ")
        expect(hover).to_contain_text(info[:40])
        status = fig.locator(".gbp-plot-status").first
        expect(status).to_contain_text(f"frame {label} ")

        # 2. click: the inspector selects that frame (list and tree)
        page.mouse.click(x, y)
        expect(status).to_contain_text("selected")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _selected_text(inspector).startswith(f"{label} "):
            page.wait_for_timeout(200)
        assert _selected_text(inspector).startswith(f"{label} "), _selected_text(inspector)
        fig.screenshot(path=str(tmp_path / "interactive-timeline.png"))

        # 3. the filter changed from code: the list follows
        listed = inspector.locator("select").first.locator("option")  # the frame list
        assert listed.count() == len(cap.frames)
        editor = page.locator(".jp-NotebookPanel .jp-Cell").last.locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.click()
        page.keyboard.insert_text("view.model.set_filter(query='epoch == 2')")
        page.keyboard.press("Shift+Enter")
        expect(listed).to_have_count(n_epoch2, timeout=TIMEOUT_MS)
        inspector.scroll_into_view_if_needed()
        expect(inspector.locator("input").nth(1)).to_have_value("epoch == 2")
        inspector.screenshot(path=str(tmp_path / "inspector-after-filter.png"))

        # 4. every shipped notebook's first screen (opened, not run), for reviewers
        t_shots = time.monotonic()
        lab = labs[0]
        shots = []
        for path in sorted(bu.NOTEBOOKS.glob("*.ipynb")):
            # opened in a tab by the app's own command (File → Open; no page reload), shown,
            # photographed, then closed with its kernel shut down (one kernel at a time)
            page.evaluate(_OPEN_NOTEBOOK_JS, path.name)
            shot = tmp_path / "first-screens" / f"{path.stem}.png"
            shot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(shot))
            shots.append(shot)
            page.evaluate(_CLOSE_NOTEBOOK_JS)
        assert len(shots) >= 8 and all(s.stat().st_size > 10_000 for s in shots)
        print(f"first screens of {len(shots)} notebooks in {time.monotonic() - t_shots:.1f} s")
