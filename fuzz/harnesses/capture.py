"""``read_capture`` on whole (mutated) capture files — the lab's front door: pcap/pcapng, flows,
TCP reassembly, records, frames, decryption with a key log, payload decoding — and the tables
built from it (messages, audio, signals, control with PREPARE's Commit decoded, epochs), the
findings and the summary.

Promise: bad bytes become rows of ``capture.errors``; nothing raises but a typed error for a file
that is not a capture at all. The key log is the demo's (gbp_lab/data/demo/keys.log); captures
with GBPK secrets blocks bring their own.
"""
from __future__ import annotations

from gbp_lab.capture import read_capture
from gbp_lab.core import KeyLog
from gbp_lab.sim.demo import DEMO_KEYS

from ..common import Limits, MiB

LIMITS = Limits(cpu_seconds=5.0, peak_bytes=64 * MiB, per_input_byte=1024)
MAX_LEN = 65536
KEYS = KeyLog.load(DEMO_KEYS)


def check(data: bytes) -> None:
    cap = read_capture(data, keylog=KEYS)
    for table in ("messages", "audio", "signals", "control", "epochs", "findings"):
        getattr(cap, table)
    cap.summary()
