"""Checker for ``key-schedule.json`` (RFC 9420 §8, §8.1, §8.3, §8.5).

Chains the epochs from ``initial_init_secret``: for each epoch builds the GroupContext (no
extensions), runs the key schedule with the given ``commit_secret`` and ``psk_secret`` and
compares every derived secret, the external HPKE public key and the exporter output.

Note: the exporter ``label`` is used as the *text* of the JSON string (which happens to look like
hex), not as hex-decoded bytes; ``context`` is hex-decoded."""
from __future__ import annotations

from typing import Any

from . import expect, unhex
from ..schedule import GroupContext, external_pub, key_schedule
from ..secrets import BytesLike
from ..suites import CipherSuite

_SECRETS = ("joiner_secret", "welcome_secret", "init_secret", "sender_data_secret",
            "encryption_secret", "exporter_secret", "epoch_authenticator", "external_secret",
            "confirmation_key", "membership_key", "resumption_psk")


def check(case: dict[str, Any]) -> None:
    cs = CipherSuite.get(case["cipher_suite"])
    group_id = unhex(case["group_id"])
    init_secret: BytesLike = unhex(case["initial_init_secret"])
    for i, ep in enumerate(case["epochs"]):
        gc = GroupContext(cs.id, group_id, i, unhex(ep["tree_hash"]),
                          unhex(ep["confirmed_transcript_hash"]))
        expect(f"epoch {i} group_context", gc.to_bytes(), ep["group_context"])
        expect(f"epoch {i} group_context round trip", GroupContext.from_bytes(gc.to_bytes()), gc)
        es = key_schedule(cs, init_secret, unhex(ep["commit_secret"]), gc, unhex(ep["psk_secret"]))
        for name in _SECRETS:
            expect(f"epoch {i} {name}", getattr(es, name).reveal(), ep[name])
        expect(f"epoch {i} external_pub", external_pub(cs, es.external_secret), ep["external_pub"])
        exp = ep["exporter"]
        expect(f"epoch {i} exporter.secret",
               es.export(exp["label"].encode(), unhex(exp["context"]), exp["length"]), exp["secret"])
        init_secret = es.init_secret
