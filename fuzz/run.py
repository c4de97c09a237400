"""Run the fuzz harnesses under atheris (libFuzzer) and print a table — ``make fuzz``.

    python fuzz/run.py [--runs N] [--max-time S] [HARNESS ...]   # default: every harness, N = 1,000,000
    python fuzz/run.py --replay [HARNESS ...]                      # the committed corpora, no atheris
    python fuzz/run.py --minimize HARNESS FILE                     # shrink a finding's input
    python fuzz/run.py --show HARNESS FILE                         # run one input, print what it did

Each harness runs in its own process (``--worker``), niced (``--nice``, default 19), with only
``gbp_lab`` instrumented for coverage, starting from ``fuzz/corpus/<harness>/`` (read only: new
inputs go to ``fuzz/.work/corpus/<harness>/``). Every input goes through
:func:`fuzz.common.run_input`; a finding (an untyped exception, an oracle assertion, an input over
its CPU or memory bound) does not stop the campaign: the smallest input per signature is kept in
``fuzz/.work/findings/<harness>/`` and counted. Hangs and crashes of the process itself stop that
harness (libFuzzer ``-timeout``/``-rss_limit_mb``; the input is in ``fuzz/.work/artifacts/``).

Table columns: inputs run (libFuzzer's count, seeds included), coverage as libFuzzer reports it
(``cov`` = instrumented edges of gbp_lab's Python code and ``ft`` = features), crashes (distinct
finding signatures, plus one if libFuzzer stopped the harness: hang, out of memory, process
crash), the slowest input (CPU seconds, size), the largest memory peak of one input (on Linux:
how far it raised the resident set, measured for every input; elsewhere the tracemalloc peak of
one input in ``TRACE_EVERY``; every input is bounded with ``RLIMIT_DATA``, see fuzz.common),
execs/s, and the status.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
WORK = ROOT / "fuzz" / ".work"


# -- worker: one harness inside atheris ---------------------------------------------------------
def worker(name: str, stats_path: Path, stop: bool, fuzzer_args: List[str]) -> None:
    import atheris  # type: ignore[import-untyped]  # optional extra 'fuzz', no stubs installed

    with atheris.instrument_imports(include=["gbp_lab"]):
        from fuzz.harnesses import load

        harness = load(name)
    import tracemalloc

    from fuzz.common import CAN_MEASURE_RESIDENT, TRACE_EVERY, Finding, run_input

    findings_dir = WORK / "findings" / name
    findings_dir.mkdir(parents=True, exist_ok=True)
    slow_path = WORK / "slowest" / stats_path.stem  # "<harness>" or "<harness>.<lane>"
    slow_path.parent.mkdir(parents=True, exist_ok=True)
    stats: Dict[str, Any] = {"harness": name, "inputs": 0, "findings": {}, "slowest": None, "max_peak": 0}

    def save() -> None:
        tmp = stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats, indent=1))
        tmp.replace(stats_path)

    def one_input(data: bytes) -> None:
        stats["inputs"] += 1
        changed = stats["inputs"] % 2000 == 0
        # the resident peak of every input; where it cannot be measured, the tracemalloc peak of
        # the first input and then one in TRACE_EVERY (tracing makes every allocation dearer)
        trace = not CAN_MEASURE_RESIDENT and stats["inputs"] % TRACE_EVERY == 1
        try:
            out = run_input(harness.check, data, harness.LIMITS, trace_memory=trace, bound_memory=True,
                            measure_resident=True)
            cpu, peak = out.cpu, max(out.peak, out.resident)
        except Finding as f:
            cpu, peak = f.cpu, max(f.peak, f.resident)
            key = hashlib.sha1(f.signature.encode()).hexdigest()[:12]
            known = stats["findings"].get(f.signature)
            if known is None or len(data) < known["size"]:
                path = findings_dir / f"{f.kind}-{key}"
                path.write_bytes(data)
                stats["findings"][f.signature] = {
                    "kind": f.kind, "file": str(path.relative_to(ROOT)), "size": len(data),
                    "count": (known or {}).get("count", 0) + 1, "detail": f.detail[-4000:]}
            else:
                known["count"] += 1
            changed = True
            if stop:
                save()
                raise
        finally:
            if trace:
                tracemalloc.stop()
        if peak > stats["max_peak"]:
            stats["max_peak"] = peak
        slowest = stats["slowest"]
        if slowest is None or cpu > slowest["cpu"]:
            stats["slowest"] = {"cpu": round(cpu, 6), "size": len(data), "file": str(slow_path.relative_to(ROOT))}
            slow_path.write_bytes(data)
            changed = changed or slowest is None or cpu > 1.25 * slowest["cpu"]
        if changed:
            save()

    warm_up(name, harness)
    save()
    atheris.Setup([sys.argv[0], *fuzzer_args], one_input)
    atheris.Fuzz()


def warm_up(name: str, harness: Any) -> None:
    """Run the committed inputs once, unguarded and uncounted, before the campaign: lazy imports,
    caches and the MLS worker pool's threads (8 MiB of stack each) are then in place and do not
    count against the first inputs' memory bound. Anything they raise is left to the guarded runs
    that follow (libFuzzer runs the same inputs first)."""
    from fuzz.common import corpus_files

    for path in corpus_files(name):
        try:
            harness.check(path.read_bytes())
        except BaseException:  # noqa: BLE001 - reported by the guarded run of the same input
            pass


# -- driver ------------------------------------------------------------------------------------
_STATUS = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+).*?exec/s: (\d+)", re.M)
_DONE = re.compile(r"^Done (\d+) runs in (\d+) second", re.M)


def default_hang(harness: Any) -> int:
    """libFuzzer's ``-timeout`` for a harness: ten times its CPU bound, at least 10 s."""
    return max(10, int(10 * harness.LIMITS.cpu_seconds))


def libfuzzer_args(name: str, harness: Any, runs: int, max_time: Optional[int], hang: Optional[int],
                   work_corpus: Path, corpus: Optional[Path]) -> List[str]:
    """The libFuzzer command line of one harness run. ``hang``: wall-clock seconds after which
    libFuzzer stops the harness on one input (``None`` = :func:`default_hang`); the CPU bound
    of an input is checked separately (``fuzz.common``), so a campaign sharing the machine with
    other work can raise this without hiding slow inputs."""
    args = [f"-runs={runs}", f"-max_len={harness.MAX_LEN}",
            f"-timeout={default_hang(harness) if hang is None else hang}", "-rss_limit_mb=3072",
            "-print_final_stats=1", "-print_pcs=0", f"-artifact_prefix={WORK / 'artifacts'}/{name}-",
            str(work_corpus)]
    if corpus is not None:
        args.append(str(corpus))
    if max_time:
        args.insert(1, f"-max_total_time={max_time}")
    return args


def run_harness(name: str, runs: int, max_time: Optional[int], nice: int, stop: bool,
                hang: Optional[int] = None, lanes: int = 1) -> Dict[str, Any]:
    """One harness, in ``lanes`` libFuzzer processes side by side (one per core to spare). The lanes
    share the grown corpus (``fuzz/.work/corpus/<harness>/``: libFuzzer reloads it every second, so
    what one lane finds the others mutate), split ``runs`` between them and make one row
    (:func:`merge_lanes`)."""
    from fuzz.harnesses import load

    harness = load(name)
    work_corpus = WORK / "corpus" / name
    work_corpus.mkdir(parents=True, exist_ok=True)
    for sub in ("artifacts", "logs", "stats"):
        (WORK / sub).mkdir(parents=True, exist_ok=True)
    corpus = ROOT / "fuzz" / "corpus" / name
    args = libfuzzer_args(name, harness, -(-runs // lanes), max_time, hang, work_corpus,
                          corpus if corpus.is_dir() else None)
    procs = []
    t0 = time.time()
    for lane in range(lanes):
        stem = name if lanes == 1 else f"{name}.{lane + 1}"
        stats_path = WORK / "stats" / f"{stem}.json"
        stats_path.unlink(missing_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--stats", str(stats_path)]
        if stop:
            cmd.append("--stop-on-finding")
        log_path = WORK / "logs" / f"{stem}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([*cmd, "--", *args], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                    preexec_fn=(lambda: os.nice(nice)) if nice else None)
        procs.append((proc, stats_path, log_path))
    rows = []
    for proc, stats_path, log_path in procs:
        code = proc.wait()
        rows.append(_lane_row(name, code, time.time() - t0, stats_path, log_path))
    return rows[0] if lanes == 1 else merge_lanes(rows)


def _lane_row(name: str, code: int, elapsed: float, stats_path: Path, log_path: Path) -> Dict[str, Any]:
    text = log_path.read_text(errors="replace")
    status = _STATUS.findall(text)
    done = _DONE.findall(text)
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    row: Dict[str, Any] = {
        "harness": name, "inputs": int(done[-1][0]) if done else (int(status[-1][0]) if status else 0),
        "cov": int(status[-1][2]) if status else 0, "ft": int(status[-1][3]) if status else 0,
        "findings": len(stats.get("findings", {})), "slowest": stats.get("slowest"),
        "max_peak": stats.get("max_peak", 0), "seconds": round(elapsed, 1), "exit": code,
        "log": str(log_path.relative_to(ROOT)),
    }
    row["exec_s"] = round(row["inputs"] / elapsed) if elapsed else 0
    row["finding_list"] = stats.get("findings", {})
    if code != 0:
        m = re.search(r"^==\d+== ERROR: libFuzzer: (.*)$|^ALARM: (.*)$|^(Uncaught Python exception.*)$",
                      text, re.M)
        row["error"] = next((g for g in m.groups() if g), "") if m else f"exit {code}"
    return row


def merge_lanes(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One row for the lanes of one harness run: inputs summed (each lane counts its own, seeds
    included), coverage and features the best lane's (the lanes share a corpus), findings merged by
    signature, the slowest input and the largest peak over all lanes, the longest lane's time."""
    findings: Dict[str, Any] = {}
    for r in rows:
        for sig, f in r["finding_list"].items():
            known = findings.get(sig)
            if known is None:
                findings[sig] = dict(f)
            else:
                smaller = f if f["size"] < known["size"] else known
                findings[sig] = {**smaller, "count": known["count"] + f["count"]}
    slow = [r["slowest"] for r in rows if r["slowest"]]
    seconds = max(r["seconds"] for r in rows)
    failed = [r for r in rows if r["exit"]]
    merged: Dict[str, Any] = {
        "harness": rows[0]["harness"], "lanes": len(rows), "inputs": sum(r["inputs"] for r in rows),
        "cov": max(r["cov"] for r in rows), "ft": max(r["ft"] for r in rows), "findings": len(findings),
        "slowest": max(slow, key=lambda s: s["cpu"]) if slow else None,
        "max_peak": max(r["max_peak"] for r in rows), "seconds": seconds,
        "exit": failed[0]["exit"] if failed else 0, "log": [r["log"] for r in rows],
        "finding_list": findings,
    }
    merged["exec_s"] = round(merged["inputs"] / seconds) if seconds else 0
    if failed:
        merged["error"] = failed[0].get("error", "")
    return merged


def table(rows: List[Dict[str, Any]]) -> str:
    head = (f"{'harness':14} {'inputs':>9} {'cov':>6} {'ft':>7} {'crashes':>7} {'slowest':>18} {'peak MiB':>8} "
            f"{'exec/s':>7} {'time s':>7}  status")
    lines = [head, "-" * len(head)]
    for r in rows:
        s = r["slowest"]
        slow = f"{s['cpu']:.3f}s/{s['size']}B" if s else "-"
        status = "ok" if r["exit"] == 0 else f"STOPPED: {r.get('error', '')}"[:60]
        crashes = r["findings"] + (1 if r["exit"] else 0)
        label = r["harness"] + (f" ×{r['lanes']}" if r.get("lanes", 1) > 1 else "")
        lines.append(f"{label:14} {r['inputs']:>9} {r['cov']:>6} {r['ft']:>7} {crashes:>7} "
                     f"{slow:>18} {r['max_peak'] / (1 << 20):>8.1f} {r['exec_s']:>7} {r['seconds']:>7}  {status}")
    return "\n".join(lines)


def replay(names: List[str]) -> int:
    """Every committed corpus input through its harness, without atheris (what the test does)."""
    from fuzz.common import Finding, corpus_files, run_input
    from fuzz.harnesses import load

    bad = 0
    for name in names:
        h = load(name)
        files = corpus_files(name)
        t0 = time.time()
        for p in files:
            try:
                run_input(h.check, p.read_bytes(), h.LIMITS)
            except Finding as f:
                bad += 1
                print(f"{name}/{p.name}: {f.signature}\n{f.detail}")
        print(f"{name:14} {len(files):4} inputs  {time.time() - t0:6.2f} s")
    return 1 if bad else 0


def signature_of(name: str, data: bytes) -> Optional[str]:
    from fuzz.common import Finding, run_input
    from fuzz.harnesses import load

    h = load(name)
    try:
        run_input(h.check, data, h.LIMITS)
    except Finding as f:
        return f.signature
    return None


def minimize(name: str, path: Path) -> int:
    """Delta debugging: drop ever smaller pieces while the finding's signature stays."""
    data = path.read_bytes()
    sig = signature_of(name, data)
    if sig is None:
        print("the input does not reproduce a finding")
        return 1
    print(f"signature: {sig}  ({len(data)} bytes)")
    n = 2
    while len(data) >= 2 and n <= len(data):
        step = max(1, len(data) // n)
        shrunk = False
        for start in range(0, len(data), step):
            cand = data[:start] + data[start + step:]
            if cand and signature_of(name, cand) == sig:
                data, shrunk = cand, True
                n = max(n - 1, 2)
                break
        if not shrunk:
            if step == 1:
                break
            n = min(len(data), 2 * n)
    out = path.with_name(path.name + ".min")
    out.write_bytes(data)
    print(f"minimized to {len(data)} bytes: {out}\n{data!r}")
    return 0


def show(name: str, path: Path) -> int:
    from fuzz.common import Finding, run_input
    from fuzz.harnesses import load

    h = load(name)
    try:
        out = run_input(h.check, path.read_bytes(), h.LIMITS)
        print(out)
        return 0
    except Finding as f:
        print(f.signature)
        print(f.detail)
        return 1


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    fuzzer_args: List[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, fuzzer_args = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description="fuzz gbp-lab's decoders (see fuzz/README.md)")
    ap.add_argument("harnesses", nargs="*", help="harness names (default: all) — or HARNESS FILE with --minimize/--show")
    ap.add_argument("--runs", type=int, default=int(os.environ.get("FUZZ_RUNS", 1_000_000)))
    ap.add_argument("--max-time", type=int, default=None, help="seconds per harness (libFuzzer -max_total_time)")
    ap.add_argument("--nice", type=int, default=19)
    ap.add_argument("--lanes", type=int, default=1, metavar="N",
                    help="N libFuzzer processes per harness sharing its corpus (one per spare core); "
                         "--runs is their total")
    ap.add_argument("--hang", type=int, default=None, metavar="S",
                    help="wall-clock seconds before libFuzzer calls one input a hang (default: 10x the "
                         "harness's CPU bound, at least 10); raise it when other jobs share the machine")
    ap.add_argument("--stop-on-finding", action="store_true", help="let libFuzzer stop at the first finding")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--table", type=Path, nargs="+", help="print the table of earlier --json files")
    ap.add_argument("--replay", action="store_true")
    ap.add_argument("--minimize", action="store_true")
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--stats", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.stats, args.stop_on_finding, fuzzer_args)
        return 0
    from fuzz.harnesses import NAMES

    if args.table:
        print(table([r for f in args.table for r in json.loads(f.read_text())]))
        return 0
    if args.minimize or args.show:
        name, file = args.harnesses
        return (minimize if args.minimize else show)(name, Path(file))
    names = args.harnesses or list(NAMES)
    if args.replay:
        return replay(names)
    rows = []
    for name in names:
        print(f"fuzzing {name} ({args.runs} runs) …", flush=True)
        rows.append(run_harness(name, args.runs, args.max_time, args.nice, args.stop_on_finding,
                                args.hang, max(1, args.lanes)))
        if args.json:  # after every harness: a long campaign cut short keeps its rows
            args.json.write_text(json.dumps(rows, indent=1))
    print()
    print(table(rows))
    for r in rows:
        for sig, f in r["finding_list"].items():
            print(f"\n[{r['harness']}] {sig}  ×{f['count']}  smallest input: {f['file']} ({f['size']} B)")
            print("    " + f["detail"].strip().splitlines()[-1][:300])
    return 1 if any(r["findings"] or r["exit"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
