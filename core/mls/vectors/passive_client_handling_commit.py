"""Checker for ``passive-client-handling-commit.json`` (mls-implementations ``test-vectors.md``,
"Passive Client"): join, then follow commits covering every proposal type a passive member sees
(by value and by reference, PSKs, GroupContextExtensions …), comparing each epoch authenticator.
Same format and logic as :mod:`.passive_client_welcome`."""
from __future__ import annotations

from typing import Any

from .passive_client_welcome import run_passive_client


def check(case: dict[str, Any]) -> None:
    run_passive_client(case)
