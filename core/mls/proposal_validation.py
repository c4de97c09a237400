"""Validate (RFC 9420 §12.2) and apply (§12.3) the proposals a Commit covers.

:func:`apply_proposals` is shared by every commit path — ours and a member's
(:func:`~.group.create_commit`, :func:`~.group.process_message`) and external commits
(:mod:`.external`) — and works on a copy of the tree. :func:`check_special_proposals` holds the
§12.2 rules of ReInit (§12.1.5) and ExternalInit (§12.1.6); PreSharedKey rules (§12.1.4) are
:func:`~.psk_store.check_psk_id`. The rules as data (for tables) are :mod:`.proposals_apply`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import DecodeError, ProtocolError, UsageError
from .extensions import Extension, RequiredCapabilities, check_unique, find_extension
from .framing import Sender
from .group_state import GroupStateLike, ProposalError
from .key_package import KeyPackage, check_required_capabilities
from .proposals import (Add, ExternalInit, GroupContextExtensions, PreSharedKey, Proposal, ReInit, Remove,
                        Update)
from .psk import PreSharedKeyID
from .psk_store import check_psk_id
from .registries import ExtensionType, LeafNodeSource, ProposalType, SenderType
from .suites import CipherSuite
from .tree import RatchetTree, TreeValidationError


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
    reinit: Optional[ReInit] = None                #: the ReInit body (§12.1.5)
    external_init: Optional[ExternalInit] = None   #: the ExternalInit body (§12.1.6)


def apply_proposals(state: GroupStateLike, proposals: Sequence[Tuple[Proposal, Sender]], committer: Optional[int],
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
        out.reinit, out.external_init = check_special_proposals(state, by_type, committer, len(proposals))
    gce = by_type.get(ProposalType.GROUP_CONTEXT_EXTENSIONS, [])
    if len(gce) > 1:
        raise ProposalError("more than one GroupContextExtensions proposal", vid="MLS-PROPOSAL-GCE-MULTIPLE")
    required = None
    if gce:
        exts = gce[0][0].body_as(GroupContextExtensions).extensions
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
        who = s.index
        assert who is not None  # a member sender has an index (Sender.__post_init__)
        if who == committer:
            raise ProposalError("a committer cannot commit its own Update", vid="MLS-PROPOSAL-UPDATE-COMMITTER")
        if who in touched:
            raise ProposalError(f"two Updates/Removes for leaf {who}", vid="MLS-PROPOSAL-DUPLICATE-LEAF")
        leaf = p.body_as(Update).leaf_node
        if leaf.leaf_node_source != LeafNodeSource.UPDATE:
            raise ProposalError("Update leaf source is not update", vid="MLS-PROPOSAL-UPDATE-SOURCE")
        try:
            leaf.verify(state.suite, group_id=state.group_id, leaf_index=who)
        except (ProtocolError) as exc:
            raise ProposalError(f"Update leaf: {exc.message}", vid="MLS-PROPOSAL-UPDATE-SIGNATURE") from exc
        touched.add(who)
        tree.update_leaf(who, leaf)
        out.updated.append(who)
    for p, s in by_type.get(ProposalType.REMOVE, []):
        r = p.body_as(Remove).removed
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
        kp = p.body_as(Add).key_package
        try:
            kp.validate(now, cipher_suite=int(state.suite.id), required_capabilities=required)
        except ProtocolError as exc:
            raise ProposalError(f"Add: {exc.message}", vid="MLS-PROPOSAL-ADD-KEY-PACKAGE") from exc
        out.added.append((tree.add_leaf(kp.leaf_node), kp))
    for p, s in by_type.get(ProposalType.PSK, []):
        psk = p.body_as(PreSharedKey).psk
        check_psk_id(state.suite, psk, creating_group=state.epoch == 0)
        out.psk_ids.append(psk)
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


# --- §12.2 rules for ReInit and ExternalInit --------------------------------------------------------

def check_special_proposals(state: GroupStateLike, by_type: Mapping[ProposalType, List[Tuple[Proposal, Sender]]],
                            committer: Optional[int], count: int) -> Tuple[Optional[ReInit], Optional[ExternalInit]]:
    """The §12.2 rules for a Commit covering ReInit or ExternalInit proposals; returns
    ``(reinit body or None, external_init body or None)``.

    * ExternalInit only in an external commit (``committer is None``), at most one;
    * ReInit only from a member and as the Commit's *only* proposal; its suite must be one we
      support and its version not lower than the group's (§12.1.5).
    """
    external = by_type.get(ProposalType.EXTERNAL_INIT, [])
    reinits = by_type.get(ProposalType.REINIT, [])
    if external and committer is not None:
        raise ProposalError("ExternalInit is only allowed in an external commit",
                            vid="MLS-PROPOSAL-EXTERNAL-INIT-MEMBER")
    if len(external) > 1:
        raise ProposalError("more than one ExternalInit", vid="MLS-PROPOSAL-EXTERNAL-INIT-COUNT")
    reinit = None
    if reinits:
        if committer is None or count != 1:
            raise ProposalError("a ReInit must be the only proposal of a member's Commit",
                                vid="MLS-PROPOSAL-REINIT-ALONE")
        p, sender = reinits[0]
        if sender.sender_type not in (SenderType.MEMBER, SenderType.EXTERNAL):
            raise ProposalError("a ReInit comes from a member or an external sender",
                                vid="MLS-PROPOSAL-REINIT-ALONE")
        body = p.body_as(ReInit)
        try:
            CipherSuite.get(body.cipher_suite)
        except UsageError:
            raise ProposalError(f"ReInit names unsupported cipher suite {body.cipher_suite}",
                                vid="MLS-PROPOSAL-REINIT-SUITE") from None
        if int(body.version) < int(state.context.version):
            raise ProposalError("ReInit lowers the protocol version", vid="MLS-PROPOSAL-REINIT-SUITE")
        try:
            check_unique(body.extensions, "ReInit.extensions")
        except Exception as exc:  # DecodeError from check_unique
            raise ProposalError(f"ReInit: {exc}", vid="MLS-PROPOSAL-REINIT-SUITE") from None
        reinit = body
    return reinit, (external[0][0].body_as(ExternalInit) if external else None)


__all__ = ["PATH_OPTIONAL", "AppliedProposals", "apply_proposals", "check_special_proposals"]
