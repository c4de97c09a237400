"""``gbp-lab lab``: open JupyterLab on the teaching notebooks (``make lab`` runs exactly this).

Where the notebooks come from:

* in a checkout (``make lab``, an editable install) the package's ``notebooks`` folder is the
  checkout's own ``notebooks/`` (a link inside ``gbp_lab/``): the lab opens it in place, so a
  change made in the lab is a change to the project;
* from a wheel (``pip install gbp-lab``) the notebooks are package data, read-only and replaced at
  every upgrade: the lab copies them into a folder the user owns (``./gbp-lab-notebooks`` unless
  ``--dir`` says otherwise) and opens that. A notebook the user changed is never overwritten: the
  folder keeps a manifest of what was copied (``.gbp-lab-manifest.json``: name → SHA-256), and a
  file is replaced only while it still equals what the lab put there.

JupyterLab resolves its positional notebook against the working directory, so it is started in the
notebook folder. As root (containers, CI machines) ``--allow-root`` is added; with no display to
open a browser on, ``--no-browser`` (the URL with its token is printed either way).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import List, Optional, Sequence

from .core.errors import UsageError

#: the notebook JupyterLab opens first: "start here" (what the lab is, which notebook answers
#: which question, a five-minute tour of the embedded demo capture)
FIRST_NOTEBOOK = "00_start_here.ipynb"
#: where ``gbp-lab lab`` copies the notebooks when they cannot be opened in place
DEFAULT_DIR = "gbp-lab-notebooks"
#: name -> SHA-256 of the bytes the lab wrote, inside the working folder
MANIFEST = ".gbp-lab-manifest.json"


def shipped_notebooks() -> Path:
    """The notebooks that came with this installation (package data ``gbp_lab/notebooks``)."""
    path = Path(str(resources.files("gbp_lab") / "notebooks"))
    if not path.is_dir() or not any(path.glob("*.ipynb")):
        raise UsageError("this installation of gbp-lab has no notebooks (reinstall gbp-lab)",
                         vid="LAB-NO-NOTEBOOKS", where=str(path))
    return path


def in_checkout(path: Optional[Path] = None) -> bool:
    """True when the shipped notebooks are a checkout's ``notebooks/`` (reached through the link
    inside ``gbp_lab/``), i.e. files under version control, not package data."""
    path = path or Path(str(resources.files("gbp_lab") / "notebooks"))
    return path.is_symlink() and (path.resolve().parent / "pyproject.toml").is_file()


def notebooks_dir() -> str:
    """The folder ``gbp-lab lab`` opens when no ``--dir`` is given and the lab runs in a checkout."""
    return str(shipped_notebooks().resolve())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class CopyReport:
    """What :func:`install_notebooks` did, file by file."""
    written: List[str] = field(default_factory=list)    #: new, or updated while unchanged by the user
    kept: List[str] = field(default_factory=list)       #: changed by the user: left alone
    current: List[str] = field(default_factory=list)    #: already the shipped version


def install_notebooks(dest: Path, source: Optional[Path] = None) -> CopyReport:
    """Copy the shipped notebooks (and the demo capture with its key log, into ``demo/``) into
    ``dest``; never overwrite a file the user changed (see the module docstring)."""
    source = source or shipped_notebooks()
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} exists and is not a folder", vid="LAB-DIR", where=str(dest))
    dest.mkdir(parents=True, exist_ok=True)
    manifest_path = dest / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        if not isinstance(manifest, dict):
            manifest = {}
    except (OSError, ValueError):
        manifest = {}
    files = [(p.name, p) for p in sorted(source.glob("*.ipynb"))]
    demo = Path(str(resources.files("gbp_lab") / "data" / "demo"))
    files += [(f"demo/{p.name}", p) for p in sorted(demo.iterdir()) if p.is_file()]
    report = CopyReport()
    for name, src in files:
        target = dest / name
        shipped = src.read_bytes()
        new_sha = hashlib.sha256(shipped).hexdigest()
        if target.exists():
            have = _sha(target)
            if have == new_sha:
                manifest[name] = new_sha
                report.current.append(name)
                continue
            if manifest.get(name) != have:  # not what we wrote last time: the user's work
                report.kept.append(name)
                continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(shipped)
        manifest[name] = new_sha
        report.written.append(name)
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return report


def _jupyter() -> str:
    jupyter = shutil.which("jupyter", path=os.path.dirname(sys.executable)) or shutil.which("jupyter")
    if jupyter is None:
        raise UsageError("JupyterLab is not installed: pip install 'gbp-lab[lab]'", vid="LAB-NO-JUPYTER")
    return jupyter


def _no_display() -> bool:
    return sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def command(notebook_dir: str, extra: Sequence[str] = (), *, euid: Optional[int] = None,
            headless: Optional[bool] = None) -> List[str]:
    """The ``jupyter lab`` command line; run it with ``cwd=notebook_dir`` (JupyterLab resolves the
    positional notebook against the working directory)."""
    euid = os.geteuid() if euid is None and hasattr(os, "geteuid") else euid
    headless = _no_display() if headless is None else headless
    cmd = [_jupyter(), "lab", f"--notebook-dir={notebook_dir}"]
    if euid == 0 and "--allow-root" not in extra:
        cmd.append("--allow-root")
    if headless and "--no-browser" not in extra:
        cmd.append("--no-browser")
    cmd += list(extra)
    if os.path.exists(os.path.join(notebook_dir, FIRST_NOTEBOOK)):
        # the printed URL (and "/") leads to notebook 00; the positional name opens it in a browser
        cmd += [f"--LabApp.default_url=/lab/tree/{FIRST_NOTEBOOK}", FIRST_NOTEBOOK]
    return cmd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=None,
                        help=f"working folder: the notebooks are copied there and opened (default: "
                             f"the checkout's notebooks/ in a checkout, else ./{DEFAULT_DIR})")
    parser.add_argument("--notebook-dir", default=None,
                        help="open this folder as it is (nothing is copied)")
    parser.add_argument("jupyter_args", nargs="*", help="extra arguments passed to `jupyter lab` (after --)")


def resolve_dir(args: argparse.Namespace, out=sys.stdout) -> str:
    """The folder to open, copying the notebooks first when needed."""
    if args.notebook_dir:
        return str(Path(args.notebook_dir).resolve())
    if args.dir is None and in_checkout():
        return notebooks_dir()
    dest = Path(args.dir or DEFAULT_DIR).resolve()
    report = install_notebooks(dest)
    print(f"gbp-lab: notebooks in {dest} ({len(report.written)} copied, {len(report.current)} up to date"
          + (f", {len(report.kept)} changed by you and kept: {', '.join(report.kept)}" if report.kept else "")
          + ")", file=out, flush=True)
    return str(dest)


def run(args: argparse.Namespace) -> int:
    folder = resolve_dir(args)
    cmd = command(folder, args.jupyter_args)
    print("gbp-lab: " + " ".join(cmd), flush=True)
    try:
        return subprocess.call(cmd, cwd=folder)
    except KeyboardInterrupt:
        return 0
