"""Scapy layers of the MLS messages GBP carries (RFC 9420 §6, §10, §12; reference-map §6).

Where MLS appears: raw records on the transport that are not CBOR frames (the reference's bare
KeyPackage ``00 01 00 01 …`` — version, cipher suite — and the Welcome MLSMessage
``00 01 00 03 …``) and the PREPARE_TRANSITION control args (an MLSMessage PrivateMessage with the
Commit). Every layer is a *view* of the core structure of :mod:`gbp_lab.core.mls` that decoded it
(:class:`~gbp_lab.core.mls.framing.MLSMessage`, :class:`~gbp_lab.core.mls.key_package.KeyPackage`,
:class:`~gbp_lab.core.mls.welcome.Welcome`, :class:`~gbp_lab.core.mls.group_info.GroupInfo`,
:class:`~gbp_lab.core.mls.commit.Commit`, :class:`~gbp_lab.core.mls.proposals.Proposal`); the
fields are for display, and building re-encodes the core object (a dissected layer gives back its
exact bytes). Build new ones with ``Layer.from_core(obj)``; :class:`MLSMessage` itself can be
built from its fields: ``MLSMessage(wire_format=3) / MLSWelcome.from_core(welcome)``.

PrivateMessage (§6.3): with the key log's ``MLS_SENDER_DATA_SECRET`` for (group, epoch) the sender
data is decrypted (``leaf_index``, ``generation``); with ``MLS_ENCRYPTION_SECRET`` (the secret-tree
root) the content too, and the Commit / Proposal / application data becomes the child layer
(the tree width is not on the wire: :func:`~gbp_lab.core.mls.observer.open_private_message`
tries the padded widths; the signature is shown, not verified — that needs the sender's leaf from
the ratchet tree).
"""
from __future__ import annotations

from typing import Any

from scapy.config import conf
from scapy.fields import (ByteEnumField, IntField, LongField, PacketListField, ShortEnumField,
                          XStrField)
from scapy.packet import Packet, bind_layers

from gbp_lab.core.errors import GbpLabError, UsageError
from gbp_lab.core.mls.commit import Commit as _Commit
from gbp_lab.core.mls.framing import MLSMessage as _MLSMessage
from gbp_lab.core.mls.framing import PrivateMessage as _Private
from gbp_lab.core.mls.framing import PublicMessage as _Public
from gbp_lab.core.mls.framing import decrypt_sender_data
from gbp_lab.core.mls.group_info import GroupInfo as _GroupInfo
from gbp_lab.core.mls.key_package import KeyPackage as _KeyPackage
from gbp_lab.core.mls.proposals import Proposal as _Proposal
from gbp_lab.core.mls.registries import (ContentType, ExtensionType, ProposalType, SenderType,
                                         WireFormat)
from gbp_lab.core.mls.observer import open_private_message
from gbp_lab.core.mls.suites import CipherSuite, CipherSuiteId
from gbp_lab.core.mls.welcome import Welcome as _Welcome
from gbp_lab.core.tls import Writer

from . import keystore
from ._common import CoreLayer, annotation, describe_error

__all__ = ["MLSMessage", "MLSPublicMessage", "MLSPrivateMessage", "MLSWelcome", "MLSGroupInfo",
           "MLSKeyPackage", "MLSCommit", "MLSProposal", "MlsBlob", "mls_layer"]

WIRE_FORMATS = {int(w): w.name for w in WireFormat}
CONTENT_TYPES = {int(c): c.name for c in ContentType}
SENDER_TYPES = {int(s): s.name for s in SenderType}
PROPOSAL_TYPES = {int(p): p.name for p in ProposalType}
SUITES = {int(c): c.name for c in CipherSuiteId}
VERSIONS = {1: "mls10"}


def _ext_names(exts) -> str:
    names = []
    for e in exts:
        t = int(e.extension_type)
        try:
            names.append(ExtensionType(t).name)
        except ValueError:
            names.append(hex(t))
    return ", ".join(names) or "none"


def _identity(credential) -> str:
    ident = getattr(credential, "identity", None)
    if ident is None:
        return f"<{getattr(credential, 'credential_type', '?')}>"
    try:
        return ident.decode("utf-8")
    except UnicodeDecodeError:
        return ident.hex()


class MlsLayer(CoreLayer):
    """Base of the MLS view layers: ``core_class.from_bytes`` to dissect, ``to_bytes`` to build."""

    core_class: Any = None

    @classmethod
    def from_core(cls, obj: Any, **kw) -> "MlsLayer":
        """A layer showing the core object *obj* (built with ``obj.to_bytes()``)."""
        pkt = cls(**kw)
        pkt._obj = obj
        pkt.fill(obj)
        pkt.dissect_children_of(obj)
        return pkt

    def decode_core(self, s: bytes) -> Any:
        under = self.underlayer
        if isinstance(under, MLSMessage) and isinstance(getattr(under._obj, "message", None),
                                                        self.core_class):
            return under._obj.message  # already decoded by the envelope
        return self.core_class.from_bytes(s)

    def dissect_children(self) -> None:
        self.dissect_children_of(self._obj)

    def dissect_children_of(self, obj: Any) -> None:
        pass

    def encode_core(self) -> bytes:
        if self._obj is None:
            raise UsageError(f"{type(self).__name__} is built from a core object: use from_core()",
                             vid="DISSECT-MLS-BUILD")
        return self._obj.to_bytes()

    def build_trailer(self) -> bytes:
        return b""


class MLSMessage(MlsLayer):
    """RFC 9420 §6 MLSMessage header (``version``, ``wire_format``); the body is the payload,
    bound by ``wire_format``."""

    name = "MLS Message"
    core_class = _MLSMessage
    fields_desc = [
        ShortEnumField("version", 1, VERSIONS),
        ShortEnumField("wire_format", WireFormat.MLS_PRIVATE_MESSAGE, WIRE_FORMATS),
        annotation("error"),
    ]

    def decode_core(self, s: bytes) -> Any:
        return _MLSMessage.from_bytes(s)

    def consumed(self, s: bytes, obj: Any) -> int:
        return 4  # the body is the payload layer

    def fill(self, m) -> None:
        self.fields["version"] = int(m.version)
        self.fields["wire_format"] = int(m.wire_format)

    def encode_core(self) -> bytes:
        return Writer().u16(int(self.version)).u16(int(self.wire_format)).getvalue()

    def build_trailer(self) -> bytes:
        return self.do_build_payload()

    def describe(self) -> str:
        return f"MLS {WIRE_FORMATS.get(int(self.wire_format), self.wire_format)}"


class MLSPublicMessage(MlsLayer):
    """RFC 9420 §6.2 PublicMessage; the body (Commit / Proposal / application data) is the child."""

    name = "MLS PublicMessage"
    core_class = _Public
    fields_desc = [
        XStrField("group_id", b""),
        LongField("epoch", 0),
        ByteEnumField("sender_type", SenderType.MEMBER, SENDER_TYPES),
        IntField("sender_index", None),
        XStrField("authenticated_data", b""),
        ByteEnumField("content_type", ContentType.COMMIT, CONTENT_TYPES),
        XStrField("signature", b""),
        XStrField("confirmation_tag", None),
        XStrField("membership_tag", None),
        annotation("error"),
    ]

    def fill(self, m) -> None:
        c = m.content
        self.fields.update(group_id=c.group_id, epoch=c.epoch, sender_type=int(c.sender.sender_type),
                           sender_index=c.sender.index, authenticated_data=c.authenticated_data,
                           content_type=int(c.content_type), signature=m.auth.signature,
                           confirmation_tag=m.auth.confirmation_tag,
                           membership_tag=m.membership_tag)

    def dissect_children_of(self, m) -> None:
        self.add_payload(content_layer(m.content.content_type, m.content.body, self))

    def describe(self) -> str:
        return (f"MLS PublicMessage {CONTENT_TYPES.get(int(self.content_type))} epoch={self.epoch} "
                f"sender={self.sender_index}")


def content_layer(content_type: int, body: bytes, under: Packet) -> Packet:
    """The child layer of a FramedContent body."""
    try:
        if content_type == ContentType.COMMIT:
            return MLSCommit.from_core(_Commit.from_bytes(body), _underlayer=under)
        if content_type == ContentType.PROPOSAL:
            return MLSProposal.from_core(_Proposal.from_bytes(body), _underlayer=under)
    except GbpLabError:
        pass
    return conf.raw_layer(body, _internal=1, _underlayer=under)


class MLSPrivateMessage(MlsLayer):
    """RFC 9420 §6.3 PrivateMessage; decrypted with the key log (see the module docstring)."""

    name = "MLS PrivateMessage"
    core_class = _Private
    annotations = ("error", "leaf_index", "generation", "crypto", "signature")
    fields_desc = [
        XStrField("group_id", b""),
        LongField("epoch", 0),
        ByteEnumField("content_type", ContentType.COMMIT, CONTENT_TYPES),
        XStrField("authenticated_data", b""),
        XStrField("encrypted_sender_data", b""),
        XStrField("ciphertext", b""),
        annotation("leaf_index"),
        annotation("generation"),
        annotation("signature"),
        annotation("crypto"),
        annotation("error"),
    ]

    def fill(self, m) -> None:
        self.fields.update(group_id=m.group_id, epoch=m.epoch, content_type=int(m.content_type),
                           authenticated_data=m.authenticated_data,
                           encrypted_sender_data=m.encrypted_sender_data, ciphertext=m.ciphertext)

    def dissect_children_of(self, m) -> None:
        log = keystore.current_keylog()
        if log is None:
            self.fields["crypto"] = "encrypted (no key log in use)"
            return
        gid = bytes(m.group_id)
        sds = log.sender_data_secret(gid, m.epoch)
        if sds is None:
            self.fields["crypto"] = f"not decrypted: no sender-data secret for epoch {m.epoch}"
            return
        try:
            cs = CipherSuite.get(log.suite(gid))
            sd = decrypt_sender_data(cs, m, sds)
        except GbpLabError as exc:
            self.fields["crypto"] = f"sender data not decrypted: {describe_error(exc)}"
            return
        self.fields["leaf_index"] = str(sd.leaf_index)
        self.fields["generation"] = str(sd.generation)
        enc = log.encryption_secret(gid, m.epoch)
        if enc is None:
            self.fields["crypto"] = "sender data decrypted; content not (no encryption secret)"
            return
        try:
            opened = open_private_message(m, cs, sds, enc)
        except GbpLabError as exc:
            self.fields["crypto"] = f"content not decrypted: {describe_error(exc)}"
            return
        self.fields["signature"] = opened.auth.signature.hex() + " (not verified)"
        self.fields["crypto"] = f"decrypted (epoch {m.epoch}, leaf {sd.leaf_index})"
        self.add_payload(content_layer(opened.content.content_type, opened.content.body, self))

    def describe(self) -> str:
        return (f"MLS PrivateMessage {CONTENT_TYPES.get(int(self.content_type))} "
                f"epoch={self.epoch}")


class MLSWelcome(MlsLayer):
    """RFC 9420 §12.4.3.1 Welcome (the group secrets and GroupInfo stay encrypted: they need the
    joiner's HPKE init key)."""

    name = "MLS Welcome"
    core_class = _Welcome
    annotations = ("error", "new_members")
    fields_desc = [
        ShortEnumField("cipher_suite", 1, SUITES),
        IntField("secrets_count", 0),
        XStrField("encrypted_group_info", b""),
        annotation("new_members"),
        annotation("error"),
    ]

    def fill(self, w) -> None:
        self.fields.update(cipher_suite=int(w.cipher_suite), secrets_count=len(w.secrets),
                           encrypted_group_info=w.encrypted_group_info)
        self.fields["new_members"] = ", ".join(s.new_member.hex() for s in w.secrets)

    def describe(self) -> str:
        return f"MLS Welcome for {self.secrets_count} member(s)"


class MLSGroupInfo(MlsLayer):
    """RFC 9420 §12.4.3 GroupInfo."""

    name = "MLS GroupInfo"
    core_class = _GroupInfo
    annotations = ("error", "extensions")
    fields_desc = [
        ShortEnumField("cipher_suite", 1, SUITES),
        XStrField("group_id", b""),
        LongField("epoch", 0),
        XStrField("tree_hash", b""),
        XStrField("confirmed_transcript_hash", b""),
        XStrField("confirmation_tag", b""),
        IntField("signer", 0),
        XStrField("signature", b""),
        annotation("extensions"),
        annotation("error"),
    ]

    def fill(self, g) -> None:
        gc = g.group_context
        self.fields.update(cipher_suite=int(gc.cipher_suite), group_id=gc.group_id, epoch=gc.epoch,
                           tree_hash=gc.tree_hash,
                           confirmed_transcript_hash=gc.confirmed_transcript_hash,
                           confirmation_tag=g.confirmation_tag, signer=g.signer,
                           signature=g.signature, extensions=_ext_names(g.extensions))

    def describe(self) -> str:
        return f"MLS GroupInfo epoch={self.epoch} signer={self.signer}"


class MLSKeyPackage(MlsLayer):
    """RFC 9420 §10 KeyPackage (bare on the GBP transport, or the body of an MLSMessage)."""

    name = "MLS KeyPackage"
    core_class = _KeyPackage
    annotations = ("error", "identity", "extensions")
    fields_desc = [
        ShortEnumField("version", 1, VERSIONS),
        ShortEnumField("cipher_suite", 1, SUITES),
        XStrField("init_key", b""),
        XStrField("encryption_key", b""),
        XStrField("signature_key", b""),
        XStrField("signature", b""),
        annotation("identity"),
        annotation("extensions"),
        annotation("error"),
    ]

    def fill(self, kp) -> None:
        leaf = kp.leaf_node
        self.fields.update(version=int(kp.version), cipher_suite=int(kp.cipher_suite),
                           init_key=kp.init_key, encryption_key=leaf.encryption_key,
                           signature_key=leaf.signature_key, signature=kp.signature,
                           identity=_identity(leaf.credential),
                           extensions=_ext_names(kp.extensions))

    def describe(self) -> str:
        return f"MLS KeyPackage identity={self.getfieldval('identity')!r}"


class MLSProposal(MlsLayer):
    """RFC 9420 §12.1 Proposal (``detail`` summarises the body)."""

    name = "MLS Proposal"
    core_class = _Proposal
    annotations = ("error", "detail")
    fields_desc = [
        ShortEnumField("proposal_type", ProposalType.ADD, PROPOSAL_TYPES),
        annotation("detail"),
        annotation("error"),
    ]

    def fill(self, p) -> None:
        self.fields["proposal_type"] = int(p.proposal_type)
        b = p.body
        if p.proposal_type == ProposalType.ADD:
            detail = f"add {_identity(b.key_package.leaf_node.credential)!r}"
        elif p.proposal_type == ProposalType.REMOVE:
            detail = f"remove leaf {b.removed}"
        elif p.proposal_type == ProposalType.UPDATE:
            detail = f"update by {_identity(b.leaf_node.credential)!r}"
        else:
            detail = repr(b)[:200]
        self.fields["detail"] = detail

    def dissect_children_of(self, p) -> None:
        if p.proposal_type == ProposalType.ADD:
            self.add_payload(MLSKeyPackage.from_core(p.body.key_package, _underlayer=self))

    def describe(self) -> str:
        return f"MLS Proposal {PROPOSAL_TYPES.get(int(self.proposal_type))}"


class MLSCommit(MlsLayer):
    """RFC 9420 §12.4 Commit: inline proposals (as :class:`MLSProposal` entries) or references,
    and whether an UpdatePath is present."""

    name = "MLS Commit"
    core_class = _Commit
    annotations = ("error", "references", "path")
    fields_desc = [
        IntField("proposal_count", 0),
        PacketListField("proposals", [], MLSProposal),
        annotation("references"),
        annotation("path"),
        annotation("error"),
    ]

    def fill(self, c) -> None:
        self.fields["proposal_count"] = len(c.proposals)
        self.fields["proposals"] = [MLSProposal.from_core(p.proposal) for p in c.proposals
                                    if p.proposal is not None]
        refs = [p.reference.hex() for p in c.proposals if p.reference is not None]
        if refs:
            self.fields["references"] = ", ".join(refs)
        self.fields["path"] = ("absent" if c.path is None else
                               f"present: {len(c.path.nodes)} node(s), leaf "
                               f"{_identity(c.path.leaf_node.credential)!r}")

    def _snapshot(self):
        snap = super()._snapshot()
        snap.pop("proposals", None)  # packets compare by identity; shown, not edited
        return snap

    def describe(self) -> str:
        return f"MLS Commit {self.proposal_count} proposal(s), path {self.getfieldval('path')}"


class MlsBlob(Packet):
    """Dispatcher for an MLS blob of unknown kind: MLSMessage, else a bare KeyPackage (the
    reference exports KeyPackages without the envelope; both start ``00 01``)."""

    name = "MLS blob"

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        if not _pkt:
            return MLSMessage
        data = bytes(_pkt)
        try:
            _MLSMessage.from_bytes(data)
            return MLSMessage
        except GbpLabError:
            pass
        try:
            _KeyPackage.from_bytes(data)
            return MLSKeyPackage
        except GbpLabError:
            return MLSMessage  # shown with its decode error


def mls_layer(data: bytes, **kw) -> Packet:
    """The layer for MLS bytes: :class:`MLSMessage` or a bare :class:`MLSKeyPackage`."""
    return MlsBlob(bytes(data), **kw)


bind_layers(MLSMessage, MLSPublicMessage, wire_format=int(WireFormat.MLS_PUBLIC_MESSAGE))
bind_layers(MLSMessage, MLSPrivateMessage, wire_format=int(WireFormat.MLS_PRIVATE_MESSAGE))
bind_layers(MLSMessage, MLSWelcome, wire_format=int(WireFormat.MLS_WELCOME))
bind_layers(MLSMessage, MLSGroupInfo, wire_format=int(WireFormat.MLS_GROUP_INFO))
bind_layers(MLSMessage, MLSKeyPackage, wire_format=int(WireFormat.MLS_KEY_PACKAGE))
