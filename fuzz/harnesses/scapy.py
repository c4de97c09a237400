"""The scapy layers of ``gbp_lab.dissectors``: ``GbpRecord(bytes).show()`` (the TCP record layer
and everything it dissects into: frame, decrypted payload, control, GTP/GAP/SFrame/GSP, MLS) and
the other layers directly.

Input: a selector byte (``< 160``: GbpRecord; else a layer of ``LAYERS``), then the bytes. The key
store holds the fixed secret the seeds were sealed with (fuzz/make_seeds.py), so decryption runs.
``conf.debug_dissector`` is on: a layer's exception is raised instead of being hidden as Raw.
Oracle (as tests/test_dissectors_fuzz.py): ``show``/``summary`` work and ``bytes(pkt)`` is the input.
"""
from __future__ import annotations

from scapy.config import conf

from gbp_lab.core import KeyLog
from gbp_lab.core.keylog import ENCRYPTION, EXPORTER, SENDER_DATA
from gbp_lab.dissectors import (GapPayload, GbpCborArgs, GbpControl, GbpErrorObject, GbpFrame, GbpRecord,
                                GspArgs, GspSignal, GtpMessage, MLSCommit, MLSKeyPackage, MLSMessage,
                                MLSProposal, MLSWelcome, SFrame, keylog_in_use)

from ..common import Cursor, Limits

LIMITS = Limits(cpu_seconds=2.0, per_input_byte=1024)
MAX_LEN = 4096
GID = bytes(range(16))  #: the seeds' group id and exporter secret
SECRET = bytes(range(32, 64))
LAYERS = (GbpFrame, GbpControl, GbpCborArgs, GbpErrorObject, GtpMessage, GapPayload, GspSignal, GspArgs,
          SFrame, MLSMessage, MLSKeyPackage, MLSWelcome, MLSCommit, MLSProposal)


def selector_for(layer: type) -> int:
    """The selector byte that picks *layer* (one of ``LAYERS``)."""
    i = LAYERS.index(layer)
    return next(s for s in range(160, 256) if s % len(LAYERS) == i)


def _keylog() -> KeyLog:
    log = KeyLog()
    for label in (EXPORTER, SENDER_DATA, ENCRYPTION):
        for ep in range(4):
            log.add(label, GID, ep, SECRET)
    return log


KEYS = _keylog()


def check(data: bytes) -> None:
    # the key store and scapy's debug flag are process-wide: set them for this call only
    debug = conf.debug_dissector
    conf.debug_dissector = True
    try:
        with keylog_in_use(KEYS):
            _check(data)
    finally:
        conf.debug_dissector = debug


def _check(data: bytes) -> None:
    cur = Cursor(data)
    sel = cur.u8()
    body = cur.rest()
    if not body:  # scapy reads cls(b"") as "build with the defaults"
        return
    cls = GbpRecord if sel < 160 else LAYERS[sel % len(LAYERS)]
    pkt = cls(body)
    pkt.show(dump=True)
    pkt.summary()
    assert bytes(pkt) == body, "the dissected packet does not rebuild to its bytes"
