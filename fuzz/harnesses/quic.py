"""The passive QUIC observer (``core/quic``: RFC 9000 headers and frames, RFC 9001 keys) on
datagram sequences, with and without TLS secrets.

Input: ``u16`` length + key-log text (its TLS lines are the secrets; empty: none), then datagrams
as ``u8 direction ‖ u16 length ‖ bytes`` (direction bit 0: from the client). Every datagram also
goes through ``parse_frames`` as if it were a decrypted payload. Oracle: each stream's ``data``
events continue exactly where the previous ended (in-order delivery), gaps move forward only, and
a stream's events stop at its ``end``.
"""
from __future__ import annotations

from typing import Dict, Tuple

from gbp_lab.core.errors import GbpLabError
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.quic.observer import QuicObserver
from gbp_lab.core.quic.packets import parse_frames

from ..common import Cursor, Limits

LIMITS = Limits(cpu_seconds=2.0)
MAX_LEN = 16384
CLIENT = ("10.0.0.1", 40000, "10.0.0.2", 7878)
SERVER = CLIENT[2:] + CLIENT[:2]


def check(data: bytes) -> None:
    cur = Cursor(data)
    text = cur.take(cur.uint(2)).decode("utf-8", "replace")
    try:
        log = KeyLog.parse(text)
    except GbpLabError:
        log = KeyLog()
    obs = QuicObserver(log.tls_secrets)
    at: Dict[Tuple, int] = {}
    ended = set()

    def follow(events) -> None:
        for e in events:
            key = (e.connection, e.from_client, e.stream_id)
            if e.kind == "error":
                assert e.vid and e.vid.startswith("QUIC-"), e
                continue
            assert key not in ended, f"event after the end of {key}"
            if e.kind in ("data", "gap"):
                assert e.offset == at.get(key, 0), f"{e.kind} at {e.offset}, expected {at.get(key, 0)}"
                at[key] = e.end if e.kind == "gap" else e.offset + len(e.data)
            elif e.kind == "end":
                ended.add(key)

    while cur.pos < len(cur.data):
        fc = cur.u8() & 1
        dgram = cur.take(cur.uint(2))
        follow(obs.datagram(dgram, CLIENT if fc else SERVER))
        try:
            parse_frames(dgram)
        except GbpLabError:
            pass
    follow(obs.finish())
