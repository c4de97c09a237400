"""View-models of the lab's widgets: plain Python, no ipywidgets, fully unit-testable.

One widget per module; this module re-exports them (``gbp_lab.widgets.models`` stays importable):

* :mod:`.epoch_stepper` — :class:`EpochStepper` (+ :class:`TreeRecorder`, :class:`EpochView`);
* :mod:`.frame_inspector` — :class:`FrameInspector`;
* :mod:`.flow_ladder` — :class:`FlowLadder`;
* :mod:`.field_tree` — the protocol trees with byte offsets (:class:`FieldNode`,
  :func:`frame_protocol_tree`, :func:`cbor_fields`);
* :mod:`.base` — :class:`WidgetError` and the ``observe(callback)`` of every model.
"""
from __future__ import annotations

from .base import Observable, WidgetError
from .epoch_stepper import TRAFFIC_COLUMNS, EpochKey, EpochStepper, EpochView, TreeRecorder
from .field_tree import FieldNode, cbor_fields, frame_protocol_tree
from .flow_ladder import Arrow, EpochBand, FlowLadder, Lane
from .frame_inspector import FrameInspector

__all__ = [
    "WidgetError", "Observable", "FieldNode", "cbor_fields", "frame_protocol_tree", "EpochKey",
    "EpochView", "EpochStepper", "TreeRecorder", "FrameInspector", "FlowLadder", "Arrow", "Lane",
    "EpochBand", "TRAFFIC_COLUMNS",
]
