"""Key logs (docs/keylog.md): ``KeyLog.parse`` on text and ``KeyLog.from_gbp_stack_state`` on the
reference's state blob.

Input: a selector byte (bit 0: state blob, bit 1: ``all_groups``), then the text (UTF-8, bad
bytes replaced) or blob. Oracle: a parsed log survives ``dump()`` → ``parse``.
"""
from __future__ import annotations

from gbp_lab.core import KeyLog

from ..common import Cursor, Limits

LIMITS = Limits()
MAX_LEN = 32768


def check(data: bytes) -> None:
    cur = Cursor(data)
    sel = cur.u8()
    body = cur.rest()
    if sel & 1:
        log = KeyLog.from_gbp_stack_state(body, all_groups=bool(sel & 2))
    else:
        log = KeyLog.parse(body.decode("utf-8", "replace"))
    assert KeyLog.parse(log.dump()) == log, "a key log does not survive dump()/parse"
