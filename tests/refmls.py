"""Put OUR GBP node into groups with reference (``gbp_stack``) members before our own MLS exists.

* :class:`RefMls` — wraps a reference ``gbp_stack.MlsContext`` and gives it the interface our
  node needs (``epoch`` and ``export_raw(label, context, length)``): the exporter secret of the
  context's current epoch is read from ``export_state()`` through
  :meth:`gbp_lab.core.keylog.KeyLog.from_gbp_stack_state` (once per epoch) and the export is an
  :class:`gbp_lab.core.mls.exporter_view.ExporterView`. Every other attribute (``invite_full``,
  ``process_message``, ``finalize_commit`` …) is the wrapped context's.
* :func:`mixed_pair` — reference alice (member 1, creator) + bob (member 2) whose GBP node is
  ours, and a *shadow* reference node for bob fed the same bytes (differential tests).
* :func:`norm` — the comparable fields of an event from either implementation.

Use with ``sys.path.insert(0, str(pathlib.Path(__file__).parent)); import refmls``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import gbp_stack as g

from gbp_lab.core.gbp.node import GroupNode
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.mls.exporter_view import ExporterView


class RefMls:
    """``epoch`` + ``export_raw`` for a reference MLS context (see the module docstring)."""

    def __init__(self, ctx: g.MlsContext) -> None:
        self.ctx = ctx
        self._epoch: Optional[int] = None
        self._gid: Optional[bytes] = None
        self._view: Optional[ExporterView] = None

    @property
    def epoch(self) -> int:
        return self.ctx.epoch

    def view(self) -> ExporterView:
        """The :class:`ExporterView` of the context's current epoch."""
        ep, gid = self.ctx.epoch, self.ctx.group_id
        if self._view is None or ep != self._epoch or gid != self._gid:
            log = KeyLog.from_gbp_stack_state(self.ctx.export_state())
            self._view = ExporterView.from_keylog(log, gid, ep)
            self._epoch, self._gid = ep, gid
        return self._view

    def export_raw(self, label, context: bytes, length: int) -> bytes:
        return self.view().export_raw(label, context, length)

    def __getattr__(self, name):  # invite_full, process_message, finalize_commit, group_id …
        return getattr(self.ctx, name)

    def __enter__(self) -> "RefMls":
        return self

    def __exit__(self, *exc) -> None:
        self.ctx.close()

    @classmethod
    def create(cls, identity: str) -> "RefMls":
        """A wrapped fresh reference context (``MlsContext.create`` stand-in)."""
        return cls(g.MlsContext.create(identity))


# --- event comparison ------------------------------------------------------------------------
#: error codes whose ``reason`` text we reproduce exactly
SAME_REASON_CODES = frozenset({0x0001, 0x0002, 0x0003, 0x0004, 0x0005})


def norm(ev, *, reasons: bool = True) -> Tuple:
    """Comparable form of a ``NodeEvent`` of either implementation (the wrapper's
    ``from_state`` of control events — the sender id — and its ``None`` for an empty plaintext
    are normalised away)."""
    kind = ev.kind
    if kind == "state_changed":
        return (kind, ev.from_state, ev.to_state)
    if kind == "payload_received":
        return (kind, ev.stream_type_name, int(ev.stream_type), ev.stream_id, ev.sequence_no,
                ev.flags, ev.plaintext or b"", int(ev.codec))
    if kind == "control":
        return (kind, ev.sender, ev.opcode, ev.opcode_code, ev.transition_id)
    if kind == "error":
        reason = ev.reason if reasons and ev.code in SAME_REASON_CODES else None
        return (kind, ev.code, ev.code_hex, ev.class_, ev.retryable, ev.fatal, reason)
    if kind == "epoch_advanced":
        return (kind, ev.epoch, ev.transition_id)
    if kind == "coordinator_claim":
        return (kind, ev.claimant)
    return (kind,)


def norms(events, **kw) -> List[Tuple]:
    return [norm(e, **kw) for e in events]


# --- groups ----------------------------------------------------------------------------------
@dataclass
class MixedPair:
    """alice: reference MLS + reference node; bob: reference MLS, OUR node, and a reference
    shadow node that receives the same bytes."""

    alice_mls: g.MlsContext
    bob_mls: g.MlsContext
    alice: g.GroupNode
    bob: GroupNode
    bob_ref: g.GroupNode
    bob_view: RefMls

    @property
    def group_id(self) -> bytes:
        return self.alice_mls.group_id

    def both(self, wire: bytes):
        """Feed *wire* to our bob and the shadow; returns (ours, reference) event lists."""
        return self.bob.on_wire(self.bob_view, wire), self.bob_ref.on_wire(self.bob_mls, wire)

    def close(self) -> None:
        for x in (self.alice, self.bob_ref, self.alice_mls, self.bob_mls):
            x.close()

    def __enter__(self) -> "MixedPair":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def mixed_pair(expected_first_tid: int = 0) -> MixedPair:
    """alice invites bob (MLS epoch 1); alice's node is the reference's, bob's node is ours,
    bootstrapped like the reference examples; bootstrap events drained."""
    alice, bob = g.MlsContext.create("alice"), g.MlsContext.create("bob")
    bob.accept_welcome(alice.invite(bob.export_key_package()))
    gid = alice.group_id
    na = g.GroupNode.create(member_id=1, group_id=gid)
    na.bootstrap_as_creator(alice.epoch)
    ours = GroupNode.create(member_id=2, group_id=gid)
    ours.bootstrap_as_joiner(bob.epoch, expected_first_tid)
    shadow = g.GroupNode.create(member_id=2, group_id=gid)
    shadow.bootstrap_as_joiner(bob.epoch, expected_first_tid)
    for n in (na, ours, shadow):
        n.drain_events()
    return MixedPair(alice, bob, na, ours, shadow, RefMls(bob))


__all__ = ["RefMls", "MixedPair", "mixed_pair", "norm", "norms", "SAME_REASON_CODES"]
