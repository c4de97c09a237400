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

Validation of the proposals themselves (§12.2) is :func:`check_special_proposals`, called from
:func:`~.group.apply_proposals` for ReInit and ExternalInit.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

from ..errors import UsageError
from .extensions import Extension, check_unique
from .group import (CommitResult, GroupConfig, GroupState, ProposalError, create_commit, create_group)
from .key_package import KeyPackage
from .leaf_node import LeafNode
from .proposals import Add, PreSharedKey, Proposal, ReInit
from .psk import PreSharedKeyID
from .psk_store import Resolver, resumption_psk_id
from .registries import ProposalType, ProtocolVersion, PSKType, ResumptionPSKUsage, SenderType
from .suites import CipherSuite
from .welcome import WelcomeError

Rng = Callable[[int], bytes]


# --- §12.2 rules for ReInit and ExternalInit --------------------------------------------------------

def check_special_proposals(state, by_type, committer: Optional[int], count: int):
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
        body: ReInit = p.body
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
    return reinit, (external[0][0].body if external else None)


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


# --- MlsContext entry points (context.py delegates here) --------------------------------------------

def join_checked(ctx, welcome) -> GroupState:
    """``MlsContext.accept_welcome``'s join: PSKs from the context's store, then the §11.2/§11.3
    checks against the group the context is in now (the old group of a ReInit or a branch)."""
    from .group import join_group
    from .welcome import decrypt_group_secrets
    old = ctx._state
    state = join_group(welcome, ctx._key_package, ctx._init_priv, ctx._kp_leaf_priv, ctx._signature_priv,
                       config=ctx._config, psks=ctx.psk_store.resolver(old))
    secrets = decrypt_group_secrets(welcome, ctx._key_package.ref(state.suite), ctx._init_priv)
    check_resumption_welcome(secrets.psks, state,
                             lambda gid: old if old is not None and old.group_id == gid else None)
    return state


def _fresh_leaf(ctx, suite: CipherSuite):
    from .context import _make_leaf
    sig_pub = suite.signature_public_key(ctx._signature_priv)
    ident = ctx._key_package.leaf_node.credential.identity or b""
    return _make_leaf(suite, ident, ctx._signature_priv, sig_pub, int(ctx._clock()), ctx._rng)


def _key_packages(kps) -> List[KeyPackage]:
    from .context import _parse_key_package
    out = [_parse_key_package(k) if not isinstance(k, KeyPackage) else k for k in kps]
    if not out:
        raise UsageError("no KeyPackage given", vid="MLS-REINIT-MEMBERS")
    return out


def context_reinit(ctx, group_id, extensions) -> bytes:
    """``MlsContext.reinit``: commit a ReInit alone (pending)."""
    proposal = reinit_proposal(ctx.state, group_id=group_id, extensions=extensions, rng=ctx._rng)
    res = ctx._commit([proposal])
    ctx._pending = res
    return res.message


def context_create_reinit_group(ctx, key_packages) -> bytes:
    """``MlsContext.create_reinit_group``: we move to the new group; returns the Welcome."""
    old = ctx.state
    if old.reinit is None:
        raise UsageError("the group has no committed ReInit", vid="MLS-REINIT-NONE")
    if int(old.reinit.cipher_suite) != ctx.ciphersuite:
        raise UsageError("a ReInit to another cipher suite needs new keys: use reinit.create_reinit_group",
                         vid="MLS-REINIT-SUITE")
    leaf_priv, leaf = _fresh_leaf(ctx, old.suite)
    res = create_reinit_group(old, leaf, leaf_priv, ctx._signature_priv, _key_packages(key_packages),
                              psks=ctx.psk_resolver(), config=ctx._config, rng=ctx._rng, now=int(ctx._clock()))
    ctx._state = res.state
    ctx._staged = ctx._pending = None
    ctx._entered(res.state)
    return res.welcome


def _sibling(ctx, state: GroupState):
    new = type(ctx)(ctx.identity, ctx._suite, ctx._signature_priv, state, key_package=ctx._key_package,
                    init_priv=ctx._init_priv, kp_leaf_priv=ctx._kp_leaf_priv, keylog=ctx._keylog, rng=ctx._rng,
                    clock=ctx._clock, config=ctx._config)
    new.__dict__["_psk_store"] = ctx.psk_store  # one store for both groups
    return new


def context_branch(ctx, key_packages, group_id):
    """``MlsContext.branch``: ``(new context in the branch, Welcome)``."""
    old = ctx.state
    leaf_priv, leaf = _fresh_leaf(ctx, old.suite)
    gid = bytes(group_id) if group_id is not None else ctx._rng(len(old.group_id) or 16)
    res = create_branch_group(old, leaf, leaf_priv, ctx._signature_priv, _key_packages(key_packages),
                              group_id=gid, psks=ctx.psk_resolver(), config=ctx._config, rng=ctx._rng,
                              now=int(ctx._clock()))
    return _sibling(ctx, res.state), res.welcome


def context_join_branch(ctx, welcome):
    """``MlsContext.join_branch``: a new context that joins the branch; this one stays."""
    new = _sibling(ctx, ctx.state)
    new.accept_welcome(welcome)
    return new


__all__ = ["join_checked", "context_reinit", "context_create_reinit_group", "context_branch",
           "context_join_branch", "check_special_proposals", "reinit_proposal", "commit_reinit", "ResumedGroup",
           "create_resumed_group", "create_reinit_group", "create_branch_group", "check_resumption_welcome"]
