"""The GBP state machines and the control-plane validation matrix, kept as DATA.

Sources: gbp-state-machine.md §3-§6 and gbp-control-plane.md §5 of the reference; the code that
peers actually run is crates/gbp/core/src/state.rs (``can_transition_to``, ``timeouts``) and
crates/gbp/node/src/node.rs (``handle_control``, ``send_control``, ``check_timeouts``).

Everything here is a plain table (tuples, dicts, frozensets) so that a notebook can draw the
machines (:func:`edges`) and tests can iterate over them. :class:`~gbp_lab.core.gbp.node.GroupNode`
decides with :data:`NODE_EDGES`, :data:`SENDABLE_STATES` and :data:`TID_RULES` directly (a change
here changes the node); :data:`TRANSITION_EFFECTS` and :data:`SEND_EFFECTS` describe what its
handlers do and tests/test_node_fsm.py checks the node against them.

* :data:`NODE_EDGES` — the node FSM (IDLE → CONNECTING → ESTABLISHING_GROUP → ACTIVE ⇄ RESYNCING,
  FAILED, and CLOSED from anywhere). A transition that is not in the table sends the node to
  FAILED (the reference does the same, emitting ``state_changed`` to FAILED).
* :data:`TRANSITION_EDGES` — the epoch-transition FSM of the spec (T_IDLE → T_PREPARED →
  T_COMMIT_PROCESSED → T_READY → T_EXECUTED / T_ABORTED → T_IDLE). The reference node does not
  enforce it: it *sets* the transition state on events (:data:`TRANSITION_EFFECTS`); the table is
  what the spec allows, the effects table is what the node does.
* :data:`TID_RULES` — the per-opcode ``transition_id`` validation matrix on the receive side.
* :data:`TIMEOUTS_MS` — normative deadlines (re-exported from the registry).
"""
from __future__ import annotations

from enum import IntEnum
from typing import Dict, FrozenSet, Iterator, Mapping, Set, Tuple

from ..errors import UsageError
from .registry import TIMEOUTS_MS, ControlOpcode, NodeState, TransitionState

__all__ = [
    "NODE_EDGES", "NODE_ANY_TO", "node_can_transition", "TRANSITION_EDGES",
    "transition_can_transition", "TID_RULES", "TID_RULE_TEXT", "tid_valid", "TRANSITION_EFFECTS",
    "SEND_EFFECTS", "SENDABLE_STATES", "TIMEOUTS_MS", "edges",
]

N = NodeState
T = TransitionState
O = ControlOpcode

#: Node FSM edges (from, to) allowed by the spec (state.rs ``NodeState::can_transition_to``).
NODE_EDGES: FrozenSet[Tuple[NodeState, NodeState]] = frozenset({
    (N.IDLE, N.CONNECTING), (N.IDLE, N.FAILED),
    (N.CONNECTING, N.ESTABLISHING_GROUP), (N.CONNECTING, N.FAILED),
    (N.ESTABLISHING_GROUP, N.ACTIVE), (N.ESTABLISHING_GROUP, N.FAILED),
    (N.ACTIVE, N.RESYNCING), (N.ACTIVE, N.CLOSED), (N.ACTIVE, N.FAILED),
    (N.RESYNCING, N.ACTIVE), (N.RESYNCING, N.FAILED),
})
#: States reachable from *every* state (the ``(_, Closed)`` arm).
NODE_ANY_TO: FrozenSet[NodeState] = frozenset({N.CLOSED})

#: States in which the node may send (node.rs ``assert_can_send``).
SENDABLE_STATES: FrozenSet[NodeState] = frozenset({N.ACTIVE, N.RESYNCING, N.ESTABLISHING_GROUP})


def node_can_transition(src: int, dst: int) -> bool:
    """True when the node FSM allows ``src -> dst``."""
    return dst in NODE_ANY_TO or (src, dst) in NODE_EDGES


#: Transition FSM edges of the spec (state.rs ``TransitionState::can_transition_to``).
TRANSITION_EDGES: FrozenSet[Tuple[TransitionState, TransitionState]] = frozenset({
    (T.T_IDLE, T.T_PREPARED),
    (T.T_PREPARED, T.T_COMMIT_PROCESSED), (T.T_PREPARED, T.T_ABORTED),
    (T.T_COMMIT_PROCESSED, T.T_READY), (T.T_COMMIT_PROCESSED, T.T_ABORTED),
    (T.T_READY, T.T_EXECUTED), (T.T_READY, T.T_ABORTED),
    (T.T_EXECUTED, T.T_IDLE), (T.T_ABORTED, T.T_IDLE),
})


def transition_can_transition(src: int, dst: int) -> bool:
    """True when the spec's transition FSM allows ``src -> dst``."""
    return (src, dst) in TRANSITION_EDGES


# --- tid validation matrix (receive side, node.rs handle_control) ----------------------------
#: Rule names used by :data:`TID_RULES`.
TID_RULE_TEXT: Mapping[str, str] = {
    "newer_and_free_or_same": "tid > last_transition_id and (no pending tid or tid == pending)",
    "equals_pending": "a tid is pending and tid == pending",
    "unchecked": "informational, not checked",
}
#: opcode -> rule. A control message whose tid breaks its rule is answered with
#: ERR_TRANSITION_MISMATCH (0x0004) and otherwise ignored.
TID_RULES: Mapping[ControlOpcode, str] = {
    O.PREPARE_TRANSITION: "newer_and_free_or_same",
    O.READY_FOR_TRANSITION: "equals_pending",
    O.EXECUTE_TRANSITION: "equals_pending",
    O.ABORT_TRANSITION: "equals_pending",
    O.GROUP_STATE_DIGEST_REQUEST: "unchecked",
    O.GROUP_STATE_DIGEST_RESPONSE: "unchecked",
    O.REPORT_INVALID_COMMIT: "unchecked",
    O.CAPABILITIES_ADVERTISE: "unchecked",
    O.ACK: "unchecked",
    O.NACK: "unchecked",
}


_TID_RULE_OF: Dict[int, str] = {int(op): rule for op, rule in TID_RULES.items()}  # by plain int


def tid_valid(opcode: int, tid: int, last: int, pending: int) -> bool:
    """Apply :data:`TID_RULES` to one control message (``pending`` 0 = nothing pending)."""
    rule = _TID_RULE_OF.get(opcode, "unchecked")
    if rule == "newer_and_free_or_same":
        return tid > last and (pending == 0 or pending == tid)
    if rule == "equals_pending":
        return pending != 0 and tid == pending
    return True


# --- what the node does (receive side and send side) -----------------------------------------
#: Receive side: opcode -> (new transition state or None, what else happens).
TRANSITION_EFFECTS: Mapping[ControlOpcode, Tuple[object, str]] = {
    O.PREPARE_TRANSITION: (T.T_PREPARED, "pending := tid, commit sender := sid (lower sid wins a "
                                         "tie), arm execute deadline, coordinator seen"),
    O.READY_FOR_TRANSITION: (T.T_READY, "record READY sender, clear prepare deadline"),
    O.EXECUTE_TRANSITION: (T.T_EXECUTED, "apply_transition(tid): epoch+1, last := tid, clear "
                                         "pending and replay windows, coordinator seen"),
    O.ABORT_TRANSITION: (T.T_ABORTED, "pending := 0, clear deadlines and commit sender"),
    O.GROUP_STATE_DIGEST_RESPONSE: (None, "RESYNCING -> ACTIVE"),
    O.CAPABILITIES_ADVERTISE: (None, "coordinator claim {0: true}: coordinator seen, yield the "
                                     "role to a lower claimant, coordinator_claim event"),
}
#: Send side: opcode -> (new transition state or None, what else happens).
SEND_EFFECTS: Mapping[ControlOpcode, Tuple[object, str]] = {
    O.PREPARE_TRANSITION: (T.T_PREPARED, "pending := tid, arm prepare deadline, clear execute "
                                         "deadline"),
    O.READY_FOR_TRANSITION: (None, "arm execute deadline"),
    O.EXECUTE_TRANSITION: (None, "clear prepare and execute deadlines"),
    O.ABORT_TRANSITION: (T.T_ABORTED, "pending := 0, clear deadlines"),
}


def edges(machine: str = "node") -> Iterator[Tuple[str, str]]:
    """(from, to) state names of ``"node"`` (CLOSED-from-anywhere expanded) or
    ``"transition"``, sorted — ready for graphviz/networkx."""
    pairs: Set[Tuple[IntEnum, IntEnum]]
    if machine == "node":
        pairs = set(NODE_EDGES) | {(s, d) for s in NodeState for d in NODE_ANY_TO if s != d}
    elif machine == "transition":
        pairs = set(TRANSITION_EDGES)
    else:
        raise UsageError(f"unknown machine {machine!r}", vid="GBP-FSM-MACHINE")
    yield from sorted((a.name, b.name) for a, b in pairs)


def _as_dict() -> Dict[str, object]:  # pragma: no cover - convenience for notebooks
    return {"node": list(edges("node")), "transition": list(edges("transition")),
            "tid_rules": {op.name: TID_RULE_TEXT[r] for op, r in TID_RULES.items()},
            "timeouts_ms": dict(TIMEOUTS_MS)}
