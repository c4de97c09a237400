"""Transport bindings of GBP (gbp_rfc.md §3; reference crates/gbp/transport; reference-map §8).

* TCP — a byte stream of *records*, ``u32 little-endian length ‖ bytes`` (at most 1 MiB). One
  :class:`GbpRecord` per record, read with the core's :class:`~gbp_lab.core.gbp.framing.RecordReader`
  and written with :func:`~gbp_lab.core.gbp.framing.encode_record`; the record's ``body`` layer is
  chosen by the core's classifier (:func:`gbp_lab.core.gbp.classify.classify_record`, by parsing):
  a :class:`~gbp_lab.dissectors.gbp.GbpFrame`, an ``MLSMessage`` envelope or a raw KeyPackage,
  Welcome or GroupInfo (:mod:`gbp_lab.dissectors.mls`). Further records of the same
  segment follow as the payload (one more :class:`GbpRecord` each, the way scapy chains TLS
  records). A record cut by the end of the segment keeps what is there in a ``Raw`` body and says
  so in ``error`` (scapy dissects packets, not reassembled streams; use ``gbp_lab.capture`` for
  those). Scapy recurses once per chained layer, so after :data:`MAX_CHAIN` records the rest of
  the segment is one :class:`GbpRecordList` that lists its records side by side (a segment of
  thousands of tiny records would otherwise exhaust Python's stack).
* UDP — one frame per datagram (the lab's convention; the reference has no UDP transport); a
  datagram that starts with its own length prefix (= size − 4) is read as a record.
* QUIC (the spec's transport, gbp_rfc.md §3) — a UDP datagram that is QUIC v1 (a long header, or
  a short header of a connection followed so far) is a :class:`GbpQuic`: the core's observer
  (:func:`~gbp_lab.dissectors.keystore.quic_observer`, RFC 9001 decryption with the key log's TLS
  lines) opens its packets; the layer shows each packet and frame, and the GBP records the
  datagram completed on its QUIC streams follow as :class:`GbpRecord` payloads (dissect the
  datagrams in capture order; on port 7878 and, by a UDP heuristic, on any port).
* Port :data:`GBP_PORT` (7878, the CLI demo's) is bound in both directions for TCP and UDP.
  Other ports: a heuristic (:class:`GbpHeuristic`, on by default, :func:`disable_heuristic`)
  claims TCP payloads that start with a complete plausible record — a length prefix within
  bounds whose body begins like a GBP frame (the record splitter's
  :func:`~gbp_lab.core.gbp.framing.plausible_header`: a CBOR map with the key ``"v"`` = 1) or parses as an MLS
  structure (the classifier). Anything else goes to the layer scapy would otherwise pick.
"""
from __future__ import annotations

import struct
from typing import Dict, List, Optional

from scapy.config import conf
from scapy.fields import LEIntField, PacketLenField, PacketListField
from scapy.layers.inet import TCP, UDP
from scapy.packet import Packet, bind_layers

from gbp_lab.core.gbp.classify import RecordKind, classify_record, looks_like_frame
from gbp_lab.core.gbp.framing import MAX_RECORD, PREFIX_LENGTH, RecordReader, encode_record, plausible_header
from gbp_lab.core.quic.observer import QuicObserver

from ._common import NO_DEFAULT, CoreLayer, annotation, text_field
from .gbp import GbpFrame
from .keystore import quic_observer
from .mls import MLSGroupInfo, MLSKeyPackage, MLSMessage, MLSWelcome

__all__ = ["GBP_PORT", "GbpRecord", "GbpRecordList", "MAX_CHAIN", "GbpDatagram", "GbpHeuristic", "GbpQuic", "GbpQuicHeuristic",
           "quic_view", "record_body", "body_layer_class",
           "looks_like_record", "enable_heuristic", "disable_heuristic", "bind_port"]

GBP_PORT = 7878
_u32le = struct.Struct("<I")
#: records of one segment chained as payloads; the rest is one :class:`GbpRecordList`
MAX_CHAIN = 32


#: the layer of a raw (un-enveloped) MLS structure, by the classifier's kind
_RAW_MLS_LAYERS = {RecordKind.KEY_PACKAGE: MLSKeyPackage, RecordKind.WELCOME: MLSWelcome,
                   RecordKind.GROUP_INFO: MLSGroupInfo}


def body_layer_class(data: bytes) -> type:
    """The layer class for one record body or datagram, as the classifier names it: GBP frame,
    ``MLSMessage`` envelope, raw KeyPackage / Welcome / GroupInfo. An unknown body is shown as a
    GBP frame with its decode error, or as an MLSMessage when it starts with the mls10 version
    ``00 01`` (whatever wire format follows: an unknown one is shown with its decode error)."""
    rc = classify_record(data)
    kind = rc.kind
    if kind is RecordKind.GBP_FRAME:
        return GbpFrame
    if kind is RecordKind.UNKNOWN:
        if not looks_like_frame(data) and data[:2] == b"\x00\x01":
            return MLSMessage
        return GbpFrame
    if rc.wrapped:
        return MLSMessage
    return _RAW_MLS_LAYERS[kind]


def record_body(data: bytes, **kw):
    """The layer for one record body (see :func:`body_layer_class`)."""
    data = bytes(data)
    kw.pop("_parent", None)
    cls = body_layer_class(data)
    if cls is GbpFrame:
        return GbpFrame(data, **kw)
    return cls(data)


class GbpRecord(CoreLayer):
    """One length-prefixed record of a GBP byte stream. ``len`` defaults to ``len(body)``."""

    name = "GBP Record"
    fields_desc = [
        LEIntField("len", None),
        PacketLenField("body", NO_DEFAULT, record_body, length_from=lambda p: p.len),
        annotation("error"),
    ]

    def decode_core(self, s: bytes):
        reader = RecordReader()
        items = reader.feed(s)
        if not items:
            items = reader.close()
        first = items[0]
        if isinstance(first, Exception):
            raise first
        return first

    def consumed(self, s: bytes, body: bytes) -> int:
        return PREFIX_LENGTH + len(body)

    def fill(self, body: bytes) -> None:
        self.fields["len"] = len(body)
        self.fields["body"] = record_body(body)

    def do_dissect(self, s: bytes) -> bytes:
        rest = super().do_dissect(s)
        if self._failed and len(s) >= 4:
            # keep the prefix readable; the body (truncated or oversize) stays Raw
            self.fields["len"] = _u32le.unpack_from(s)[0]
        return rest

    def encode_core(self) -> bytes:
        body = b"" if self.body is None else bytes(self.body)
        if self.len is None:
            return encode_record(body)
        return _u32le.pack(int(self.len)) + body

    def guess_payload_class(self, payload: bytes):
        depth, under = 1, self.underlayer
        while isinstance(under, GbpRecord) and depth < MAX_CHAIN:
            depth, under = depth + 1, under.underlayer
        return GbpRecordList if depth >= MAX_CHAIN else GbpRecord

    def describe(self) -> str:
        body = self.body
        inner = body.summary() if body is not None else "empty"
        return f"GBP record len={self.len} [{inner}]"


class GbpRecordList(CoreLayer):
    """The records of a segment after the first :data:`MAX_CHAIN`, side by side in ``records``
    (one :class:`GbpRecord` each, split by the core's :class:`RecordReader`); a record that is
    cut or invalid is the last one, with its error, as in the chain."""

    name = "GBP Records"
    fields_desc = [PacketListField("records", [], GbpRecord), annotation("error")]

    def decode_core(self, s: bytes) -> List[GbpRecord]:
        records: List[GbpRecord] = []
        pos = 0
        for item in RecordReader().feed(s):
            if not isinstance(item, bytes):  # an error item (RecordReader yields bodies and errors)
                break
            end = pos + PREFIX_LENGTH + len(item)
            records.append(GbpRecord(s[pos:end]))
            pos = end
        if pos < len(s):  # a cut or invalid record: GbpRecord reports it, its bytes stay Raw
            records.append(GbpRecord(s[pos:]))
        return records

    def fill(self, records: List[GbpRecord]) -> None:
        self.fields["records"] = records

    def self_build(self) -> bytes:
        return b"".join(bytes(r) for r in self.records)

    def encode_core(self) -> bytes:
        return self.self_build()

    def describe(self) -> str:
        return f"{len(self.records)} more GBP records"


class GbpDatagram(Packet):
    """Dispatcher for a UDP datagram: a record when it carries its own length prefix, else one
    frame (or MLS blob)."""

    name = "GBP Datagram"

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        if _pkt and quic_view().wants(bytes(_pkt), _path(kargs.get("_underlayer"))):
            return GbpQuic
        if _pkt and len(_pkt) >= 4 and _u32le.unpack_from(_pkt)[0] == len(_pkt) - 4:
            return GbpRecord
        if not _pkt:
            return GbpFrame
        # scapy runs one dispatch_hook per instantiation: resolve the body's kind here
        return body_layer_class(bytes(_pkt))


def _path(udp) -> Optional[tuple]:
    """``(src, sport, dst, dport)`` of the UDP layer ``udp`` (its IP underlayer), if known."""
    ip = getattr(udp, "underlayer", None)
    if udp is None or ip is None or not hasattr(ip, "src"):
        return None
    return (str(ip.src), int(udp.sport), str(ip.dst), int(udp.dport))


class _QuicView:
    """What the QUIC layer remembers next to the core observer: one record splitter per QUIC
    stream direction and, per datagram already dissected, what it showed (scapy may dissect a
    packet again: the observer must see it once)."""

    def __init__(self, obs: QuicObserver) -> None:
        self.obs = obs
        self.readers: Dict[tuple, Optional[RecordReader]] = {}
        self.seen: Dict[tuple, tuple] = {}

    def wants(self, data: bytes, path: Optional[tuple]) -> bool:
        return (path, data) in self.seen or self.obs.is_quic_start(data) or \
            self.obs.known(data, path)

    def dissect(self, data: bytes, path: Optional[tuple]) -> tuple:
        """``(connection, packets text, records, error)`` of one datagram."""
        key = (path, data)
        got = self.seen.get(key)
        if got is not None:
            return got
        obs = self.obs
        events = obs.datagram(data, path)
        lines, records, errors = [], [], []
        conn = ""
        for p in obs.last_packets:
            conn = obs.connections[p.connection].name
            names = []
            for f in p.frames:
                if f.name == "STREAM":
                    names.append(f"STREAM(id={f.stream_id} off={f.offset} len={len(f.data)}"
                                 f"{' fin' if f.fin else ''})")
                elif f.name == "CRYPTO":
                    names.append(f"CRYPTO(off={f.offset} len={len(f.data)})")
                else:
                    names.append(f.name)
            who = "client" if p.from_client else "server"
            gen = f" key generation {p.key_generation}" if p.key_generation else ""
            lines.append(f"{p.space} pn={p.packet_number} from {who}{gen}: {' '.join(names)}")
        for ev in events:
            if ev.kind == "error":
                errors.append(f"[{ev.vid}] {ev.message}")
                continue
            skey = (ev.connection, ev.from_client, ev.stream_id)
            if skey not in self.readers:
                self.readers[skey] = RecordReader()
            reader = self.readers[skey]
            if ev.kind == "gap":
                errors.append(f"[QUIC-GAP] stream {ev.stream_id}: bytes [{ev.offset}, {ev.end}) "
                              f"never seen; its records are not shown any more")
                self.readers[skey] = None
            elif ev.kind == "data" and reader is not None:
                for item in reader.feed(ev.data):
                    if isinstance(item, bytes):
                        records.append(item)
                    else:
                        errors.append(str(item))
        got = (conn, "; ".join(lines), records, "; ".join(errors) or None)
        if len(self.seen) >= 4096:
            self.seen.clear()
        self.seen[key] = got
        return got


_VIEW: List[_QuicView] = []


def quic_view() -> _QuicView:
    """The QUIC view of the current process-wide observer (a new key log starts a new one)."""
    obs = quic_observer()
    if not _VIEW or _VIEW[0].obs is not obs:
        _VIEW[:] = [_QuicView(obs)]
    return _VIEW[0]


class GbpQuic(Packet):
    """A UDP datagram of GBP over QUIC, opened by the core's QUIC observer (see the module
    docstring): ``connection`` (original DCID, hex), ``packets`` (each packet: space, packet
    number, direction, key generation, frames), ``error`` (undecryptable packets, missing keys,
    gaps); the GBP records this datagram completed follow as :class:`GbpRecord` layers. Builds
    back to the datagram's bytes."""

    name = "GBP over QUIC"
    fields_desc = [text_field("connection"), text_field("packets"), annotation("error")]

    def do_dissect(self, s: bytes) -> bytes:
        data = bytes(s)
        self._datagram = data
        conn, lines, records, error = quic_view().dissect(data, _path(self.underlayer))
        self.fields["connection"] = conn
        self.fields["packets"] = lines
        self.fields["error"] = error
        return b"".join(encode_record(r) for r in records)

    def do_build(self) -> bytes:
        return getattr(self, "_datagram", b"")

    def guess_payload_class(self, payload: bytes):
        return GbpRecord

    def mysummary(self) -> str:
        return f"GBP over QUIC {self.fields.get('connection')} {self.fields.get('packets')}"


class GbpQuicHeuristic(Packet):
    """Heuristic dispatcher bound to UDP on every port: QUIC v1 datagrams become
    :class:`GbpQuic`, anything else stays raw."""

    name = "GBP QUIC heuristic"

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        if _pkt and quic_view().wants(bytes(_pkt), _path(kargs.get("_underlayer"))):
            return GbpQuic
        return conf.raw_layer


def looks_like_record(data: bytes) -> bool:
    """True when *data* starts with one complete, plausible GBP record (see the module doc)."""
    if len(data) < 5:
        return False
    n = _u32le.unpack_from(data)[0]
    if not 1 <= n <= MAX_RECORD or n > len(data) - 4:
        return False
    if plausible_header(data, 0, strict=False):
        return True
    return classify_record(bytes(data[4:4 + n])).kind.is_mls


class GbpHeuristic(Packet):
    """Heuristic dispatcher bound to TCP on every port (see the module docstring)."""

    name = "GBP heuristic"

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        if _pkt and looks_like_record(bytes(_pkt)):
            return GbpRecord
        under = kargs.get("_underlayer")
        if under is not None:  # what scapy would have chosen after us
            after = False
            for fval, other in type(under).payload_guess:
                if other is cls:
                    after = True
                    continue
                if after and all(hasattr(under, k) and under.getfieldval(k) == v
                                 for k, v in fval.items()):
                    return other
        return conf.raw_layer


def bind_port(port: int) -> None:
    """Bind GBP to another TCP/UDP port (both directions)."""
    for field in ("sport", "dport"):
        bind_layers(TCP, GbpRecord, **{field: port})
        bind_layers(UDP, GbpDatagram, **{field: port})


def enable_heuristic() -> None:
    """Claim plausible GBP records on any TCP port and QUIC v1 datagrams on any UDP port
    (idempotent)."""
    if not any(c is GbpHeuristic for _f, c in TCP.payload_guess):
        TCP.payload_guess.append(({}, GbpHeuristic))
    if not any(c is GbpQuicHeuristic for _f, c in UDP.payload_guess):
        UDP.payload_guess.append(({}, GbpQuicHeuristic))


def disable_heuristic() -> None:
    """Stop claiming TCP/UDP payloads on ports other than the bound ones."""
    TCP.payload_guess[:] = [(f, c) for f, c in TCP.payload_guess if c is not GbpHeuristic]
    UDP.payload_guess[:] = [(f, c) for f, c in UDP.payload_guess if c is not GbpQuicHeuristic]


bind_port(GBP_PORT)
enable_heuristic()
