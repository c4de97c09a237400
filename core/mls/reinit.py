"""ReInit, re-initialised groups and subgroup branches (RFC 9420 §11.2, §11.3, §12.1.5, §8.6).

**ReInit** (§11.2, §12.1.5). A member commits a ``ReInit{group_id, version, cipher_suite,
extensions}`` proposal; such a Commit carries nothing else (§12.2). Once it is merged the old
group is closed: :attr:`~.group.GroupState.reinit` holds the ReInit body and the group module
refuses to send or process anything more (``MLS-GROUP-REINIT``). Then one member creates the new
group with the ReInit's parameters (:func:`create_reinit_group`): a fresh group whose first
Commit adds the other members and a ``PreSharedKey`` proposal naming the *resumption* PSK of the
old group's last epoch with usage ``reinit``. Members join with the Welcome; they check
(:func:`check_resumption_welcome`) that the new group is at epoch 1 and matches the ReInit they
committed.

**Branch** (§11.3). The same with usage ``branch`` and the resumption PSK of the old group's
*current* epoch (the old group lives on): a new group id, the same version and suite, and every
member of the new group a member of the old one (same credential).

Validation of the proposals themselves (§12.2) is
:func:`~.proposal_validation.check_special_proposals` (re-exported here), called from
:func:`~.proposal_validation.apply_proposals` for ReInit and ExternalInit.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

from ..errors import UsageError
from .extensions import Extension, check_unique
from .group import CommitResult, create_commit, create_group, join_welcome
from .group_state import GroupConfig, GroupState
from .key_package import KeyPackage
from .leaf_node import LeafNode
from .member import MemberEnv, parse_key_packages
from .proposal_validation import check_special_proposals
from .proposals import Add, PreSharedKey, Proposal, ReInit
from .psk import PreSharedKeyID
from .psk_store import PskStore, Resolver, resumption_psk_id
from .registries import ProtocolVersion, PSKType, ResumptionPSKUsage
from .suites import CipherSuite
from .welcome import Welcome, WelcomeError

Rng = Callable[[int], bytes]


def reinit_proposal(state: GroupState, *, group_id: Optional[bytes] = None, cipher_suite: Optional[int] = None,
                    extensions: Optional[Sequence[Extension]] = None, rng: Optional[Rng] = None) -> Proposal:
    """A ReInit proposal for ``state``'s group: new group id (random ``len(group_id)`` bytes by
    default), suite and extensions (default: the group's)."""
    gid = bytes(group_id) if group_id is not None else (rng or os.urandom)(len(state.group_id) or 16)
    if gid == state.group_id:
        raise UsageError("the re-initialised group needs a new group id", vid="MLS-REINIT-GROUP-ID")
    exts = tuple(state.context.extensions if extensions is None else extensions)
    return Proposal(ReInit(gid, ProtocolVersion.MLS10, int(cipher_suite or state.suite.id), exts))


def commit_reinit(state: GroupState, proposal: Proposal, *, rng: Optional[Rng] = None,
                  now: Optional[int] = None) -> CommitResult:
    """Commit ``proposal`` (a ReInit) alone; the next state is closed (``new_state.reinit``)."""
    return create_commit(state, [proposal], rng=rng, now=now)


# --- the new group ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResumedGroup:
    """A re-initialised or branched group we created: the state at epoch 1, the Welcome and the
    first Commit (nobody needs it: every other member joins with the Welcome)."""

    state: GroupState
    welcome: bytes
    commit: bytes
    psk_id: PreSharedKeyID


def create_resumed_group(old: GroupState, usage: ResumptionPSKUsage, leaf: LeafNode, leaf_priv: bytes,
                         signature_priv: bytes, key_packages: Sequence[KeyPackage], *,
                         group_id: bytes, cipher_suite: Optional[int] = None,
                         extensions: Sequence[Extension] = (), psks: Optional[Resolver] = None,
                         config: GroupConfig = GroupConfig(), rng: Optional[Rng] = None,
                         now: Optional[int] = None) -> ResumedGroup:
    """The new group of a ReInit (usage ``reinit``, PSK of ``old``'s current — closed — epoch) or
    a branch (usage ``branch``): created with our ``leaf``, then one Commit adding
    ``key_packages`` with the resumption PSK proposal (§11.2, §11.3)."""
    rng = rng or os.urandom
    suite = CipherSuite.get(cipher_suite or int(old.suite.id))
    if not key_packages:
        raise UsageError("a resumed group needs at least one other member", vid="MLS-REINIT-MEMBERS")
    pid = resumption_psk_id(suite, old.group_id, old.epoch, usage, rng=rng)
    value = old.resumption_psks.get(old.epoch)
    state = create_group(suite, leaf, leaf_priv, signature_priv, group_id=group_id, extensions=extensions,
                         config=config, rng=rng)

    def lookup(p: PreSharedKeyID):
        if p == pid:
            return value
        return None if psks is None else psks(p)

    res = create_commit(state, [Proposal(Add(kp)) for kp in key_packages] + [Proposal(PreSharedKey(pid))],
                        psks=lookup, rng=rng, now=now)
    assert res.welcome is not None  # the commit adds key_packages (checked non-empty above)
    return ResumedGroup(res.new_state, res.welcome, res.message, pid)


def create_reinit_group(old: GroupState, leaf: LeafNode, leaf_priv: bytes, signature_priv: bytes,
                        key_packages: Sequence[KeyPackage], **kw) -> ResumedGroup:
    """:func:`create_resumed_group` for a group closed by a ReInit, with the ReInit's parameters."""
    r = old.reinit
    if r is None:
        raise UsageError("the group has no committed ReInit", vid="MLS-REINIT-NONE")
    return create_resumed_group(old, ResumptionPSKUsage.REINIT, leaf, leaf_priv, signature_priv, key_packages,
                                group_id=r.group_id, cipher_suite=r.cipher_suite, extensions=r.extensions, **kw)


def create_branch_group(old: GroupState, leaf: LeafNode, leaf_priv: bytes, signature_priv: bytes,
                        key_packages: Sequence[KeyPackage], *, group_id: bytes, **kw) -> ResumedGroup:
    """:func:`create_resumed_group` for a subgroup branch of ``old``'s current epoch (§11.3)."""
    if bytes(group_id) == old.group_id:
        raise UsageError("a branch needs a new group id", vid="MLS-BRANCH-GROUP-ID")
    kw.setdefault("extensions", old.context.extensions)
    return create_resumed_group(old, ResumptionPSKUsage.BRANCH, leaf, leaf_priv, signature_priv, key_packages,
                                group_id=group_id, **kw)


# --- joining checks --------------------------------------------------------------------------------

def check_resumption_welcome(psk_ids: Sequence[PreSharedKeyID], new: GroupState,
                             known: Callable[[bytes], Optional[GroupState]]) -> None:
    """§11.2 / §11.3 checks a joiner makes when the Welcome names a resumption PSK of usage
    ``reinit`` or ``branch``; ``known(group_id)`` gives our state of that old group (or ``None``).

    reinit: at most one such PSK; the new group is at epoch 1; the old group is ours, closed by a
    ReInit whose group id, version, suite and extensions are the new group's, and the PSK names
    its last epoch. branch: epoch 1, a new group id, the old group's version and suite, and every
    member of the new group has the credential of some member of the old group."""
    special = [p for p in psk_ids if p.psktype == PSKType.RESUMPTION
               and p.usage in (ResumptionPSKUsage.REINIT, ResumptionPSKUsage.BRANCH)]
    if not special:
        return
    if len(special) > 1:
        raise WelcomeError("more than one reinit/branch PSK", vid="MLS-WELCOME-RESUMPTION")
    pid = special[0]
    gc = new.context
    if gc.epoch != 1:
        raise WelcomeError(f"a re-initialised/branched group starts at epoch 1, not {gc.epoch}",
                           vid="MLS-WELCOME-RESUMPTION")
    old = known(pid.psk_group_id)
    if old is None:
        raise WelcomeError("the Welcome resumes a group we do not know", vid="MLS-WELCOME-RESUMPTION")
    if pid.usage == ResumptionPSKUsage.REINIT:
        r = old.reinit
        if r is None or pid.psk_epoch != old.epoch:
            raise WelcomeError("the old group was not closed by a ReInit at that epoch",
                               vid="MLS-WELCOME-REINIT")
        if (r.group_id, int(r.version), int(r.cipher_suite), tuple(r.extensions)) != \
                (gc.group_id, int(gc.version), int(gc.cipher_suite), tuple(gc.extensions)):
            raise WelcomeError("the new group does not match the committed ReInit", vid="MLS-WELCOME-REINIT")
        return
    if gc.group_id == old.group_id or gc.cipher_suite != old.context.cipher_suite \
            or gc.version != old.context.version:
        raise WelcomeError("a branch keeps version and suite and takes a new group id", vid="MLS-WELCOME-BRANCH")
    creds = {leaf.credential for _, leaf in old.tree.leaves()}
    for i, leaf in new.tree.leaves():
        if leaf.credential not in creds:
            raise WelcomeError(f"branch member {i} is not a member of the old group", vid="MLS-WELCOME-BRANCH")


# --- for a member's own keys (MlsContext.accept_welcome, create_reinit_group, branch) -------------

def join_checked(member: MemberEnv, current: Optional[GroupState], welcome: Welcome,
                 store: PskStore) -> GroupState:
    """Join from ``welcome`` with ``member``'s KeyPackage, PSKs from ``store`` (and ``current``'s
    resumption PSKs), then the §11.2/§11.3 checks against ``current`` (the old group of a ReInit
    or a branch); returns the joined state."""
    state, joined = join_welcome(welcome, member.key_package, member.init_priv, member.kp_leaf_priv,
                                 member.signature_priv, config=member.config, psks=store.resolver(current))
    check_resumption_welcome(joined.group_secrets.psks, state,
                             lambda gid: current if current is not None and current.group_id == gid else None)
    return state


def reinit_group_for(member: MemberEnv, old: GroupState, key_packages: Sequence[Union[bytes, KeyPackage]], *,
                     psks: Optional[Resolver] = None) -> ResumedGroup:
    """After a merged ReInit of ``old``: the new group with a fresh leaf of ``member`` (same
    suite only: another suite needs new keys, use :func:`create_reinit_group`)."""
    if old.reinit is None:
        raise UsageError("the group has no committed ReInit", vid="MLS-REINIT-NONE")
    if int(old.reinit.cipher_suite) != int(member.suite.id):
        raise UsageError("a ReInit to another cipher suite needs new keys: use reinit.create_reinit_group",
                         vid="MLS-REINIT-SUITE")
    leaf_priv, leaf = member.fresh_leaf(old.suite)
    return create_reinit_group(old, leaf, leaf_priv, member.signature_priv,
                               parse_key_packages(key_packages, vid="MLS-REINIT-MEMBERS"),
                               psks=psks, config=member.config, rng=member.rng, now=member.now())


def branch_group_for(member: MemberEnv, old: GroupState, key_packages: Sequence[Union[bytes, KeyPackage]], *,
                     group_id: Optional[bytes] = None, psks: Optional[Resolver] = None) -> ResumedGroup:
    """A subgroup branch of ``old``'s current epoch (§11.3) with a fresh leaf of ``member``; the
    group id is random (``len(old.group_id)`` bytes) unless given."""
    leaf_priv, leaf = member.fresh_leaf(old.suite)
    gid = bytes(group_id) if group_id is not None else member.rng(len(old.group_id) or 16)
    return create_branch_group(old, leaf, leaf_priv, member.signature_priv,
                               parse_key_packages(key_packages, vid="MLS-REINIT-MEMBERS"),
                               group_id=gid, psks=psks, config=member.config, rng=member.rng, now=member.now())


__all__ = ["join_checked", "reinit_group_for", "branch_group_for", "check_special_proposals", "reinit_proposal", "commit_reinit", "ResumedGroup",
           "create_resumed_group", "create_reinit_group", "create_branch_group", "check_resumption_welcome"]
