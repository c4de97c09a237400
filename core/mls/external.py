"""External joins: GroupInfo with ``external_pub``, ExternalInit and external commits
(RFC 9420 §8.3, §12.1.6, §12.2, §12.4.3.2).

A member publishes a signed GroupInfo carrying the ``external_pub`` extension — the HPKE public
key derived from the epoch's ``external_secret`` (§8.3) — and, here by default, the
``ratchet_tree`` extension (:func:`export_group_info`). Anyone holding it can join without a
Welcome by sending an *external commit* (:func:`create_external_commit`):

1. ``kem_output, ctx = SetupBaseS(external_pub, "")`` and
   ``init_secret = ctx.export("MLS 1.0 external init secret", Nh)`` (§8.3) — this replaces the
   previous epoch's ``init_secret`` in the key schedule;
2. the Commit covers, all inline (§12.2): exactly one ``ExternalInit{kem_output}``, at most one
   ``Remove`` (of an old leaf of the joiner: a *resync*), any number of ``PreSharedKey``; nothing
   else, nothing by reference;
3. the joiner's leaf goes to the leftmost free slot (after the Remove), as an Add would put it,
   and the Commit carries a full UpdatePath from there (§12.4.3.2);
4. the sender is ``new_member_commit``, the signature is checked with the path's LeafNode key and
   the GroupContext of the current epoch, and the message is a PublicMessage without membership
   tag (the joiner has no ``membership_key``; a PrivateMessage is impossible without the
   epoch's secrets).

Members process such a commit through :func:`~.group.process_message` (the group module sits
above this one), which hands it to
:func:`unprotect_external_commit` / :func:`process_external_commit`: they recover the same
``init_secret`` with ``external_priv`` (``HPKE SetupBaseR``), apply the Remove, add the joiner's
leaf, apply and decrypt the path and check the confirmation tag. A failure raises a typed error
and leaves the state unchanged (the group module works on copies).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import DecodeError, GbpLabError, MissingKeyError, ProtocolError, UsageError
from .commit import Commit
from .extensions import ExternalPub, RequiredCapabilities, find_extension
from .framing import (AuthenticatedContent, FramedContent, FramedContentAuthData, MLSMessage,
                      PublicMessage, Sender, sign_content, unprotect_public_message)
from .group_state import (CommitError, GroupConfig, GroupState, ProposalError, PskSource, commit_confirmation_tag,
                          commit_psk_secret, new_epoch_state)
from .group_info import GroupInfo
from .key_package import check_required_capabilities
from .leaf_node import LeafNode
from .member import MemberEnv
from .proposal_validation import apply_proposals
from .proposals import ExternalInit, PreSharedKey, Proposal, ProposalOrRef, Remove
from .psk import PreSharedKeyID
from .psk_store import external_psk_id
from .registries import ContentType, ExtensionType, ProposalType, WireFormat
from .schedule import GroupContext, key_schedule, verify_confirmation_tag
from .suites import CipherSuite
from .transcript import confirmed_transcript_hash, interim_transcript_hash
from .tree import RatchetTree, TreeValidationError
from .treekem import apply_update_path, create_update_path, decrypt_update_path

Rng = Callable[[int], bytes]

#: RFC 9420 §8.3: the HPKE exporter label of the external init secret.
EXTERNAL_INIT_LABEL = b"MLS 1.0 external init secret"
#: proposal types an external commit may carry (§12.2)
EXTERNAL_ALLOWED = frozenset({ProposalType.EXTERNAL_INIT, ProposalType.REMOVE, ProposalType.PSK})


# --- §8.3 ----------------------------------------------------------------------------------------

def external_init_sender(suite: CipherSuite, external_pub: bytes, *,
                         rng: Optional[Rng] = None) -> Tuple[bytes, bytes]:
    """The joiner's half of §8.3: ``(kem_output, init_secret)``."""
    enc, ctx = suite.hpke.setup_s(bytes(external_pub), b"", rng=rng)
    return enc, ctx.export(EXTERNAL_INIT_LABEL, suite.hash_length)


def external_init_receiver(suite: CipherSuite, external_priv: bytes, kem_output: bytes) -> bytes:
    """The members' half of §8.3: ``init_secret`` from ``kem_output`` and ``external_priv``.
    A malformed ``kem_output`` is a :class:`~.group.CommitError` (``MLS-EXTERNAL-INIT-KEM``)."""
    try:
        ctx = suite.hpke.setup_r(bytes(kem_output), bytes(external_priv), b"")
    except (GbpLabError, ValueError) as exc:
        raise CommitError(f"ExternalInit kem_output is not a valid KEM output ({exc})",
                          vid="MLS-EXTERNAL-INIT-KEM") from None
    return ctx.export(EXTERNAL_INIT_LABEL, suite.hash_length)


# --- GroupInfo for external joiners (§12.4.3) -------------------------------------------------------

def group_info_for(state: GroupState, *, with_external_pub: bool = True,
                   with_ratchet_tree: bool = True) -> GroupInfo:
    """A GroupInfo of ``state``'s current epoch signed by us (§12.4.3): its GroupContext, the
    epoch's confirmation tag, our leaf as signer and, as asked, the ``ratchet_tree`` and
    ``external_pub`` extensions."""
    exts = []
    if with_ratchet_tree:
        exts.append(state.tree.to_extension_body().to_extension())
    if with_external_pub:
        exts.append(ExternalPub(state.secrets.external_key_pair()[1]).to_extension())
    return GroupInfo(state.context, tuple(exts), state.confirmation_tag, state.own_leaf).signed(
        state.signature_priv)


def export_group_info(state: GroupState, *, with_external_pub: bool = True,
                      with_ratchet_tree: bool = True) -> bytes:
    """:func:`group_info_for` as MLSMessage bytes (``00 01 00 04 …``)."""
    gi = group_info_for(state, with_external_pub=with_external_pub, with_ratchet_tree=with_ratchet_tree)
    return MLSMessage(WireFormat.MLS_GROUP_INFO, gi).to_bytes()


def parse_group_info(data: Union[bytes, GroupInfo]) -> GroupInfo:
    """A GroupInfo from MLSMessage bytes or bare GroupInfo bytes (typed :class:`DecodeError`)."""
    if isinstance(data, GroupInfo):
        return data
    data = bytes(data)
    try:
        msg = MLSMessage.from_bytes(data)
    except DecodeError:
        return GroupInfo.from_bytes(data)
    if msg.wire_format != WireFormat.MLS_GROUP_INFO:
        raise DecodeError(f"expected a GroupInfo, got {WireFormat(msg.wire_format).name}",
                          vid="MLS-EXTERNAL-GROUP-INFO")
    if not isinstance(msg.message, GroupInfo):  # pragma: no cover - the body decoder is registered
        raise DecodeError("the GroupInfo body did not decode", vid="MLS-EXTERNAL-GROUP-INFO")
    return msg.message


@dataclass(frozen=True)
class VerifiedGroupInfo:
    """A GroupInfo whose tree and signature checked out: what an external joiner starts from."""

    group_info: GroupInfo
    suite: CipherSuite
    tree: RatchetTree
    external_pub: bytes

    @property
    def group_context(self) -> GroupContext:
        return self.group_info.group_context


def verify_group_info(group_info: Union[bytes, GroupInfo], *,
                      ratchet_tree: Union[RatchetTree, bytes, None] = None,
                      now: Optional[int] = None) -> VerifiedGroupInfo:
    """Check a GroupInfo for an external join (§12.4.3.1 checks that apply): a tree (the
    extension or ``ratchet_tree``) valid for the group and matching the tree hash, the signer a
    member whose key verifies the signature, an ``external_pub`` extension holding a valid key."""
    gi = parse_group_info(group_info)
    suite = gi.cipher_suite
    if isinstance(ratchet_tree, RatchetTree):
        tree = ratchet_tree.copy()
    elif ratchet_tree is not None:
        tree = RatchetTree.from_bytes(bytes(ratchet_tree), suite)
    else:
        ext = find_extension(gi.extensions, ExtensionType.RATCHET_TREE)
        if ext is None:
            raise MissingKeyError("the GroupInfo has no ratchet_tree extension and no tree was given",
                                  vid="MLS-EXTERNAL-NO-TREE")
        tree = RatchetTree.from_bytes(ext.extension_data, suite)
    gc = gi.group_context
    tree.validate(gc.group_id, tree_hash=gc.tree_hash, now=now)
    signer = tree.leaf(gi.signer) if 0 <= gi.signer < tree.n_leaves else None
    if signer is None:
        raise CommitError(f"GroupInfo signer {gi.signer} is not a member", vid="MLS-EXTERNAL-SIGNER")
    gi.verify(signer.signature_key)
    ext = find_extension(gi.extensions, ExtensionType.EXTERNAL_PUB)
    if ext is None:
        raise MissingKeyError("the GroupInfo has no external_pub extension", vid="MLS-EXTERNAL-NO-PUB")
    pub = ExternalPub.from_bytes(ext.extension_data).external_pub
    suite.check_hpke_public_key(pub)
    return VerifiedGroupInfo(gi, suite, tree, pub)


# --- the joiner (§12.4.3.2) ------------------------------------------------------------------------

@dataclass(frozen=True)
class ExternalCommitResult:
    """An external commit we created: the message and our state in the new epoch."""

    message: bytes
    new_state: GroupState
    authenticated_content: AuthenticatedContent
    own_leaf: int


class _View:
    """The part of a GroupState :func:`~.group.apply_proposals` reads, built from a GroupInfo."""

    def __init__(self, suite: CipherSuite, gc: GroupContext, tree: RatchetTree) -> None:
        self.suite, self.context, self.tree = suite, gc, tree
        self.group_id, self.epoch = gc.group_id, gc.epoch
        self.resumption_psks: Dict[int, bytes] = {}


def create_external_commit(group_info: Union[bytes, GroupInfo, VerifiedGroupInfo], leaf_template: LeafNode,
                           signature_priv: bytes, *, ratchet_tree: Union[RatchetTree, bytes, None] = None,
                           remove: Optional[int] = None, psk_ids: Sequence[PreSharedKeyID] = (),
                           psks=None, config: GroupConfig = GroupConfig(), rng: Optional[Rng] = None,
                           now: Optional[int] = None, authenticated_data: bytes = b"",
                           wire_format: WireFormat = WireFormat.MLS_PUBLIC_MESSAGE) -> ExternalCommitResult:
    """Join the group of ``group_info`` by an external commit (§12.4.3.2; steps in the module
    docstring). ``leaf_template`` is our LeafNode (credential, capabilities, signature key; its
    encryption key is replaced by the path's); ``remove`` = our old leaf index for a resync;
    ``psk_ids`` become PreSharedKey proposals, their values from ``psks`` (mapping or resolver).
    Returns the PublicMessage bytes and our state in the new epoch."""
    if wire_format != WireFormat.MLS_PUBLIC_MESSAGE:
        raise UsageError("an external commit is a PublicMessage: the joiner has no epoch secrets to "
                         "encrypt with (RFC 9420 §12.4.3.2)", vid="MLS-EXTERNAL-WIRE-FORMAT")
    rng = rng or os.urandom
    v = group_info if isinstance(group_info, VerifiedGroupInfo) else verify_group_info(
        group_info, ratchet_tree=ratchet_tree, now=now)
    suite, gi, gc = v.suite, v.group_info, v.group_context
    if leaf_template.signature_key != suite.signature_public_key(signature_priv):
        raise UsageError("the leaf's signature key is not signature_priv's", vid="MLS-EXTERNAL-LEAF")
    kem_output, init_secret = external_init_sender(suite, v.external_pub, rng=rng)
    proposals: List[Proposal] = [Proposal(ExternalInit(kem_output))]
    if remove is not None:
        proposals.append(Proposal(Remove(int(remove))))
    proposals += [Proposal(PreSharedKey(pid)) for pid in psk_ids]
    view = _View(suite, gc, v.tree)
    applied = apply_proposals(view, [(p, Sender.new_member_commit()) for p in proposals], None, now=now)
    if remove is not None:
        _check_resync(v.tree, int(remove), leaf_template)
    tree = applied.tree
    me = tree.add_leaf(leaf_template)
    provisional = GroupContext(int(suite.id), gc.group_id, gc.epoch + 1, b"", gc.confirmed_transcript_hash,
                               gc.extensions)
    path = create_update_path(tree, me, provisional, signature_priv, rng=rng, leaf_template=leaf_template)
    commit = Commit(tuple(ProposalOrRef(proposal=p) for p in proposals), path.update_path)
    content = FramedContent(gc.group_id, gc.epoch, Sender.new_member_commit(), bytes(authenticated_data),
                            ContentType.COMMIT, commit.to_bytes())
    sig = sign_content(suite, signature_priv, WireFormat.MLS_PUBLIC_MESSAGE, content, gc)
    interim = interim_transcript_hash(suite, gc.confirmed_transcript_hash, gi.confirmation_tag)
    unsigned = AuthenticatedContent(WireFormat.MLS_PUBLIC_MESSAGE, content, FramedContentAuthData(sig, None))
    cth = confirmed_transcript_hash(suite, interim, unsigned)
    new_gc = replace(path.group_context, confirmed_transcript_hash=cth)
    psk_secret = commit_psk_secret(view, applied.psk_ids, psks)
    secrets = key_schedule(suite, init_secret, path.commit_secret, new_gc, psk_secret)
    tag = secrets.confirmation_tag(cth)
    auth = FramedContentAuthData(sig, tag)
    ac = AuthenticatedContent(WireFormat.MLS_PUBLIC_MESSAGE, content, auth)
    state = GroupState(suite=suite, context=new_gc, tree=path.tree, private=path.private,
                       signature_priv=signature_priv, secrets=secrets,
                       interim_transcript_hash=interim_transcript_hash(suite, cth, tag),
                       confirmation_tag=tag, config=config)
    msg = MLSMessage.public(PublicMessage(content, auth, None))
    return ExternalCommitResult(msg.to_bytes(), state, ac, me)


def _check_resync(tree: RatchetTree, removed: int, new_leaf: LeafNode) -> None:
    """§12.2: the Remove of an external commit removes an old leaf of the joiner — the new
    LeafNode must pass the Update test for it (§12.1.2: same client, i.e. same credential)."""
    old = tree.leaf(removed) if 0 <= removed < tree.n_leaves else None
    if old is None or old.credential != new_leaf.credential:
        raise CommitError("an external commit may only remove the joiner's own old leaf (same credential)",
                          vid="MLS-EXTERNAL-RESYNC-IDENTITY", where=f"leaf {removed}")


# --- the members (§12.4.3.2) -------------------------------------------------------------------------

def unprotect_external_commit(state: GroupState, msg: PublicMessage) -> AuthenticatedContent:
    """Verify a ``new_member_commit`` PublicMessage (group and epoch already checked by the
    caller): a Commit with an UpdatePath whose LeafNode key verifies the signature over the
    current GroupContext (§6.1, §12.4.3.2). No membership tag exists for this sender."""
    c = msg.content
    if c.content_type != ContentType.COMMIT:
        raise CommitError("new_member_commit senders only send commits", vid="MLS-EXTERNAL-CONTENT")
    try:
        commit = Commit.from_bytes(c.body)
    except DecodeError:  # pragma: no cover - the framing already measured the body with Commit
        raise
    if commit.path is None:
        raise CommitError("an external commit needs an UpdatePath", vid="MLS-EXTERNAL-NO-PATH")
    return unprotect_public_message(state.suite, msg, commit.path.leaf_node.signature_key, state.context)


def process_external_commit(state: GroupState, ac: AuthenticatedContent, *, psks=None,
                            now: Optional[int] = None) -> Tuple[GroupState, bool]:
    """Apply a verified external commit to a copy of ``state`` (§12.2, §12.4.2, §12.4.3.2); returns
    ``(next state, removed_us)`` like the member-commit path of :func:`~.group.process_message`."""
    suite = state.suite
    c = ac.content
    if ac.wire_format != WireFormat.MLS_PUBLIC_MESSAGE:  # pragma: no cover - PrivateMessage senders are members
        raise CommitError("an external commit must be a PublicMessage", vid="MLS-EXTERNAL-WIRE-FORMAT")
    commit = Commit.from_bytes(c.body)
    if commit.path is None:
        raise CommitError("an external commit needs an UpdatePath", vid="MLS-EXTERNAL-NO-PATH")
    proposals: List[Proposal] = []
    for por in commit.proposals:
        if por.proposal is None:
            raise CommitError("an external commit cannot include proposals by reference",
                              vid="MLS-EXTERNAL-BY-REFERENCE")
        if por.proposal.proposal_type not in EXTERNAL_ALLOWED:
            raise ProposalError(f"{ProposalType(por.proposal.proposal_type).name} is not allowed in an "
                                "external commit", vid="MLS-EXTERNAL-PROPOSAL-TYPE")
        proposals.append(por.proposal)
    inits = [p for p in proposals if p.proposal_type == ProposalType.EXTERNAL_INIT]
    removes = [p for p in proposals if p.proposal_type == ProposalType.REMOVE]
    if len(inits) != 1:
        raise ProposalError(f"an external commit carries exactly one ExternalInit, not {len(inits)}",
                            vid="MLS-EXTERNAL-INIT-COUNT")
    if len(removes) > 1:
        raise ProposalError("an external commit removes at most one leaf", vid="MLS-EXTERNAL-REMOVE-COUNT")
    applied = apply_proposals(state, [(p, c.sender) for p in proposals], None, now=now)
    if removes:
        _check_resync(state.tree, removes[0].body_as(Remove).removed, commit.path.leaf_node)
    init_secret = external_init_receiver(suite, state.secrets.external_key_pair()[0].reveal(),
                                         inits[0].body_as(ExternalInit).kem_output)
    tree = applied.tree
    joiner = tree.add_leaf(commit.path.leaf_node)
    provisional = GroupContext(int(suite.id), state.group_id, state.epoch + 1, b"",
                               state.context.confirmed_transcript_hash, state.context.extensions)
    path_applied = apply_update_path(tree, joiner, commit.path, state.group_id)
    new_tree = path_applied.new_tree
    try:
        new_tree.verify_unique_keys()
    except TreeValidationError as exc:
        raise ProposalError(f"external joiner: {exc.message}", vid="MLS-EXTERNAL-DUPLICATE-KEY") from exc
    _check_joiner_leaf(state, commit.path.leaf_node, now)
    me = state.own_leaf
    removed_us = me in applied.removed
    cth = confirmed_transcript_hash(suite, state.interim_transcript_hash, ac)
    if removed_us:
        inactive = state.copy()
        inactive.active = False
        inactive.tree = new_tree
        return inactive, True
    res = decrypt_update_path(path_applied, provisional, state.private)
    gc = replace(provisional, tree_hash=new_tree.tree_hash(), confirmed_transcript_hash=cth)
    psk_secret = commit_psk_secret(state, applied.psk_ids, psks)
    secrets = key_schedule(suite, init_secret, res.commit_secret, gc, psk_secret)
    tag = commit_confirmation_tag(ac)
    verify_confirmation_tag(suite, secrets.confirmation_key, cth, tag)
    return new_epoch_state(state, context=gc, tree=new_tree, private=res.private, secrets=secrets,
                           confirmation_tag=tag), False


def _check_joiner_leaf(state: GroupState, leaf: LeafNode, now: Optional[int]) -> None:
    """The joiner's LeafNode meets the group's requirements (§7.3 via the tree's leaf checks:
    capabilities cover the required ones, credential type supported by everyone)."""
    rc = find_extension(state.context.extensions, ExtensionType.REQUIRED_CAPABILITIES)
    if rc is not None:
        try:
            check_required_capabilities(leaf, RequiredCapabilities.from_bytes(rc.extension_data))
        except ProtocolError as exc:
            raise ProposalError(f"external joiner: {exc.message}", vid="MLS-EXTERNAL-CAPABILITIES") from exc


# --- for a member's own keys (MlsContext.join_external, resync_external) ----------------------------

def external_commit_for(member: MemberEnv, group_info: Union[bytes, GroupInfo, VerifiedGroupInfo], *,
                        ratchet_tree: Union[RatchetTree, bytes, None] = None, remove: Optional[int] = None,
                        psk_ids: Sequence[Union[bytes, str]] = (),
                        psks: Optional[PskSource] = None) -> ExternalCommitResult:
    """:func:`create_external_commit` with ``member``'s KeyPackage leaf, signature key, rng, clock
    and config; ``psk_ids`` are external PSK ids (fresh nonces), their values from ``psks``."""
    now = member.now()
    v = group_info if isinstance(group_info, VerifiedGroupInfo) else verify_group_info(
        group_info, ratchet_tree=ratchet_tree, now=now)
    if int(v.suite.id) != int(member.suite.id):
        raise UsageError("the group uses another cipher suite than this context", vid="MLS-EXTERNAL-SUITE")
    pids = [external_psk_id(v.suite, p, member.rng) for p in psk_ids]
    return create_external_commit(v, member.key_package.leaf_node, member.signature_priv, remove=remove,
                                  psk_ids=pids, psks=psks, config=member.config, rng=member.rng, now=now)


def resync_commit_for(member: MemberEnv, group_info: Union[bytes, GroupInfo], *,
                      ratchet_tree: Union[RatchetTree, bytes, None] = None,
                      psks: Optional[PskSource] = None) -> ExternalCommitResult:
    """An external commit that removes ``member``'s old leaf (same signature key and credential)
    from the GroupInfo's tree (§12.4.3.2 resync)."""
    gi = parse_group_info(group_info)
    v = verify_group_info(gi, ratchet_tree=ratchet_tree, now=member.now())
    ours = member.key_package.leaf_node
    old = [i for i, leaf in v.tree.leaves()
           if leaf.signature_key == ours.signature_key and leaf.credential == ours.credential]
    if not old:
        raise UsageError("we have no leaf in that group to resync", vid="MLS-EXTERNAL-RESYNC-NONE")
    return external_commit_for(member, v, remove=old[0], psks=psks)


__all__ = ["external_commit_for", "resync_commit_for", "EXTERNAL_INIT_LABEL", "EXTERNAL_ALLOWED", "external_init_sender", "external_init_receiver",
           "group_info_for", "export_group_info", "parse_group_info", "VerifiedGroupInfo", "verify_group_info",
           "ExternalCommitResult", "create_external_commit", "unprotect_external_commit",
           "process_external_commit"]
