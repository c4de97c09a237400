"""The rules the group state machine enforces on proposals and commits, as data (RFC 9420 §12.2,
§12.3, §12.4), for tables and teaching views.

Each :class:`Rule` names the validation id (``vid``) that :mod:`gbp_lab.core.mls.group` raises when
the rule is broken, the RFC section, what the rule says and the error class. The checks themselves
live in :func:`gbp_lab.core.mls.group.apply_proposals` and ``process_message``; a test keeps this
table and the raised ids in step.

Order of application (§12.3), as :func:`~gbp_lab.core.mls.group.apply_proposals` does it:
``APPLY_ORDER``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from .registries import ProposalType

#: §12.3: GroupContextExtensions, then Update, Remove, Add; PreSharedKey feeds the key schedule.
APPLY_ORDER: Tuple[ProposalType, ...] = (ProposalType.GROUP_CONTEXT_EXTENSIONS, ProposalType.UPDATE,
                                         ProposalType.REMOVE, ProposalType.ADD, ProposalType.PSK)


@dataclass(frozen=True)
class Rule:
    """One validation rule: id, RFC 9420 section, statement and the error class raised."""

    vid: str
    section: str
    text: str
    error: str


RULES: Tuple[Rule, ...] = (
    Rule("MLS-PROPOSAL-UNKNOWN-REF", "§12.4", "every ProposalRef of a Commit names a proposal received "
         "in this epoch", "ProposalError"),
    Rule("MLS-PROPOSAL-UPDATE-INLINE", "§12.4", "Update proposals are committed by reference only",
         "ProposalError"),
    Rule("MLS-PROPOSAL-UPDATE-SENDER", "§12.1.2", "an Update comes from a member", "ProposalError"),
    Rule("MLS-PROPOSAL-UPDATE-COMMITTER", "§12.2", "the committer does not commit its own Update",
         "ProposalError"),
    Rule("MLS-PROPOSAL-UPDATE-SOURCE", "§7.3", "an Update's LeafNode has leaf_node_source update",
         "ProposalError"),
    Rule("MLS-PROPOSAL-UPDATE-SIGNATURE", "§7.3", "an Update's LeafNode signature verifies over group id "
         "and leaf index", "ProposalError"),
    Rule("MLS-PROPOSAL-DUPLICATE-LEAF", "§12.2", "at most one Update or Remove per leaf", "ProposalError"),
    Rule("MLS-PROPOSAL-REMOVE-COMMITTER", "§12.2", "the committer does not remove itself", "ProposalError"),
    Rule("MLS-PROPOSAL-REMOVE-BLANK", "§12.1.3", "a Remove names a current member", "ProposalError"),
    Rule("MLS-PROPOSAL-ADD-KEY-PACKAGE", "§10.1, §12.1.1", "an Add's KeyPackage is valid (signature, "
         "suite, lifetime, leaf source, required capabilities)", "ProposalError"),
    Rule("MLS-PROPOSAL-DUPLICATE-KEY", "§7.3, §12.2", "encryption and signature keys stay unique in the "
         "tree after Adds and Updates", "ProposalError"),
    Rule("MLS-PROPOSAL-PSK-DUPLICATE", "§12.2", "no PSK is proposed twice", "ProposalError"),
    Rule("MLS-PROPOSAL-GCE-MULTIPLE", "§12.2", "at most one GroupContextExtensions proposal",
         "ProposalError"),
    Rule("MLS-PROPOSAL-GCE-DUPLICATE", "§13", "new group extensions have unique types", "ProposalError"),
    Rule("MLS-PROPOSAL-GCE-CAPABILITIES", "§11.1, §12.1.7", "every member supports new required "
         "capabilities", "ProposalError"),
    Rule("MLS-PROPOSAL-NEW-MEMBER", "§12.1.8", "a new_member_proposal sender proposes only its own Add",
         "ProposalError"),
    Rule("MLS-PROPOSAL-PSK-NONCE", "§8.4, §12.1.4", "a PreSharedKey's psk_nonce has Nh bytes", "ProposalError"),
    Rule("MLS-PROPOSAL-PSK-USAGE", "§12.1.4", "resumption PSKs of usage reinit/branch only in the first "
         "commit of a re-initialised/branched group", "ProposalError"),
    Rule("MLS-PROPOSAL-EXTERNAL-INIT-MEMBER", "§12.1.6, §12.2", "ExternalInit only in an external commit",
         "ProposalError"),
    Rule("MLS-PROPOSAL-EXTERNAL-INIT-COUNT", "§12.2", "at most one ExternalInit", "ProposalError"),
    Rule("MLS-PROPOSAL-REINIT-ALONE", "§12.2", "a ReInit is the only proposal of a member's Commit",
         "ProposalError"),
    Rule("MLS-PROPOSAL-REINIT-SUITE", "§12.1.5", "a ReInit names a supported suite, no lower version and "
         "unique extensions", "ProposalError"),
    Rule("MLS-EXTERNAL-INIT-COUNT", "§12.2", "an external commit carries exactly one ExternalInit",
         "ProposalError"),
    Rule("MLS-EXTERNAL-REMOVE-COUNT", "§12.2", "an external commit removes at most one leaf", "ProposalError"),
    Rule("MLS-EXTERNAL-PROPOSAL-TYPE", "§12.2", "an external commit covers only ExternalInit, Remove and "
         "PreSharedKey proposals", "ProposalError"),
    Rule("MLS-EXTERNAL-BY-REFERENCE", "§12.2", "an external commit has no proposals by reference",
         "CommitError"),
    Rule("MLS-EXTERNAL-NO-PATH", "§12.4.3.2", "an external commit carries an UpdatePath", "CommitError"),
    Rule("MLS-EXTERNAL-INIT-KEM", "§8.3", "the ExternalInit kem_output is a valid KEM output", "CommitError"),
    Rule("MLS-EXTERNAL-RESYNC-IDENTITY", "§12.2, §12.1.2", "the Remove of an external commit removes the "
         "joiner's own old leaf (same credential)", "CommitError"),
    Rule("MLS-EXTERNAL-DUPLICATE-KEY", "§7.3", "the external joiner's keys are unique in the tree",
         "ProposalError"),
    Rule("MLS-EXTERNAL-CAPABILITIES", "§11.1", "the external joiner supports the required capabilities",
         "ProposalError"),
    Rule("MLS-COMMIT-PATH-REQUIRED", "§12.4", "a Commit covering anything but Add/PSK/ReInit (or nothing) "
         "carries an UpdatePath", "CommitError"),
    Rule("MLS-COMMIT-UNKNOWN-REF", "§12.4", "our own Commit by reference names a stored proposal "
         "(a misuse of create_commit)", "UsageError"),
    Rule("MLS-COMMIT-PSK", "§8.4", "every PSK a Commit names is known", "MissingKeyError"),
    Rule("MLS-EXTERNAL-CONTENT", "§6, §12.1.8, §12.4.3.2", "external and new_member_proposal senders send "
         "proposals only, new_member_commit senders commits only", "CommitError"),
    Rule("MLS-UNSUPPORTED-SENDER", "§6", "a sender type this implementation does not handle",
         "UnsupportedError"),
    Rule("MLS-GROUP-UNKNOWN-SENDER", "§6", "the sender is a current member (or a configured external "
         "sender)", "GroupStateError"),
    Rule("MLS-GROUP-OWN-MESSAGE", "§6", "a member does not process its own messages", "GroupStateError"),
    Rule("MLS-GROUP-INACTIVE", "§12.1.3", "a removed member processes no more messages", "GroupStateError"),
    Rule("MLS-GROUP-WIRE-FORMAT", "§6", "only PublicMessage/PrivateMessage go to process_message, only "
         "Welcome to accept_welcome", "GroupStateError"),
)

BY_VID: Dict[str, Rule] = {r.vid: r for r in RULES}


def rule(vid: str) -> Rule:
    """The rule behind a validation id (``KeyError`` for ids that are not proposal/commit rules)."""
    return BY_VID[vid]


__all__ = ["Rule", "RULES", "BY_VID", "APPLY_ORDER", "rule"]
