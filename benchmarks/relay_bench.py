"""Throughput and latency of the DS relay (gbp_lab.sim.relay) on loopback.

    python benchmarks/relay_bench.py [--members 20] [--messages 200] [--payload 64] [--rounds 200]
                                     [--inproc]

All clients are driven from one thread by ``gbp_lab.sim.client.pump``. The relay runs in a child
process (``gbp-lab relay --port 0``), as it would for real; ``--inproc`` runs it in a thread of
this process instead (``RelayThread``) — then the two share the GIL and latency includes GIL
hand-offs (``sys.getswitchinterval()``, 5 ms by default).

Two measurements:

* throughput — every member queues ``--messages`` GBP frames at once; deliveries per second
  (each message reaches ``members - 1`` receivers) and accepted records per second;
* latency — ``--rounds`` frames, one in flight at a time (members send in turn), each carrying its
  send time (``time.monotonic`` in the payload); the receive time is when the client read the
  chunk that completed the record. Percentiles p50/p90/p99/max over all deliveries (the later
  receivers of one frame include the time the driver spent reading the earlier ones).
"""
from __future__ import annotations

import argparse
import contextlib
import re
import signal
import struct
import subprocess
import sys
import time

from gbp_lab.core.gbp.frame import GbpFrame, decode_frame
from gbp_lab.sim import RelayClient, RelayThread, pump

GID = bytes(range(16))
_d = struct.Struct("<d")


def frame(member: int, seq: int, payload: bytes) -> bytes:
    return GbpFrame.build(GID, 1, 0, 2, member * 100 + 1, 7, seq, payload).to_cbor()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


@contextlib.contextmanager
def relay_process():
    """``gbp-lab relay --port 0`` in a child process; yields (port, stats-callable)."""
    proc = subprocess.Popen([sys.executable, "-m", "gbp_lab.cli", "relay", "--port", "0",
                             "--idle-timeout", "0", "--max-queue", str(1 << 20)],
                            stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in proc.stderr:  # type: ignore[union-attr]
            m = re.search(r"listening on [^ ]+:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "relay did not start"
        yield port
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out = proc.communicate(timeout=30)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[1]
        for line in out.splitlines():
            if line.startswith("relay stopped"):
                print(line)


@contextlib.contextmanager
def relay_thread():
    with RelayThread(port=0, idle_timeout=None, max_queue=1 << 20) as relay:
        yield relay.port
        print(f"relay stats: {relay.stats}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=20)
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--payload", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--inproc", action="store_true", help="run the relay in a thread of this process")
    a = ap.parse_args()
    n, m = a.members, a.messages
    pad = b"\x00" * max(0, a.payload - 8)
    with (relay_thread() if a.inproc else relay_process()) as port:
        clients = [RelayClient(port=port) for _ in range(n)]

        # throughput
        for i, c in enumerate(clients):
            for q in range(m):
                c.queue(frame(i + 1, q + 1, _d.pack(0.0) + pad))
        want = (n - 1) * m
        t0 = time.perf_counter()
        ok = pump(clients, until=lambda: all(len(c.inbox) >= want for c in clients), timeout=600)
        dt = time.perf_counter() - t0
        assert ok, "throughput run timed out"
        total = n * want
        print(f"relay throughput: {n} members x {m} messages ({a.payload} B payload)")
        print(f"  {n * m / dt:12,.0f} records accepted/s   {total / dt:12,.0f} deliveries/s   "
              f"({dt:.2f} s, {total:,} deliveries)")
        for c in clients:
            c.inbox.clear()

        # latency: one frame in flight at a time, senders in turn
        lat = []
        for r in range(a.rounds):
            i = r % n
            clients[i].queue(frame(i + 1, m + r + 1, _d.pack(time.monotonic()) + pad))
            others = [c for j, c in enumerate(clients) if j != i]
            assert pump(clients, until=lambda: all(c.inbox for c in others), timeout=60)
            for c in others:
                d = c.inbox.popleft()
                lat.append(d.time - _d.unpack_from(decode_frame(d.data).payload)[0])
        us = [x * 1e6 for x in lat]
        print(f"relay latency: {a.rounds} frames, one in flight at a time, to {n - 1} receivers each "
              f"({len(us):,} deliveries)")
        print(f"  p50 {pct(us, 50):8.0f} µs   p90 {pct(us, 90):8.0f} µs   p99 {pct(us, 99):8.0f} µs   "
              f"max {max(us):8.0f} µs")
        for c in clients:
            c.close()


if __name__ == "__main__":
    main()
