"""Conformance runner for the official MLS test vectors (mlswg/mls-implementations, formats in
its ``test-vectors.md``).

One checker module per vector file, named after the file: ``tree-math.json`` → module
``gbp_lab.core.mls.vectors.tree_math``. A checker module defines ``check(case: dict[str, Any]) -> None``
which returns on success, raises :class:`Skip` when it cannot run a case (a failure of ambition,
reported as such) and raises anything else on failure (use :func:`expect` for clear mismatches).

``python -m gbp_lab.core.mls.vectors FILE.json[.gz] ...`` prints one line per file,
``<file>: N passed, M failed, K skipped``, then ``N passed, M failed``; exit status 1 on failure.
"""
from __future__ import annotations

import gzip
import importlib
import json
import os
import re
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Type, TypeVar

T = TypeVar("T")


class Skip(Exception):
    """A checker cannot run this case (unsupported feature). Counted as *skipped*."""


class VectorMismatch(AssertionError):
    """A computed value differs from the vector's."""


def expect(name: str, got: object, want: object) -> None:
    """Compare a computed value (bytes or other) against the vector's value (hex str or other)."""
    got_s: object
    want_s: object
    if isinstance(got, (bytes, bytearray)) and isinstance(want, str):
        got_s, want_s = bytes(got).hex(), want.lower()
    else:
        got_s, want_s = got, want
    if got_s != want_s:
        raise VectorMismatch(f"{name}: got {got_s!r}, want {want_s!r}")


def unhex(value: str) -> bytes:
    """The bytes of a vector's hex string (a ``null`` field is the caller's to handle)."""
    return bytes.fromhex(value)


def body_as(value: object, cls: Type[T], name: str) -> T:
    """``value`` (e.g. an ``MLSMessage.message`` body) as a ``cls``, or :class:`VectorMismatch`."""
    if not isinstance(value, cls):
        raise VectorMismatch(f"{name}: got a {type(value).__name__}, want a {cls.__name__}")
    return value


@dataclass
class FileResult:
    path: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: List[str] = field(default_factory=list)
    skips: List[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{os.path.basename(self.path)}: {self.passed} passed, {self.failed} failed, {self.skipped} skipped"


def vector_name(path: str) -> str:
    """``…/tree-math.json.gz`` → ``tree-math``."""
    base = os.path.basename(path)
    return re.sub(r"\.json(\.gz)?$", "", base)


def load_cases(path: str) -> List[Any]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    return data if isinstance(data, list) else [data]


def checker_for(name: str) -> Optional[Callable[[dict[str, Any]], None]]:
    modname = f"{__name__}.{name.replace('-', '_')}"
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name == modname:
            return None
        raise
    return mod.check


def run_file(path: str, progress: bool = False) -> FileResult:
    result = FileResult(path)
    cases = load_cases(path)
    check = checker_for(vector_name(path))
    iterable = cases
    if progress:
        try:
            from tqdm import tqdm
            iterable = tqdm(cases, desc=vector_name(path), unit="case", leave=False)
        except ImportError:  # pragma: no cover - tqdm is a lab dependency
            pass
    for i, case in enumerate(iterable):
        suite = case.get("cipher_suite") if isinstance(case, dict) else None
        label = f"case {i}" + (f" (suite {suite})" if suite is not None else "")
        if check is None:
            result.skipped += 1
            result.skips.append(f"{label}: no checker for {vector_name(path)}")
            continue
        try:
            check(case)
        except Skip as exc:
            result.skipped += 1
            result.skips.append(f"{label}: {exc}")
        except Exception as exc:  # a failure of any kind is a failed case, never a crash
            result.failed += 1
            tb = traceback.format_exc(limit=-3)
            result.failures.append(f"{label}: {type(exc).__name__}: {exc}\n{tb}")
        else:
            result.passed += 1
    return result
