"""MLS registries (RFC 9420 §17) and the base of every TLS-encoded MLS structure.

Each IANA registry used on the wire is an :class:`~enum.IntEnum`. Registries that admit values we
do not know (GREASE, RFC 9420 §13.5, and private-use code points) are carried as plain ``int`` where
the RFC lets unknown values appear (capabilities lists, extension types); :func:`known` turns a
value into its enum member when there is one. Registries whose value selects the shape of what
follows (``CredentialType`` of a credential, ``ProposalType`` of a proposal, ``WireFormat`` …)
reject unknown values with a :class:`~gbp_lab.core.errors.DecodeError` (``vid="MLS-ENUM"``).

:class:`Struct` gives every structure ``to_bytes()`` / ``from_bytes()`` on top of its
``encode(w)`` / ``decode(r)`` pair; ``from_bytes`` rejects trailing bytes.
"""
from __future__ import annotations

from enum import IntEnum
from typing import Type, TypeVar, Union, cast

from ..errors import DecodeError
from ..tls import Reader, Writer, decode

E = TypeVar("E", bound=IntEnum)
S = TypeVar("S", bound="Struct")


class ProtocolVersion(IntEnum):
    """RFC 9420 §6 ``ProtocolVersion`` (uint16)."""

    RESERVED = 0
    MLS10 = 1


class ContentType(IntEnum):
    """RFC 9420 §6 ``ContentType`` (uint8)."""

    RESERVED = 0
    APPLICATION = 1
    PROPOSAL = 2
    COMMIT = 3


class SenderType(IntEnum):
    """RFC 9420 §6 ``SenderType`` (uint8)."""

    RESERVED = 0
    MEMBER = 1
    EXTERNAL = 2
    NEW_MEMBER_PROPOSAL = 3
    NEW_MEMBER_COMMIT = 4


class WireFormat(IntEnum):
    """RFC 9420 §17.2 MLS Wire Formats (uint16)."""

    RESERVED = 0
    MLS_PUBLIC_MESSAGE = 1
    MLS_PRIVATE_MESSAGE = 2
    MLS_WELCOME = 3
    MLS_GROUP_INFO = 4
    MLS_KEY_PACKAGE = 5


class ExtensionType(IntEnum):
    """RFC 9420 §17.3 MLS Extension Types (uint16)."""

    RESERVED = 0
    APPLICATION_ID = 1
    RATCHET_TREE = 2
    REQUIRED_CAPABILITIES = 3
    EXTERNAL_PUB = 4
    EXTERNAL_SENDERS = 5


class ProposalType(IntEnum):
    """RFC 9420 §17.4 MLS Proposal Types (uint16)."""

    RESERVED = 0
    ADD = 1
    UPDATE = 2
    REMOVE = 3
    PSK = 4
    REINIT = 5
    EXTERNAL_INIT = 6
    GROUP_CONTEXT_EXTENSIONS = 7


class CredentialType(IntEnum):
    """RFC 9420 §17.5 MLS Credential Types (uint16)."""

    RESERVED = 0
    BASIC = 1
    X509 = 2


class LeafNodeSource(IntEnum):
    """RFC 9420 §7.2 ``LeafNodeSource`` (uint8)."""

    RESERVED = 0
    KEY_PACKAGE = 1
    UPDATE = 2
    COMMIT = 3


class NodeType(IntEnum):
    """RFC 9420 §7.8 ``NodeType`` (uint8)."""

    RESERVED = 0
    LEAF = 1
    PARENT = 2


class PSKType(IntEnum):
    """RFC 9420 §8.4 ``PSKType`` (uint8)."""

    RESERVED = 0
    EXTERNAL = 1
    RESUMPTION = 2


class ResumptionPSKUsage(IntEnum):
    """RFC 9420 §8.4 ``ResumptionPSKUsage`` (uint8)."""

    RESERVED = 0
    APPLICATION = 1
    REINIT = 2
    BRANCH = 3


class ProposalOrRefType(IntEnum):
    """RFC 9420 §12.4 ``ProposalOrRefType`` (uint8)."""

    RESERVED = 0
    PROPOSAL = 1
    REFERENCE = 2


def enum_value(cls: Type[E], value: int, where: str, *, allow_reserved: bool = False) -> E:
    """``value`` as a member of ``cls``; unknown (or reserved) values are a :class:`DecodeError`."""
    # = cls(value) for an int, without the enum machinery; the map holds only members of ``cls``
    member = cast("E | None", cls._value2member_map_.get(value))
    if member is None:
        raise DecodeError(f"unknown {cls.__name__} value {value}", vid="MLS-ENUM", where=where)
    if member.value == 0 and not allow_reserved:
        raise DecodeError(f"reserved {cls.__name__} value 0", vid="MLS-ENUM-RESERVED", where=where)
    return member


def known(cls: Type[E], value: int) -> Union[E, int]:
    """The enum member for ``value`` if ``cls`` defines one, else the plain int (GREASE, private)."""
    return cast("E | int", cls._value2member_map_.get(value, value))


class Struct:
    """Mixin: ``to_bytes()``/``from_bytes()`` over a structure's ``encode(w)``/``decode(r)``."""

    __slots__ = ()

    def encode(self, w: Writer) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def decode(cls: Type[S], r: Reader) -> S:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        w = Writer()
        self.encode(w)
        return w.getvalue()

    @classmethod
    def from_bytes(cls: Type[S], data: bytes) -> S:
        """Decode exactly one structure; truncation and trailing bytes are typed errors."""
        return decode(bytes(data), cls.decode, cls.__name__)


__all__ = [
    "ProtocolVersion", "ContentType", "SenderType", "WireFormat", "ExtensionType", "ProposalType",
    "CredentialType", "LeafNodeSource", "NodeType", "PSKType", "ResumptionPSKUsage",
    "ProposalOrRefType", "enum_value", "known", "Struct",
]
