"""Leaf nodes of the ratchet tree (RFC 9420 §7.2) with their capabilities and lifetime.

::

    struct {
        ProtocolVersion versions<V>;   CipherSuite cipher_suites<V>;   ExtensionType extensions<V>;
        ProposalType proposals<V>;     CredentialType credentials<V>;
    } Capabilities;

    struct { uint64 not_before; uint64 not_after; } Lifetime;

    struct {
        HPKEPublicKey encryption_key;  SignaturePublicKey signature_key;
        Credential credential;         Capabilities capabilities;
        LeafNodeSource leaf_node_source;
        select (LeafNode.leaf_node_source) {
            case key_package: Lifetime lifetime;
            case update:      struct{};
            case commit:      opaque parent_hash<V>;
        };
        Extension extensions<V>;
        opaque signature<V>;   /* SignWithLabel(., "LeafNodeTBS", LeafNodeTBS) */
    } LeafNode;

``LeafNodeTBS`` is the same without the signature, followed — for the ``update`` and ``commit``
sources only — by ``opaque group_id<V>; uint32 leaf_index;`` (§7.2). Capability lists keep unknown
(GREASE) values as ints.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from struct import unpack_from as _unpack_from
from typing import Dict, Iterable, Optional, Tuple

from ..errors import SignatureError, TruncatedError, UsageError
from ..tls import Reader, Writer, encode_vec
from .credentials import Credential
from .extensions import Extension, decode_extensions, encode_extensions
from .registries import (CredentialType, ExtensionType, LeafNodeSource, ProposalType,
                         ProtocolVersion, Struct, enum_value)

LEAF_NODE_LABEL = "LeafNodeTBS"


def _u16s(r: Reader, enum, what: str) -> Tuple[int, ...]:
    """``uint16 values<V>``: read the vector at once and split it (a leaf has five of these, and
    a tree a thousand leaves); unknown values of ``enum`` stay ints, as :func:`.registries.known`."""
    data = r.vec(what)
    if len(data) % 2:
        raise TruncatedError(f"{what}: need 2 bytes, 1 left", vid="TLS-TRUNCATED", where=what)
    values = _unpack_from(f">{len(data) >> 1}H", data)
    if enum is None:
        return values
    members = enum._value2member_map_
    return tuple(members.get(v, v) for v in values)


def _put_u16s(w: Writer, values: Iterable[int]) -> None:
    w.vec_of(values, lambda ww, v: ww.u16(v))


@dataclass(frozen=True)
class Capabilities(Struct):
    """RFC 9420 §7.2 ``Capabilities``; values kept in wire order (ints for unknown values)."""

    versions: Tuple[int, ...] = (ProtocolVersion.MLS10,)
    cipher_suites: Tuple[int, ...] = ()
    extensions: Tuple[int, ...] = ()
    proposals: Tuple[int, ...] = ()
    credentials: Tuple[int, ...] = (CredentialType.BASIC,)

    def encode(self, w: Writer) -> None:
        _put_u16s(w, self.versions)
        _put_u16s(w, self.cipher_suites)
        _put_u16s(w, self.extensions)
        _put_u16s(w, self.proposals)
        _put_u16s(w, self.credentials)

    @classmethod
    def decode(cls, r: Reader) -> "Capabilities":
        """Members of a group mostly advertise identical capabilities: a decoded value is kept by
        its exact bytes (up to 1024 of them; it is immutable) and the next leaf with the same
        bytes gets it back without splitting five lists again."""
        start = r.pos
        for _ in range(5):  # skip the five vectors (a malformed one is re-read, and raised, below)
            pos, data = r.pos, r.data
            if pos < r.end and data[pos] < 0x40 and pos + 1 + data[pos] <= r.end:
                r.pos = pos + 1 + data[pos]
            else:
                r.pos = start
                return cls._decode(r)
        key = bytes(r.data[start:r.pos])
        hit = _CAPABILITIES.get(key)
        if hit is None:
            r.pos = start
            hit = cls._decode(r)
            if len(_CAPABILITIES) >= 1024:
                _CAPABILITIES.clear()
            _CAPABILITIES[key] = hit
        return hit

    @classmethod
    def _decode(cls, r: Reader) -> "Capabilities":
        return cls(_u16s(r, ProtocolVersion, "Capabilities.versions"),
                   _u16s(r, None, "Capabilities.cipher_suites"),
                   _u16s(r, ExtensionType, "Capabilities.extensions"),
                   _u16s(r, ProposalType, "Capabilities.proposals"),
                   _u16s(r, CredentialType, "Capabilities.credentials"))


_CAPABILITIES: Dict[bytes, Capabilities] = {}


@dataclass(frozen=True)
class Lifetime(Struct):
    """RFC 9420 §7.2 ``Lifetime``: seconds since the epoch, both bounds inclusive."""

    not_before: int
    not_after: int

    def encode(self, w: Writer) -> None:
        w.u64(self.not_before).u64(self.not_after)

    @classmethod
    def decode(cls, r: Reader) -> "Lifetime":
        return cls(r.u64("Lifetime.not_before"), r.u64("Lifetime.not_after"))

    def contains(self, now: int) -> bool:
        """True when ``not_before <= now <= not_after`` (``now`` is injected: sans-IO)."""
        return self.not_before <= now <= self.not_after


@dataclass(frozen=True)
class LeafNode(Struct):
    """RFC 9420 §7.2 ``LeafNode``.

    ``lifetime`` is present exactly when the source is ``key_package`` and ``parent_hash`` exactly
    when it is ``commit``.
    """

    encryption_key: bytes
    signature_key: bytes
    credential: Credential
    capabilities: Capabilities
    leaf_node_source: LeafNodeSource
    lifetime: Optional[Lifetime] = None
    parent_hash: Optional[bytes] = None
    extensions: Tuple[Extension, ...] = ()
    signature: bytes = b""

    def __post_init__(self) -> None:
        src = self.leaf_node_source
        if (src == LeafNodeSource.KEY_PACKAGE) != (self.lifetime is not None):
            raise UsageError("a lifetime is present exactly for key_package leaves", vid="MLS-LEAF-SOURCE")
        if (src == LeafNodeSource.COMMIT) != (self.parent_hash is not None):
            raise UsageError("a parent_hash is present exactly for commit leaves", vid="MLS-LEAF-SOURCE")

    # -- codec --------------------------------------------------------------------------------
    # A LeafNode is immutable, so its encodings are computed once and kept on the instance
    # (``_content``: everything but the signature; ``_encoded``: the whole LeafNode) — a leaf is
    # encoded for every tree hash, LeafNodeTBS and ratchet-tree extension it appears in. They are
    # not dataclass fields: equality, hashing and ``replace()`` (a new instance, no cache) ignore
    # them. A decoded leaf keeps the exact bytes it was read from (the strict decoder accepts only
    # the one canonical encoding of each value, so they equal a fresh encoding).
    def _content_bytes(self) -> bytes:
        c = self.__dict__.get("_content")
        if c is None:
            w = Writer()
            self._write_content(w)
            c = w.getvalue()
            object.__setattr__(self, "_content", c)
        return c

    def to_bytes(self) -> bytes:
        e = self.__dict__.get("_encoded")
        if e is None:
            e = self._content_bytes() + encode_vec(self.signature)
            object.__setattr__(self, "_encoded", e)
        return e

    def _encode_content(self, w: Writer) -> None:
        w.raw(self._content_bytes())

    def _write_content(self, w: Writer) -> None:
        w.vec(self.encryption_key).vec(self.signature_key)
        self.credential.encode(w)
        self.capabilities.encode(w)
        w.u8(self.leaf_node_source)
        if self.leaf_node_source == LeafNodeSource.KEY_PACKAGE:
            assert self.lifetime is not None  # __post_init__: present exactly for key_package
            self.lifetime.encode(w)
        elif self.leaf_node_source == LeafNodeSource.COMMIT:
            assert self.parent_hash is not None  # __post_init__: present exactly for commit
            w.vec(self.parent_hash)
        encode_extensions(w, self.extensions)

    def encode(self, w: Writer) -> None:
        w.raw(self.to_bytes())

    @classmethod
    def decode(cls, r: Reader) -> "LeafNode":
        start = r.pos
        encryption_key = r.vec("LeafNode.encryption_key")
        signature_key = r.vec("LeafNode.signature_key")
        credential = Credential.decode(r)
        capabilities = Capabilities.decode(r)
        source = enum_value(LeafNodeSource, r.u8("LeafNode.leaf_node_source"), "LeafNode.leaf_node_source")
        lifetime = Lifetime.decode(r) if source == LeafNodeSource.KEY_PACKAGE else None
        parent_hash = r.vec("LeafNode.parent_hash") if source == LeafNodeSource.COMMIT else None
        extensions = decode_extensions(r, "LeafNode.extensions")
        content_end = r.pos
        signature = r.vec("LeafNode.signature")
        leaf = cls(encryption_key, signature_key, credential, capabilities, source, lifetime,
                   parent_hash, extensions, signature)
        object.__setattr__(leaf, "_content", bytes(r.data[start:content_end]))
        object.__setattr__(leaf, "_encoded", bytes(r.data[start:r.pos]))
        return leaf

    # -- signing ------------------------------------------------------------------------------
    def tbs(self, group_id: Optional[bytes] = None, leaf_index: Optional[int] = None) -> bytes:
        """``LeafNodeTBS`` bytes; ``group_id`` and ``leaf_index`` are required for update/commit."""
        content = self._content_bytes()
        if self.leaf_node_source in (LeafNodeSource.UPDATE, LeafNodeSource.COMMIT):
            if group_id is None or leaf_index is None:
                raise UsageError(f"a {self.leaf_node_source.name.lower()} leaf is signed with its "
                                 "group_id and leaf_index", vid="MLS-LEAF-TBS")
            w = Writer()
            w.vec(group_id).u32(leaf_index)
            return content + w.getvalue()
        return content

    def signed(self, suite, signature_priv: bytes, group_id: Optional[bytes] = None,
               leaf_index: Optional[int] = None) -> "LeafNode":
        """A copy carrying ``SignWithLabel(signature_priv, "LeafNodeTBS", tbs)``."""
        sig = suite.sign_with_label(signature_priv, LEAF_NODE_LABEL, self.tbs(group_id, leaf_index))
        return replace(self, signature=sig)

    def signature_check(self, group_id: Optional[bytes] = None,
                        leaf_index: Optional[int] = None) -> Tuple[bytes, str, bytes, bytes]:
        """``(signature_key, label, LeafNodeTBS, signature)``: what :meth:`verify` checks, as one
        item of ``CipherSuite.verify_all_with_label`` (a tree checks all its leaves at once)."""
        return self.signature_key, LEAF_NODE_LABEL, self.tbs(group_id, leaf_index), self.signature

    def verify(self, suite, group_id: Optional[bytes] = None, leaf_index: Optional[int] = None) -> None:
        """Check the signature with the leaf's own ``signature_key``; :class:`SignatureError` if bad."""
        try:
            suite.verify_with_label(*self.signature_check(group_id, leaf_index))
        except SignatureError as exc:
            raise SignatureError("LeafNode signature does not verify", vid="MLS-LEAF-SIGNATURE") from exc


__all__ = ["Capabilities", "Lifetime", "LeafNode", "LEAF_NODE_LABEL"]
