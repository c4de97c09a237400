"""``gbp_lab.capture.pcap`` — the capture-file names in one import (a re-export; the owners are
:mod:`.pcapfile` (pcap/pcapng reading, secrets blocks), :mod:`.pcapwriter` (pcapng writer,
:func:`inject_secrets`), :mod:`.packets` (link/IP/TCP/UDP decoding) and :mod:`.defrag` (IP
defragmentation)). Code inside the project imports from the owners.
"""
from __future__ import annotations

from .defrag import IpDefragmenter, PendingDatagram
from .packets import (
    TCP_ACK,
    TCP_FIN,
    TCP_PSH,
    TCP_RST,
    TCP_SYN,
    Decoded,
    decode_packet,
    ip_text,
    link_supported,
)
from .pcapfile import (
    MAX_CAPLEN,
    SECRETS_TYPE_GBP_KEYLOG,
    SECRETS_TYPE_TLS_KEYLOG,
    CaptureFormatError,
    CaptureIssue,
    CaptureReader,
    CaptureStream,
    DecryptionSecrets,
    Interface,
    LinkType,
    Packet,
    Source,
    read_packets,
)
from .pcapwriter import PcapngWriter, inject_secrets

__all__ = [
    "ip_text",
    "CaptureFormatError",
    "LinkType",
    "SECRETS_TYPE_GBP_KEYLOG",
    "SECRETS_TYPE_TLS_KEYLOG",
    "MAX_CAPLEN",
    "Source",
    "Interface",
    "Packet",
    "DecryptionSecrets",
    "CaptureIssue",
    "CaptureReader",
    "CaptureStream",
    "read_packets",
    "PcapngWriter",
    "inject_secrets",
    "Decoded",
    "decode_packet",
    "link_supported",
    "IpDefragmenter",
    "PendingDatagram",
    "TCP_FIN",
    "TCP_SYN",
    "TCP_RST",
    "TCP_PSH",
    "TCP_ACK",
]
