"""``MlsContext``: one MLS member, with the API of the reference's Python binding
(``gbp_stack.MlsContext``, crates/gbp/mls ``MlsContext``; reference-map §6).

A context owns a signature key, a published KeyPackage (bare ``KeyPackage`` bytes,
``00 01 00 01 …`` like openmls) and a current group — at first a one-member group of its own at
epoch 0, as the reference creates one. Calls and their epochs:

* ``invite(kp) -> welcome`` — Add commit, merged at once;
* ``invite_full(kp) -> (commit, welcome)`` — Add commit, *pending* (merge: ``finalize_commit``);
* ``invite_many(kps) -> (commit, welcome)`` — one Add commit for several KeyPackages, pending;
* ``remove_member(leaf) -> commit`` — Remove commit, pending;
* ``self_update() -> commit`` — empty commit with a new path (key rotation), pending;
* ``process_message(msg) -> kind`` — ``"commit"`` (staged: merge with ``finalize_commit``),
  ``"application"``, ``"proposal"`` or ``"external"`` (a new member's own Add);
* ``finalize_commit()`` — merge the staged (received) commit, which wins over our own pending
  one as in openmls, or else the pending one; idempotent;
* ``clear_pending_commit()`` — drop both;
* ``accept_welcome(welcome)`` — replace the current group by the one joined.

Beyond the reference binding (logic in ``external.py``, ``psk_store.py``, ``reinit.py``):
``export_group_info()``, ``MlsContext.join_external(group_info, identity) -> (ctx, commit)``,
``resync_external(group_info)``, ``add_external_psk``, ``propose_psk``, ``commit_psks``,
``reinit`` / ``create_reinit_group``, ``branch`` / ``join_branch`` (RFC 9420 §12.4.3.2, §8.4,
§11.2, §11.3).

A second received commit while one is staged is refused (:class:`GroupStateError`); a failed
``process_message`` leaves the context as it was (the group module works on copies).

Key log: ``keylog=`` (a path or a :class:`~gbp_lab.core.keylog.KeyLog`) or, when not given, the
``MLS_KEYLOGFILE`` environment variable: every epoch this context enters appends its
``MLS_EXPORTER_SECRET``, ``MLS_SENDER_DATA_SECRET``, ``MLS_ENCRYPTION_SECRET`` and
``MLS_EPOCH_SECRET`` records (and the group's ``MLS_CIPHER_SUITE``).

State export (:meth:`export_state` / :meth:`restore_state`) is our own format, a UTF-8 JSON
object (``"format": "gbp-lab/mls-context"``, ``"version": 1``) with every byte string in hex:
identity, suite, signature key, KeyPackage and its private keys, the group (GroupContext and
ratchet-tree bytes, leaf and path-secret private keys, all epoch secrets, secret-tree nodes and
ratchets, transcript hashes, confirmation tag, stored proposals, resumption PSKs). It holds
private keys: store it encrypted. Pending and staged commits are not part of it (export refuses
while one exists).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, fields
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar, Union

from ..errors import ClosedError, DecodeError, GbpLabError, UsageError, raises_builtin, with_builtin
from ..keylog import ENCRYPTION, EPOCH, EXPORTER, SENDER_DATA, KeyLog
from .external import export_group_info, external_commit_for, parse_group_info, resync_commit_for
from .framing import AuthenticatedContent
from .group_info import GroupInfo
from .group import (CommitResult, GroupConfig, GroupState, GroupStateError, Processed, StoredProposal,
                    create_application_message, create_commit, create_group, create_proposal_message,
                    decode_message, process_message as _process)
from .key_package import KeyPackage
from .member import (ADVERTISED_SUITES, LIFETIME_AFTER, LIFETIME_BEFORE, MemberEnv, make_key_package, make_leaf,
                     parse_key_package)
from .proposals import PreSharedKey, Proposal, ReInit, Remove, Add
from .psk import PreSharedKeyID
from .psk_store import PskStore, Resolver, external_psk_id, resumption_psk_id
from .registries import WireFormat
from .reinit import branch_group_for, join_checked, reinit_group_for, reinit_proposal
from .schedule import EpochSecrets, GroupContext
from .secret_tree import SecretTree
from .secrets import Secret
from .suites import CipherSuite
from .tree import Member, RatchetTree
from .treekem import PrivateTree
from .welcome import Welcome

Rng = Callable[[int], bytes]
_T = TypeVar("_T")
Clock = Callable[[], float]

STATE_FORMAT = "gbp-lab/mls-context"


@dataclass(frozen=True)
class TranscriptHashes:
    """The two transcript hashes of the current epoch (RFC 9420 §8.2)."""

    confirmed: bytes
    interim: bytes


@dataclass(frozen=True)
class EpochSummary:
    """One past (or the current) epoch, for teaching views."""

    group_id: bytes
    epoch: int
    group_context: GroupContext
    epoch_secrets: EpochSecrets
    members: Tuple[Member, ...]
    confirmation_tag: bytes


class MlsContext:
    """One MLS member (see the module docstring). Use as a context manager or call
    :meth:`close` (which only forgets the state: nothing native to release).  As in the
    binding, errors of its methods (``create`` … ``restore_state``) are also ``OSError`` instances, and
    so is the :class:`~gbp_lab.core.errors.ClosedError` of any use after :meth:`close`."""

    def __init__(self, identity: Union[str, bytes], suite: CipherSuite, signature_priv: bytes,
                 state: GroupState, *, key_package: KeyPackage, init_priv: bytes, kp_leaf_priv: bytes,
                 keylog: Union[None, str, os.PathLike, KeyLog] = None, rng: Optional[Rng] = None,
                 clock: Optional[Clock] = None, config: GroupConfig = GroupConfig(),
                 history_size: int = 16) -> None:
        self.identity = identity
        self._member = MemberEnv(suite, bytes(signature_priv), key_package, bytes(init_priv), bytes(kp_leaf_priv),
                                 rng or os.urandom, clock or time.time, config)
        self._state: Optional[GroupState] = state
        if keylog is None and os.environ.get("MLS_KEYLOGFILE"):
            keylog = os.environ["MLS_KEYLOGFILE"]
        self._keylog = keylog
        self._psk_store = PskStore()
        self._pending: Optional[CommitResult] = None
        self._staged: Optional[GroupState] = None
        self._history: List[EpochSummary] = []
        self._history_size = history_size
        self._entered(state)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    @raises_builtin(OSError)
    def create(cls, identity: Union[str, bytes], *, ciphersuite: int = 1, rng: Optional[Rng] = None,
               keylog: Union[None, str, os.PathLike, KeyLog] = None, clock: Optional[Clock] = None,
               config: GroupConfig = GroupConfig()) -> "MlsContext":
        """A fresh member: signature key, a KeyPackage (basic credential = ``identity``) and a
        one-member group of its own (random 16-byte group id, epoch 0)."""
        suite = CipherSuite.get(ciphersuite)
        rng = rng or os.urandom
        clock = clock or time.time
        ident = identity.encode("utf-8") if isinstance(identity, str) else bytes(identity)
        sig_priv, sig_pub = suite.generate_signature_key_pair(rng)
        kp, init_priv, kp_leaf_priv = make_key_package(suite, ident, sig_priv, sig_pub, int(clock()), rng)
        own_leaf_priv, own_leaf = make_leaf(suite, ident, sig_priv, sig_pub, int(clock()), rng)
        state = create_group(suite, own_leaf, own_leaf_priv, sig_priv, config=config, rng=rng)
        return cls(identity, suite, sig_priv, state, key_package=kp, init_priv=init_priv,
                   kp_leaf_priv=kp_leaf_priv, keylog=keylog, rng=rng, clock=clock, config=config)

    # -- properties -----------------------------------------------------------------------
    @property
    def member(self) -> MemberEnv:
        """This member's keys, credentials, rng, clock and config: the handle the operations in
        :mod:`.external` and :mod:`.reinit` act with."""
        return self._member

    # the handle's fields under their former attribute names
    @property
    def _suite(self) -> CipherSuite:
        return self._member.suite

    @property
    def _signature_priv(self) -> bytes:
        return self._member.signature_priv

    @property
    def _key_package(self) -> KeyPackage:
        return self._member.key_package

    @property
    def _init_priv(self) -> bytes:
        return self._member.init_priv

    @property
    def _kp_leaf_priv(self) -> bytes:
        return self._member.kp_leaf_priv

    @property
    def _rng(self) -> Rng:
        return self._member.rng

    @property
    def _clock(self) -> Clock:
        return self._member.clock

    @property
    def _config(self) -> GroupConfig:
        return self._member.config

    @property
    def _s(self) -> GroupState:
        if self._state is None:
            raise with_builtin(ClosedError("the context is closed", vid="MLS-CONTEXT-CLOSED"), OSError)
        return self._state

    @property
    def state(self) -> GroupState:
        """The current :class:`~.group.GroupState` (treat as read-only)."""
        return self._s

    @property
    def epoch(self) -> int:
        return self._s.epoch

    @property
    def group_id(self) -> bytes:
        return self._s.group_id

    @property
    def ciphersuite(self) -> int:
        return int(self._suite.id)

    @property
    def own_leaf_index(self) -> int:
        return self._s.own_leaf

    @property
    def is_active(self) -> bool:
        """False once a merged commit removed us."""
        return self._s.active

    @property
    def epoch_secrets(self) -> EpochSecrets:
        return self._s.secrets

    @property
    def group_context(self) -> GroupContext:
        return self._s.context

    @property
    def tree(self) -> RatchetTree:
        return self._s.tree.copy()

    @property
    def members(self) -> List[Member]:
        return self._s.tree.members()

    @property
    def transcript_hashes(self) -> TranscriptHashes:
        s = self._s
        return TranscriptHashes(s.context.confirmed_transcript_hash, s.interim_transcript_hash)

    @property
    def history(self) -> Tuple[EpochSummary, ...]:
        """Summaries of the epochs this context went through, oldest first (bounded)."""
        return tuple(self._history)

    @property
    def has_pending_commit(self) -> bool:
        return self._pending is not None or self._staged is not None

    def export_raw(self, label: Union[str, bytes], context: bytes = b"", length: int = 32) -> bytes:
        """RFC 9420 §8.5 ``MLS-Exporter(label, context, length)`` of the current epoch."""
        return self._s.export(label, bytes(context), length)

    @raises_builtin(OSError)
    def export_key_package(self) -> bytes:
        """Our KeyPackage as bare TLS bytes (``00 01 00 01 …``)."""
        self._s  # noqa: B018 - closed check, as the binding
        return self._key_package.to_bytes()

    # -- commits we make ------------------------------------------------------------------
    def _no_pending(self) -> None:
        if self.has_pending_commit:
            raise UsageError("a commit is already pending: finalize or clear it first",
                             vid="MLS-CONTEXT-PENDING")

    def _commit(self, proposals) -> CommitResult:
        self._no_pending()
        res = create_commit(self._s, proposals, rng=self._rng, now=int(self._clock()), psks=self.psk_resolver())
        self._state = res.sent_state
        return res

    @raises_builtin(OSError)
    def invite_full(self, key_package: bytes) -> Tuple[bytes, bytes]:
        """Add ``key_package`` (bare KeyPackage or MLSMessage bytes); return ``(commit, welcome)``
        and keep the commit pending (RFC 9420 §12.1.1, §12.4)."""
        kp = parse_key_package(key_package)
        res = self._commit([Proposal(Add(kp))])
        self._pending = res
        assert res.welcome is not None  # an Add commit has a Welcome
        return res.message, res.welcome

    def invite_many(self, key_packages) -> Tuple[bytes, bytes]:
        """One Add commit for several KeyPackages (the reference's WASM ``inviteMany``); returns
        ``(commit, welcome)`` with one Welcome for all of them, commit pending."""
        kps = [parse_key_package(k) for k in key_packages]
        if not kps:
            raise UsageError("no KeyPackage to invite", vid="MLS-CONTEXT-INVITE")
        res = self._commit([Proposal(Add(kp)) for kp in kps])
        self._pending = res
        assert res.welcome is not None  # an Add commit has a Welcome
        return res.message, res.welcome

    @raises_builtin(OSError)
    def invite(self, key_package: bytes) -> bytes:
        """Add ``key_package``, merge at once and return the Welcome."""
        _, welcome = self.invite_full(key_package)
        self.finalize_commit()
        return welcome

    @raises_builtin(OSError)
    def remove_member(self, leaf_index: int) -> bytes:
        """Remove the member at ``leaf_index``; return the Commit (pending)."""
        s = self._s
        if not isinstance(leaf_index, int) or not 0 <= leaf_index < s.tree.n_leaves \
                or s.tree.leaf(leaf_index) is None:
            raise UsageError(f"leaf {leaf_index} is not a member", vid="MLS-CONTEXT-REMOVE")
        if leaf_index == s.own_leaf:
            raise UsageError("a member cannot commit its own removal", vid="MLS-CONTEXT-REMOVE-SELF")
        res = self._commit([Proposal(Remove(leaf_index))])
        self._pending = res
        return res.message

    def self_update(self) -> bytes:
        """An empty Commit with a fresh UpdatePath (key rotation, RFC 9420 §12.4); pending.
        (openmls ``self_update``; not exposed by the reference binding.)"""
        res = self._commit([])
        self._pending = res
        return res.message

    def send_application(self, data: bytes, *, authenticated_data: bytes = b"") -> bytes:
        """Application data as an MLS PrivateMessage (not used by GBP, which seals its own
        frames; handy for tests and teaching)."""
        new, msg = create_application_message(self._s, data, authenticated_data=authenticated_data, rng=self._rng)
        self._state = new
        return msg

    # -- receiving ------------------------------------------------------------------------
    @raises_builtin(OSError)
    def process_message(self, message: bytes) -> str:
        """Process one MLSMessage. A commit is staged (merge: :meth:`finalize_commit`); returns
        ``"commit"``, ``"application"``, ``"proposal"`` or ``"external"`` (a new member's Add)."""
        res = self.process(message)
        return res.kind

    def process(self, message: bytes) -> Processed:
        """Like :meth:`process_message` but returns the full :class:`~.group.Processed`."""
        self._s  # noqa: B018 - closed check, as the binding
        msg = decode_message(message)
        if msg.wire_format not in (WireFormat.MLS_PUBLIC_MESSAGE, WireFormat.MLS_PRIVATE_MESSAGE):
            raise GroupStateError(f"expected a protocol message, got {WireFormat(msg.wire_format).name}",
                                  vid="MLS-GROUP-WIRE-FORMAT")
        res = _process(self._s, msg, now=int(self._clock()), psks=self.psk_resolver())
        if res.kind == "commit" and self._staged is not None:
            raise GroupStateError("a received commit is already staged: finalize or clear it first",
                                  vid="MLS-CONTEXT-STAGED")
        self._state = res.state
        if res.kind == "commit":
            self._staged = res.staged
        return res

    @raises_builtin(OSError)
    def finalize_commit(self) -> None:
        """Merge the staged commit (received) or else the pending one (ours). Idempotent."""
        self._s  # noqa: B018 - closed check, as the binding
        nxt = None
        if self._staged is not None:
            nxt = self._staged
        elif self._pending is not None:
            nxt = self._pending.new_state
        self._staged = self._pending = None
        if nxt is not None:
            self._state = nxt
            if nxt.active:
                self._entered(nxt)

    @raises_builtin(OSError)
    def clear_pending_commit(self) -> None:
        """Drop the staged and the pending commit."""
        self._s  # noqa: B018 - closed check, as the binding
        self._staged = self._pending = None

    @raises_builtin(OSError)
    def accept_welcome(self, welcome: bytes) -> None:
        """Join the group of ``welcome`` (MLSMessage bytes) with our KeyPackage; the current
        group (and any pending commit) is replaced."""
        self._s  # noqa: B018 - closed check, as the binding
        msg = decode_message(welcome)
        if msg.wire_format != WireFormat.MLS_WELCOME:
            raise GroupStateError(f"expected a Welcome, got {WireFormat(msg.wire_format).name}",
                                  vid="MLS-GROUP-WIRE-FORMAT")
        welcome_body = msg.message
        assert isinstance(welcome_body, Welcome)  # registered body decoder (package __init__)
        # PSKs from our store, §11.2/§11.3 resumption checks against the group we are in
        self._moved_to(join_checked(self._member, self._state, welcome_body, self.psk_store))

    def _moved_to(self, state: GroupState) -> None:
        """Replace the current group by ``state`` (a joined or newly created group)."""
        self._state = state
        self._staged = self._pending = None
        self._entered(state)

    # -- PSKs, external joins, ReInit, branches (RFC 9420 §8.4, §12.4.3.2, §11.2, §11.3) ---------
    # The logic lives in psk_store.py, external.py and reinit.py; they act with self.member and
    # return staged results that these entry points keep.
    @property
    def psk_store(self) -> PskStore:
        """The :class:`~.psk_store.PskStore` of this member (external and resumption PSKs)."""
        return self._psk_store

    def psk_resolver(self) -> Resolver:
        """``PreSharedKeyID -> bytes | None`` over our store and the current group's state."""
        return self.psk_store.resolver(self._state)

    def add_external_psk(self, psk_id: Union[str, bytes], secret: bytes) -> None:
        """Register an external PSK (``psktype = external``, RFC 9420 §8.4)."""
        self.psk_store.add_external(psk_id, secret)

    def _psk_id(self, psk_id: Union[str, bytes, None], epoch: Optional[int]) -> PreSharedKeyID:
        if (psk_id is None) == (epoch is None):
            raise UsageError("give either an external psk_id or a resumption epoch", vid="MLS-PSK-ID")
        state = self._s
        if psk_id is not None:
            pid = external_psk_id(state.suite, psk_id, self._rng)
        else:
            assert epoch is not None
            pid = resumption_psk_id(state.suite, state.group_id, int(epoch), rng=self._rng)
        if self.psk_store.lookup(pid, state) is None:
            raise UsageError("we do not know this PSK", vid="MLS-PSK-UNKNOWN")
        return pid

    def propose_psk(self, psk_id: Union[str, bytes, None] = None, *, epoch: Optional[int] = None) -> bytes:
        """A standalone PreSharedKey proposal (§12.1.4) for the external PSK ``psk_id`` or the
        resumption PSK of this group's ``epoch``; stored for a later commit by reference."""
        pid = self._psk_id(psk_id, epoch)
        new, msg, _ = create_proposal_message(self._s, Proposal(PreSharedKey(pid)))
        self._state = new
        return msg

    def commit_psks(self, psk_ids=(), *, epochs=(), by_reference: bool = True) -> bytes:
        """A Commit (pending) with inline PreSharedKey proposals for the external ``psk_ids`` and the
        resumption PSKs of ``epochs``, plus every stored proposal by reference."""
        self._no_pending()
        pids = [self._psk_id(p, None) for p in psk_ids] + [self._psk_id(None, e) for e in epochs]
        state = self._s
        refs = list(state.proposals) if by_reference else []
        res = create_commit(state, [Proposal(PreSharedKey(p)) for p in pids], by_reference=refs,
                            psks=self.psk_resolver(), rng=self._rng, now=int(self._clock()))
        self._state = res.sent_state
        self._pending = res
        return res.message

    def export_group_info(self, with_external_pub: bool = True, with_ratchet_tree: bool = True) -> bytes:
        """A GroupInfo (MLSMessage) of the current epoch signed by us, for external joiners (§12.4.3)."""
        return export_group_info(self._s, with_external_pub=with_external_pub, with_ratchet_tree=with_ratchet_tree)

    @classmethod
    def join_external(cls, group_info: bytes, identity: Union[str, bytes], *, ratchet_tree=None,
                      rng: Optional[Rng] = None, psk_ids=(), **kw) -> Tuple["MlsContext", bytes]:
        """Join by external commit (§12.4.3.2): a new member ``identity`` in the group of
        ``group_info``; returns ``(ctx, commit)`` with ``ctx`` already in the new epoch (send the
        commit to the group; ``kw``: ``keylog``, ``clock``, ``config``)."""
        gi = parse_group_info(group_info)
        ctx = cls.create(identity, ciphersuite=int(gi.cipher_suite.id), rng=rng, **kw)
        return ctx, ctx.external_commit(gi, ratchet_tree=ratchet_tree, psk_ids=psk_ids)

    def external_commit(self, group_info: Union[bytes, GroupInfo], *, ratchet_tree=None, psk_ids=()) -> bytes:
        """Join the group of ``group_info`` by an external commit with this context's keys
        (§12.4.3.2), with PreSharedKey proposals for the external PSKs ``psk_ids`` of our store;
        our state moves to the new epoch (the current group is replaced); returns the commit."""
        res = external_commit_for(self._member, group_info, ratchet_tree=ratchet_tree, psk_ids=psk_ids,
                                  psks=self.psk_store.resolver())
        self._moved_to(res.new_state)
        return res.message

    def resync_external(self, group_info: bytes, *, ratchet_tree=None) -> bytes:
        """Rejoin our group by an external commit that removes our old leaf (§12.4.3.2 resync);
        our state moves to the new epoch; returns the commit."""
        res = resync_commit_for(self._member, group_info, ratchet_tree=ratchet_tree,
                                psks=self.psk_store.resolver())
        self._moved_to(res.new_state)
        return res.message

    def reinit(self, group_id: Optional[bytes] = None, *, extensions=None) -> bytes:
        """Commit a ReInit (§12.1.5, pending): once merged, the group is closed and a member
        re-creates it with :meth:`create_reinit_group`."""
        proposal = reinit_proposal(self._s, group_id=group_id, extensions=extensions, rng=self._rng)
        res = self._commit([proposal])
        self._pending = res
        return res.message

    def create_reinit_group(self, key_packages) -> bytes:
        """After a merged ReInit: create the new group with the other members' KeyPackages and a
        ``reinit`` resumption PSK (§11.2); we move to it; returns the Welcome."""
        res = reinit_group_for(self._member, self._s, key_packages, psks=self.psk_resolver())
        self._moved_to(res.state)
        return res.welcome

    def branch(self, key_packages, *, group_id: Optional[bytes] = None) -> Tuple["MlsContext", bytes]:
        """A subgroup branch (§11.3) of the current epoch: ``(new context, Welcome)``; this context
        stays in the old group."""
        res = branch_group_for(self._member, self._s, key_packages, group_id=group_id, psks=self.psk_resolver())
        return self._sibling(res.state), res.welcome

    def join_branch(self, welcome: bytes) -> "MlsContext":
        """Join a branch of our current group from its Welcome; returns a new context."""
        new = self._sibling(self._s)
        new.accept_welcome(welcome)
        return new

    def _sibling(self, state: GroupState) -> "MlsContext":
        """A context with our keys in ``state`` sharing our PSK store (a branch, §11.3)."""
        m = self._member
        new = type(self)(self.identity, m.suite, m.signature_priv, state, key_package=m.key_package,
                         init_priv=m.init_priv, kp_leaf_priv=m.kp_leaf_priv, keylog=self._keylog, rng=m.rng,
                         clock=m.clock, config=m.config)
        new._psk_store = self._psk_store  # one store for both groups
        return new

    # -- key log and history --------------------------------------------------------------
    def _entered(self, state: GroupState) -> None:
        s = state.secrets
        self.psk_store.remember_state(state)  # resumption PSKs of every epoch we were in (§8.6)
        self._history.append(EpochSummary(state.group_id, state.epoch, state.context, s,
                                          tuple(state.tree.members()), state.confirmation_tag))
        del self._history[:-self._history_size]
        if self._keylog is None or len(state.group_id) != 16:
            return
        log = KeyLog()
        log.set_suite(state.group_id, int(state.suite.id))
        for label, secret in ((EXPORTER, s.exporter_secret), (SENDER_DATA, s.sender_data_secret),
                              (ENCRYPTION, s.encryption_secret), (EPOCH, s.epoch_secret)):
            log.add(label, state.group_id, state.epoch, secret.reveal())
        if isinstance(self._keylog, KeyLog):
            self._keylog.update(log)
        else:
            log.append_to(self._keylog)

    # -- state export ---------------------------------------------------------------------
    @raises_builtin(OSError)
    def export_state(self) -> bytes:
        """The whole context as UTF-8 JSON (see the module docstring). Contains private keys."""
        if self.has_pending_commit:
            raise UsageError("cannot export with a pending or staged commit", vid="MLS-CONTEXT-PENDING")
        s = self._s
        ident = self.identity if isinstance(self.identity, str) else None
        doc = {
            "format": STATE_FORMAT, "version": 1,
            "identity": ident,
            "identity_hex": None if isinstance(self.identity, str) else bytes(self.identity).hex(),
            "suite": int(self._suite.id),
            "signature_priv": self._signature_priv.hex(),
            "key_package": self._key_package.to_bytes().hex(),
            "init_priv": self._init_priv.hex(), "kp_leaf_priv": self._kp_leaf_priv.hex(),
            "config": {"padding_size": self._config.padding_size,
                       "out_of_order_tolerance": self._config.out_of_order_tolerance,
                       "maximum_forward_distance": self._config.maximum_forward_distance,
                       "use_ratchet_tree_extension": self._config.use_ratchet_tree_extension,
                       "handshake_wire_format": int(self._config.handshake_wire_format),
                       "max_resumption_psks": self._config.max_resumption_psks},
            "group": _state_to_json(s),
        }
        return json.dumps(doc, sort_keys=True).encode("utf-8")

    @classmethod
    @raises_builtin(OSError)
    def restore_state(cls, state: bytes, identity: Union[str, bytes, None] = None, *,
                      rng: Optional[Rng] = None, keylog=None, clock: Optional[Clock] = None) -> "MlsContext":
        """Rebuild a context from :meth:`export_state` output; malformed input is a
        :class:`DecodeError` (``MLS-CONTEXT-STATE``)."""
        try:
            doc = json.loads(bytes(state).decode("utf-8"))
            if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT or doc.get("version") != 1:
                raise DecodeError("not a gbp-lab MLS context state", vid="MLS-CONTEXT-STATE")
            suite = CipherSuite.get(doc["suite"])
            cfg = doc["config"]
            config = GroupConfig(cfg["padding_size"], cfg["out_of_order_tolerance"],
                                 cfg["maximum_forward_distance"], cfg["use_ratchet_tree_extension"],
                                 WireFormat(cfg["handshake_wire_format"]), cfg["max_resumption_psks"])
            gstate = _state_from_json(doc["group"], suite, config)
            ident = doc["identity"] if doc["identity"] is not None else bytes.fromhex(doc["identity_hex"])
            ctx = cls.__new__(cls)
            ctx.identity = identity if identity is not None else ident
            ctx._member = MemberEnv(suite, bytes.fromhex(doc["signature_priv"]),
                                    KeyPackage.from_bytes(bytes.fromhex(doc["key_package"])),
                                    bytes.fromhex(doc["init_priv"]), bytes.fromhex(doc["kp_leaf_priv"]),
                                    rng or os.urandom, clock or time.time, config)
            ctx._state = gstate
        except GbpLabError as exc:
            if isinstance(exc, DecodeError):
                raise
            raise DecodeError(f"bad context state: {exc.message}", vid="MLS-CONTEXT-STATE") from exc
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise DecodeError(f"bad context state: {exc!r}", vid="MLS-CONTEXT-STATE") from None
        if keylog is None and os.environ.get("MLS_KEYLOGFILE"):
            keylog = os.environ["MLS_KEYLOGFILE"]
        ctx._keylog = keylog
        ctx._psk_store = PskStore()
        ctx._pending = ctx._staged = None
        ctx._history = []
        ctx._history_size = 16
        ctx._history.append(EpochSummary(gstate.group_id, gstate.epoch, gstate.context, gstate.secrets,
                                         tuple(gstate.tree.members()), gstate.confirmation_tag))
        return ctx

    # -- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        """Forget the group state (idempotent)."""
        self._state = None
        self._pending = self._staged = None

    def __enter__(self) -> "MlsContext":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._state is None:
            return "MlsContext(closed)"
        return (f"MlsContext(identity={self.identity!r}, group={self.group_id.hex()}, epoch={self.epoch}, "
                f"leaf={self.own_leaf_index}, members={len(self.members)})")


# --- helpers ---------------------------------------------------------------------------------

def _required(value: Optional[_T]) -> _T:
    """A key the state must hold (our leaf key, a path secret listed in ``nodes``)."""
    if value is None:  # pragma: no cover - PrivateTree lists only the nodes it holds
        raise UsageError("the private tree lacks a key it lists", vid="MLS-CONTEXT-STATE")
    return value


def _hex_secret(s: Optional[Secret]) -> Optional[str]:
    return None if s is None else s.reveal().hex()


def _state_to_json(s: GroupState) -> dict:
    secrets = {f.name: _hex_secret(getattr(s.secrets, f.name))
               for f in fields(s.secrets) if "derivation" in f.metadata}
    return {
        "group_context": s.context.to_bytes().hex(),
        "tree": s.tree.to_bytes().hex(),
        "own_leaf": s.own_leaf,
        "leaf_priv": _required(s.private.private_key(2 * s.own_leaf)).hex(),
        "path_secrets": {str(int(n)): _required(s.private.path_secret(n)).reveal().hex()
                         for n in s.private.nodes[1:]},
        "signature_priv": s.signature_priv.hex(),
        "epoch_secrets": secrets,
        "secret_tree": s.secret_tree.to_json(),
        "interim_transcript_hash": s.interim_transcript_hash.hex(),
        "confirmation_tag": s.confirmation_tag.hex(),
        "proposals": [[p.ref.hex(), p.authenticated_content.to_bytes().hex()] for p in s.proposals.values()],
        "resumption_psks": {str(e): v.hex() for e, v in s.resumption_psks.items()},
        "active": s.active,
        "reinit": None if s.reinit is None else s.reinit.to_bytes().hex(),  # a committed ReInit (§11.2)
    }


def _state_from_json(doc: dict, suite: CipherSuite, config: GroupConfig) -> GroupState:
    gc_bytes = bytes.fromhex(doc["group_context"])
    gc = GroupContext.from_bytes(gc_bytes)
    tree = RatchetTree.from_bytes(bytes.fromhex(doc["tree"]), suite)
    private = PrivateTree(suite, int(doc["own_leaf"]), bytes.fromhex(doc["leaf_priv"]),
                          {int(k): bytes.fromhex(v) for k, v in doc["path_secrets"].items()})
    private.check_against(tree)
    es = doc["epoch_secrets"]
    named: Dict[str, Any] = {k: None if v is None else Secret(bytes.fromhex(v), k) for k, v in es.items()}
    secrets = EpochSecrets(cipher_suite=suite, group_context=gc_bytes, **named)
    proposals = {}
    for ref_hex, ac_hex in doc["proposals"]:
        ac = AuthenticatedContent.from_bytes(bytes.fromhex(ac_hex))
        proposals[bytes.fromhex(ref_hex)] = StoredProposal(bytes.fromhex(ref_hex), Proposal.from_bytes(ac.content.body),
                                                           ac.content.sender, ac)
    return GroupState(suite=suite, context=gc, tree=tree, private=private,
                      signature_priv=bytes.fromhex(doc["signature_priv"]), secrets=secrets,
                      interim_transcript_hash=bytes.fromhex(doc["interim_transcript_hash"]),
                      confirmation_tag=bytes.fromhex(doc["confirmation_tag"]), config=config,
                      secret_tree=SecretTree.from_json(doc["secret_tree"], suite,
                                                       out_of_order_tolerance=config.out_of_order_tolerance,
                                                       maximum_forward_distance=config.maximum_forward_distance),
                      proposals=proposals, active=bool(doc["active"]),
                      resumption_psks={int(k): bytes.fromhex(v) for k, v in doc["resumption_psks"].items()},
                      reinit=_reinit_from_json(doc.get("reinit")))


def _reinit_from_json(value: Optional[str]) -> Optional[ReInit]:
    return None if value is None else ReInit.from_bytes(bytes.fromhex(value))


__all__ = ["MlsContext", "TranscriptHashes", "EpochSummary", "STATE_FORMAT", "ADVERTISED_SUITES",
           "LIFETIME_BEFORE", "LIFETIME_AFTER"]
