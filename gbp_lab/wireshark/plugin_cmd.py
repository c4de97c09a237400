"""``gbp-lab wireshark-plugin [DIR]`` — install the generated Lua dissector ``gbp.lua``.

    gbp-lab wireshark-plugin            # into the personal Wireshark plugin folder
    gbp-lab wireshark-plugin some/dir   # anywhere

Copies the shipped ``gbp_lab/wireshark/gbp.lua`` (made by :mod:`.generator` from the stack's
tables) and prints how to load it: Wireshark picks it up from its personal plugin folder
(``$XDG_CONFIG_HOME/wireshark/plugins``, default ``~/.config/wireshark/plugins``; on Windows
``%APPDATA%\\Wireshark\\plugins``); ``tshark -X lua_script:<path>`` loads it for one run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Mapping, Optional

from .generator import PLUGIN_NAME, plugin_path

__all__ = ["personal_plugin_dir", "install_plugin", "add_arguments", "run"]


def personal_plugin_dir(env: Optional[Mapping[str, str]] = None, *,
                        windows: Optional[bool] = None) -> Path:
    """Wireshark's personal Lua plugin folder for this user."""
    env = os.environ if env is None else env
    if windows if windows is not None else sys.platform == "win32":
        return Path(env.get("APPDATA", str(Path.home()))) / "Wireshark" / "plugins"
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", str(Path.home()))) / ".config")
    return Path(base) / "wireshark" / "plugins"


def install_plugin(directory: Optional[os.PathLike] = None) -> Path:
    """Copy ``gbp.lua`` into *directory* (created; default: :func:`personal_plugin_dir`);
    returns the written path."""
    target = Path(directory) if directory is not None else personal_plugin_dir()
    target.mkdir(parents=True, exist_ok=True)
    out = target / PLUGIN_NAME
    shutil.copyfile(plugin_path(), out)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``gbp-lab wireshark-plugin`` options."""
    parser.add_argument("directory", nargs="?", default=None,
                        help="where to write gbp.lua (default: the personal Wireshark plugin folder)")


def run(args: argparse.Namespace) -> int:
    """Run ``gbp-lab wireshark-plugin``; the exit status."""
    try:
        out = install_plugin(args.directory)
    except OSError as exc:
        print(f"gbp-lab wireshark-plugin: cannot write {PLUGIN_NAME}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    print(f"load it for one run:  tshark -X lua_script:{out} -r capture.pcap -Y gbp")
    print("or restart Wireshark (plugins in the personal plugin folder load at start-up);")
    print("filters: gbp.epoch, gbp.sender, gbp.stream_type, gbpctl.opcode, gtp.text, gsp.signal …")
    return 0
