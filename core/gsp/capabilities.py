"""GSP capability negotiation (crates/gsp/src/capabilities.rs).

Each member advertises a set of capability strings (e.g. conformance tokens ``gbp/class-c``,
reference-map §2); the group may use what :meth:`CapabilitiesNegotiator.intersection` returns.
Mirrors ``gbp_stack.CapabilitiesNegotiator`` 1.9.1, including: an empty group supports
nothing, and :meth:`~CapabilitiesNegotiator.missing` lists members in advertisement order
(a re-advertisement keeps the member's place; forgetting and advertising again moves it last).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Set

__all__ = ["CapabilitiesNegotiator"]


class CapabilitiesNegotiator:
    """Per-member capability sets with group-wide intersection / union queries."""

    __slots__ = ("_caps",)

    def __init__(self) -> None:
        self._caps: Dict[int, Set[str]] = {}

    def advertise(self, member_id: int, capabilities: Iterable[str]) -> None:
        """Record ``member_id``'s capabilities, replacing an earlier advertisement."""
        self._caps[member_id] = set(capabilities)

    def forget(self, member_id: int) -> None:
        self._caps.pop(member_id, None)

    def capabilities_of(self, member_id: int) -> Optional[Set[str]]:
        """A copy of the member's set, ``None`` if it never advertised."""
        caps = self._caps.get(member_id)
        return None if caps is None else set(caps)

    def group_supports(self, capability: str) -> bool:
        """``True`` iff at least one member advertised and all of them list ``capability``."""
        return bool(self._caps) and all(capability in caps for caps in self._caps.values())

    def intersection(self) -> Set[str]:
        """Capabilities every member lists (empty for an empty group)."""
        return set.intersection(*self._caps.values()) if self._caps else set()

    def union(self) -> Set[str]:
        """Capabilities any member lists."""
        return set().union(*self._caps.values())

    def missing(self, capability: str) -> List[int]:
        """Members whose advertisement lacks ``capability``."""
        return [member for member, caps in self._caps.items() if capability not in caps]

    def __len__(self) -> int:
        return len(self._caps)
