"""The front door, tested as users walk through it.

* ``make lab`` -- the real Makefile target -- in a fresh copy of the checkout: it creates ``.venv``,
  installs, starts JupyterLab on the notebooks with notebook 00 ("start here") first; we fetch ``/lab`` and the
  notebook over the REST API, then stop it (process group, bounded time). A second ``make lab`` does
  not install again.
* ``gbp-lab lab --dir`` from the built wheel in a fresh venv: the notebooks and the demo capture are
  copied into the folder and served.
* the checkout root: ``import gbp_lab.core`` and ``python -m gbp_lab.core.mls.vectors`` work there
  with no install at all and with the wheel installed, and run the checkout's code.
* the notebook copier never overwrites a notebook the user changed.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

from gbp_lab import lab_cmd

ROOT = Path(__file__).resolve().parent.parent
FIRST = lab_cmd.FIRST_NOTEBOOK
PURELIB = sysconfig.get_paths()["purelib"]
VENV_BIN = os.path.dirname(sys.executable)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (loopback only)
        return r.status, r.read()


class Server:
    """A JupyterLab started by a user command, in its own process group."""

    def __init__(self, cmd, cwd, env, log: Path):
        self.port, self.token, self.log = _free_port(), secrets.token_hex(16), log
        self.args = f"--port={self.port} --ServerApp.token={self.token} --ServerApp.ip=127.0.0.1"
        self.proc = subprocess.Popen([*cmd(self.args)], cwd=cwd, env=env, start_new_session=True,
                                     stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}{path}{sep}token={self.token}"

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the lab exited with {self.proc.returncode}:\n{self.output()[-4000:]}")
            try:
                if _get(self.url("/api/status"), timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        pytest.fail(f"the lab did not answer within {timeout:.0f} s:\n{self.output()[-4000:]}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def check_serves_the_notebooks(self) -> None:
        for path in ("/lab", f"/lab/tree/{FIRST}"):
            status, page = _get(self.url(path))
            assert status == 200 and b"JupyterLab" in page
        status, body = _get(self.url(f"/api/contents/{FIRST}"))
        model = json.loads(body)
        assert status == 200 and model["type"] == "notebook" and model["name"] == FIRST
        assert any("read_capture" in "".join(c["source"]) or "demo_capture" in "".join(c["source"])
                   for c in model["content"]["cells"])
        listing = json.loads(_get(self.url("/api/contents/"))[1])
        names = {e["name"] for e in listing["content"]}
        assert {"01_quick_start.ipynb", FIRST} <= names


def _copy_checkout(dest: Path) -> Path:
    """A fresh clone of the working tree: every tracked or new (not ignored) file, links kept."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, out.decode().split("\0")):
        src, dst = ROOT / rel, dest / rel
        if not os.path.lexists(src):
            continue  # deleted in the working tree, not yet committed
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    return dest


def _user_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "VIRTUAL_ENV", "PYTHON"))}
    env.pop("DISPLAY", None)  # headless, as on a server or in CI
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    return env


@pytest.mark.slow
def test_make_lab_on_a_fresh_clone(tmp_path):
    clone = _copy_checkout(tmp_path / "clone")
    assert (clone / "gbp_lab" / "core").is_symlink() and not (clone / ".venv").exists()
    env = _user_env()
    env["HOME"] = str(tmp_path / "home")  # a user with no Jupyter settings of their own
    srv = Server(lambda a: ["make", "lab", f"LAB_ARGS={a}"], clone, env, tmp_path / "lab.log")
    try:
        srv.wait(timeout=900)  # the first run creates .venv and installs
        srv.check_serves_the_notebooks()
        out = srv.output()
        # the URL printed for the user opens notebook 00, served from the clone's notebooks/
        assert re.search(rf"http://127\.0\.0\.1:{srv.port}/lab/tree/{re.escape(FIRST)}\?token=", out), out[-3000:]
        assert f"Serving notebooks from local directory: {(clone / 'notebooks').resolve()}" in out
    finally:
        srv.stop()
    assert srv.proc.returncode is not None
    # set up: a second `make lab` would not install anything again
    dry = subprocess.run(["make", "-n", "lab"], cwd=clone, capture_output=True, text=True, env=env)
    assert dry.returncode == 0 and "pip install" not in dry.stdout and "gbp-lab lab" in dry.stdout


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    """The built wheel installed alone in a fresh venv; its dependencies come from this test run's
    environment through PYTHONPATH (which does not process .pth files: the editable install of the
    outer environment is not active there)."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp / "dist"), str(ROOT)], check=True, cwd=tmp, capture_output=True)
    (wheel,) = (tmp / "dist").glob("gbp_lab-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                    "--no-deps", "-q", str(wheel)], check=True)
    env = _user_env()
    env["PYTHONPATH"] = PURELIB
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}:{VENV_BIN}"  # jupyter: the outer one
    env["HOME"] = str(tmp / "home")
    return venv, env


@pytest.mark.slow
def test_gbp_lab_lab_from_the_wheel_copies_and_serves_the_notebooks(wheel_venv, tmp_path):
    venv, env = wheel_venv
    work = tmp_path / "my notebooks"
    gbp_lab = str(venv / "bin" / "gbp-lab")
    srv = Server(lambda a: [gbp_lab, "lab", "--dir", str(work), "--", *a.split()], tmp_path, env,
                 tmp_path / "lab.log")
    try:
        srv.wait(timeout=120)
        srv.check_serves_the_notebooks()
    finally:
        srv.stop()
    copied = sorted(p.name for p in work.glob("*.ipynb"))
    assert copied == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert (work / "demo" / "capture.pcap").read_bytes() == (ROOT / "gbp_lab/data/demo/capture.pcap").read_bytes()
    assert f"notebooks in {work}" in srv.output()
    assert f"/lab/tree/{FIRST}?token=" in srv.output()


def _run(py, args, cwd, env):
    out = subprocess.run([str(py), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


IMPORT = "import gbp_lab.core, gbp_lab.dissectors, gbp_lab.core.mls.suites; print(gbp_lab.core.__file__)"


def test_checkout_root_without_any_install():
    # -S: no site-packages processing at all (so no editable hook); the dependencies come from
    # PYTHONPATH, the package from the checkout root alone
    env = _user_env()
    env["PYTHONPATH"] = PURELIB
    code = IMPORT + "; import sys; print(any('editable' in repr(f) for f in sys.meta_path))"
    out = _run(sys.executable, ["-S", "-c", code], ROOT, env).split()
    assert Path(out[0]).resolve() == (ROOT / "core" / "__init__.py").resolve() and out[1] == "False"
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests/vectors/mls").glob("*.gz"))
    assert len(files) >= 15
    out = _run(sys.executable, ["-S", "-m", "gbp_lab.core.mls.vectors", *files], ROOT, env)
    total = re.search(r"^(\d+) passed, (\d+) failed", out, re.M)
    assert total and int(total.group(1)) >= 700 and total.group(2) == "0", out[-2000:]


@pytest.mark.slow
def test_checkout_root_with_the_wheel_installed(wheel_venv):
    venv, env = wheel_venv
    py = venv / "bin" / "python"
    # elsewhere the wheel's own files are imported ...
    out = _run(py, ["-c", IMPORT], "/", env).strip()
    assert out.startswith(str(venv)) and out.endswith("site-packages/gbp_lab/core/__init__.py")
    # ... from the checkout root, the checkout's (the source folder no longer hides gbp_lab.core)
    out = _run(py, ["-c", IMPORT], ROOT, env).strip()
    assert Path(out).resolve() == (ROOT / "core" / "__init__.py").resolve()
    out = _run(py, ["-m", "gbp_lab.core.mls.vectors", "tests/vectors/mls/tree-math.json.gz",
                    "tests/vectors/mls/crypto-basics.json.gz"], ROOT, env)
    assert re.search(r"^\d+ passed, 0 failed", out, re.M), out[-2000:]


# ---- the notebook copier -------------------------------------------------------------------
def test_install_notebooks_never_overwrites_the_users_changes(tmp_path):
    src = tmp_path / "shipped"
    src.mkdir()
    (src / "a.ipynb").write_text("A1")
    (src / "b.ipynb").write_text("B1")
    work = tmp_path / "work"
    r = lab_cmd.install_notebooks(work, src)
    assert sorted(r.written) == sorted(["a.ipynb", "b.ipynb"] + [f"demo/{p.name}" for p in
                                                                 (ROOT / "gbp_lab/data/demo").iterdir()])
    assert (work / "a.ipynb").read_text() == "A1"
    # the user edits a; a new release changes both
    (work / "a.ipynb").write_text("mine")
    (src / "a.ipynb").write_text("A2")
    (src / "b.ipynb").write_text("B2")
    r = lab_cmd.install_notebooks(work, src)
    assert r.kept == ["a.ipynb"] and r.written == ["b.ipynb"]
    assert (work / "a.ipynb").read_text() == "mine" and (work / "b.ipynb").read_text() == "B2"
    # nothing new: nothing written; a file the user deleted comes back
    (work / "b.ipynb").unlink()
    r = lab_cmd.install_notebooks(work, src)
    assert r.written == ["b.ipynb"] and r.kept == ["a.ipynb"]
    # a file that was there before the lab (no manifest entry) is the user's too
    (work / lab_cmd.MANIFEST).unlink()
    (work / "b.ipynb").write_text("theirs")
    r = lab_cmd.install_notebooks(work, src)
    assert set(r.kept) == {"a.ipynb", "b.ipynb"} and (work / "b.ipynb").read_text() == "theirs"


def test_install_notebooks_refuses_a_file_as_folder(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(lab_cmd.UsageError) as e:
        lab_cmd.install_notebooks(f)
    assert e.value.vid == "LAB-DIR"


@pytest.mark.parametrize("euid,headless", [(0, True), (1000, False)])
def test_lab_command_line(euid, headless):
    nb = lab_cmd.notebooks_dir()
    cmd = lab_cmd.command(nb, ["--port=1"], euid=euid, headless=headless)
    assert cmd[1:3] == ["lab", f"--notebook-dir={nb}"] and cmd[-1] == FIRST and "--port=1" in cmd
    assert ("--allow-root" in cmd) == (euid == 0)
    assert ("--no-browser" in cmd) == headless


def test_in_a_checkout_the_notebooks_open_in_place():
    assert lab_cmd.in_checkout()
    assert Path(lab_cmd.notebooks_dir()) == (ROOT / "notebooks").resolve()
