"""GAP audio payload (reference gap_rfc.md §4, §10-§11; ``crates/gap/src/payload.rs``;
reference-map §3-§4).

CBOR keys in serde order: ``msid`` u32, ``seq`` u32 (a 16-bit RTP sequence number widened to
u32, as in the reference), ``ts`` u64 (48 kHz RTP timestamp), ``kp`` u32 (key phase = the GBP
epoch truncated to u32), ``opus`` bstr (the Opus frame — or the SFrame ciphertext, RFC 9605,
when audio is end-to-end encrypted). There is no length field. Protobuf ``gap.GapPayload`` 1..5
and FlatBuffers ``gap.GapPayload`` slots 0..4 follow the same order; the reference always writes
the ``opus_frame`` vector in FlatBuffers, even when empty.

>>> GapPayload(media_source_id=5, rtp_sequence=1, rtp_timestamp=960, key_phase=1,
...            opus_frame=b"\\x01").to_bytes().hex()
'a5646d7369640563736571016274731903c0626b7001646f7075734101'
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..payload_codec import FieldSpec, Kind, MessageSchema, PayloadMessage, register_protobuf, validate_fields

__all__ = ["GapPayload", "OPUS_20MS_TIMESTAMP"]

#: ``rtp_timestamp`` the reference's ``opus_20ms`` constructor uses (960 samples at 48 kHz).
OPUS_20MS_TIMESTAMP = 960

GAP_PAYLOAD_SCHEMA = MessageSchema(
    name="GapPayload",
    pb_package="gap",
    fields=(
        FieldSpec("media_source_id", "msid", Kind.U32, 1),
        FieldSpec("rtp_sequence", "seq", Kind.U32, 2),
        FieldSpec("rtp_timestamp", "ts", Kind.U64, 3),
        FieldSpec("key_phase", "kp", Kind.U32, 4),
        FieldSpec("opus_frame", "opus", Kind.BYTES, 5),
    ),
)

register_protobuf([GAP_PAYLOAD_SCHEMA])


@dataclass(frozen=True)
class GapPayload(PayloadMessage):
    """One audio frame (gap_rfc §4)."""

    SCHEMA: ClassVar[MessageSchema] = GAP_PAYLOAD_SCHEMA

    media_source_id: int
    rtp_sequence: int
    rtp_timestamp: int
    key_phase: int
    opus_frame: bytes = b""

    def __post_init__(self) -> None:
        if isinstance(self.opus_frame, (bytearray, memoryview)):
            object.__setattr__(self, "opus_frame", bytes(self.opus_frame))
        validate_fields(self.SCHEMA, self)

    @classmethod
    def opus_20ms(cls, media_source_id: int, rtp_sequence: int, key_phase: int,
                  opus: bytes) -> "GapPayload":
        """A 20 ms frame at 48 kHz (``rtp_timestamp`` = 960), like the reference helper;
        *rtp_sequence* must fit 16 bits."""
        from ..payload_codec import check_int

        check_int(rtp_sequence, 16, where="rtp_sequence", decoding=False)
        return cls(media_source_id, rtp_sequence, OPUS_20MS_TIMESTAMP, key_phase, bytes(opus))
