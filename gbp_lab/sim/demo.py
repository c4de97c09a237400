"""The embedded demo capture: ``gbp_lab/data/demo/capture.pcap`` + ``keys.log``.

They are the output of the built-in ``demo`` script (:mod:`gbp_lab.sim.scripts`) with seed
:data:`DEMO_SEED`, virtual timestamps and canonical ports, so :func:`regenerate_demo` reproduces
them byte for byte (tests/test_simulator.py checks it). :func:`gbp_lab.demo_capture` reads them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple, Union

__all__ = ["DEMO_DIR", "DEMO_PCAP", "DEMO_KEYS", "DEMO_SEED", "DEMO_SCRIPT", "regenerate_demo",
           "demo_paths"]

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"
DEMO_PCAP = DEMO_DIR / "capture.pcap"
DEMO_KEYS = DEMO_DIR / "keys.log"
DEMO_SEED = 1
DEMO_SCRIPT = "demo"


def demo_paths() -> Tuple[Path, Path]:
    """``(capture.pcap, keys.log)`` of the shipped demo."""
    return DEMO_PCAP, DEMO_KEYS


def regenerate_demo(out_dir: Union[str, os.PathLike, None] = None) -> Tuple[str, str]:
    """Run the ``demo`` script (seed :data:`DEMO_SEED`, virtual timestamps, canonical ports) and
    write ``capture.pcap`` and ``keys.log`` into *out_dir* (default: the shipped location).
    Returns the two paths."""
    from .simulator import Simulator

    res = Simulator(DEMO_SCRIPT, DEMO_SEED).run()
    if res.errors:
        raise RuntimeError(f"the demo run reported errors: {res.errors}")
    return res.write(DEMO_DIR if out_dir is None else out_dir, canonical_ports=True,
                     timestamps="virtual")


if __name__ == "__main__":  # python -m gbp_lab.sim.demo
    print(regenerate_demo())
