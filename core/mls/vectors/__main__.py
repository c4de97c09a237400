"""``python -m gbp_lab.core.mls.vectors FILE.json [FILE.json ...] [-v]``"""
from __future__ import annotations

import argparse
import sys

from . import UnknownVectorFormat, run_file


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gbp_lab.core.mls.vectors",
                                 description="Run official MLS test-vector files (RFC 9420).")
    ap.add_argument("files", nargs="+", help="test-vector JSON files (.json or .json.gz)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each failure and skip")
    ap.add_argument("--progress", action="store_true", help="show a tqdm progress bar per file")
    args = ap.parse_args(argv)
    passed = failed = 0
    for path in args.files:
        try:
            res = run_file(path, progress=args.progress)
        except UnknownVectorFormat as exc:  # loud: a file we cannot recognise is a failure
            print(f"{exc.message}", flush=True)
            failed += 1
            continue
        print(res.line(), flush=True)
        if args.verbose:
            for f in res.failures:
                print("  FAIL", f)
            for s in res.skips[:20]:
                print("  SKIP", s)
        passed += res.passed
        failed += res.failed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
