"""QUIC v1 wire pieces a passive reader needs (RFC 9000): variable-length integers (§16), long
and short packet headers (§17.2, §17.3), header-protection removal (RFC 9001 §5.4.2) and packet
number recovery (RFC 9000 §17.1, Appendix A.3), and the frame walker (§12.4, §19).

Everything raises typed errors for bad bytes: :class:`QuicDecodeError` (a
:class:`~gbp_lab.core.errors.DecodeError`, vids ``QUIC-*``) — never an ``IndexError``.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Tuple

from ..errors import DecodeError
from .protection import PacketKeys

__all__ = ["QuicDecodeError", "read_varint", "encode_varint", "LongHeader", "parse_long_header",
           "INITIAL", "ZERO_RTT", "HANDSHAKE", "RETRY", "PACKET_TYPES", "Unprotected",
           "unprotect", "decode_packet_number", "Frame", "FRAME_NAMES", "parse_frames"]


class QuicDecodeError(DecodeError):
    """Bytes that are not the QUIC structure they should be (vid ``QUIC-…``)."""

    default_vid = "QUIC-DECODE"


def read_varint(buf: bytes, pos: int, what: str = "varint") -> Tuple[int, int]:
    """``(value, next position)`` of the §16 variable-length integer at *pos*."""
    if pos >= len(buf):
        raise QuicDecodeError(f"{what}: no byte at offset {pos}", vid="QUIC-TRUNCATED")
    first = buf[pos]
    if first < 0x40:  # one byte: most frame types, stream ids, small lengths
        return first, pos + 1
    n = 1 << (first >> 6)
    if pos + n > len(buf):
        raise QuicDecodeError(f"{what}: a {n}-byte varint at offset {pos} is cut",
                              vid="QUIC-TRUNCATED")
    return int.from_bytes(buf[pos:pos + n], "big") & ((1 << (8 * n - 2)) - 1), pos + n


def encode_varint(value: int) -> bytes:
    """The shortest §16 encoding of *value* (< 2**62)."""
    for n, prefix in ((1, 0), (2, 0x40), (4, 0x80), (8, 0xC0)):
        if value < 1 << (8 * n - 2):
            b = value.to_bytes(n, "big")
            return bytes([b[0] | prefix]) + b[1:]
    raise QuicDecodeError(f"{value} does not fit a QUIC varint", vid="QUIC-VARINT-RANGE")


INITIAL, ZERO_RTT, HANDSHAKE, RETRY = 0, 1, 2, 3
PACKET_TYPES = {INITIAL: "Initial", ZERO_RTT: "0-RTT", HANDSHAKE: "Handshake", RETRY: "Retry"}


class LongHeader(NamedTuple):
    """A long header (§17.2) up to its protected packet number. ``end``: where the packet ends
    in the datagram (its Length field; Retry and Version Negotiation: the datagram's end)."""

    first: int
    version: int
    ptype: int  #: INITIAL | ZERO_RTT | HANDSHAKE | RETRY (v1); -1 for Version Negotiation
    dcid: bytes
    scid: bytes
    token: bytes
    pn_offset: int
    end: int


def _take(buf: bytes, pos: int, n: int, what: str) -> Tuple[bytes, int]:
    if pos + n > len(buf):
        raise QuicDecodeError(f"{what}: {n} bytes at offset {pos}, the datagram ends at "
                              f"{len(buf)}", vid="QUIC-TRUNCATED")
    return buf[pos:pos + n], pos + n


def parse_long_header(buf: bytes, pos: int = 0) -> LongHeader:
    """The long header of the packet at *pos* (first byte has 0x80)."""
    start = pos
    first = buf[pos]
    vb, pos = _take(buf, pos + 1, 4, "long header version")
    version = int.from_bytes(vb, "big")
    n, pos = _take(buf, pos, 1, "DCID length")
    if n[0] > 20 and version == 1:
        raise QuicDecodeError(f"DCID length {n[0]} > 20 (RFC 9000 §17.2)", vid="QUIC-CID-LENGTH")
    dcid, pos = _take(buf, pos, n[0], "DCID")
    n, pos = _take(buf, pos, 1, "SCID length")
    if n[0] > 20 and version == 1:
        raise QuicDecodeError(f"SCID length {n[0]} > 20 (RFC 9000 §17.2)", vid="QUIC-CID-LENGTH")
    scid, pos = _take(buf, pos, n[0], "SCID")
    if version == 0:
        return LongHeader(first, 0, -1, dcid, scid, b"", pos, len(buf))
    if version != 1:
        raise QuicDecodeError(f"QUIC version 0x{version:08x} at offset {start}: only v1 is read",
                              vid="QUIC-VERSION")
    ptype = (first >> 4) & 3
    token = b""
    if ptype == RETRY:
        return LongHeader(first, version, ptype, dcid, scid, buf[pos:], len(buf), len(buf))
    if ptype == INITIAL:
        tl, pos = read_varint(buf, pos, "token length")
        token, pos = _take(buf, pos, tl, "token")
    length, pos = read_varint(buf, pos, "packet length")
    if pos + length > len(buf):
        raise QuicDecodeError(f"{PACKET_TYPES[ptype]} packet at offset {start}: length {length} "
                              f"runs past the datagram end ({len(buf) - pos} bytes left)",
                              vid="QUIC-TRUNCATED")
    return LongHeader(first, version, ptype, dcid, scid, token, pos, pos + length)


def decode_packet_number(truncated: int, pn_nbits: int, largest: int) -> int:
    """RFC 9000 Appendix A.3: the full packet number closest to ``largest + 1``."""
    expected = largest + 1
    win = 1 << pn_nbits
    hwin = win // 2
    mask = win - 1
    candidate = (expected & ~mask) | truncated
    if candidate <= expected - hwin and candidate < (1 << 62) - win:
        return candidate + win
    if candidate > expected + hwin and candidate >= win:
        return candidate - win
    return candidate


class Unprotected(NamedTuple):
    """A packet after header-protection removal: first byte, full packet number, the header
    bytes (AEAD associated data) and the still encrypted payload."""

    first: int
    packet_number: int
    header: bytes
    ciphertext: bytes


def unprotect(buf: bytes, start: int, pn_offset: int, end: int, keys: PacketKeys,
              largest: int) -> Unprotected:
    """Remove header protection (RFC 9001 §5.4.1, §5.4.2): the sample starts 4 bytes after the
    packet number's offset; long headers protect 4 low bits, short headers 5."""
    if pn_offset + 4 + 16 > end:
        raise QuicDecodeError(f"packet at offset {start}: {end - pn_offset} bytes after the "
                              f"header, too few for the header protection sample",
                              vid="QUIC-TRUNCATED")
    mask = keys.mask(buf[pn_offset + 4:pn_offset + 20])
    first = buf[start]
    first ^= mask[0] & (0x0F if first & 0x80 else 0x1F)
    pn_len = (first & 3) + 1
    truncated = (int.from_bytes(buf[pn_offset:pn_offset + pn_len], "big")
                 ^ int.from_bytes(mask[1:1 + pn_len], "big"))
    header = bytes([first]) + buf[start + 1:pn_offset] + truncated.to_bytes(pn_len, "big")
    pn = decode_packet_number(truncated, 8 * pn_len, largest)
    return Unprotected(first, pn, header, buf[pn_offset + pn_len:end])


class Frame(NamedTuple):
    """One frame (§19). ``stream_id``/``offset``/``data``/``fin``: STREAM and CRYPTO (stream id
    ``None``), RESET_STREAM's final size in ``offset``; ``fields``: the other values by name."""

    type: int
    name: str
    stream_id: Optional[int] = None
    offset: int = 0
    data: bytes = b""
    fin: bool = False
    fields: Optional[Dict[str, object]] = None


#: frame type → name (RFC 9000 §12.4 Table 3; DATAGRAM: RFC 9221)
FRAME_NAMES: Dict[int, str] = {
    0x00: "PADDING", 0x01: "PING", 0x02: "ACK", 0x03: "ACK_ECN", 0x04: "RESET_STREAM",
    0x05: "STOP_SENDING", 0x06: "CRYPTO", 0x07: "NEW_TOKEN", 0x10: "MAX_DATA",
    0x11: "MAX_STREAM_DATA", 0x12: "MAX_STREAMS_BIDI", 0x13: "MAX_STREAMS_UNI",
    0x14: "DATA_BLOCKED", 0x15: "STREAM_DATA_BLOCKED", 0x16: "STREAMS_BLOCKED_BIDI",
    0x17: "STREAMS_BLOCKED_UNI", 0x18: "NEW_CONNECTION_ID", 0x19: "RETIRE_CONNECTION_ID",
    0x1A: "PATH_CHALLENGE", 0x1B: "PATH_RESPONSE", 0x1C: "CONNECTION_CLOSE",
    0x1D: "CONNECTION_CLOSE_APP", 0x1E: "HANDSHAKE_DONE", 0x30: "DATAGRAM", 0x31: "DATAGRAM"}
FRAME_NAMES.update({t: "STREAM" for t in range(0x08, 0x10)})

#: frames that are only varints: type → field names
_VARINT_FRAMES: Dict[int, Tuple[str, ...]] = {
    0x05: ("stream_id", "error_code"), 0x10: ("maximum",), 0x11: ("stream_id", "maximum"),
    0x12: ("maximum",), 0x13: ("maximum",), 0x14: ("limit",), 0x15: ("stream_id", "limit"),
    0x16: ("limit",), 0x17: ("limit",), 0x19: ("sequence",)}


def parse_frames(payload: bytes) -> List[Frame]:
    """Every frame of a decrypted packet payload, in order (§12.4); runs of PADDING are one
    frame. :class:`QuicDecodeError` for an unknown type (``QUIC-FRAME-TYPE``) or a cut frame."""
    out: List[Frame] = []
    pos, n = 0, len(payload)
    rv = read_varint
    while pos < n:
        at = pos
        t, pos = rv(payload, pos, "frame type")
        if t == 0x00:
            while pos < n and payload[pos] == 0:
                pos += 1
            out.append(Frame(0, "PADDING"))
        elif t == 0x01 or t == 0x1E:
            out.append(Frame(t, FRAME_NAMES[t]))
        elif 0x08 <= t <= 0x0F:
            sid, pos = rv(payload, pos, "STREAM stream id")
            off = 0
            if t & 0x04:
                off, pos = rv(payload, pos, "STREAM offset")
            if t & 0x02:
                ln, pos = rv(payload, pos, "STREAM length")
                data, pos = _take(payload, pos, ln, "STREAM data")
            else:
                data, pos = payload[pos:], n
            out.append(Frame(t, "STREAM", sid, off, data, bool(t & 0x01)))
        elif t == 0x06:
            off, pos = rv(payload, pos, "CRYPTO offset")
            ln, pos = rv(payload, pos, "CRYPTO length")
            data, pos = _take(payload, pos, ln, "CRYPTO data")
            out.append(Frame(t, "CRYPTO", None, off, data))
        elif t == 0x02 or t == 0x03:
            largest, pos = rv(payload, pos, "ACK largest")
            delay, pos = rv(payload, pos, "ACK delay")
            count, pos = rv(payload, pos, "ACK range count")
            first, pos = rv(payload, pos, "ACK first range")
            for _ in range(count):
                _g, pos = rv(payload, pos, "ACK gap")
                _l, pos = rv(payload, pos, "ACK range")
            if t == 0x03:
                for _ in range(3):
                    _e, pos = rv(payload, pos, "ACK ECN count")
            out.append(Frame(t, FRAME_NAMES[t], fields={"largest": largest, "delay": delay,
                                                       "ranges": count + 1, "first": first}))
        elif t == 0x04:
            sid, pos = rv(payload, pos, "RESET_STREAM stream id")
            err, pos = rv(payload, pos, "RESET_STREAM error")
            size, pos = rv(payload, pos, "RESET_STREAM final size")
            out.append(Frame(t, "RESET_STREAM", sid, size, fields={"error_code": err}))
        elif t in _VARINT_FRAMES:
            vals: Dict[str, object] = {}
            for name in _VARINT_FRAMES[t]:
                vals[name], pos = rv(payload, pos, f"{FRAME_NAMES[t]} {name}")
            sid_v = vals.get("stream_id")
            out.append(Frame(t, FRAME_NAMES[t], sid_v if isinstance(sid_v, int) else None,
                             fields=vals))
        elif t == 0x07:
            ln, pos = rv(payload, pos, "NEW_TOKEN length")
            tok, pos = _take(payload, pos, ln, "NEW_TOKEN token")
            out.append(Frame(t, "NEW_TOKEN", data=tok))
        elif t == 0x18:
            seq, pos = rv(payload, pos, "NEW_CONNECTION_ID sequence")
            rpt, pos = rv(payload, pos, "NEW_CONNECTION_ID retire prior to")
            ln_b, pos = _take(payload, pos, 1, "NEW_CONNECTION_ID length")
            if not 1 <= ln_b[0] <= 20:
                raise QuicDecodeError(f"NEW_CONNECTION_ID length {ln_b[0]} outside 1..20",
                                      vid="QUIC-CID-LENGTH")
            cid, pos = _take(payload, pos, ln_b[0], "NEW_CONNECTION_ID id")
            token, pos = _take(payload, pos, 16, "NEW_CONNECTION_ID reset token")
            out.append(Frame(t, "NEW_CONNECTION_ID", data=cid,
                             fields={"sequence": seq, "retire_prior_to": rpt,
                                     "reset_token": token}))
        elif t == 0x1A or t == 0x1B:
            data, pos = _take(payload, pos, 8, FRAME_NAMES[t])
            out.append(Frame(t, FRAME_NAMES[t], data=data))
        elif t == 0x1C or t == 0x1D:
            err, pos = rv(payload, pos, "CONNECTION_CLOSE error")
            ftype = None
            if t == 0x1C:
                ftype, pos = rv(payload, pos, "CONNECTION_CLOSE frame type")
            ln, pos = rv(payload, pos, "CONNECTION_CLOSE reason length")
            reason, pos = _take(payload, pos, ln, "CONNECTION_CLOSE reason")
            out.append(Frame(t, FRAME_NAMES[t], data=reason,
                             fields={"error_code": err, "frame_type": ftype}))
        elif t == 0x30 or t == 0x31:
            if t == 0x31:
                ln, pos = rv(payload, pos, "DATAGRAM length")
                data, pos = _take(payload, pos, ln, "DATAGRAM data")
            else:
                data, pos = payload[pos:], n
            out.append(Frame(t, "DATAGRAM", data=data))
        else:
            raise QuicDecodeError(f"unknown frame type 0x{t:x} at payload offset {at}",
                                  vid="QUIC-FRAME-TYPE")
    return out
