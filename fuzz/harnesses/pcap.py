"""The pcap/pcapng reader on whole files: ``CaptureReader`` (blocks, interfaces, GBPK secrets
blocks, issues) and ``decode_packet`` on every packet (link, IP, TCP/UDP headers).

Oracle: the reader yields packets whose captured data lies within the file, and the GBPK secrets
text is readable."""
from __future__ import annotations

from gbp_lab.capture import CaptureReader, decode_packet

from ..common import Limits

LIMITS = Limits(per_input_byte=128)
MAX_LEN = 65536


def check(data: bytes) -> None:
    reader = CaptureReader(data)
    total = 0
    for index, _iface, linktype, _time, _ticks, _units, _orig, pkt in reader.iter_tuples():
        total += len(pkt)
        assert total <= len(data), "the reader yields more packet bytes than the file holds"
        decode_packet(linktype, pkt)
    reader.gbp_keylog_text
    reader.close()
