"""gbp_lab.dissectors — scapy layers for every message of the Group Protocol Stack.

The layers call :mod:`gbp_lab.core`'s codecs; they never parse the wire a second time.

=================  ===========================================================================
module             layers
=================  ===========================================================================
``transport``      GbpRecord (u32-LE length-prefixed record over TCP), GbpDatagram (UDP),
                   GbpHeuristic; port 7878 bound, heuristic for other TCP ports
``gbp``            GbpFrame (CBOR frame; decrypts ``pl`` with the key store)
``control``        GbpControl, GbpCborArgs, GbpErrorObject
``gtp``            GtpMessage, GtpAttachmentManifest, GtpAttachmentChunk
``gap``            GapPayload
``sframe``         SFrame (RFC 9605 / draft-1.5 header, decrypted with the key store)
``gsp``            GspSignal, GspArgs
``mls``            MLSMessage, MLSPublicMessage, MLSPrivateMessage, MLSWelcome, MLSGroupInfo,
                   MLSKeyPackage, MLSCommit, MLSProposal
``keystore``       use_keylog(path_or_KeyLog) — the process-wide key log for decryption
=================  ===========================================================================

Importing this package registers every layer and binding with scapy.
"""
from .keystore import current_keylog, keylog_in_use, set_mls_epoch_offset, use_keylog
from .gbp import GbpFrame
from .control import GbpCborArgs, GbpControl, GbpErrorObject
from .gtp import GtpAttachmentChunk, GtpAttachmentManifest, GtpMessage
from .gap import GapPayload
from .sframe import SFrame
from .gsp import GspArgs, GspSignal
from .mls import (MLSCommit, MLSGroupInfo, MLSKeyPackage, MLSMessage, MLSPrivateMessage,
                  MLSProposal, MLSPublicMessage, MLSWelcome, mls_layer)
from .transport import (GBP_PORT, GbpDatagram, GbpHeuristic, GbpRecord, GbpRecordList, bind_port,
                        disable_heuristic, enable_heuristic, looks_like_record)

__all__ = [
    "use_keylog", "current_keylog", "keylog_in_use", "set_mls_epoch_offset",
    "GbpFrame", "GbpControl", "GbpCborArgs", "GbpErrorObject", "GtpMessage",
    "GtpAttachmentManifest", "GtpAttachmentChunk", "GapPayload", "SFrame", "GspSignal", "GspArgs",
    "MLSMessage", "MLSPublicMessage", "MLSPrivateMessage", "MLSWelcome", "MLSGroupInfo",
    "MLSKeyPackage", "MLSCommit", "MLSProposal", "mls_layer",
    "GBP_PORT", "GbpRecord", "GbpRecordList", "GbpDatagram", "GbpHeuristic", "bind_port", "enable_heuristic",
    "disable_heuristic", "looks_like_record",
]
