"""Welcome messages: structures, joining (RFC 9420 §12.4.3.1) and creation (§12.4.3).

::

    struct { opaque path_secret<V>; } PathSecret;

    struct {
        opaque joiner_secret<V>;
        optional<PathSecret> path_secret;
        PreSharedKeyID psks<V>;
    } GroupSecrets;

    struct {
        KeyPackageRef new_member;                 /* opaque<V> */
        HPKECiphertext encrypted_group_secrets;
    } EncryptedGroupSecrets;

    struct {
        CipherSuite cipher_suite;
        EncryptedGroupSecrets secrets<V>;
        opaque encrypted_group_info<V>;
    } Welcome;

Joining (:func:`process_welcome`), as §12.4.3.1 orders it:

1. find the ``EncryptedGroupSecrets`` whose ``new_member`` is our ``KeyPackageRef``;
2. ``GroupSecrets = DecryptWithLabel(init_priv, "Welcome", encrypted_group_info, kem_output, ciphertext)``;
3. ``psk_secret`` from the PSKs it names (§8.4; ``Nh`` zeros when there are none);
4. ``welcome_secret = DeriveSecret(KDF.Extract(joiner_secret, psk_secret), "welcome")``,
   ``welcome_key``/``welcome_nonce`` from it, then open ``encrypted_group_info`` (AEAD, empty AAD);
5. take the ratchet tree (the ``ratchet_tree`` extension, or one given out of band) and check it
   with :meth:`gbp_lab.core.mls.tree.RatchetTree.validate` (tree hash = GroupContext.tree_hash,
   parent hashes, leaf signatures, unique keys, unmerged leaves); find our own leaf in it;
6. verify the GroupInfo signature with the signer's key (leaf ``signer`` of the tree, or a key
   given by the caller);
7. run the key schedule of the new epoch from ``joiner_secret`` and the GroupContext and check the
   GroupInfo's ``confirmation_tag`` = ``MAC(confirmation_key, confirmed_transcript_hash)``.

Deriving the path secrets above our leaf from ``path_secret`` (TreeKEM) is the group layer's next
step; the result hands over ``path_secret``, the validated tree and our leaf index for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence, Tuple, Union

from ..errors import DecryptError, MissingKeyError, ProtocolError, UsageError
from ..tls import Reader, Writer
from .group_info import GroupInfo
from .key_package import KeyPackage
from .psk import PreSharedKeyID, psk_secret as _psk_secret
from .extensions import find_extension
from .registries import ExtensionType, Struct
from .schedule import EpochSecrets, key_schedule_from_joiner, verify_confirmation_tag, \
    welcome_key_nonce, welcome_secret_from_joiner
from .secrets import BytesLike, Secret, raw
from .suites import CipherSuite
from .tree import LeafSignatures
from .tree import RatchetTree as Tree
from .update_path import HPKECiphertext

WELCOME_LABEL = "Welcome"


class WelcomeError(ProtocolError):
    """A Welcome is well-formed but cannot be accepted (suite mismatch, …)."""

    default_vid = "MLS-WELCOME"


@dataclass(frozen=True)
class PathSecret(Struct):
    """RFC 9420 §12.4.3 ``PathSecret``."""

    path_secret: bytes = field(repr=False)

    def encode(self, w: Writer) -> None:
        w.vec(self.path_secret)

    @classmethod
    def decode(cls, r: Reader) -> "PathSecret":
        return cls(r.vec("PathSecret.path_secret"))


@dataclass(frozen=True)
class GroupSecrets(Struct):
    """RFC 9420 §12.4.3 ``GroupSecrets`` (secret fields are left out of ``repr``)."""

    joiner_secret: bytes = field(repr=False)
    path_secret: Optional[PathSecret] = field(default=None, repr=False)
    psks: Tuple[PreSharedKeyID, ...] = ()

    def encode(self, w: Writer) -> None:
        w.vec(self.joiner_secret)
        w.optional(self.path_secret, lambda ww, p: p.encode(ww))
        w.vec_of(self.psks, lambda ww, p: p.encode(ww))

    @classmethod
    def decode(cls, r: Reader) -> "GroupSecrets":
        joiner = r.vec("GroupSecrets.joiner_secret")
        path = r.optional(PathSecret.decode, "GroupSecrets.path_secret")
        return cls(joiner, path, tuple(r.vec_of(PreSharedKeyID.decode, "GroupSecrets.psks")))


@dataclass(frozen=True)
class EncryptedGroupSecrets(Struct):
    """RFC 9420 §12.4.3 ``EncryptedGroupSecrets``."""

    new_member: bytes
    encrypted_group_secrets: HPKECiphertext

    def encode(self, w: Writer) -> None:
        w.vec(self.new_member)
        self.encrypted_group_secrets.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> "EncryptedGroupSecrets":
        return cls(r.vec("EncryptedGroupSecrets.new_member"), HPKECiphertext.decode(r))


@dataclass(frozen=True)
class Welcome(Struct):
    """RFC 9420 §12.4.3 ``Welcome``."""

    cipher_suite: int
    secrets: Tuple[EncryptedGroupSecrets, ...]
    encrypted_group_info: bytes

    def encode(self, w: Writer) -> None:
        w.u16(self.cipher_suite)
        w.vec_of(self.secrets, lambda ww, s: s.encode(ww))
        w.vec(self.encrypted_group_info)

    @classmethod
    def decode(cls, r: Reader) -> "Welcome":
        suite = r.u16("Welcome.cipher_suite")
        secrets = tuple(r.vec_of(EncryptedGroupSecrets.decode, "Welcome.secrets"))
        return cls(suite, secrets, r.vec("Welcome.encrypted_group_info"))

    def find_secrets(self, key_package_ref: bytes) -> EncryptedGroupSecrets:
        """The entry for ``key_package_ref``; :class:`MissingKeyError` if the Welcome has none."""
        for s in self.secrets:
            if s.new_member == key_package_ref:
                return s
        raise MissingKeyError("the Welcome holds no secrets for this KeyPackage",
                              vid="MLS-WELCOME-NOT-FOR-US", where=key_package_ref.hex())


# --- joining ---------------------------------------------------------------------------------

PskLookup = Union[Callable[[PreSharedKeyID], Optional[BytesLike]], Mapping[PreSharedKeyID, BytesLike]]


@dataclass(frozen=True)
class JoinedWelcome:
    """What a new member learns from a Welcome (all checks of :func:`process_welcome` passed)."""

    key_package_ref: bytes
    group_secrets: GroupSecrets = field(repr=False)
    group_info: GroupInfo
    epoch_secrets: EpochSecrets = field(repr=False)
    tree: Optional[Tree] = field(default=None, repr=False)  # validated; None if none was at hand
    own_leaf_index: Optional[int] = None
    #: the tree's signature batch still running (``process_welcome(defer_signatures=True)``):
    #: every leaf signature, then the GroupInfo signature
    signatures: Optional[LeafSignatures] = field(default=None, repr=False, compare=False)

    def settle(self) -> None:
        """Wait for the signature checks ``process_welcome(defer_signatures=True)`` left running
        and raise their error, in the order ``process_welcome`` would have (nothing to do when
        it ran them itself)."""
        if self.signatures is not None:
            _settle(self.signatures)

    @property
    def group_context(self):
        return self.group_info.group_context

    @property
    def path_secret(self) -> Optional[Secret]:
        p = self.group_secrets.path_secret
        return None if p is None else Secret(p.path_secret, "path_secret")


def _settle(leaves: LeafSignatures) -> None:
    """Raise the first leaf-signature error, else the GroupInfo signature's: the one check
    :func:`process_welcome` puts in the batch behind the leaves (§12.4.3.1)."""
    failure = leaves.wait()
    if failure is not None:
        raise GroupInfo.signature_failed(failure[1]) from failure[1]


def _suite(cs) -> CipherSuite:
    """The suite of a peer's Welcome; an unsupported one is a :class:`WelcomeError`."""
    return CipherSuite.of_peer(cs, WelcomeError, "MLS-WELCOME-SUITE-UNSUPPORTED")


def decrypt_group_secrets(welcome: Welcome, key_package_ref: bytes, init_priv: BytesLike) -> GroupSecrets:
    """Steps 1–2: find our entry and HPKE-open it with the KeyPackage's ``init_key`` private key."""
    suite = _suite(welcome.cipher_suite)
    entry = welcome.find_secrets(key_package_ref)
    ct = entry.encrypted_group_secrets
    try:
        plain = suite.decrypt_with_label(raw(init_priv), WELCOME_LABEL, welcome.encrypted_group_info,
                                         ct.kem_output, ct.ciphertext)
    except DecryptError as exc:
        raise DecryptError("cannot open the Welcome's GroupSecrets", vid="MLS-WELCOME-SECRETS") from exc
    return GroupSecrets.from_bytes(plain)


def resolve_psk_secret(suite: CipherSuite, psks: Sequence[PreSharedKeyID],
                       lookup: Optional[PskLookup]) -> Secret:
    """Step 3: ``psk_secret`` (§8.4) over ``psks`` with values from ``lookup``."""
    pairs = []
    for pid in psks:
        value = None
        if lookup is not None:
            value = lookup.get(pid) if isinstance(lookup, Mapping) else lookup(pid)
        if value is None:
            raise MissingKeyError("the Welcome names a PSK we do not have", vid="MLS-WELCOME-PSK")
        pairs.append((pid, value))
    return _psk_secret(suite, pairs)


def decrypt_group_info(welcome: Welcome, joiner_secret: BytesLike,
                       psk_secret: Optional[BytesLike] = None) -> GroupInfo:
    """Step 4: open ``encrypted_group_info`` with the welcome key and nonce."""
    suite = _suite(welcome.cipher_suite)
    key, nonce = welcome_key_nonce(suite, welcome_secret_from_joiner(suite, joiner_secret, psk_secret))
    try:
        plain = suite.aead_decrypt(key.reveal(), nonce.reveal(), b"", welcome.encrypted_group_info)
    except DecryptError as exc:
        raise DecryptError("cannot open the Welcome's GroupInfo", vid="MLS-WELCOME-GROUP-INFO") from exc
    return GroupInfo.from_bytes(plain)


def _find_tree(info: GroupInfo, suite: CipherSuite, ratchet_tree) -> Optional[Tree]:
    if isinstance(ratchet_tree, Tree):
        return ratchet_tree.copy()
    if ratchet_tree is not None:
        return Tree.from_bytes(ratchet_tree, suite)
    ext = find_extension(info.extensions, ExtensionType.RATCHET_TREE)
    return None if ext is None else Tree.from_bytes(ext.extension_data, suite)


def process_welcome(welcome: Welcome, key_package: KeyPackage, init_priv: BytesLike, *,
                    signer_pub: Optional[bytes] = None, psks: Optional[PskLookup] = None,
                    ratchet_tree: Union[Tree, bytes, None] = None,
                    defer_signatures: bool = False) -> JoinedWelcome:
    """Join from ``welcome`` with our ``key_package`` and its ``init_priv`` (RFC 9420 §12.4.3.1).

    ``ratchet_tree``: the group's tree when the GroupInfo carries no ``ratchet_tree`` extension
    (a tree object or the extension body bytes). With a tree, it is validated and the signer's key
    is read from it; without one, ``signer_pub`` (the GroupInfo signer's signature key) is
    required and the tree checks are left to the caller. ``psks``: mapping or callable giving the
    value of each PreSharedKeyID the GroupSecrets name.

    The leaf signatures and the GroupInfo signature run as one batch on the pool's threads
    (:mod:`.workers`) while the key schedule and the other checks go on. ``defer_signatures``:
    return with that batch still running — the caller builds its state meanwhile and must call
    :meth:`JoinedWelcome.settle` before trusting anything (and on its own failure, first, so that
    a signature error is reported before a later check's, as without deferral).
    """
    if welcome.cipher_suite != key_package.cipher_suite:
        raise WelcomeError(f"Welcome suite {welcome.cipher_suite} is not the KeyPackage's "
                           f"{key_package.cipher_suite}", vid="MLS-WELCOME-SUITE")
    suite = _suite(welcome.cipher_suite)
    ref = key_package.ref(suite)
    secrets = decrypt_group_secrets(welcome, ref, init_priv)
    psk = resolve_psk_secret(suite, secrets.psks, psks)
    info = decrypt_group_info(welcome, secrets.joiner_secret, psk)
    gc = info.group_context
    if gc.cipher_suite != welcome.cipher_suite:
        raise WelcomeError(f"GroupInfo suite {gc.cipher_suite} is not the Welcome's {welcome.cipher_suite}",
                           vid="MLS-WELCOME-SUITE")
    tree = _find_tree(info, suite, ratchet_tree)
    own = None
    leaves: Optional[LeafSignatures] = None
    if tree is not None:
        signer_leaf = tree.leaf(info.signer) if info.signer < tree.n_leaves else None
        gi_pub: Optional[bytes] = None  # the key the GroupInfo signature is checked with
        if signer_leaf is not None and (signer_pub is None or signer_pub == signer_leaf.signature_key):
            gi_pub = signer_leaf.signature_key
        leaves = tree.validate(gc.group_id, tree_hash=gc.tree_hash, defer_signatures=True,
                               extra_checks=[] if gi_pub is None else [info.signature_check(gi_pub)])
        assert leaves is not None  # signatures are checked
        try:
            mine = key_package.leaf_node  # signature keys are unique in a valid tree: compare them first
            own = next((i for i, leaf in tree.leaves()
                        if leaf.signature_key == mine.signature_key and leaf == mine), None)
            if own is None:
                raise WelcomeError("our KeyPackage's leaf is not in the ratchet tree",
                                   vid="MLS-WELCOME-NOT-IN-TREE")
            if signer_leaf is None:
                raise WelcomeError(f"GroupInfo signer {info.signer} is not a member",
                                   vid="MLS-WELCOME-SIGNER", where="GroupInfo.signer")
            if gi_pub is None:
                raise WelcomeError("the given signer key is not the signer leaf's",
                                   vid="MLS-WELCOME-SIGNER", where="GroupInfo.signer")
        except BaseException:
            leaves.wait()  # a leaf-signature failure came first
            raise
        signer_pub = gi_pub
    if signer_pub is None:
        raise MissingKeyError("no ratchet tree and no signer key given", vid="MLS-WELCOME-NO-SIGNER")
    if leaves is None:
        info.verify(signer_pub)
    try:
        epoch = key_schedule_from_joiner(suite, secrets.joiner_secret, gc, psk)
        verify_confirmation_tag(suite, epoch.confirmation_key, gc.confirmed_transcript_hash,
                                info.confirmation_tag)
    except BaseException:
        if leaves is not None:
            _settle(leaves)  # the signatures were checked before these
        raise
    joined = JoinedWelcome(ref, secrets, info, epoch, tree, own, leaves)
    if not defer_signatures:
        joined.settle()
    return joined


# --- creating --------------------------------------------------------------------------------

NewMember = Union[KeyPackage, Tuple[KeyPackage, Optional[BytesLike]]]


def create_welcome(group_info: GroupInfo, joiner_secret: BytesLike, new_members: Sequence[NewMember], *,
                   psks: Sequence[PreSharedKeyID] = (), psk_secret: Optional[BytesLike] = None,
                   rng=None, ephemerals: Optional[Sequence[bytes]] = None) -> Welcome:
    """Build a Welcome (§12.4.3) for ``new_members`` from a *signed* ``group_info``.

    Each member is a KeyPackage or ``(KeyPackage, path_secret or None)``. ``psk_secret`` must be
    the one derived from ``psks`` (the caller's key schedule already computed it).
    ``rng``/``ephemerals`` make HPKE deterministic for tests.
    """
    suite = group_info.cipher_suite
    if psks and psk_secret is None:
        raise UsageError("psks given without their psk_secret", vid="MLS-WELCOME-PSK")
    key, nonce = welcome_key_nonce(suite, welcome_secret_from_joiner(suite, joiner_secret, psk_secret))
    encrypted_group_info = suite.aead_encrypt(key.reveal(), nonce.reveal(), b"", group_info.to_bytes())
    entries = []
    for i, member in enumerate(new_members):
        kp, path = member if isinstance(member, tuple) else (member, None)
        if kp.cipher_suite != suite.id:
            raise UsageError(f"KeyPackage {i} is for suite {kp.cipher_suite}, not {int(suite.id)}",
                             vid="MLS-WELCOME-SUITE")
        gs = GroupSecrets(raw(joiner_secret), None if path is None else PathSecret(raw(path)), tuple(psks))
        eph = None if ephemerals is None else ephemerals[i]
        kem_output, ct = suite.encrypt_with_label(kp.init_key, WELCOME_LABEL, encrypted_group_info,
                                                  gs.to_bytes(), ephemeral=eph, rng=rng)
        entries.append(EncryptedGroupSecrets(kp.ref(suite), HPKECiphertext(kem_output, ct)))
    return Welcome(suite.id, tuple(entries), encrypted_group_info)


__all__ = ["PathSecret", "GroupSecrets", "EncryptedGroupSecrets", "Welcome", "WelcomeError",
           "JoinedWelcome", "decrypt_group_secrets", "resolve_psk_secret", "decrypt_group_info",
           "process_welcome", "create_welcome", "WELCOME_LABEL"]
