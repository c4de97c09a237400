"""MLS message framing: FramedContent, PublicMessage, PrivateMessage, MLSMessage (RFC 9420 §6).

Structures (§6, §6.1, §6.2, §6.3)::

    struct {
        opaque group_id<V>; uint64 epoch; Sender sender; opaque authenticated_data<V>;
        ContentType content_type;
        select (FramedContent.content_type) {
            case application: opaque application_data<V>;
            case proposal:    Proposal proposal;
            case commit:      Commit commit;
        };
    } FramedContent;

    struct { opaque signature<V>;
             select (content_type) { case commit: MAC confirmation_tag; default: ; } }
        FramedContentAuthData;

    struct { ProtocolVersion version = mls10; WireFormat wire_format; FramedContent content;
             select (sender.sender_type) { case member, new_member_commit: GroupContext context; } }
        FramedContentTBS;

    struct { WireFormat wire_format; FramedContent content; FramedContentAuthData auth; }
        AuthenticatedContent;

    struct { FramedContent content; FramedContentAuthData auth;
             select (sender_type) { case member: MAC membership_tag; } } PublicMessage;

    struct { opaque group_id<V>; uint64 epoch; ContentType content_type;
             opaque authenticated_data<V>; opaque encrypted_sender_data<V>; opaque ciphertext<V>; }
        PrivateMessage;

The Proposal/Commit body is kept as its raw TLS bytes plus the content type (the structs live in
the messages module). Because a Proposal or Commit carries no length prefix, decoding needs to know
where it ends: every decoder takes an optional ``read_body(reader, content_type) -> bytes`` hook
that consumes exactly one body and returns its bytes; the default (:func:`default_read_body`)
measures it with the ``Proposal`` / ``Commit`` decoders of the structs modules (§12.1, §12.4) and
keeps the bytes (decode them with ``Proposal.from_bytes`` / ``Commit.from_bytes`` when needed).

Cryptographic entry points:

* :func:`sign_content` / :func:`verify_content_signature` — ``SignWithLabel(., "FramedContentTBS", .)``
* :func:`create_public_message` / :func:`unprotect_public_message` — PublicMessage with the
  membership tag (§6.2).
* :func:`protect` / :func:`unprotect` — PrivateMessage (§6.3): content AEAD keyed by the secret
  tree with the reuse guard, sender data AEAD keyed from the ciphertext sample, zero padding.

Errors: malformed bytes → :class:`DecodeError`; bad membership tag → :class:`MembershipTagError`;
bad signature → :class:`FramingSignatureError`; AEAD failures → :class:`SenderDataDecryptError` /
:class:`ContentDecryptError`; wrong group/epoch → :class:`WrongGroupError`/:class:`WrongEpochError`;
key problems from the secret tree (replay, too far) pass through as they are.
"""
from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from typing import Callable, Optional, Tuple, Union

from ..errors import (CryptoError, DecodeError, DecryptError, SignatureError, StateError,
                      UsageError)
from ..tls import Reader, Writer, decode
from .commit import Commit
from .proposals import Proposal
from .registries import ContentType, ProtocolVersion, SenderType, Struct, WireFormat, enum_value
from .schedule import GroupContext
from .secret_tree import RatchetType, SecretTree
from .secrets import BytesLike, Secret, raw
from .suites import CipherSuite

ReadBody = Callable[[Reader, ContentType], bytes]
GroupContextLike = Union[GroupContext, bytes]


# --- errors ------------------------------------------------------------------------------------

class MembershipTagError(CryptoError):
    """A PublicMessage's membership tag does not verify (RFC 9420 §6.2)."""

    default_vid = "MLS-MEMBERSHIP-TAG"


class FramingSignatureError(SignatureError):
    """The signature over FramedContentTBS does not verify (RFC 9420 §6.1)."""

    default_vid = "MLS-CONTENT-SIGNATURE"


class SenderDataDecryptError(DecryptError):
    """The encrypted sender data of a PrivateMessage does not decrypt (RFC 9420 §6.3.2)."""

    default_vid = "MLS-SENDER-DATA-DECRYPT"


class ContentDecryptError(DecryptError):
    """The ciphertext of a PrivateMessage does not decrypt (RFC 9420 §6.3.1)."""

    default_vid = "MLS-CONTENT-DECRYPT"


class WrongGroupError(StateError):
    """The message is for another group."""

    default_vid = "MLS-WRONG-GROUP"


class WrongEpochError(StateError):
    """The message is for another epoch than the keys at hand."""

    default_vid = "MLS-WRONG-EPOCH"


# --- the body (Proposal / Commit are not length-prefixed) --------------------------------------

def default_read_body(r: Reader, content_type: ContentType) -> bytes:
    """Consume one FramedContent body and return it: the ``application_data`` (without its length
    prefix) for application messages, the raw TLS bytes of the Proposal / Commit otherwise."""
    if content_type == ContentType.APPLICATION:
        return r.vec("FramedContent.application_data")
    start = r.pos
    if content_type == ContentType.PROPOSAL:
        Proposal.decode(r)
    elif content_type == ContentType.COMMIT:
        Commit.decode(r)
    else:  # pragma: no cover - content_type is validated by the caller
        raise DecodeError(f"content type {content_type}", vid="MLS-ENUM")
    return bytes(r.data[start:r.pos])


def _write_body(w: Writer, content_type: ContentType, body: bytes) -> None:
    if content_type == ContentType.APPLICATION:
        w.vec(body)
    else:
        w.raw(body)


# --- structures ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sender(Struct):
    """RFC 9420 §6 ``Sender``: ``index`` is the leaf index (member) or the index into the
    external_senders extension (external); None for new members."""

    sender_type: SenderType
    index: Optional[int] = None

    def __post_init__(self) -> None:
        needs = self.sender_type in (SenderType.MEMBER, SenderType.EXTERNAL)
        if needs != (self.index is not None):
            raise UsageError(f"{SenderType(self.sender_type).name} sender "
                             f"{'needs' if needs else 'has no'} index", vid="MLS-SENDER")

    @classmethod
    def member(cls, leaf_index: int) -> "Sender":
        return cls(SenderType.MEMBER, int(leaf_index))

    @classmethod
    def external(cls, sender_index: int) -> "Sender":
        return cls(SenderType.EXTERNAL, int(sender_index))

    @classmethod
    def new_member_proposal(cls) -> "Sender":
        return cls(SenderType.NEW_MEMBER_PROPOSAL)

    @classmethod
    def new_member_commit(cls) -> "Sender":
        return cls(SenderType.NEW_MEMBER_COMMIT)

    def encode(self, w: Writer) -> None:
        w.u8(self.sender_type)
        if self.index is not None:
            w.u32(self.index)

    @classmethod
    def decode(cls, r: Reader) -> "Sender":
        t = enum_value(SenderType, r.u8("Sender.sender_type"), "Sender.sender_type")
        if t in (SenderType.MEMBER, SenderType.EXTERNAL):
            return cls(t, r.u32("Sender.index"))
        return cls(t)


@dataclass(frozen=True)
class FramedContent(Struct):
    """RFC 9420 §6 ``FramedContent``; ``body`` = application data, or raw Proposal/Commit bytes."""

    group_id: bytes
    epoch: int
    sender: Sender
    authenticated_data: bytes
    content_type: ContentType
    body: bytes

    def encode(self, w: Writer) -> None:
        w.vec(self.group_id).u64(self.epoch)
        self.sender.encode(w)
        w.vec(self.authenticated_data).u8(self.content_type)
        _write_body(w, self.content_type, self.body)

    @classmethod
    def decode(cls, r: Reader, read_body: Optional[ReadBody] = None) -> "FramedContent":
        gid = r.vec("FramedContent.group_id")
        epoch = r.u64("FramedContent.epoch")
        sender = Sender.decode(r)
        ad = r.vec("FramedContent.authenticated_data")
        ct = enum_value(ContentType, r.u8("FramedContent.content_type"), "FramedContent.content_type")
        body = (read_body or default_read_body)(r, ct)
        return cls(gid, epoch, sender, ad, ct, body)


@dataclass(frozen=True)
class FramedContentAuthData:
    """RFC 9420 §6.1 ``FramedContentAuthData``; ``confirmation_tag`` present iff commit."""

    signature: bytes
    confirmation_tag: Optional[bytes] = None

    def encode(self, w: Writer, content_type: ContentType) -> None:
        w.vec(self.signature)
        if content_type == ContentType.COMMIT:
            if self.confirmation_tag is None:
                raise UsageError("a commit needs a confirmation tag", vid="MLS-CONFIRMATION-TAG-MISSING")
            w.vec(self.confirmation_tag)
        elif self.confirmation_tag is not None:
            raise UsageError("only commits carry a confirmation tag", vid="MLS-CONFIRMATION-TAG-EXTRA")

    def to_bytes(self, content_type: ContentType) -> bytes:
        w = Writer()
        self.encode(w, content_type)
        return w.getvalue()

    @classmethod
    def decode(cls, r: Reader, content_type: ContentType) -> "FramedContentAuthData":
        sig = r.vec("FramedContentAuthData.signature")
        tag = r.vec("FramedContentAuthData.confirmation_tag") if content_type == ContentType.COMMIT else None
        return cls(sig, tag)


@dataclass(frozen=True)
class AuthenticatedContent:
    """RFC 9420 §6.1 ``AuthenticatedContent`` — what a receiver gets after unprotecting a
    message, and the input of transcript hashes (§8.2) and proposal refs (§5.2)."""

    wire_format: WireFormat
    content: FramedContent
    auth: FramedContentAuthData

    def encode(self, w: Writer) -> None:
        w.u16(self.wire_format)
        self.content.encode(w)
        self.auth.encode(w, self.content.content_type)

    def to_bytes(self) -> bytes:
        w = Writer()
        self.encode(w)
        return w.getvalue()

    @classmethod
    def decode(cls, r: Reader, read_body: Optional[ReadBody] = None) -> "AuthenticatedContent":
        wf = enum_value(WireFormat, r.u16("AuthenticatedContent.wire_format"), "wire_format")
        content = FramedContent.decode(r, read_body)
        return cls(wf, content, FramedContentAuthData.decode(r, content.content_type))

    @classmethod
    def from_bytes(cls, data: bytes, read_body: Optional[ReadBody] = None) -> "AuthenticatedContent":
        return decode(bytes(data), lambda r: cls.decode(r, read_body), "AuthenticatedContent")


def _gc(group_context: Optional[GroupContextLike]) -> Optional[bytes]:
    if group_context is None:
        return None
    return group_context.to_bytes() if isinstance(group_context, GroupContext) else bytes(group_context)


def framed_content_tbs(wire_format: WireFormat, content: FramedContent,
                       group_context: Optional[GroupContextLike]) -> bytes:
    """TLS encoding of ``FramedContentTBS`` (RFC 9420 §6.1). The GroupContext is required for
    member and new_member_commit senders and ignored for the others."""
    w = Writer().u16(ProtocolVersion.MLS10).u16(wire_format)
    content.encode(w)
    if content.sender.sender_type in (SenderType.MEMBER, SenderType.NEW_MEMBER_COMMIT):
        gc = _gc(group_context)
        if gc is None:
            raise UsageError("FramedContentTBS of a member/new_member_commit sender needs the "
                             "GroupContext", vid="MLS-TBS-CONTEXT")
        w.raw(gc)
    return w.getvalue()


def sign_content(cs: CipherSuite, signature_priv: BytesLike, wire_format: WireFormat,
                 content: FramedContent, group_context: Optional[GroupContextLike]) -> bytes:
    """``SignWithLabel(priv, "FramedContentTBS", FramedContentTBS)`` (RFC 9420 §6.1)."""
    return cs.sign_with_label(raw(signature_priv), b"FramedContentTBS",
                              framed_content_tbs(wire_format, content, group_context))


def verify_content_signature(cs: CipherSuite, signature_pub: bytes, ac: AuthenticatedContent,
                             group_context: Optional[GroupContextLike]) -> None:
    """Raise :class:`FramingSignatureError` unless ``ac.auth.signature`` verifies (§6.1)."""
    tbs = framed_content_tbs(ac.wire_format, ac.content, group_context)
    try:
        cs.verify_with_label(bytes(signature_pub), b"FramedContentTBS", tbs, ac.auth.signature)
    except SignatureError as exc:
        raise FramingSignatureError("FramedContentTBS signature does not verify",
                                    where=f"sender {ac.content.sender}") from exc


def _check_group_epoch(content_gid: bytes, content_epoch: int,
                       group_context: Optional[GroupContextLike]) -> None:
    if isinstance(group_context, GroupContext):
        if content_gid != group_context.group_id:
            raise WrongGroupError(f"message for group {content_gid.hex()}, not "
                                  f"{group_context.group_id.hex()}")
        if content_epoch != group_context.epoch:
            raise WrongEpochError(f"message for epoch {content_epoch}, current is "
                                  f"{group_context.epoch}", where=content_epoch)


# --- PublicMessage (§6.2) -------------------------------------------------------------------

@dataclass(frozen=True)
class PublicMessage:
    """RFC 9420 §6.2 ``PublicMessage``; ``membership_tag`` present iff the sender is a member."""

    content: FramedContent
    auth: FramedContentAuthData
    membership_tag: Optional[bytes] = None

    def encode(self, w: Writer) -> None:
        self.content.encode(w)
        self.auth.encode(w, self.content.content_type)
        if self.content.sender.sender_type == SenderType.MEMBER:
            if self.membership_tag is None:
                raise UsageError("a member's PublicMessage needs a membership tag",
                                 vid="MLS-MEMBERSHIP-TAG-MISSING")
            w.vec(self.membership_tag)
        elif self.membership_tag is not None:
            raise UsageError("only member senders carry a membership tag",
                             vid="MLS-MEMBERSHIP-TAG-EXTRA")

    def to_bytes(self) -> bytes:
        w = Writer()
        self.encode(w)
        return w.getvalue()

    @classmethod
    def decode(cls, r: Reader, read_body: Optional[ReadBody] = None) -> "PublicMessage":
        content = FramedContent.decode(r, read_body)
        auth = FramedContentAuthData.decode(r, content.content_type)
        tag = r.vec("PublicMessage.membership_tag") if content.sender.sender_type == SenderType.MEMBER else None
        return cls(content, auth, tag)

    @classmethod
    def from_bytes(cls, data: bytes, read_body: Optional[ReadBody] = None) -> "PublicMessage":
        return decode(bytes(data), lambda r: cls.decode(r, read_body), "PublicMessage")

    @property
    def authenticated_content(self) -> AuthenticatedContent:
        return AuthenticatedContent(WireFormat.MLS_PUBLIC_MESSAGE, self.content, self.auth)


def membership_tag(cs: CipherSuite, membership_key: BytesLike, content: FramedContent,
                   auth: FramedContentAuthData, group_context: GroupContextLike) -> bytes:
    """``MAC(membership_key, AuthenticatedContentTBM)`` with ``AuthenticatedContentTBM =
    FramedContentTBS ‖ FramedContentAuthData`` (RFC 9420 §6.2)."""
    tbm = (framed_content_tbs(WireFormat.MLS_PUBLIC_MESSAGE, content, group_context)
           + auth.to_bytes(content.content_type))
    return cs.mac(raw(membership_key), tbm)


def create_public_message(cs: CipherSuite, content: FramedContent, signature_priv: BytesLike,
                          group_context: Optional[GroupContextLike], *,
                          membership_key: Optional[BytesLike] = None,
                          confirmation_tag: Optional[bytes] = None) -> PublicMessage:
    """Sign ``content`` (and tag it when the sender is a member) into a PublicMessage (§6.2).

    Application data may not be sent as a PublicMessage (§6.2): :class:`UsageError`."""
    if content.content_type == ContentType.APPLICATION:
        raise UsageError("application data must be sent as a PrivateMessage", vid="MLS-PUBLIC-APPLICATION")
    sig = sign_content(cs, signature_priv, WireFormat.MLS_PUBLIC_MESSAGE, content, group_context)
    auth = FramedContentAuthData(sig, confirmation_tag)
    tag = None
    if content.sender.sender_type == SenderType.MEMBER:
        if membership_key is None or group_context is None:
            raise UsageError("a member's PublicMessage needs the membership key and GroupContext",
                             vid="MLS-MEMBERSHIP-KEY")
        tag = membership_tag(cs, membership_key, content, auth, group_context)
    return PublicMessage(content, auth, tag)


def unprotect_public_message(cs: CipherSuite, msg: PublicMessage, signature_pub: bytes,
                             group_context: Optional[GroupContextLike], *,
                             membership_key: Optional[BytesLike] = None) -> AuthenticatedContent:
    """Verify a PublicMessage (§6.2): group/epoch (when ``group_context`` is a GroupContext), the
    membership tag (member senders; needs ``membership_key``), then the signature.

    ``signature_pub`` is the sender's signature key, looked up by the caller from the sender
    (leaf, external sender or the new member's LeafNode)."""
    c = msg.content
    _check_group_epoch(c.group_id, c.epoch, group_context)
    if c.content_type == ContentType.APPLICATION:
        raise DecodeError("application data in a PublicMessage", vid="MLS-PUBLIC-APPLICATION")
    if c.sender.sender_type == SenderType.MEMBER:
        if membership_key is None or group_context is None:
            raise UsageError("verifying a member's PublicMessage needs the membership key and "
                             "GroupContext", vid="MLS-MEMBERSHIP-KEY")
        want = membership_tag(cs, membership_key, c, msg.auth, group_context)
        if msg.membership_tag is None or not hmac.compare_digest(want, msg.membership_tag):
            raise MembershipTagError("membership tag does not verify", where=f"leaf {c.sender.index}")
    ac = msg.authenticated_content
    verify_content_signature(cs, signature_pub, ac, group_context)
    return ac


# --- PrivateMessage (§6.3) ------------------------------------------------------------------

@dataclass(frozen=True)
class PrivateMessage(Struct):
    """RFC 9420 §6.3 ``PrivateMessage``."""

    group_id: bytes
    epoch: int
    content_type: ContentType
    authenticated_data: bytes
    encrypted_sender_data: bytes
    ciphertext: bytes

    def encode(self, w: Writer) -> None:
        w.vec(self.group_id).u64(self.epoch).u8(self.content_type).vec(self.authenticated_data)
        w.vec(self.encrypted_sender_data).vec(self.ciphertext)

    @classmethod
    def decode(cls, r: Reader) -> "PrivateMessage":
        gid = r.vec("PrivateMessage.group_id")
        epoch = r.u64("PrivateMessage.epoch")
        ct = enum_value(ContentType, r.u8("PrivateMessage.content_type"), "PrivateMessage.content_type")
        return cls(gid, epoch, ct, r.vec("PrivateMessage.authenticated_data"),
                   r.vec("PrivateMessage.encrypted_sender_data"), r.vec("PrivateMessage.ciphertext"))

    def content_aad(self) -> bytes:
        """``PrivateContentAAD`` (§6.3.1)."""
        return (Writer().vec(self.group_id).u64(self.epoch).u8(self.content_type)
                .vec(self.authenticated_data).getvalue())

    def sender_data_aad(self) -> bytes:
        """``SenderDataAAD`` (§6.3.2)."""
        return Writer().vec(self.group_id).u64(self.epoch).u8(self.content_type).getvalue()


@dataclass(frozen=True)
class SenderData(Struct):
    """RFC 9420 §6.3.2 ``SenderData``: leaf index, generation, 4-byte reuse guard."""

    leaf_index: int
    generation: int
    reuse_guard: bytes

    def encode(self, w: Writer) -> None:
        if len(self.reuse_guard) != 4:
            raise UsageError("reuse_guard must be 4 bytes", vid="MLS-REUSE-GUARD")
        w.u32(self.leaf_index).u32(self.generation).raw(self.reuse_guard)

    @classmethod
    def decode(cls, r: Reader) -> "SenderData":
        return cls(r.u32("SenderData.leaf_index"), r.u32("SenderData.generation"),
                   r.raw(4, "SenderData.reuse_guard"))


def ciphertext_sample(cs: CipherSuite, ciphertext: bytes) -> bytes:
    """The first ``KDF.Nh`` bytes of the content ciphertext, or all of it if shorter (§6.3.2)."""
    return bytes(ciphertext[:cs.hash_length])


def sender_data_key_nonce(cs: CipherSuite, sender_data_secret: BytesLike,
                          ciphertext: bytes) -> Tuple[Secret, Secret]:
    """RFC 9420 §6.3.2: ``ExpandWithLabel(sender_data_secret, "key"/"nonce", sample, Nk/Nn)``."""
    sample = ciphertext_sample(cs, ciphertext)
    s = raw(sender_data_secret)
    return (Secret(cs.expand_with_label(s, b"key", sample, cs.aead_key_length), "sender_data_key"),
            Secret(cs.expand_with_label(s, b"nonce", sample, cs.aead_nonce_length), "sender_data_nonce"))


def _guarded_nonce(nonce: bytes, reuse_guard: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(reuse_guard, nonce[:4])) + nonce[4:]


def _ratchet_type(content_type: ContentType) -> RatchetType:
    return RatchetType.APPLICATION if content_type == ContentType.APPLICATION else RatchetType.HANDSHAKE


def protect(cs: CipherSuite, content: FramedContent, auth: FramedContentAuthData,
            secret_tree: SecretTree, sender_data_secret: BytesLike, *, padding: int = 0,
            reuse_guard: Optional[bytes] = None) -> PrivateMessage:
    """Encrypt an already-signed member ``content`` into a PrivateMessage (RFC 9420 §6.3).

    Takes the next key of the sender's ratchet (handshake or application) from ``secret_tree``,
    XORs a random (or given) 4-byte reuse guard into the nonce, appends ``padding`` zero bytes."""
    if content.sender.sender_type != SenderType.MEMBER:
        raise UsageError("only members send PrivateMessages", vid="MLS-PRIVATE-SENDER")
    if padding < 0:
        raise UsageError("padding must be >= 0", vid="MLS-PADDING")
    guard = os.urandom(4) if reuse_guard is None else bytes(reuse_guard)
    if len(guard) != 4:
        raise UsageError("reuse_guard must be 4 bytes", vid="MLS-REUSE-GUARD")
    leaf = content.sender.index
    key = secret_tree.next_sending_key(leaf, _ratchet_type(content.content_type))
    pt = Writer()
    _write_body(pt, content.content_type, content.body)
    auth.encode(pt, content.content_type)
    pt.raw(bytes(padding))
    shell = PrivateMessage(content.group_id, content.epoch, content.content_type,
                           content.authenticated_data, b"", b"")
    ciphertext = cs.aead_encrypt(key.key.reveal(), _guarded_nonce(key.nonce.reveal(), guard),
                                 shell.content_aad(), pt.getvalue())
    sd_key, sd_nonce = sender_data_key_nonce(cs, sender_data_secret, ciphertext)
    esd = cs.aead_encrypt(sd_key.reveal(), sd_nonce.reveal(), shell.sender_data_aad(),
                          SenderData(leaf, key.generation, guard).to_bytes())
    return PrivateMessage(content.group_id, content.epoch, content.content_type,
                          content.authenticated_data, esd, ciphertext)


def create_private_message(cs: CipherSuite, content: FramedContent, signature_priv: BytesLike,
                           group_context: GroupContextLike, secret_tree: SecretTree,
                           sender_data_secret: BytesLike, *, confirmation_tag: Optional[bytes] = None,
                           padding: int = 0, reuse_guard: Optional[bytes] = None) -> PrivateMessage:
    """Sign ``content`` (wire format private) and :func:`protect` it."""
    sig = sign_content(cs, signature_priv, WireFormat.MLS_PRIVATE_MESSAGE, content, group_context)
    return protect(cs, content, FramedContentAuthData(sig, confirmation_tag), secret_tree,
                   sender_data_secret, padding=padding, reuse_guard=reuse_guard)


def decrypt_sender_data(cs: CipherSuite, msg: PrivateMessage,
                        sender_data_secret: BytesLike) -> SenderData:
    """Decrypt and decode a PrivateMessage's sender data (RFC 9420 §6.3.2)."""
    sd_key, sd_nonce = sender_data_key_nonce(cs, sender_data_secret, msg.ciphertext)
    try:
        pt = cs.aead_decrypt(sd_key.reveal(), sd_nonce.reveal(), msg.sender_data_aad(),
                             msg.encrypted_sender_data)
    except DecryptError as exc:
        raise SenderDataDecryptError("sender data does not decrypt") from exc
    return SenderData.from_bytes(pt)


def _parse_private_content(pt: bytes, content_type: ContentType,
                           read_body: Optional[ReadBody]) -> Tuple[bytes, FramedContentAuthData]:
    r = Reader(pt, context="PrivateMessageContent")
    body = (read_body or default_read_body)(r, content_type)
    auth = FramedContentAuthData.decode(r, content_type)
    padding = pt[r.pos:]
    if padding.count(0) != len(padding):
        raise DecodeError("PrivateMessageContent padding is not all zero", vid="MLS-PADDING",
                          where=f"PrivateMessageContent@{r.pos}")
    return body, auth


def unprotect(cs: CipherSuite, msg: PrivateMessage, secret_tree: SecretTree,
              sender_data_secret: BytesLike, *, group_context: Optional[GroupContextLike] = None,
              read_body: Optional[ReadBody] = None) -> Tuple[AuthenticatedContent, SenderData]:
    """Decrypt a PrivateMessage (RFC 9420 §6.3) into its AuthenticatedContent (signature not yet
    checked: call :func:`verify_content_signature` with the sender's key, or use
    :func:`unprotect_and_verify`).

    The key of the sender's generation is consumed from ``secret_tree``; if the content then
    fails to decrypt, the key is put back so a forged message cannot burn a genuine one."""
    _check_group_epoch(msg.group_id, msg.epoch, group_context)
    sd = decrypt_sender_data(cs, msg, sender_data_secret)
    return open_content(cs, msg, sd, secret_tree, read_body=read_body), sd


def open_content(cs: CipherSuite, msg: PrivateMessage, sd: SenderData, secret_tree: SecretTree, *,
                 read_body: Optional[ReadBody] = None) -> AuthenticatedContent:
    """The second half of :func:`unprotect`: decrypt ``msg``'s content with the key of the
    already-decrypted sender data ``sd`` (RFC 9420 §6.3.1, §9.1). A failed decryption puts the
    key back into ``secret_tree`` and raises :class:`ContentDecryptError`."""
    kind = _ratchet_type(msg.content_type)
    key = secret_tree.key_for(sd.leaf_index, kind, sd.generation)
    try:
        pt = cs.aead_decrypt(key.key.reveal(), _guarded_nonce(key.nonce.reveal(), sd.reuse_guard),
                             msg.content_aad(), msg.ciphertext)
    except DecryptError as exc:
        secret_tree.give_back(sd.leaf_index, kind, key)
        raise ContentDecryptError("PrivateMessage content does not decrypt",
                                  where=f"leaf {sd.leaf_index} generation {sd.generation}") from exc
    body, auth = _parse_private_content(pt, msg.content_type, read_body)
    content = FramedContent(msg.group_id, msg.epoch, Sender.member(sd.leaf_index),
                            msg.authenticated_data, msg.content_type, body)
    return AuthenticatedContent(WireFormat.MLS_PRIVATE_MESSAGE, content, auth)


def unprotect_and_verify(cs: CipherSuite, msg: PrivateMessage, secret_tree: SecretTree,
                         sender_data_secret: BytesLike, group_context: GroupContextLike,
                         signature_pub_for_leaf: Callable[[int], bytes], *,
                         read_body: Optional[ReadBody] = None) -> AuthenticatedContent:
    """:func:`unprotect` then verify the signature with ``signature_pub_for_leaf(leaf_index)``."""
    ac, sd = unprotect(cs, msg, secret_tree, sender_data_secret, group_context=group_context,
                       read_body=read_body)
    verify_content_signature(cs, signature_pub_for_leaf(sd.leaf_index), ac, group_context)
    return ac


# --- MLSMessage (§6) ------------------------------------------------------------------------

#: Decoders for the MLSMessage bodies this module does not own (welcome, group_info,
#: key_package): ``wire_format -> callable(Reader) -> object``. Unregistered formats keep the rest
#: of the input as opaque bytes. The messages module registers its decoders with
#: :func:`register_body_decoder`.
_BODY_DECODERS: dict = {}


def register_body_decoder(wire_format: WireFormat, decoder: Callable[[Reader], object]) -> None:
    """Let ``MLSMessage.decode`` build ``decoder(reader)`` for ``wire_format`` (welcome,
    group_info, key_package); the object must have ``encode(writer)`` for re-encoding."""
    wf = WireFormat(wire_format)
    if wf in (WireFormat.MLS_PUBLIC_MESSAGE, WireFormat.MLS_PRIVATE_MESSAGE):
        raise UsageError("public/private messages are decoded by framing itself", vid="MLS-WIRE-FORMAT")
    _BODY_DECODERS[wf] = decoder


@dataclass(frozen=True)
class MLSMessage:
    """RFC 9420 §6 ``MLSMessage``: ``version`` (mls10), ``wire_format`` and the body.

    The body is a :class:`PublicMessage`, a :class:`PrivateMessage`, a registered decoder's
    object, or — for an unregistered welcome/group_info/key_package — the remaining bytes."""

    wire_format: WireFormat
    message: object
    version: ProtocolVersion = ProtocolVersion.MLS10

    def encode(self, w: Writer) -> None:
        w.u16(self.version).u16(self.wire_format)
        m = self.message
        if isinstance(m, (bytes, bytearray)):
            w.raw(bytes(m))
        else:
            m.encode(w)

    def to_bytes(self) -> bytes:
        w = Writer()
        self.encode(w)
        return w.getvalue()

    @classmethod
    def decode(cls, r: Reader, read_body: Optional[ReadBody] = None) -> "MLSMessage":
        version = enum_value(ProtocolVersion, r.u16("MLSMessage.version"), "MLSMessage.version")
        if version != ProtocolVersion.MLS10:  # pragma: no cover - only mls10 is defined
            raise DecodeError(f"unsupported version {version}", vid="MLS-VERSION")
        wf = enum_value(WireFormat, r.u16("MLSMessage.wire_format"), "MLSMessage.wire_format")
        if wf == WireFormat.MLS_PUBLIC_MESSAGE:
            body: object = PublicMessage.decode(r, read_body)
        elif wf == WireFormat.MLS_PRIVATE_MESSAGE:
            body = PrivateMessage.decode(r)
        elif wf in _BODY_DECODERS:
            body = _BODY_DECODERS[wf](r)
        else:
            body = r.raw(r.remaining, "MLSMessage body")
        return cls(wf, body, version)

    @classmethod
    def from_bytes(cls, data: bytes, read_body: Optional[ReadBody] = None) -> "MLSMessage":
        return decode(bytes(data), lambda r: cls.decode(r, read_body), "MLSMessage")

    @classmethod
    def public(cls, msg: PublicMessage) -> "MLSMessage":
        return cls(WireFormat.MLS_PUBLIC_MESSAGE, msg)

    @classmethod
    def private(cls, msg: PrivateMessage) -> "MLSMessage":
        return cls(WireFormat.MLS_PRIVATE_MESSAGE, msg)


__all__ = [
    "Sender", "FramedContent", "FramedContentAuthData", "AuthenticatedContent", "PublicMessage",
    "PrivateMessage", "SenderData", "MLSMessage", "ReadBody", "default_read_body",
    "framed_content_tbs", "sign_content", "verify_content_signature", "membership_tag",
    "create_public_message", "unprotect_public_message", "protect", "unprotect",
    "create_private_message", "unprotect_and_verify", "decrypt_sender_data", "open_content",
    "sender_data_key_nonce",
    "ciphertext_sample", "register_body_decoder", "MembershipTagError", "FramingSignatureError",
    "SenderDataDecryptError", "ContentDecryptError", "WrongGroupError", "WrongEpochError",
]
