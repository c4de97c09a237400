"""The MLS key schedule (RFC 9420 §8, §8.1–§8.7) and the ``GroupContext`` (§8.1).

``GroupContext`` lives here (with its TLS codec) because every epoch's secrets are bound to it; the
message structs (``messages.py``) and the group state machine import it from this module.

One epoch of the key schedule (§8)::

                      init_secret_[n-1]
                            |
    commit_secret --> KDF.Extract
                            |
                  ExpandWithLabel(., "joiner", GroupContext_[n], Nh)
                            |
                      joiner_secret
                            |
       psk_secret --> KDF.Extract
                            |
                      member_secret --> DeriveSecret(., "welcome") = welcome_secret
                            |
                  ExpandWithLabel(., "epoch", GroupContext_[n], Nh)
                            |
                      epoch_secret --> DeriveSecret(., <label>) = <secret> (table below)
                            |
                  DeriveSecret(., "init") = init_secret_[n]

Use :func:`key_schedule` when you know the previous ``init_secret`` (a member processing a
Commit), :func:`key_schedule_from_joiner` when you received ``joiner_secret`` in a Welcome (§12.4.3).
Both return an :class:`EpochSecrets` whose secrets are :class:`~.secrets.Secret` (redacted in
``repr``) and which can describe how every one of them was derived (:meth:`EpochSecrets.explain`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import List, Optional, Tuple, Union

from ..errors import CryptoError, UsageError
from ..tls import Reader, Writer
from .extensions import Extension, decode_extensions, encode_extensions
from .registries import ProtocolVersion, Struct, enum_value
from .secret_tree import SecretTree
from .secrets import BytesLike, Secret, raw
from .suites import CipherSuite

# --- GroupContext (§8.1) ----------------------------------------------------------------------

@dataclass(frozen=True)
class GroupContext(Struct):
    """RFC 9420 §8.1 ``GroupContext``::

        struct {
            ProtocolVersion version = mls10;
            CipherSuite cipher_suite;
            opaque group_id<V>;
            uint64 epoch;
            opaque tree_hash<V>;
            opaque confirmed_transcript_hash<V>;
            Extension extensions<V>;
        } GroupContext;

    ``extensions`` is a tuple of :class:`~.extensions.Extension` (kept opaque, so a decoded
    GroupContext re-encodes byte for byte).
    """

    cipher_suite: int
    group_id: bytes
    epoch: int
    tree_hash: bytes
    confirmed_transcript_hash: bytes
    extensions: Tuple[Extension, ...] = ()
    version: int = ProtocolVersion.MLS10

    def encode(self, w: Writer) -> None:
        w.u16(self.version).u16(self.cipher_suite).vec(self.group_id).u64(self.epoch)
        w.vec(self.tree_hash).vec(self.confirmed_transcript_hash)
        encode_extensions(w, self.extensions)

    @classmethod
    def decode(cls, r: Reader) -> "GroupContext":
        version = enum_value(ProtocolVersion, r.u16("GroupContext.version"), "GroupContext.version")
        suite = r.u16("GroupContext.cipher_suite")
        gid = r.vec("GroupContext.group_id")
        epoch = r.u64("GroupContext.epoch")
        th = r.vec("GroupContext.tree_hash")
        cth = r.vec("GroupContext.confirmed_transcript_hash")
        exts = decode_extensions(r, "GroupContext.extensions")
        return cls(suite, gid, epoch, th, cth, exts, version)


def _gc_bytes(gc: Union[GroupContext, bytes]) -> bytes:
    return gc.to_bytes() if isinstance(gc, GroupContext) else bytes(gc)


# --- the epoch secrets (§8) --------------------------------------------------------------------

#: ``DeriveSecret(epoch_secret, label)`` outputs of RFC 9420 §8 Table 4: (field, label).
EPOCH_DERIVED = (
    ("sender_data_secret", b"sender data"),
    ("encryption_secret", b"encryption"),
    ("exporter_secret", b"exporter"),
    ("external_secret", b"external"),
    ("confirmation_key", b"confirm"),
    ("membership_key", b"membership"),
    ("resumption_psk", b"resumption"),
    ("epoch_authenticator", b"authentication"),
    ("init_secret", b"init"),
)


def _how(text: str):
    return field(metadata={"derivation": text})


@dataclass(frozen=True)
class EpochSecrets:
    """Every named secret of one epoch (RFC 9420 §8), each a redacted :class:`Secret`.

    The ``derivation`` metadata of each field says how it was computed; :meth:`explain` lists
    ``(name, derivation, secret)`` rows for a teaching UI. ``init_secret`` is the input of the
    *next* epoch's schedule.
    """

    cipher_suite: CipherSuite
    group_context: bytes = field(repr=False)
    commit_secret: Optional[Secret] = _how("input: from the UpdatePath (§8), or Nh zero bytes")
    psk_secret: Secret = _how("input: §8.4 chain over the PSKs of the Commit (Nh zeros if none)")
    joiner_secret: Secret = _how('ExpandWithLabel(KDF.Extract(init_secret[n-1], commit_secret), '
                                 '"joiner", GroupContext[n], Nh)')
    member_secret: Secret = _how("KDF.Extract(joiner_secret, psk_secret)")
    welcome_secret: Secret = _how('DeriveSecret(member_secret, "welcome")')
    epoch_secret: Secret = _how('ExpandWithLabel(member_secret, "epoch", GroupContext[n], Nh)')
    sender_data_secret: Secret = _how('DeriveSecret(epoch_secret, "sender data")')
    encryption_secret: Secret = _how('DeriveSecret(epoch_secret, "encryption")')
    exporter_secret: Secret = _how('DeriveSecret(epoch_secret, "exporter")')
    external_secret: Secret = _how('DeriveSecret(epoch_secret, "external")')
    confirmation_key: Secret = _how('DeriveSecret(epoch_secret, "confirm")')
    membership_key: Secret = _how('DeriveSecret(epoch_secret, "membership")')
    resumption_psk: Secret = _how('DeriveSecret(epoch_secret, "resumption")')
    epoch_authenticator: Secret = _how('DeriveSecret(epoch_secret, "authentication")')
    init_secret: Secret = _how('DeriveSecret(epoch_secret, "init")')

    # -- derived helpers ----------------------------------------------------------------------
    def explain(self) -> List[Tuple[str, str, Optional[Secret]]]:
        """``(name, how it was derived, secret)`` for every secret, in derivation order."""
        return [(f.name, f.metadata["derivation"], getattr(self, f.name))
                for f in fields(self) if "derivation" in f.metadata]

    def export(self, label: Union[bytes, str], context: bytes, length: int) -> bytes:
        """RFC 9420 §8.5 ``MLS-Exporter(label, context, length)`` for this epoch."""
        return self.cipher_suite.mls_exporter(self.exporter_secret.reveal(), label, context, length)

    def welcome_key_nonce(self) -> Tuple[Secret, Secret]:
        """The Welcome AEAD key and nonce (§12.4.3.1); see :func:`welcome_key_nonce`."""
        return welcome_key_nonce(self.cipher_suite, self.welcome_secret)

    def confirmation_tag(self, confirmed_transcript_hash: bytes) -> bytes:
        """``MAC(confirmation_key, confirmed_transcript_hash)`` (§6.1)."""
        return confirmation_tag(self.cipher_suite, self.confirmation_key, confirmed_transcript_hash)

    def external_key_pair(self):
        """The HPKE key pair derived from ``external_secret`` (§8.3)."""
        return external_key_pair(self.cipher_suite, self.external_secret)

    def secret_tree(self, n_leaves: int, **config) -> "SecretTree":
        """A fresh :class:`~.secret_tree.SecretTree` over ``n_leaves`` rooted at this epoch's
        ``encryption_secret`` (§9); ``config`` = ``out_of_order_tolerance`` /
        ``maximum_forward_distance``."""
        return SecretTree(self.cipher_suite, self.encryption_secret, n_leaves, **config)

    def next_epoch(self, commit_secret: Optional[BytesLike], group_context: Union[GroupContext, bytes],
                   psk_secret: Optional[BytesLike] = None) -> "EpochSecrets":
        """The next epoch's secrets, from this epoch's ``init_secret`` (§8)."""
        return key_schedule(self.cipher_suite, self.init_secret, commit_secret, group_context, psk_secret)


def _suite(cs: Union[CipherSuite, int]) -> CipherSuite:
    return cs if isinstance(cs, CipherSuite) else CipherSuite.get(cs)


def _check_len(cs: CipherSuite, name: str, value: bytes) -> None:
    if len(value) != cs.hash_length:
        raise UsageError(f"{name} must be Nh={cs.hash_length} bytes, got {len(value)}",
                         vid="MLS-SCHEDULE-LEN", where=name)


def key_schedule_from_joiner(cs: Union[CipherSuite, int], joiner_secret: BytesLike,
                             group_context: Union[GroupContext, bytes],
                             psk_secret: Optional[BytesLike] = None,
                             *, commit_secret: Optional[BytesLike] = None) -> EpochSecrets:
    """The epoch's secrets from ``joiner_secret`` (what a Welcome delivers, §12.4.3).

    ``psk_secret`` defaults to ``Nh`` zero bytes (no PSKs, §8.4)."""
    cs = _suite(cs)
    nh = cs.hash_length
    gc = _gc_bytes(group_context)
    joiner = raw(joiner_secret)
    psk = bytes(nh) if psk_secret is None else raw(psk_secret)
    _check_len(cs, "joiner_secret", joiner)
    _check_len(cs, "psk_secret", psk)
    member = cs.extract(joiner, psk)
    epoch = cs.expand_with_label(member, b"epoch", gc, nh)
    derived = {name: Secret(cs.derive_secret(epoch, label), name) for name, label in EPOCH_DERIVED}
    return EpochSecrets(
        cipher_suite=cs, group_context=gc,
        commit_secret=None if commit_secret is None else Secret(commit_secret, "commit_secret"),
        psk_secret=Secret(psk, "psk_secret"),
        joiner_secret=Secret(joiner, "joiner_secret"),
        member_secret=Secret(member, "member_secret"),
        welcome_secret=Secret(cs.derive_secret(member, b"welcome"), "welcome_secret"),
        epoch_secret=Secret(epoch, "epoch_secret"),
        **derived)


def joiner_secret(cs: Union[CipherSuite, int], init_secret: BytesLike,
                  commit_secret: Optional[BytesLike], group_context: Union[GroupContext, bytes]) -> Secret:
    """``ExpandWithLabel(KDF.Extract(init_secret, commit_secret), "joiner", GroupContext, Nh)``.

    ``commit_secret=None`` means a Commit without a path: ``Nh`` zero bytes (§8)."""
    cs = _suite(cs)
    nh = cs.hash_length
    init = raw(init_secret)
    commit = bytes(nh) if commit_secret is None else raw(commit_secret)
    _check_len(cs, "init_secret", init)
    _check_len(cs, "commit_secret", commit)
    prk = cs.extract(init, commit)
    return Secret(cs.expand_with_label(prk, b"joiner", _gc_bytes(group_context), nh), "joiner_secret")


def key_schedule(cs: Union[CipherSuite, int], init_secret: BytesLike,
                 commit_secret: Optional[BytesLike], group_context: Union[GroupContext, bytes],
                 psk_secret: Optional[BytesLike] = None) -> EpochSecrets:
    """One full epoch of the key schedule (RFC 9420 §8) from the previous ``init_secret``.

    For a new group (§11) pass a fresh random ``init_secret`` as epoch 0's input."""
    cs = _suite(cs)
    joiner = joiner_secret(cs, init_secret, commit_secret, group_context)
    commit = bytes(cs.hash_length) if commit_secret is None else raw(commit_secret)
    return key_schedule_from_joiner(cs, joiner, group_context, psk_secret, commit_secret=commit)


# --- single derivations ----------------------------------------------------------------------

def welcome_key_nonce(cs: Union[CipherSuite, int], welcome_secret: BytesLike) -> Tuple[Secret, Secret]:
    """RFC 9420 §12.4.3.1: ``welcome_key = ExpandWithLabel(welcome_secret, "key", "", Nk)``,
    ``welcome_nonce = ExpandWithLabel(welcome_secret, "nonce", "", Nn)``."""
    cs = _suite(cs)
    ws = raw(welcome_secret)
    return (Secret(cs.expand_with_label(ws, b"key", b"", cs.aead_key_length), "welcome_key"),
            Secret(cs.expand_with_label(ws, b"nonce", b"", cs.aead_nonce_length), "welcome_nonce"))


def welcome_secret_from_joiner(cs: Union[CipherSuite, int], joiner_secret: BytesLike,
                               psk_secret: Optional[BytesLike] = None) -> Secret:
    """``DeriveSecret(KDF.Extract(joiner_secret, psk_secret), "welcome")`` (§8), what a joiner
    needs to open the GroupInfo before it knows the GroupContext."""
    cs = _suite(cs)
    psk = bytes(cs.hash_length) if psk_secret is None else raw(psk_secret)
    return Secret(cs.derive_secret(cs.extract(raw(joiner_secret), psk), b"welcome"), "welcome_secret")


def confirmation_tag(cs: Union[CipherSuite, int], confirmation_key: BytesLike,
                     confirmed_transcript_hash: bytes) -> bytes:
    """RFC 9420 §6.1 ``confirmation_tag = MAC(confirmation_key, confirmed_transcript_hash)``."""
    return _suite(cs).mac(raw(confirmation_key), bytes(confirmed_transcript_hash))


def verify_confirmation_tag(cs: Union[CipherSuite, int], confirmation_key: BytesLike,
                            confirmed_transcript_hash: bytes, tag: bytes) -> None:
    """Raise :class:`ConfirmationTagError` unless ``tag`` is the epoch's confirmation tag."""
    import hmac

    want = confirmation_tag(cs, confirmation_key, confirmed_transcript_hash)
    if not hmac.compare_digest(want, bytes(tag)):
        raise ConfirmationTagError("confirmation tag does not verify", vid="MLS-CONFIRMATION-TAG")


class ConfirmationTagError(CryptoError):
    """A Commit's or GroupInfo's confirmation tag does not match (RFC 9420 §6.1, §12.4.3)."""

    default_vid = "MLS-CONFIRMATION-TAG"


def external_key_pair(cs: Union[CipherSuite, int], external_secret: BytesLike):
    """RFC 9420 §8.3 ``external_priv, external_pub = KEM.DeriveKeyPair(external_secret)``.

    Returns ``(external_priv, external_pub)``: the private key as a redacted :class:`Secret`, the
    public key as serialised bytes (the content of the ``external_pub`` extension, §12.4.3.2)."""
    priv, pub = _suite(cs).derive_key_pair(raw(external_secret))
    return Secret(priv, "external_priv"), pub


def external_pub(cs: Union[CipherSuite, int], external_secret: BytesLike) -> bytes:
    """The serialised HPKE public key (``HPKEPublicKey`` content) derived from ``external_secret``."""
    return external_key_pair(cs, external_secret)[1]


__all__ = [
    "GroupContext", "EpochSecrets", "EPOCH_DERIVED", "key_schedule", "key_schedule_from_joiner",
    "joiner_secret", "welcome_key_nonce", "welcome_secret_from_joiner", "confirmation_tag",
    "verify_confirmation_tag", "ConfirmationTagError", "external_key_pair", "external_pub",
]
