"""Conformance runner for the official MLS test vectors (mlswg/mls-implementations, formats in
its ``test-vectors.md``).

A file is recognised by its *content*, not its name: :data:`FORMATS` lists every official format
with the fields its schema requires (``test-vectors.md``), and :func:`detect_format` picks the one
whose fields a case carries (the most specific when several fit) — so the repository's
``passive-client-random.json``, or any official file saved under another name, runs its checker.
A file no format fits (not a JSON list of objects, an unknown schema, cases of mixed formats) is
an :class:`UnknownVectorFormat`, never a silent skip.

One checker module per format, e.g. ``tree-math`` → module ``gbp_lab.core.mls.vectors.tree_math``
(the three passive-client files share one). A checker module defines
``check(case: dict[str, Any]) -> None`` which returns on success, raises :class:`Skip` when it
cannot run a case (a failure of ambition, reported as such) and raises anything else on failure
(use :func:`expect` for clear mismatches).

``python -m gbp_lab.core.mls.vectors FILE.json[.gz] ...`` prints one line per file,
``<file>: N passed, M failed, K skipped``, then ``N passed, M failed``; exit status 1 on failure
(an unrecognised file counts as one failure).
"""
from __future__ import annotations

import gzip
import importlib
import json
import os
import re
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple, Type, TypeVar

from ...errors import DecodeError

T = TypeVar("T")


class UnknownVectorFormat(DecodeError):
    """A vector file whose content matches no official format (``vid="MLS-VECTORS-FORMAT"``)."""

    default_vid = "MLS-VECTORS-FORMAT"


def _keys(*names: str) -> FrozenSet[str]:
    return frozenset(names)


#: format name → (checker module, fields every case of that format carries), after the schemas of
#: mlswg/mls-implementations ``test-vectors.md`` (names as the official files are named).
FORMATS: Dict[str, Tuple[str, FrozenSet[str]]] = {
    "tree-math": ("tree_math", _keys("n_leaves", "n_nodes", "root", "left", "right", "parent", "sibling")),
    "crypto-basics": ("crypto_basics", _keys("cipher_suite", "ref_hash", "expand_with_label", "derive_secret",
                                             "derive_tree_secret", "sign_with_label", "encrypt_with_label")),
    "secret-tree": ("secret_tree", _keys("cipher_suite", "sender_data", "encryption_secret", "leaves")),
    "message-protection": ("message_protection", _keys(
        "cipher_suite", "group_id", "epoch", "tree_hash", "confirmed_transcript_hash", "signature_priv",
        "signature_pub", "encryption_secret", "sender_data_secret", "membership_key", "proposal",
        "proposal_pub", "proposal_priv", "commit", "commit_pub", "commit_priv", "application",
        "application_priv")),
    "key-schedule": ("key_schedule", _keys("cipher_suite", "group_id", "initial_init_secret", "epochs")),
    "psk_secret": ("psk_secret", _keys("cipher_suite", "psks", "psk_secret")),
    "transcript-hashes": ("transcript_hashes", _keys(
        "cipher_suite", "confirmation_key", "authenticated_content", "interim_transcript_hash_before",
        "confirmed_transcript_hash_after", "interim_transcript_hash_after")),
    "welcome": ("welcome", _keys("cipher_suite", "init_priv", "signer_pub", "key_package", "welcome")),
    "tree-operations": ("tree_operations", _keys("cipher_suite", "tree_before", "proposal", "proposal_sender",
                                                 "tree_hash_before", "tree_after", "tree_hash_after")),
    "tree-validation": ("tree_validation", _keys("cipher_suite", "tree", "group_id", "resolutions",
                                                 "tree_hashes")),
    "treekem": ("treekem", _keys("cipher_suite", "group_id", "epoch", "confirmed_transcript_hash",
                                 "ratchet_tree", "leaves_private", "update_paths")),
    "messages": ("messages", _keys(
        "mls_welcome", "mls_group_info", "mls_key_package", "ratchet_tree", "group_secrets",
        "add_proposal", "update_proposal", "remove_proposal", "pre_shared_key_proposal",
        "re_init_proposal", "external_init_proposal", "group_context_extensions_proposal", "commit",
        "public_message_application", "public_message_proposal", "public_message_commit",
        "private_message")),
    "deserialization": ("deserialization", _keys("vlbytes_header", "length")),
    # passive-client-welcome, -handling-commit and -random: one schema, one checker
    "passive-client": ("passive_client_welcome", _keys(
        "cipher_suite", "key_package", "signature_priv", "encryption_priv", "init_priv", "welcome",
        "ratchet_tree", "external_psks", "initial_epoch_authenticator", "epochs")),
}


def detect_format(case: object) -> Optional[str]:
    """The :data:`FORMATS` name whose fields ``case`` carries — the one with the most fields when
    several fit — or ``None`` when none does (or two equally specific ones do)."""
    if not isinstance(case, dict):
        return None
    fits = sorted(((len(keys), name) for name, (_, keys) in FORMATS.items() if keys <= case.keys()),
                  reverse=True)
    if not fits or (len(fits) > 1 and fits[0][0] == fits[1][0]):
        return None
    return fits[0][1]


def file_format(path: str, cases: List[Any]) -> str:
    """The one format of every case of a file; :class:`UnknownVectorFormat` otherwise."""
    name = os.path.basename(path)
    if not cases:
        raise UnknownVectorFormat(f"{name}: no test cases", where=name)
    found = {detect_format(c) for c in cases}
    if None in found:
        i = next(i for i, c in enumerate(cases) if detect_format(c) is None)
        keys = sorted(cases[i]) if isinstance(cases[i], dict) else type(cases[i]).__name__
        raise UnknownVectorFormat(f"{name}: case {i} matches no official MLS test-vector format "
                                  f"(fields {keys})", where=f"{name} case {i}")
    if len(found) > 1:
        raise UnknownVectorFormat(f"{name}: cases of several formats {sorted(map(str, found))}", where=name)
    return found.pop()  # type: ignore[return-value]  # None was excluded above


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
    format: str = ""
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: List[str] = field(default_factory=list)
    skips: List[str] = field(default_factory=list)

    def line(self) -> str:
        fmt = "" if self.format == vector_name(self.path) else f" [{self.format}]"
        return (f"{os.path.basename(self.path)}{fmt}: {self.passed} passed, {self.failed} failed, "
                f"{self.skipped} skipped")


def vector_name(path: str) -> str:
    """``…/tree-math.json.gz`` → ``tree-math``."""
    base = os.path.basename(path)
    return re.sub(r"\.json(\.gz)?$", "", base)


def load_cases(path: str) -> List[Any]:
    """The cases of a vector file (a JSON list, or one object); unreadable JSON is an
    :class:`UnknownVectorFormat`."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    except (ValueError, OSError, EOFError) as exc:  # bad JSON, bad gzip, bad UTF-8
        raise UnknownVectorFormat(f"{os.path.basename(path)}: not a JSON vector file ({exc})",
                                  where=os.path.basename(path)) from None
    return data if isinstance(data, list) else [data]


def checker_for(name: str) -> Optional[Callable[[dict[str, Any]], None]]:
    """The ``check`` of a format name of :data:`FORMATS` (or of a checker module name)."""
    modname = f"{__name__}.{FORMATS[name][0] if name in FORMATS else name.replace('-', '_')}"
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name == modname:
            return None
        raise
    return mod.check


def run_file(path: str, progress: bool = False) -> FileResult:
    """Run every case of ``path`` through the checker of its format (recognised by content);
    :class:`UnknownVectorFormat` when the file fits no official format."""
    cases = load_cases(path)
    fmt = file_format(path, cases)
    check = checker_for(fmt)
    if check is None:  # pragma: no cover - every format of FORMATS has its module (tested)
        raise UnknownVectorFormat(f"no checker module for format {fmt}")
    result = FileResult(path, fmt)
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
