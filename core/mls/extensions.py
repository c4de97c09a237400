"""MLS extensions and the bodies of the RFC 9420 extensions (§13, §12.4.3.3, §11.1, §12.1.8.1).

::

    struct { ExtensionType extension_type; opaque extension_data<V>; } Extension;

An :class:`Extension` keeps its type (an :class:`ExtensionType` member, or a plain ``int`` for
GREASE / private values) and its data opaque, so a decoded list re-encodes byte for byte.
:meth:`Extension.parse` decodes the data of a known type into its body:

* ``application_id`` (RFC 9420 §17.3) — :class:`ApplicationId`
* ``ratchet_tree`` (§12.4.3.3) — :class:`~gbp_lab.core.mls.nodes.RatchetTree`
* ``required_capabilities`` (§11.1) — :class:`RequiredCapabilities`
* ``external_pub`` (§12.4.3.2) — :class:`ExternalPub`
* ``external_senders`` (§12.1.8.1) — :class:`ExternalSenders`
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, Iterable, Optional, Sequence, Tuple, Type, Union

from ..errors import DecodeError
from ..tls import Reader, Writer
from .credentials import Credential
from .registries import CredentialType, ExtensionType, ProposalType, Struct, known


@dataclass(frozen=True)
class Extension(Struct):
    """RFC 9420 §13 ``Extension``: type and opaque data."""

    extension_type: Union[ExtensionType, int]
    extension_data: bytes = b""

    def encode(self, w: Writer) -> None:
        w.u16(self.extension_type).vec(self.extension_data)

    @classmethod
    def decode(cls, r: Reader) -> "Extension":
        etype = known(ExtensionType, r.u16("Extension.extension_type"))
        return cls(etype, r.vec("Extension.extension_data"))

    def parse(self):
        """The typed body of a known extension (see the module docstring); ``None`` if unknown."""
        body_cls = body_class(self.extension_type)
        return None if body_cls is None else body_cls.from_bytes(self.extension_data)


def encode_extensions(w: Writer, extensions: Iterable[Extension]) -> None:
    """``Extension extensions<V>``."""
    w.vec_of(extensions, lambda ww, e: e.encode(ww))


def decode_extensions(r: Reader, what: str = "extensions") -> Tuple[Extension, ...]:
    """``Extension extensions<V>`` (duplicates are a validation matter: :func:`check_unique`)."""
    return tuple(r.vec_of(Extension.decode, what))


def check_unique(extensions: Sequence[Extension], where: str = "extensions") -> None:
    """RFC 9420 §13: a list holds at most one extension of each type."""
    seen = set()
    for e in extensions:
        if int(e.extension_type) in seen:
            raise DecodeError(f"duplicate extension type {int(e.extension_type)}",
                              vid="MLS-EXT-DUPLICATE", where=where)
        seen.add(int(e.extension_type))


def find_extension(extensions: Sequence[Extension], etype: int) -> Optional[Extension]:
    """The first extension of type ``etype`` in ``extensions``, or ``None``."""
    for e in extensions:
        if int(e.extension_type) == int(etype):
            return e
    return None


#: extension type -> its body class (filled by ``ExtensionBody.__init_subclass__``)
_BODY_CLASSES: Dict[int, Type["ExtensionBody"]] = {}


class ExtensionBody(Struct):
    """Base of the typed extension bodies: ``to_extension()`` wraps the body in an Extension.
    A subclass with an ``EXTENSION_TYPE`` is what :meth:`Extension.parse` builds for that type."""

    __slots__ = ()
    EXTENSION_TYPE: ClassVar[ExtensionType]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        etype = cls.__dict__.get("EXTENSION_TYPE")
        if etype is not None:
            _BODY_CLASSES[int(etype)] = cls

    def to_extension(self) -> Extension:
        return Extension(self.EXTENSION_TYPE, self.to_bytes())


def _u16_list(r: Reader, enum, what: str) -> Tuple[int, ...]:
    return tuple(r.vec_of(lambda rr: known(enum, rr.u16(what)), what))


def _put_u16_list(w: Writer, values: Iterable[int]) -> None:
    w.vec_of(values, lambda ww, v: ww.u16(v))


@dataclass(frozen=True)
class ApplicationId(ExtensionBody):
    """``opaque application_id<V>`` (RFC 9420 §17.3, application_id)."""

    EXTENSION_TYPE: ClassVar[ExtensionType] = ExtensionType.APPLICATION_ID
    application_id: bytes

    def encode(self, w: Writer) -> None:
        w.vec(self.application_id)

    @classmethod
    def decode(cls, r: Reader) -> "ApplicationId":
        return cls(r.vec("ApplicationId"))


@dataclass(frozen=True)
class RequiredCapabilities(ExtensionBody):
    """RFC 9420 §11.1 ``RequiredCapabilities``."""

    EXTENSION_TYPE: ClassVar[ExtensionType] = ExtensionType.REQUIRED_CAPABILITIES
    extension_types: Tuple[int, ...] = ()
    proposal_types: Tuple[int, ...] = ()
    credential_types: Tuple[int, ...] = ()

    def encode(self, w: Writer) -> None:
        _put_u16_list(w, self.extension_types)
        _put_u16_list(w, self.proposal_types)
        _put_u16_list(w, self.credential_types)

    @classmethod
    def decode(cls, r: Reader) -> "RequiredCapabilities":
        return cls(_u16_list(r, ExtensionType, "RequiredCapabilities.extension_types"),
                   _u16_list(r, ProposalType, "RequiredCapabilities.proposal_types"),
                   _u16_list(r, CredentialType, "RequiredCapabilities.credential_types"))


@dataclass(frozen=True)
class ExternalPub(ExtensionBody):
    """RFC 9420 §12.4.3.2 ``ExternalPub { HPKEPublicKey external_pub; }``."""

    EXTENSION_TYPE: ClassVar[ExtensionType] = ExtensionType.EXTERNAL_PUB
    external_pub: bytes

    def encode(self, w: Writer) -> None:
        w.vec(self.external_pub)

    @classmethod
    def decode(cls, r: Reader) -> "ExternalPub":
        return cls(r.vec("ExternalPub.external_pub"))


@dataclass(frozen=True)
class ExternalSender(Struct):
    """RFC 9420 §12.1.8.1 ``ExternalSender { SignaturePublicKey signature_key; Credential credential; }``."""

    signature_key: bytes
    credential: Credential

    def encode(self, w: Writer) -> None:
        w.vec(self.signature_key)
        self.credential.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> "ExternalSender":
        return cls(r.vec("ExternalSender.signature_key"), Credential.decode(r))


@dataclass(frozen=True)
class ExternalSenders(ExtensionBody):
    """RFC 9420 §12.1.8.1 ``ExternalSender external_senders<V>``."""

    EXTENSION_TYPE: ClassVar[ExtensionType] = ExtensionType.EXTERNAL_SENDERS
    senders: Tuple[ExternalSender, ...] = ()

    def encode(self, w: Writer) -> None:
        w.vec_of(self.senders, lambda ww, s: s.encode(ww))

    @classmethod
    def decode(cls, r: Reader) -> "ExternalSenders":
        return cls(tuple(r.vec_of(ExternalSender.decode, "external_senders")))


def body_class(etype: Union[ExtensionType, int]) -> Optional[Type["ExtensionBody"]]:
    """The :class:`ExtensionBody` subclass of extension type ``etype``, or ``None``. Every subclass
    that sets ``EXTENSION_TYPE`` is registered when its module is imported (``ratchet_tree``'s
    :class:`~gbp_lab.core.mls.nodes.RatchetTree` too: the package ``__init__`` imports it)."""
    return _BODY_CLASSES.get(int(etype))


__all__ = [
    "Extension", "encode_extensions", "decode_extensions", "check_unique", "find_extension",
    "ExtensionBody", "body_class", "ApplicationId", "RequiredCapabilities", "ExternalPub", "ExternalSender",
    "ExternalSenders",
]
