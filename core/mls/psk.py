"""Pre-shared keys: ``PreSharedKeyID``, ``PSKLabel`` and the ``psk_secret`` chain (RFC 9420 §8.4).

::

    enum { reserved(0), external(1), resumption(2), (255) } PSKType;
    enum { reserved(0), application(1), reinit(2), branch(3), (255) } ResumptionPSKUsage;

    struct {
      PSKType psktype;
      select (PreSharedKeyID.psktype) {
        case external:   opaque psk_id<V>;
        case resumption: ResumptionPSKUsage usage; opaque psk_group_id<V>; uint64 psk_epoch;
      };
      opaque psk_nonce<V>;
    } PreSharedKeyID;

    struct { PreSharedKeyID id; uint16 index; uint16 count; } PSKLabel;

    psk_extracted_[i] = KDF.Extract(0, psk_[i])
    psk_input_[i]     = ExpandWithLabel(psk_extracted_[i], "derived psk", PSKLabel, KDF.Nh)
    psk_secret_[i]    = KDF.Extract(psk_input_[i], psk_secret_[i-1]),   psk_secret_[0] = 0

``PreSharedKeyID`` is also the body of the PreSharedKey proposal (§12.1.4); the structs engineer
imports it from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Tuple

from ..errors import DecodeError, UsageError
from ..tls import Reader, Writer
from .registries import PSKType, ResumptionPSKUsage, Struct, enum_value
from .secrets import BytesLike, Secret, raw
from .suites import CipherSuite


@dataclass(frozen=True)
class PreSharedKeyID(Struct):
    """RFC 9420 §8.4 ``PreSharedKeyID``. Use :meth:`external` / :meth:`resumption` to build one."""

    psktype: PSKType
    psk_nonce: bytes
    psk_id: bytes = b""                 # external only
    usage: Optional[ResumptionPSKUsage] = None  # resumption only
    psk_group_id: bytes = b""           # resumption only
    psk_epoch: int = 0                  # resumption only

    @classmethod
    def external(cls, psk_id: bytes, psk_nonce: bytes) -> "PreSharedKeyID":
        return cls(PSKType.EXTERNAL, bytes(psk_nonce), psk_id=bytes(psk_id))

    @classmethod
    def resumption(cls, usage: ResumptionPSKUsage, group_id: bytes, epoch: int,
                   psk_nonce: bytes) -> "PreSharedKeyID":
        return cls(PSKType.RESUMPTION, bytes(psk_nonce), usage=ResumptionPSKUsage(usage),
                   psk_group_id=bytes(group_id), psk_epoch=int(epoch))

    # -- codec --------------------------------------------------------------------------------
    def encode(self, w: Writer) -> None:
        w.u8(self.psktype)
        if self.psktype == PSKType.EXTERNAL:
            w.vec(self.psk_id)
        elif self.psktype == PSKType.RESUMPTION:
            if self.usage is None:
                raise UsageError("resumption PSK id without usage", vid="MLS-PSK-USAGE")
            w.u8(self.usage).vec(self.psk_group_id).u64(self.psk_epoch)
        else:  # pragma: no cover - construction goes through PSKType
            raise UsageError(f"bad psktype {self.psktype}", vid="MLS-PSK-TYPE")
        w.vec(self.psk_nonce)

    @classmethod
    def decode(cls, r: Reader) -> "PreSharedKeyID":
        t = enum_value(PSKType, r.u8("PreSharedKeyID.psktype"), "PreSharedKeyID.psktype")
        if t == PSKType.EXTERNAL:
            psk_id = r.vec("PreSharedKeyID.psk_id")
            return cls(PSKType.EXTERNAL, r.vec("PreSharedKeyID.psk_nonce"), psk_id=psk_id)
        if t == PSKType.RESUMPTION:
            usage = enum_value(ResumptionPSKUsage, r.u8("ResumptionPSKUsage"),
                               "PreSharedKeyID.usage")
            gid = r.vec("PreSharedKeyID.psk_group_id")
            epoch = r.u64("PreSharedKeyID.psk_epoch")
            return cls(PSKType.RESUMPTION, r.vec("PreSharedKeyID.psk_nonce"), usage=usage,
                       psk_group_id=gid, psk_epoch=epoch)
        raise DecodeError(f"unknown PSKType {t}", vid="MLS-ENUM", where="PreSharedKeyID.psktype")


def psk_label(psk_id: PreSharedKeyID, index: int, count: int) -> bytes:
    """TLS encoding of ``PSKLabel`` (RFC 9420 §8.4)."""
    w = Writer()
    psk_id.encode(w)
    return w.u16(index).u16(count).getvalue()


PskInput = Tuple[PreSharedKeyID, BytesLike]


@dataclass(frozen=True)
class PskStep:
    """One step of the ``psk_secret`` chain, for a teaching UI (all secrets redacted)."""

    index: int
    psk_id: PreSharedKeyID
    psk_extracted: Secret
    psk_input: Secret
    psk_secret: Secret


def psk_secret_steps(cs: CipherSuite, psks: Sequence[PskInput]) -> Tuple[Secret, Tuple[PskStep, ...]]:
    """``psk_secret`` over ``psks`` (pairs of id and PSK value) and every intermediate step.

    With no PSKs the result is ``Nh`` zero bytes (RFC 9420 §8.4)."""
    nh = cs.hash_length
    zero = bytes(nh)
    secret = zero
    steps = []
    count = len(psks)
    if count > 0xFFFF:
        raise UsageError("more than 65535 PSKs", vid="MLS-PSK-COUNT")
    for i, (pid, value) in enumerate(psks):
        extracted = cs.extract(zero, raw(value))
        psk_in = cs.expand_with_label(extracted, b"derived psk", psk_label(pid, i, count), nh)
        secret = cs.extract(psk_in, secret)
        steps.append(PskStep(i, pid, Secret(extracted, "psk_extracted"), Secret(psk_in, "psk_input"),
                             Secret(secret, "psk_secret")))
    return Secret(secret, "psk_secret"), tuple(steps)


def psk_secret(cs: CipherSuite, psks: Iterable[PskInput]) -> Secret:
    """RFC 9420 §8.4 ``psk_secret`` from ``(PreSharedKeyID, psk)`` pairs in proposal order."""
    return psk_secret_steps(cs, list(psks))[0]


__all__ = ["PSKType", "ResumptionPSKUsage", "PreSharedKeyID", "psk_label", "PskStep",
           "psk_secret_steps", "psk_secret"]
