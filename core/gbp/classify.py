"""What is this record? — the one classifier of GBP transport records (gbp_rfc.md §3; RFC 9420 §6,
§10, §12.4.3).

A record on a GBP byte stream (or a datagram) carries either a GBP frame (a CBOR map, gbp_rfc §6)
or an MLS structure. The reference sends KeyPackages and Welcomes *raw* (the bare TLS structs),
other senders wrap them in an ``MLSMessage`` envelope (``version = 1 ‖ wire_format ‖ body``), and
the prefixes collide: a raw KeyPackage and a raw GroupInfo begin ``version ‖ cipher_suite`` =
``00 01 00 0N`` (so one of suite 2 looks like an envelope of a PrivateMessage, suite 3 like a
Welcome …), a raw Welcome begins with its ``cipher_suite``. No prefix test can tell them apart,
so :func:`classify_record` decides **by parsing**: the candidate that consumes exactly the whole
record wins. The first byte only orders the candidates (GBP frames are CBOR maps, first byte
``0xA0``–``0xBF``; MLS structures start with a u16 that is 0x0001 for every envelope, KeyPackage
and GroupInfo).

Candidates, in order: GBP frame (:func:`~gbp_lab.core.gbp.frame.decode_frame`, strict), the
``MLSMessage`` envelope with its body (PublicMessage, PrivateMessage, Welcome, GroupInfo,
KeyPackage), then the raw KeyPackage, GroupInfo and Welcome. Nothing is verified (signatures,
tags): this names a record, it does not authenticate it.

:func:`classify_record` never raises: anything else is :attr:`RecordKind.UNKNOWN` with the
reason in ``error``. Callers (capture tables, dissectors, relay, simulator, widgets) show
:attr:`RecordClass.name`.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import GbpLabError
from ..mls.framing import MLSMessage, PrivateMessage, PublicMessage
from ..mls.group_info import GroupInfo
from ..mls.key_package import KeyPackage
from ..mls.registries import WireFormat
from ..mls.welcome import Welcome
from .frame import GbpFrame, decode_frame


class RecordKind(Enum):
    """What a record carries."""

    GBP_FRAME = "GBP frame"
    KEY_PACKAGE = "KeyPackage"
    WELCOME = "Welcome"
    GROUP_INFO = "GroupInfo"
    PUBLIC_MESSAGE = "PublicMessage"
    PRIVATE_MESSAGE = "PrivateMessage"
    UNKNOWN = "unknown"

    @property
    def is_mls(self) -> bool:
        """True for the MLS kinds."""
        return self not in (RecordKind.GBP_FRAME, RecordKind.UNKNOWN)


@dataclass(frozen=True)
class RecordClass:
    """The classifier's answer for one record.

    ``kind`` and ``name`` (the display name every table, dissector and widget shows); ``wrapped``
    is True when the MLS structure came inside an ``MLSMessage`` envelope, False for the raw
    struct (and for GBP frames); ``suite`` is the cipher suite the structure names
    (KeyPackage, Welcome, GroupInfo), else ``None``; ``value`` is the parsed object — the
    :class:`~gbp_lab.core.gbp.frame.GbpFrame`, the raw KeyPackage / Welcome / GroupInfo, or the
    :class:`~gbp_lab.core.mls.framing.MLSMessage` envelope when ``wrapped`` (its body is
    :attr:`body`); ``error`` says why a record is UNKNOWN.
    """

    kind: RecordKind
    name: str
    wrapped: bool = False
    suite: Optional[int] = None
    value: Any = None
    error: Optional[str] = None

    @property
    def body(self) -> Any:
        """The structure itself: the envelope's body when ``wrapped``, else ``value``."""
        return self.value.message if self.wrapped else self.value

    @property
    def label(self) -> str:
        """``name`` with the envelope and suite, e.g. ``MLSMessage(KeyPackage) suite 2``."""
        text = f"MLSMessage({self.name})" if self.wrapped else self.name
        return text if self.suite is None else f"{text} suite {self.suite}"


_BY_WIRE_FORMAT: Dict[int, Tuple[RecordKind, Callable[[bytes], Any]]] = {
    int(WireFormat.MLS_PUBLIC_MESSAGE): (RecordKind.PUBLIC_MESSAGE, PublicMessage.from_bytes),
    int(WireFormat.MLS_PRIVATE_MESSAGE): (RecordKind.PRIVATE_MESSAGE, PrivateMessage.from_bytes),
    int(WireFormat.MLS_WELCOME): (RecordKind.WELCOME, Welcome.from_bytes),
    int(WireFormat.MLS_GROUP_INFO): (RecordKind.GROUP_INFO, GroupInfo.from_bytes),
    int(WireFormat.MLS_KEY_PACKAGE): (RecordKind.KEY_PACKAGE, KeyPackage.from_bytes),
}


def looks_like_frame(data: bytes) -> bool:
    """The cheap first-byte test: *data* starts like a CBOR map (every GBP frame does)."""
    return bool(data) and 0xA0 <= data[0] <= 0xBF


def looks_like_mls(data: bytes) -> bool:
    """The cheap prefix test: *data* starts like an MLS structure — ``ProtocolVersion`` mls10
    (``00 01``) then a u16 in 1..7, the ``MLSMessage`` wire format or a KeyPackage's cipher suite
    (RFC 9420 §6, §10, §17.1) — whether or not the rest parses. What a record *is* comes from
    :func:`classify_record`; this only says what it claims to be."""
    return len(data) >= 4 and data[0] == 0 and data[1] == 1 and 1 <= (data[2] << 8 | data[3]) <= 7


def _suite_of(kind: RecordKind, body: Any) -> Optional[int]:
    if kind is RecordKind.KEY_PACKAGE or kind is RecordKind.WELCOME:
        return int(body.cipher_suite)
    if kind is RecordKind.GROUP_INFO:
        return int(body.group_context.cipher_suite)
    return None


def _frame(data: bytes) -> RecordClass:
    frame: GbpFrame = decode_frame(data)
    return RecordClass(RecordKind.GBP_FRAME, RecordKind.GBP_FRAME.value, value=frame)


def _envelope(data: bytes) -> RecordClass:
    if len(data) < 4 or data[0] != 0 or data[1] != 1:
        raise ValueError("not an MLSMessage (version is not mls10)")
    wf = (data[2] << 8) | data[3]
    entry = _BY_WIRE_FORMAT.get(wf)
    if entry is None:
        raise ValueError(f"not an MLSMessage (wire format {wf})")
    kind, parse = entry
    body = parse(data[4:])
    return RecordClass(kind, kind.value, True, _suite_of(kind, body), MLSMessage(WireFormat(wf), body))


def _raw(kind: RecordKind, parse: Callable[[bytes], Any]) -> Callable[[bytes], RecordClass]:
    def attempt(data: bytes) -> RecordClass:
        body = parse(data)
        return RecordClass(kind, kind.value, False, _suite_of(kind, body), body)

    return attempt


_KEY_PACKAGE = _raw(RecordKind.KEY_PACKAGE, KeyPackage.from_bytes)
_GROUP_INFO = _raw(RecordKind.GROUP_INFO, GroupInfo.from_bytes)
_WELCOME = _raw(RecordKind.WELCOME, Welcome.from_bytes)
_MLS_ORDER = (("MLSMessage", _envelope), ("KeyPackage", _KEY_PACKAGE),
              ("GroupInfo", _GROUP_INFO), ("Welcome", _WELCOME))
_FRAME_ORDER = (("GBP frame", _frame),) + _MLS_ORDER
_MLS_THEN_FRAME = _MLS_ORDER + (("GBP frame", _frame),)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, GbpLabError):
        return f"[{exc.vid}] {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def classify_record(data: bytes) -> RecordClass:
    """Name one record body (see the module docstring); never raises."""
    try:
        data = bytes(data)
    except Exception as exc:  # noqa: BLE001 - not bytes-like: a typed answer, not an exception
        return RecordClass(RecordKind.UNKNOWN, RecordKind.UNKNOWN.value,
                           error=f"not bytes: {type(exc).__name__}")
    if not data:
        return RecordClass(RecordKind.UNKNOWN, RecordKind.UNKNOWN.value, error="empty record")
    order = _FRAME_ORDER if looks_like_frame(data) else _MLS_THEN_FRAME
    errors: List[Tuple[str, str]] = []
    for what, attempt in order:
        try:
            return attempt(data)
        except RecursionError:
            errors.append((what, "nesting too deep"))
        except MemoryError:  # not a verdict on the bytes: the caller's problem
            raise
        except Exception as exc:  # noqa: BLE001 - a failed candidate, whatever the parser raised
            errors.append((what, _reason(exc)))
    what, reason = errors[0]
    return RecordClass(RecordKind.UNKNOWN, RecordKind.UNKNOWN.value,
                       error=f"neither a GBP frame nor an MLS structure ({what}: {reason})")


__all__ = ["RecordKind", "RecordClass", "classify_record", "looks_like_frame", "looks_like_mls"]
