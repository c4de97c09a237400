"""Proposals (RFC 9420 §12.1) and ``ProposalOrRef`` (§12.4).

::

    struct { KeyPackage key_package; } Add;
    struct { LeafNode leaf_node; } Update;
    struct { uint32 removed; } Remove;
    struct { PreSharedKeyID psk; } PreSharedKey;
    struct { opaque group_id<V>; ProtocolVersion version; CipherSuite cipher_suite;
             Extension extensions<V>; } ReInit;
    struct { opaque kem_output<V>; } ExternalInit;
    struct { Extension extensions<V>; } GroupContextExtensions;

    struct {
        ProposalType proposal_type;
        select (Proposal.proposal_type) { case add: Add; case update: Update; … };
    } Proposal;

    struct {
        ProposalOrRefType type;
        select (ProposalOrRef.type) { case proposal: Proposal; case reference: ProposalRef; };
    } ProposalOrRef;

The body classes (:class:`Add` …) encode the *body* only (what the ``messages.json`` vectors hold);
:class:`Proposal` adds the type. An unknown proposal type cannot be decoded (RFC 9420 gives its body
no length) and is a :class:`~gbp_lab.core.errors.DecodeError`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Tuple, Type, TypeVar, Union

from ..errors import UsageError
from ..tls import Reader, Writer
from .extensions import Extension, decode_extensions, encode_extensions
from .key_package import KeyPackage
from .leaf_node import LeafNode
from .psk import PreSharedKeyID
from .registries import ProposalOrRefType, ProposalType, ProtocolVersion, Struct, enum_value


class ProposalBody(Struct):
    """Base of the proposal bodies; ``PROPOSAL_TYPE`` names the body's registry value."""

    __slots__ = ()
    PROPOSAL_TYPE: ClassVar[ProposalType]


@dataclass(frozen=True)
class Add(ProposalBody):
    """RFC 9420 §12.1.1 ``Add``."""

    PROPOSAL_TYPE: ClassVar[ProposalType] = ProposalType.ADD
    key_package: KeyPackage

    def encode(self, w: Writer) -> None:
        self.key_package.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> "Add":
        return cls(KeyPackage.decode(r))


@dataclass(frozen=True)
class Update(ProposalBody):
    """RFC 9420 §12.1.2 ``Update``."""

    PROPOSAL_TYPE: ClassVar[ProposalType] = ProposalType.UPDATE
    leaf_node: LeafNode

    def encode(self, w: Writer) -> None:
        self.leaf_node.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> "Update":
        return cls(LeafNode.decode(r))


@dataclass(frozen=True)
class Remove(ProposalBody):
    """RFC 9420 §12.1.3 ``Remove``: the leaf index of the removed member."""

    PROPOSAL_TYPE: ClassVar[ProposalType] = ProposalType.REMOVE
    removed: int

    def encode(self, w: Writer) -> None:
        w.u32(self.removed)

    @classmethod
    def decode(cls, r: Reader) -> "Remove":
        return cls(r.u32("Remove.removed"))


@dataclass(frozen=True)
class PreSharedKey(ProposalBody):
    """RFC 9420 §12.1.4 ``PreSharedKey``."""

    PROPOSAL_TYPE: ClassVar[ProposalType] = ProposalType.PSK
    psk: PreSharedKeyID

    def encode(self, w: Writer) -> None:
        self.psk.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> "PreSharedKey":
        return cls(PreSharedKeyID.decode(r))


@dataclass(frozen=True)
class ReInit(ProposalBody):
    """RFC 9420 §12.1.5 ``ReInit``."""

    PROPOSAL_TYPE: ClassVar[ProposalType] = ProposalType.REINIT
    group_id: bytes
    version: ProtocolVersion
    cipher_suite: int
    extensions: Tuple[Extension, ...] = ()

    def encode(self, w: Writer) -> None:
        w.vec(self.group_id).u16(self.version).u16(self.cipher_suite)
        encode_extensions(w, self.extensions)

    @classmethod
    def decode(cls, r: Reader) -> "ReInit":
        gid = r.vec("ReInit.group_id")
        version = enum_value(ProtocolVersion, r.u16("ReInit.version"), "ReInit.version")
        return cls(gid, version, r.u16("ReInit.cipher_suite"), decode_extensions(r, "ReInit.extensions"))


@dataclass(frozen=True)
class ExternalInit(ProposalBody):
    """RFC 9420 §12.1.6 ``ExternalInit``."""

    PROPOSAL_TYPE: ClassVar[ProposalType] = ProposalType.EXTERNAL_INIT
    kem_output: bytes

    def encode(self, w: Writer) -> None:
        w.vec(self.kem_output)

    @classmethod
    def decode(cls, r: Reader) -> "ExternalInit":
        return cls(r.vec("ExternalInit.kem_output"))


@dataclass(frozen=True)
class GroupContextExtensions(ProposalBody):
    """RFC 9420 §12.1.7 ``GroupContextExtensions``."""

    PROPOSAL_TYPE: ClassVar[ProposalType] = ProposalType.GROUP_CONTEXT_EXTENSIONS
    extensions: Tuple[Extension, ...] = ()

    def encode(self, w: Writer) -> None:
        encode_extensions(w, self.extensions)

    @classmethod
    def decode(cls, r: Reader) -> "GroupContextExtensions":
        return cls(decode_extensions(r, "GroupContextExtensions.extensions"))


PROPOSAL_BODIES = {c.PROPOSAL_TYPE: c for c in (Add, Update, Remove, PreSharedKey, ReInit, ExternalInit,
                                                 GroupContextExtensions)}

AnyProposalBody = Union[Add, Update, Remove, PreSharedKey, ReInit, ExternalInit, GroupContextExtensions]


_B = TypeVar("_B", bound="ProposalBody")


@dataclass(frozen=True)
class Proposal(Struct):
    """RFC 9420 §12.1 ``Proposal``: a body tagged with its ``proposal_type``."""

    body: AnyProposalBody

    def __post_init__(self) -> None:
        if not isinstance(self.body, ProposalBody):
            raise UsageError("a Proposal wraps a proposal body (Add, Update, …)", vid="MLS-PROPOSAL")

    @property
    def proposal_type(self) -> ProposalType:
        return self.body.PROPOSAL_TYPE

    def body_as(self, cls: Type[_B]) -> _B:
        """The body, checked to be a ``cls`` (``UsageError`` ``MLS-PROPOSAL`` otherwise): the
        typed access after a dispatch on :attr:`proposal_type`."""
        body = self.body
        if not isinstance(body, cls):
            raise UsageError(f"a {type(body).__name__} proposal is not a {cls.__name__}", vid="MLS-PROPOSAL")
        return body

    def encode(self, w: Writer) -> None:
        w.u16(self.proposal_type)
        self.body.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> "Proposal":
        ptype = enum_value(ProposalType, r.u16("Proposal.proposal_type"), "Proposal.proposal_type")
        return cls(PROPOSAL_BODIES[ptype].decode(r))


@dataclass(frozen=True)
class ProposalOrRef(Struct):
    """RFC 9420 §12.4 ``ProposalOrRef``: an inline proposal or a ``ProposalRef`` (opaque<V>)."""

    proposal: Optional[Proposal] = None
    reference: Optional[bytes] = None

    def __post_init__(self) -> None:
        if (self.proposal is None) == (self.reference is None):
            raise UsageError("ProposalOrRef holds exactly one of proposal / reference",
                             vid="MLS-PROPOSAL-OR-REF")

    @property
    def type(self) -> ProposalOrRefType:
        return ProposalOrRefType.PROPOSAL if self.proposal is not None else ProposalOrRefType.REFERENCE

    def encode(self, w: Writer) -> None:
        w.u8(self.type)
        if self.proposal is not None:
            self.proposal.encode(w)
        else:
            assert self.reference is not None  # __post_init__: exactly one of the two
            w.vec(self.reference)

    @classmethod
    def decode(cls, r: Reader) -> "ProposalOrRef":
        t = enum_value(ProposalOrRefType, r.u8("ProposalOrRef.type"), "ProposalOrRef.type")
        if t == ProposalOrRefType.PROPOSAL:
            return cls(proposal=Proposal.decode(r))
        return cls(reference=r.vec("ProposalOrRef.reference"))


__all__ = ["ProposalBody", "Add", "Update", "Remove", "PreSharedKey", "ReInit", "ExternalInit",
           "GroupContextExtensions", "PROPOSAL_BODIES", "Proposal", "ProposalOrRef"]
