"""KeyPackages (RFC 9420 §10) and their validation (§10.1).

::

    struct {
        ProtocolVersion version;
        CipherSuite cipher_suite;
        HPKEPublicKey init_key;
        LeafNode leaf_node;
        Extension extensions<V>;
        opaque signature<V>;   /* SignWithLabel(leaf_node.signature_key, "KeyPackageTBS", KeyPackageTBS) */
    } KeyPackage;

``KeyPackageTBS`` is the same structure without ``signature``. The reference (openmls) exports a
*bare* KeyPackage (``00 01 00 01 …``: version, suite), not an MLSMessage.

:meth:`KeyPackage.validate` applies the checks of §10.1 that need no group state, with the current
time injected (sans-IO): version/suite, the KeyPackage signature, the leaf node (source
``key_package``, its lifetime, its LeafNodeTBS signature, extensions listed in its capabilities,
§7.3), ``init_key`` ≠ ``encryption_key``, no duplicate extension types (§13) and, when the
group's ``required_capabilities`` are given, support for all of them (§11.1).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Tuple, Union

from ..errors import ProtocolError, SignatureError, StateError
from ..tls import Reader, Writer
from .extensions import (Extension, RequiredCapabilities, check_unique, decode_extensions,
                         encode_extensions)
from .leaf_node import LeafNode
from .registries import ExtensionType, LeafNodeSource, ProposalType, ProtocolVersion, Struct, enum_value
from .suites import CipherSuite

KEY_PACKAGE_LABEL = "KeyPackageTBS"

#: Extension types every implementation supports without listing them (RFC 9420 §7.2).
DEFAULT_EXTENSIONS = frozenset({ExtensionType.APPLICATION_ID, ExtensionType.RATCHET_TREE,
                                ExtensionType.REQUIRED_CAPABILITIES, ExtensionType.EXTERNAL_PUB,
                                ExtensionType.EXTERNAL_SENDERS})


class KeyPackageError(ProtocolError):
    """A KeyPackage breaks a rule of RFC 9420 §10.1 (the ``vid`` says which)."""

    default_vid = "MLS-KP-INVALID"


class LifetimeError(StateError):
    """A key_package leaf node is used outside its lifetime (RFC 9420 §7.3)."""

    default_vid = "MLS-KP-LIFETIME"


#: Proposal types every implementation supports without listing them (RFC 9420 §7.2).
DEFAULT_PROPOSALS = frozenset(ProposalType(v) for v in range(1, 8))


def check_required_capabilities(leaf: LeafNode, required: RequiredCapabilities) -> None:
    """RFC 9420 §11.1: the leaf supports every required extension, proposal and credential type
    (default extension and proposal types count as supported, §7.2)."""
    caps = leaf.capabilities
    for kind, wanted, have, default in (
            ("extension", required.extension_types, caps.extensions, DEFAULT_EXTENSIONS),
            ("proposal", required.proposal_types, caps.proposals, DEFAULT_PROPOSALS),
            ("credential", required.credential_types, caps.credentials, frozenset())):
        listed = {int(v) for v in have}
        for v in wanted:
            if int(v) not in listed and v not in default:
                raise KeyPackageError(f"required {kind} type {int(v)} is not in the leaf's capabilities",
                                      vid="MLS-KP-REQUIRED-CAPS", where=f"{kind}:{int(v)}")


def _suite(cs) -> CipherSuite:
    """The suite of a peer's KeyPackage; an unsupported one is a :class:`KeyPackageError`."""
    return CipherSuite.of_peer(cs, KeyPackageError, "MLS-KP-SUITE-UNSUPPORTED")


@dataclass(frozen=True)
class KeyPackage(Struct):
    """RFC 9420 §10 ``KeyPackage``."""

    version: ProtocolVersion
    cipher_suite: int
    init_key: bytes
    leaf_node: LeafNode
    extensions: Tuple[Extension, ...] = ()
    signature: bytes = b""

    # -- codec --------------------------------------------------------------------------------
    def _encode_tbs(self, w: Writer) -> None:
        w.u16(self.version).u16(self.cipher_suite).vec(self.init_key)
        self.leaf_node.encode(w)
        encode_extensions(w, self.extensions)

    def encode(self, w: Writer) -> None:
        self._encode_tbs(w)
        w.vec(self.signature)

    @classmethod
    def decode(cls, r: Reader) -> "KeyPackage":
        version = enum_value(ProtocolVersion, r.u16("KeyPackage.version"), "KeyPackage.version")
        suite = r.u16("KeyPackage.cipher_suite")
        init_key = r.vec("KeyPackage.init_key")
        leaf = LeafNode.decode(r)
        exts = decode_extensions(r, "KeyPackage.extensions")
        return cls(version, suite, init_key, leaf, exts, r.vec("KeyPackage.signature"))

    def tbs(self) -> bytes:
        """``KeyPackageTBS`` bytes."""
        w = Writer()
        self._encode_tbs(w)
        return w.getvalue()

    # -- crypto -------------------------------------------------------------------------------
    def ref(self, suite: Union[CipherSuite, int, None] = None) -> bytes:
        """RFC 9420 §5.2 ``KeyPackageRef`` (``RefHash("MLS 1.0 KeyPackage Reference", kp)``)."""
        return _suite(self.cipher_suite if suite is None else suite).make_key_package_ref(self.to_bytes())

    def signed(self, signature_priv: bytes) -> "KeyPackage":
        """A copy carrying the signature of the leaf's signature key over ``KeyPackageTBS``."""
        sig = _suite(self.cipher_suite).sign_with_label(signature_priv, KEY_PACKAGE_LABEL, self.tbs())
        return replace(self, signature=sig)

    def verify_signature(self) -> None:
        """Check the KeyPackage signature with ``leaf_node.signature_key`` (§10.1)."""
        try:
            _suite(self.cipher_suite).verify_with_label(self.leaf_node.signature_key, KEY_PACKAGE_LABEL,
                                                        self.tbs(), self.signature)
        except SignatureError as exc:
            raise SignatureError("KeyPackage signature does not verify",
                                 vid="MLS-KP-SIGNATURE") from exc

    def validate(self, now: Optional[int] = None, *, cipher_suite: Optional[int] = None,
                 version: int = ProtocolVersion.MLS10,
                 required_capabilities: Optional[RequiredCapabilities] = None) -> None:
        """RFC 9420 §10.1 checks. ``now`` = Unix seconds (``None`` skips the lifetime check);
        ``cipher_suite``: the group's suite; ``required_capabilities``: the group's
        ``required_capabilities`` extension (§11.1), when it has one."""
        if self.version != version:
            raise KeyPackageError(f"version {int(self.version)} is not {int(version)}", vid="MLS-KP-VERSION")
        if cipher_suite is not None and self.cipher_suite != cipher_suite:
            raise KeyPackageError(f"cipher suite {self.cipher_suite} is not the group's {cipher_suite}",
                                  vid="MLS-KP-SUITE")
        suite = _suite(self.cipher_suite)
        self.verify_signature()
        leaf = self.leaf_node
        if leaf.leaf_node_source != LeafNodeSource.KEY_PACKAGE:
            raise KeyPackageError("leaf_node_source is not key_package", vid="MLS-KP-LEAF-SOURCE")
        lifetime = leaf.lifetime
        assert lifetime is not None  # a key_package leaf has one (LeafNode.__post_init__)
        if now is not None and not lifetime.contains(now):
            raise LifetimeError(f"now={now} is outside [{lifetime.not_before}, "
                                f"{lifetime.not_after}]", vid="MLS-KP-LIFETIME")
        try:
            leaf.verify(suite)
        except SignatureError as exc:
            raise SignatureError("KeyPackage leaf node signature does not verify",
                                 vid="MLS-KP-LEAF-SIGNATURE") from exc
        listed = {int(e) for e in leaf.capabilities.extensions}
        for e in leaf.extensions:
            if int(e.extension_type) not in listed and e.extension_type not in DEFAULT_EXTENSIONS:
                raise KeyPackageError(f"leaf extension {int(e.extension_type)} not in its capabilities",
                                      vid="MLS-KP-LEAF-EXT-CAPS")
        if required_capabilities is not None:
            check_required_capabilities(leaf, required_capabilities)
        if self.init_key == leaf.encryption_key:
            raise KeyPackageError("init_key equals the leaf's encryption_key", vid="MLS-KP-INIT-KEY")
        check_unique(self.extensions, "KeyPackage.extensions")
        check_unique(leaf.extensions, "LeafNode.extensions")


__all__ = ["KeyPackage", "KeyPackageError", "LifetimeError", "KEY_PACKAGE_LABEL", "DEFAULT_EXTENSIONS",
           "DEFAULT_PROPOSALS", "check_required_capabilities"]
