"""The public ratchet tree of every epoch, rebuilt by an observer from a capture's commits.

A capture holds everything needed to follow a group's public tree (RFC 9420 §7) once the key
log opens its PrivateMessage commits (:func:`~.tables.decode_prepare_commit`, which uses
:func:`~gbp_lab.core.mls.observer.open_private_message`): Add proposals carry the joiners'
leaves, Removes blank leaves, Updates replace them and UpdatePaths carry the committer's new leaf,
every new parent public key and the parent hashes (§12.4.2). :func:`replay_commits` applies them
in order with the group code's own functions (:func:`~gbp_lab.core.mls.proposal_validation.apply_proposals`,
§12.2/§12.3, and :func:`~gbp_lab.core.mls.treekem.apply_update_path`, the public half of §12.4.2)
to an observer's view of the group (tree, GroupContext §8.1, interim transcript hash §8.2).

Anchor: the group's creation. A commit of epoch 0 by leaf 0 with an UpdatePath replaces the
creator's whole leaf and path, so the trees from epoch 1 on are exact; the creator's epoch-0 leaf
itself is never on the wire (``MlsContext.create`` makes it, no KeyPackage carries it), so epoch
0 is *unknown* with that reason. A group whose first commit in the capture is later than epoch 0
(joined mid-way: a Welcome cannot be opened with a key log) is unknown throughout; so is every
epoch after a commit that could not be decrypted, is missing, or does not apply. Nothing is guessed.

Verification as an observer (each failure is a :class:`TreeFinding`, kinds as in
:mod:`gbp_lab.analysis.findings`):

* ``bad_leaf_signature`` — a LeafNode signature (§7.3: the UpdatePath leaf, an Add's KeyPackage
  leaf, an Update's leaf, every leaf of the rebuilt tree) or the commit's own FramedContent
  signature (§6.1, over the GroupContext the observer rebuilt: tree hash §7.8 and transcript) fails;
* ``bad_parent_hash`` — the UpdatePath's leaf ``parent_hash`` or a parent node of the rebuilt
  tree is not parent-hash valid (§7.9, §7.9.2);
* ``tree_mismatch`` — the commit does not apply to the rebuilt tree (blank sender, an UpdatePath
  of the wrong length, a Remove of a blank leaf …);
* ``bad_confirmation_tag`` — with ``MLS_EPOCH_SECRET`` of the new epoch in the key log, the
  commit's tag is not ``MAC(confirmation_key, confirmed_transcript_hash)`` (§6.1, §8.2) over the
  transcript hash chain computed from the group's start (epoch 0's ``MLS_EPOCH_SECRET`` gives
  its tag ``MAC(confirmation_key, "")`` and so the first interim transcript hash, §8.2, §11).

What could not be checked is said per epoch (:attr:`EpochTree.checks`), e.g. the reference's key
logs have no ``MLS_EPOCH_SECRET`` (its state blob never holds the epoch secret).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import pandas as pd

from gbp_lab.core.errors import GbpLabError, SignatureError
from gbp_lab.core.mls.commit import Commit
from gbp_lab.core.mls.framing import AuthenticatedContent, Sender, verify_content_signature
from gbp_lab.core.mls.proposal_validation import apply_proposals
from gbp_lab.core.mls.proposals import Proposal
from gbp_lab.core.mls.registries import ContentType, SenderType
from gbp_lab.core.mls.schedule import GroupContext, confirmation_tag
from gbp_lab.core.mls.suites import CipherSuite
from gbp_lab.core.mls.transcript import confirmed_transcript_hash, interim_transcript_hash
from gbp_lab.core.mls.tree import RatchetTree
from gbp_lab.core.mls.treekem import apply_update_path

__all__ = ["CommitSeen", "EpochTree", "TreeFinding", "CaptureTrees", "replay_commits",
           "commits_of", "trees_of", "with_tree_columns",
           "TREE_FINDING_KINDS"]

#: the finding kinds this module reports (severity ``high``: each is a forged or broken commit)
TREE_FINDING_KINDS = ("tree_mismatch", "bad_parent_hash", "bad_confirmation_tag", "bad_leaf_signature")

_LEAF_SIG_VIDS = {"MLS-TREE-LEAF-SIGNATURE", "MLS-PROPOSAL-UPDATE-SIGNATURE"}


@dataclass(frozen=True)
class CommitSeen:
    """One decrypted commit of the capture: the ``frames`` row of its PREPARE_TRANSITION, the
    MLS group id and epoch it was sent in, and its §6.1 AuthenticatedContent."""

    frame: int
    group_id: bytes
    epoch: int
    authenticated: AuthenticatedContent
    time: Any = None  # the PREPARE frame's time (a Timestamp of the frames' datetime64 column)


@dataclass(frozen=True)
class TreeFinding:
    """A verification that failed: ``kind`` (one of :data:`TREE_FINDING_KINDS`), the MLS
    ``epoch`` the commit leads to, its PREPARE ``frame`` row and the ``detail``."""

    kind: str
    group_id: bytes
    epoch: int
    frame: Optional[int]
    detail: str
    time: Any = None  # the PREPARE frame's time (a Timestamp of the frames' datetime64 column)


@dataclass(frozen=True, eq=False)
class EpochTree:
    """One epoch's public ratchet tree as the observer rebuilt it, or why it is unknown.

    ``tree`` / ``tree_hash`` (§7.8) are ``None`` when unknown (``reason`` says why);
    ``members`` the leaf identities in leaf order (``None`` for a blank leaf);
    ``commit_frame`` the PREPARE row of the commit that led here; ``changed`` the node indexes
    that differ from the previous epoch's tree; ``checks`` what was verified (``"ok"``) or why
    not, by check name."""

    group_id: bytes
    epoch: int
    tree: Optional[RatchetTree]
    reason: Optional[str] = None
    commit_frame: Optional[int] = None
    committer: Optional[int] = None
    changed: Tuple[int, ...] = ()
    checks: Dict[str, str] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return self.tree is not None

    @property
    def tree_hash(self) -> Optional[bytes]:
        return None if self.tree is None else self.tree.tree_hash()

    @property
    def members(self) -> List[Optional[str]]:
        if self.tree is None:
            return []
        out: List[Optional[str]] = []
        for i in range(self.tree.n_leaves):
            leaf = self.tree.leaf(i)
            ident = None if leaf is None else leaf.credential.identity
            out.append(None if ident is None else ident.decode("utf-8", "replace"))
        return out


@dataclass(frozen=True, eq=False)
class CaptureTrees:
    """Every epoch's :class:`EpochTree` by ``(group_id, epoch)`` and the :class:`TreeFinding` s."""

    epochs: Dict[Tuple[bytes, int], EpochTree]
    findings: List[TreeFinding]

    def groups(self) -> List[bytes]:
        return sorted({g for g, _ in self.epochs})

    def tree(self, epoch: int, group_id: Optional[bytes] = None) -> EpochTree:
        """The epoch's tree (of the only group, or of ``group_id``); ``KeyError`` if the
        capture shows no such epoch."""
        if group_id is None:
            gs = self.groups()
            if len(gs) != 1:
                raise KeyError(f"the capture has {len(gs)} groups: name one")
            group_id = gs[0]
        return self.epochs[(bytes(group_id), int(epoch))]

    def __iter__(self):
        return iter(self.epochs.values())

    def __len__(self) -> int:
        return len(self.epochs)


# -- the observer's view of one epoch ----------------------------------------------------------
@dataclass
class _View:
    """What :func:`apply_proposals` reads of a group state (``GroupStateLike``)."""

    suite: CipherSuite
    context: GroupContext
    tree: RatchetTree
    resumption_psks: Dict[int, bytes] = field(default_factory=dict)

    @property
    def group_id(self) -> bytes:
        return self.context.group_id

    @property
    def epoch(self) -> int:
        return self.context.epoch


def _kind_of(exc: GbpLabError) -> str:
    if exc.vid == "MLS-TREE-PARENT-HASH":
        return "bad_parent_hash"
    if isinstance(exc, SignatureError) or exc.vid in _LEAF_SIG_VIDS or \
            isinstance(exc.__cause__, SignatureError):
        return "bad_leaf_signature"
    return "tree_mismatch"


def _changed(old: Optional[RatchetTree], new: RatchetTree) -> Tuple[int, ...]:
    if old is None:
        return tuple(range(new.n_nodes))
    a, b = old.nodes, new.nodes
    n = max(len(a), len(b))
    return tuple(i for i in range(n) if (a[i] if i < len(a) else None) != (b[i] if i < len(b) else None))


def _fmt(exc: GbpLabError) -> str:
    return f"[{exc.vid}] {exc.message}"


def replay_commits(commits: Iterable[CommitSeen], keylog=None, *,
                   epochs: Iterable[Tuple[bytes, int]] = ()) -> CaptureTrees:
    """Rebuild each epoch's tree of every group from its commits (module docstring).

    ``keylog`` gives the suite (``MLS_CIPHER_SUITE``) and the ``MLS_EPOCH_SECRET`` s the
    transcript chain and confirmation tags need; ``epochs`` lists more ``(group_id, epoch)``
    pairs the capture shows (traffic), so that each gets an entry, unknown when no commit
    reaches it. Never raises for bad commits: every failure is a finding or a reason."""
    by_group: Dict[bytes, List[CommitSeen]] = {}
    for c in commits:
        by_group.setdefault(bytes(c.group_id), []).append(c)
    wanted: Dict[bytes, set] = {}
    for g, e in epochs:
        wanted.setdefault(bytes(g), set()).add(int(e))
    out: Dict[Tuple[bytes, int], EpochTree] = {}
    findings: List[TreeFinding] = []
    for gid in sorted(set(by_group) | set(wanted)):
        _replay_group(gid, by_group.get(gid, []), wanted.get(gid, set()), keylog, out, findings)
    return CaptureTrees(out, findings)


def _replay_group(gid: bytes, commits: List[CommitSeen], wanted: set, keylog,
                  out: Dict[Tuple[bytes, int], EpochTree], findings: List[TreeFinding]) -> None:
    # one commit per epoch: relay copies are the same bytes; the first one seen is followed
    by_epoch: Dict[int, List[CommitSeen]] = {}
    for c in sorted(commits, key=lambda c: (c.epoch, c.frame)):
        lst = by_epoch.setdefault(c.epoch, [])
        if all(x.authenticated != c.authenticated for x in lst):
            lst.append(c)
    last = max([*by_epoch, *[e - 1 for e in wanted]], default=-1) + 1
    try:
        suite = CipherSuite.get(keylog.suite(gid) if keylog is not None else 1)
    except GbpLabError as exc:
        for e in sorted(set(range(last + 1)) & (wanted | {e + 1 for e in by_epoch} | set(by_epoch))):
            out[(gid, e)] = EpochTree(gid, e, None, f"cipher suite unusable: {_fmt(exc)}")
        return

    def epoch_secret(e: int) -> Optional[bytes]:
        return None if keylog is None else keylog.epoch_secret(gid, e)

    first = min(by_epoch, default=None)
    tree: Optional[RatchetTree] = None
    gc: Optional[GroupContext] = None  # the epoch's GroupContext (needs tree and transcript)
    cth: Optional[bytes] = None  # its confirmed transcript hash
    interim: Optional[bytes] = None
    exts: Tuple[Any, ...] = ()  # MlsContext.create makes groups without GroupContext extensions
    reason: Optional[str]
    chain = "no MLS_EPOCH_SECRET of epoch 0 in the key log, so no transcript hash chain"
    if first == 0:
        reason = ("the creator's epoch-0 leaf is not on the wire (no KeyPackage carries it); "
                  "its first commit's UpdatePath replaces it")
        cth = b""
        es0 = epoch_secret(0)
        if es0 is not None:  # §8.2, §11: interim_0 = H(interim_input(MAC(confirm_key_0, "")))
            tag0 = confirmation_tag(suite, suite.derive_secret(es0, b"confirm"), b"")
            interim = interim_transcript_hash(suite, b"", tag0)
    elif first is None:
        reason = "no decrypted commit of this group in the capture"
    else:
        reason = (f"the capture's first decrypted commit is in epoch {first}: the group's creation "
                  "is not in the capture (a Welcome cannot be opened with a key log)")
    if first == 0 or 0 in wanted:
        out[(gid, 0)] = EpochTree(gid, 0, None, reason)
    for e in range(0, last):
        cands = by_epoch.get(e, [])
        nxt = e + 1
        if not cands:
            if tree is not None or reason is None:
                reason = f"no decrypted commit of epoch {e} in the capture"
            tree, gc, cth, interim = None, None, None, None
            out[(gid, nxt)] = EpochTree(gid, nxt, None, reason)
            continue
        checks: Dict[str, str] = {}
        c = _pick(suite, cands, interim, epoch_secret(nxt), checks)
        placeholder = tree is None and e == 0 and first == 0
        if tree is None and not placeholder:
            out[(gid, nxt)] = EpochTree(gid, nxt, None, reason or f"epoch {e}'s tree is unknown",
                                        commit_frame=c.frame, checks=checks)
            gc, cth, interim = None, None, None
            continue
        ev = _step(suite, gid, e, c, tree, gc, cth, interim, exts, epoch_secret(nxt), checks, placeholder,
                   chain)
        for kind, detail in ev.problems:
            findings.append(TreeFinding(kind, gid, nxt, c.frame, detail, c.time))
        if ev.tree is None:
            reason = ev.reason
            out[(gid, nxt)] = EpochTree(gid, nxt, None, reason, c.frame, ev.committer, checks=checks)
            tree, gc, cth, interim = None, None, None, None
            continue
        out[(gid, nxt)] = EpochTree(gid, nxt, ev.tree, None, c.frame, ev.committer,
                                    _changed(tree, ev.tree), checks)
        tree, exts, cth, interim = ev.tree, ev.exts, ev.cth, ev.interim
        if ev.broken:  # the members' transcript is not the forged commit's: stop checking it
            cth, interim, chain = None, None, f"the transcript chain broke at epoch {nxt}"
        gc = None if cth is None else GroupContext(int(suite.id), gid, nxt, tree.tree_hash(), cth, exts)
        reason = None


def _pick(suite: CipherSuite, cands: List[CommitSeen], interim: Optional[bytes],
          next_epoch_secret: Optional[bytes], checks: Dict[str, str]) -> CommitSeen:
    """The commit of an epoch: the only one, or among different ones (a transition retried) the
    one whose confirmation tag the next epoch's secret confirms (§6.1), else the first seen."""
    if len(cands) == 1:
        return cands[0]
    if interim is not None and next_epoch_secret is not None:
        key = suite.derive_secret(next_epoch_secret, b"confirm")
        for c in cands:
            tag = c.authenticated.auth.confirmation_tag
            cth = confirmed_transcript_hash(suite, interim, c.authenticated)
            if tag is not None and confirmation_tag(suite, key, cth) == bytes(tag):
                checks["chosen"] = (f"{len(cands)} different commits for epoch {c.epoch}: frame "
                                    f"{c.frame}'s is the one the next epoch's secret confirms")
                return c
    checks["ambiguous"] = (f"{len(cands)} different commits for epoch {cands[0].epoch}: the first seen "
                           "is followed (no MLS_EPOCH_SECRET to tell which one the group merged)")
    return cands[0]


@dataclass
class _Step:
    tree: Optional[RatchetTree] = None
    reason: Optional[str] = None
    committer: Optional[int] = None
    exts: Tuple[Any, ...] = ()
    cth: Optional[bytes] = None
    interim: Optional[bytes] = None
    problems: List[Tuple[str, str]] = field(default_factory=list)
    broken: bool = False  #: a forged signature or tag: the transcript chain is not followed on


def _step(suite: CipherSuite, gid: bytes, e: int, c: CommitSeen, tree: Optional[RatchetTree],
          gc: Optional[GroupContext], cth: Optional[bytes], interim: Optional[bytes],
          exts: Tuple[Any, ...], next_epoch_secret: Optional[bytes], checks: Dict[str, str],
          placeholder: bool, chain: str) -> _Step:
    """Apply commit ``c`` of epoch ``e`` to ``tree`` (RFC 9420 §12.2–§12.4.2) and verify it."""
    st = _Step(exts=exts)
    ac = c.authenticated
    content = ac.content
    where = f"commit of epoch {e} (frame {c.frame})"
    if content.content_type != ContentType.COMMIT or content.sender.sender_type != SenderType.MEMBER:
        st.reason = f"{where} is not a member's commit: not followed"
        return st
    sender = content.sender.index
    assert sender is not None  # a member sender has an index
    st.committer = sender
    try:
        commit = Commit.from_bytes(content.body)
    except GbpLabError as exc:
        st.reason = f"{where} does not decode: {_fmt(exc)}"
        return st
    if placeholder:
        if sender != 0 or commit.path is None:
            st.reason = (f"{where} is not the creator's (leaf 0) commit with an UpdatePath: the "
                         "epoch-0 tree it applies to is unknown")
            return st
        # the creator's epoch-0 leaf: the UpdatePath replaces it and its whole direct path, so the
        # resulting tree does not depend on it (§12.4.2); it only stands in while applying
        tree = RatchetTree.create(suite, commit.path.leaf_node)
        checks["commit_signature"] = "not checked: the epoch-0 tree (so its GroupContext) is unknown"
    assert tree is not None
    pairs: List[Tuple[Proposal, Sender]] = []
    for por in commit.proposals:
        if por.proposal is None:
            st.reason = (f"{where} commits a proposal by reference: standalone proposals are "
                         "not followed yet")
            return st
        pairs.append((por.proposal, content.sender))
    # the content signature over the GroupContext we rebuilt (§6.1): catches another tree hash
    if not placeholder:
        if gc is None:
            checks["commit_signature"] = f"not checked: the GroupContext's transcript hash is unknown ({chain})"
        else:
            leaf = tree.leaf(sender)
            if leaf is None:
                st.problems.append(("tree_mismatch", f"{where}: the committer's leaf {sender} is blank "
                                                     "in the rebuilt tree"))
                st.reason = f"{where} does not apply to the rebuilt tree"
                return st
            try:
                verify_content_signature(suite, leaf.signature_key, ac, gc)
                checks["commit_signature"] = "ok"
            except GbpLabError as exc:
                checks["commit_signature"] = "failed"
                st.broken = True
                st.problems.append(("bad_leaf_signature",
                                    f"{where}: the FramedContent signature does not verify under leaf "
                                    f"{sender}'s key and the rebuilt GroupContext (a wrong key, or "
                                    f"another tree or transcript): {_fmt(exc)}"))
    view = _View(suite, GroupContext(int(suite.id), gid, e, b"", cth or b"", exts), tree)
    try:
        applied = apply_proposals(view, pairs, sender)
        new_tree = applied.tree
        if commit.path is not None:
            new_tree = apply_update_path(new_tree, sender, commit.path, gid).new_tree
        elif applied.path_required:
            raise GbpLabError(f"{where} needs an UpdatePath and has none", vid="MLS-COMMIT-PATH-REQUIRED")
    except GbpLabError as exc:
        st.problems.append((_kind_of(exc), f"{where}: {_fmt(exc)}"))
        st.reason = f"{where} does not apply to the rebuilt tree: {_fmt(exc)}"
        return st
    checks["proposals_and_path"] = "ok"
    for name, check in (("parent_hashes", new_tree.verify_parent_hashes),
                        ("leaf_signatures", lambda: new_tree.verify_leaf_signatures(gid))):
        try:
            check()
            checks[name] = "ok"
        except GbpLabError as exc:
            checks[name] = "failed"
            st.problems.append((_kind_of(exc), f"epoch {e + 1} tree: {_fmt(exc)}"))
    st.tree = new_tree
    if applied.extensions is not None:
        st.exts = tuple(applied.extensions)
    tag = ac.auth.confirmation_tag
    if interim is None:
        checks["confirmation_tag"] = f"not checked: {chain}"
        return st
    st.cth = confirmed_transcript_hash(suite, interim, ac)
    if tag is None:
        st.problems.append(("bad_confirmation_tag", f"{where} has no confirmation tag"))
        st.broken = True
        return st
    st.interim = interim_transcript_hash(suite, st.cth, tag)
    if next_epoch_secret is None:
        checks["confirmation_tag"] = f"not checked: no MLS_EPOCH_SECRET of epoch {e + 1} in the key log"
    else:
        want = confirmation_tag(suite, suite.derive_secret(next_epoch_secret, b"confirm"), st.cth)
        if want == bytes(tag):
            checks["confirmation_tag"] = "ok"
        else:
            checks["confirmation_tag"] = "failed"
            st.broken = True
            st.problems.append(("bad_confirmation_tag",
                                f"{where}: the confirmation tag is not MAC(confirmation_key of epoch "
                                f"{e + 1}, confirmed transcript hash) (RFC 9420 §6.1, §8.2)"))
    return st


def commits_of(capture) -> List[CommitSeen]:
    """The decrypted PREPARE_TRANSITION commits of a :class:`~.model.Capture`, each once (the
    first frame carrying it; from the ``control`` table's rows, the commit opened again by
    :func:`~.tables.decode_prepare_commit`)."""
    from gbp_lab.core.gbp.control import decode_control
    from gbp_lab.core.gbp.registry import ControlOpcode
    from .tables import decode_prepare_commit

    ctl = capture.control
    if not len(ctl):
        return []
    out: List[CommitSeen] = []
    sel = ctl[(ctl["opcode"] == int(ControlOpcode.PREPARE_TRANSITION)).fillna(False)
              & ctl["commit_error"].isna()]
    for fr, t in zip(sel["frame"].tolist(), sel["time"].tolist()):
        pt = capture.plaintexts[fr]
        try:
            d = decode_prepare_commit(decode_control(pt).args, capture.keylog)
        except GbpLabError:
            continue
        ac: Optional[AuthenticatedContent] = d.get("authenticated")
        if ac is None:
            continue
        if any(o.authenticated == ac for o in out):
            continue  # a relay's copy of a commit already listed
        out.append(CommitSeen(int(fr), bytes(ac.content.group_id), int(ac.content.epoch), ac, t))
    return out


def trees_of(capture, numbers: Optional[Sequence[int]] = None) -> CaptureTrees:
    """:func:`replay_commits` over a capture's commits, with an entry for every (group, epoch)
    its frames show; ``numbers``: the frame numbers of the capture's rows (a part of a bigger
    capture: its trees and findings name the frames of the whole)."""
    f = capture.frames
    eps: set = set()
    if len(f):  # each distinct (group, epoch) pair once (not once per frame)
        for g, e in set(zip(f["group_id"].tolist(), f["epoch"].tolist())):
            gb = _gid_bytes(g)
            if gb is not None and e is not None and e is not pd.NA and e == e:
                eps.add((gb, int(e)))
    commits = commits_of(capture)
    if numbers is not None:
        commits = [dataclasses.replace(c, frame=int(numbers[c.frame])) for c in commits]
    return replay_commits(commits, capture.keylog, epochs=sorted(eps))


def with_tree_columns(epochs: pd.DataFrame, trees: CaptureTrees) -> pd.DataFrame:
    """``epochs`` (:func:`~.tables.build_epochs`) with ``tree_hash`` (hex, RFC 9420 §7.8; empty
    when unknown), ``tree_members`` (leaf identities, ``None`` for a blank leaf) and
    ``tree_unknown`` (why the tree is unknown, else empty)."""
    hashes, members, why = [], [], []
    for g, e in zip(epochs["group_id"].tolist(), epochs["epoch"].tolist()):
        gb = _gid_bytes(g)
        et = None if gb is None or e is None or e is pd.NA else trees.epochs.get((gb, int(e)))
        th = None if et is None else et.tree_hash
        hashes.append("" if th is None else th.hex())
        members.append([] if et is None else et.members)
        why.append("no commit reaches this epoch" if et is None else (et.reason or ""))
    out = epochs.copy()
    out["tree_hash"] = pd.Series(hashes, index=out.index, dtype=object)
    out["tree_members"] = pd.Series(members, index=out.index, dtype=object)
    out["tree_unknown"] = pd.Series(why, index=out.index, dtype=object)
    return out


def _gid_bytes(g: Any) -> Optional[bytes]:
    if isinstance(g, (bytes, bytearray)):
        return bytes(g)
    if isinstance(g, str):
        try:
            return bytes.fromhex(g)
        except ValueError:
            return None
    return None
