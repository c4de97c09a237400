"""The capture read path: records → one flat row per GBP frame / MLS blob, in bulk.

This module owns what :func:`~.model.read_capture` (a whole :class:`~.model.Capture`) and
:func:`~.stream.iter_capture` (bounded chunks) share:

* the row layouts (:class:`~.columns.RowLayout`, names + dtype per column):
  :data:`FRAME_ROW` (what the read loop writes per frame), :data:`FRAME_TABLE` (the ``frames``
  table: :data:`FRAME_ROW` plus the columns derived in bulk by :func:`frames_table`) and
  :data:`ERROR_ROW` (the ``errors`` table);
* the chunk reader :func:`read_chunks` (the hot loop) and the state it fills (:class:`ReadState`);
* the per-record decode: frame header (:data:`~gbp_lab.core.gbp.frame.FRAME_MATCHERS`, else
  :func:`~gbp_lab.core.gbp.frame.decode_frame`), stream decryption with the key log, the
  sub-protocol Info line (:func:`summary`) and the payload fields (:func:`payload_fields`, also
  used by :mod:`.tables`).

The read loop takes the items of :func:`~.records.iter_item_batches` as tuples in
:data:`~.records.ITEM_FIELDS` order (checked when this module is imported) and writes rows in
:data:`FRAME_ROW` / :data:`ERROR_ROW` order; positional access stays inside this module.

Hot path: decryption keeps this read's own ``(group, epoch, stream type) →`` stream cipher table
(:class:`~gbp_lab.core.gbp.aead.StreamCipher` from the shared
:data:`~gbp_lab.core.gbp.aead.CIPHERS` cache, ``try_open`` by sequence number) and only goes through :func:`~gbp_lab.core.gbp.aead.open_frame` for the unusual cases (no key, bad tag …),
which raise the typed errors; frames and CBOR payloads in the canonical form every sender writes
are read by exact-shape matchers (:data:`~gbp_lab.core.gbp.frame.FRAME_MATCHERS`,
:func:`~gbp_lab.core.payload_codec.cbor_values_matcher`) without building objects, everything
else by the full decoders.
"""
from __future__ import annotations

import gc
import os
from itertools import chain
from operator import itemgetter
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Union

import numpy as np
import pandas as pd

from gbp_lab.core.errors import (DecodeError, DecryptError, GbpLabError, KeyLogError,
                                  MissingKeyError)
from gbp_lab.core.gap.payload import GapPayload
from gbp_lab.core.gbp.aead import CIPHERS, open_frame
from gbp_lab.core.gbp.classify import RecordClass, classify_record
from gbp_lab.core.gbp.control import decode_control
from gbp_lab.core.gbp.frame import FRAME_MATCHERS, GbpFrame, decode_frame
from gbp_lab.core.gbp.registry import (STREAM_ID_STRIDE, ControlOpcode, PayloadCodec, StreamType,
                                       stream_name, stream_protocol)
from gbp_lab.core.gsp.signal import GspSignal, SignalType
from gbp_lab.core.gtp.message import GtpMessage
from gbp_lab.core.keylog import KeyLog, is_tls_line
from gbp_lab.core.payload_codec import cbor_values_matcher
from gbp_lab.core.payload_codec import decode as pc_decode

from .columns import BOOL, FLOAT, INT64, TEXT, TIME, UINT64, RowLayout, text_column, with_rel_time
from .pcapfile import DecryptionSecrets, Interface
from .records import GBP_PORT, ITEM_FIELDS, PipelineStats, RecordPipeline, iter_item_batches

__all__ = ["FRAME_ROW", "FRAME_TABLE", "ERROR_ROW", "FRAME_COLUMNS", "ERROR_COLUMNS",
           "ReadState", "ReadChunk", "read_chunks", "frames_table", "errors_table",
           "payload_fields", "summary", "mls_info", "load_keylog"]

#: what the read loop writes per frame row; the other ``frames`` columns (``stream_name``,
#: ``sender``, ``codec``, ``protocol``) are derived in bulk by :func:`frames_table`
FRAME_ROW = RowLayout([
    ("time", TIME), ("src", TEXT), ("sport", INT64), ("dst", TEXT), ("dport", INT64),
    ("group_id", TEXT), ("epoch", UINT64), ("transition_id", INT64), ("stream_type", INT64),
    ("stream_id", INT64), ("flags", INT64), ("sequence_no", INT64), ("payload_size", INT64),
    ("pf", INT64), ("decrypted", BOOL), ("info", TEXT), ("error", TEXT), ("flow_id", INT64),
    ("transport", TEXT), ("offset", INT64), ("packet", INT64)])
#: the ``frames`` table: :data:`FRAME_ROW` without ``pf``, with the derived columns
FRAME_TABLE = FRAME_ROW.derive(
    [("stream_name", TEXT), ("sender", INT64), ("codec", TEXT), ("protocol", TEXT),
     ("key_epoch", UINT64), ("quic_connection", TEXT), ("quic_stream", INT64),
     ("rel_time", FLOAT)],
    ["time", "src", "sport", "dst", "dport", "group_id", "epoch", "transition_id",
     "stream_type", "stream_name", "stream_id", "sender", "flags", "sequence_no",
     "payload_size", "codec", "decrypted", "protocol", "info", "error", "key_epoch",
     # beyond the list in the brief: where the row came from
     "flow_id", "transport", "quic_connection", "quic_stream", "offset", "packet",
     "rel_time"])
#: the ``errors`` table; ``frame``: the ``frames`` row the defect belongs to (AEAD failures)
ERROR_ROW = RowLayout([
    ("time", TIME), ("src", TEXT), ("sport", INT64), ("dst", TEXT), ("dport", INT64),
    ("flow_id", INT64), ("transport", TEXT), ("offset", INT64), ("packet", INT64),
    ("kind", TEXT), ("vid", TEXT), ("error", TEXT), ("frame", INT64)])
FRAME_COLUMNS: List[str] = list(FRAME_TABLE.names)
#: the ``errors`` table's columns: :data:`ERROR_ROW`, then ``rel_time`` (as every table's last)
ERROR_COLUMNS: List[str] = list(ERROR_ROW.names) + ["rel_time"]

#: the item field order the read loop unpacks (:class:`~.records.RecordItem`)
_ITEM_ORDER = ("time", "src", "sport", "dst", "dport", "flow_id", "transport", "offset", "data",
               "error", "vid", "packet")
if ITEM_FIELDS != _ITEM_ORDER:  # pragma: no cover - a new item field must be read here too
    raise ImportError(f"readpath unpacks record items as {_ITEM_ORDER}, records has {ITEM_FIELDS}")

_CODEC_NAMES = {c.value: c.name for c in PayloadCodec}
#: stream type / payload format (both u8 on the wire) -> its name, for the derived columns
#: (stream names and protocols: the registry's stream-type table)
_ST_NAMES = np.array([stream_name(i) for i in range(256)], dtype=object)
_PROTO_NAMES = np.array([stream_protocol(i) for i in range(256)], dtype=object)
_PF_NAMES = np.array([_CODEC_NAMES.get(i) or f"CBOR(pf={i})" for i in range(256)], dtype=object)
_chain = chain.from_iterable


def _attrs(cls) -> tuple:
    return tuple(f.attr for f in cls.SCHEMA.fields)


#: payload class -> (canonical-CBOR values matcher, attribute names), see :func:`payload_fields`
_FAST = {cls: (cbor_values_matcher(cls.SCHEMA), _attrs(cls))
         for cls in (GtpMessage, GapPayload, GspSignal)}


def payload_fields(cls, pt: bytes, codec: int) -> Dict[str, Any]:
    """Field values of a decrypted payload by attribute name; raises DecodeError for bad bytes.
    CBOR in the canonical form takes the exact-shape matcher
    (:func:`~gbp_lab.core.payload_codec.cbor_values_matcher`), everything else the full reader."""
    if codec != 1 and codec != 2:  # PayloadCodec.for_wire: every other value is read as CBOR
        fast = _FAST.get(cls)
        if fast is not None and type(pt) is bytes:
            vals = fast[0](pt)
            if vals is not None:
                return dict(zip(fast[1], vals))
    m = pc_decode(cls, pt, codec)
    return {f.attr: getattr(m, f.attr) for f in cls.SCHEMA.fields}


_CONTROL, _AUDIO, _TEXT, _SIGNAL = (int(StreamType.CONTROL), int(StreamType.AUDIO),
                                    int(StreamType.TEXT), int(StreamType.SIGNAL))


#: the canonical-CBOR matchers of the two commonest payloads: all fields in schema order — the
#: very matchers :func:`~gbp_lab.core.payload_codec.decode` and
#: :meth:`~gbp_lab.core.gtp.client.GtpClient.accept_many` use (compiled once per schema), so the
#: values the read loop keeps (:attr:`ReadChunk.values`) are what they would compute again
_GTP_FAST = cbor_values_matcher(GtpMessage.SCHEMA)
_GAP_FAST = cbor_values_matcher(GapPayload.SCHEMA)
#: what the GTP Info line shows: positions in the values tuple
_GTP_INFO = itemgetter(*(_attrs(GtpMessage).index(a)
                         for a in ("message_id", "sender_id", "content_type", "content")))
_GAP_INFO = itemgetter(*(_attrs(GapPayload).index(a) for a in (
    "media_source_id", "rtp_sequence", "rtp_timestamp", "key_phase", "opus_frame")))


def _gap_line(vals) -> str:
    """The Info line of a GAP payload from its values (:data:`_GAP_INFO` order)."""
    msid, seq, ts, kp, opus = vals
    return f"GAP msid={msid} seq={seq} ts={ts} kp={kp} opus={len(opus)}B"


def _gtp_line(vals) -> str:
    """The Info line of a GTP message from its values (:data:`_GTP_INFO` order)."""
    mid, sender, ct, content = vals
    try:
        body = repr(content[:200].decode("utf-8")[:60])
    except UnicodeDecodeError:
        body = f"{len(content)}B binary"
    return f"GTP mid={mid} from={sender} ct={ct} {body}"


def summary(st: int, pt: bytes, codec: int) -> str:
    """One line describing a decrypted payload (raises DecodeError for bad plaintext)."""
    if st == _TEXT:  # the common case first; plain ints (no IntEnum comparison)
        vals = _GTP_FAST(pt) if codec != 1 and codec != 2 and type(pt) is bytes else None
        if vals is None:
            g = payload_fields(GtpMessage, pt, codec)
            return _gtp_line((g["message_id"], g["sender_id"], g["content_type"], g["content"]))
        return _gtp_line(_GTP_INFO(vals))
    if st == _CONTROL:
        m = decode_control(pt)
        try:
            name = ControlOpcode(m.opcode).name
        except ValueError:
            name = f"opcode 0x{m.opcode:04x}"
        return f"{name} tid={m.transition_id} rid={m.request_id} from={m.sender_id} args={m.args_length}B"
    if st == _AUDIO:
        a = payload_fields(GapPayload, pt, codec)
        return _gap_line((a["media_source_id"], a["rtp_sequence"], a["rtp_timestamp"],
                          a["key_phase"], a["opus_frame"]))
    if st == _SIGNAL:
        s = payload_fields(GspSignal, pt, codec)
        try:
            name = SignalType(s["signal_type"]).name
        except ValueError:
            name = f"signal {s['signal_type']}"
        return f"GSP {name} rid={s['request_id']} from={s['sender_id']} args={s['args_length']}B"
    return f"{len(pt)}B"



def mls_info(rc: RecordClass, size: int) -> str:
    """The Info line of a record the classifier named an MLS structure: its name, ``(MLSMessage)``
    when it came in the envelope, the cipher suite it names, the size."""
    wrapped = " (MLSMessage)" if rc.wrapped else ""
    suite = f" suite {rc.suite}" if rc.suite is not None else ""
    return f"{rc.name}{wrapped}{suite} ({size}B)"


def load_keylog(keylog: Union[None, KeyLog, str, os.PathLike]) -> Optional[KeyLog]:
    """A key log from a :class:`KeyLog` (copied: secrets blocks are merged into it), a path or
    key-log text; ``None`` stays ``None``."""
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


def _opener_of(keys: KeyLog, gid: bytes, epoch: int, st: int) -> Any:
    """The stream cipher's ``try_open`` for a frame if the key log has its epoch (16-byte group
    id, known stream type; :data:`~gbp_lab.core.gbp.aead.CIPHERS`); ``None`` sends the frame to
    :func:`open_frame` (which raises the right error)."""
    if len(gid) != 16 or not 0 <= st <= 3:
        return None
    try:
        cipher = CIPHERS.of_keylog(keys, gid, epoch, st)
    except GbpLabError:
        return None
    return None if cipher is None else cipher.try_open


def _frame_of(vals: tuple) -> GbpFrame:
    """A :class:`GbpFrame` from its :func:`~gbp_lab.core.gbp.frame.frame_values` (for the slow
    paths that want the object)."""
    return GbpFrame(*vals)


#: the frame ``error`` of a frame that opens only under an earlier epoch's key
STALE_KEY_VID = "GBP-AEAD-STALE-KEY"


def _open_stale(fr, keys: KeyLog) -> tuple:
    """``(plaintext, key epoch)`` of a frame whose tag failed under its own epoch's key when an
    earlier epoch's exporter secret of the same group opens it (newest first), else
    ``(None, None)``: a sender still sealing with keys it should no longer have."""
    gid = fr.group_id if len(fr.group_id) == 16 else fr.group_id16
    for e in reversed(keys.epochs(gid)):
        if e >= fr.epoch:
            continue
        try:
            return open_frame(fr, keys, mls_epoch=e), e
        except GbpLabError:
            continue
    return None, None


def _open_slow(fr, keys: KeyLog, it, add_error, row: int) -> tuple:
    """:func:`open_frame` with its typed errors turned into ``(plaintext, error text, key
    epoch)``; a tag failure is also an ``errors`` row (kind ``decrypt``: a receiver drops the
    frame) — and when an earlier epoch's key opens it (:func:`_open_stale`), the plaintext is
    kept with that key epoch."""
    try:
        return open_frame(fr, keys), None, None
    except MissingKeyError as exc:
        return None, f"[{exc.vid}] {exc.message}", None
    except DecryptError as exc:
        pt, ke = _open_stale(fr, keys) if exc.vid == "GBP-AEAD-TAG" else (None, None)
        stale = "" if pt is None else f"; it opens under epoch {ke}'s key (stale key)"
        add_error(it, "decrypt", exc.vid, f"frame seq={fr.sequence_no} st={fr.stream_type} "
                                          f"epoch={fr.epoch}: {exc.message}{stale}", row)
        if pt is not None:
            return pt, (f"[{STALE_KEY_VID}] the tag fails under epoch {fr.epoch}'s key and "
                        f"verifies under epoch {ke}'s: sealed with a stale key (receivers drop "
                        f"it)"), ke
        return None, f"[{exc.vid}] {exc.message}", None
    except GbpLabError as exc:
        return None, f"[{exc.vid}] {exc.message}", None


def _long_lived_lists(n: int) -> List[list]:
    """*n* new empty lists, moved to the cyclic collector's oldest generation: a list that grows
    to millions of entries while still young would be walked whole by the next young-generation
    collection (which the table building right after the read triggers); an old one only by the
    rare full collections. (A collection of the two young generations walks only the few
    objects allocated since the last one: cheap.)"""
    lists: List[list] = [[] for _ in range(n)]
    if gc.isenabled():
        gc.collect(1)
    return lists


#: an item's place (time, addresses, ports, flow, transport, offset, packet): the first
#: :data:`ERROR_ROW` columns, picked from an item tuple by name
_item_place = itemgetter(*(_ITEM_ORDER.index(n) for n in ERROR_ROW.names[:9]))
if ERROR_ROW.names[9:] != ("kind", "vid", "error", "frame"):  # pragma: no cover
    raise ImportError("ERROR_ROW: add_error writes kind, vid, error, frame after the place")


class ReadChunk(NamedTuple):
    """One chunk of :func:`read_chunks`: ``frame_cells`` holds the frame rows' cells one after
    the other (:data:`FRAME_ROW` order, see :func:`frames_table`), ``error_rows`` the
    :data:`ERROR_ROW` tuples; ``plaintexts`` (decrypted payload or None), ``payloads`` (the
    frame's ``pl``), ``records`` (the record bytes: the body after the length prefix) and
    ``values`` (decoded payload fields) have one entry per frame row; ``key_epochs``: the chunk's rows (from 0) that opened only under an
    earlier epoch's key → that epoch (:func:`frames_table`'s ``key_epoch``); ``quic_flows``:
    :attr:`~.records.RecordPipeline.quic_flows` (:func:`frames_table`'s QUIC columns)."""

    frame_cells: List[Any]
    error_rows: List[tuple]
    plaintexts: List[Optional[bytes]]
    payloads: List[Optional[bytes]]
    records: List[bytes]
    key_epochs: Dict[int, int]
    #: flow id → (QUIC connection, stream id) of the read's QUIC stream flows (grows; shared)
    quic_flows: Optional[Dict[int, tuple]] = None
    #: per frame row: the decrypted payload's field values (schema order) when the read loop
    #: decoded them by the canonical-CBOR matcher (GTP text and GAP audio frames with ``pf`` 0),
    #: else ``None`` — what the ``messages`` table (:meth:`~gbp_lab.core.gtp.client.GtpClient.
    #: accept_many`'s ``values``) and :func:`~.media.open_media` take instead of decoding again
    values: Optional[List[Optional[tuple]]] = None


class ReadState:
    """What a read learnt besides the rows (filled while :func:`read_chunks` runs)."""

    __slots__ = ("keys", "secrets", "interfaces", "stats", "quic_flows")

    def __init__(self) -> None:
        self.keys: Optional[KeyLog] = None
        self.secrets: List[DecryptionSecrets] = []
        self.interfaces: List[Interface] = []
        self.stats: Optional[PipelineStats] = None
        #: flow id → (QUIC connection, stream id): :func:`frames_table`'s QUIC columns
        self.quic_flows: Dict[int, tuple] = {}


def read_chunks(path, keylog, state: ReadState, *, ports=(GBP_PORT,), heuristic: bool = True,
                decrypt: bool = True, summarize: bool = True, chunksize: Optional[int] = None,
                on_raw=None, reader=None, items=None, **pipeline_kw) -> Iterator["ReadChunk"]:
    """The reading loop: yield a :class:`ReadChunk` whenever ``chunksize`` frame rows are
    collected (``None``: once, at the end); ``state`` gets the key log, secrets, interfaces and
    stats as they become known. Each chunk's lists are new (a consumer may keep them).

    Live hooks (:mod:`.live`): ``reader`` is a packet source used instead of opening ``path``
    (see :func:`~.records.iter_item_batches`); ``items`` decodes item-tuple batches
    (:data:`~.records.ITEM_FIELDS` order) instead of reading packets at all."""
    keys = load_keylog(keylog)
    state.keys = keys
    def quic_secrets(client_random: bytes):
        """A QUIC connection's TLS secrets from the key log as it is now: secrets blocks read
        so far are merged first (the pipeline asks before the loop sees an item)."""
        if holder and len(holder[0].secrets) != seen_secrets:
            merge_secrets(pipe._last_time)
        return None if keys is None else keys.tls_secrets(client_random)

    pipe = RecordPipeline(ports=ports, heuristic=heuristic, quic_secrets=quic_secrets,
                          **pipeline_kw)
    quic_flows = pipe.quic_flows
    if items is None:  # an items read decodes another pipeline's items: keep its flows
        state.quic_flows = quic_flows
    state.stats = pipe.stats
    holder: list = []
    # the frame rows' cells in one flat list (``extend`` with each row): no tracked tuple per
    # row for the cyclic collector to walk, and one C call turns it into a 2-D array at the end
    frame_rows, plaintexts, payloads, records, values = _long_lived_lists(5)
    error_rows: List[tuple] = []
    key_epochs: Dict[int, int] = {}
    seen_secrets = 0
    width = FRAME_ROW.width
    limit = chunksize * width if chunksize else -1
    ctx: Dict[tuple, tuple] = {}  # (gid, epoch, st) -> (gid hex, StreamCipher.try_open or None)

    done = 0  # frame rows already handed out in earlier chunks

    def add_error(it: tuple, kind: str, vid: str, text: str, frame: Optional[int] = None) -> None:
        """An :data:`ERROR_ROW` for item ``it`` (:data:`~.records.ITEM_FIELDS` order)."""
        error_rows.append(_item_place(it) + (kind, vid, text, frame))

    def merge_secrets(time: float) -> None:
        """Merge the GBPK secrets blocks read so far into the key log, and the TLS key-log
        blocks' SSLKEYLOGFILE lines (QUIC connections' secrets, :meth:`KeyLog.tls_secrets`)."""
        nonlocal keys, seen_secrets
        reader = holder[0]
        for s in reader.secrets[seen_secrets:]:
            if not s.is_gbp_keylog and not s.is_tls_keylog:
                continue
            text = s.data.decode("utf-8", "replace")
            if s.is_tls_keylog:  # other TLS labels (CLIENT_RANDOM …) are not ours to judge
                text = "".join(ln + "\n" for ln in text.splitlines() if is_tls_line(ln))
            try:
                extra = KeyLog.parse(text)
                if keys is None:
                    keys = extra
                else:
                    keys.update(extra)
                state.keys = keys
                ctx.clear()  # new secrets: look the keys up again
            except KeyLogError as exc:  # a bad secrets block is a defect of the file
                error_rows.append((time, None, None, None, None, None, None, s.offset, None,
                                   "capture", exc.vid,
                                   f"decryption secrets block at file offset {s.offset}: {exc}",
                                   None))
        seen_secrets = len(reader.secrets)

    # the hot loop: item tuples (RecordItem field order), bound methods and tables in locals
    frames_extend, pts_append, pls_append = frame_rows.extend, plaintexts.append, payloads.append
    recs_append, vals_append = records.append, values.append
    name_of = stream_name
    gtp_fast, gtp_line, gtp_info = _GTP_FAST, _gtp_line, _GTP_INFO
    gap_fast, gap_line, gap_info = _GAP_FAST, _gap_line, _GAP_INFO
    ctx_get = ctx.get
    summarize_pt, decode, classify = summary, decode_frame, classify_record
    matcher_for = FRAME_MATCHERS.get
    if items is None:
        batches = iter_item_batches(path, reader_out=holder, pipeline=pipe, on_raw=on_raw,
                                    reader=reader)
    else:
        batches = items
        holder.append(_NO_READER)
    for it in _chain(batches):
        if len(holder[0].secrets) != seen_secrets:  # a DSB was read: its keys apply from here
            merge_secrets(it[0])
        (time, src, sport, dst, dport, flow_id, transport, offset, data, error, vid,
         packet) = it
        if error is not None:
            kind = ("capture" if vid.startswith(("CAP-", "IP-")) else
                    "tcp" if vid.startswith("TCP-") else
                    "udp" if vid.startswith("UDP-") else
                    "quic" if vid.startswith("QUIC-") else "record")
            add_error(it, kind, vid, error)
            continue
        head = data[0] if data else -1
        if 0xA0 <= head <= 0xBF:
            match = matcher_for(head)  # the canonical form, no object; else the full decoder
            vals = match(data) if match is not None else None
            if vals is None:
                try:
                    fr = decode(data)
                except DecodeError as exc:
                    add_error(it, "decode", exc.vid, f"not a GBP frame: {exc.message}")
                    continue
                vals = (fr.version, fr.group_id, fr.epoch, fr.transition_id, fr.stream_type,
                        fr.stream_id, fr.flags, fr.sequence_no, fr.payload_size, fr.payload,
                        fr.payload_format)
            _v, gid, epoch, tid, st, sid, flags, seq, psz, payload, pf = vals
            # this read's own (gid, epoch, st) → (group id hex, stream cipher or None) table;
            # anything unusual (no key, short payload, bad tag, odd group id) goes through
            # open_frame, which raises the typed error
            ck = (gid, epoch, st)
            c = ctx_get(ck)
            if c is None:
                if len(ctx) >= 4096:  # bounded: garbage group ids must not grow it
                    ctx.clear()
                c = ctx[ck] = (gid.hex(), _opener_of(keys, gid, epoch, st)
                               if decrypt and keys is not None else None)
            gh, try_open = c
            pt: Optional[bytes] = None
            err: Optional[str] = None
            if try_open is not None:
                pt = try_open(seq, payload)
            if pt is None and decrypt and keys is not None:
                pt, err, ke = _open_slow(_frame_of(vals), keys, it, add_error,
                                         done + len(frame_rows) // width)
                if ke is not None:
                    key_epochs[len(frame_rows) // width] = ke
            pv = None  # the payload's values, by the canonical matcher of the commonest payloads
            if pt is None:
                info = f"{name_of(st)} seq={seq} {psz}B encrypted"
            elif summarize:
                if pf == 0:
                    if st == 2:
                        pv = gtp_fast(pt)
                    elif st == 1:
                        pv = gap_fast(pt)
                if pv is not None:
                    info = gtp_line(gtp_info(pv)) if st == 2 else gap_line(gap_info(pv))
                else:
                    try:
                        info = summarize_pt(st, pt, pf)
                    except GbpLabError as exc:
                        info = (f"{name_of(st)} seq={seq} "
                                f"{len(pt)}B plaintext")
                        err = f"[{exc.vid}] plaintext does not decode: {exc.message}"
            else:
                info = f"{name_of(st)} seq={seq} {len(pt)}B plaintext"
            frames_extend((time, src, sport, dst, dport, gh, epoch, tid, st, sid, flags, seq,
                           psz, pf, pt is not None, info, err, flow_id, transport, offset,
                           packet))
            pts_append(pt)
            pls_append(payload)
            recs_append(data)
            vals_append(pv)
        elif (rc := classify(data)).kind.is_mls:  # which MLS structure: by parsing
            frames_extend((time, src, sport, dst, dport, None, None, None, None, None, None,
                           None, len(data), None, False, mls_info(rc, len(data)), None,
                           flow_id, transport, offset, packet))
            pts_append(None)
            pls_append(None)
            recs_append(data)
            vals_append(None)
        else:
            add_error(it, "decode", "REC-UNKNOWN",
                      f"record of {len(data)} bytes is neither a GBP frame nor an MLS message "
                      f"(starts {data[:8].hex()})")
            continue
        if len(frame_rows) == limit:
            yield ReadChunk(frame_rows, error_rows, plaintexts, payloads, records, key_epochs,
                            quic_flows, values)
            done += len(frame_rows) // width
            frame_rows, plaintexts, payloads, records, values = _long_lived_lists(5)
            error_rows = []
            key_epochs = {}
            frames_extend, pts_append = frame_rows.extend, plaintexts.append
            pls_append, recs_append = payloads.append, records.append
            vals_append = values.append

    reader = holder[0] if holder else None
    if reader is not None and len(reader.secrets) != seen_secrets:
        merge_secrets(pipe._last_time)  # blocks after the last record: for Capture.keylog
    if reader is not None:
        state.secrets = list(reader.secrets)
        state.interfaces = list(reader.interfaces)
    state.keys = keys
    if frame_rows or error_rows or chunksize is None:
        yield ReadChunk(frame_rows, error_rows, plaintexts, payloads, records, key_epochs,
                        quic_flows, values)



class _NoReader:
    """The packet source of an ``items`` read: no secrets blocks, no interfaces."""

    secrets: List[DecryptionSecrets] = []
    interfaces: List[Interface] = []


_NO_READER = _NoReader()


def errors_table(rows: List[tuple], t0=None) -> pd.DataFrame:
    """The ``errors`` table from :data:`ERROR_ROW` row tuples; ``rel_time``: seconds since
    ``t0`` (integer nanoseconds: the capture's first packet, :class:`~.records.PipelineStats`
    ``first_time``; ``None``: the table's first time)."""
    return with_rel_time(ERROR_ROW.frame(rows), t0)


def frames_table(cells: List[Any], key_epochs: Optional[Dict[int, int]] = None,
                 t0=None, quic_flows: Optional[Dict[int, tuple]] = None) -> pd.DataFrame:
    """The ``frames`` table from the read loop's flat cell list (:data:`FRAME_ROW` rows one
    after the other): one ``fromiter`` makes the 2-D object array; the columns that follow from a
    row's stream type, stream id and payload format are computed per column, not per row
    (``sender`` = stream id // 100 as ``sender_of``; MLS rows, without a stream type, get
    ``protocol`` "MLS" and missing values). ``key_epoch``: the epoch whose key opened the frame —
    its own epoch when decrypted, or the earlier one of ``key_epochs`` (row → epoch, a stale
    key: :func:`_open_slow`). ``time``: ``datetime64[ns, UTC]``; ``rel_time``: seconds since
    ``t0`` as in :func:`errors_table`. ``quic_connection``/``quic_stream``: from the row's
    ``flow_id`` by ``quic_flows`` (:attr:`~.records.RecordPipeline.quic_flows`), else missing."""
    cols = FRAME_ROW.columns_of_cells(cells)
    st, pf = cols["stream_type"], cols.pop("pf")
    framed = ~st.isna()
    sti = np.where(framed, st.to_numpy(dtype=np.int64, na_value=0), 0)
    pfi = pf.to_numpy(dtype=np.int64, na_value=0)
    missing = np.array(None, dtype=object)
    cols["stream_name"] = text_column(np.where(framed, _ST_NAMES[sti], missing))
    cols["protocol"] = text_column(np.where(framed, _PROTO_NAMES[sti], "MLS").astype(object))
    cols["codec"] = text_column(np.where(framed, _PF_NAMES[pfi], missing))
    cols["sender"] = cols["stream_id"] // STREAM_ID_STRIDE
    ke = cols["epoch"].copy()
    ke[~np.asarray(cols["decrypted"], dtype=bool)] = pd.NA
    for row, e in (key_epochs or {}).items():
        ke[row] = e
    cols["key_epoch"] = ke
    conn = np.full(len(ke), None, dtype=object)
    qsid = pd.arrays.IntegerArray(np.zeros(len(ke), dtype=np.int64), np.ones(len(ke), dtype=bool))
    if quic_flows:
        fids = cols["flow_id"]
        for i in np.flatnonzero(np.asarray(cols["transport"] == "quic", dtype=bool)):
            q = quic_flows.get(int(fids[i]))
            if q is not None:
                conn[i], qsid[i] = q
    cols["quic_connection"] = text_column(conn)
    cols["quic_stream"] = qsid
    return with_rel_time(pd.DataFrame(cols, columns=[c for c in FRAME_COLUMNS if c != "rel_time"]),
                         t0)
