"""``gbp-lab inject-secrets`` — embed a key log into a capture, like ``editcap --inject-secrets``.

    gbp-lab inject-secrets CAPTURE keys.log out.pcapng

Writes ``out.pcapng`` with a pcapng Decryption Secrets Block of type GBPK (0x4742504B) holding the
key log, before the packets (:func:`gbp_lab.capture.pcapwriter.inject_secrets`); existing
secrets blocks are kept. ``--tls-keylog F`` adds a TLS key log (``SSLKEYLOGFILE``) as the
standard TLS secrets block (type 0x544c534b) next to it, for Wireshark's TLS/QUIC decryption;
the TLS lines of ``keys.log`` itself (a ``--transport quic`` run's) go into that block too, the
MLS lines into ``GBPK``.
The key log is checked first (a malformed line is an error: exit status 2, nothing written). ``read_capture(out.pcapng)`` then decrypts without ``--keylog``.
"""
from __future__ import annotations

import argparse
import os
import sys

from gbp_lab.core.errors import GbpLabError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("capture", help="input pcap or pcapng")
    parser.add_argument("keylog", help="key log file (MLS_* lines)")
    parser.add_argument("output", help="output pcapng")
    parser.add_argument("--tls-keylog", default=None,
                        help="also embed this TLS key log (SSLKEYLOGFILE) as Wireshark's TLS secrets block")


def run(args: argparse.Namespace) -> int:
    from gbp_lab.core.keylog import KeyLog, split_tls_lines

    from .pcapwriter import inject_secrets, owner_only_output

    try:
        with open(args.keylog, "r", encoding="utf-8") as fh:
            text = fh.read()
        log = KeyLog.parse(text)
        text, tls_lines = split_tls_lines(text)  # TLS lines: the standard TLS secrets block
        tls = tls_lines or None
        if args.tls_keylog is not None:
            with open(args.tls_keylog, "r", encoding="utf-8") as fh:
                tls = (tls or "") + fh.read()
    except (OSError, UnicodeDecodeError, GbpLabError) as exc:
        print(f"gbp-lab inject-secrets: bad key log {args.keylog}: {exc}", file=sys.stderr)
        return 2
    if os.path.abspath(args.output) == os.path.abspath(args.capture):
        print("gbp-lab inject-secrets: output must differ from the input", file=sys.stderr)
        return 2
    try:
        with owner_only_output(args.output) as tmp:  # the output carries the key log
            n = inject_secrets(args.capture, tmp, text, tls_keylog=tls)
    except (OSError, GbpLabError) as exc:
        print(f"gbp-lab inject-secrets: cannot copy {args.capture}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {n} packets, {len(log)} key-log entries "
          f"({len(log.groups())} group(s))")
    return 0
