"""Throughput of our GroupNode and GtpClient next to the reference binding (gbp_stack wheel).

    python benchmarks/node_bench.py [-n FRAMES] [-r REPEATS]

Rows (operations per second, same run, best of R runs, ours and the wheel's alternating):

* on_wire    — a receiving node fed N reference GTP text frames (fresh node per run, so every
               frame is new): ``GroupNode.on_wire`` (ours, keys from an ExporterView) vs
               ``gbp_stack.GroupNode.on_wire`` (ctypes + JSON events)
* gtp send   — ``GtpClient.send`` of a short text through the node (seal + frame)
* gtp accept — ``GtpClient.accept`` of N distinct CBOR GTP plaintexts

The ratio column is ours / reference (≥ 1.0 = at least as fast as the reference binding).
"""
from __future__ import annotations

import argparse
import time

import gbp_stack as g

from gbp_lab.core.gbp.node import GroupNode
from gbp_lab.core.gtp.client import GtpClient
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.mls.exporter_view import ExporterView


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20_000, help="operations per measurement")
    ap.add_argument("-r", type=int, default=5, help="runs per row (best is kept)")
    args = ap.parse_args()
    n, rep = args.n, args.r

    alice, bob = g.MlsContext.create("alice"), g.MlsContext.create("bob")
    bob.accept_welcome(alice.invite(bob.export_key_package()))
    gid, epoch = alice.group_id, alice.epoch
    view = ExporterView.from_keylog(KeyLog.from_gbp_stack_state(bob.export_state()), gid, epoch)
    na = g.GroupNode.create(1, gid)
    na.bootstrap_as_creator(epoch)
    gtp_ref = g.GtpClient.create()
    wires = [gtp_ref.send(na, alice, 2, i, "hello, group").wire for i in range(n)]

    def fresh_ours():
        node = GroupNode.create(2, gid)
        node.bootstrap_as_joiner(epoch)
        node.drain_events()
        return node

    def fresh_ref():
        node = g.GroupNode.create(2, gid)
        node.bootstrap_as_joiner(epoch)
        node.drain_events()
        return node

    rows = []

    # on_wire
    t_ours = t_ref = float("inf")
    for _ in range(rep):
        node = fresh_ours()
        on = node.on_wire
        t0 = time.perf_counter()
        for w in wires:
            on(view, w)
        t_ours = min(t_ours, time.perf_counter() - t0)
        rnode = fresh_ref()
        ron = rnode.on_wire
        t0 = time.perf_counter()
        for w in wires:
            ron(bob, w)
        t_ref = min(t_ref, time.perf_counter() - t0)
        rnode.close()
    assert node.on_wire(view, wires[0])[0].code == 5  # every frame was consumed
    rows.append(("on_wire", n / t_ours, n / t_ref))

    # gtp send
    t_ours = t_ref = float("inf")
    for _ in range(rep):
        node, c = fresh_ours(), GtpClient.create()
        send = c.send
        t0 = time.perf_counter()
        for i in range(n):
            send(node, view, 1, i, "hello, group")
        t_ours = min(t_ours, time.perf_counter() - t0)
        rnode, rc = fresh_ref(), g.GtpClient.create()
        rsend = rc.send
        t0 = time.perf_counter()
        for i in range(n):
            rsend(rnode, bob, 1, i, "hello, group")
        t_ref = min(t_ref, time.perf_counter() - t0)
        rnode.close()
        rc.close()
    rows.append(("gtp send", n / t_ours, n / t_ref))

    # gtp accept
    node = fresh_ours()
    plains = [e.plaintext for w in wires for e in node.on_wire(view, w)]
    assert len(plains) == n
    t_ours = t_ref = float("inf")
    for _ in range(rep):
        c = GtpClient.create()
        acc = c.accept
        t0 = time.perf_counter()
        for p in plains:
            acc(p, epoch)
        t_ours = min(t_ours, time.perf_counter() - t0)
        rc = g.GtpClient.create()
        racc = rc.accept
        t0 = time.perf_counter()
        for p in plains:
            racc(p, epoch)
        t_ref = min(t_ref, time.perf_counter() - t0)
        rc.close()
    rows.append(("gtp accept", n / t_ours, n / t_ref))

    print(f"{'row':<12}{'ours/s':>12}{'reference/s':>14}{'ratio':>8}   (n={n}, best of {rep})")
    for name, ours, ref in rows:
        print(f"{name:<12}{ours:>12,.0f}{ref:>14,.0f}{ours / ref:>8.2f}")
    na.close()
    gtp_ref.close()
    alice.close()
    bob.close()


if __name__ == "__main__":
    main()
