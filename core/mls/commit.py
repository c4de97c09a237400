"""Commit (RFC 9420 §12.4).

::

    struct {
        ProposalOrRef proposals<V>;
        optional<UpdatePath> path;
    } Commit;
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ..tls import Reader, Writer
from .proposals import ProposalOrRef
from .registries import Struct
from .update_path import UpdatePath


@dataclass(frozen=True)
class Commit(Struct):
    """RFC 9420 §12.4 ``Commit``: proposals (inline or by reference) and an optional UpdatePath."""

    proposals: Tuple[ProposalOrRef, ...] = ()
    path: Optional[UpdatePath] = None

    def encode(self, w: Writer) -> None:
        w.vec_of(self.proposals, lambda ww, p: p.encode(ww))
        w.optional(self.path, lambda ww, p: p.encode(ww))

    @classmethod
    def decode(cls, r: Reader) -> "Commit":
        global _last
        start = r.pos
        proposals = tuple(r.vec_of(ProposalOrRef.decode, "Commit.proposals"))
        commit = cls(proposals, r.optional(UpdatePath.decode, "Commit.path"))
        _last = (bytes(r.data[start:r.pos]), commit)
        return commit

    @classmethod
    def from_bytes(cls, data: bytes) -> "Commit":
        """Decode exactly one Commit. A received Commit is read twice — once by the framing
        layer to find where the body ends, once by the group to use it — so the last one decoded
        is kept with its exact bytes and handed back for the same bytes (a Commit is immutable;
        a large group's UpdatePath holds a thousand ciphertexts)."""
        data = bytes(data)
        last = _last
        if last is not None and cls is Commit and last[0] == data:
            return last[1]
        return super().from_bytes(data)


#: ``(bytes, Commit)`` of the last Commit decoded (see :meth:`Commit.from_bytes`).
_last: Optional[Tuple[bytes, Commit]] = None


__all__ = ["Commit"]
