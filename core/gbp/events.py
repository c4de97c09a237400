"""Events and outbound frames of the GBP group node (reference crates/gbp/node/src/node.rs
``Event`` / ``OutboundFrame``; the JSON form of crates/gbp/stack-ffi/src/lib.rs ``EventDto`` as the
``gbp_stack`` Python binding exposes it).

:class:`NodeEvent` has the same ``kind`` values and the same fields as ``gbp_stack.NodeEvent``:

=================================  ============================================================
kind                               fields filled
=================================  ============================================================
``state_changed``                  ``from_state``, ``to_state`` (state names, e.g. ``"ACTIVE"``)
``payload_received``               ``stream_type_name``, ``stream_type``, ``stream_id``,
                                   ``sequence_no``, ``flags``, ``plaintext``, ``codec``
``control``                        ``sender``, ``opcode`` (name), ``opcode_code``,
                                   ``transition_id`` and — unlike the reference wrapper, which
                                   drops them — ``request_id`` and ``args``
``error``                          ``code``, ``code_hex``, ``class_``, ``retryable``, ``fatal``,
                                   ``reason``
``epoch_advanced``                 ``epoch``, ``transition_id``
``coordinator_election_needed``    none
``became_coordinator``             none
``coordinator_claim``              ``claimant``
=================================  ============================================================

Two deliberate differences from the wrapper: a ``control`` event leaves ``from_state`` at
``None`` (the wrapper copies the sender id there, because the JSON key ``from`` is shared with
``state_changed``), and an empty ``plaintext`` is ``b""`` rather than ``None``.

Events are frozen. The node builds them on its hot path without running the dataclass
``__init__`` (:func:`_event`): the instance dict only holds the fields of its kind, every other
field reads the class-level default ``None``. Equality, ``repr`` and ``dataclasses.replace`` work
as for any frozen dataclass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .registry import ErrorCode, PayloadCodec, StreamType

__all__ = ["NodeEvent", "OutboundFrame", "EVENT_KINDS", "make_event"]

#: Every ``kind`` a node can emit.
EVENT_KINDS = (
    "state_changed", "payload_received", "control", "error", "epoch_advanced",
    "coordinator_election_needed", "became_coordinator", "coordinator_claim",
)


@dataclass(frozen=True)
class OutboundFrame:
    """A frame ready for the transport: the target member id (0 = broadcast, by convention of
    the reference examples) and the CBOR :class:`~gbp_lab.core.gbp.frame.GbpFrame` bytes."""

    target: int
    wire: bytes


@dataclass(frozen=True)
class NodeEvent:
    """One event surfaced by :class:`~gbp_lab.core.gbp.node.GroupNode` (see the module table)."""

    kind: str
    from_state: Optional[str] = None
    to_state: Optional[str] = None
    stream_type_name: Optional[str] = None
    stream_type: Optional[StreamType] = None
    stream_id: Optional[int] = None
    sequence_no: Optional[int] = None
    flags: Optional[int] = None
    plaintext: Optional[bytes] = None
    sender: Optional[int] = None
    opcode: Optional[str] = None
    opcode_code: Optional[int] = None
    transition_id: Optional[int] = None
    code: Optional[int] = None
    code_hex: Optional[str] = None
    class_: Optional[int] = None
    retryable: Optional[bool] = None
    fatal: Optional[bool] = None
    reason: Optional[str] = None
    epoch: Optional[int] = None
    claimant: Optional[int] = None
    codec: Optional[PayloadCodec] = None
    request_id: Optional[int] = None
    args: Optional[bytes] = None

    @property
    def error_code(self) -> Optional[ErrorCode]:
        """``code`` as an :class:`ErrorCode` (``None`` for other kinds or unregistered codes)."""
        try:
            return None if self.code is None else ErrorCode(self.code)
        except ValueError:
            return None


_new = object.__new__
_setattr = object.__setattr__


def make_event(fields: dict) -> NodeEvent:
    """A :class:`NodeEvent` whose instance dict is *fields* (must contain ``kind``); unnamed
    fields fall back to the class defaults (``None``)."""
    ev = _new(NodeEvent)
    _setattr(ev, "__dict__", fields)
    return ev
