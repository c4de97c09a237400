"""The GSP (signalling) client: send signals with per-signal ``args`` over a GBP node and accept
delivered signals with request-id dedup, args schema check, optional role checks and the local
membership / mute state (gsp_rfc.md §5-§6; reference crates/gsp/src/client.rs and the
``gbp_stack.GspClient`` binding).

Receive order (as the reference): decode (``error`` ``decode: …``) → signal type in the registry
(``unknown signal_type: N``, GSP_UNKNOWN_SIGNAL) → args schema
(:func:`~gbp_lab.core.gsp.args.validate_args`, ``bad args schema: …``, GSP_BAD_SCHEMA) → request
id not seen this epoch (``duplicate``, GSP_DUPLICATE_REQUEST) → state effects → ``new``.

State effects are the reference's: JOIN adds the *sender* to :attr:`GspClient.members`, LEAVE
removes it (and unmutes it), MUTE / UNMUTE put the **sender** in / out of :attr:`GspClient.muted`
— the reference ignores the ``target_member_id`` argument here; we keep that so both sides agree,
and expose the target in ``GspAcceptResult.args``.

Role checks (an addition; the reference binding has none): give the client a
:class:`~gbp_lab.core.gsp.roles.RoleRegistry` (``GspClient.create(roles=...)``) and accept also
requires, after the schema check: SEND_SIGNAL for every signal, MUTE_OTHERS for MUTE / UNMUTE of
another member, ASSIGN_ROLES for ROLE_CHANGE (whose accepted new role is then assigned in the
registry when it is defined). LEAVE only ever concerns the sender. A denial is ``error`` with code
GSP_UNAUTHORIZED (0x3002) and does not consume the request id.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Set

from ..errors import DecodeError, UsageError, raises_builtin
from ..gbp.events import OutboundFrame
from ..gbp.registry import ErrorCode, PayloadCodec, StreamType, sent_flags
from ..gtp.client import EpochScopedDedup, decode_reason
from ..payload_codec import resolve_codec
from .args import GspArgsError, SignalArgs, validate_args
from .roles import Permissions, RoleRegistry
from .signal import GspSignal, SignalType

__all__ = ["GspClient", "GspAcceptResult", "SignalType", "REQUIRED_PERMISSIONS"]

_SIGNAL_FLAGS = int(sent_flags(StreamType.SIGNAL))
_SIGNAL_BASE = 3
_S = SignalType
_P = Permissions

#: Permissions a sender needs for each signal when the client has a role registry (MUTE / UNMUTE
#: of *another* member additionally need MUTE_OTHERS).
REQUIRED_PERMISSIONS = {
    _S.JOIN: _P.SEND_SIGNAL, _S.LEAVE: _P.SEND_SIGNAL,
    _S.ROLE_CHANGE: _P.SEND_SIGNAL | _P.ASSIGN_ROLES,
    _S.MUTE: _P.SEND_SIGNAL, _S.UNMUTE: _P.SEND_SIGNAL,
    _S.STREAM_START: _P.SEND_SIGNAL, _S.STREAM_STOP: _P.SEND_SIGNAL,
    _S.CODEC_UPDATE: _P.SEND_SIGNAL,
}


@dataclass(frozen=True)
class GspAcceptResult:
    """Outcome of :meth:`GspClient.accept`: ``status`` is ``new``, ``duplicate`` or ``error``.
    ``args`` (validated :class:`SignalArgs`), ``signal_message`` (the decoded envelope) and
    ``code`` are additions to the binding's result."""

    status: str
    signal: Optional[str] = None
    signal_code: Optional[SignalType] = None
    sender: Optional[int] = None
    role_claim: Optional[int] = None
    request_id: Optional[int] = None
    reason: Optional[str] = None
    args: Optional[SignalArgs] = None
    signal_message: Optional[GspSignal] = field(default=None, compare=False)
    code: Optional[int] = None


class GspClient(EpochScopedDedup):
    """Group Signaling Protocol client (request ids seen once per epoch; membership and mute
    state survive :meth:`reset`, as the reference)."""

    __slots__ = ("members", "muted", "roles")
    _closed_vid = "GSP-CLIENT-CLOSED"

    def __init__(self, roles: Optional[RoleRegistry] = None) -> None:
        super().__init__()
        #: members announced by JOIN (and not yet LEAVE)
        self.members: Set[int] = set()
        #: members muted by MUTE (see the module note on the reference's semantics)
        self.muted: Set[int] = set()
        self.roles = roles

    @classmethod
    def create(cls, roles: Optional[RoleRegistry] = None) -> "GspClient":
        """A fresh client, optionally checking senders' roles against *roles*."""
        return cls(roles)

    @raises_builtin(OSError)
    def send(self, node: Any, mls: Any, target: int, signal: int, role_claim: int,
             request_id: int, args: bytes = b"", codec: Any = PayloadCodec.CBOR) -> OutboundFrame:
        """Send *signal* with *args* (always CBOR inside, whatever *codec* the envelope uses;
        build them with :mod:`gbp_lab.core.gsp.args`). Errors are also ``OSError`` instances, as the
        binding's."""
        self._check_open()
        c = resolve_codec(codec)
        try:
            sig = SignalType(signal)
        except ValueError:
            raise UsageError(f"bad signal {signal!r}", vid="GSP-CLIENT-SIGNAL") from None
        self.sync_epoch(node.epoch)
        msg = GspSignal(int(sig), request_id, node.member_id, role_claim, None, bytes(args))
        return node.send_payload(mls, target, StreamType.SIGNAL,
                                 node.member_stream_id(_SIGNAL_BASE), _SIGNAL_FLAGS,
                                 msg.to_bytes(c), c)

    def accept(self, plaintext: bytes, current_epoch: Optional[int] = None,
               codec: Any = PayloadCodec.CBOR) -> GspAcceptResult:
        """Decode and apply a delivered signal (``codec`` = the event's ``codec``;
        ``current_epoch`` ``None`` keeps the current request-id set)."""
        if self._closed:
            return GspAcceptResult("error", reason="client closed")
        if current_epoch is not None:
            self.sync_epoch(current_epoch)
        try:
            s = GspSignal.from_bytes(plaintext, resolve_codec(codec))
        except DecodeError as exc:
            return GspAcceptResult("error", reason=decode_reason(exc),
                                   code=int(ErrorCode.GSP_BAD_SCHEMA))
        try:
            sig = SignalType(s.signal_type)
        except ValueError:
            return GspAcceptResult("error", reason=f"unknown signal_type: {s.signal_type}",
                                   signal_message=s, code=int(ErrorCode.GSP_UNKNOWN_SIGNAL))
        try:
            args = validate_args(sig, s.args)
        except GspArgsError as exc:
            return GspAcceptResult("error", reason=f"bad args schema: {exc.message}",
                                   signal_message=s, code=int(ErrorCode.GSP_BAD_SCHEMA))
        sender = s.sender_id
        if self.roles is not None:
            need = REQUIRED_PERMISSIONS[sig]
            if sig in (_S.MUTE, _S.UNMUTE) and args.target_member_id != sender:
                need |= _P.MUTE_OTHERS
            if not self.roles.has(sender, need):
                return GspAcceptResult(
                    "error", sig.name, sig, sender, s.role_claim, s.request_id,
                    f"unauthorized: member {sender} lacks permission 0x{int(need):08X} "
                    f"for {sig.name}", args, s, int(ErrorCode.GSP_UNAUTHORIZED))
        if not self._seen.insert(s.request_id):
            return GspAcceptResult("duplicate", request_id=s.request_id, signal_message=s,
                                   code=int(ErrorCode.GSP_DUPLICATE_REQUEST))
        if sig == _S.JOIN:
            self.members.add(sender)
        elif sig == _S.LEAVE:
            self.members.discard(sender)
            self.muted.discard(sender)
        elif sig == _S.MUTE:
            self.muted.add(sender)
        elif sig == _S.UNMUTE:
            self.muted.discard(sender)
        elif sig == _S.ROLE_CHANGE and self.roles is not None \
                and args.target_member_id is not None and args.new_role is not None \
                and self.roles.role(args.new_role) is not None:  # both keys are required
            self.roles.assign(args.target_member_id, args.new_role)
        return GspAcceptResult("new", sig.name, sig, sender, s.role_claim, s.request_id, None,
                               args, s)

    def close(self) -> None:
        """Refuse further use (idempotent; nothing native to release): ``send`` then raises
        :class:`~gbp_lab.core.errors.ClosedError` (an ``OSError``) and ``accept`` returns an
        ``error`` result, as the binding's."""
        self._closed = True

    def __enter__(self) -> "GspClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
