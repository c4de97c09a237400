"""GroupInfo (RFC 9420 §12.4.3).

::

    struct {
        GroupContext group_context;
        Extension extensions<V>;
        MAC confirmation_tag;       /* opaque<V> */
        uint32 signer;
    } GroupInfoTBS;

    struct {
        GroupContext group_context;
        Extension extensions<V>;
        MAC confirmation_tag;
        uint32 signer;
        opaque signature<V>;        /* SignWithLabel(., "GroupInfoTBS", GroupInfoTBS) */
    } GroupInfo;

``signer`` is the leaf index of the member who signed; its signature key is that leaf's
``signature_key`` in the group's ratchet tree (:meth:`GroupInfo.ratchet_tree` gives the tree of a
``ratchet_tree`` extension when the GroupInfo carries one).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Tuple

from ..errors import DecodeError, GbpLabError, SignatureError, UsageError
from ..tls import Reader, Writer
from .extensions import Extension, decode_extensions, encode_extensions, find_extension
from .registries import ExtensionType, Struct
from .schedule import GroupContext
from .suites import CipherSuite

GROUP_INFO_LABEL = "GroupInfoTBS"


@dataclass(frozen=True)
class GroupInfo(Struct):
    """RFC 9420 §12.4.3 ``GroupInfo``."""

    group_context: GroupContext
    extensions: Tuple[Extension, ...]
    confirmation_tag: bytes
    signer: int
    signature: bytes = b""

    def _encode_tbs(self, w: Writer) -> None:
        self.group_context.encode(w)
        encode_extensions(w, self.extensions)
        w.vec(self.confirmation_tag).u32(self.signer)

    def encode(self, w: Writer) -> None:
        self._encode_tbs(w)
        w.vec(self.signature)

    @classmethod
    def decode(cls, r: Reader) -> "GroupInfo":
        gc = GroupContext.decode(r)
        exts = decode_extensions(r, "GroupInfo.extensions")
        tag = r.vec("GroupInfo.confirmation_tag")
        signer = r.u32("GroupInfo.signer")
        return cls(gc, exts, tag, signer, r.vec("GroupInfo.signature"))

    @property
    def cipher_suite(self) -> CipherSuite:
        """The group's suite; an unsupported one is a :class:`~gbp_lab.core.errors.DecodeError`."""
        try:
            return CipherSuite.get(self.group_context.cipher_suite)
        except UsageError:
            raise DecodeError(f"unsupported cipher suite {self.group_context.cipher_suite}",
                              vid="MLS-GI-SUITE-UNSUPPORTED", where="GroupContext.cipher_suite") from None

    def tbs(self) -> bytes:
        """``GroupInfoTBS`` bytes."""
        w = Writer()
        self._encode_tbs(w)
        return w.getvalue()

    def signed(self, signature_priv: bytes) -> "GroupInfo":
        """A copy signed with the signer's private signature key."""
        return replace(self, signature=self.cipher_suite.sign_with_label(signature_priv, GROUP_INFO_LABEL,
                                                                         self.tbs()))

    def verify(self, signer_pub: bytes) -> None:
        """Check the signature with the signer's public key; :class:`SignatureError` if bad."""
        try:
            self.cipher_suite.verify_with_label(*self.signature_check(signer_pub))
        except SignatureError as exc:
            raise self.signature_failed(exc) from exc

    def signature_check(self, signer_pub: bytes) -> Tuple[bytes, str, bytes, bytes]:
        """The ``VerifyWithLabel`` check :meth:`verify` makes, ``(pub, label, content, signature)``,
        for a batch (``CipherSuite.start_verify_all_with_label``, §12.4.3.1)."""
        return bytes(signer_pub), GROUP_INFO_LABEL, self.tbs(), self.signature

    @staticmethod
    def signature_failed(cause: GbpLabError) -> GbpLabError:
        """The error :meth:`verify` raises when :meth:`signature_check` failed with ``cause``
        (a malformed key stays what it is)."""
        if not isinstance(cause, SignatureError):
            return cause
        exc = SignatureError("GroupInfo signature does not verify", vid="MLS-GI-SIGNATURE")
        exc.__cause__ = cause
        return exc

    def ratchet_tree(self):
        """The :class:`~gbp_lab.core.mls.nodes.RatchetTree` of the ``ratchet_tree`` extension, or ``None``."""
        ext = find_extension(self.extensions, ExtensionType.RATCHET_TREE)
        return None if ext is None else ext.parse()


__all__ = ["GroupInfo", "GROUP_INFO_LABEL"]
