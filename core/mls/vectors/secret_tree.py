"""Checker for ``secret-tree.json`` (RFC 9420 §6.3.2 sender data keys, §9 secret tree).

For each leaf the vector lists generations (in increasing order) with their handshake and
application key and nonce; the checker asks a receiver's :class:`SecretTree` for exactly those
generations (so skipped generations go through the out-of-order path) and checks that asking
again for a consumed generation raises :class:`GenerationReusedError`."""
from __future__ import annotations

from typing import Any

from . import VectorMismatch, expect, unhex
from ..framing import sender_data_key_nonce
from ..secret_tree import GenerationReusedError, RatchetType, SecretTree
from ..suites import CipherSuite


def check(case: dict[str, Any]) -> None:
    cs = CipherSuite.get(case["cipher_suite"])
    sd = case["sender_data"]
    key, nonce = sender_data_key_nonce(cs, unhex(sd["sender_data_secret"]), unhex(sd["ciphertext"]))
    expect("sender_data.key", key.reveal(), sd["key"])
    expect("sender_data.nonce", nonce.reveal(), sd["nonce"])
    leaves = case["leaves"]
    tree = SecretTree(cs, unhex(case["encryption_secret"]), len(leaves))
    for leaf, gens in enumerate(leaves):
        for g in gens:
            gen = g["generation"]
            for kind, prefix in ((RatchetType.HANDSHAKE, "handshake"),
                                 (RatchetType.APPLICATION, "application")):
                k = tree.key_for(leaf, kind, gen)
                expect(f"leaf {leaf} gen {gen} {prefix}_key", k.key.reveal(), g[f"{prefix}_key"])
                expect(f"leaf {leaf} gen {gen} {prefix}_nonce", k.nonce.reveal(), g[f"{prefix}_nonce"])
                try:
                    tree.key_for(leaf, kind, gen)
                except GenerationReusedError:
                    pass
                else:
                    raise VectorMismatch(f"leaf {leaf} gen {gen} {prefix}: reuse not detected")
