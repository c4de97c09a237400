"""Test helper: one KeyPackage, Welcome and GroupInfo of a cipher suite, made by our MLS — the
structures the record classifier, the tables, the dissectors and the widgets must name."""
from __future__ import annotations

from functools import lru_cache
from typing import Tuple

from gbp_lab.core.mls.context import MlsContext
from gbp_lab.core.mls.credentials import Credential
from gbp_lab.core.mls.framing import MLSMessage
from gbp_lab.core.mls.group_info import GroupInfo
from gbp_lab.core.mls.key_package import KeyPackage
from gbp_lab.core.mls.leaf_node import Capabilities, LeafNode, Lifetime
from gbp_lab.core.mls.registries import LeafNodeSource
from gbp_lab.core.mls.welcome import Welcome

SUITES = range(1, 8)


@lru_cache(maxsize=None)
def structs(suite: int) -> Tuple[KeyPackage, Welcome, GroupInfo]:
    """(KeyPackage, Welcome, GroupInfo) objects of *suite*: bob's KeyPackage, alice's Welcome
    for it and her GroupInfo after the commit."""
    a = MlsContext.create("alice", ciphersuite=suite)
    b = MlsContext.create("bob", ciphersuite=suite)
    _commit, welcome = a.invite_full(b.export_key_package())
    a.finalize_commit()
    kp = KeyPackage.from_bytes(b.export_key_package())
    w = MLSMessage.from_bytes(welcome).message
    gi = MLSMessage.from_bytes(a.export_group_info()).message
    if not isinstance(w, Welcome):
        w = Welcome.from_bytes(w)
    if not isinstance(gi, GroupInfo):
        gi = GroupInfo.from_bytes(gi)
    return kp, w, gi


def raw_structs(suite: int) -> Tuple[bytes, bytes, bytes]:
    """The same three structures as raw bytes (no MLSMessage envelope), as the reference sends
    KeyPackages and Welcomes."""
    kp, w, gi = structs(suite)
    return kp.to_bytes(), w.to_bytes(), gi.to_bytes()


def signed_leaf(suite, name):
    """``(LeafNode, HPKE private key, signature private key)``: a fresh KeyPackage-sourced leaf of
    *suite* for member *name*, signed (RFC 9420 §7.2), for hand-built ratchet trees."""
    sig_priv, sig_pub = suite.generate_signature_key_pair()
    enc_priv, enc_pub = suite.generate_key_pair()
    leaf = LeafNode(enc_pub, sig_pub, Credential.basic(name), Capabilities(cipher_suites=(int(suite.id),)),
                    LeafNodeSource.KEY_PACKAGE, lifetime=Lifetime(0, 2**64 - 1)).signed(suite, sig_priv)
    return leaf, enc_priv, sig_priv

