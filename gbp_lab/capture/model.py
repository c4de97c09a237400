"""``read_capture``: a capture file → a :class:`Capture` with a ``frames`` and an ``errors`` table.

The data's way (architecture.md): records from :mod:`.records` → :func:`~gbp_lab.core.gbp.frame.
decode_frame` → :func:`~gbp_lab.core.gbp.aead.open_frame` with the key log → sub-protocol decode
(control / GAP / GTP / GSP with the frame's ``pf`` codec) → one flat row per record. Columns are
collected as plain lists and turned into DataFrames once.

Keys: ``keylog=`` (a :class:`~gbp_lab.core.keylog.KeyLog`, a path, or key-log text) merged with
the GBPK Decryption Secrets Blocks found in a pcapng (type 0x4742504B, see :mod:`.pcap`).

``frames`` has one row per GBP frame and per raw MLS message (KeyPackage / Commit / Welcome, the
blobs the reference sends with the same length prefix — ``protocol`` = ``"MLS"``). Its ``error``
column holds what went wrong *with that frame* (no key for its epoch, AEAD tag failure,
undecodable plaintext). ``errors`` has one row per defect: everything the record pipeline reports
(file, TCP, record framing), records that are neither a frame nor an MLS message, and AEAD
failures; ``kind`` says which layer found it.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import cbor2
import pandas as pd

from gbp_lab.core.errors import (DecodeError, DecryptError, GbpLabError, KeyLogError,
                                  MissingKeyError)
from gbp_lab.core.gap.payload import GapPayload
from gbp_lab.core.gbp.aead import open_frame
from gbp_lab.core.gbp.control import decode_control
from gbp_lab.core.gbp.frame import decode_frame
from gbp_lab.core.gbp.registry import ControlOpcode, PayloadCodec, StreamType
from gbp_lab.core.gsp.signal import GspSignal, SignalType
from gbp_lab.core.gtp.message import GtpMessage
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.payload_codec import Kind
from gbp_lab.core.payload_codec import decode as pc_decode

from .pcap import DecryptionSecrets, Interface
from .records import GBP_PORT, PipelineStats, RecordPipeline, iter_records

__all__ = ["Capture", "read_capture", "FRAME_COLUMNS", "ERROR_COLUMNS"]

FRAME_COLUMNS = ["time", "src", "sport", "dst", "dport", "group_id", "epoch", "transition_id",
                 "stream_type", "stream_name", "stream_id", "sender", "flags", "sequence_no",
                 "payload_size", "codec", "decrypted", "protocol", "info", "error",
                 # beyond the list in the brief: where the row came from
                 "flow_id", "transport", "offset", "packet"]
ERROR_COLUMNS = ["time", "src", "sport", "dst", "dport", "flow_id", "transport", "offset",
                 "packet", "kind", "vid", "error"]

_STREAM_NAMES = {0: "control", 1: "audio", 2: "text", 3: "signal"}
_PROTOCOLS = {0: "GBP", 1: "GAP", 2: "GTP", 3: "GSP"}
_CODEC_NAMES = {c.value: c.name for c in PayloadCodec}
_MLS_WIRE = {1: "KeyPackage", 2: "MLSMessage (PrivateMessage)", 3: "Welcome",
             4: "GroupInfo", 5: "KeyPackage (MLSMessage)"}
_INT_COLUMNS = {"sport": "Int64", "dport": "Int64", "transition_id": "Int64",
                "stream_type": "Int64", "stream_id": "Int64", "sender": "Int64", "flags": "Int64",
                "sequence_no": "Int64", "payload_size": "Int64", "flow_id": "Int64",
                "offset": "Int64", "packet": "Int64", "epoch": "UInt64"}


@dataclass
class Capture:
    """A read capture: the two tables plus what was learnt on the way."""

    frames: pd.DataFrame
    errors: pd.DataFrame
    plaintexts: List[Optional[bytes]]  #: decrypted payload per ``frames`` row (None if not)
    keylog: Optional[KeyLog]
    secrets: List[DecryptionSecrets] = field(default_factory=list)
    interfaces: List[Interface] = field(default_factory=list)
    stats: Optional[PipelineStats] = None
    source: Optional[str] = None

    def __repr__(self) -> str:
        return (f"Capture({self.source!r}: {len(self.frames)} frames, {len(self.errors)} errors, "
                f"{int(self.frames['decrypted'].sum()) if len(self.frames) else 0} decrypted)")


def _load_keylog(keylog: Union[None, KeyLog, str, os.PathLike]) -> Optional[KeyLog]:
    if keylog is None:
        return None
    if isinstance(keylog, KeyLog):  # a copy: secrets blocks are merged into it
        copy = KeyLog()
        copy.update(keylog)
        return copy
    if isinstance(keylog, os.PathLike) or (isinstance(keylog, str) and "\n" not in keylog
                                           and os.path.exists(keylog)):
        return KeyLog.load(keylog)
    return KeyLog.parse(str(keylog))


_MISSING = object()


def _fast_fields(schema, data: bytes) -> Optional[Dict[str, Any]]:
    """Field values of a payload message in the reference's exact CBOR form, via cbor2 in C.

    Accepts only a subset of what the strict reader (:func:`gbp_lab.core.payload_codec.decode`)
    accepts — a definite map with exactly the schema's keys, right types, in range, lengths
    consistent, nothing after it — and for that subset yields the same values; ``None`` sends the
    caller to the strict reader (which then explains what is wrong)."""
    plan = _PLANS.get(schema.name)
    if plan is None:
        plan = _PLANS[schema.name] = (
            tuple((f.key, f.attr, f.kind.value if f.kind.is_int else
                   (-1 if f.kind is Kind.BYTES else -2)) for f in schema.fields),
            tuple(schema.length_checks))
    spec, checks = plan
    n = len(spec)
    if not data or data[0] != 0xA0 + n:
        return None
    fp = io.BytesIO(data)
    try:
        obj = cbor2.load(fp)
    except Exception:
        return None
    if type(obj) is not dict or len(obj) != n or fp.tell() != len(data):
        return None
    out: Dict[str, Any] = {}
    for key, attr, bits in spec:
        v = obj.get(key, _MISSING)
        if bits > 0:
            if type(v) is not int or v < 0 or v >> bits:
                return None
        elif type(v) is not (bytes if bits == -1 else str):
            return None
        out[attr] = v
    for length_attr, data_attr in checks:
        if out[length_attr] != len(out[data_attr]):
            return None
    return out


_PLANS: Dict[str, tuple] = {}


def _fields(cls, pt: bytes, codec: int) -> Dict[str, Any]:
    if PayloadCodec.for_wire(codec) is PayloadCodec.CBOR:
        v = _fast_fields(cls.SCHEMA, pt)
        if v is not None:
            return v
    m = pc_decode(cls, pt, codec)
    return {f.attr: getattr(m, f.attr) for f in cls.SCHEMA.fields}


def _summary(st: int, pt: bytes, codec: int) -> str:
    """One line describing a decrypted payload (raises DecodeError for bad plaintext)."""
    if st == StreamType.CONTROL:
        m = decode_control(pt)
        try:
            name = ControlOpcode(m.opcode).name
        except ValueError:
            name = f"opcode 0x{m.opcode:04x}"
        return f"{name} tid={m.transition_id} rid={m.request_id} from={m.sender_id} args={m.args_length}B"
    if st == StreamType.TEXT:
        g = _fields(GtpMessage, pt, codec)
        content = g["content"]
        try:
            body = repr(content[:200].decode("utf-8")[:60])
        except UnicodeDecodeError:
            body = f"{len(content)}B binary"
        return f"GTP mid={g['message_id']} from={g['sender_id']} ct={g['content_type']} {body}"
    if st == StreamType.AUDIO:
        a = _fields(GapPayload, pt, codec)
        return (f"GAP msid={a['media_source_id']} seq={a['rtp_sequence']} ts={a['rtp_timestamp']} "
                f"kp={a['key_phase']} opus={len(a['opus_frame'])}B")
    if st == StreamType.SIGNAL:
        s = _fields(GspSignal, pt, codec)
        try:
            name = SignalType(s["signal_type"]).name
        except ValueError:
            name = f"signal {s['signal_type']}"
        return f"GSP {name} rid={s['request_id']} from={s['sender_id']} args={s['args_length']}B"
    return f"{len(pt)}B"


def read_capture(path, keylog=None, *, ports=(GBP_PORT,), heuristic: bool = True,
                 decrypt: bool = True, summarize: bool = True, **pipeline_kw) -> Capture:
    """Read a pcap/pcapng capture of GBP traffic into a :class:`Capture` (see module docstring).

    ``path`` may also be bytes or a binary file object. ``keylog``: KeyLog, key-log path or text.
    ``ports`` / ``heuristic`` select the GBP flows (:class:`~.records.RecordPipeline`).
    """
    keys = _load_keylog(keylog)
    pipe = RecordPipeline(ports=ports, heuristic=heuristic, **pipeline_kw)
    holder: list = []
    frame_rows: List[tuple] = []  # one tuple per row, transposed once at the end
    error_rows: List[tuple] = []
    plaintexts: List[Optional[bytes]] = []
    seen_secrets = 0

    def add_error(it, kind: str, vid: str, text: str) -> None:
        error_rows.append((it.time, it.src, it.sport, it.dst, it.dport, it.flow_id,
                           it.transport, it.offset, it.packet, kind, vid, text))

    def merge_secrets(time: float) -> None:
        """Merge the GBPK secrets blocks read so far into the key log."""
        nonlocal keys, seen_secrets
        reader = holder[0]
        for s in reader.secrets[seen_secrets:]:
            if not s.is_gbp_keylog:
                continue
            try:
                extra = KeyLog.parse(s.data.decode("utf-8", "replace"))
                if keys is None:
                    keys = extra
                else:
                    keys.update(extra)
            except KeyLogError as exc:  # a bad secrets block is a defect of the file
                error_rows.append((time, None, None, None, None, None, None, s.offset, None,
                                   "capture", exc.vid,
                                   f"decryption secrets block at file offset {s.offset}: {exc}"))
        seen_secrets = len(reader.secrets)

    for it in iter_records(path, reader_out=holder, pipeline=pipe):
        if len(holder[0].secrets) != seen_secrets:  # a DSB was read: its keys apply from here
            merge_secrets(it.time)
        if it.error is not None:
            kind = ("capture" if it.vid.startswith(("CAP-", "IP-")) else
                    "tcp" if it.vid.startswith("TCP-") else
                    "udp" if it.vid.startswith("UDP-") else "record")
            add_error(it, kind, it.vid, it.error)
            continue
        data = it.data
        head = data[0] if data else -1
        if 0xA0 <= head <= 0xBF:
            try:
                fr = decode_frame(data)
            except DecodeError as exc:
                add_error(it, "decode", exc.vid, f"not a GBP frame: {exc.message}")
                continue
            st = fr.stream_type
            pt: Optional[bytes] = None
            err: Optional[str] = None
            if decrypt and keys is not None:
                try:
                    pt = open_frame(fr, keys)
                except MissingKeyError as exc:
                    err = f"[{exc.vid}] {exc.message}"
                except DecryptError as exc:
                    err = f"[{exc.vid}] {exc.message}"
                    add_error(it, "decrypt", exc.vid,
                              f"frame seq={fr.sequence_no} st={st} epoch={fr.epoch}: {exc.message}")
                except GbpLabError as exc:
                    err = f"[{exc.vid}] {exc.message}"
            name = _STREAM_NAMES.get(st, f"unknown({st})")
            if pt is not None and summarize:
                try:
                    info = _summary(st, pt, fr.payload_format)
                except GbpLabError as exc:
                    info = f"{name} seq={fr.sequence_no} {len(pt)}B plaintext"
                    err = f"[{exc.vid}] plaintext does not decode: {exc.message}"
            elif pt is not None:
                info = f"{name} seq={fr.sequence_no} {len(pt)}B plaintext"
            else:
                info = f"{name} seq={fr.sequence_no} {fr.payload_size}B encrypted"
            row = (it.time, it.src, it.sport, it.dst, it.dport, fr.group_id.hex(), fr.epoch,
                   fr.transition_id, st, name, fr.stream_id, fr.sender, fr.flags,
                   fr.sequence_no, fr.payload_size,
                   _CODEC_NAMES.get(fr.payload_format, f"CBOR(pf={fr.payload_format})"),
                   pt is not None, _PROTOCOLS.get(st, "GBP"), info, err,
                   it.flow_id, it.transport, it.offset, it.packet)
            plaintexts.append(pt)
        elif len(data) >= 4 and data[0] == 0 and data[1] == 1 and data[2] == 0:
            what = _MLS_WIRE.get(data[3], f"MLS wire format {data[3]}")
            row = (it.time, it.src, it.sport, it.dst, it.dport, None, None, None, None, None,
                   None, None, None, None, len(data), None, False, "MLS", f"{what} ({len(data)}B)",
                   None, it.flow_id, it.transport, it.offset, it.packet)
            plaintexts.append(None)
        else:
            add_error(it, "decode", "REC-UNKNOWN",
                      f"record of {len(data)} bytes is neither a GBP frame nor an MLS message "
                      f"(starts {data[:8].hex()})")
            continue
        frame_rows.append(row)

    reader = holder[0] if holder else None
    if reader is not None and len(reader.secrets) != seen_secrets:
        merge_secrets(pipe._last_time)  # blocks after the last record: for Capture.keylog
    frames = _frame(frame_rows, FRAME_COLUMNS)
    errors = _frame(error_rows, ERROR_COLUMNS)
    return Capture(frames, errors, plaintexts, keys,
                   list(reader.secrets) if reader else [],
                   list(reader.interfaces) if reader else [], pipe.stats,
                   str(path) if isinstance(path, (str, os.PathLike)) else None)


def _frame(rows: List[tuple], order: List[str]) -> pd.DataFrame:
    cols = list(zip(*rows)) if rows else [()] * len(order)
    data = {}
    for c, v in zip(order, cols):
        v = list(v)
        dt = _INT_COLUMNS.get(c)
        if dt is not None:
            data[c] = pd.array(v, dtype=dt)
        elif c == "time":
            data[c] = pd.array(v, dtype="float64")
        elif c == "decrypted":
            data[c] = pd.array(v, dtype="bool")
        else:
            data[c] = pd.array(v, dtype=object)
    return pd.DataFrame(data, columns=order)
