"""The process-wide key store the dissectors decrypt with (the key log of
:mod:`gbp_lab.core.keylog`).

``use_keylog(path_or_KeyLog)`` installs a :class:`~gbp_lab.core.keylog.KeyLog` (or reads one from
a file); from then on, layers dissected with :mod:`gbp_lab.dissectors` show decrypted payloads as
child layers:

* GBP frame payloads (gbp-mls-binding.md: ``MLS-Exporter(stream label, "", 32)``,
  ChaCha20-Poly1305) through :func:`gbp_lab.core.gbp.aead.open_frame`;
* SFrame audio inside GAP payloads (RFC 9605, base key ``MLS-Exporter("gbp/sframe v1", epoch, 32)``)
  through :mod:`gbp_lab.core.sframe`;
* MLS PrivateMessages (RFC 9420 §6.3) with the sender-data and encryption secrets of the log;
* QUIC (RFC 9001) with the log's TLS lines (:meth:`~gbp_lab.core.keylog.KeyLog.tls_secrets`):
  :func:`quic_observer` is the process-wide :class:`~gbp_lab.core.quic.observer.QuicObserver`
  that follows connections across the datagrams dissected in order (a new key log starts a new
  one).

``use_keylog(None)`` removes it. Like Wireshark's TLS key log, this is a global setting: scapy
builds layers from bytes without a context object to pass keys through.

``mls_epoch_offset`` (default 0): the GBP frame's ``ep`` is the GBP node epoch; in the reference
flow it equals the MLS epoch (see :mod:`gbp_lab.core.gbp.aead`). For captures where the two differ
by a constant, set the offset with :func:`set_mls_epoch_offset`.
"""
from __future__ import annotations

import os
from typing import Optional, Union, cast

from gbp_lab.core.errors import UsageError
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.quic.observer import QuicObserver

__all__ = ["use_keylog", "current_keylog", "set_mls_epoch_offset", "mls_epoch_offset",
           "keylog_in_use", "quic_observer", "reset_quic"]

class _State:
    """The process-wide dissection state."""

    keylog: Optional[KeyLog] = None
    offset: int = 0
    quic: Optional[QuicObserver] = None


_state = _State()
_QUERIES = ("exporter_secret", "sender_data_secret", "encryption_secret", "suite")


def use_keylog(path_or_keylog: Union[None, str, "os.PathLike[str]", KeyLog]) -> Optional[KeyLog]:
    """Install the key log used by every dissector of this process and return it.

    *path_or_keylog* is a :class:`KeyLog`, a path to a key-log file, or ``None`` to remove the
    current one. A malformed file raises :class:`~gbp_lab.core.errors.KeyLogError`. Any object
    with the query methods of :class:`KeyLog` (``exporter_secret``, ``sender_data_secret``,
    ``encryption_secret`` taking ``(group_id, epoch)``, and ``suite(group_id)``) is accepted too —
    e.g. a store for group ids that are not 16 bytes long.
    """
    _state.quic = None
    if path_or_keylog is None:
        _state.keylog = None
        return None
    if isinstance(path_or_keylog, KeyLog) or all(
            callable(getattr(path_or_keylog, m, None)) for m in _QUERIES):
        log = cast(KeyLog, path_or_keylog)  # a KeyLog, or an object with its query methods
    elif isinstance(path_or_keylog, (str, os.PathLike)):
        log = KeyLog.load(path_or_keylog)
    else:
        raise UsageError(f"use_keylog() takes a KeyLog or a path, not {type(path_or_keylog).__name__}",
                         vid="DISSECT-KEYLOG")
    _state.keylog = log
    return log


def current_keylog() -> Optional[KeyLog]:
    """The installed key log, ``None`` when there is none."""
    return _state.keylog


def set_mls_epoch_offset(offset: int) -> None:
    """MLS epoch = frame ``ep`` + *offset* for frame decryption (default 0)."""
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise UsageError("offset must be an int", vid="DISSECT-KEYLOG")
    _state.offset = offset


def mls_epoch_offset() -> int:
    """The offset set by :func:`set_mls_epoch_offset` (MLS epoch = frame ``ep`` + offset)."""
    return _state.offset


class keylog_in_use:
    """Context manager: ``with keylog_in_use(log): ...`` installs *log* and restores the previous
    one afterwards (handy in tests and notebooks)."""

    def __init__(self, path_or_keylog) -> None:
        self._new = path_or_keylog
        self._old: Optional[KeyLog] = None

    def __enter__(self) -> Optional[KeyLog]:
        self._old = _state.keylog
        return use_keylog(self._new)

    def __exit__(self, *exc) -> None:
        _state.keylog = self._old
        _state.quic = None


def _tls_secrets(client_random: bytes):
    lookup = getattr(_state.keylog, "tls_secrets", None)
    return None if lookup is None else lookup(client_random)


def quic_observer() -> QuicObserver:
    """The process-wide QUIC observer (created on first use, with the installed key log's TLS
    secrets); datagrams must be dissected in capture order for it to follow a connection."""
    if _state.quic is None:
        _state.quic = QuicObserver(_tls_secrets)
    return _state.quic


def reset_quic() -> None:
    """Forget every QUIC connection followed so far (a new capture)."""
    _state.quic = None
