"""Sphinx configuration of the gbp-lab documentation site (``make docs`` → ``docs/_build/html``).

Sphinx with autodoc + napoleon: the API pages come from the docstrings as they are (reST with
``:func:`` cross-references, which Sphinx resolves); MyST-NB reads the Markdown guide pages and
renders the notebooks with their outputs (run at build time, cached). The
reference pages (tables, findings, vids, CLI) are generated from the code by the local extension
``docs/_ext/gbp_reference.py``. Offline: no intersphinx, no network at build time.

``GBP_DOCS_ONLY=reference`` builds the reference pages alone (the docs test does that: seconds).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # the checkout is the package (links inside gbp_lab/)

import gbp_lab  # noqa: E402

project = "gbp-lab"
author = "gbp-lab contributors"
release = version = gbp_lab.__version__
copyright = "gbp-lab contributors"

# GBP_DOCS_FAST=1 (the docs test): no highlighted source pages
FAST = os.environ.get("GBP_DOCS_FAST") == "1"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "gbp_reference",
] + ([] if FAST else ["sphinx.ext.viewcode"])
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store", "**/.ipynb_checkpoints"]
ONLY = os.environ.get("GBP_DOCS_ONLY", "")
if ONLY == "reference":
    # the reference pages alone: no notebooks, so MyST's plain parser is enough
    root_doc = "reference/index"
    exclude_patterns += ["index.rst", "api", "guide", "notebooks", "*.md"]
    extensions.append("myst_parser")
    source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
else:
    # MyST-NB: the Markdown pages and the notebooks (docs/notebooks links to ../notebooks), run
    # once and cached in docs/_build/.jupyter_cache (git keeps them without outputs); a
    # notebook that raises fails the build
    extensions.append("myst_nb")
    nb_execution_mode = "cache"
    nb_execution_cache_path = str(HERE / "_build" / ".jupyter_cache")
    nb_execution_timeout = 900
    nb_execution_raise_on_error = True
    nb_execution_show_tb = True

html_theme = "alabaster"
html_title = f"gbp-lab {release}"
html_theme_options = {"page_width": "1240px", "sidebar_width": "250px"}
html_static_path: list = []
templates_path: list = []

autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # signatures as written; types are described in the docstrings
autodoc_mock_imports = ["gbp_stack"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False

myst_heading_anchors = 3
suppress_warnings = ["myst.header"]
