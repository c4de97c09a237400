"""The exceptions of gbp-lab: one root, two branches (as h11 has).

``GbpLabError`` is the one root. Below it:

* :class:`UsageError` — *our* caller misused the API (wrong argument, wrong state for the call).
* :class:`ProtocolError` — bytes from a peer or a file are bad. Its branches say how:
  :class:`DecodeError` (malformed encoding), :class:`CryptoError` (authentication, signatures,
  missing keys), :class:`StateError` (well-formed but not acceptable now: stale epoch, replay …).

Every error carries a stable validation id ``vid`` (openmls ``ValSem`` style, e.g.
``"GBP-FRAME-PSZ"``) and optionally ``where`` (a field name, offset or line number), so tests,
tables and people can match on something that does not change with the wording.

Any other exception escaping one of our decoders is a bug.

The binding-compatible surface (``MlsContext``, ``GroupNode``, the GTP/GAP/GSP clients,
``SFrameSession`` …) mirrors ``gbp_stack``, whose wrappers raise built-ins (``OSError`` for native
calls, ``RuntimeError`` for SFrame, ``ValueError`` for bad arguments).  :func:`raises_builtin`
marks such a method: a :class:`GbpLabError` leaving it is re-raised as :func:`with_builtin` of
itself — the same type (a cached subclass of it), ``vid``, ``where`` and message, now also an
instance of that built-in — so ``except OSError`` written for the binding catches ours.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Optional, Tuple, Type, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])


class GbpLabError(Exception):
    """Root of every exception raised by gbp-lab."""

    default_vid = "GBPLAB"

    def __init__(self, message: str, *, vid: Optional[str] = None, where: Any = None) -> None:
        self.vid = vid or self.default_vid
        self.where = where
        self.message = message
        text = f"[{self.vid}] {message}"
        if where is not None:
            text += f" (at {where})"
        super().__init__(text)

    def __reduce__(self):
        # keep vid/where across pickling (dask, multiprocessing)
        return (_rebuild, (type(self), self.message, self.vid, self.where))


def _rebuild(cls, message, vid, where):
    return cls(message, vid=vid, where=where)


def _rebuild_flavour(root, builtins, message, vid, where):
    return flavour_of(root, *builtins)(message, vid=vid, where=where)


_FLAVOURS: Dict[Tuple[type, Tuple[type, ...]], type] = {}


def flavour_of(cls: Type["GbpLabError"], *builtins: Type[BaseException]) -> Type["GbpLabError"]:
    """The subclass of *cls* that is also every one of *builtins* (created once, cached; *cls*
    itself when it already is).  It keeps *cls*'s name, module and docstring."""
    missing = tuple(b for b in builtins if not issubclass(cls, b))
    if not missing:
        return cls
    root, have = getattr(cls, "_flavour", (cls, ()))
    bases = have + tuple(b for b in missing if b not in have)
    key = (root, bases)
    sub = _FLAVOURS.get(key)
    if sub is None:
        sub = type(root.__name__, (root,) + bases, {
            "__module__": root.__module__, "__qualname__": root.__qualname__,
            "__doc__": root.__doc__, "_flavour": key, "__new__": _new_for(root, bases),
            "__reduce__": lambda self: (_rebuild_flavour, (root, bases, self.message, self.vid,
                                                           self.where))})
        _FLAVOURS[key] = sub
    return sub


def _new_for(root: type, bases: Tuple[type, ...]) -> Any:
    # The built-in whose C layout the class takes (OSError's differs from the others'): its
    # __new__ must create the instance, whichever base comes first in the MRO.
    solid = OSError if any(issubclass(b, OSError) for b in (root,) + bases) else BaseException

    def __new__(cls, *args: Any, **_: Any) -> Any:
        return solid.__new__(cls, *args)
    return staticmethod(__new__)


def with_builtin(exc: "GbpLabError", builtin: Type[BaseException]) -> "GbpLabError":
    """*exc* as an instance of *builtin* too: *exc* itself when it already is one, else a copy
    of the class :func:`flavour_of` gives (same args, attributes, cause and traceback)."""
    if isinstance(exc, builtin):
        return exc
    cls = flavour_of(type(exc), builtin)
    new = cls.__new__(cls, *exc.args)
    new.args = exc.args
    new.__dict__.update(exc.__dict__)
    new.__cause__ = exc.__cause__
    new.__suppress_context__ = True  # a stand-in for *exc*, not raised while handling it
    new.__traceback__ = exc.__traceback__
    return new


def raises_builtin(builtin: Type[BaseException]) -> Callable[[_F], _F]:
    """Decorator for a method of the binding-compatible surface: any :class:`GbpLabError` it
    raises is re-raised as :func:`with_builtin` of itself (the built-in the ``gbp_stack``
    wrapper documents there: ``OSError``, ``RuntimeError`` …)."""
    def deco(fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except GbpLabError as exc:
                if isinstance(exc, builtin):
                    raise
                raise with_builtin(exc, builtin)  # noqa: B904 - the same error, not a new one
        return wrapper  # type: ignore[return-value]
    return deco


# --- misuse of our API -----------------------------------------------------------------------
class UsageError(GbpLabError, ValueError):
    """The caller used the API wrongly (bad argument, call not allowed in this state)."""

    default_vid = "USAGE"


# --- a peer's (or a file's) bad bytes --------------------------------------------------------
class ProtocolError(GbpLabError):
    """Bytes received from a peer or read from a file are not acceptable."""

    default_vid = "PROTO"


class DecodeError(ProtocolError):
    """Malformed encoding: truncated, trailing bytes, wrong type, bad length, invalid CBOR …"""

    default_vid = "DECODE"


class TrailingBytesError(DecodeError):
    """A decoder was given more bytes than the structure holds."""

    default_vid = "DECODE-TRAILING"


class TruncatedError(DecodeError):
    """A decoder ran out of bytes before the structure ended."""

    default_vid = "DECODE-TRUNCATED"


class OversizeError(DecodeError):
    """A length field exceeds the allowed maximum; nothing was buffered for it."""

    default_vid = "DECODE-OVERSIZE"


class CryptoError(ProtocolError):
    """Cryptographic failure: bad tag, bad signature, bad MAC, wrong key."""

    default_vid = "CRYPTO"


class DecryptError(CryptoError):
    """AEAD authentication failed."""

    default_vid = "CRYPTO-DECRYPT"


class SignatureError(CryptoError):
    """A signature did not verify."""

    default_vid = "CRYPTO-SIGNATURE"


class MissingKeyError(CryptoError):
    """No secret is known (key log, secret tree) for what we were asked to decrypt."""

    default_vid = "CRYPTO-NOKEY"


class StateError(ProtocolError):
    """Well-formed input that is not acceptable in the current state (stale epoch, replay …)."""

    default_vid = "STATE"


class ReplayError(StateError):
    """A sequence number / generation / counter was already used."""

    default_vid = "STATE-REPLAY"


class ClosedError(UsageError):
    """The object was closed (``close()`` or the end of its ``with`` block) and cannot be used;
    the binding-compatible classes raise it as the built-in the binding raises there."""

    default_vid = "CLOSED"


class KeyLogError(DecodeError):
    """A key-log file is malformed or contradicts itself (``where`` = line number)."""

    default_vid = "KEYLOG"


__all__ = [
    "GbpLabError",
    "UsageError",
    "ProtocolError",
    "DecodeError",
    "TrailingBytesError",
    "TruncatedError",
    "OversizeError",
    "CryptoError",
    "DecryptError",
    "SignatureError",
    "MissingKeyError",
    "StateError",
    "ReplayError",
    "KeyLogError",
    "ClosedError",
    "flavour_of",
    "with_builtin",
    "raises_builtin",
]
