"""``gbp-lab relay`` — run the delivery-service relay (:mod:`gbp_lab.sim.relay`) in the foreground.

    gbp-lab relay [--host 127.0.0.1] [--port 7878] [--max-queue N] [--idle-timeout S]
                  [--trace] [--pcap FILE] [--transport tcp|quic] [--keylog FILE]
                  [--quic-layout reference|spec]

``--transport quic`` serves members over QUIC the reference's way (:mod:`gbp_lab.sim.quic`: UDP
port, v1, no ALPN, a self-signed certificate made at start, one stream per member); ``--keylog``
appends the connections' TLS secrets there (SSLKEYLOGFILE lines, owner-only file).

Logs joins, leaves and drops (with reasons) to stderr; Ctrl-C stops it. ``--pcap`` records what
crossed the sockets and writes it when the relay stops: a pcap of the TCP connections, or with
``--transport quic`` a pcapng of every UDP datagram the relay received or sent
(:func:`gbp_lab.sim.tap.write_udp_pcapng`; decrypt it with the ``--keylog`` file, or embed that
with ``gbp-lab inject-secrets``).
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import Any, Dict

from .relay import DEFAULT_PORT, RelayThread


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"TCP port (default {DEFAULT_PORT}, 0 = any free port)")
    parser.add_argument("--max-queue", type=int, default=10_000,
                        help="records queued for a slow reader before it is disconnected")
    parser.add_argument("--idle-timeout", type=float, default=0.0,
                        help="drop a connection that sent nothing for this many seconds "
                             "(default 0 = never)")
    parser.add_argument("--record-timeout", type=float, default=60.0,
                        help="drop a connection whose record is still incomplete this many seconds "
                             "after its first byte (slowloris; default 60, 0 = never)")
    parser.add_argument("--max-connections", type=int, default=1024,
                        help="connections served at once; one more is refused (default 1024)")
    parser.add_argument("--trace", action="store_true", help="log every forwarded record with its DS order")
    parser.add_argument("--pcap", metavar="FILE", help="write the traffic to FILE on exit (pcap; "
                                                          "quic: pcapng of the UDP datagrams)")
    parser.add_argument("--transport", choices=("tcp", "quic"), default="tcp",
                        help="tcp (default) or quic (UDP port, reference QUIC layout)")
    parser.add_argument("--keylog", metavar="FILE",
                        help="quic: append the TLS secrets to FILE (SSLKEYLOGFILE format)")
    parser.add_argument("--quic-layout", choices=("reference", "spec"), default="reference",
                        help="quic: one stream per member (reference, default) or per stream class")
    parser.add_argument("--duration", type=float, default=None, help=argparse.SUPPRESS)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.trace else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    tap = None
    if args.pcap:
        from .tap import Tap
        tap = Tap()
    kw: Dict[str, Any] = {}
    if args.transport == "quic":
        from .quic import QuicRelay, TlsSecretsLog
        kw = {"relay_class": QuicRelay, "layout": args.quic_layout,
              "secrets_log": TlsSecretsLog(args.keylog) if args.keylog else None}
    elif args.keylog:
        print("gbp-lab relay: --keylog is for --transport quic", file=sys.stderr)
        return 2
    relay = RelayThread(args.host, args.port, max_queue=args.max_queue,
                        idle_timeout=args.idle_timeout or None,
                        record_timeout=args.record_timeout or None,
                        max_connections=args.max_connections, trace=args.trace, tap=tap, **kw)
    relay.start()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
    proto = "UDP (QUIC)" if args.transport == "quic" else "TCP"
    print(f"gbp-lab relay listening on {relay.host}:{relay.port} {proto}", file=sys.stderr, flush=True)
    try:
        if args.duration is not None:
            time.sleep(args.duration)
        else:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        relay.stop()
        s = relay.stats
        print(f"relay stopped: {s['connections']} connections, {s['records_in']} records in, "
              f"{s['deliveries']} deliveries, {s['drops']} drops", file=sys.stderr)
        if tap is not None and args.transport == "quic":
            from .tap import write_udp_pcapng
            n = write_udp_pcapng(tap, args.pcap)
            print(f"wrote {n} packets to {args.pcap}", file=sys.stderr)
        elif tap is not None:
            n = tap.write_pcap(args.pcap)
            print(f"wrote {n} packets to {args.pcap}", file=sys.stderr)
    return 0
