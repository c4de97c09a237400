"""gbp_lab.widgets — the lab's interactive views.

* :mod:`.models` — view-models in plain Python (no ipywidgets): :class:`EpochStepper`,
  :class:`FrameInspector`, :class:`FlowLadder`, :class:`TreeRecorder`;
* :mod:`.render` — HTML/SVG helpers (ratchet tree SVG, hex dump with a highlighted range,
  protocol tree, ``_repr_html_`` helpers for frames, node events and MLS trees);
* :mod:`.views` — thin ipywidgets views (imported on first use: ``EpochStepperView``,
  ``FrameInspectorView``, ``FlowLadderView``).
"""
from .models import (EpochKey, EpochStepper, EpochView, FieldNode, FlowLadder, FrameInspector,  # noqa: F401
                     TreeRecorder, WidgetError, cbor_fields, frame_protocol_tree)
from .render import (event_html, frame_html, hexdump_html, mls_tree_html,  # noqa: F401
                     protocol_tree_html, tree_svg)

_VIEWS = {"EpochStepperView", "FrameInspectorView", "FlowLadderView"}

__all__ = ["EpochKey", "EpochStepper", "EpochView", "FieldNode", "FlowLadder", "FrameInspector",
           "TreeRecorder", "WidgetError", "cbor_fields", "frame_protocol_tree", "event_html",
           "frame_html", "hexdump_html", "mls_tree_html", "protocol_tree_html", "tree_svg",
           *sorted(_VIEWS)]


def __getattr__(name):
    if name in _VIEWS:
        from . import views

        return getattr(views, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
