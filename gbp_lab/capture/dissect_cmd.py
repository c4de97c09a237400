"""``gbp-lab dissect`` — one line per GBP frame of a capture, like ``tshark -r``.

    gbp-lab dissect CAPTURE [--keylog KEYS] [--filter EXPR] [--port N …] [--errors] [--findings]

Each line: ``no  time  src:port → dst:port  proto  info`` — ``no`` is the row number in
``read_capture(CAPTURE).frames``, ``time`` its ``rel_time`` (seconds since the first packet, as tshark), ``proto`` GTP / GAP / GSP
/ GBP (control) / MLS. ``--filter`` is a pandas ``DataFrame.query`` expression over the frames
columns (``FRAME_COLUMNS``: ``protocol == 'GTP' and sender == 2``, ``epoch > 1``,
``error.notna()`` …). The capture is streamed (:func:`~gbp_lab.capture.stream.iter_capture`), so
big files print in bounded memory. Defects go to stderr (``--errors`` prints them to stdout too),
``--findings`` appends the findings table (reads the whole capture). Exit status 0, or 2 for
unusable input (unreadable file, bad key log, bad filter).

    gbp-lab dissect --live SOURCE [--keylog KEYS] [--bpf FILTER] …

prints one line per frame as it arrives (like ``tshark -i``) until Ctrl-C: SOURCE is an interface
(``lo``, ``eth0``, ``any``; needs root or CAP_NET_RAW), a capture file still being written
(followed like ``tail -f``) or ``-`` for a pcap/pcapng stream on stdin (``dumpcap -w - | …``);
the key log is followed too (:class:`~.live.LiveCapture`).
"""
from __future__ import annotations

import argparse
import math
import sys
from typing import Any, Dict

from gbp_lab.core.errors import GbpLabError

from .records import GBP_PORT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("capture", nargs="?", help="pcap or pcapng file")
    parser.add_argument("--live", metavar="SOURCE",
                        help="watch live: an interface, a growing capture file or - (stdin)")
    parser.add_argument("--bpf", "-f", metavar="FILTER", help="capture filter for --live IFACE")
    parser.add_argument("--keylog", metavar="FILE", help="key log (NSS-style MLS_* lines)")
    parser.add_argument("--filter", "-Y", dest="filter", metavar="EXPR",
                        help="pandas query over the frame columns, e.g. \"protocol == 'GTP'\"")
    parser.add_argument("--port", type=int, action="append", metavar="N",
                        help=f"TCP/UDP port carrying GBP (repeatable; default {GBP_PORT})")
    parser.add_argument("--no-heuristic", action="store_true",
                        help="do not look for GBP on other ports")
    parser.add_argument("--errors", action="store_true", help="also print defects on stdout")
    parser.add_argument("--findings", action="store_true", help="print the findings table at the end")
    parser.add_argument("--chunksize", type=int, default=50_000, help=argparse.SUPPRESS)


def _fmt_addr(host, port) -> str:
    if host is None:
        return "?"
    if isinstance(host, str) and ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def format_frame(no: int, row) -> str:
    """One tshark-like line for a frames row (a namedtuple from ``itertuples``): its
    ``rel_time`` (seconds since the first packet, as tshark shows by default)."""
    t = row.rel_time if row.rel_time is not None else math.nan
    err = f"  [{row.error}]" if isinstance(row.error, str) else ""
    return (f"{no:>6} {t:11.6f} {_fmt_addr(row.src, row.sport):>21} → "
            f"{_fmt_addr(row.dst, row.dport):<21} {row.protocol:<4} {row.info}{err}")


def run_live(args: argparse.Namespace, kw: Dict[str, Any]) -> int:
    """``--live``: one line per frame as it arrives, until Ctrl-C (or the stream ends)."""
    from .live import LiveCapture

    out = sys.stdout

    def on_frame(row: Dict[str, Any]) -> None:
        if args.filter:
            try:
                import pandas as pd

                if not len(pd.DataFrame([row]).query(args.filter, engine="python")):
                    return
            except Exception as exc:  # a bad expression: say so once, print everything
                print(f"gbp-lab dissect: bad --filter {args.filter!r}: {exc}", file=sys.stderr)
                args.filter = None
        out.write(format_frame(row["no"], argparse.Namespace(**row)) + "\n")
        out.flush()

    source = sys.stdin.buffer if args.live == "-" else args.live
    try:
        live = LiveCapture(source, keylog=args.keylog, on_frame=on_frame, bpf=args.bpf, **kw)
        live.start()
    except (OSError, GbpLabError) as exc:
        print(f"gbp-lab dissect: cannot capture from {args.live}: {exc}", file=sys.stderr)
        return 2
    try:
        while not live.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    try:
        live.stop()
    except (OSError, GbpLabError) as exc:
        print(f"gbp-lab dissect: {exc}", file=sys.stderr)
        return 2
    for r in live.snapshot().errors.itertuples(index=False):
        print(f"! {r.kind} [{r.vid}] {_fmt_addr(r.src, r.sport)} → {_fmt_addr(r.dst, r.dport)}: "
              f"{r.error}", file=sys.stderr)
    c = live.counters
    print(f"{c['frames']} frames, {c['decrypted']} decrypted, {c['errors']} errors",
          file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from .model import read_capture
    from .stream import iter_capture

    kw: Dict[str, Any] = {"ports": tuple(args.port) if args.port else (GBP_PORT,),
          "heuristic": not args.no_heuristic}
    if args.live:
        return run_live(args, kw)
    if not args.capture:
        print("gbp-lab dissect: give a capture file, or --live SOURCE", file=sys.stderr)
        return 2
    keylog = None
    if args.keylog:
        from gbp_lab.core.keylog import KeyLog

        try:
            keylog = KeyLog.load(args.keylog)
        except (OSError, GbpLabError) as exc:
            print(f"gbp-lab dissect: cannot use key log {args.keylog}: {exc}", file=sys.stderr)
            return 2
    out = sys.stdout
    errors: list = []
    try:
        for chunk in iter_capture(args.capture, keylog, chunksize=args.chunksize, progress=False,
                                  errors=errors, **kw):
            if args.filter:
                try:
                    chunk = chunk.query(args.filter, engine="python")
                except Exception as exc:  # pandas raises many types for a bad expression
                    print(f"gbp-lab dissect: bad --filter {args.filter!r}: {exc}", file=sys.stderr)
                    return 2
            lines = [format_frame(no, r) for no, r in zip(chunk.index, chunk.itertuples(index=False))]
            if lines:
                out.write("\n".join(lines) + "\n")
    except (OSError, GbpLabError) as exc:
        print(f"gbp-lab dissect: cannot read {args.capture}: {exc}", file=sys.stderr)
        return 2
    for df in errors:
        for r in df.itertuples(index=False):
            line = f"! {r.kind} [{r.vid}] {_fmt_addr(r.src, r.sport)} → {_fmt_addr(r.dst, r.dport)}: {r.error}"
            print(line, file=sys.stderr)
            if args.errors:
                out.write(line + "\n")
    if args.findings:
        cap = read_capture(args.capture, keylog=keylog, **kw)
        fi = cap.findings
        out.write(f"\n{len(fi)} findings\n")
        for r in fi.itertuples(index=False):
            out.write(f"{r.severity:<6} {r.kind:<16} epoch={r.epoch} st={r.stream_type} "
                      f"seq={r.sequence_no} frames={list(r.frames)} {r.detail}\n")
    return 0
