"""Checker for ``crypto-basics.json`` (mlswg/mls-implementations ``test-vectors.md`` "Crypto Basics").

Every field is checked: ``ref_hash`` (RFC 9420 §5.2), ``expand_with_label`` and ``derive_secret``
(§8), ``derive_tree_secret`` (§9), ``sign_with_label`` (§5.1.2: the vector's signature verifies, our
own signature verifies, and the vector's signature over other content does not) and
``encrypt_with_label`` (§5.1.3: the vector's ciphertext decrypts, our own encryption decrypts, and the
key pair is consistent).
"""
from __future__ import annotations

from typing import Any

from ...errors import CryptoError
from ..suites import CipherSuite
from . import VectorMismatch, expect, unhex


def check(case: dict[str, Any]) -> None:
    cs = CipherSuite.get(case["cipher_suite"])

    v = case["ref_hash"]
    expect("ref_hash", cs.ref_hash(v["label"], unhex(v["value"])), v["out"])

    v = case["expand_with_label"]
    expect("expand_with_label",
           cs.expand_with_label(unhex(v["secret"]), v["label"], unhex(v["context"]), v["length"]), v["out"])

    v = case["derive_secret"]
    expect("derive_secret", cs.derive_secret(unhex(v["secret"]), v["label"]), v["out"])

    v = case["derive_tree_secret"]
    expect("derive_tree_secret",
           cs.derive_tree_secret(unhex(v["secret"]), v["label"], v["generation"], v["length"]), v["out"])

    v = case["sign_with_label"]
    priv, pub, content = unhex(v["priv"]), unhex(v["pub"]), unhex(v["content"])
    expect("sign_with_label.pub", cs.signature_public_key(priv), v["pub"])
    cs.verify_with_label(pub, v["label"], content, unhex(v["signature"]))
    cs.verify_with_label(pub, v["label"], content, cs.sign_with_label(priv, v["label"], content))
    try:
        cs.verify_with_label(pub, v["label"] + "x", content, unhex(v["signature"]))
    except CryptoError:
        pass
    else:
        raise VectorMismatch("sign_with_label: signature verified under a different label")

    v = case["encrypt_with_label"]
    priv, pub, context = unhex(v["priv"]), unhex(v["pub"]), unhex(v["context"])
    expect("encrypt_with_label.pub", cs.hpke_public_key(priv), v["pub"])
    pt = cs.decrypt_with_label(priv, v["label"], context, unhex(v["kem_output"]), unhex(v["ciphertext"]))
    expect("encrypt_with_label.decrypt", pt, v["plaintext"])
    kem_output, ct = cs.encrypt_with_label(pub, v["label"], context, unhex(v["plaintext"]))
    expect("encrypt_with_label.roundtrip",
           cs.decrypt_with_label(priv, v["label"], context, kem_output, ct), v["plaintext"])
