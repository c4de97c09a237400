"""gbp_lab.core.mls — Messaging Layer Security (RFC 9420) in pure Python, laid out like openmls.

Importing the package (which any ``gbp_lab.core.mls.<module>`` import does first) registers the
Welcome, GroupInfo and KeyPackage bodies of the ``MLSMessage`` envelope (RFC 9420 §6) with
:mod:`.framing`, so ``MLSMessage.from_bytes`` returns the same objects whatever was imported.
"""
from . import mls_message  # noqa: F401  (registers the MLSMessage bodies, RFC 9420 §6)
