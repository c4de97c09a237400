"""GBP registries (reference gbp_rfc.md §2, §5, §6.1; crates/gbp/core/src). Every registry is an IntEnum."""
from __future__ import annotations

from enum import IntEnum


class StreamType(IntEnum):
    """GBP stream classes (frame key ``st``)."""

    CONTROL = 0
    AUDIO = 1
    TEXT = 2
    SIGNAL = 3


class PayloadCodec(IntEnum):
    """Sub-protocol payload encoding (frame key ``pf``); unknown values are read as CBOR."""

    CBOR = 0
    PROTOBUF = 1
    FLATBUFFERS = 2
