"""Scaling of many captures on dask.distributed (not a test: ``python benchmarks/cluster_bench.py``).

Builds ``--files`` synthetic captures (``capture_bench.build``: text frames sealed under a fixed
exporter secret, several TCP flows, some segments out of order; one capture may be bigger than
``--split-bytes`` to be read in slices) and reads the same files, in one run, on a
``LocalCluster`` of 1 and then of 2 worker processes (1 thread each): the ``frames`` table
(``read_captures(...).compute()``) and the findings across all files (``findings_across``).
Each cluster is warmed up first (imports on the workers), then timed ``--repeat`` times (best
kept). Printed: frames/s of each and the ratio 2 workers / 1 worker (2 cores: at most 2×).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _capture_bench():
    spec = importlib.util.spec_from_file_location("capture_bench",
                                                  os.path.join(HERE, "capture_bench.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(directory: str, files: int, frames: int) -> tuple:
    """``files`` captures of ``frames`` frames each, and their key log (text)."""
    cb = _capture_bench()
    paths = []
    for k in range(files):
        p = os.path.join(directory, f"cap{k}.pcap")
        cb.build(p, frames, 8, seed=k + 1)
        paths.append(p)
    return paths, f"MLS_EXPORTER_SECRET {cb.GID.hex()} 1 {cb.SECRET.hex()}\n"


def run(paths, keylog: str, workers: int, repeat: int, split_bytes) -> dict:
    """Best times of the frames table and the findings on ``workers`` worker processes."""
    from dask.distributed import Client, LocalCluster

    from gbp_lab.capture.many import findings_across, read_captures

    with LocalCluster(n_workers=workers, processes=True, threads_per_worker=1,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        read_captures(paths[:1], keylog, split_bytes=None).head(1, npartitions=1)  # warm up
        best: dict = {}
        n = 0
        for _ in range(repeat):
            t = time.perf_counter()
            n = len(read_captures(paths, keylog, split_bytes=split_bytes).compute(
                scheduler=client))
            best["frames"] = min(best.get("frames", float("inf")), time.perf_counter() - t)
            t = time.perf_counter()
            fi = findings_across(paths, keylog, scheduler=client, split_bytes=split_bytes)
            best["findings"] = min(best.get("findings", float("inf")), time.perf_counter() - t)
        best["n"] = n
        best["findings_rows"] = len(fi)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--frames", type=int, default=25_000, help="frames per file")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--split-bytes", type=int, default=None,
                    help="read files bigger than this in slices (default: one task per file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        paths, keylog = build(d, args.files, args.frames)
        size = sum(os.path.getsize(p) for p in paths)
        print(f"{args.files} files, {args.files * args.frames} frames, {size / 1e6:.1f} MB")
        res = {w: run(paths, keylog, w, args.repeat, args.split_bytes) for w in (1, 2)}
    for w, r in res.items():
        print(f"{w} worker(s): frames {r['n'] / r['frames']:10,.0f} frames/s ({r['frames']:.2f} s)"
              f"   findings {r['n'] / r['findings']:10,.0f} frames/s ({r['findings']:.2f} s, "
              f"{r['findings_rows']} rows)")
    print(f"ratio 2 workers / 1 worker: frames {res[1]['frames'] / res[2]['frames']:.2f}x, "
          f"findings {res[1]['findings'] / res[2]['findings']:.2f}x")


if __name__ == "__main__":
    main()
