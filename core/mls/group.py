"""The MLS group state machine (RFC 9420 §8, §11, §12): one member's view of one group.

A :class:`GroupState` holds everything a member keeps for the current epoch:

* the public state — ``GroupContext`` (§8.1) and the ratchet tree (§7);
* the private state — the leaf's and path nodes' HPKE keys (:class:`~.treekem.PrivateTree`) and
  the signature key;
* the epoch's secrets (:class:`~.schedule.EpochSecrets`, §8), its secret tree (§9), the interim
  transcript hash and confirmation tag (§8.2), the proposals received in this epoch (§12.1).

The functions below never change a state in place unless they say so; the ones that move to a
new epoch return a *new* state, so a caller can stage it and merge later (as openmls does with a
``StagedCommit``), or drop it:

* :func:`create_group` — a one-member group at epoch 0 (§11);
* :func:`join_group` — from a Welcome (§12.4.3.1), deriving the path secrets above our leaf and
  the interim transcript hash;
* :func:`create_commit` — a Commit over inline proposals with a full UpdatePath (§12.4.1,
  §12.4.2), the next epoch's state and, for Adds, a Welcome (§12.4.3);
* :func:`process_message` — unprotect a PublicMessage/PrivateMessage (§6.2, §6.3), verify the
  sender, and for a Commit validate the proposals (§12.2), apply them (§12.3), process the
  UpdatePath (§12.4.2), run the key schedule (§8) and check the confirmation tag (§6.1);
* :func:`create_application_message` — application data as a PrivateMessage (§6.3).

Receiving works on copies: a message that fails any check leaves the input state untouched.
Defaults follow openmls 0.8 as the reference uses it (reference-map §6): handshake messages as
PrivateMessage, no padding, out-of-order tolerance 5, maximum forward distance 1000, the
``ratchet_tree`` extension in the Welcome's GroupInfo; PublicMessage handshakes are accepted.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import DecodeError, MissingKeyError, ProtocolError, StateError, UsageError
from ..tls import encode_vec
from . import treemath as tm
from .commit import Commit
from .extensions import Extension, ExternalSenders, RequiredCapabilities, check_unique, find_extension
from .framing import (AuthenticatedContent, FramedContent, FramedContentAuthData, MLSMessage,
                      PrivateMessage, PublicMessage, Sender, WrongEpochError, WrongGroupError,
                      membership_tag, protect, sign_content, unprotect, unprotect_public_message,
                      verify_content_signature)
from .group_info import GroupInfo
from .key_package import KeyPackage, check_required_capabilities
from .leaf_node import LeafNode
from .proposals import Add, Proposal, ProposalOrRef
from .psk import PreSharedKeyID
from .psk import psk_secret as _psk_chain
from .registries import (ContentType, ExtensionType, LeafNodeSource, ProposalType, PSKType,
                         SenderType, WireFormat)
from .schedule import (EpochSecrets, GroupContext, key_schedule, verify_confirmation_tag)
from .secret_tree import (DEFAULT_MAXIMUM_FORWARD_DISTANCE, DEFAULT_OUT_OF_ORDER_TOLERANCE,
                          SecretTree)
from .suites import CipherSuite
from .transcript import confirmed_transcript_hash, interim_transcript_hash
from .tree import RatchetTree, TreeValidationError
from .treekem import PrivateTree, apply_update_path, create_update_path, decrypt_update_path
from .welcome import Welcome, create_welcome, process_welcome

Rng = Callable[[int], bytes]
PskStore = Union[Mapping[bytes, bytes], Callable[[PreSharedKeyID], Optional[bytes]]]  # see psk_store.py


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
        new.secret_tree = copy_secret_tree(self.secret_tree)
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
        if not 0 <= leaf < self.tree.n_leaves or self.tree.leaf(leaf) is None:
            raise GroupStateError(f"leaf {leaf} is not a member", vid="MLS-GROUP-UNKNOWN-SENDER",
                                  where=f"leaf {leaf}")
        return self.tree.leaf(leaf).signature_key


def copy_secret_tree(st: SecretTree) -> SecretTree:
    """An independent copy of a secret tree (node secrets and ratchets; the immutable keys are
    shared), so that decrypting on the copy leaves the original untouched."""
    new = copy.copy(st)
    new._nodes = dict(st._nodes)
    ratchets = {}
    for k, r in st._ratchets.items():
        r2 = copy.copy(r)
        r2.past = dict(r.past)
        ratchets[k] = r2
    new._ratchets = ratchets
    return new


def _new_epoch_state(old: GroupState, *, context: GroupContext, tree: RatchetTree, private: PrivateTree,
                     secrets: EpochSecrets, confirmation_tag: bytes, reinit=None) -> GroupState:
    interim = interim_transcript_hash(old.suite, context.confirmed_transcript_hash, confirmation_tag)
    psks = dict(old.resumption_psks)
    while len(psks) >= max(1, old.config.max_resumption_psks):
        del psks[min(psks)]
    return GroupState(suite=old.suite, context=context, tree=tree, private=private,
                      signature_priv=old.signature_priv, secrets=secrets,
                      interim_transcript_hash=interim, confirmation_tag=confirmation_tag,
                      config=old.config, resumption_psks=psks, reinit=reinit)


# --- creating and joining --------------------------------------------------------------------

def create_group(suite: Union[CipherSuite, int], leaf_node: LeafNode, leaf_priv: bytes,
                 signature_priv: bytes, *, group_id: Optional[bytes] = None,
                 extensions: Sequence[Extension] = (), config: GroupConfig = GroupConfig(),
                 rng: Optional[Rng] = None) -> GroupState:
    """A new one-member group at epoch 0 (RFC 9420 §11): our leaf at index 0, an empty confirmed
    transcript hash, the key schedule run from a fresh random ``init_secret`` and a zero commit
    secret, the interim transcript hash from the first confirmation tag."""
    suite = suite if isinstance(suite, CipherSuite) else CipherSuite.get(suite)
    rng = rng or os.urandom
    gid = bytes(group_id) if group_id is not None else rng(16)
    check_unique(extensions, "GroupContext.extensions")
    tree = RatchetTree.create(suite, leaf_node)
    gc = GroupContext(int(suite.id), gid, 0, tree.tree_hash(), b"", tuple(extensions))
    secrets = key_schedule(suite, rng(suite.hash_length), None, gc)
    tag = secrets.confirmation_tag(b"")
    return GroupState(suite=suite, context=gc, tree=tree, private=PrivateTree(suite, 0, leaf_priv),
                      signature_priv=signature_priv, secrets=secrets,
                      interim_transcript_hash=interim_transcript_hash(suite, b"", tag),
                      confirmation_tag=tag, config=config)


def join_group(welcome: Welcome, key_package: KeyPackage, init_priv: bytes, leaf_priv: bytes,
               signature_priv: bytes, *, config: GroupConfig = GroupConfig(),
               psks: Optional[PskStore] = None, ratchet_tree: Union[RatchetTree, bytes, None] = None
               ) -> GroupState:
    """Join from a Welcome (RFC 9420 §12.4.3.1) with our KeyPackage, its init key and the leaf's
    HPKE private key. :func:`~.welcome.process_welcome` does the checks; here the path secret
    (if any) is installed on the committer's filtered direct path above us — the committer being
    the GroupInfo signer — every key we hold is checked against the tree, and the interim
    transcript hash is computed from the GroupInfo's confirmation tag."""
    store = psks or {}
    joined = process_welcome(welcome, key_package, init_priv,
                             psks=store if callable(store) else
                             lambda pid: store.get(pid.psk_id) if pid.psktype == PSKType.EXTERNAL else None,
                             ratchet_tree=ratchet_tree)
    if joined.tree is None:  # pragma: no cover - process_welcome needs a tree or a signer key
        raise MissingKeyError("no ratchet tree for the Welcome", vid="MLS-GROUP-NO-TREE")
    suite = joined.epoch_secrets.cipher_suite
    tree, me, gi = joined.tree, joined.own_leaf_index, joined.group_info
    if gi.signer == me:
        raise CommitError("the GroupInfo claims to be signed by the joiner", vid="MLS-WELCOME-SIGNER")
    private = PrivateTree(suite, me, leaf_priv)
    if joined.path_secret is not None:
        private.install_path_secret(tree, gi.signer, joined.path_secret.reveal())
    private.check_against(tree)
    gc = joined.group_context
    return GroupState(suite=suite, context=gc, tree=tree, private=private, signature_priv=signature_priv,
                      secrets=joined.epoch_secrets,
                      interim_transcript_hash=interim_transcript_hash(
                          suite, gc.confirmed_transcript_hash, gi.confirmation_tag),
                      confirmation_tag=gi.confirmation_tag, config=config)


# --- proposals (§12.1, §12.2, §12.3) ---------------------------------------------------------

#: Proposal types a Commit may cover without an UpdatePath (§12.4).
PATH_OPTIONAL = frozenset({ProposalType.ADD, ProposalType.PSK, ProposalType.REINIT})


@dataclass
class AppliedProposals:
    """The result of applying a Commit's proposals to a copy of the tree (§12.3)."""

    tree: RatchetTree
    added: List[Tuple[int, KeyPackage]] = field(default_factory=list)
    removed: List[int] = field(default_factory=list)
    updated: List[int] = field(default_factory=list)
    psk_ids: List[PreSharedKeyID] = field(default_factory=list)
    extensions: Optional[Tuple[Extension, ...]] = None
    path_required: bool = False
    reinit: Optional[object] = None          #: the ReInit body (reinit.py)
    external_init: Optional[object] = None   #: the ExternalInit body (external.py)


def apply_proposals(state: GroupState, proposals: Sequence[Tuple[Proposal, Sender]], committer: Optional[int],
                    *, now: Optional[int] = None) -> AppliedProposals:
    """Validate (§12.2) and apply (§12.3) ``(proposal, proposer)`` pairs to a copy of the tree:
    GroupContextExtensions, then Updates, Removes, Adds; PSKs are collected in order.
    ``committer`` is the committing leaf (``None`` for an external commit). ``now`` (Unix seconds)
    enables the KeyPackage lifetime check of Adds."""
    tree = state.tree.copy()
    out = AppliedProposals(tree, path_required=not proposals)
    by_type: Dict[ProposalType, List[Tuple[Proposal, Sender]]] = {}
    for p, s in proposals:
        by_type.setdefault(p.proposal_type, []).append((p, s))
        if p.proposal_type not in PATH_OPTIONAL:
            out.path_required = True
    if ProposalType.REINIT in by_type or ProposalType.EXTERNAL_INIT in by_type:
        from .reinit import check_special_proposals  # §12.1.5, §12.1.6, §12.2
        out.reinit, out.external_init = check_special_proposals(state, by_type, committer, len(proposals))
    gce = by_type.get(ProposalType.GROUP_CONTEXT_EXTENSIONS, [])
    if len(gce) > 1:
        raise ProposalError("more than one GroupContextExtensions proposal", vid="MLS-PROPOSAL-GCE-MULTIPLE")
    required = None
    if gce:
        exts = gce[0][0].body.extensions
        try:
            check_unique(exts, "GroupContextExtensions")
        except DecodeError as exc:
            raise ProposalError(exc.message, vid="MLS-PROPOSAL-GCE-DUPLICATE") from None
        out.extensions = tuple(exts)
        rc = find_extension(exts, ExtensionType.REQUIRED_CAPABILITIES)
        required = None if rc is None else RequiredCapabilities.from_bytes(rc.extension_data)
    else:
        rc = find_extension(state.context.extensions, ExtensionType.REQUIRED_CAPABILITIES)
        required = None if rc is None else RequiredCapabilities.from_bytes(rc.extension_data)

    touched = set()
    for p, s in by_type.get(ProposalType.UPDATE, []):
        if s.sender_type != SenderType.MEMBER:
            raise ProposalError("an Update must come from a member", vid="MLS-PROPOSAL-UPDATE-SENDER")
        if s.index == committer:
            raise ProposalError("a committer cannot commit its own Update", vid="MLS-PROPOSAL-UPDATE-COMMITTER")
        if s.index in touched:
            raise ProposalError(f"two Updates/Removes for leaf {s.index}", vid="MLS-PROPOSAL-DUPLICATE-LEAF")
        leaf = p.body.leaf_node
        if leaf.leaf_node_source != LeafNodeSource.UPDATE:
            raise ProposalError("Update leaf source is not update", vid="MLS-PROPOSAL-UPDATE-SOURCE")
        try:
            leaf.verify(state.suite, group_id=state.group_id, leaf_index=s.index)
        except (ProtocolError) as exc:
            raise ProposalError(f"Update leaf: {exc.message}", vid="MLS-PROPOSAL-UPDATE-SIGNATURE") from exc
        touched.add(s.index)
        tree.update_leaf(s.index, leaf)
        out.updated.append(s.index)
    for p, s in by_type.get(ProposalType.REMOVE, []):
        r = p.body.removed
        if r == committer:
            raise ProposalError("a committer cannot remove itself", vid="MLS-PROPOSAL-REMOVE-COMMITTER")
        if r in touched:
            raise ProposalError(f"two Updates/Removes for leaf {r}", vid="MLS-PROPOSAL-DUPLICATE-LEAF")
        if not 0 <= r < tree.n_leaves or tree.leaf(r) is None:
            raise ProposalError(f"Remove names leaf {r}, which is not a member", vid="MLS-PROPOSAL-REMOVE-BLANK",
                                where=f"leaf {r}")
        touched.add(r)
        tree.remove_leaf(r)
        out.removed.append(r)
    for p, s in by_type.get(ProposalType.ADD, []):
        kp = p.body.key_package
        try:
            kp.validate(now, cipher_suite=int(state.suite.id), required_capabilities=required)
        except ProtocolError as exc:
            raise ProposalError(f"Add: {exc.message}", vid="MLS-PROPOSAL-ADD-KEY-PACKAGE") from exc
        out.added.append((tree.add_leaf(kp.leaf_node), kp))
    for p, s in by_type.get(ProposalType.PSK, []):
        from .psk_store import check_psk_id  # §12.1.4
        check_psk_id(state.suite, p.body.psk, creating_group=state.epoch == 0)
        out.psk_ids.append(p.body.psk)
    if len(set(out.psk_ids)) != len(out.psk_ids):
        raise ProposalError("the same PSK is proposed twice", vid="MLS-PROPOSAL-PSK-DUPLICATE")
    if out.added or out.updated:
        try:
            tree.verify_unique_keys()
        except TreeValidationError as exc:
            raise ProposalError(exc.message, vid="MLS-PROPOSAL-DUPLICATE-KEY") from exc
    if required is not None and gce:
        for li, leaf in tree.leaves():
            try:
                check_required_capabilities(leaf, required)
            except ProtocolError as exc:
                raise ProposalError(f"leaf {li}: {exc.message}", vid="MLS-PROPOSAL-GCE-CAPABILITIES") from exc
    return out


def _commit_psk_secret(state: GroupState, psk_ids: Sequence[PreSharedKeyID], psks: Optional[PskStore]):
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
    return _psk_chain(state.suite, pairs)


# --- framing helpers -------------------------------------------------------------------------

def _frame(state: GroupState, content: FramedContent, wire_format: WireFormat,
           confirmation_tag_fn: Optional[Callable[[AuthenticatedContent], bytes]] = None,
           reuse_guard: Optional[bytes] = None,
           rng: Optional[Rng] = None) -> Tuple[AuthenticatedContent, MLSMessage]:
    """Sign ``content`` with the current GroupContext and wrap it as ``wire_format``.

    A PrivateMessage's reuse guard (§6.3.1) is ``reuse_guard`` when given, else drawn from the
    injected ``rng`` (``os.urandom`` when none), so seeded runs give identical bytes.

    For a commit, ``confirmation_tag_fn(ac_without_tag)`` supplies the tag (it depends on the
    signature through the confirmed transcript hash). Uses ``state.secret_tree`` (mutated) for
    PrivateMessages."""
    suite = state.suite
    sig = sign_content(suite, state.signature_priv, wire_format, content, state.context)
    tag = None
    if confirmation_tag_fn is not None:
        tag = confirmation_tag_fn(AuthenticatedContent(wire_format, content, FramedContentAuthData(sig, None)))
    auth = FramedContentAuthData(sig, tag)
    ac = AuthenticatedContent(wire_format, content, auth)
    if wire_format == WireFormat.MLS_PUBLIC_MESSAGE:
        mtag = membership_tag(suite, state.secrets.membership_key, content, auth, state.context)
        return ac, MLSMessage.public(PublicMessage(content, auth, mtag))
    body_len = len(auth.to_bytes(content.content_type)) + (
        len(encode_vec(content.body)) if content.content_type == ContentType.APPLICATION else len(content.body))
    pad = padding_length(state.config, body_len)
    msg = protect(suite, content, auth, state.secret_tree, state.secrets.sender_data_secret,
                  padding=pad, reuse_guard=reuse_guard if reuse_guard is not None else (rng or os.urandom)(4))
    return ac, MLSMessage.private(msg)


def create_application_message(state: GroupState, data: bytes, *, authenticated_data: bytes = b"",
                               reuse_guard: Optional[bytes] = None,
                               rng: Optional[Rng] = None) -> Tuple[GroupState, bytes]:
    """Application data as a PrivateMessage (§6.3). Returns the new state (its application
    ratchet advanced) and the MLSMessage bytes."""
    _check_active(state)
    new = state.copy()
    content = FramedContent(state.group_id, state.epoch, Sender.member(state.own_leaf),
                            bytes(authenticated_data), ContentType.APPLICATION, bytes(data))
    _, msg = _frame(new, content, WireFormat.MLS_PRIVATE_MESSAGE, reuse_guard=reuse_guard, rng=rng)
    return new, msg.to_bytes()


def create_proposal_message(state: GroupState, proposal: Proposal, *,
                            wire_format: Optional[WireFormat] = None,
                            rng: Optional[Rng] = None) -> Tuple[GroupState, bytes, bytes]:
    """A standalone proposal (§12.1) from us; returns (new state, message bytes, proposal ref).
    The proposal is stored for a later Commit by reference."""
    _check_active(state)
    new = state.copy()
    wf = wire_format or state.config.handshake_wire_format
    content = FramedContent(state.group_id, state.epoch, Sender.member(state.own_leaf), b"",
                            ContentType.PROPOSAL, proposal.to_bytes())
    ac, msg = _frame(new, content, wf, rng=rng)
    ref = state.suite.make_proposal_ref(ac.to_bytes())
    new.proposals[ref] = StoredProposal(ref, proposal, content.sender, ac)
    return new, msg.to_bytes(), ref


def _check_active(state: GroupState) -> None:
    if not state.active:
        raise GroupStateError("we are no longer a member of this group", vid="MLS-GROUP-INACTIVE")
    if state.reinit is not None:
        raise GroupStateError("the group was closed by a ReInit (RFC 9420 §11.2)", vid="MLS-GROUP-REINIT")


# --- commits we create (§12.4.1) ---------------------------------------------------------------

@dataclass(frozen=True)
class CommitResult:
    """A Commit we created: the message, the Welcome for the added members, the next state."""

    message: bytes
    welcome: Optional[bytes]
    new_state: GroupState
    authenticated_content: AuthenticatedContent
    group_info: Optional[GroupInfo]
    sent_state: Optional[GroupState] = None  #: the current epoch after sending (ratchet advanced)


def create_commit(state: GroupState, proposals: Sequence[Proposal] = (), *,
                  by_reference: Sequence[bytes] = (), psks: Optional[PskStore] = None,
                  rng: Optional[Rng] = None, wire_format: Optional[WireFormat] = None,
                  now: Optional[int] = None) -> CommitResult:
    """Commit ``proposals`` (inline) and the stored proposals ``by_reference`` with a full
    UpdatePath (§12.4.1):

    1. apply the proposals to a copy of the tree (§12.3);
    2. new path secrets, HPKE-encrypted to the copath resolutions under the provisional
       GroupContext (epoch + 1, new tree hash, old confirmed transcript hash) — new members excluded;
    3. sign the FramedContent with the *current* GroupContext, compute the confirmed transcript
       hash, the new GroupContext, the key schedule (``init_secret`` of this epoch, the commit
       secret, PSKs) and the confirmation tag;
    4. protect with this epoch's keys (PrivateMessage by default);
    5. a Welcome (GroupInfo signed by us, with the ratchet tree extension) for the Adds, each new
       member getting the path secret of the lowest path node above it.

    ``state`` is not modified: ``sent_state`` is the current epoch with the sender's handshake
    ratchet advanced — keep it if the commit is dropped, so no key is used twice."""
    _check_active(state)
    suite = state.suite
    rng = rng or os.urandom
    wf = wire_format or state.config.handshake_wire_format
    me = state.own_leaf
    work = state.copy()
    pairs: List[Tuple[Proposal, Sender]] = []
    for ref in by_reference:
        stored = state.proposals.get(bytes(ref))
        if stored is None:
            raise UsageError(f"no stored proposal {bytes(ref).hex()}", vid="MLS-COMMIT-UNKNOWN-REF")
        pairs.append((stored.proposal, stored.sender))
    pairs += [(p, Sender.member(me)) for p in proposals]
    applied = apply_proposals(state, pairs, me, now=now)
    exts = applied.extensions if applied.extensions is not None else state.context.extensions
    provisional = GroupContext(int(suite.id), state.group_id, state.epoch + 1, b"",
                               state.context.confirmed_transcript_hash, exts)
    path = create_update_path(applied.tree, me, provisional, state.signature_priv,
                              exclude=[i for i, _ in applied.added], rng=rng)
    commit = Commit(tuple([ProposalOrRef(reference=bytes(r)) for r in by_reference]
                          + [ProposalOrRef(proposal=p) for p in proposals]), path.update_path)
    content = FramedContent(state.group_id, state.epoch, Sender.member(me), b"", ContentType.COMMIT,
                            commit.to_bytes())
    psk_secret = _commit_psk_secret(state, applied.psk_ids, psks)
    box: Dict[str, object] = {}

    def tag_for(ac: AuthenticatedContent) -> bytes:
        cth = confirmed_transcript_hash(suite, state.interim_transcript_hash, ac)
        gc = replace(path.group_context, confirmed_transcript_hash=cth)
        secrets = key_schedule(suite, state.secrets.init_secret, path.commit_secret, gc, psk_secret)
        box["gc"], box["secrets"] = gc, secrets
        return secrets.confirmation_tag(cth)

    ac, msg = _frame(work, content, wf, tag_for, rng=rng)
    gc: GroupContext = box["gc"]  # type: ignore[assignment]
    secrets: EpochSecrets = box["secrets"]  # type: ignore[assignment]
    new_state = _new_epoch_state(state, context=gc, tree=path.tree, private=path.private,
                                 secrets=secrets, confirmation_tag=ac.auth.confirmation_tag,
                                 reinit=applied.reinit)
    welcome_bytes = None
    gi = None
    if applied.added:
        exts_gi = ((path.tree.to_extension_body().to_extension(),)
                   if state.config.use_ratchet_tree_extension else ())
        gi = GroupInfo(gc, exts_gi, ac.auth.confirmation_tag, me).signed(state.signature_priv)
        fdp = path.tree.filtered_direct_path(me)
        members = []
        for li, kp in applied.added:
            node = next((p for p in fdp if tm.is_ancestor(p, 2 * li)), None)
            ps = None if node is None else path.private.path_secret(node)
            members.append((kp, None if ps is None else ps.reveal()))
        welcome = create_welcome(gi, secrets.joiner_secret, members, psks=tuple(applied.psk_ids),
                                 psk_secret=psk_secret, rng=rng)
        welcome_bytes = MLSMessage(WireFormat.MLS_WELCOME, welcome).to_bytes()
    return CommitResult(msg.to_bytes(), welcome_bytes, new_state, ac, gi, work)


# --- receiving (§6, §12.4.2) ---------------------------------------------------------------------

@dataclass(frozen=True)
class Processed:
    """The outcome of :func:`process_message`.

    ``kind``: ``"application"``, ``"proposal"``, ``"external"`` (a new member's own Add
    proposal, §12.1.8 — openmls' ExternalJoinProposal) or ``"commit"``. ``state`` is the state to keep
    now (ratchets advanced, proposal stored); for a commit, ``staged`` is the next epoch's state
    (merge it to move on) and ``removed_us`` says the commit removes this member."""

    kind: str
    state: GroupState
    authenticated_content: AuthenticatedContent
    sender: Sender
    application_data: Optional[bytes] = None
    proposal: Optional[Proposal] = None
    proposal_ref: Optional[bytes] = None
    staged: Optional[GroupState] = None
    removed_us: bool = False
    welcome_members: Tuple[int, ...] = ()


def decode_message(data: bytes) -> MLSMessage:
    """An MLSMessage from bytes; any malformation is a :class:`DecodeError`."""
    try:
        return MLSMessage.from_bytes(bytes(data))
    except (DecodeError, UsageError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"malformed MLSMessage: {exc.message}", vid="MLS-MESSAGE-MALFORMED") from exc


def _unprotect(work: GroupState, msg: MLSMessage) -> AuthenticatedContent:
    suite = work.suite
    body = msg.message
    if isinstance(body, PublicMessage):
        c = body.content
        if c.group_id != work.group_id:
            raise WrongGroupError(f"message for group {c.group_id.hex()}")
        if c.epoch != work.epoch:
            raise WrongEpochError(f"message for epoch {c.epoch}, current is {work.epoch}", where=c.epoch)
        st = c.sender.sender_type
        if st == SenderType.MEMBER:
            pub = work.signature_key_of(c.sender.index)
            return unprotect_public_message(suite, body, pub, work.context,
                                            membership_key=work.secrets.membership_key)
        if st == SenderType.EXTERNAL:
            ext = find_extension(work.context.extensions, ExtensionType.EXTERNAL_SENDERS)
            senders = () if ext is None else ExternalSenders.from_bytes(ext.extension_data).senders
            if c.sender.index >= len(senders):
                raise GroupStateError(f"no external sender {c.sender.index}", vid="MLS-GROUP-UNKNOWN-SENDER")
            if c.content_type != ContentType.PROPOSAL:
                raise CommitError("external senders only send proposals", vid="MLS-EXTERNAL-CONTENT")
            return unprotect_public_message(suite, body, senders[c.sender.index].signature_key, work.context)
        if st == SenderType.NEW_MEMBER_PROPOSAL:
            # §12.1.8: a would-be member proposes its own Add, signed with its KeyPackage's key
            if c.content_type != ContentType.PROPOSAL:
                raise CommitError("new_member_proposal senders only send proposals",
                                  vid="MLS-EXTERNAL-CONTENT")
            proposal = Proposal.from_bytes(c.body)
            if not isinstance(proposal.body, Add):
                raise ProposalError("a new member can only propose its own Add",
                                    vid="MLS-PROPOSAL-NEW-MEMBER")
            return unprotect_public_message(suite, body, proposal.body.key_package.leaf_node.signature_key,
                                            work.context)
        if st == SenderType.NEW_MEMBER_COMMIT:  # §12.4.3.2, external.py
            from .external import unprotect_external_commit
            return unprotect_external_commit(work, body)
        raise UnsupportedError(f"{SenderType(st).name} senders are not supported", vid="MLS-UNSUPPORTED-SENDER")
    if isinstance(body, PrivateMessage):
        if body.group_id != work.group_id:
            raise WrongGroupError(f"message for group {body.group_id.hex()}")
        if body.epoch != work.epoch:
            raise WrongEpochError(f"message for epoch {body.epoch}, current is {work.epoch}", where=body.epoch)
        ac, sd = unprotect(suite, body, work.secret_tree, work.secrets.sender_data_secret,
                           group_context=work.context)
        verify_content_signature(suite, work.signature_key_of(sd.leaf_index), ac, work.context)
        return ac
    raise GroupStateError(f"a {WireFormat(msg.wire_format).name} is not a group message",
                          vid="MLS-GROUP-WIRE-FORMAT")


def process_message(state: GroupState, data: Union[bytes, MLSMessage], *, psks: Optional[PskStore] = None,
                    now: Optional[int] = None) -> Processed:
    """Handle one received MLSMessage (RFC 9420 §6, §12). ``state`` is never modified."""
    _check_active(state)
    msg = data if isinstance(data, MLSMessage) else decode_message(data)
    work = state.copy()
    ac = _unprotect(work, msg)
    c = ac.content
    if c.sender.sender_type == SenderType.MEMBER and c.sender.index == state.own_leaf:
        raise GroupStateError("cannot process a message we sent", vid="MLS-GROUP-OWN-MESSAGE")
    if c.content_type == ContentType.APPLICATION:
        return Processed("application", work, ac, c.sender, application_data=c.body)
    if c.content_type == ContentType.PROPOSAL:
        proposal = Proposal.from_bytes(c.body)
        ref = state.suite.make_proposal_ref(ac.to_bytes())
        work.proposals[ref] = StoredProposal(ref, proposal, c.sender, ac)
        kind = "external" if c.sender.sender_type == SenderType.NEW_MEMBER_PROPOSAL else "proposal"
        return Processed(kind, work, ac, c.sender, proposal=proposal, proposal_ref=ref)
    staged, removed = _process_commit(work, ac, psks=psks, now=now)
    return Processed("commit", work, ac, c.sender, staged=staged, removed_us=removed)


def _process_commit(state: GroupState, ac: AuthenticatedContent, *, psks: Optional[PskStore],
                    now: Optional[int]) -> Tuple[GroupState, bool]:
    suite = state.suite
    c = ac.content
    if c.sender.sender_type == SenderType.NEW_MEMBER_COMMIT:  # §12.4.3.2, external.py
        from .external import process_external_commit
        return process_external_commit(state, ac, psks=psks, now=now)
    if c.sender.sender_type != SenderType.MEMBER:
        raise UnsupportedError("only member commits are supported", vid="MLS-UNSUPPORTED-SENDER")
    committer = c.sender.index
    commit = Commit.from_bytes(c.body)
    pairs: List[Tuple[Proposal, Sender]] = []
    for por in commit.proposals:
        if por.proposal is not None:
            if por.proposal.proposal_type in (ProposalType.UPDATE,):
                raise ProposalError("an Update cannot be committed inline", vid="MLS-PROPOSAL-UPDATE-INLINE")
            pairs.append((por.proposal, c.sender))
        else:
            stored = state.proposals.get(por.reference)
            if stored is None:
                raise ProposalError(f"the Commit refers to an unknown proposal {por.reference.hex()}",
                                    vid="MLS-PROPOSAL-UNKNOWN-REF")
            pairs.append((stored.proposal, stored.sender))
    applied = apply_proposals(state, pairs, committer, now=now)
    if applied.path_required and commit.path is None:
        raise CommitError("this Commit needs an UpdatePath", vid="MLS-COMMIT-PATH-REQUIRED")
    exts = applied.extensions if applied.extensions is not None else state.context.extensions
    provisional = GroupContext(int(suite.id), state.group_id, state.epoch + 1, b"",
                               state.context.confirmed_transcript_hash, exts)
    me = state.own_leaf
    removed_us = me in applied.removed
    exclude = [i for i, _ in applied.added]
    if commit.path is not None:
        path_applied = apply_update_path(applied.tree, committer, commit.path, state.group_id)
        new_tree = path_applied.new_tree
        if removed_us:
            commit_secret, private = None, state.private
        else:
            res = decrypt_update_path(path_applied, provisional, state.private, exclude=exclude)
            commit_secret, private = res.commit_secret, res.private
    else:
        new_tree = applied.tree
        private = state.private.copy()
        private.prune(new_tree, check_keys=False)
        commit_secret = None
    provisional = replace(provisional, tree_hash=new_tree.tree_hash())
    cth = confirmed_transcript_hash(suite, state.interim_transcript_hash, ac)
    gc = replace(provisional, confirmed_transcript_hash=cth)
    if removed_us:
        inactive = state.copy()
        inactive.active = False
        inactive.tree = new_tree
        return inactive, True
    psk_secret = _commit_psk_secret(state, applied.psk_ids, psks)
    secrets = key_schedule(suite, state.secrets.init_secret, commit_secret, gc, psk_secret)
    verify_confirmation_tag(suite, secrets.confirmation_key, cth, ac.auth.confirmation_tag)
    return _new_epoch_state(state, context=gc, tree=new_tree, private=private, secrets=secrets,
                            confirmation_tag=ac.auth.confirmation_tag, reinit=applied.reinit), False


__all__ = [
    "GroupConfig", "GroupState", "StoredProposal", "AppliedProposals", "CommitResult", "Processed",
    "GroupStateError", "ProposalError", "CommitError", "UnsupportedError", "create_group", "join_group",
    "apply_proposals", "create_commit", "process_message", "create_application_message",
    "create_proposal_message", "decode_message", "padding_length", "PATH_OPTIONAL",
]
