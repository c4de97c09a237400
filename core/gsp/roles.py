"""GSP roles and permission checks (crates/gsp/src/roles.rs; reference-map §2 permission bits).

Mirrors ``gbp_stack.RoleRegistry`` / ``Permissions`` / ``RoleSpec`` 1.9.1.  :class:`RoleError`
is a :class:`~gbp_lab.core.errors.UsageError` (hence also a ``ValueError``) with a stable
``vid``: ``GSP-ROLE-UNKNOWN`` (assigning an undefined role) or ``GSP-ROLE-DENIED`` (a member
lacks a permission; ``code`` = 0x3002 GSP_UNAUTHORIZED, the error a node would send).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import Any, Dict, Iterable, Optional

from ..errors import UsageError

__all__ = ["GSP_UNAUTHORIZED", "Permissions", "RoleError", "RoleRegistry", "RoleSpec"]

#: GSP error code for a missing permission (gbp-errors-registry, reference-map §2).
GSP_UNAUTHORIZED = 0x3002


class Permissions(IntFlag):
    """Permission bits (u32; bits 8-31 are free for applications)."""

    NONE = 0
    SEND_TEXT = 0x01
    SEND_AUDIO = 0x02
    SEND_SIGNAL = 0x04
    MUTE_OTHERS = 0x08
    ASSIGN_ROLES = 0x10
    INVITE = 0x20
    REMOVE_MEMBERS = 0x40
    CLOSE_GROUP = 0x80


@dataclass(frozen=True)
class RoleSpec:
    """A role: numeric id, display name, permission mask."""

    id: int
    name: str
    permissions: Permissions


class RoleError(UsageError):
    """Unknown role, or a member without the permission asked for."""

    default_vid = "GSP-ROLE"

    def __init__(self, message: str, *, vid: Optional[str] = None, where: Any = None,
                 code: Optional[int] = None) -> None:
        super().__init__(message, vid=vid, where=where)
        self.code = code


class RoleRegistry:
    """Role definitions plus the role assigned to each member."""

    __slots__ = ("_roles", "_members")

    def __init__(self) -> None:
        self._roles: Dict[int, RoleSpec] = {}
        self._members: Dict[int, int] = {}

    def define(self, spec: RoleSpec) -> None:
        """Add ``spec``, replacing any role with the same id."""
        self._roles[spec.id] = spec

    def define_role(self, role_id: int, name: str, permissions: Permissions) -> None:
        self.define(RoleSpec(role_id, name, permissions))

    def role(self, role_id: int) -> Optional[RoleSpec]:
        return self._roles.get(role_id)

    def roles(self) -> Iterable[RoleSpec]:
        """Every defined role, in definition order."""
        return self._roles.values()

    def assign(self, member_id: int, role_id: int) -> None:
        """Give ``member_id`` the role ``role_id`` (which must be defined)."""
        if role_id not in self._roles:
            raise RoleError(f"unknown role: {role_id}", vid="GSP-ROLE-UNKNOWN", where=role_id)
        self._members[member_id] = role_id

    def role_of(self, member_id: int) -> Optional[RoleSpec]:
        role_id = self._members.get(member_id)
        return None if role_id is None else self._roles.get(role_id)

    def permissions_of(self, member_id: int) -> Permissions:
        """The member's role's mask, :attr:`Permissions.NONE` without a role."""
        spec = self.role_of(member_id)
        return Permissions.NONE if spec is None else spec.permissions

    def has(self, member_id: int, mask: Permissions) -> bool:
        """``True`` iff the member holds every bit of ``mask``."""
        return (self.permissions_of(member_id) & mask) == mask

    def require(self, member_id: int, mask: Permissions) -> None:
        """Raise :class:`RoleError` (``GSP-ROLE-DENIED``) unless :meth:`has` is true."""
        if not self.has(member_id, mask):
            raise RoleError(f"member {member_id} lacks permission 0x{int(mask):08X}",
                            vid="GSP-ROLE-DENIED", where=member_id, code=GSP_UNAUTHORIZED)
