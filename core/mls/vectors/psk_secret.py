"""Checker for ``psk_secret.json`` (RFC 9420 §8.4).

Each PSK is external: ``PreSharedKeyID{psktype = external, psk_id, psk_nonce}``; the checker also
round-trips each PreSharedKeyID through its TLS codec."""
from __future__ import annotations

from typing import Any

from . import expect, unhex
from ..psk import PreSharedKeyID, psk_secret
from ..suites import CipherSuite


def check(case: dict[str, Any]) -> None:
    cs = CipherSuite.get(case["cipher_suite"])
    psks = []
    for p in case["psks"]:
        pid = PreSharedKeyID.external(unhex(p["psk_id"]), unhex(p["psk_nonce"]))
        expect("PreSharedKeyID round trip", PreSharedKeyID.from_bytes(pid.to_bytes()), pid)
        psks.append((pid, unhex(p["psk"])))
    expect("psk_secret", psk_secret(cs, psks).reveal(), case["psk_secret"])
