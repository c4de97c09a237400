"""Checker for ``welcome.json`` (mls-implementations ``test-vectors.md``, "Welcome").

Fields: ``cipher_suite``, ``init_priv`` (the KeyPackage's HPKE private key), ``signer_pub`` (the
GroupInfo signer's key), ``key_package`` and ``welcome`` (both MLSMessages). A case passes when
:func:`~gbp_lab.core.mls.welcome.process_welcome` joins: GroupSecrets decrypt, GroupInfo decrypts,
its signature verifies and its confirmation tag matches the key schedule of the new epoch.
"""
from __future__ import annotations

from typing import Any

from ..key_package import KeyPackage
from ..mls_message import MLSMessage
from ..registries import WireFormat
from ..welcome import Welcome, process_welcome
from . import body_as, expect, unhex


def check(case: dict[str, Any]) -> None:
    kp_msg = MLSMessage.from_bytes(unhex(case["key_package"]))
    welcome_msg = MLSMessage.from_bytes(unhex(case["welcome"]))
    expect("key_package.wire_format", kp_msg.wire_format, WireFormat.MLS_KEY_PACKAGE)
    expect("welcome.wire_format", welcome_msg.wire_format, WireFormat.MLS_WELCOME)
    expect("key_package bytes", kp_msg.to_bytes(), case["key_package"])
    expect("welcome bytes", welcome_msg.to_bytes(), case["welcome"])
    kp = body_as(kp_msg.message, KeyPackage, "key_package")
    welcome = body_as(welcome_msg.message, Welcome, "welcome")
    expect("key_package.cipher_suite", int(kp.cipher_suite), case["cipher_suite"])
    expect("welcome.cipher_suite", int(welcome.cipher_suite), case["cipher_suite"])
    kp.verify_signature()
    joined = process_welcome(welcome, kp, unhex(case["init_priv"]), signer_pub=unhex(case["signer_pub"]))
    expect("group_info.cipher_suite", int(joined.group_context.cipher_suite), case["cipher_suite"])
