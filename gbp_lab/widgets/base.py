"""What every view-model of :mod:`gbp_lab.widgets` shares: :class:`WidgetError` and
:class:`Observable` (``observe(callback)``: the callback runs with the model after every change,
which is how the thin views of :mod:`.views` re-render)."""
from __future__ import annotations

from typing import Any, Callable, List

from gbp_lab.core.errors import UsageError

__all__ = ["WidgetError", "Observable"]


class WidgetError(UsageError):
    """Misuse of a widget model (bad index, bad filter, nothing selected)."""

    default_vid = "LAB-WIDGET"


class Observable:
    """A model that tells its observers when it changed."""

    def __init__(self) -> None:
        self._observers: List[Callable[[Any], None]] = []

    def observe(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(model)`` after every change."""
        self._observers.append(callback)

    def unobserve(self, callback: Callable[[Any], None]) -> None:
        """Stop calling ``callback`` (no error when it was not observing)."""
        self._observers = [cb for cb in self._observers if cb is not callback]

    def changed(self) -> None:
        """Run every observer (a model calls this after each change of its state)."""
        for cb in list(self._observers):
            cb(self)
