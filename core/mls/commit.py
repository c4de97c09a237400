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
        proposals = tuple(r.vec_of(ProposalOrRef.decode, "Commit.proposals"))
        return cls(proposals, r.optional(UpdatePath.decode, "Commit.path"))


__all__ = ["Commit"]
