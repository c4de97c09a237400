"""``gbp-lab`` command line: one subcommand per lab tool.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``; this table is the one place that names them (imported lazily, so
``gbp-lab --help`` stays fast and a missing optional piece only affects its own subcommand).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from gbp_lab import __version__

#: subcommand → (module, one-line help)
COMMANDS = {
    "dissect": ("gbp_lab.capture.dissect_cmd", "print one line per GBP frame of a capture, like tshark"),
    "inject-secrets": ("gbp_lab.capture.inject_cmd", "embed a key log into a pcapng (Decryption Secrets Block)"),
    "relay": ("gbp_lab.sim.relay_cmd", "run the delivery-service relay over TCP or QUIC"),
    "simulate": ("gbp_lab.sim.simulate_cmd", "run a scripted group session and write capture + key log"),
    "lab": ("gbp_lab.lab_cmd", "open JupyterLab on the notebooks"),
    "wireshark-plugin": ("gbp_lab.wireshark.plugin_cmd", "write the GBP Lua dissector gbp.lua for Wireshark"),
    "export-decrypted": ("gbp_lab.wireshark.export_cmd", "write a capture's frames, decrypted, as a pcapng Wireshark opens"),
}


def _available():
    for name, (module, help_) in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue  # this piece of the lab is not built yet
            raise
        yield name, mod, help_


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="gbp-lab", description="Explore, dissect and teach the Group Protocol Stack.")
    ap.add_argument("--version", action="version", version=f"gbp-lab {__version__}",
                    help="print the version (CHANGELOG.md) and exit")
    sub = ap.add_subparsers(dest="command", required=True)
    for name, mod, help_ in _available():
        p = sub.add_parser(name, help=help_, description=help_)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
