"""A member's own keys and credentials, as one public handle (RFC 9420 §5.3, §7.2, §10).

:class:`MemberEnv` is what :class:`~.context.MlsContext` hands to the operations that act for it
(:mod:`.external`, :mod:`.reinit`): the cipher suite, the signature key, the published KeyPackage
with its private keys, the randomness and the clock, the group policy. It is frozen: the
operations return staged results (a new :class:`~.group_state.GroupState`, a
:class:`~.group.CommitResult` …) and the context decides what to keep.

Also here, because every way of making a member uses them: :func:`make_leaf` (a ``key_package``
LeafNode with a basic credential and the capabilities openmls advertises),
:func:`make_key_package`, and :func:`parse_key_package` (bare or MLSMessage-wrapped bytes).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Optional, Tuple, Union

from ..errors import DecodeError, UsageError
from .credentials import Credential
from .group_state import GroupConfig
from .key_package import KeyPackage
from .leaf_node import Capabilities, LeafNode, Lifetime
from .mls_message import MLSMessage
from .registries import LeafNodeSource, ProtocolVersion, WireFormat
from .suites import CipherSuite

Rng = Callable[[int], bytes]
Clock = Callable[[], float]

#: openmls 0.8 KeyPackage lifetime: from one hour ago to 84 days (12 weeks) ahead (measured on
#: the reference's KeyPackages: not_after - not_before = 7 261 200 s).
LIFETIME_BEFORE = 3600
LIFETIME_AFTER = 84 * 24 * 3600
#: Cipher suites our leaves advertise (the reference advertises 1, 2, 3 plus a GREASE value).
ADVERTISED_SUITES = (1, 2, 3)


def default_capabilities() -> Capabilities:
    """The capabilities of our leaves (§7.2): mls10 and :data:`ADVERTISED_SUITES`."""
    return Capabilities(versions=(ProtocolVersion.MLS10,), cipher_suites=ADVERTISED_SUITES)


def make_leaf(suite: CipherSuite, identity: bytes, sig_priv: bytes, sig_pub: bytes, now: int,
              rng: Rng) -> Tuple[bytes, LeafNode]:
    """``(encryption private key, signed LeafNode)``: a fresh HPKE key pair, a basic credential
    for ``identity``, source ``key_package`` with the openmls lifetime around ``now`` (§7.2)."""
    enc_priv, enc_pub = suite.generate_key_pair(rng)
    leaf = LeafNode(enc_pub, sig_pub, Credential.basic(identity), default_capabilities(),
                    LeafNodeSource.KEY_PACKAGE,
                    lifetime=Lifetime(max(0, now - LIFETIME_BEFORE), now + LIFETIME_AFTER)).signed(suite, sig_priv)
    return enc_priv, leaf


def make_key_package(suite: CipherSuite, identity: bytes, sig_priv: bytes, sig_pub: bytes, now: int,
                     rng: Rng) -> Tuple[KeyPackage, bytes, bytes]:
    """``(KeyPackage, init private key, leaf private key)`` (§10) around :func:`make_leaf`."""
    leaf_priv, leaf = make_leaf(suite, identity, sig_priv, sig_pub, now, rng)
    init_priv, init_pub = suite.generate_key_pair(rng)
    kp = KeyPackage(ProtocolVersion.MLS10, int(suite.id), init_pub, leaf).signed(sig_priv)
    return kp, init_priv, leaf_priv


def parse_key_package(data: Union[bytes, KeyPackage]) -> KeyPackage:
    """A bare KeyPackage (openmls' export), or one inside an MLSMessage. ``00 01 00 05`` starts
    both a bare suite-5 KeyPackage and an MLSMessage(key_package), so the bare form is tried first."""
    if isinstance(data, KeyPackage):
        return data
    data = bytes(data)
    try:
        return KeyPackage.from_bytes(data)
    except DecodeError as bare_error:
        try:
            msg = MLSMessage.from_bytes(data)
        except DecodeError:
            raise bare_error from None
        if msg.wire_format != WireFormat.MLS_KEY_PACKAGE or not isinstance(msg.message, KeyPackage):
            raise DecodeError(f"expected a KeyPackage, got {WireFormat(msg.wire_format).name}",
                              vid="MLS-CONTEXT-KEY-PACKAGE") from None
        return msg.message


def parse_key_packages(items: Iterable[Union[bytes, KeyPackage]], *,
                       vid: str = "MLS-CONTEXT-INVITE") -> List[KeyPackage]:
    """:func:`parse_key_package` of each item; at least one is required (``UsageError`` ``vid``)."""
    out = [parse_key_package(k) for k in items]
    if not out:
        raise UsageError("no KeyPackage given", vid=vid)
    return out


@dataclass(frozen=True)
class MemberEnv:
    """A member's own keys, credentials, randomness, clock and policy (see the module docstring).
    The private keys are redacted from ``repr``."""

    suite: CipherSuite
    signature_priv: bytes = field(repr=False)
    key_package: KeyPackage
    init_priv: bytes = field(repr=False)
    kp_leaf_priv: bytes = field(repr=False)
    rng: Rng = os.urandom
    clock: Clock = time.time
    config: GroupConfig = GroupConfig()

    def now(self) -> int:
        """The clock's Unix time in whole seconds."""
        return int(self.clock())

    @property
    def signature_pub(self) -> bytes:
        return self.key_package.leaf_node.signature_key

    @property
    def credential(self) -> Credential:
        return self.key_package.leaf_node.credential

    @property
    def identity(self) -> bytes:
        """The identity of the basic credential (``b""`` for another credential type)."""
        return self.credential.identity or b""

    def fresh_leaf(self, suite: Optional[CipherSuite] = None) -> Tuple[bytes, LeafNode]:
        """A new LeafNode of ours (same identity and signature key, new HPKE key) for a new group
        (ReInit, branch: §11.2, §11.3): ``(leaf private key, LeafNode)``."""
        s = suite or self.suite
        return make_leaf(s, self.identity, self.signature_priv, s.signature_public_key(self.signature_priv),
                         self.now(), self.rng)


__all__ = ["MemberEnv", "make_leaf", "make_key_package", "parse_key_package", "parse_key_packages",
           "default_capabilities", "ADVERTISED_SUITES", "LIFETIME_BEFORE", "LIFETIME_AFTER", "Rng", "Clock"]
