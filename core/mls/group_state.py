"""One member's state of one group in one epoch, and the policy it runs with (RFC 9420 §8, §12).

The data the group operations share — the state machine's nouns, below every operation:

* :class:`GroupState` — public state (GroupContext §8.1, ratchet tree §7), private state (path
  keys, signature key), the epoch's secrets (§8) and secret tree (§9), transcript hashes and the
  confirmation tag (§8.2), the proposals received in this epoch (§12.1);
* :class:`GroupConfig` — per-member policy (openmls 0.8 defaults);
* :class:`StoredProposal` — a proposal kept by reference (§12.1, §5.2);
* the errors of the group layer (:class:`GroupStateError`, :class:`ProposalError`,
  :class:`CommitError`, :class:`UnsupportedError`);
* :func:`new_epoch_state` and :func:`commit_psk_secret`, used by member commits
  (:mod:`.group`) and external commits (:mod:`.external`) alike.

The operations on a state live above this module: :mod:`.proposal_validation` (§12.2, §12.3),
:mod:`.external` (§12.4.3.2), :mod:`.group` (create, join, commit, process), :mod:`.reinit`
(§11.2, §11.3) and :class:`~.context.MlsContext`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Protocol, Sequence, Union

from ..errors import MissingKeyError, ProtocolError, StateError, UsageError
from .framing import AuthenticatedContent, Sender
from .proposals import Proposal
from .psk import PreSharedKeyID
from .psk import psk_secret as psk_chain
from .registries import PSKType, WireFormat
from .schedule import EpochSecrets, GroupContext
from .secret_tree import DEFAULT_MAXIMUM_FORWARD_DISTANCE, DEFAULT_OUT_OF_ORDER_TOLERANCE, SecretTree
from .secrets import Secret
from .suites import CipherSuite
from .transcript import interim_transcript_hash
from .tree import RatchetTree
from .treekem import PrivateTree

Rng = Callable[[int], bytes]
#: Where a Commit's PSK values come from: a mapping ``psk_id -> value`` (external PSKs) or a
#: resolver ``PreSharedKeyID -> bytes | None`` (:meth:`.psk_store.PskStore.resolver`).
PskSource = Union[Mapping[bytes, bytes], Callable[[PreSharedKeyID], Optional[bytes]]]


class GroupStateLike(Protocol):
    """What :func:`commit_psk_secret` and :func:`~.proposal_validation.apply_proposals` read of a
    state: a :class:`GroupState`, or an external joiner's view built from a GroupInfo."""

    @property
    def suite(self) -> CipherSuite: ...

    @property
    def context(self) -> GroupContext: ...

    @property
    def tree(self) -> RatchetTree: ...

    @property
    def group_id(self) -> bytes: ...

    @property
    def epoch(self) -> int: ...

    @property
    def resumption_psks(self) -> Dict[int, bytes]: ...


# --- errors ----------------------------------------------------------------------------------

class GroupStateError(StateError):
    """The message cannot be handled in the group's current state (own message, not a member,
    a commit already staged …)."""

    default_vid = "MLS-GROUP-STATE"


class ProposalError(ProtocolError):
    """A proposal (or the set a Commit covers) breaks a rule of RFC 9420 §12.2 / §12.1."""

    default_vid = "MLS-PROPOSAL-INVALID"


class CommitError(ProtocolError):
    """A Commit breaks a rule of RFC 9420 §12.4 (missing path, bad sender …)."""

    default_vid = "MLS-COMMIT-INVALID"


class UnsupportedError(ProtocolError):
    """A well-formed message uses a feature this implementation does not handle (an unknown
    sender type …). External commits, ReInit and PSKs are handled by external.py, reinit.py and
    psk_store.py."""

    default_vid = "MLS-UNSUPPORTED"


# --- configuration ---------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupConfig:
    """Per-member policy, defaults as openmls 0.8 ``MlsGroupCreateConfig``/``JoinConfig``."""

    padding_size: int = 0                     #: PrivateMessage padding block (0 = none, openmls default)
    out_of_order_tolerance: int = DEFAULT_OUT_OF_ORDER_TOLERANCE
    maximum_forward_distance: int = DEFAULT_MAXIMUM_FORWARD_DISTANCE
    use_ratchet_tree_extension: bool = True   #: put the tree in the Welcome's GroupInfo
    handshake_wire_format: WireFormat = WireFormat.MLS_PRIVATE_MESSAGE
    max_resumption_psks: int = 32             #: past epochs whose resumption PSK we keep

    def __post_init__(self) -> None:
        if self.handshake_wire_format not in (WireFormat.MLS_PRIVATE_MESSAGE, WireFormat.MLS_PUBLIC_MESSAGE):
            raise UsageError("handshake messages are public or private messages", vid="MLS-GROUP-CONFIG")
        if self.padding_size < 0:
            raise UsageError("padding_size must be >= 0", vid="MLS-GROUP-CONFIG")


def padding_length(config: GroupConfig, plaintext_length: int, tag_length: int = 16) -> int:
    """Zero padding openmls adds to a PrivateMessageContent of ``plaintext_length`` bytes: up to
    the next multiple of ``padding_size`` counting the AEAD tag; 0 when ``padding_size`` is 0."""
    p = config.padding_size
    if p <= 0:
        return 0
    return (p - (plaintext_length + tag_length) % p) % p


# --- the state -------------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredProposal:
    """A proposal received (or sent) in the current epoch, by reference (§12.1, §5.2)."""

    ref: bytes
    proposal: Proposal
    sender: Sender
    authenticated_content: AuthenticatedContent


class GroupState:
    """One member's state of one group in one epoch (see the module docstring).

    Mutable only through :meth:`copy`-then-modify inside this module; treat it as a value."""

    __slots__ = ("suite", "context", "tree", "private", "signature_priv", "secrets", "secret_tree",
                 "interim_transcript_hash", "confirmation_tag", "proposals", "config", "active",
                 "resumption_psks", "reinit")

    def __init__(self, *, suite: CipherSuite, context: GroupContext, tree: RatchetTree,
                 private: PrivateTree, signature_priv: bytes, secrets: EpochSecrets,
                 interim_transcript_hash: bytes, confirmation_tag: bytes, config: GroupConfig,
                 secret_tree: Optional[SecretTree] = None,
                 proposals: Optional[Dict[bytes, StoredProposal]] = None, active: bool = True,
                 resumption_psks: Optional[Dict[int, bytes]] = None, reinit=None) -> None:
        self.suite = suite
        self.context = context
        self.tree = tree
        self.private = private
        self.signature_priv = bytes(signature_priv)
        self.secrets = secrets
        self.secret_tree = secret_tree if secret_tree is not None else secrets.secret_tree(
            tree.n_leaves, out_of_order_tolerance=config.out_of_order_tolerance,
            maximum_forward_distance=config.maximum_forward_distance)
        self.interim_transcript_hash = bytes(interim_transcript_hash)
        self.confirmation_tag = bytes(confirmation_tag)
        self.proposals: Dict[bytes, StoredProposal] = dict(proposals or {})
        self.config = config
        self.active = active
        self.resumption_psks: Dict[int, bytes] = dict(resumption_psks or {})
        self.resumption_psks[context.epoch] = secrets.resumption_psk.reveal()
        self.reinit = reinit  #: the committed ReInit proposal body: the group is closed (§11.2)

    # -- convenience ----------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.context.epoch

    @property
    def group_id(self) -> bytes:
        return self.context.group_id

    @property
    def own_leaf(self) -> int:
        return self.private.leaf_index

    def copy(self) -> "GroupState":
        """An independent copy (tree, private keys, secret tree and proposal store)."""
        new = GroupState.__new__(GroupState)
        for name in GroupState.__slots__:
            object.__setattr__(new, name, getattr(self, name))
        new.tree = self.tree.copy()
        new.private = self.private.copy()
        new.secret_tree = self.secret_tree.copy()
        new.proposals = dict(self.proposals)
        new.resumption_psks = dict(self.resumption_psks)
        return new

    def __repr__(self) -> str:
        return (f"GroupState(group={self.group_id.hex()}, epoch={self.epoch}, leaf={self.own_leaf}, "
                f"members={len(self.tree.members())}, active={self.active})")

    def export(self, label: Union[bytes, str], context: bytes, length: int) -> bytes:
        """RFC 9420 §8.5 MLS-Exporter of the current epoch."""
        return self.secrets.export(label, context, length)

    def signature_key_of(self, leaf: int) -> bytes:
        """The signature key of member ``leaf`` (a peer-given index: typed error if not a member)."""
        node = self.tree.leaf(leaf) if 0 <= leaf < self.tree.n_leaves else None
        if node is None:
            raise GroupStateError(f"leaf {leaf} is not a member", vid="MLS-GROUP-UNKNOWN-SENDER",
                                  where=f"leaf {leaf}")
        return node.signature_key


def copy_secret_tree(st: SecretTree) -> SecretTree:
    """An independent copy of a secret tree (:meth:`~.secret_tree.SecretTree.copy`)."""
    return st.copy()


def new_epoch_state(old: GroupState, *, context: GroupContext, tree: RatchetTree, private: PrivateTree,
                    secrets: EpochSecrets, confirmation_tag: bytes, reinit=None) -> GroupState:
    """The state of the epoch after ``old`` (RFC 9420 §8, §8.2): the new GroupContext, tree, path
    keys, secrets and confirmation tag, the interim transcript hash computed from them, ``old``'s
    signature key and config, its resumption PSKs (bounded by ``config.max_resumption_psks``)."""
    interim = interim_transcript_hash(old.suite, context.confirmed_transcript_hash, confirmation_tag)
    psks = dict(old.resumption_psks)
    while len(psks) >= max(1, old.config.max_resumption_psks):
        del psks[min(psks)]
    return GroupState(suite=old.suite, context=context, tree=tree, private=private,
                      signature_priv=old.signature_priv, secrets=secrets,
                      interim_transcript_hash=interim, confirmation_tag=confirmation_tag,
                      config=old.config, resumption_psks=psks, reinit=reinit)



def commit_psk_secret(state: GroupStateLike, psk_ids: Sequence[PreSharedKeyID],
                      psks: Optional[PskSource]) -> Optional[Secret]:
    """``psk_secret`` (§8.4) of a Commit's PSK proposals: external PSKs from ``psks`` (by
    ``psk_id``; or ``psks`` is a resolver ``PreSharedKeyID -> bytes | None``), resumption PSKs of
    this group's past epochs from the state. ``None`` if none."""
    if not psk_ids:
        return None
    pairs = []
    for pid in psk_ids:
        value = psks(pid) if callable(psks) else None  # a resolver (psk_store.PskStore.resolver)
        if value is not None:
            pass
        elif pid.psktype == PSKType.EXTERNAL and not callable(psks):
            value = (psks or {}).get(pid.psk_id)
        elif pid.psktype == PSKType.RESUMPTION and pid.psk_group_id == state.group_id:
            value = state.resumption_psks.get(pid.psk_epoch)
        if value is None:
            raise MissingKeyError("the Commit names a PSK we do not have", vid="MLS-COMMIT-PSK")
        pairs.append((pid, value))
    return psk_chain(state.suite, pairs)



def commit_confirmation_tag(ac: AuthenticatedContent) -> bytes:
    """The confirmation tag of a Commit's AuthenticatedContent (§6.1: every Commit has one; a
    missing one is a :class:`CommitError` ``MLS-CONFIRMATION-TAG-MISSING``)."""
    tag = ac.auth.confirmation_tag
    if tag is None:
        raise CommitError("a Commit without a confirmation tag", vid="MLS-CONFIRMATION-TAG-MISSING")
    return tag


def check_active(state: GroupState) -> None:
    """Refuse to send or receive in a group we left or that a ReInit closed (§11.2)."""
    if not state.active:
        raise GroupStateError("we are no longer a member of this group", vid="MLS-GROUP-INACTIVE")
    if state.reinit is not None:
        raise GroupStateError("the group was closed by a ReInit (RFC 9420 §11.2)", vid="MLS-GROUP-REINIT")


__all__ = [
    "GroupConfig", "GroupState", "GroupStateLike", "StoredProposal", "GroupStateError", "ProposalError",
    "CommitError", "UnsupportedError", "padding_length", "copy_secret_tree", "new_epoch_state",
    "commit_psk_secret", "commit_confirmation_tag", "check_active", "PskSource", "Rng",
]
