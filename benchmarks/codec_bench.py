"""Encode/decode cost of the GTP/GAP/GSP payload codecs, per codec (not a test; no assertions).

    .venv/bin/python benchmarks/codec_bench.py [--number N]

Prints the encoded size and microseconds per encode/decode. (The reference wheel exposes no
codec-only call, so there is nothing of its to time alongside.)
"""
from __future__ import annotations

import argparse
import timeit

from gbp_lab.core.gap.payload import GapPayload
from gbp_lab.core.gbp.registry import PayloadCodec
from gbp_lab.core.gsp.args import role_change_args
from gbp_lab.core.gsp.signal import GspSignal, SignalType
from gbp_lab.core.gtp.message import GtpMessage

SAMPLES = {
    "GtpMessage": GtpMessage.plain(sender_id=1, message_id=0xDEADBEEF, text="codec benchmark " * 8),
    "GapPayload": GapPayload(media_source_id=1, rtp_sequence=42, rtp_timestamp=960 * 42,
                             key_phase=3, opus_frame=bytes(range(160))),
    "GspSignal": GspSignal(SignalType.ROLE_CHANGE, 7, 1, 2, args=role_change_args(5, 2)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--number", type=int, default=5000)
    n = ap.parse_args().number
    print(f"{'message':<12} {'codec':<12} {'bytes':>6} {'encode µs':>10} {'decode µs':>10}")
    for name, msg in SAMPLES.items():
        cls = type(msg)
        for codec in PayloadCodec:
            data = msg.to_bytes(codec)
            enc = timeit.timeit(lambda: msg.to_bytes(codec), number=n) / n * 1e6
            dec = timeit.timeit(lambda: cls.from_bytes(data, codec), number=n) / n * 1e6
            print(f"{name:<12} {codec.name:<12} {len(data):>6} {enc:>10.1f} {dec:>10.1f}")


if __name__ == "__main__":
    main()
