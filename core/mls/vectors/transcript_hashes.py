"""Checker for ``transcript-hashes.json`` (RFC 9420 §8.2, §6.1).

Decodes ``authenticated_content`` (a commit), checks it re-encodes to the same bytes, that its
confirmation tag is ``MAC(confirmation_key, confirmed_transcript_hash_after)``, and that both
transcript hashes follow from ``interim_transcript_hash_before``."""
from __future__ import annotations

from typing import Any

from . import VectorMismatch, expect, unhex
from ..framing import AuthenticatedContent
from ..schedule import verify_confirmation_tag
from ..suites import CipherSuite
from ..transcript import TranscriptHashes


def check(case: dict[str, Any]) -> None:
    cs = CipherSuite.get(case["cipher_suite"])
    raw = unhex(case["authenticated_content"])
    ac = AuthenticatedContent.from_bytes(raw)
    expect("authenticated_content round trip", ac.to_bytes(), case["authenticated_content"])
    before = TranscriptHashes(b"", unhex(case["interim_transcript_hash_before"]))
    after = before.update(cs, ac)
    expect("confirmed_transcript_hash_after", after.confirmed, case["confirmed_transcript_hash_after"])
    expect("interim_transcript_hash_after", after.interim, case["interim_transcript_hash_after"])
    if ac.auth.confirmation_tag is None:
        raise VectorMismatch("authenticated_content carries no confirmation tag")
    verify_confirmation_tag(cs, unhex(case["confirmation_key"]), after.confirmed,
                            ac.auth.confirmation_tag)
