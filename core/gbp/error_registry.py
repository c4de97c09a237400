"""The GBP error registry as data (gbp-errors-registry.md; reference crates/gbp/core/src/errors.rs
``ErrorSpec::lookup``).

The owner of the error codes, their classes and the retryable/fatal bits: :data:`ERROR_SPECS`.
:mod:`.error_object` builds the wire ErrorObject from a row; :mod:`.registry` re-exports every
name here (it imports this module and :mod:`.error_object`, never the other way round).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Mapping, Optional


class ErrorClass(IntEnum):
    """Error classes, u8 (ErrorObject key ``class``; crates/gbp/core/src/errors.rs)."""

    TRANSPORT = 0x01
    CRYPTO = 0x02
    STATE = 0x03
    POLICY = 0x04
    SCHEMA = 0x05
    AUTHZ = 0x06


class ErrorCode(IntEnum):
    """Every code of the error registry, u16 (gbp-errors-registry.md).

    Ranges: 0x0000-0x0FFF GBP, 0x1000 GAP, 0x2000 GTP, 0x3000 GSP, 0xF000-0xFFFF private.
    """

    UNSUPPORTED_VERSION = 0x0001
    UNKNOWN_GROUP = 0x0002
    EPOCH_MISMATCH = 0x0003
    TRANSITION_MISMATCH = 0x0004
    REPLAY_DETECTED = 0x0005
    DECRYPT_FAILED = 0x0006
    COMMIT_INVALID = 0x0007
    STREAM_POLICY_VIOLATION = 0x0008
    TRANSITION_IN_PROGRESS = 0x0009
    PREPARE_TIMEOUT = 0x0010
    READY_TIMEOUT = 0x0011
    EXECUTE_TIMEOUT = 0x0012
    COORDINATOR_GONE = 0x0013
    DIGEST_MISMATCH = 0x0014
    GAP_BAD_SOURCE_ID = 0x1001
    GAP_DECODE_FAILED = 0x1002
    GAP_AUTH_FAILED = 0x1003
    GAP_REPLAY_DETECTED = 0x1004
    GAP_EPOCH_STALE = 0x1005
    GAP_KEY_PHASE_UNKNOWN = 0x1006
    GTP_BAD_LENGTH = 0x2001
    GTP_UNSUPPORTED_CONTENT_TYPE = 0x2002
    GTP_DUPLICATE_MESSAGE = 0x2003
    GTP_POLICY_REJECTED = 0x2004
    GTP_ATTACHMENT_INTEGRITY = 0x2005
    GTP_REQUEST_TIMEOUT = 0x2006
    GSP_BAD_SCHEMA = 0x3001
    GSP_UNAUTHORIZED = 0x3002
    GSP_UNKNOWN_SIGNAL = 0x3003
    GSP_DUPLICATE_REQUEST = 0x3004
    GSP_STATE_CONFLICT = 0x3005
    GSP_PRECONDITION_FAILED = 0x3006


# --- error registry (data) -------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorSpec:
    """One row of the error registry: code, class, retryable, fatal and symbolic name."""

    code: ErrorCode
    error_class: ErrorClass
    retryable: bool
    fatal: bool

    @property
    def name(self) -> str:
        """Stable symbolic name, as the reference logs it and sends it as ``reason``."""
        return "ERR_" + self.code.name


_C, _S, _T, _P, _X, _A = (ErrorClass.CRYPTO, ErrorClass.STATE, ErrorClass.TRANSPORT,
                          ErrorClass.POLICY, ErrorClass.SCHEMA, ErrorClass.AUTHZ)
_E = ErrorCode
#: code -> (class, retryable, fatal); the one table (reference ``ErrorSpec::lookup``).
_ERROR_TABLE = {
    _E.UNSUPPORTED_VERSION: (_X, False, True),
    _E.UNKNOWN_GROUP: (_S, False, True),
    _E.EPOCH_MISMATCH: (_S, True, False),
    _E.TRANSITION_MISMATCH: (_S, True, False),
    _E.REPLAY_DETECTED: (_C, False, False),
    _E.DECRYPT_FAILED: (_C, True, False),
    _E.COMMIT_INVALID: (_C, False, True),
    _E.STREAM_POLICY_VIOLATION: (_P, False, False),
    _E.TRANSITION_IN_PROGRESS: (_S, False, False),
    _E.PREPARE_TIMEOUT: (_S, True, False),
    _E.READY_TIMEOUT: (_S, True, False),
    _E.EXECUTE_TIMEOUT: (_S, True, False),
    _E.COORDINATOR_GONE: (_S, True, False),
    _E.DIGEST_MISMATCH: (_S, False, True),
    _E.GAP_BAD_SOURCE_ID: (_X, False, False),
    _E.GAP_DECODE_FAILED: (_X, False, False),
    _E.GAP_AUTH_FAILED: (_C, False, False),
    _E.GAP_REPLAY_DETECTED: (_C, False, False),
    _E.GAP_EPOCH_STALE: (_C, False, False),
    _E.GAP_KEY_PHASE_UNKNOWN: (_C, False, False),
    _E.GTP_BAD_LENGTH: (_X, False, False),
    _E.GTP_UNSUPPORTED_CONTENT_TYPE: (_X, False, False),
    _E.GTP_DUPLICATE_MESSAGE: (_P, False, False),
    _E.GTP_POLICY_REJECTED: (_P, False, False),
    _E.GTP_ATTACHMENT_INTEGRITY: (_X, False, False),
    _E.GTP_REQUEST_TIMEOUT: (_S, True, False),
    _E.GSP_BAD_SCHEMA: (_X, False, False),
    _E.GSP_UNAUTHORIZED: (_A, False, False),
    _E.GSP_UNKNOWN_SIGNAL: (_X, False, False),
    _E.GSP_DUPLICATE_REQUEST: (_P, False, False),
    _E.GSP_STATE_CONFLICT: (_S, True, False),
    _E.GSP_PRECONDITION_FAILED: (_S, False, False),
}
del _C, _S, _T, _P, _X, _A, _E

#: The error registry: code -> :class:`ErrorSpec`.
ERROR_SPECS: Mapping[int, ErrorSpec] = {
    int(code): ErrorSpec(code, cls, retryable, fatal)
    for code, (cls, retryable, fatal) in _ERROR_TABLE.items()
}


def error_spec(code: int) -> Optional[ErrorSpec]:
    """The registry row for *code*, or ``None`` for a code outside the registry."""
    return ERROR_SPECS.get(code)


__all__ = ["ErrorClass", "ErrorCode", "ErrorSpec", "ERROR_SPECS", "error_spec"]
