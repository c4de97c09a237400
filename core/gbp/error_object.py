"""The ErrorObject (gbp_rfc.md §12; gbp-errors-registry.md; reference
crates/gbp/base/src/error_object.rs).

A CBOR map with text keys in this order::

    code u16 · class u8 · retryable bool · fatal bool · reason tstr · det bstr

``det`` ("details_cbor") is opaque structured detail, empty in everything the reference produces.
:func:`lookup_error` (re-exported by :mod:`.registry`) builds the object the reference's
``gbp_error_lookup`` returns: the registry row with ``reason`` = symbolic name (``ERR_…``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..cbor import BOOL, BSTR, TSTR, UINT, decode_map, encoder
from ..errors import UsageError
from .error_registry import ERROR_SPECS, ErrorClass, ErrorCode, ErrorSpec, error_spec

ERROR_OBJECT_SPEC = (
    ("code", UINT, 0xFFFF), ("class", UINT, 0xFF), ("retryable", BOOL, 0), ("fatal", BOOL, 0),
    ("reason", TSTR, 0), ("det", BSTR, 0),
)
_ENCODE = encoder(ERROR_OBJECT_SPEC)


@dataclass(frozen=True)
class ErrorObject:
    """A wire error object. ``error_class`` is the ``class`` key (a Python keyword)."""

    code: int
    error_class: int
    retryable: bool
    fatal: bool
    reason: str = ""
    details: bytes = b""

    @classmethod
    def from_spec(cls, spec: ErrorSpec, reason: Optional[str] = None,
                  details: bytes = b"") -> "ErrorObject":
        """The object for a registry row; *reason* defaults to the symbolic name."""
        return cls(int(spec.code), int(spec.error_class), spec.retryable, spec.fatal,
                   spec.name if reason is None else reason, details)

    @property
    def spec(self) -> Optional[ErrorSpec]:
        """The registry row for ``code`` (``None`` for private/unknown codes)."""
        return error_spec(self.code)

    @property
    def known_code(self) -> Optional[ErrorCode]:
        try:
            return ErrorCode(self.code)
        except ValueError:
            return None

    @property
    def known_class(self) -> Optional[ErrorClass]:
        try:
            return ErrorClass(self.error_class)
        except ValueError:
            return None

    def to_cbor(self) -> bytes:
        """CBOR bytes in the reference's key order."""
        if not (0 <= self.code <= 0xFFFF and 0 <= self.error_class <= 0xFF):
            raise UsageError("code/class out of range", vid="GBP-ERROBJ-ENCODE")
        return _ENCODE((self.code, self.error_class, bool(self.retryable), bool(self.fatal),
                        self.reason, self.details))


def decode_error_object(data: bytes) -> ErrorObject:
    """Decode an ErrorObject strictly (typed errors with vids ``GBP-ERROBJ-*``; trailing bytes
    rejected, unknown keys ignored)."""
    v, _ = decode_map(data, ERROR_OBJECT_SPEC, "GBP-ERROBJ", "error object", True)
    return ErrorObject(v["code"], v["class"], v["retryable"], v["fatal"], v["reason"], v["det"])


def lookup_error(code: int) -> Optional[bytes]:
    """The CBOR ErrorObject the reference returns for *code* (``gbp_stack.lookup_error``), or
    ``None`` when *code* is not in the registry.

    The reference fills ``reason`` with the symbolic name (``ERR_…``) and leaves ``det`` empty.
    """
    spec = ERROR_SPECS.get(code)
    if spec is None:
        return None
    return ErrorObject.from_spec(spec).to_cbor()


__all__ = ["ErrorObject", "decode_error_object", "lookup_error", "ERROR_OBJECT_SPEC"]
