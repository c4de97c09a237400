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

The nouns (:class:`GroupState`, :class:`GroupConfig`, the errors) live in :mod:`.group_state`
and the proposal rules in :mod:`.proposal_validation` (both re-exported here); external commits
are :mod:`.external`'s, which this module hands ``new_member_commit`` messages to.

Receiving works on copies: a message that fails any check leaves the input state untouched.
Defaults follow openmls 0.8 as the reference uses it (reference-map §6): handshake messages as
PrivateMessage, no padding, out-of-order tolerance 5, maximum forward distance 1000, the
``ratchet_tree`` extension in the Welcome's GroupInfo; PublicMessage handshakes are accepted.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import DecodeError, MissingKeyError, UsageError
from ..tls import encode_vec
from . import treemath as tm
from .commit import Commit
from .extensions import Extension, ExternalSenders, check_unique, find_extension
from .external import process_external_commit, unprotect_external_commit
from .framing import (AuthenticatedContent, FramedContent, FramedContentAuthData, MLSMessage,
                      PrivateMessage, PublicMessage, Sender, WrongEpochError, WrongGroupError,
                      membership_tag, protect, sign_content, unprotect, unprotect_public_message,
                      verify_content_signature)
from .group_info import GroupInfo
from .group_state import (CommitError, GroupConfig, GroupState, GroupStateError, ProposalError, PskSource,
                          StoredProposal, UnsupportedError, check_active, commit_confirmation_tag,
                          commit_psk_secret, copy_secret_tree, new_epoch_state, padding_length)
from .key_package import KeyPackage
from .leaf_node import LeafNode
from .proposal_validation import PATH_OPTIONAL, AppliedProposals, apply_proposals
from .proposals import Add, Proposal, ProposalOrRef
from .registries import ContentType, ExtensionType, PSKType, ProposalType, SenderType, WireFormat
from .schedule import EpochSecrets, GroupContext, key_schedule, verify_confirmation_tag
from .suites import CipherSuite
from .transcript import confirmed_transcript_hash, interim_transcript_hash
from .tree import RatchetTree
from .treekem import PrivateTree, apply_update_path, create_update_path, decrypt_update_path
from .welcome import JoinedWelcome, Welcome, create_welcome, process_welcome

Rng = Callable[[int], bytes]

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
               psks: Optional[PskSource] = None, ratchet_tree: Union[RatchetTree, bytes, None] = None
               ) -> GroupState:
    """Join from a Welcome (RFC 9420 §12.4.3.1) with our KeyPackage, its init key and the leaf's
    HPKE private key. :func:`~.welcome.process_welcome` does the checks; here the path secret
    (if any) is installed on the committer's filtered direct path above us — the committer being
    the GroupInfo signer — every key we hold is checked against the tree, and the interim
    transcript hash is computed from the GroupInfo's confirmation tag."""
    return join_welcome(welcome, key_package, init_priv, leaf_priv, signature_priv, config=config,
                        psks=psks, ratchet_tree=ratchet_tree)[0]


def join_welcome(welcome: Welcome, key_package: KeyPackage, init_priv: bytes, leaf_priv: bytes,
                 signature_priv: bytes, *, config: GroupConfig = GroupConfig(),
                 psks: Optional[PskSource] = None, ratchet_tree: Union[RatchetTree, bytes, None] = None
                 ) -> Tuple[GroupState, JoinedWelcome]:
    """:func:`join_group`, also handing back what the Welcome said (:class:`~.welcome.JoinedWelcome`:
    the GroupSecrets with their PSK ids, the GroupInfo) — so a caller that checks more (the
    §11.2/§11.3 resumption rules) opens the GroupSecrets once, not twice."""
    store = psks or {}
    joined = process_welcome(welcome, key_package, init_priv,
                             psks=store if callable(store) else
                             lambda pid: store.get(pid.psk_id) if pid.psktype == PSKType.EXTERNAL else None,
                             ratchet_tree=ratchet_tree, defer_signatures=True)
    try:  # the signatures are checked on the pool's threads meanwhile
        state = _joined_state(joined, leaf_priv, signature_priv, config)
    except BaseException:
        joined.settle()  # a signature error comes first, as when checked before
        raise
    joined.settle()
    return state, joined


def _joined_state(joined: JoinedWelcome, leaf_priv: bytes, signature_priv: bytes,
                  config: GroupConfig) -> GroupState:
    if joined.tree is None:  # pragma: no cover - process_welcome needs a tree or a signer key
        raise MissingKeyError("no ratchet tree for the Welcome", vid="MLS-GROUP-NO-TREE")
    suite = joined.epoch_secrets.cipher_suite
    tree, me, gi = joined.tree, joined.own_leaf_index, joined.group_info
    assert me is not None  # found in the tree by process_welcome
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
    check_active(state)
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
    check_active(state)
    new = state.copy()
    wf = wire_format or state.config.handshake_wire_format
    content = FramedContent(state.group_id, state.epoch, Sender.member(state.own_leaf), b"",
                            ContentType.PROPOSAL, proposal.to_bytes())
    ac, msg = _frame(new, content, wf, rng=rng)
    ref = state.suite.make_proposal_ref(ac.to_bytes())
    new.proposals[ref] = StoredProposal(ref, proposal, content.sender, ac)
    return new, msg.to_bytes(), ref


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
                  by_reference: Sequence[bytes] = (), psks: Optional[PskSource] = None,
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
    check_active(state)
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
    psk_secret = commit_psk_secret(state, applied.psk_ids, psks)
    epoch: List[Tuple[GroupContext, EpochSecrets]] = []  # what tag_for computed, for below

    def tag_for(ac: AuthenticatedContent) -> bytes:
        cth = confirmed_transcript_hash(suite, state.interim_transcript_hash, ac)
        gc = replace(path.group_context, confirmed_transcript_hash=cth)
        secrets = key_schedule(suite, state.secrets.init_secret, path.commit_secret, gc, psk_secret)
        epoch.append((gc, secrets))
        return secrets.confirmation_tag(cth)

    ac, msg = _frame(work, content, wf, tag_for, rng=rng)
    gc, secrets = epoch[-1]
    tag = commit_confirmation_tag(ac)
    new_state = new_epoch_state(state, context=gc, tree=path.tree, private=path.private,
                                secrets=secrets, confirmation_tag=tag, reinit=applied.reinit)
    welcome_bytes = None
    gi = None
    if applied.added:
        exts_gi = ((path.tree.to_extension_body().to_extension(),)
                   if state.config.use_ratchet_tree_extension else ())
        gi = GroupInfo(gc, exts_gi, tag, me).signed(state.signature_priv)
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
        st, idx = c.sender.sender_type, c.sender.index
        if st == SenderType.MEMBER:
            assert idx is not None  # member and external senders have an index (Sender.__post_init__)
            pub = work.signature_key_of(idx)
            return unprotect_public_message(suite, body, pub, work.context,
                                            membership_key=work.secrets.membership_key)
        if st == SenderType.EXTERNAL:
            ext = find_extension(work.context.extensions, ExtensionType.EXTERNAL_SENDERS)
            senders = () if ext is None else ExternalSenders.from_bytes(ext.extension_data).senders
            assert idx is not None
            if idx >= len(senders):
                raise GroupStateError(f"no external sender {idx}", vid="MLS-GROUP-UNKNOWN-SENDER")
            if c.content_type != ContentType.PROPOSAL:
                raise CommitError("external senders only send proposals", vid="MLS-EXTERNAL-CONTENT")
            return unprotect_public_message(suite, body, senders[idx].signature_key, work.context)
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


def process_message(state: GroupState, data: Union[bytes, MLSMessage], *, psks: Optional[PskSource] = None,
                    now: Optional[int] = None) -> Processed:
    """Handle one received MLSMessage (RFC 9420 §6, §12). ``state`` is never modified."""
    check_active(state)
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


def _process_commit(state: GroupState, ac: AuthenticatedContent, *, psks: Optional[PskSource],
                    now: Optional[int]) -> Tuple[GroupState, bool]:
    suite = state.suite
    c = ac.content
    if c.sender.sender_type == SenderType.NEW_MEMBER_COMMIT:  # §12.4.3.2, external.py
        return process_external_commit(state, ac, psks=psks, now=now)
    if c.sender.sender_type != SenderType.MEMBER:
        raise UnsupportedError("only member commits are supported", vid="MLS-UNSUPPORTED-SENDER")
    committer = c.sender.index
    assert committer is not None  # a member sender has an index
    commit = Commit.from_bytes(c.body)
    pairs: List[Tuple[Proposal, Sender]] = []
    for por in commit.proposals:
        if por.proposal is not None:
            if por.proposal.proposal_type in (ProposalType.UPDATE,):
                raise ProposalError("an Update cannot be committed inline", vid="MLS-PROPOSAL-UPDATE-INLINE")
            pairs.append((por.proposal, c.sender))
        else:
            ref = por.reference
            assert ref is not None  # ProposalOrRef holds exactly one of the two
            stored = state.proposals.get(ref)
            if stored is None:
                raise ProposalError(f"the Commit refers to an unknown proposal {ref.hex()}",
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
    psk_secret = commit_psk_secret(state, applied.psk_ids, psks)
    secrets = key_schedule(suite, state.secrets.init_secret, commit_secret, gc, psk_secret)
    tag = commit_confirmation_tag(ac)
    verify_confirmation_tag(suite, secrets.confirmation_key, cth, tag)
    return new_epoch_state(state, context=gc, tree=new_tree, private=private, secrets=secrets,
                           confirmation_tag=tag, reinit=applied.reinit), False


__all__ = [
    "GroupConfig", "GroupState", "StoredProposal", "AppliedProposals", "CommitResult", "Processed",
    "GroupStateError", "ProposalError", "CommitError", "UnsupportedError", "create_group", "join_group",
    "join_welcome",
    "apply_proposals", "create_commit", "process_message", "create_application_message",
    "create_proposal_message", "decode_message", "padding_length", "PATH_OPTIONAL", "copy_secret_tree",
    "PskSource",
]
