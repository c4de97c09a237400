"""MLS credentials (RFC 9420 §5.3).

::

    struct { opaque cert_data<V>; } Certificate;

    struct {
        CredentialType credential_type;
        select (Credential.credential_type) {
            case basic: opaque identity<V>;
            case x509:  Certificate certificates<V>;
        };
    } Credential;

A ``basic`` credential carries an identity (the reference puts the member's name there); an
``x509`` credential a chain of DER certificates, leaf first, which is carried opaque (no X.509
parsing or path validation here). Any other credential type cannot be decoded, because its body
has no self-describing length in RFC 9420 — it is a :class:`~gbp_lab.core.errors.DecodeError`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ..errors import UsageError
from ..tls import Reader, Writer
from .registries import CredentialType, Struct, enum_value


@dataclass(frozen=True)
class Credential(Struct):
    """RFC 9420 §5.3 ``Credential``: ``identity`` for basic, ``certificates`` for x509."""

    credential_type: CredentialType
    identity: Optional[bytes] = None
    certificates: Tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if self.credential_type == CredentialType.BASIC and self.identity is None:
            raise UsageError("a basic credential needs an identity", vid="MLS-CREDENTIAL")
        if self.credential_type == CredentialType.X509 and self.identity is not None:
            raise UsageError("an x509 credential has certificates, not an identity", vid="MLS-CREDENTIAL")

    @classmethod
    def basic(cls, identity: bytes) -> "Credential":
        return cls(CredentialType.BASIC, identity=bytes(identity))

    @classmethod
    def x509(cls, certificates) -> "Credential":
        return cls(CredentialType.X509, certificates=tuple(bytes(c) for c in certificates))

    def encode(self, w: Writer) -> None:
        w.u16(self.credential_type)
        if self.credential_type == CredentialType.BASIC:
            w.vec(self.identity or b"")
        elif self.credential_type == CredentialType.X509:
            w.vec_of(self.certificates, lambda ww, c: ww.vec(c))
        else:  # pragma: no cover - guarded by decode / constructors
            raise UsageError(f"cannot encode credential type {self.credential_type}", vid="MLS-CREDENTIAL")

    @classmethod
    def decode(cls, r: Reader) -> "Credential":
        ctype = enum_value(CredentialType, r.u16("Credential.credential_type"), "Credential.credential_type")
        if ctype == CredentialType.BASIC:
            return cls(ctype, identity=r.vec("Credential.identity"))
        return cls(ctype, certificates=tuple(r.vec_of(lambda rr: rr.vec("Certificate.cert_data"),
                                                      "Credential.certificates")))


__all__ = ["Credential"]
