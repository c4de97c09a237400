"""gbp_lab.widgets — the lab's interactive views.

* view-models in plain Python (no ipywidgets), one per module: :mod:`.epoch_stepper`
  (:class:`EpochStepper`, :class:`TreeRecorder`; :mod:`.epoch_diff`: :class:`EpochDiff`, what
  changed from the previous epoch), :mod:`.frame_inspector`
  (:class:`FrameInspector`), :mod:`.flow_ladder` (:class:`FlowLadder`), :mod:`.live_panel`
  (:class:`LivePanel`, a live capture's panel), over :mod:`.field_tree`
  (protocol trees with byte offsets) and :mod:`.base` (:class:`WidgetError`, observers);
  :mod:`.models` re-exports them all;
* :mod:`.render` — HTML/SVG helpers (ratchet tree SVG, hex dump with a highlighted range,
  protocol tree, ``_repr_html_`` helpers for frames, node events and MLS trees);
* :mod:`.views` — thin ipywidgets views (imported on first use: ``EpochStepperView``,
  ``FrameInspectorView``, ``FlowLadderView``, ``LiveCaptureView``).
"""
from .base import WidgetError  # noqa: F401
from .epoch_diff import EpochDiff, epoch_diff  # noqa: F401
from .epoch_stepper import EpochKey, EpochStepper, EpochView, TreeRecorder  # noqa: F401
from .field_tree import FieldNode, cbor_fields, frame_protocol_tree  # noqa: F401
from .flow_ladder import FlowLadder  # noqa: F401
from .frame_inspector import FrameInspector  # noqa: F401
from .live_panel import LivePanel  # noqa: F401
from .render import (event_html, frame_html, hexdump_html, mls_tree_html,  # noqa: F401
                     protocol_tree_html, tree_svg)

_VIEWS = {"EpochStepperView", "FrameInspectorView", "FlowLadderView", "LiveCaptureView"}

__all__ = ["EpochDiff", "epoch_diff", "EpochKey", "EpochStepper", "EpochView", "FieldNode", "FlowLadder", "FrameInspector",
           "LivePanel", "TreeRecorder", "WidgetError", "cbor_fields", "frame_protocol_tree", "event_html",
           "frame_html", "hexdump_html", "mls_tree_html", "protocol_tree_html", "tree_svg",
           *sorted(_VIEWS)]


def __getattr__(name):
    if name in _VIEWS:
        from . import views

        return getattr(views, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
