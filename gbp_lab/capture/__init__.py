"""gbp_lab.capture — reading captures of GBP traffic.

Layers, bottom-up:

* :mod:`.pcap` — pcap/pcapng records (own struct-based reader; pcapng Decryption Secrets Blocks,
  our key-log secrets type ``GBPK`` = 0x4742504B), link/IP/TCP/UDP headers, a pcapng writer and
  :func:`~.pcap.inject_secrets`;
* :mod:`.reassembly` — per-direction TCP reassembly with gap reporting, record re-synchronisation;
* :mod:`.records` — packets → flows → length-prefixed records / UDP datagrams → items;
* :mod:`.readpath` — the read loop: records → rows in named layouts (``FRAME_ROW``,
  ``FRAME_TABLE``, ``ERROR_ROW``), the per-record decode, the chunk reader;
* :mod:`.model` — :func:`read_capture` → :class:`Capture` with ``frames`` and ``errors`` tables
  and the record bytes (:meth:`Capture.record`) (imported on first use: it pulls in pandas);
  :mod:`.stream` — the same in bounded chunks.
"""
from .pcap import (  # noqa: F401
    SECRETS_TYPE_GBP_KEYLOG,
    CaptureFormatError,
    CaptureIssue,
    CaptureReader,
    DecryptionSecrets,
    Interface,
    LinkType,
    Packet,
    PcapngWriter,
    decode_packet,
    inject_secrets,
    read_packets,
)
from .reassembly import TcpReassembler  # noqa: F401
from .records import RecordItem, RecordPipeline, iter_records, read_records  # noqa: F401

_LAZY = {"read_capture", "Capture", "FRAME_COLUMNS", "ERROR_COLUMNS"}


def __getattr__(name):
    if name in _LAZY:
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
