"""``gbp-lab lab``: open JupyterLab on the teaching notebooks (the same as ``make lab``)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from .core.errors import UsageError

#: the notebook JupyterLab opens first: the embedded demo capture, dissected
FIRST_NOTEBOOK = "02_dissecting_a_capture.ipynb"


def notebooks_dir() -> str:
    """The checkout's ``notebooks/`` folder (the notebooks are not shipped inside the wheel)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(here, "notebooks")
    if not os.path.isdir(path):
        raise UsageError("the notebooks live in the gbp-lab checkout: run `make lab` there",
                         vid="LAB-NO-NOTEBOOKS", where=path)
    return path


def add_arguments(parser) -> None:
    parser.add_argument("--notebook-dir", default=None, help="folder to open (default: the checkout's notebooks/)")
    parser.add_argument("jupyter_args", nargs="*", help="extra arguments passed to `jupyter lab`")


def command(notebook_dir: str, extra=()) -> list:
    jupyter = shutil.which("jupyter", path=os.path.dirname(sys.executable)) or shutil.which("jupyter")
    if jupyter is None:
        raise UsageError("JupyterLab is not installed: pip install 'gbp-lab[lab]'", vid="LAB-NO-JUPYTER")
    cmd = [jupyter, "lab", f"--notebook-dir={notebook_dir}"]
    if os.path.exists(os.path.join(notebook_dir, FIRST_NOTEBOOK)):
        cmd.append(FIRST_NOTEBOOK)
    return cmd + list(extra)


def run(args) -> int:
    return subprocess.call(command(args.notebook_dir or notebooks_dir(), args.jupyter_args))
