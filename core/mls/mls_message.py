"""The ``MLSMessage`` envelope (RFC 9420 §6) with this package's bodies plugged in.

::

    struct {
        ProtocolVersion version = mls10;
        WireFormat wire_format;
        select (MLSMessage.wire_format) {
            case mls_public_message:  PublicMessage;
            case mls_private_message: PrivateMessage;
            case mls_welcome:         Welcome;
            case mls_group_info:      GroupInfo;
            case mls_key_package:     KeyPackage;
        };
    } MLSMessage;

The envelope itself (and the PublicMessage / PrivateMessage bodies) is
:class:`gbp_lab.core.mls.framing.MLSMessage`; its body is the ``message`` field. This module
registers the Welcome, GroupInfo and KeyPackage decoders with framing, so those bodies decode to
the structures of this package instead of opaque bytes; the package's ``__init__`` imports it, so
importing any ``gbp_lab.core.mls`` module is enough. :func:`wrap` builds an envelope around any
body.
"""
from __future__ import annotations

from typing import Any

from ..errors import UsageError
from .framing import MLSMessage, PrivateMessage, PublicMessage, register_body_decoder
from .group_info import GroupInfo
from .key_package import KeyPackage
from .registries import WireFormat
from .welcome import Welcome

_OWN = ((WireFormat.MLS_WELCOME, Welcome), (WireFormat.MLS_GROUP_INFO, GroupInfo),
        (WireFormat.MLS_KEY_PACKAGE, KeyPackage))
_ALL = _OWN + ((WireFormat.MLS_PUBLIC_MESSAGE, PublicMessage),
               (WireFormat.MLS_PRIVATE_MESSAGE, PrivateMessage))

for _wf, _cls in _OWN:
    register_body_decoder(_wf, _cls.decode)


def wrap(body: Any) -> MLSMessage:
    """An :class:`MLSMessage` around ``body`` with the wire format of its class."""
    for wf, cls in _ALL:
        if isinstance(body, cls):
            return MLSMessage(wf, body)
    raise UsageError(f"no wire format carries a {type(body).__name__}", vid="MLS-MESSAGE-BODY")


__all__ = ["MLSMessage", "wrap"]
