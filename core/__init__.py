"""gbp_lab.core — the Group Protocol Stack itself, pure Python and sans-IO.

Bytes in, events out: no sockets, clocks or files inside. The public names mirror the reference's
Python binding (``gbp_stack``) so its examples run with ``from gbp_lab.core import …``.
"""
from .errors import (  # noqa: F401
    CryptoError,
    DecodeError,
    DecryptError,
    GbpLabError,
    KeyLogError,
    MissingKeyError,
    ProtocolError,
    StateError,
    UsageError,
)
from .sframe import (  # noqa: F401
    AES_128_GCM,
    AES_256_GCM,
    SFrameDecryptResult,
    SFrameEncryptor,
    SFrameHeader,
    SFrameSession,
)
from .gap.jitter import AudioFrame, JitterBuffer, JitterPushOutcome, JitterPushResult  # noqa: F401
from .gtp.history import MessageEntry, MessageHistory, Watermark  # noqa: F401
from .gsp.roles import Permissions, RoleError, RoleRegistry, RoleSpec  # noqa: F401
from .gsp.capabilities import CapabilitiesNegotiator  # noqa: F401
from .gbp.registry import (  # noqa: F401
    ControlOpcode, ErrorClass, ErrorCode, FrameFlags, NodeState, PayloadCodec, StreamType,
    lookup_error,
)
from .gbp.frame import GbpFrame, decode_frame, encode_gbp_frame  # noqa: F401
from .gbp.framing import FrameReader, RecordReader, encode_record  # noqa: F401
from .gbp.control import ControlMessage, decode_control  # noqa: F401
from .gbp.error_object import ErrorObject, decode_error_object  # noqa: F401
from .gbp.aead import open_frame, seal_frame, stream_key  # noqa: F401
from .keylog import KeyLog  # noqa: F401
from .gbp.events import NodeEvent, OutboundFrame  # noqa: F401
from .gbp.node import GroupNode  # noqa: F401
from .gtp.client import GtpAcceptResult, GtpClient  # noqa: F401
from .gap.client import GapAcceptResult, GapClient  # noqa: F401
from .gsp.client import GspAcceptResult, GspClient  # noqa: F401
from .gsp.signal import SignalType  # noqa: F401
from .mls.exporter_view import ExporterView  # noqa: F401
from .mls.context import MlsContext  # noqa: F401
from .gtp.message import (  # noqa: F401
    AttachmentChunk, AttachmentManifest, GtpContentType, GtpFlags, GtpMessage,
)
from .gap.payload import GapPayload  # noqa: F401
from .gsp.signal import GspSignal, SignalType  # noqa: F401
from .gsp.args import SignalArgs, build_args, validate_args  # noqa: F401
