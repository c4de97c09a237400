"""gbp_lab.analysis — what a capture means: findings and the epoch timeline.

* :mod:`.findings` — :func:`~.findings.find` (``Capture.findings``); the finding kinds are defined
  once, in :data:`~.findings.KINDS` (with :data:`~.findings.SEVERITY`);
* :mod:`.epochs` — :func:`~.epochs.timeline` (``Capture.epochs``) and :func:`~.epochs.transitions`
  (PREPARE → READY → EXECUTE per transition id, with the commit's proposals when decrypted).
"""
from .epochs import timeline, transitions  # noqa: F401
from .findings import FINDING_COLUMNS, KINDS, SEVERITY, find, xor_bytes  # noqa: F401

__all__ = ["find", "KINDS", "SEVERITY", "FINDING_COLUMNS", "xor_bytes", "timeline", "transitions"]
