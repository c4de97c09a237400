"""Decrypted export: a capture → a pcapng of Wireshark "exported PDUs" the GBP plugin dissects.

One Enhanced Packet Block per row of ``read_capture(IN, keylog).frames`` (GBP frames and raw MLS
messages), on one interface of link type ``LINKTYPE_WIRESHARK_UPPER_PDU`` (252). Each packet is
a list of tags (Wireshark ``epan/exported_pdu.h``: ``u16`` tag ‖ ``u16`` length ‖ value, all
big-endian, ended by tag 0) followed by the PDU itself:

* the dissector name (tag 12): ``gbpdec`` for a frame our key log decrypted — the frame
  re-encoded by :func:`~gbp_lab.core.gbp.frame.encode_frame` with ``pl`` = the plaintext and
  ``psz`` = its length (Protobuf/FlatBuffers payloads re-encoded in CBOR, ``pf`` 0: the codec
  the plugin reads) — else ``gbprec`` with the record as read (:meth:`Capture.record`), which
  the plugin marks "not decrypted";
* the original endpoints: IPv4/IPv6 source and destination (20–23), port type TCP/UDP (24),
  ports (25, 26) and the original frame number (30);
* the frame's time (nanosecond ``if_tsresol``; float seconds are converted through their
  shortest decimal form, so microsecond captures keep their exact ticks).

The file keeps time, endpoints and frame order; it is written through
:class:`~gbp_lab.capture.pcapwriter.PcapngWriter`.
"""
from __future__ import annotations

import ipaddress
import os
import struct
from dataclasses import dataclass
from decimal import Decimal
from typing import BinaryIO, Optional, Union

import pandas as pd

from gbp_lab.capture.model import Capture, read_capture
from gbp_lab.capture.pcapwriter import PcapngWriter
from gbp_lab.core.errors import GbpLabError
from gbp_lab.core.gap.payload import GapPayload
from gbp_lab.core.gbp.frame import decode_frame, encode_frame
from gbp_lab.core.gbp.registry import PayloadCodec, stream_protocol
from gbp_lab.core.gsp.signal import GspSignal
from gbp_lab.core.gtp.message import GtpMessage
from gbp_lab.core.payload_codec import decode as pc_decode
from gbp_lab.core.payload_codec import encode as pc_encode

__all__ = ["LINKTYPE_WIRESHARK_UPPER_PDU", "DISSECTOR_DECRYPTED", "DISSECTOR_RECORD",
           "ExportStats", "exported_pdu", "as_cbor", "decrypted_frame", "export_decrypted"]

#: tcpdump.org link-layer header type of Wireshark's exported PDUs
LINKTYPE_WIRESHARK_UPPER_PDU = 252
#: the plugin's dissector for a frame whose ``pl`` holds the decrypted payload
DISSECTOR_DECRYPTED = "gbpdec"
#: the plugin's dissector for a record as captured (not decrypted, or an MLS message)
DISSECTOR_RECORD = "gbprec"

# exported_pdu.h tags
_TAG_END, _TAG_DISSECTOR_NAME = 0, 12
_TAG_IPV4_SRC, _TAG_IPV4_DST, _TAG_IPV6_SRC, _TAG_IPV6_DST = 20, 21, 22, 23
_TAG_PORT_TYPE, _TAG_SRC_PORT, _TAG_DST_PORT, _TAG_ORIG_FNO = 24, 25, 26, 30
_PORT_TYPES = {"tcp": 2, "udp": 3}  # EXP_PDU_PT_TCP / EXP_PDU_PT_UDP
_NS = 10 ** 9


def _tag(tag: int, value: bytes) -> bytes:
    value += b"\x00" * (-len(value) % 4)  # Wireshark pads each value to 4 bytes
    return struct.pack(">HH", tag, len(value)) + value


def exported_pdu(dissector: str, pdu: bytes, *, src: Optional[str] = None,
                 dst: Optional[str] = None, transport: Optional[str] = None,
                 sport: Optional[int] = None, dport: Optional[int] = None,
                 frame_number: Optional[int] = None) -> bytes:
    """One ``WIRESHARK_UPPER_PDU`` packet: the tags, then *pdu* for the dissector *dissector*.
    Addresses that are not IP literals are left out (so are unknown transports and ports)."""
    out = [_tag(_TAG_DISSECTOR_NAME, dissector.encode("ascii"))]
    for addr, (t4, t6) in ((src, (_TAG_IPV4_SRC, _TAG_IPV6_SRC)),
                           (dst, (_TAG_IPV4_DST, _TAG_IPV6_DST))):
        try:
            ip = ipaddress.ip_address(addr) if addr else None
        except ValueError:
            ip = None
        if ip is not None:
            out.append(_tag(t4 if ip.version == 4 else t6, ip.packed))
    ptype = _PORT_TYPES.get(transport or "")
    if ptype is not None:
        out.append(_tag(_TAG_PORT_TYPE, struct.pack(">I", ptype)))
        for tag, port in ((_TAG_SRC_PORT, sport), (_TAG_DST_PORT, dport)):
            if port is not None:
                out.append(_tag(tag, struct.pack(">I", port)))
    if frame_number is not None:
        out.append(_tag(_TAG_ORIG_FNO, struct.pack(">I", frame_number)))
    out.append(struct.pack(">HH", _TAG_END, 0))
    return b"".join(out) + pdu


#: the sub-protocol message classes by protocol name (:func:`stream_protocol`)
_PAYLOAD_CLASSES = {"GTP": GtpMessage, "GAP": GapPayload, "GSP": GspSignal}


def as_cbor(stream_type: int, plaintext: bytes, codec: int) -> Optional[bytes]:
    """A GTP/GAP/GSP *plaintext* in Protobuf or FlatBuffers (``pf`` 1, 2) re-encoded in CBOR,
    the codec ``gbp.lua`` reads; ``None`` when it is CBOR already, no such payload, or does not
    decode (then it is exported as it is)."""
    cls = _PAYLOAD_CLASSES.get(stream_protocol(stream_type))
    if cls is None or codec not in (PayloadCodec.PROTOBUF, PayloadCodec.FLATBUFFERS):
        return None
    try:
        return pc_encode(pc_decode(cls, plaintext, codec), PayloadCodec.CBOR)
    except GbpLabError:
        return None


def decrypted_frame(record: bytes, plaintext: bytes) -> bytes:
    """The frame *record* re-encoded with its payload replaced by *plaintext* (``psz`` follows);
    the other values as read. A Protobuf/FlatBuffers payload is re-encoded in CBOR
    (:func:`as_cbor`, ``pf`` = 0): the plugin decodes CBOR payloads only."""
    f = decode_frame(record, strict=False)
    pf = f.payload_format
    cbor = as_cbor(f.stream_type, plaintext, pf)
    if cbor is not None:
        plaintext, pf = cbor, 0
    return encode_frame(f.group_id, f.epoch, f.transition_id, f.stream_type, f.stream_id,
                        f.flags, f.sequence_no, plaintext, pf, f.version)


def _ticks_ns(t) -> int:
    """Nanoseconds since the epoch of a frame time (float seconds or a datetime64 value)."""
    if t is None or t is pd.NaT or (isinstance(t, float) and t != t):
        return 0
    if isinstance(t, (pd.Timestamp,)) or hasattr(t, "value") and not isinstance(t, float):
        return int(pd.Timestamp(t).value)
    return int(Decimal(repr(float(t))) * _NS)


def _opt_int(v) -> Optional[int]:
    return None if v is None or pd.isna(v) else int(v)


@dataclass(frozen=True)
class ExportStats:
    """What :func:`export_decrypted` wrote."""

    packets: int  #: exported PDUs (one per ``frames`` row)
    decrypted: int  #: of these, sent to ``gbpdec`` with the plaintext

    @property
    def not_decrypted(self) -> int:
        return self.packets - self.decrypted


def export_decrypted(capture: Union[Capture, str, os.PathLike, bytes],
                     out: Union[str, os.PathLike, BinaryIO], keylog=None) -> ExportStats:
    """Write *capture* (a :class:`Capture`, or a capture read here with *keylog*) to *out* as
    exported PDUs, one per ``frames`` row in frame order (see the module docstring)."""
    cap = capture if isinstance(capture, Capture) else read_capture(capture, keylog)
    f = cap.frames
    cols = [f[c].tolist() for c in ("time", "src", "dst", "transport", "sport", "dport",
                                    "packet", "protocol")]
    decrypted = 0
    with PcapngWriter(out) as w:
        iface = w.add_interface(LINKTYPE_WIRESHARK_UPPER_PDU, tsresol=9, name="gbp-lab export")
        for i, (t, src, dst, transport, sport, dport, packet, protocol) in enumerate(zip(*cols)):
            record = cap.record(i)
            plain = cap.plaintexts[i] if i < len(cap.plaintexts) else None
            if plain is not None and protocol != "MLS":
                name, pdu = DISSECTOR_DECRYPTED, decrypted_frame(record, plain)
                decrypted += 1
            else:
                name, pdu = DISSECTOR_RECORD, record
            pno = _opt_int(packet)
            data = exported_pdu(name, pdu, src=src if isinstance(src, str) else None,
                                dst=dst if isinstance(dst, str) else None,
                                transport=transport if isinstance(transport, str) else None,
                                sport=_opt_int(sport), dport=_opt_int(dport),
                                frame_number=None if pno is None else pno + 1)
            w.write_packet(data, ticks=_ticks_ns(t), ts_units=_NS, interface=iface)
    return ExportStats(len(f), decrypted)
