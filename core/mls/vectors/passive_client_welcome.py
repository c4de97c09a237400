"""Checker for ``passive-client-welcome.json`` (mls-implementations ``test-vectors.md``,
"Passive Client": a client joins from a Welcome and follows later epochs without sending).

Fields: ``cipher_suite``, ``key_package`` (MLSMessage), ``signature_priv``, ``encryption_priv``
(the leaf's HPKE key), ``init_priv``, ``welcome`` (MLSMessage), ``ratchet_tree`` (out-of-band tree
or ``null`` when the GroupInfo carries one), ``external_psks`` (``psk_id``/``psk``),
``initial_epoch_authenticator`` and ``epochs`` (proposals, commit, epoch_authenticator). The
same logic serves ``passive-client-handling-commit.json`` and ``passive-client-random.json``:
:func:`run_passive_client`.
"""
from __future__ import annotations

from typing import Any

from ..group import join_group, process_message
from ..key_package import KeyPackage
from ..mls_message import MLSMessage
from ..registries import WireFormat
from ..suites import CipherSuite
from ..welcome import Welcome
from . import VectorMismatch, body_as, expect, unhex


def _priv(suite: CipherSuite, hex_value: str) -> bytes:
    # Some cases store P-521 HPKE private keys without their leading zero byte (65 of Nsk = 66
    # bytes); RFC 9180 §7.1.2 serialises them at full length.
    return unhex(hex_value).rjust(suite.hpke_private_key_length, b"\x00")


def run_passive_client(case: dict[str, Any]) -> int:
    """Join, then process every epoch's proposals and commit; return the number of epochs."""
    suite = CipherSuite.get(case["cipher_suite"])
    kp_msg = MLSMessage.from_bytes(unhex(case["key_package"]))
    welcome_msg = MLSMessage.from_bytes(unhex(case["welcome"]))
    expect("key_package.wire_format", kp_msg.wire_format, WireFormat.MLS_KEY_PACKAGE)
    expect("welcome.wire_format", welcome_msg.wire_format, WireFormat.MLS_WELCOME)
    psks = {unhex(p["psk_id"]): unhex(p["psk"]) for p in case["external_psks"]}
    tree = case.get("ratchet_tree")
    state = join_group(body_as(welcome_msg.message, Welcome, "welcome"),
                       body_as(kp_msg.message, KeyPackage, "key_package"), _priv(suite, case["init_priv"]),
                       _priv(suite, case["encryption_priv"]), unhex(case["signature_priv"]),
                       psks=psks, ratchet_tree=None if tree is None else unhex(tree))
    expect("initial_epoch_authenticator", state.secrets.epoch_authenticator.reveal(),
           case["initial_epoch_authenticator"])
    for n, epoch in enumerate(case["epochs"]):
        for proposal in epoch["proposals"]:
            res = process_message(state, unhex(proposal), psks=psks)
            if res.kind != "proposal":
                raise VectorMismatch(f"epoch {n}: a proposal message was a {res.kind}")
            state = res.state
        res = process_message(state, unhex(epoch["commit"]), psks=psks)
        if res.kind != "commit" or res.staged is None:
            raise VectorMismatch(f"epoch {n}: the commit message was a {res.kind}")
        state = res.staged
        expect(f"epochs[{n}].epoch_authenticator", state.secrets.epoch_authenticator.reveal(),
               epoch["epoch_authenticator"])
    return len(case["epochs"])


def check(case: dict[str, Any]) -> None:
    run_passive_client(case)
