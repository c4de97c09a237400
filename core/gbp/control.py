"""The control-plane message carried (encrypted) on stream 0 (gbp-control-plane.md §3; reference
crates/gbp/base/src/control.rs).

A CBOR map with text keys in this order::

    op u16 · rid u32 · sid u32 (sender member id) · tid u32 · alen u32 (= len args) · args bstr

``args`` depends on the opcode: PREPARE carries the raw TLS-serialised MLSMessage with the Commit,
READY and EXECUTE are empty, a coordinator claim (CAPABILITIES_ADVERTISE) is ``A1 00 F5``
(``{0: true}``). Decoding rejects what the reference's ``ControlMessage::from_cbor`` rejects
(invalid CBOR, wrong types, ranges, missing keys, ``alen != len(args)``) and also trailing bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..cbor import BSTR, UINT, decode_map, encoder
from ..errors import DecodeError, UsageError
from .registry import ControlOpcode

CONTROL_SPEC = (
    ("op", UINT, 0xFFFF), ("rid", UINT, 0xFFFFFFFF), ("sid", UINT, 0xFFFFFFFF),
    ("tid", UINT, 0xFFFFFFFF), ("alen", UINT, 0xFFFFFFFF), ("args", BSTR, 0),
)
_ENCODE = encoder(CONTROL_SPEC)
#: ``{0: true}``: the coordinator-claim args of CAPABILITIES_ADVERTISE (gbp-control-plane.md §5.1).
COORDINATOR_CLAIM_ARGS = b"\xa1\x00\xf5"


@dataclass(frozen=True)
class ControlMessage:
    """A decoded control message; ``args_length`` is the wire ``alen``."""

    opcode: int
    request_id: int
    sender_id: int
    transition_id: int
    args_length: int
    args: bytes = b""

    @classmethod
    def build(cls, opcode: int, request_id: int, sender_id: int, transition_id: int,
              args: bytes = b"") -> "ControlMessage":
        """A message with ``alen`` = ``len(args)`` (reference ``ControlMessage::with_args``)."""
        return cls(int(opcode), request_id, sender_id, transition_id, len(args), bytes(args))

    @property
    def op(self) -> Optional[ControlOpcode]:
        """``opcode`` as :class:`ControlOpcode` (``None`` if not in the registry)."""
        try:
            return ControlOpcode(self.opcode)
        except ValueError:
            return None

    @property
    def is_coordinator_claim(self) -> bool:
        """True for CAPABILITIES_ADVERTISE carrying the claim ``{0: true}`` (exact bytes)."""
        return self.opcode == ControlOpcode.CAPABILITIES_ADVERTISE and self.args == COORDINATOR_CLAIM_ARGS

    def to_cbor(self) -> bytes:
        """CBOR bytes in the reference's key order."""
        for name, value, maxv in (("opcode", self.opcode, 0xFFFF), ("request_id", self.request_id, 0xFFFFFFFF),
                                  ("sender_id", self.sender_id, 0xFFFFFFFF),
                                  ("transition_id", self.transition_id, 0xFFFFFFFF),
                                  ("args_length", self.args_length, 0xFFFFFFFF)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maxv:
                raise UsageError(f"{name}={value!r} does not fit the wire type",
                                 vid="GBP-CTRL-ENCODE", where=name)
        return _ENCODE((self.opcode, self.request_id, self.sender_id, self.transition_id,
                        self.args_length, self.args))


def decode_control(data: bytes) -> ControlMessage:
    """Decode a control message (vids ``GBP-CTRL-CBOR``, ``-NOT-MAP``, ``-TRAILING``, ``-TYPE``,
    ``-RANGE``, ``-DUPLICATE``, ``-MISSING``, ``-ALEN``)."""
    v, _ = decode_map(data, CONTROL_SPEC, "GBP-CTRL", "control message", True)
    if v["alen"] != len(v["args"]):
        raise DecodeError(f"control message: alen={v['alen']} but args has {len(v['args'])} bytes",
                          vid="GBP-CTRL-ALEN", where="alen")
    return ControlMessage(v["op"], v["rid"], v["sid"], v["tid"], v["alen"], v["args"])


__all__ = ["ControlMessage", "decode_control", "CONTROL_SPEC", "COORDINATOR_CLAIM_ARGS"]
