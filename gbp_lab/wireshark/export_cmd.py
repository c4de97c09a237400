"""``gbp-lab export-decrypted IN [--keylog F] OUT.pcapng`` — a decrypted export for Wireshark.

    gbp-lab export-decrypted capture.pcap --keylog keys.log decrypted.pcapng
    tshark -X lua_script:gbp.lua -r decrypted.pcapng -Y gtp.text -T fields -e gtp.text

Reads IN through the one capture read path (:func:`gbp_lab.capture.read_capture`; keys from
``--keylog`` and from GBPK secrets blocks in IN) and writes one Wireshark exported PDU per frame
(:mod:`.export`): decrypted frames carry their plaintext, the rest are kept and marked "not
decrypted". Open OUT in Wireshark with the plugin (``gbp-lab wireshark-plugin``).
"""
from __future__ import annotations

import argparse
import os
import sys

from gbp_lab.core.errors import GbpLabError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``gbp-lab export-decrypted`` options."""
    parser.add_argument("capture", help="input pcap or pcapng")
    parser.add_argument("output", help="output pcapng (exported PDUs)")
    parser.add_argument("--keylog", default=None, help="key log file (MLS_* lines)")


def run(args: argparse.Namespace) -> int:
    """Run ``gbp-lab export-decrypted``; the exit status."""
    from gbp_lab.capture.pcapwriter import owner_only_output

    from .export import export_decrypted

    if os.path.abspath(args.output) == os.path.abspath(args.capture):
        print("gbp-lab export-decrypted: output must differ from the input", file=sys.stderr)
        return 2
    try:
        with owner_only_output(args.output) as tmp:  # the output carries plaintext
            stats = export_decrypted(args.capture, tmp, args.keylog)
    except (OSError, GbpLabError) as exc:
        print(f"gbp-lab export-decrypted: cannot export {args.capture}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {stats.packets} frames, {stats.decrypted} decrypted, "
          f"{stats.not_decrypted} kept as captured")
    print("open it with the plugin:  tshark -X lua_script:gbp.lua -r "
          f"{args.output} -Y 'gtp.text || gsp.signal || gap.rtp_seq'")
    return 0
