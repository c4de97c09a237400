"""Helpers of the real-browser test (tests/test_browser.py): a throw-away JupyterLab server and a
headless Debian Chromium driven by Playwright for Python.

* :func:`require_chromium` / :func:`require_module` — the prerequisites; a missing one is a test
  FAILURE carrying the exact install instruction (CI runs as root and installs Chromium in
  ``make test``; nothing here downloads a browser, and ``playwright install`` is never used);
* :class:`LabServer` — ``jupyter lab`` on 127.0.0.1, a random free port, a random token,
  ``--no-browser``, its own config/runtime/workspace directories, ``ServerApp.root_dir`` = a temp
  copy of ``notebooks/``; stopped (process group, kernels included) by :meth:`LabServer.stop`;
* :func:`launch_chromium` — Playwright's Chromium driver on ``/usr/bin/chromium`` with the
  flags below and a fresh ``--user-data-dir``.

Nothing here is a test; pytest does not collect this module.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_INSTALL = "apt-get install -y chromium"
CHROMIUM_FLAGS: List[str] = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: user settings of the test's JupyterLab: start the notebook's kernel without asking, no news toast
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
}
#: pip requirements of the browser test (both in the ``test`` extra of pyproject.toml)
PIP_NAMES = {"playwright": "playwright", "jupyterlab": "jupyterlab"}


def chromium_missing_message() -> str:
    """The failure text when Chromium is not installed (names the exact command)."""
    who = "you are root" if hasattr(os, "geteuid") and os.geteuid() == 0 else "as root"
    return (f"Chromium is not installed at {CHROMIUM}. Install Debian's chromium package "
            f"({who}): `{CHROMIUM_INSTALL}` — `make test` does it automatically when run as root. "
            "(The test never downloads a browser: no `playwright install`.)")


def require_chromium() -> str:
    """The Chromium path; when it is missing, ``pytest.fail`` with the install instruction (the
    test is not skipped: CI always runs it, as root, after ``make test`` installed Chromium)."""
    import pytest

    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(chromium_missing_message(), pytrace=False)
    return CHROMIUM


def require_module(name: str) -> None:
    """Fail with ``pip install <name>`` when the Python module is missing."""
    import importlib.util

    import pytest

    if importlib.util.find_spec(name) is None:
        pytest.fail(f"Python package {PIP_NAMES.get(name, name)!r} is missing: "
                    f"`{sys.executable} -m pip install -e '.[test]'` "
                    f"(or `pip install {PIP_NAMES.get(name, name)}`)", pytrace=False)


def free_port() -> int:
    """A TCP port free on the loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """A JupyterLab server for one test (see the module docstring). Use as a context manager."""

    def __init__(self, workdir: Path, notebooks: Path = NOTEBOOKS, *, startup_timeout: float = 45):
        self.workdir = Path(workdir)
        self.root = self.workdir / "notebooks"
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "jupyterlab.log"
        self._notebooks = Path(notebooks)
        self._timeout = startup_timeout
        self.proc: Optional[subprocess.Popen] = None
        self._log = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "LabServer":
        shutil.copytree(self._notebooks, self.root,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        env = dict(os.environ)
        for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                         ("IPYTHONDIR", "ipython")):
            d = self.workdir / sub
            d.mkdir(parents=True, exist_ok=True)
            env[var] = str(d)
        settings = self.workdir / "lab-settings"
        for rel, doc in LAB_SETTINGS.items():
            f = settings / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(doc))
        env["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
        env.pop("JUPYTER_TOKEN", None)
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}", "--ServerApp.open_browser=False",
               f"--LabApp.workspaces_dir={self.workdir / 'workspaces'}",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False",
               # window.jupyterapp: tests open notebooks with the app's commands (no page reload)
               "--LabApp.expose_app_in_browser=True"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # CI containers run as root
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=str(self.workdir), env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._timeout
        url = f"{self.base}/api/status?token={self.token}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"jupyter lab did not answer within {self._timeout} s:\n{self.log_tail()}")

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server and everything it started (kernels are in its process group)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        if proc is not None:
            # kernels started by the server share its session/process group: make sure none stays
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "LabServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def launch_chromium(playwright, user_data_dir: Path):
    """A persistent headless Chromium context on ``/usr/bin/chromium`` with :data:`CHROMIUM_FLAGS`
    and a fresh profile directory (Playwright passes ``--user-data-dir`` itself for persistent
    contexts)."""
    user_data_dir = Path(user_data_dir)
    user_data_dir.mkdir(parents=True, exist_ok=True)
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_FLAGS),
        viewport={"width": 1400, "height": 1000}, accept_downloads=False)
