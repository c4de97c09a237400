"""The GSP signal-type registry (reference gsp_rfc.md §5; reference-map §2).

Its own module so that both the envelope (:mod:`.signal`, which re-exports it) and the argument
maps (:mod:`.args`) can use it without importing each other in a circle.
"""
from __future__ import annotations

from enum import IntEnum

__all__ = ["SignalType"]


class SignalType(IntEnum):
    """GSP signal registry (u32 on the wire; gsp_rfc §5, reference-map §2)."""

    JOIN = 100
    LEAVE = 101
    ROLE_CHANGE = 102
    MUTE = 200
    UNMUTE = 201
    STREAM_START = 300
    STREAM_STOP = 301
    CODEC_UPDATE = 400
