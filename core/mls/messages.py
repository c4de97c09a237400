"""MLS message structures of RFC 9420 in one namespace (re-exports, one concept per module).

======================  ==========================================================
module                  structures
======================  ==========================================================
``registries``          ProtocolVersion, ContentType, WireFormat, ProposalType, ExtensionType,
                        CredentialType, LeafNodeSource, SenderType, PSKType, ResumptionPSKUsage …
``credentials``         Credential (basic, x509) — §5.3
``extensions``          Extension, ApplicationId, RequiredCapabilities, ExternalPub, ExternalSenders — §13
``leaf_node``           Capabilities, Lifetime, LeafNode (+ LeafNodeTBS) — §7.2
``nodes``               ParentNode, Node, RatchetTree (ratchet_tree extension) — §7.1, §12.4.3.3
``update_path``         HPKECiphertext, UpdatePathNode, UpdatePath — §7.6
``key_package``         KeyPackage (+ KeyPackageTBS, §10.1 validation) — §10
``psk``                 PreSharedKeyID — §8.4
``proposals``           Add, Update, Remove, PreSharedKey, ReInit, ExternalInit,
                        GroupContextExtensions, Proposal, ProposalOrRef — §12.1
``commit``              Commit — §12.4
``group_info``          GroupInfo (+ GroupInfoTBS) — §12.4.3
``welcome``             GroupSecrets, EncryptedGroupSecrets, Welcome, process_welcome — §12.4.3
``mls_message``         MLSMessage envelope (framing.py's, with our bodies registered) — §6
======================  ==========================================================
"""
from __future__ import annotations

from .commit import Commit
from .credentials import Credential
from .extensions import (ApplicationId, Extension, ExternalPub, ExternalSender, ExternalSenders,
                         RequiredCapabilities, check_unique, find_extension)
from .group_info import GROUP_INFO_LABEL, GroupInfo
from .key_package import KEY_PACKAGE_LABEL, KeyPackage, KeyPackageError, LifetimeError
from .leaf_node import LEAF_NODE_LABEL, Capabilities, LeafNode, Lifetime
from .mls_message import MLSMessage, wrap
from .nodes import Node, ParentNode, RatchetTree
from .proposals import (Add, ExternalInit, GroupContextExtensions, PreSharedKey, Proposal, ProposalOrRef,
                        ReInit, Remove, Update)
from .psk import PreSharedKeyID
from .registries import (ContentType, CredentialType, ExtensionType, LeafNodeSource, NodeType,
                         ProposalOrRefType, ProposalType, ProtocolVersion, PSKType, ResumptionPSKUsage,
                         SenderType, WireFormat)
from .update_path import HPKECiphertext, UpdatePath, UpdatePathNode
from .welcome import (EncryptedGroupSecrets, GroupSecrets, JoinedWelcome, PathSecret, Welcome,
                      WelcomeError, create_welcome, process_welcome)

__all__ = [
    "Commit", "Credential", "ApplicationId", "Extension", "ExternalPub", "ExternalSender",
    "ExternalSenders", "RequiredCapabilities", "check_unique", "find_extension", "GROUP_INFO_LABEL",
    "GroupInfo", "KEY_PACKAGE_LABEL", "KeyPackage", "KeyPackageError", "LifetimeError",
    "LEAF_NODE_LABEL", "Capabilities", "LeafNode", "Lifetime", "MLSMessage", "wrap", "Node",
    "ParentNode", "RatchetTree", "Add", "ExternalInit", "GroupContextExtensions", "PreSharedKey",
    "Proposal", "ProposalOrRef", "ReInit", "Remove", "Update", "PreSharedKeyID", "ContentType",
    "CredentialType", "ExtensionType", "LeafNodeSource", "NodeType", "ProposalOrRefType", "ProposalType",
    "ProtocolVersion", "PSKType", "ResumptionPSKUsage", "SenderType", "WireFormat", "HPKECiphertext",
    "UpdatePath", "UpdatePathNode", "EncryptedGroupSecrets", "GroupSecrets", "JoinedWelcome",
    "PathSecret", "Welcome", "WelcomeError", "create_welcome", "process_welcome",
]
