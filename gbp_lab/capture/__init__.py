"""gbp_lab.capture — reading captures of GBP traffic.

Layers, bottom-up:

* :mod:`.pcapfile` — pcap/pcapng records (own struct-based reader; pcapng Decryption Secrets
  Blocks, our key-log secrets type ``GBPK`` = 0x4742504B); :mod:`.pcapwriter` — a pcapng writer
  and :func:`~.pcapwriter.inject_secrets`; :mod:`.packets` — the one link/IP/TCP/UDP decoder (its
  Ethernet/IPv4/TCP fast path included); :mod:`.defrag` — IP defragmentation; :mod:`.pcap`
  re-exports their public names;
* :mod:`.reassembly` — per-direction TCP reassembly with gap reporting, record re-synchronisation;
* :mod:`.records` — packets → flows → length-prefixed records / UDP datagrams → items;
* :mod:`.readpath` — the read loop: records → rows in named layouts (``FRAME_ROW``,
  ``FRAME_TABLE``, ``ERROR_ROW``), the per-record decode, the chunk reader;
* :mod:`.model` — :func:`read_capture` → :class:`Capture` with ``frames`` and ``errors`` tables
  and the record bytes (:meth:`Capture.record`) (imported on first use: it pulls in pandas);
  :mod:`.stream` — the same in bounded chunks.
"""
from .packets import decode_packet  # noqa: F401
from .pcapfile import (  # noqa: F401
    SECRETS_TYPE_GBP_KEYLOG,
    CaptureFormatError,
    CaptureIssue,
    CaptureReader,
    DecryptionSecrets,
    Interface,
    LinkType,
    Packet,
    read_packets,
)
from .pcapwriter import PcapngWriter, inject_secrets  # noqa: F401
from .reassembly import TcpReassembler  # noqa: F401
from .records import RecordItem, RecordPipeline, iter_records, read_records  # noqa: F401

_LAZY = {"read_capture", "Capture", "FRAME_COLUMNS", "ERROR_COLUMNS"}


def __getattr__(name):
    if name in _LAZY:
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
