"""Throughput of the capture reader (not a test: ``python benchmarks/capture_bench.py``).

Builds a synthetic Ethernet/IPv4 pcap of GBP traffic (text frames sealed under a fixed exporter
secret, several TCP flows, records split across and coalesced within 1448-byte segments, some
out-of-order) and times each stage:

* ``packets``   — :class:`gbp_lab.capture.pcap.CaptureReader` alone;
* ``decode``    — + link/IP/TCP parsing (:func:`~gbp_lab.capture.pcap.decode_packet`);
* ``records``   — + reassembly and record splitting (:func:`~gbp_lab.capture.records.read_records`);
* ``capture``   — :func:`~gbp_lab.capture.model.read_capture` without keys, then with the key log
  (AEAD + GTP decode per frame);
* ``scapy``     — ``scapy.utils.rdpcap`` on the same file, for comparison (can be skipped).
"""
from __future__ import annotations

import argparse
import os
import random
import struct
import tempfile
import time

from gbp_lab.capture.model import read_capture
from gbp_lab.capture.pcap import CaptureReader, decode_packet
from gbp_lab.capture.records import read_records
from gbp_lab.core.gbp.aead import seal_frame
from gbp_lab.core.gtp.message import GtpMessage
from gbp_lab.core.payload_codec import encode

GID = bytes(range(16))
SECRET = bytes(range(32))
MSS = 1448


def _packet(src, dst, sport, dport, seq, payload, flags=0x18):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + tcp


def build(path: str, frames: int, flows: int, seed: int = 1) -> int:
    rnd = random.Random(seed)
    streams = [bytearray() for _ in range(flows)]
    for i in range(frames):
        k = i % flows
        msg = encode(GtpMessage.plain(k + 1, i, "x" * rnd.randrange(10, 400)))
        fr = seal_frame(SECRET, GID, 1, 0, 2, 101 + 100 * k, 7, i // flows + 1, msg).to_cbor()
        streams[k] += struct.pack("<I", len(fr)) + fr
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    t = 1_700_000_000_000_000
    segs = []
    for k, s in enumerate(streams):
        src, dst = bytes((10, 0, k // 256, k % 256)), bytes((10, 1, 0, 1))
        segs.append([_packet(src, dst, 40000 + k, 7878, 1000, b"", 0x02)]
                    + [_packet(src, dst, 40000 + k, 7878, 1001 + o, bytes(s[o:o + MSS]))
                       for o in range(0, len(s), MSS)])
    n = 0
    idx = [0] * flows
    live = list(range(flows))
    while live:
        k = rnd.choice(live)
        seq = segs[k]
        i = idx[k]
        if i + 1 < len(seq) and rnd.random() < 0.02:  # swap two neighbours: out of order
            seq[i], seq[i + 1] = seq[i + 1], seq[i]
        p = seq[i]
        idx[k] += 1
        if idx[k] == len(seq):
            live.remove(k)
        t += 37
        out += struct.pack("<IIII", t // 10**6, t % 10**6, len(p), len(p)) + p
        n += 1
    with open(path, "wb") as f:
        f.write(out)
    return n


def _timed(label, fn, unit_count, unit):
    t0 = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t0
    print(f"{label:<22} {dt:8.3f} s  {unit_count / dt:12,.0f} {unit}/s")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--flows", type=int, default=20)
    ap.add_argument("--no-scapy", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.pcap")
        packets = build(path, args.frames, args.flows)
        size = os.path.getsize(path)
        print(f"{args.frames} frames, {packets} packets, {size / 1e6:.1f} MB, {args.flows} flows")
        _timed("packets", lambda: sum(1 for _ in CaptureReader(path)), packets, "packets")
        _timed("decode", lambda: sum(1 for p in CaptureReader(path)
                                     if decode_packet(p.linktype, p.data)), packets, "packets")
        res = _timed("records", lambda: read_records(path), args.frames, "frames")
        assert len(res.records) == args.frames and not res.errors, res.errors[:3]
        cap = _timed("capture (no keys)", lambda: read_capture(path), args.frames, "frames")
        assert len(cap.frames) == args.frames
        keylog = f"MLS_EXPORTER_SECRET {GID.hex()} 1 {SECRET.hex()}\n"
        cap = _timed("capture (decrypt)", lambda: read_capture(path, keylog=keylog), args.frames,
                     "frames")
        assert cap.frames["decrypted"].all()
        if not args.no_scapy:
            from scapy.all import rdpcap  # loads the layers: a real dissection

            _timed("scapy rdpcap", lambda: rdpcap(path), packets, "packets")


if __name__ == "__main__":
    main()
