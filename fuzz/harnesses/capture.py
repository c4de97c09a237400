"""``read_capture`` on whole (mutated) capture files — the lab's front door: pcap/pcapng, flows,
TCP reassembly, records, frames, decryption with a key log, payload decoding — and the tables
built from it (messages, audio, signals, control with PREPARE's Commit decoded, epochs), the
findings and the summary.

Promise: bad bytes become rows of ``capture.errors``; nothing raises but a typed error for a file
that is not a capture at all. The key log is the demo's (gbp_lab/data/demo/keys.log); captures
with GBPK secrets blocks bring their own.

Oracle, for one input in three (``crc32(input) % 3 == 0``, deterministic; it doubles the cost):
``iter_capture`` in chunks of 7 rows gives the same ``frames`` and ``errors`` rows as
``read_capture`` (the streaming reader is the same reader, chunked). Values are compared, not
dtypes: a text column that is all-missing in one chunk is an object column there (documented in
``gbp_lab/capture/columns.py``: as pandas itself infers it), ``str`` where it has text.
"""
from __future__ import annotations

import zlib

import pandas as pd

from gbp_lab.capture import read_capture
from gbp_lab.capture.stream import iter_capture
from gbp_lab.core import KeyLog
from gbp_lab.sim.demo import DEMO_KEYS

from ..common import Limits, MiB

LIMITS = Limits(cpu_seconds=5.0, peak_bytes=64 * MiB, per_input_byte=1024)
MAX_LEN = 65536
KEYS = KeyLog.load(DEMO_KEYS)


def _missing(v: object) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)


def _rows(df: pd.DataFrame) -> list:
    """The rows as tuples of plain values, every kind of missing as ``None``."""
    return [tuple(None if _missing(v) else v for v in row) for row in df.itertuples(index=False, name=None)]


def _same(whole: pd.DataFrame, parts: list) -> bool:
    """Same columns and the same rows in order (values, not dtypes; a tenth of the cost of building
    object frames and comparing them with ``DataFrame.equals``)."""
    if any(list(p.columns) != list(whole.columns) for p in parts):
        return False
    return _rows(whole) == [r for p in parts for r in _rows(p)]


def check(data: bytes) -> None:
    cap = read_capture(data, keylog=KEYS)
    for table in ("messages", "audio", "signals", "control", "epochs", "findings"):
        getattr(cap, table)
    cap.summary()
    if zlib.crc32(data) % 3 == 0:
        errors: list = []
        parts = list(iter_capture(data, keylog=KEYS, chunksize=7, progress=False, errors=errors))
        assert _same(cap.frames, parts), "iter_capture's frames differ from read_capture's"
        assert _same(cap.errors, errors), "iter_capture's errors differ from read_capture's"
