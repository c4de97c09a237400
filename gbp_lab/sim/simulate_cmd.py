"""``gbp-lab simulate`` — run a scripted group session and write ``capture.pcap`` + ``keys.log``.

    gbp-lab simulate SCRIPT --out DIR [--seed N] [--timestamps wall|virtual] [--real-ports]
                     [--pace SECONDS] [--host ADDR] [--transport tcp|quic]
                     [--quic-layout reference|spec] [--embed-secrets]

SCRIPT is a built-in name (``demo``, ``classroom``, ``stress``) or a path to a ``.yaml`` / ``.py``
script (:mod:`gbp_lab.sim.script`). Members are real :mod:`gbp_lab.core` stacks talking through the
relay over loopback TCP (:mod:`gbp_lab.sim.simulator`). For one seed the frames and secrets are
always the same; ``--timestamps virtual`` also makes the packet times (and so the whole pcap) the
same on every run. ``--real-ports`` keeps the ephemeral TCP ports instead of the canonical
``7878`` / ``40000+n``. ``keys.log`` (0600) gets each epoch's secrets as soon as the epoch
exists, so a live capture (``gbp-lab dissect --live``, :class:`~gbp_lab.capture.live.LiveCapture`)
decrypts while the run goes on; ``--pace SECONDS`` waits that long between two steps.
``--transport quic`` runs the members over QUIC (:mod:`gbp_lab.sim.quic`, the reference's
layout, or with ``--quic-layout spec`` the spec's: control on stream 0, one stream per stream
class) and adds their TLS secrets (SSLKEYLOGFILE lines) to ``keys.log``; the capture is then
``capture.pcapng``: every UDP datagram the relay's socket received or sent (Ethernet/IP/UDP, the
relay's view of the wire). ``--embed-secrets`` (QUIC) puts the run's TLS secrets (the standard
TLS key-log block, Wireshark reads it) and MLS secrets (GBPK) into that file, so
``read_capture(capture.pcapng)`` decrypts both layers with no key log.
"""
from __future__ import annotations

import argparse
import sys

from .script import builtin_scripts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("script", help=f"built-in script ({', '.join(builtin_scripts())}) or a "
                                       ".yaml/.py path")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="directory for capture.pcap and keys.log (created if needed)")
    parser.add_argument("--seed", type=int, default=0, help="randomness seed (default 0)")
    parser.add_argument("--timestamps", choices=("wall", "virtual"), default="wall",
                        help="packet times: wall clock (default) or the deterministic virtual clock")
    parser.add_argument("--real-ports", action="store_true",
                        help="keep the real ephemeral ports instead of 7878 / 40000+n")
    parser.add_argument("--host", default="127.0.0.1",
                        help="loopback address of the relay and members (default 127.0.0.1)")
    parser.add_argument("--pace", type=float, default=0.0, metavar="SECONDS",
                        help="real seconds between two steps, to watch a run live (default 0)")
    parser.add_argument("--transport", choices=("tcp", "quic"), default="tcp",
                        help="members reach the relay over tcp (default) or quic")
    parser.add_argument("--quic-layout", choices=("reference", "spec"), default="reference",
                        help="quic: one stream per member (reference, default) or per stream class")
    parser.add_argument("--embed-secrets", action="store_true",
                        help="quic: embed the TLS and MLS secrets in capture.pcapng (owner-only)")
    parser.add_argument("--quiet", action="store_true", help="no run log on stderr")


def run(args: argparse.Namespace) -> int:
    from gbp_lab.core.errors import GbpLabError

    from .simulator import Simulator

    import os

    if args.embed_secrets and args.transport != "quic":
        print("gbp-lab simulate: --embed-secrets is for --transport quic (a TCP run: use "
              "gbp-lab inject-secrets)", file=sys.stderr)
        return 2
    try:
        os.makedirs(args.out, exist_ok=True)
        keys_path = os.path.join(args.out, "keys.log")
        if os.path.exists(keys_path):
            os.remove(keys_path)  # a fresh log per run: it is appended while the run goes on
        res = Simulator(args.script, args.seed, keylog_path=keys_path, pace=args.pace,
                        host=args.host, transport=args.transport,
                        quic_layout=args.quic_layout).run()
        pcap, keys = res.write(args.out, canonical_ports=not args.real_ports,
                               timestamps=args.timestamps, embed_secrets=args.embed_secrets)
    except (GbpLabError, OSError) as exc:
        print(f"gbp-lab simulate: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        for line in res.log:
            print(line, file=sys.stderr)
    epochs = res.keylog.epochs(res.group_id) if res.group_id else []
    print(f"{res.script.name}: {res.frames_sent} records sent, {len(res.tap_events)} tap events, "
          f"epochs {epochs[0] if epochs else '-'}..{epochs[-1] if epochs else '-'}; "
          f"wrote {pcap} and {keys}")
    bad = res.errors
    if bad:
        for name, evs in bad.items():
            for ev in evs:
                print(f"unexpected error at {name}: {ev.code_hex} {ev.reason}", file=sys.stderr)
        return 1
    return 0
