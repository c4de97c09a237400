"""gbp-lab: explore, dissect and teach the Group Protocol Stack."""
__version__ = "0.1.0"

from . import display as _display  # noqa: E402

_display.register()  # rich HTML for core objects when running under IPython (a no-op elsewhere)

# -- capture API (imported on first use: pandas is heavy, and `gbp-lab --help` stays fast) --------
_LAZY_EXPORTS = {
    "read_capture": "gbp_lab.capture.model",
    "Capture": "gbp_lab.capture.model",
    "iter_capture": "gbp_lab.capture.stream",
    "read_captures": "gbp_lab.capture.stream",
    "findings_across": "gbp_lab.capture.many",
    "write_dataset": "gbp_lab.capture.many",
    "LiveCapture": "gbp_lab.capture.live",
    "KeyLog": "gbp_lab.core.keylog",
}


def __getattr__(name):
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gbp_lab' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY_EXPORTS))


def demo_capture():
    """The embedded demo capture (``gbp_lab/data/demo/``: the built-in ``demo`` simulation, three
    members, four epochs) read with its key log: ``read_capture(capture.pcap, keylog=keys.log)``.
    Regenerate it with :func:`gbp_lab.sim.demo.regenerate_demo`."""
    from gbp_lab.capture.model import read_capture
    from gbp_lab.sim.demo import DEMO_KEYS, DEMO_PCAP

    return read_capture(str(DEMO_PCAP), keylog=str(DEMO_KEYS))
