"""gbp_lab.core — the Group Protocol Stack itself, pure Python and sans-IO.

Bytes in, events out: no sockets, clocks or files inside. The public names mirror the reference's
Python binding (``gbp_stack``) so its examples run with ``from gbp_lab.core import …``.
"""
from .errors import (  # noqa: F401
    CryptoError,
    DecodeError,
    DecryptError,
    GbpLabError,
    KeyLogError,
    MissingKeyError,
    ProtocolError,
    StateError,
    UsageError,
)
