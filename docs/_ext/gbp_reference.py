"""Reference pages generated from the code at build time, so they cannot drift from it.

Each ``render_*`` function returns reStructuredText built from the code's own registries:

* :func:`render_tables` — every table of ``Capture`` (``Capture.TABLES``): its columns in order
  from the owners' column specs (``readpath.FRAME_TABLE`` / ``ERROR_ROW`` row layouts, the
  derived tables' column lists in ``gbp_lab.capture.tables``, ``findings.FINDING_COLUMNS``), the
  dtype each gets (the row layout's, or what the builder produces), and its meaning from
  ``docs/reference/columns.yaml`` (a column without a meaning, or a meaning for a column that
  does not exist, is a build warning: an error under ``-W``);
* :func:`render_findings` — ``findings.KINDS`` with ``SEVERITY`` and the meaning written in the
  findings module's docstring table;
* :func:`render_vids` — every ``vid`` the code raises (found by reading the source: ``vid=``,
  ``default_vid =``, ``vid_prefix=``), grouped by prefix, with the prefix's meaning from the
  *Error model* table of ``docs/architecture.md``, the exception class and the message;
* :func:`render_cli` — the ``gbp-lab`` command line from ``gbp_lab.cli.build_parser()``.

As a Sphinx extension it adds the directives ``gbp-tables``, ``gbp-findings``, ``gbp-vids`` and
``gbp-cli`` (each inserts its rendering) and a transform that turns ``RFC 9420 §8.5`` in any text
(docstrings included) into a link to that RFC section.
"""
from __future__ import annotations

import argparse
import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
COLUMNS_YAML = DOCS / "reference" / "columns.yaml"
SOURCE_ROOTS = {"gbp_lab.core": ROOT / "core", "gbp_lab.dissectors": ROOT / "dissectors",
                "gbp_lab": ROOT / "gbp_lab"}

#: collected while rendering; the Sphinx side turns each into a build warning
WARNINGS: List[str] = []


def _warn(msg: str) -> None:
    WARNINGS.append(msg)


def _cell(text: str) -> str:
    """One line of a list-table cell (no line breaks, pipes kept)."""
    return " ".join(str(text).split())


def _list_table(header: Sequence[str], rows: Sequence[Sequence[str]], widths: str = "") -> List[str]:
    out = [".. list-table::", "   :header-rows: 1", "   :width: 100%"]
    if widths:
        out.append(f"   :widths: {widths}")
    out.append("")
    for row in [header, *rows]:
        first = True
        for c in row:
            out.append(f"   {'* -' if first else '  -'} {_cell(c) or ' '}")
            first = False
    out.append("")
    return out


def _title(text: str, ch: str) -> List[str]:
    return [text, ch * len(text), ""]


# ---------------------------------------------------------------------------------------------
# tables
_LAYOUT_DTYPES = {"Int64": "Int64", "UInt64": "UInt64", "float": "float64", "bool": "bool",
                  "text": "str", "time": "datetime64[ns, UTC]"}


def table_specs() -> Dict[str, List[Tuple[str, str]]]:
    """Every table of ``Capture`` → its columns in order, each with its dtype.

    ``frames`` and ``errors`` take the row layouts' dtypes; the derived tables are built empty by
    their own builders (so the dtypes are the builders'; ``object`` = text, lists, dicts or
    bytes, as the meaning says)."""
    import pandas as pd

    from gbp_lab.analysis.findings import FINDING_COLUMNS, find_in
    from gbp_lab.capture import tables
    from gbp_lab.capture.model import Capture
    from gbp_lab.capture.readpath import ERROR_ROW, FRAME_TABLE

    frames = FRAME_TABLE.frame([])
    errors = ERROR_ROW.frame([])
    built: Dict[str, pd.DataFrame] = {
        "messages": tables.build_messages(frames, []),
        "audio": tables.build_audio(frames, []),
        "signals": tables.build_signals(frames, []),
        "control": tables.build_control(frames, [], None),
        "epochs": tables.build_epochs(frames),
        "findings": find_in(frames, errors, [], []),
    }
    declared = {"messages": tables.MESSAGE_COLUMNS, "audio": tables.AUDIO_COLUMNS,
                "signals": tables.SIGNAL_COLUMNS, "control": tables.CONTROL_COLUMNS,
                "epochs": tables.EPOCH_COLUMNS, "findings": FINDING_COLUMNS}
    out: Dict[str, List[Tuple[str, str]]] = {
        "frames": [(n, _LAYOUT_DTYPES[FRAME_TABLE.dtypes[n]]) for n in FRAME_TABLE.names],
        "errors": [(n, _LAYOUT_DTYPES[ERROR_ROW.dtypes[n]]) for n in ERROR_ROW.names],
    }
    from gbp_lab.capture.columns import with_rel_time

    for name, df in built.items():
        df = with_rel_time(df, 0)  # as Capture adds it to every table with a time column
        declared[name] = list(declared[name])
        if "rel_time" in df.columns and "rel_time" not in declared[name]:
            declared[name].append("rel_time")
        if list(df.columns) != list(declared[name]):
            _warn(f"table {name}: the builder's columns {list(df.columns)} are not the declared "
                  f"{list(declared[name])}")
        out[name] = [(c, str(df[c].dtype)) for c in declared[name]]
    missing = [t for t in Capture.TABLES if t not in out]
    if missing:
        _warn(f"Capture.TABLES has tables the generator does not know: {missing}")
    return {t: out[t] for t in Capture.TABLES if t in out}


def column_meanings() -> Dict[str, Dict[str, str]]:
    """``docs/reference/columns.yaml``: ``{table or "common": {column: meaning}}``."""
    import yaml

    data = yaml.safe_load(COLUMNS_YAML.read_text(encoding="utf-8"))
    return {t: {str(k): str(v) for k, v in (cols or {}).items()} for t, cols in data.items()}


def render_tables() -> str:
    specs = table_specs()
    meanings = column_meanings()
    common = meanings.get("common", {})
    used_common = set()
    lines: List[str] = []
    for table, cols in specs.items():
        own = meanings.get(table, {})
        intro = own.pop("_table", "") if "_table" in own else ""
        lines += _title(f"Capture.{table}", "-")
        if intro:
            lines += [intro, ""]
        rows = []
        for name, dtype in cols:
            meaning = own.get(name)
            if meaning is None:
                meaning = common.get(name)
                if meaning is not None:
                    used_common.add(name)
            if meaning is None:
                _warn(f"columns.yaml: no meaning for column {table}.{name}")
                meaning = ""
            rows.append((f"``{name}``", f"``{dtype}``", meaning))
        lines += _list_table(("column", "dtype", "meaning"), rows, "20 12 68")
        extra = sorted(set(own) - {n for n, _ in cols})
        if extra:
            _warn(f"columns.yaml: {table} has meanings for columns it does not have: {extra}")
    unknown = sorted(set(meanings) - set(specs) - {"common"})
    if unknown:
        _warn(f"columns.yaml: unknown tables {unknown}")
    unused = sorted(set(common) - used_common)
    if unused:
        _warn(f"columns.yaml: common meanings used by no table: {unused}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# findings
_KIND_ROW = re.compile(r"^``(\w+)``\s+(\w+)\s+(.*)$")


def finding_meanings() -> Dict[str, Tuple[str, str]]:
    """kind → (severity, meaning) as written in the table of the findings module's docstring."""
    from gbp_lab.analysis import findings

    doc = findings.__doc__ or ""
    out: Dict[str, List[str]] = {}
    sev: Dict[str, str] = {}
    current: Optional[str] = None
    for line in doc.splitlines():
        m = _KIND_ROW.match(line.strip())
        if m and not line.startswith(" "):
            current = m.group(1)
            sev[current] = m.group(2)
            out[current] = [m.group(3)]
        elif current and line.startswith(" " * 8) and line.strip():
            out[current].append(line.strip())
        elif line.startswith("="):
            current = None
    return {k: (sev[k], " ".join(v)) for k, v in out.items()}


def render_findings() -> str:
    from gbp_lab.analysis.findings import FINDING_COLUMNS, KINDS, SEVERITY

    documented = finding_meanings()
    rows = []
    for kind in KINDS:
        sev, meaning = documented.get(kind, ("", ""))
        if not meaning:
            _warn(f"findings: kind {kind!r} has no meaning in the findings module's table")
        if sev and sev != SEVERITY[kind]:
            _warn(f"findings: kind {kind!r} is {SEVERITY[kind]!r} in SEVERITY but {sev!r} in the "
                  f"findings module's table")
        rows.append((f"``{kind}``", SEVERITY[kind], meaning))
    extra = sorted(set(documented) - set(KINDS))
    if extra:
        _warn(f"findings: the module's table documents kinds not in KINDS: {extra}")
    lines = [f"``Capture.findings`` has one row per finding; its ``kind`` is one of these "
             f"{len(KINDS)} stable strings (:data:`gbp_lab.analysis.findings.KINDS`), its "
             f"``severity`` the kind's (:data:`gbp_lab.analysis.findings.SEVERITY`). Columns: "
             + ", ".join(f"``{c}``" for c in FINDING_COLUMNS) + " (see :doc:`tables`).", ""]
    lines += _list_table(("kind", "severity", "meaning"), rows, "18 10 72")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# vids
@dataclass
class VidSite:
    """One place in the source that raises (or defines) a vid."""

    vid: str          #: the vid, or a pattern such as ``{prefix}-TYPE``
    module: str       #: dotted module name
    line: int
    error: str = ""   #: the exception class (or the class whose ``default_vid`` it is)
    message: str = ""


def _source_files() -> Iterator[Tuple[str, Path]]:
    for pkg, folder in SOURCE_ROOTS.items():
        for p in sorted(folder.rglob("*.py")):  # rglob does not descend into gbp_lab's links
            if "__pycache__" in p.parts:
                continue
            rel = p.relative_to(folder).with_suffix("")
            parts = [x for x in rel.parts if x != "__init__"]
            yield ".".join([pkg, *parts]), p


def _text_of(node: ast.AST) -> Optional[str]:
    """A string constant or an f-string as text (``{…}`` for what is filled in)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
            elif isinstance(v, ast.FormattedValue):
                parts.append("{" + ast.unparse(v.value) + "}")
        return "".join(parts)
    return None


def _vid_texts(node: ast.AST) -> List[str]:
    if isinstance(node, ast.IfExp):
        return _vid_texts(node.body) + _vid_texts(node.orelse)
    t = _text_of(node)
    return [t] if t else []


def _callee(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


_VID_SHAPE = re.compile(r"^(\{[^}]*\}|[A-Z][A-Z0-9]*)(-[A-Z0-9{}_.\[\]()]+)*$")


def vid_sites() -> List[VidSite]:
    """Every vid in the source: ``vid=`` / ``vid_prefix=`` keywords of calls (string constants,
    f-strings, either branch of a conditional) and ``default_vid`` class attributes."""
    sites: List[VidSite] = []
    for module, path in _source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg not in ("vid", "vid_prefix"):
                        continue
                    msg = _text_of(node.args[0]) if node.args else None
                    for v in _vid_texts(kw.value):
                        if not _VID_SHAPE.match(v):
                            continue
                        if kw.arg == "vid_prefix":
                            v += "-*"
                        sites.append(VidSite(v, module, node.lineno, _callee(node), msg or ""))
            elif isinstance(node, ast.ClassDef):
                for st in node.body:
                    if (isinstance(st, ast.Assign) and len(st.targets) == 1
                            and isinstance(st.targets[0], ast.Name)
                            and st.targets[0].id == "default_vid"):
                        v = _text_of(st.value)
                        if v:
                            doc = (ast.get_docstring(node) or "").strip().split("\n\n")[0]
                            sites.append(VidSite(v, module, st.lineno, node.name,
                                                 "default of " + node.name + ": " + " ".join(doc.split())))
    return sites


def vid_prefix(vid: str) -> str:
    m = re.match(r"[A-Z][A-Z0-9]*", vid)
    return m.group(0) if m else "(computed)"


def prefix_meanings() -> Dict[str, str]:
    """prefix → meaning, from the *Error model* table of ``docs/architecture.md``."""
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Error model", 1)[1].split("\n## ", 1)[0]
    out: Dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        for tok in re.findall(r"`([A-Z][A-Z0-9]*)(?:-[^`]*)?`", cells[0]):
            out.setdefault(tok, cells[1])
    return out


def _rst_text(s: str) -> str:
    """Plain text safe inside RST (no markup starts)."""
    return re.sub(r"([*`|_\\])", r"\\\1", s)


def render_vids() -> str:
    sites = vid_sites()
    meanings = prefix_meanings()
    by_prefix: Dict[str, Dict[str, List[VidSite]]] = {}
    for s in sites:
        by_prefix.setdefault(vid_prefix(s.vid), {}).setdefault(s.vid, []).append(s)
    total = sum(len(v) for v in by_prefix.values())
    lines = [f"{total} vids (and vid patterns) raised in {len(by_prefix)} prefixes, read from the "
             "source at build time. Every error is a :class:`~gbp_lab.core.errors.GbpLabError`; "
             "match on ``err.vid`` (stable) rather than on the message. A ``{…}`` part is filled "
             "in by the caller (for example ``{prefix}-TYPE`` of the CBOR map reader, whose "
             "callers pass their own prefix such as ``GBP-FRAME``).", ""]
    order = sorted(by_prefix, key=lambda p: (p == "(computed)", p))
    for prefix in order:
        vids = by_prefix[prefix]
        meaning = meanings.get(prefix)
        if meaning is None and prefix != "(computed)":
            _warn(f"vid prefix {prefix} has no meaning in the Error model table of "
                  "docs/architecture.md")
        lines += _title(prefix, "-")
        if meaning:
            lines += [meaning.replace("`", "``").replace("````", "``"), ""]
        rows = []
        for vid in sorted(vids):
            ss = vids[vid]
            errs = sorted({s.error for s in ss if s.error})
            where = sorted({f"{s.module}:{s.line}" for s in ss})
            msgs = []
            for s in ss:
                m = s.message.strip()
                if m and m not in msgs:
                    msgs.append(m)
            shown = " · ".join(_rst_text(m) for m in msgs[:3]) + (" …" if len(msgs) > 3 else "")
            rows.append((f"``{vid}``", ", ".join(errs), shown,
                         ", ".join(where[:3]) + (" …" if len(where) > 3 else "")))
        lines += _list_table(("vid", "raised as", "message", "where"), rows, "22 16 42 20")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# CLI
def _subcommands(parser: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _option_rows(parser: argparse.ArgumentParser) -> List[Tuple[str, str, str]]:
    rows = []
    formatter = parser._get_formatter()
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if a.option_strings:
            name = ", ".join(a.option_strings)
            if a.nargs != 0:
                name += " " + formatter._format_args(a, a.dest.upper())
        else:
            name = formatter._format_args(a, a.dest)
        help_ = formatter._expand_help(a) if a.help else ""
        if a.help == argparse.SUPPRESS:
            continue
        default = ""
        if a.option_strings and a.nargs != 0 and a.default not in (None, argparse.SUPPRESS):
            default = repr(a.default)
        rows.append((f"``{name}``", _rst_text(help_), f"``{default}``" if default else ""))
    return rows


def _usage(parser: argparse.ArgumentParser) -> List[str]:
    """The usage lines as argparse prints them at 78 columns (whatever the terminal)."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "78"
    try:
        text = parser.format_usage().rstrip()
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return [".. code-block:: text", ""] + ["   " + ln for ln in text.splitlines()] + [""]


def render_cli() -> str:
    from gbp_lab.cli import build_parser

    top = build_parser()
    lines: List[str] = [_rst_text(top.description or ""), ""] + _usage(top)
    lines += _list_table(("option", "meaning", "default"), _option_rows(top), "30 55 15")
    for name, p in _subcommands(top).items():
        lines += _title(f"gbp-lab {name}", "-")
        lines += [_rst_text(p.description or ""), ""] + _usage(p)
        rows = _option_rows(p)
        if rows:
            lines += _list_table(("argument", "meaning", "default"), rows, "30 55 15")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# public names
def public_names() -> Dict[str, Any]:
    """``{"gbp_lab.core.X": obj, "gbp_lab.X": obj}``: every public name of ``gbp_lab.core`` and
    of ``gbp_lab`` (its lazy exports included), submodules left out."""
    import types

    import gbp_lab
    import gbp_lab.core

    out: Dict[str, Any] = {}
    for mod in (gbp_lab.core, gbp_lab):
        for n in dir(mod):
            if n.startswith("_"):
                continue
            obj = getattr(mod, n)
            if not isinstance(obj, types.ModuleType):
                out[f"{mod.__name__}.{n}"] = obj
    return out


def undocumented_owners() -> List[str]:
    """Classes and functions that a module of ours lists in ``__all__`` and defines itself but
    that have no docstring (their API entry would be empty)."""
    import importlib
    import inspect

    out = []
    for module, _path in _source_files():
        if any(part.startswith("_") for part in module.split(".")):
            continue  # private modules, and __main__ (importing it would run it)
        try:
            mod = importlib.import_module(module)
        except ImportError:  # an optional piece that is not installed
            continue
        for n in getattr(mod, "__all__", ()):
            obj = getattr(mod, n, None)
            if ((inspect.isclass(obj) or inspect.isfunction(obj))
                    and getattr(obj, "__module__", None) == module and not (obj.__doc__ or "").strip()):
                out.append(f"{module}.{n} has no docstring")
    return out


def undocumented(documented: Sequence[str]) -> List[str]:
    """Public names (:func:`public_names`) that the API reference does not describe — under the
    public name, under the owner's name (``obj.__module__.__qualname__``), or, for data such as
    ``AES_128_GCM``, under any module whose attribute of that name is the same object — and
    classes or functions without a docstring."""
    import importlib
    import inspect

    have = set(documented)
    by_tail: Dict[str, List[str]] = {}
    for name in have:
        by_tail.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    problems = []
    for public, obj in public_names().items():
        tail = public.rsplit(".", 1)[-1]
        owner = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
        found = public in have or owner in have
        if not found:
            for cand in by_tail.get(tail, []):
                mod, _, attr = cand.rpartition(".")
                try:
                    found = getattr(importlib.import_module(mod), attr, None) is obj
                except ImportError:
                    continue
                if found:
                    break
        if not found:
            problems.append(f"{public} is not in the API reference")
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and not (obj.__doc__ or "").strip():
            problems.append(f"{public} has no docstring")
    return problems


RENDERERS: Dict[str, Callable[[], str]] = {
    "gbp-tables": render_tables, "gbp-findings": render_findings, "gbp-vids": render_vids,
    "gbp-cli": render_cli}


# ---------------------------------------------------------------------------------------------
# RFC links
_RFC = re.compile(r"RFC\s?(\d{3,5})(?:\s*(?:§|section\s)\s*(\d+(?:\.\d+)*))?")


def rfc_url(number: str, section: Optional[str] = None) -> str:
    url = f"https://www.rfc-editor.org/rfc/rfc{number}.html"
    return url + (f"#section-{section}" if section else "")


# ---------------------------------------------------------------------------------------------
# Sphinx glue
def setup(app: Any) -> Dict[str, Any]:
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.transforms import SphinxTransform
    from sphinx.util.docutils import SphinxDirective
    from sphinx.util import logging

    logger = logging.getLogger(__name__)

    def make(render: Callable[[], str]):
        class Generated(SphinxDirective):
            has_content = False

            def run(self):
                del WARNINGS[:]
                text = render()
                src = self.state.document.current_source
                for w in WARNINGS:
                    logger.warning(w, location=self.get_location())
                node = nodes.section()
                node.document = self.state.document
                self.state.nested_parse(StringList(text.splitlines(), source=src),
                                        self.content_offset, node, match_titles=True)
                return node.children
        return Generated

    for name, render in RENDERERS.items():
        app.add_directive(name, make(render))

    class RfcLinks(SphinxTransform):
        """``RFC 9420 §8.5`` in running text → a link to that section."""

        default_priority = 900

        def apply(self, **kwargs):
            skip = (nodes.literal, nodes.literal_block, nodes.reference, nodes.raw,
                    nodes.FixedTextElement)
            for text in list(self.document.findall(nodes.Text)):
                parent = text.parent
                if parent is None or isinstance(parent, skip):
                    continue
                if any(isinstance(a, skip) for a in _ancestors(parent)):
                    continue
                s = str(text)
                if "RFC" not in s:
                    continue
                pieces: List[nodes.Node] = []
                pos = 0
                for m in _RFC.finditer(s):
                    if m.start() > pos:
                        pieces.append(nodes.Text(s[pos:m.start()]))
                    pieces.append(nodes.reference(m.group(0), m.group(0),
                                                  refuri=rfc_url(m.group(1), m.group(2))))
                    pos = m.end()
                if not pieces:
                    continue
                if pos < len(s):
                    pieces.append(nodes.Text(s[pos:]))
                idx = parent.index(text)
                parent.remove(text)
                for k, p in enumerate(pieces):
                    parent.insert(idx + k, p)

    def _ancestors(node):
        n = node.parent
        while n is not None:
            yield n
            n = n.parent

    from sphinx import addnodes
    from sphinx.transforms.post_transforms import SphinxPostTransform

    class SiblingRefs(SphinxPostTransform):
        """A relative reference (``:mod:`.registry``` in a docstring of
        ``gbp_lab.core.gbp.frame``) names the closest match: a member of the current module,
        then a sibling module, then upwards — as the code's authors mean it — instead of any
        object anywhere whose name ends that way (ambiguous: a build warning)."""

        default_priority = 5  # before the references are resolved (10)

        def run(self, **kwargs):
            py = self.env.get_domain("py")
            known = set(py.objects) | set(getattr(py, "modules", {}))
            for node in self.document.findall(addnodes.pending_xref):
                if node.get("refdomain") != "py" or not node.get("refspecific"):
                    continue
                mod = node.get("py:module")
                if not mod:
                    continue
                parts = mod.split(".")
                for i in range(len(parts), 0, -1):
                    cand = ".".join(parts[:i]) + "." + node["reftarget"]
                    if cand in known:
                        node["reftarget"] = cand
                        node["refspecific"] = False
                        break

    from sphinx.domains.python import PythonDomain

    class PyDomain(PythonDomain):
        """The Python domain, but an object re-exported by several modules (each page names it,
        autodoc adds its canonical name as an alias) is noted once, not reported as a duplicate
        description: the owner's page is the real one."""

        def note_object(self, name, objtype, node_id, aliased=False, location=None):
            other = self.objects.get(name)
            if aliased and other is not None and other.aliased:
                return
            super().note_object(name, objtype, node_id, aliased=aliased, location=location)

    app.add_domain(PyDomain, override=True)

    def check_public_names(app, env):
        """With the API pages read: every public name documented, every public class and
        function (``__all__``) with a docstring."""
        if "api/index" not in env.found_docs:
            return
        py = env.get_domain("py")
        for problem in undocumented(list(py.objects)) + undocumented_owners():
            logger.warning(problem, location="api/index")

    app.connect("env-check-consistency", check_public_names)
    app.add_transform(RfcLinks)
    app.add_post_transform(SiblingRefs)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
