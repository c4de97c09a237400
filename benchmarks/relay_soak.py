"""The relay under hostile clients: a bounded soak on loopback (issue 20).

    python benchmarks/relay_soak.py [--seconds 20] [--good 4] [--frames 400] [--bad 120]

One :class:`gbp_lab.sim.relay.RelayThread` on 127.0.0.1 (a free port, ``idle_timeout`` set), good
clients exchanging GBP frames (plain reference-style clients: they broadcast) while bad clients
come and go:

* ``garbage``   — a record that is neither a GBP frame nor an MLS blob, or raw random bytes;
* ``oversize``  — a length prefix above 1 MiB (and one claiming 4 GiB);
* ``slowloris`` — a record sent one byte at a time, slower and slower, never finished;
* ``half-open`` — connects (maybe half a length prefix) and then says nothing, never closes;
* ``nonreader`` — sends good frames but never reads what the relay fans out to it;
* ``reset``     — half a record, then an RST (SO_LINGER 0);
* ``flood``     — a burst of ``FLOOD`` idle connections opened at once, beyond the relay's
  ``max_connections`` (``--max-connections``): the ones over the cap are refused at once
  (``DS-TOO-MANY-CONNS``), the others time out (``DS-IDLE``); good members, connected first, keep
  their slots.

Checks (exit 1 if one fails): every good frame is delivered exactly once to every other good
client and nothing else reaches them; no good client is dropped; every bad client is cut off by
the relay (a ``drop`` event, or its connection ends) before the soak ends; the relay's memory
(tracemalloc, allocations made in the relay's code paths: relay, record reader, asyncio) stays
flat: its peak in the last third is within a bound of the middle third, and it returns near the
baseline once the bad clients are gone.

Bounded: at most ``--bad`` bad connections, ``--good`` × ``--frames`` frames, ``--seconds`` of
traffic (plus a few seconds to drain); loopback only; stops by itself.
"""
from __future__ import annotations

import argparse
import logging
import random
import socket
import struct
import sys
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from gbp_lab.core import DecodeError, RecordReader, decode_frame
from gbp_lab.core.gbp.frame import GbpFrame
from gbp_lab.core.gbp.framing import encode_record
from gbp_lab.sim.relay import Hello, RelayThread

HOST = "127.0.0.1"
GID = bytes(range(16))
KINDS = ("garbage", "oversize", "slowloris", "half-open", "nonreader", "reset", "flood")
FLOOD = 12  #: connections of one flood burst
RELAY_FILES = ("*/gbp_lab/sim/relay.py", "*/core/gbp/framing.py", "*/asyncio/*")


def frame_bytes(member: int, seq: int, size: int) -> bytes:
    payload = struct.pack(">IQ", member, seq) + bytes(size)
    return GbpFrame.build(GID, 1, 0, 2, member * 100 + 2, 0, seq, payload).to_cbor()


# -- good clients -------------------------------------------------------------------------------
@dataclass
class Good:
    member: int
    sock: socket.socket
    received: Counter = field(default_factory=Counter)
    junk: int = 0
    closed: Optional[str] = None


def good_reader(c: Good, stop: threading.Event) -> None:
    reader = RecordReader()
    c.sock.settimeout(0.2)
    while True:
        try:
            data = c.sock.recv(65536)
        except socket.timeout:
            if stop.is_set():
                return
            continue
        except OSError as exc:
            c.closed = f"error {exc}"
            return
        if not data:
            c.closed = "closed by relay"
            return
        for item in reader.feed(data):
            if not isinstance(item, bytes):  # an error item of the reader
                c.junk += 1
                continue
            try:
                f = decode_frame(item)
                member, seq = struct.unpack_from(">IQ", f.payload)
            except (DecodeError, struct.error):
                c.junk += 1
                continue
            c.received[(member, seq)] += 1


def good_sender(c: Good, frames: int, seconds: float, rng: random.Random) -> None:
    gap = seconds / max(frames, 1)
    for seq in range(frames):
        c.sock.sendall(encode_record(frame_bytes(c.member, seq, rng.randrange(0, 600))))
        time.sleep(gap * rng.uniform(0.5, 1.5))


def good_keepalive(c: Good, period: float, stop: threading.Event) -> None:
    """A listen-only good client stays alive with repeated HELLOs (the relay's documented way)."""
    while not stop.wait(period):
        try:
            c.sock.sendall(encode_record(Hello(c.member).to_bytes()))
        except OSError:
            return


# -- bad clients --------------------------------------------------------------------------------
@dataclass
class Bad:
    kind: str
    sock: socket.socket
    started: float
    next_at: float = 0.0
    sent: int = 0
    ended: Optional[str] = None  #: how the connection ended, as seen by the client
    peer: str = ""  #: "127.0.0.1:port" as the relay's events name it


def bad_driver(port: int, count: int, seconds: float, rng: random.Random, bads: List[Bad],
               drain: threading.Event, stop: threading.Event) -> None:
    """Start ``count`` bad clients over the first 70% of the soak and drive them until ``stop``.
    Once ``drain`` is set (the good traffic is over) the non-readers stop sending: with nothing
    to read and nothing sent they are idle connections, which the relay must cut off too."""
    t0 = time.monotonic()
    starts = sorted(rng.uniform(0, 0.7 * seconds) for _ in range(count))
    live: List[Bad] = []
    while not stop.is_set():
        now = time.monotonic() - t0
        if drain.is_set():
            starts.clear()
        while starts and starts[0] <= now:
            starts.pop(0)
            kind = KINDS[len(starts) % len(KINDS)]
            for _ in range(FLOOD if kind == "flood" else 1):
                s = socket.create_connection((HOST, port))
                s.setblocking(False)
                b = Bad(kind, s, now, next_at=now, peer=f"{HOST}:{s.getsockname()[1]}")
                bads.append(b)
                live.append(b)
        for b in list(live):
            if b.ended is None:
                _poll_end(b)
            if b.ended is not None:
                live.remove(b)
                b.sock.close()
                continue
            if now >= b.next_at and not (drain.is_set() and b.kind == "nonreader"):
                _act(b, now, rng)
            if b.ended is not None:
                live.remove(b)
                b.sock.close()
        time.sleep(0.005)
    for b in live:
        b.sock.close()


def _poll_end(b: Bad) -> None:
    try:
        data = b.sock.recv(65536) if b.kind != "nonreader" else None
    except BlockingIOError:
        return
    except OSError as exc:
        b.ended = f"error: {exc.__class__.__name__}"
        return
    if data == b"":
        b.ended = "closed by relay"


def _send(b: Bad, data: bytes) -> None:
    try:
        b.sock.send(data)
        b.sent += len(data)
    except BlockingIOError:
        pass
    except OSError as exc:
        b.ended = f"error: {exc.__class__.__name__}"


def _act(b: Bad, now: float, rng: random.Random) -> None:
    k = b.kind
    if k == "garbage":
        if b.sent == 0:
            body = rng.randbytes(rng.randrange(1, 300))
            _send(b, encode_record(b"\x42" + body) if rng.random() < 0.7 else rng.randbytes(64))
        b.next_at = now + 10.0
    elif k == "oversize":
        if b.sent == 0:
            _send(b, struct.pack("<I", rng.choice([(1 << 20) + 1, 0xFFFFFFFF])) + rng.randbytes(100))
        b.next_at = now + 10.0
    elif k == "slowloris":
        if b.sent == 0:
            _send(b, struct.pack("<I", 1 << 20))
        else:
            _send(b, bytes([rng.randrange(256)]))
        b.next_at = now + min(0.05 * (1 + b.sent / 4), 0.8)  # slower and slower, below any idle bound
    elif k == "half-open":
        if b.sent == 0 and rng.random() < 0.5:
            _send(b, b"\x10\x00")
        b.next_at = now + 1e9
    elif k == "nonreader":
        for _ in range(5):
            _send(b, encode_record(frame_bytes(1000 + id(b) % 1000, b.sent, 2000)))
        b.next_at = now + 0.05
    elif k == "flood":
        b.next_at = now + 1e9  # says nothing
    elif k == "reset":
        _send(b, struct.pack("<I", 500) + bytes(100))
        b.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        b.ended = "reset by client"


# -- the soak -----------------------------------------------------------------------------------
def relay_bytes() -> int:
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, f) for f in RELAY_FILES])
    return sum(s.size for s in snap.statistics("filename"))


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="traffic time (bounded)")
    ap.add_argument("--good", type=int, default=4)
    ap.add_argument("--frames", type=int, default=400, help="frames per good client")
    ap.add_argument("--bad", type=int, default=120, help="bad connections in total")
    ap.add_argument("--idle", type=float, default=1.5, help="the relay's idle_timeout (s)")
    ap.add_argument("--record-timeout", type=float, default=3.0,
                    help="the relay's record_timeout (s): cuts off slowloris clients (DS-SLOW-RECORD)")
    ap.add_argument("--max-queue", type=int, default=200, help="the relay's max_queue (records)")
    ap.add_argument("--max-connections", type=int, default=0,
                    help="the relay's max_connections (default: good clients + 3 × FLOOD)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mem-slack", type=float, default=2.0, help="allowed growth of the relay's memory (MiB)")
    ap.add_argument("--allow-slowloris", action="store_true",
                    help="report slowloris clients that are never cut off without failing (fuzz/FINDINGS.md R1)")
    args = ap.parse_args(argv)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # "socket.send() raised exception." noise
    seconds = min(args.seconds, 600.0)
    rng = random.Random(args.seed)
    tracemalloc.start(1)
    samples: List[Tuple[float, int, int]] = []
    with RelayThread(HOST, 0, idle_timeout=args.idle, record_timeout=args.record_timeout or None,
                     max_queue=args.max_queue,
                     max_connections=args.max_connections or args.good + 3 * FLOOD) as relay:
        port = relay.port
        goods = [Good(m, socket.create_connection((HOST, port))) for m in range(1, args.good + 1)]
        stop_readers, stop_bad, drain = threading.Event(), threading.Event(), threading.Event()
        base = relay_bytes()
        readers = [threading.Thread(target=good_reader, args=(c, stop_readers), daemon=True) for c in goods]
        readers += [threading.Thread(target=good_keepalive, args=(c, args.idle / 3, stop_readers), daemon=True)
                    for c in goods]
        senders = [threading.Thread(target=good_sender, args=(c, args.frames, seconds, random.Random(rng.random())),
                                    daemon=True) for c in goods]
        bads: List[Bad] = []
        driver = threading.Thread(target=bad_driver, args=(port, args.bad, seconds, random.Random(rng.random()),
                                                          bads, drain, stop_bad), daemon=True)
        t0 = time.monotonic()
        for t in (*readers, *senders, driver):
            t.start()
        while any(t.is_alive() for t in senders) and time.monotonic() - t0 < seconds + 30:
            samples.append((time.monotonic() - t0, relay_bytes(), relay.relay.connections))
            time.sleep(0.25)
        traffic = time.monotonic() - t0
        traffic_samples = list(samples)
        drain.set()
        # drain: bad clients still alive get idle_timeout + a margin to be cut off
        deadline = time.monotonic() + max(args.idle, args.record_timeout) * 2 + 2
        while time.monotonic() < deadline:
            samples.append((time.monotonic() - t0, relay_bytes(), relay.relay.connections))
            time.sleep(0.25)
        verdict_events = relay.events  # before the driver closes what is left
        stop_bad.set()
        driver.join(5)
        time.sleep(0.5)
        end_bytes = relay_bytes()
        left_open = relay.relay.connections - len(goods)
        events = relay.events
        stats = dict(relay.relay.stats)
        stop_readers.set()
        for t in readers:
            t.join(2)
        for c in goods:
            c.sock.close()
    tracemalloc.stop()

    # -- verdicts ---------------------------------------------------------------------------------
    ok = True
    members = {c.member for c in goods}
    expected = {(m, s) for m in members for s in range(args.frames)}
    lines = []
    for c in goods:
        want = {k for k in expected if k[0] != c.member}
        got = {k for k in c.received if k[0] in members}
        dup = sum(1 for k in want if c.received[k] > 1)
        missing = len(want - got)
        own = sum(1 for k in c.received if k[0] == c.member)
        foreign = sum(n for k, n in c.received.items() if k[0] not in members)
        good = not dup and not missing and not own and not c.junk and c.closed is None
        ok &= good
        lines.append(f"good member {c.member}: {len(got)}/{len(want)} frames, {dup} duplicated, {missing} missing, "
                     f"{own} echoed, {foreign} from non-readers, {c.junk} undecodable"
                     f"{'' if c.closed is None else ', CONNECTION ' + c.closed}  {'ok' if good else 'FAIL'}")
    good_drops = [e for e in events if e.kind == "drop" and e.member in members]
    if good_drops:
        ok = False
        lines.append(f"FAIL: good clients dropped: {good_drops[:3]}")
    drops = [e for e in events if e.kind == "drop"]
    by_vid = Counter(e.vid for e in drops)
    # the relay's log is the authority: a drop event for the client's address = cut off
    dropped = {e.peer: e.vid for e in verdict_events if e.kind == "drop"}
    left = {e.peer for e in verdict_events if e.kind == "leave"}
    per_kind: Dict[str, Counter] = {k: Counter() for k in KINDS}
    for b in bads:
        per_kind[b.kind]["total"] += 1
        if b.peer in dropped:
            per_kind[b.kind][f"cut off {dropped[b.peer]}"] += 1
        elif b.peer in left:
            per_kind[b.kind]["left by itself"] += 1
        else:
            per_kind[b.kind]["NOT cut off"] += 1
    for k in KINDS:
        kc = per_kind[k]
        note = ""
        if kc["NOT cut off"]:
            if k == "slowloris" and args.allow_slowloris:
                note = "  (known: fuzz/FINDINGS.md R1, allowed by --allow-slowloris)"
            else:
                ok = False
                note = "  FAIL"
        lines.append(f"bad {k:10}: {dict(kc)}{note}")
    lines.append(f"relay drops by vid: {dict(by_vid)}")
    slow_open = per_kind["slowloris"]["NOT cut off"] if args.allow_slowloris else 0
    if left_open > slow_open:
        ok = False
        lines.append(f"FAIL: {left_open} bad connections still open at the relay after the drain")
    # memory: (1) at every sample within what the relay's per-connection limits allow for the
    # connections open then (transport buffer high-water mark + max_queue records of the largest
    # size sent here + a partial record), so hostile clients cannot grow it beyond their own
    # bounded share; (2) back to the baseline once they are gone (nothing leaks per connection).
    # The trend (last vs middle third of the traffic) is printed for information.
    mib = 1 << 20
    per_conn = (1 << 20) + args.max_queue * 2100 + 64 * 1024
    slack = int(args.mem_slack * mib)
    over = [(t, b, n) for t, b, n in samples if b > n * per_conn + slack]
    returned = end_bytes <= base + slack
    ok &= not over and returned
    ts = traffic_samples
    third = max(1, len(ts) // 3)
    mid = max(b for _, b, _ in ts[third:2 * third]) if len(ts) >= 3 else base
    last = max(b for _, b, _ in ts[2 * third:]) if len(ts) >= 3 else base
    peak = max(b for _, b, _ in samples) if samples else base
    lines.append(f"relay memory (tracemalloc): baseline {base / mib:.2f} MiB, peak {peak / mib:.2f} "
                 f"(middle third {mid / mib:.2f}, last third {last / mib:.2f}), after the bad clients "
                 f"{end_bytes / mib:.2f} MiB; bound per open connection {per_conn / mib:.2f} MiB: "
                 f"{'within' if not over else f'EXCEEDED at {len(over)} samples, e.g. {over[0]}'}, "
                 f"{'back to baseline' if returned else 'NOT BACK TO BASELINE'}")
    lines.append(f"relay stats: {stats}")
    lines.append(f"traffic {traffic:.1f} s, {len(bads)} bad connections, "
                 f"{args.good} good clients x {args.frames} frames")
    print("\n".join(lines))
    print("SOAK OK" if ok else "SOAK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
