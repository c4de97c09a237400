"""Throughput of the GBP wire layer, each next to the raw ceiling of the library call it wraps.

    python benchmarks/wire_bench.py [-n FRAMES] [--payload BYTES]

Rows (frames per second, measured in this run, best of 3):

* decode  — ``decode_frame(wire)``            vs ``cbor2.loads(wire)``
* encode  — ``GbpFrame.to_cbor()``            vs ``cbor2.dumps(the same dict)``
* seal    — ``seal_frame(...)`` (key cached)  vs ``ChaCha20Poly1305.encrypt``
* open    — ``open_frame(frame, keylog)``     vs ``ChaCha20Poly1305.decrypt``
* reader  — ``FrameReader.feed`` on 64 KiB chunks of a record stream vs ``cbor2.loads`` per frame

The ratio column is ours / ceiling (1.0 = no overhead over the bare library call).
"""
from __future__ import annotations

import argparse
import time

import cbor2
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from gbp_lab.core.gbp.aead import nonce_for, open_frame, seal_frame, stream_key
from gbp_lab.core.gbp.frame import GbpFrame, decode_frame
from gbp_lab.core.gbp.framing import FrameReader, encode_record
from gbp_lab.core.keylog import KeyLog

GID = bytes(range(16))
SECRET = bytes(range(32, 64))


def _rate(fn, n: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000, help="frames per measurement")
    ap.add_argument("--payload", type=int, default=64, help="plaintext bytes per frame")
    args = ap.parse_args()
    n, size = args.n, args.payload
    log = KeyLog()
    log.add("MLS_EXPORTER_SECRET", GID, 1, SECRET)
    plaintext = bytes(size)
    frames = [seal_frame(SECRET, GID, 1, 0, 2, 101, 7, seq, plaintext) for seq in range(1, 1025)]
    wires = [f.to_cbor() for f in frames]
    dicts = [cbor2.loads(w) for w in wires]
    key = stream_key(SECRET, 2)
    aead = ChaCha20Poly1305(key)
    nonces = [nonce_for(seq) for seq in range(1, 1025)]
    m = len(frames)

    def dec(k):
        for i in range(k):
            decode_frame(wires[i % m])

    def loads(k):
        for i in range(k):
            cbor2.loads(wires[i % m])

    def enc(k):
        for i in range(k):
            frames[i % m].to_cbor()

    def dumps(k):
        for i in range(k):
            cbor2.dumps(dicts[i % m])

    def seal(k):
        for i in range(k):
            seal_frame(SECRET, GID, 1, 0, 2, 101, 7, i % m + 1, plaintext)

    def encrypt(k):
        for i in range(k):
            aead.encrypt(nonces[i % m], plaintext, None)

    def open_(k):
        for i in range(k):
            open_frame(frames[i % m], log)

    def decrypt(k):
        for i in range(k):
            aead.decrypt(nonces[i % m], frames[i % m].payload, None)

    stream = b"".join(encode_record(w) for w in wires)

    def reader(k):
        r = FrameReader()
        done = 0
        while done < k:
            for j in range(0, len(stream), 65536):
                done += len(r.feed(stream[j:j + 65536]))

    rows = [("decode", dec, "cbor2.loads", loads), ("encode", enc, "cbor2.dumps", dumps),
            ("seal", seal, "ChaCha20Poly1305.encrypt", encrypt),
            ("open", open_, "ChaCha20Poly1305.decrypt", decrypt),
            ("reader", reader, "cbor2.loads", loads)]
    print(f"{n} frames, {size}-byte plaintext, {len(wires[0])}-byte frames")
    print(f"{'op':<8}{'ours/s':>12}  {'ceiling':<26}{'ceiling/s':>12}  {'ratio':>6}")
    for name, ours, cname, ceiling in rows:
        a, b = _rate(ours, n), _rate(ceiling, n)
        print(f"{name:<8}{a:>12,.0f}  {cname:<26}{b:>12,.0f}  {a / b:>6.2f}")
    assert isinstance(decode_frame(wires[0]), GbpFrame)


if __name__ == "__main__":
    main()
