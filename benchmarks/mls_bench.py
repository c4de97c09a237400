"""MLS (RFC 9420) speed: our pure-Python ``gbp_lab.core.mls`` against openmls through the
reference wheel (``gbp_stack.MlsContext``), same machine, same run (not a test; no assertions).

    .venv/bin/python benchmarks/mls_bench.py [--sizes 16,64,256,1024] [--grow 128] [--quick]
                                             [--repeat R] [--joiners] [--cold] [--only ours|ref] [--profile FILE]
                                             [--clock wall|cpu] [--workers N]

Two measures, each printed for both implementations with the ratio ``ours / openmls``:

1. **Per group size** N (``--sizes``): a group of N members (creator A, member B, N-2 others)
   is built, then timed, each the median of ``--repeat`` rounds:

   * ``commit``  — A adds one more member with ``invite_full`` (an Add commit carrying a full
     UpdatePath, RFC 9420 §12.4.1, plus the Welcome);
   * ``process`` — B processes that commit and merges it (``process_message`` +
     ``finalize_commit``, §12.4.2);
   * ``welcome`` — the new member joins (``accept_welcome``, §12.4.3.1; the GroupInfo carries
     the ratchet tree extension, so this includes decoding and validating the whole tree).

   The group is then reset to N members (A removes the added member; B processes) before the
   next round, so every round is measured at the same size.

   Building the group is not timed. Ours is built in bulk: one commit adding all N-2 others
   (``MlsContext.invite_many``), then B by ``invite`` (B joins last so that it has the full tree).
   The wheel has single invites only, so A invites the N-2 others one by one with ``invite``
   (merged at once; nobody else processes them) and then B. The two groups end in the same
   shape — N members in leaves 0..N-1, B at leaf N-1, only A's direct path populated (every one of
   A's commits carries a full path), every other parent blank — so a commit from A encrypts to
   the same copath resolutions (N-1 HPKE ciphertexts) on both sides. The printed commit and
   Welcome sizes agree within a few bytes: openmls' Add commits carry a full UpdatePath too.

2. **Grow 1 → M** (``--grow``, the issue's headline): A alone, B joins first (Welcome, untimed);
   then for each further member A ``invite_full`` s it (full UpdatePath), B ``process_message`` s
   and ``finalize_commit`` s, A ``finalize_commit`` s — timed in total, KeyPackages made
   beforehand (untimed), Welcomes for the others not processed — with ``--joiners`` each new
   member also accepts its Welcome (timed). Run first, median of ``--repeat`` runs, the
   implementations alternating.

Every context is fresh in this process. The one thing ours shares across contexts is the memo of
signatures that already verified in this process (``gbp_lab.core.mls.signatures.verified_signatures``:
the joiner of a group built in this process finds its leaves' signatures there, as in the
simulator and the notebooks); ``--cold`` turns it off, so every signature is checked by the
primitive as in a process that saw nothing (the fair per-joiner comparison with openmls). ``--quick`` = sizes 16,64,
grow to 32, one repeat. ``--profile FILE`` writes a cProfile of our side of the grow run.
``--clock cpu`` times with ``time.process_time`` instead of ``perf_counter`` (use it when other
jobs share the machine; the wheel runs openmls in this process, so both sides are counted alike;
it counts every thread, so it hides what ``workers.pool`` saves in wall time).
``--workers N`` sizes that pool (1 = every signature check and HPKE seal in the calling thread).
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from tqdm import tqdm

from gbp_lab.core.mls.context import MlsContext as Ours
from gbp_lab.core.mls.signatures import verified_signatures
from gbp_lab.core.mls.workers import pool as worker_pool

try:  # the reference wheel (openmls 0.8 behind a C ABI)
    from gbp_stack import MlsContext as Ref
except ImportError:  # pragma: no cover - the wheel is a dev dependency
    Ref = None

perf = time.perf_counter  # --clock cpu switches to time.process_time (a shared, busy machine)


@dataclass
class Impl:
    """One implementation: how to make a member and how to build a group in bulk."""

    name: str
    create: Callable[[str], object]
    bulk: bool          # has invite_many
    results: Dict[str, Dict[int, float]] = field(default_factory=dict)


def _impls(only: Optional[str]) -> List[Impl]:
    out = []
    if only in (None, "ours"):
        out.append(Impl("ours", Ours.create, True))
    if only in (None, "ref"):
        if Ref is None:
            print("gbp_stack is not installed: openmls column skipped", file=sys.stderr)
        else:
            out.append(Impl("openmls", Ref.create, False))
    return out


def build_group(impl: Impl, n: int, desc: str):
    """A group of ``n`` >= 2 members: returns (A, B). Untimed."""
    a = impl.create("A")
    b = impl.create("B")
    others = [impl.create(f"m{i}").export_key_package()
              for i in tqdm(range(n - 2), desc=f"{desc}: key packages", leave=False)]
    if others:
        if impl.bulk:
            a.invite_many(others)
            a.finalize_commit()
        else:
            for kp in tqdm(others, desc=f"{desc}: invites", leave=False):
                a.invite(kp)
    b.accept_welcome(a.invite(b.export_key_package()))
    return a, b


def round_at_size(impl: Impl, a, b, newcomer) -> Dict[str, float]:
    """One measured round (see the module docstring), then the group is put back to its size."""
    kp = newcomer.export_key_package()
    gc.collect()  # start each round without the previous rounds' garbage
    t0 = perf()
    commit, welcome = a.invite_full(kp)
    t1 = perf()
    assert b.process_message(commit) == "commit"
    b.finalize_commit()
    t2 = perf()
    newcomer.accept_welcome(welcome)
    t3 = perf()
    a.finalize_commit()
    # back to the same size: A removes the newcomer (the last leaf), B follows
    leaf = _last_leaf(impl, a)
    rm = a.remove_member(leaf)
    b.process_message(rm)
    b.finalize_commit()
    a.finalize_commit()
    return {"commit": t1 - t0, "process": t2 - t1, "welcome": t3 - t2, "commit_bytes": len(commit),
            "welcome_bytes": len(welcome)}


def _last_leaf(impl: Impl, a) -> int:
    if impl.bulk:
        return max(m.leaf_index for m in a.members)
    return _last_leaf.ref_size  # type: ignore[attr-defined]


def bench_sizes(impls: List[Impl], sizes: List[int], repeat: int) -> Dict[int, Dict[str, Dict[str, float]]]:
    table: Dict[int, Dict[str, Dict[str, float]]] = {}
    for n in sizes:
        table[n] = {}
        for impl in impls:
            a, b = build_group(impl, n, f"{impl.name} N={n}")
            _last_leaf.ref_size = n  # type: ignore[attr-defined]  # the wheel hides the tree: leaf n
            rows = [round_at_size(impl, a, b, impl.create(f"new{r}"))
                    for r in tqdm(range(repeat), desc=f"{impl.name} N={n}: rounds", leave=False)]
            table[n][impl.name] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            del a, b, rows
            gc.collect()
    return table


def bench_grow(impl: Impl, m: int, profile: Optional[str] = None, joiners: bool = False) -> float:
    """Total time to grow 1 → ``m`` with full update paths, B processing each commit (and, with
    ``joiners``, each new member accepting its Welcome)."""
    a, b = impl.create("A"), impl.create("B")
    newcomers = [impl.create(f"g{i}") for i in tqdm(range(m - 2), desc=f"{impl.name} grow: members", leave=False)]
    kps = [nc.export_key_package() for nc in newcomers]
    b.accept_welcome(a.invite(b.export_key_package()))
    prof = cProfile.Profile() if profile and impl.bulk else None
    gc.collect()
    if prof:
        prof.enable()
    t0 = perf()
    for nc, kp in tqdm(list(zip(newcomers, kps)), desc=f"{impl.name} grow 1→{m}", leave=False):
        c, w = a.invite_full(kp)
        b.process_message(c)
        b.finalize_commit()
        a.finalize_commit()
        if joiners:
            nc.accept_welcome(w)
    dt = perf() - t0
    if prof:
        prof.disable()
        prof.dump_stats(profile)
    assert a.epoch == b.epoch == m - 1
    return dt


def _ratio(ours: Optional[float], ref: Optional[float]) -> str:
    if ours is None or ref is None or ref == 0:
        return "-"
    return f"{ours / ref:.2f}x"


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="16,64,256,1024", help="comma-separated group sizes (>= 2)")
    ap.add_argument("--grow", type=int, default=128, help="grow 1 → this many members (0 = skip)")
    ap.add_argument("--repeat", type=int, default=3, help="measured rounds per size (median)")
    ap.add_argument("--quick", action="store_true", help="sizes 16,64, grow 32, one round")
    ap.add_argument("--joiners", action="store_true", help="grow: each new member also accepts its Welcome")
    ap.add_argument("--cold", action="store_true",
                    help="ours: no memo of already-verified signatures (every check runs the primitive)")
    ap.add_argument("--workers", type=int, metavar="N",
                    help="ours: threads for batches of signature checks and HPKE seals (workers.pool; "
                         "default os.cpu_count(), 1 = the calling thread only)")
    ap.add_argument("--only", choices=("ours", "ref"), help="run one implementation")
    ap.add_argument("--profile", metavar="FILE", help="cProfile our grow run into FILE")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall = perf_counter; cpu = process_time (steadier when other jobs share the CPU)")
    args = ap.parse_args(argv)
    global perf
    perf = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.cold:
        verified_signatures.enabled = False
    if args.workers is not None:
        worker_pool.workers = args.workers
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    grow, repeat = args.grow, args.repeat
    if args.quick:
        sizes, grow, repeat = [s for s in sizes if s <= 64] or [16], min(grow, 32), 1
    if any(n < 2 for n in sizes):
        ap.error("sizes must be >= 2")
    impls = _impls(args.only)
    names = [i.name for i in impls]

    if grow >= 2:  # the headline first, in a fresh process state
        runs: Dict[str, List[float]] = {i.name: [] for i in impls}
        for r in range(repeat):  # alternate the implementations, median of the runs
            for i in impls:
                runs[i.name].append(bench_grow(i, grow, args.profile if r == 0 else None, args.joiners))
        times = {k: statistics.median(v) for k, v in runs.items()}
        print(f"\n{'cold: no signature memo' if args.cold else 'signature memo on'}")
        print(f"grow 1 → {grow} (full update paths, one member processes each commit"
              f"{', each joiner its Welcome' if args.joiners else ''}; "
              f"median of {repeat}; {args.clock} seconds)")
        print("  " + "  ".join(f"{k}: {v:.3f}" for k, v in times.items())
              + f"  ratio: {_ratio(times.get('ours'), times.get('openmls'))}")
    if sizes:
        table = bench_sizes(impls, sizes, repeat)
        print(f"\nper-size (median of {repeat}; {args.clock} seconds; ratio = ours/openmls; "
              f"{'cold' if args.cold else 'signature memo on'})")
        hdr = f"{'N':>5} {'op':<8}" + "".join(f"{n:>11}" for n in names) + f"{'ratio':>9}"
        print(hdr)
        for n in sizes:
            for op in ("commit", "process", "welcome"):
                vals = [table[n][i][op] for i in names]
                ratio = _ratio(table[n].get("ours", {}).get(op), table[n].get("openmls", {}).get(op))
                print(f"{n:>5} {op:<8}" + "".join(f"{v:>11.4f}" for v in vals) + f"{ratio:>9}")
            sz = "  ".join(f"{i}: commit {int(table[n][i]['commit_bytes'])} B, welcome "
                           f"{int(table[n][i]['welcome_bytes'])} B" for i in names)
            print(f"{'':>5} {'sizes':<8} {sz}")
        if "openmls" in names:
            _print_floor(table, sizes)


def primitive_costs(n: int = 400) -> Dict[str, float]:
    """What the primitives cost here, now: one Ed25519 verification through ``cryptography``
    (seconds, median of ``n``) and the throughput of ``workers.pool``'s threads on a batch of
    ``n`` of them relative to one thread (what the second core gives at this moment)."""
    from gbp_lab.core.mls import signatures as sig

    ed = sig.SignatureScheme.ED25519
    priv, pub = sig.generate_key_pair(ed)
    msgs = [b"LeafNodeTBS %d" % i * 8 for i in range(n)]
    sigs = [sig.sign(ed, priv, m) for m in msgs]
    key = sig.load_public_key(ed, pub)
    one = []
    for m, s in zip(msgs, sigs):
        t0 = time.perf_counter()
        key.verify(s, m)
        one.append(time.perf_counter() - t0)
    memo, verified_signatures.enabled = verified_signatures.enabled, False
    try:
        checks = [(int(ed), pub, m, s) for m, s in zip(msgs, sigs)]
        t0 = time.perf_counter()
        assert sig.verify_all(checks, parallel=False) is None
        serial = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert sig.verify_all(checks, parallel=True) is None
        pooled = time.perf_counter() - t0
    finally:
        verified_signatures.enabled = memo
    return {"verify": statistics.median(one), "pool_speedup": serial / pooled}


def _print_floor(table: Dict[int, Dict[str, Dict[str, float]]], sizes: List[int]) -> None:
    """The Welcome's floor: its N+1 leaf signatures and the GroupInfo signature (RFC 9420
    §12.4.3.1), each one Ed25519 verification of ``cryptography`` (OpenSSL) — one thread, and
    spread over the pool at the speed-up its threads give now — against openmls' whole Welcome."""
    cost = primitive_costs()
    print(f"\nprimitive floor: one Ed25519 verify = {cost['verify'] * 1e6:.0f} µs (cryptography/OpenSSL); "
          f"the pool's threads verify {cost['pool_speedup']:.2f}x as fast as one thread right now")
    for n in sizes:
        ref = table[n]["openmls"]["welcome"]
        floor = (n + 2) * cost["verify"]
        print(f"{n:>5} welcome: {n + 2} signature checks alone = {floor * 1000:.2f} ms one thread "
              f"({floor / ref:.2f}x openmls' whole Welcome), {floor / cost['pool_speedup'] * 1000:.2f} ms "
              f"on the pool ({floor / cost['pool_speedup'] / ref:.2f}x)")


if __name__ == "__main__":
    main()
