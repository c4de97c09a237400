"""A minimal MLS view for the GBP node: one epoch's exporter secret (RFC 9420 §8.5).

The node (:class:`gbp_lab.core.gbp.node.GroupNode`) needs only two things from MLS: the current
``epoch`` and ``export_raw(label, context, length)`` = ``MLS-Exporter(label, context, length)``
(gbp-mls-binding.md: the per-stream AEAD keys are ``MLS-Exporter("gbp/<stream>", "", 32)``).
:class:`ExporterView` provides exactly that from an exporter secret — e.g. one taken from a key
log (:meth:`ExporterView.from_keylog`) — so the node can be driven without a full MLS context.

Anything with the same two members works as the node's ``mls`` argument (our MlsContext, or a
test adapter around a reference ``gbp_stack.MlsContext``).
"""
from __future__ import annotations

from typing import Dict, Tuple, Union

from ..errors import MissingKeyError, UsageError
from .suites import CipherSuite

__all__ = ["ExporterView"]


class ExporterView:
    """``epoch`` + ``export_raw`` from one epoch's ``exporter_secret`` (cipher suite *suite*,
    default 0x0001 as the reference uses).

    >>> v = ExporterView(bytes(32), epoch=1)
    >>> len(v.export_raw("gbp/text", b"", 32))
    32
    """

    __slots__ = ("exporter_secret", "epoch", "suite", "group_id", "_suite", "_cache")

    def __init__(self, exporter_secret: bytes, epoch: int, suite: int = 1,
                 group_id: bytes = b"") -> None:
        if not isinstance(exporter_secret, (bytes, bytearray)) or not exporter_secret:
            raise UsageError("exporter_secret must be non-empty bytes", vid="MLS-EXPORTER-SECRET")
        if not isinstance(epoch, int) or epoch < 0:
            raise UsageError(f"epoch must be a non-negative int, got {epoch!r}",
                             vid="MLS-EXPORTER-EPOCH")
        self.exporter_secret = bytes(exporter_secret)
        self.epoch = epoch
        self.suite = suite
        self.group_id = bytes(group_id)
        self._suite = CipherSuite.get(suite)
        self._cache: Dict[Tuple[bytes, bytes, int], bytes] = {}

    @classmethod
    def from_keylog(cls, keylog, group_id: bytes, epoch: int) -> "ExporterView":
        """The view of ``(group_id, epoch)`` in a :class:`~gbp_lab.core.keylog.KeyLog`
        (:class:`MissingKeyError` ``MLS-EXPORTER-NOKEY`` when the log lacks that secret)."""
        secret = keylog.exporter_secret(group_id, epoch)
        if secret is None:
            raise MissingKeyError(f"key log has no exporter secret for {bytes(group_id).hex()} "
                                  f"epoch {epoch}", vid="MLS-EXPORTER-NOKEY",
                                  where=(bytes(group_id).hex(), epoch))
        return cls(secret, epoch, keylog.suite(group_id), group_id)

    def export_raw(self, label: Union[str, bytes], context: bytes, length: int) -> bytes:
        """RFC 9420 §8.5 ``MLS-Exporter(label, context, length)`` (results are cached)."""
        lab = label.encode() if isinstance(label, str) else bytes(label)
        key = (lab, bytes(context), length)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = self._suite.mls_exporter(self.exporter_secret, lab,
                                                              key[1], length)
        return out

    def __repr__(self) -> str:
        return f"ExporterView(epoch={self.epoch}, suite={self.suite})"
