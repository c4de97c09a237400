"""Transcript hashes (RFC 9420 §8.2).

::

    struct { WireFormat wire_format; FramedContent content; /* with content_type = commit */
             opaque signature<V>; } ConfirmedTranscriptHashInput;

    struct { MAC confirmation_tag; } InterimTranscriptHashInput;

    confirmed_transcript_hash_[n] = Hash(interim_transcript_hash_[n-1] ‖ ConfirmedTranscriptHashInput_[n])
    interim_transcript_hash_[n]   = Hash(confirmed_transcript_hash_[n] ‖ InterimTranscriptHashInput_[n])

A new group starts with an empty confirmed transcript hash and computes the interim hash of epoch 0
from its first confirmation tag (§11). The confirmation tag itself is
:func:`gbp_lab.core.mls.schedule.confirmation_tag`.
"""
from __future__ import annotations

from dataclasses import dataclass
from ..errors import UsageError
from ..tls import Writer, encode_vec
from .framing import AuthenticatedContent
from .registries import ContentType
from .suites import CipherSuite


def confirmed_transcript_hash_input(ac: AuthenticatedContent) -> bytes:
    """TLS encoding of ``ConfirmedTranscriptHashInput`` from a commit's AuthenticatedContent."""
    if ac.content.content_type != ContentType.COMMIT:
        raise UsageError("transcript hashes cover commits only", vid="MLS-TRANSCRIPT-COMMIT")
    w = Writer().u16(ac.wire_format)
    ac.content.encode(w)
    return w.vec(ac.auth.signature).getvalue()


def interim_transcript_hash_input(confirmation_tag: bytes) -> bytes:
    """TLS encoding of ``InterimTranscriptHashInput`` (``MAC confirmation_tag`` = opaque<V>)."""
    return encode_vec(bytes(confirmation_tag))


def confirmed_transcript_hash(cs: CipherSuite, interim_transcript_hash_before: bytes,
                              ac: AuthenticatedContent) -> bytes:
    """``Hash(interim_transcript_hash_[n-1] ‖ ConfirmedTranscriptHashInput_[n])``."""
    return cs.hash(bytes(interim_transcript_hash_before) + confirmed_transcript_hash_input(ac))


def interim_transcript_hash(cs: CipherSuite, confirmed_transcript_hash: bytes,
                            confirmation_tag: bytes) -> bytes:
    """``Hash(confirmed_transcript_hash_[n] ‖ InterimTranscriptHashInput_[n])``."""
    return cs.hash(bytes(confirmed_transcript_hash) + interim_transcript_hash_input(confirmation_tag))


@dataclass(frozen=True)
class TranscriptHashes:
    """The pair of transcript hashes a group carries from epoch to epoch."""

    confirmed: bytes
    interim: bytes

    @classmethod
    def initial(cls, cs: CipherSuite, confirmation_tag: bytes) -> "TranscriptHashes":
        """Epoch 0 of a new group (§11): empty confirmed hash, interim from the first tag."""
        return cls(b"", interim_transcript_hash(cs, b"", confirmation_tag))

    def update(self, cs: CipherSuite, commit: AuthenticatedContent) -> "TranscriptHashes":
        """The hashes after ``commit`` (its ``auth.confirmation_tag`` must be present)."""
        tag = commit.auth.confirmation_tag
        if tag is None:
            raise UsageError("commit without confirmation tag", vid="MLS-CONFIRMATION-TAG-MISSING")
        confirmed = confirmed_transcript_hash(cs, self.interim, commit)
        return TranscriptHashes(confirmed, interim_transcript_hash(cs, confirmed, tag))


__all__ = [
    "confirmed_transcript_hash_input", "interim_transcript_hash_input", "confirmed_transcript_hash",
    "interim_transcript_hash", "TranscriptHashes",
]
