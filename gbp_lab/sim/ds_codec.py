"""The wire codec of the DS extension (optional, ours — not part of the reference; the relay of
:mod:`gbp_lab.sim.relay` and the client of :mod:`gbp_lab.sim.client` speak it).

A record that starts with the 4-byte magic ``b"GBDS"`` is a DS message. The magic cannot start a
GBP frame (a CBOR map, first byte 0xAA/0xAB) nor an MLS blob (``00 01`` = version mls10, RFC 9420
§6). Integers are little-endian, like the record prefix (gbp-mls-binding.md §5)::

    HELLO       (1)  u32 member_id ‖ u8 flags (0x01 stamped: wrap deliveries; 0x02 notify)
    ROUTE       (2)  u32 target (0 = broadcast) ‖ record            client → DS
    DELIVER     (3)  u64 ds_seq ‖ u32 from_member (0 = unknown) ‖ record   DS → stamped client
    MEMBER_LEFT (4)  u64 ds_seq ‖ u32 member_id ‖ UTF-8 reason      DS → notify client

``decode_ds_message(m.to_bytes()) == m`` for every message; a malformed one raises
:class:`DsExtensionError` (``DS-BAD-EXT-*``).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Union

from gbp_lab.core.errors import DecodeError, UsageError

__all__ = ["DS_MAGIC", "DsType", "HelloFlags", "Hello", "Route", "Deliver", "MemberLeft",
           "DsMessage", "decode_ds_message", "is_ds_message", "DsExtensionError"]

DS_MAGIC = b"GBDS"
_HDR = len(DS_MAGIC) + 1
_u32 = struct.Struct("<I")
_hello = struct.Struct("<IB")
_deliver = struct.Struct("<QI")


class DsExtensionError(DecodeError):
    """A record with the DS magic whose body is malformed."""

    default_vid = "DS-BAD-EXT"


class DsType(IntEnum):
    """Message types of the optional DS extension."""

    HELLO = 1
    ROUTE = 2
    DELIVER = 3
    MEMBER_LEFT = 4


class HelloFlags(IntEnum):
    """``HELLO`` flag bits."""

    STAMPED = 0x01  #: wrap every delivery in DELIVER (ds_seq, from_member)
    NOTIFY = 0x02  #: receive MEMBER_LEFT notices


@dataclass(frozen=True)
class Hello:
    """Client → DS: "I am member *member_id*" (also a keep-alive; may be repeated)."""

    member_id: int
    flags: int = 0

    @property
    def stamped(self) -> bool:
        return bool(self.flags & HelloFlags.STAMPED)

    @property
    def notify(self) -> bool:
        return bool(self.flags & HelloFlags.NOTIFY)

    def to_bytes(self) -> bytes:
        _check_u32(self.member_id, "member_id")
        if not 0 <= self.flags <= 0xFF:
            raise UsageError("HELLO flags must fit in u8", vid="DS-USAGE")
        return DS_MAGIC + bytes((DsType.HELLO,)) + _hello.pack(self.member_id, self.flags)


@dataclass(frozen=True)
class Route:
    """Client → DS: forward *record* to member *target* only (0 = broadcast)."""

    target: int
    record: bytes

    def to_bytes(self) -> bytes:
        _check_u32(self.target, "target")
        return DS_MAGIC + bytes((DsType.ROUTE,)) + _u32.pack(self.target) + self.record


@dataclass(frozen=True)
class Deliver:
    """DS → stamped client: *record* from *from_member*, position *ds_seq* in the DS order."""

    ds_seq: int
    from_member: int
    record: bytes

    def to_bytes(self) -> bytes:
        return (DS_MAGIC + bytes((DsType.DELIVER,)) + _deliver.pack(self.ds_seq, self.from_member)
                + self.record)


@dataclass(frozen=True)
class MemberLeft:
    """DS → notify client: the connection of *member_id* closed (gbp-mls-binding.md §5 item 3)."""

    ds_seq: int
    member_id: int
    reason: str

    def to_bytes(self) -> bytes:
        return (DS_MAGIC + bytes((DsType.MEMBER_LEFT,)) + _deliver.pack(self.ds_seq, self.member_id)
                + self.reason.encode("utf-8"))


DsMessage = Union[Hello, Route, Deliver, MemberLeft]


def _check_u32(v: int, name: str) -> None:
    if not 0 <= v <= 0xFFFFFFFF:
        raise UsageError(f"{name} must fit in u32", vid="DS-USAGE")


def is_ds_message(record: bytes) -> bool:
    """True if *record* starts with the DS magic."""
    return record[:4] == DS_MAGIC


def decode_ds_message(record: bytes) -> DsMessage:
    """Decode a DS extension record; :class:`DsExtensionError` if it is not a valid one.

    ``decode_ds_message(m.to_bytes()) == m`` and ``decode_ds_message(b).to_bytes() == b``.
    """
    record = bytes(record)
    if record[:4] != DS_MAGIC:
        raise DsExtensionError("record does not start with the DS magic", vid="DS-BAD-EXT-MAGIC")
    if len(record) < _HDR:
        raise DsExtensionError("DS record without a type byte", vid="DS-BAD-EXT-SHORT")
    t = record[4]
    body = record[_HDR:]
    if t == DsType.HELLO:
        if len(body) != _hello.size:
            raise DsExtensionError(f"HELLO body is {len(body)} bytes, expected {_hello.size}",
                                   vid="DS-BAD-EXT-HELLO")
        member, flags = _hello.unpack(body)
        if member == 0:
            raise DsExtensionError("HELLO with member id 0", vid="DS-BAD-EXT-MEMBER")
        return Hello(member, flags)
    if t == DsType.ROUTE:
        if len(body) < 4:
            raise DsExtensionError("ROUTE without a target", vid="DS-BAD-EXT-ROUTE")
        return Route(_u32.unpack_from(body)[0], body[4:])
    if t == DsType.DELIVER:
        if len(body) < _deliver.size:
            raise DsExtensionError("DELIVER header truncated", vid="DS-BAD-EXT-DELIVER")
        seq, frm = _deliver.unpack_from(body)
        return Deliver(seq, frm, body[_deliver.size:])
    if t == DsType.MEMBER_LEFT:
        if len(body) < _deliver.size:
            raise DsExtensionError("MEMBER_LEFT header truncated", vid="DS-BAD-EXT-LEFT")
        seq, member = _deliver.unpack_from(body)
        try:
            reason = body[_deliver.size:].decode("utf-8")
        except UnicodeDecodeError:
            raise DsExtensionError("MEMBER_LEFT reason is not UTF-8", vid="DS-BAD-EXT-LEFT") from None
        return MemberLeft(seq, member, reason)
    raise DsExtensionError(f"unknown DS message type {t}", vid="DS-BAD-EXT-TYPE")
