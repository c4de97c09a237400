"""Rich notebook display for the core's objects.

``gbp_lab.core`` cannot import the lab (dependencies point one way), so its frames, node events,
ratchet trees and epoch secrets get their HTML from here: :func:`register` adds IPython
``text/html`` formatters by type name, lazily, so nothing is imported before it is displayed.
``import gbp_lab`` calls it when running under IPython.
"""
from __future__ import annotations

import sys
from dataclasses import fields
from typing import Any, Optional

#: (module, class name) → renderer name in this module
FORMATTERS = {
    ("gbp_lab.core.gbp.frame", "GbpFrame"): "frame_object_html",
    ("gbp_lab.core.gbp.events", "NodeEvent"): "node_event_html",
    ("gbp_lab.core.mls.tree", "RatchetTree"): "ratchet_tree_html",
    ("gbp_lab.core.mls.schedule", "EpochSecrets"): "epoch_secrets_html",
}


def frame_object_html(frame: Any) -> str:
    """A decoded :class:`GbpFrame`: its fields (payload shortened) plus stream name and sender."""
    from .widgets.render import frame_html

    row = {f.name: getattr(frame, f.name) for f in fields(frame)}
    row["sender"] = frame.sender
    return frame_html(row)


def node_event_html(event: Any) -> str:
    from .widgets.render import event_html

    return event_html(event)


def ratchet_tree_html(tree: Any) -> str:
    from .widgets.render import mls_tree_html

    return mls_tree_html(tree)


def epoch_secrets_html(secrets: Any) -> str:
    """Every secret of the epoch (RFC 9420 §8) with its derivation; values stay hidden (a
    :class:`~gbp_lab.core.mls.secrets.Secret` is revealed only on request)."""
    from .widgets.render import table_html

    rows = [{"secret": name, "derived as": how, "value": repr(value)}
            for name, how, value in secrets.explain()]
    return table_html(rows, ["secret", "derived as", "value"], cls="gbp-secrets")


def register(ip: Optional[Any] = None) -> bool:
    """Register the HTML formatters with IPython (the running shell by default). Returns whether
    a shell was found."""
    if ip is None:
        ipython = sys.modules.get("IPython")  # a running shell has imported it already; importing
        if ipython is None:                    # it here would only slow down `import gbp_lab`
            return False
        ip = ipython.get_ipython()
    if ip is None:
        return False
    html = ip.display_formatter.formatters["text/html"]
    for (module, name), renderer in FORMATTERS.items():
        html.for_type_by_name(module, name, globals()[renderer])
    return True
