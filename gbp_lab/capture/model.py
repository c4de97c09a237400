"""``read_capture``: a capture file → a :class:`Capture` with a ``frames`` and an ``errors`` table.

The data's way (architecture.md): records from :mod:`.records` → :func:`~gbp_lab.core.gbp.frame.
decode_frame` → :func:`~gbp_lab.core.gbp.aead.open_frame` with the key log → sub-protocol decode
(control / GAP / GTP / GSP with the frame's ``pf`` codec) → one flat row per record. The rows'
cells are collected in one flat list and turned into a DataFrame once, at the end (one 2-D
array, then typed columns: nullable integers, Arrow-backed ``str`` text).

Keys: ``keylog=`` (a :class:`~gbp_lab.core.keylog.KeyLog`, a path, or key-log text) merged with
the GBPK Decryption Secrets Blocks found in a pcapng (type 0x4742504B, see :mod:`.pcap`).

``frames`` has one row per GBP frame and per raw MLS message (KeyPackage / Commit / Welcome, the
blobs the reference sends with the same length prefix — ``protocol`` = ``"MLS"``). Its ``error``
column holds what went wrong *with that frame* (no key for its epoch, AEAD tag failure,
undecodable plaintext). ``errors`` has one row per defect: everything the record pipeline reports
(file, TCP, record framing), records that are neither a frame nor an MLS message, and AEAD
failures; ``kind`` says which layer found it; ``frame`` links an AEAD failure to its row.

On top of these, :class:`Capture` builds on first access (in bulk, cached): ``messages`` (GTP),
``audio`` (GAP + SFrame header), ``signals`` (GSP), ``control`` (with PREPARE's commit decrypted
when the key log allows), ``epochs`` (:mod:`.tables`) and ``findings``
(:mod:`gbp_lab.analysis.findings`); plus :meth:`Capture.summary`, a notebook view
(``_repr_html_``) and :meth:`Capture.to_parquet`. Streaming: :mod:`.stream`.

Hot path: decryption keeps this read's own ``(group, epoch, stream type) → AEAD`` table and only
goes through :func:`~gbp_lab.core.gbp.aead.open_frame` for the unusual cases (no key, bad tag …),
which raise the typed errors; frames and CBOR payloads in the canonical form every sender writes
are read by exact-shape matchers (:data:`~gbp_lab.core.gbp.frame.FRAME_MATCHERS`,
:func:`~gbp_lab.core.payload_codec.cbor_values_matcher`) without building objects, everything
else by the full decoders. ``python benchmarks/capture_bench.py`` prints the speed against scapy and a raw loop.
"""
from __future__ import annotations

import gc
import os
from itertools import chain
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import numpy as np
import pandas as pd

from cryptography.exceptions import InvalidTag

from gbp_lab.core.errors import (DecodeError, DecryptError, GbpLabError, KeyLogError,
                                  MissingKeyError)
from gbp_lab.core.gap.payload import GapPayload
from gbp_lab.core.gbp.aead import _aead_for, open_frame
from gbp_lab.core.gbp.control import decode_control
from gbp_lab.core.gbp.frame import FRAME_MATCHERS, GbpFrame, decode_frame
from gbp_lab.core.gbp.registry import STREAM_ID_STRIDE, ControlOpcode, PayloadCodec, StreamType
from gbp_lab.core.gsp.signal import GspSignal, SignalType
from gbp_lab.core.gtp.message import GtpMessage
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.payload_codec import cbor_values_matcher
from gbp_lab.core.payload_codec import decode as pc_decode

from .columns import columns_of_tuples, frame_of_rows, text_column, typed_columns
from .pcap import DecryptionSecrets, Interface
from .records import GBP_PORT, PipelineStats, RecordPipeline, iter_item_batches

__all__ = ["Capture", "read_capture", "FRAME_COLUMNS", "ERROR_COLUMNS"]

FRAME_COLUMNS = ["time", "src", "sport", "dst", "dport", "group_id", "epoch", "transition_id",
                 "stream_type", "stream_name", "stream_id", "sender", "flags", "sequence_no",
                 "payload_size", "codec", "decrypted", "protocol", "info", "error",
                 # beyond the list in the brief: where the row came from
                 "flow_id", "transport", "offset", "packet"]
ERROR_COLUMNS = ["time", "src", "sport", "dst", "dport", "flow_id", "transport", "offset",
                 "packet", "kind", "vid", "error",
                 # the ``frames`` row the defect belongs to (AEAD failures), else missing
                 "frame"]

#: what the read loop writes per frame row; the other FRAME_COLUMNS (``stream_name``,
#: ``sender``, ``codec``, ``protocol``) are derived in bulk by :func:`_frames_table`
_ROW_COLUMNS = ["time", "src", "sport", "dst", "dport", "group_id", "epoch", "transition_id",
                "stream_type", "stream_id", "flags", "sequence_no", "payload_size", "pf",
                "decrypted", "info", "error", "flow_id", "transport", "offset", "packet"]
_STREAM_NAMES = {0: "control", 1: "audio", 2: "text", 3: "signal"}
_PROTOCOLS = {0: "GBP", 1: "GAP", 2: "GTP", 3: "GSP"}
_CODEC_NAMES = {c.value: c.name for c in PayloadCodec}
#: stream type / payload format (both u8 on the wire) -> its name, for the derived columns
_ST_NAMES = np.array([_STREAM_NAMES.get(i) or f"unknown({i})" for i in range(256)], dtype=object)
_PROTO_NAMES = np.array([_PROTOCOLS.get(i, "GBP") for i in range(256)], dtype=object)
_PF_NAMES = np.array([_CODEC_NAMES.get(i) or f"CBOR(pf={i})" for i in range(256)], dtype=object)
_MLS_WIRE = {1: "KeyPackage", 2: "MLSMessage (PrivateMessage)", 3: "Welcome",
             4: "GroupInfo", 5: "KeyPackage (MLSMessage)"}
_INT_COLUMNS = {"pf": "Int64", "frame": "Int64", "sport": "Int64", "dport": "Int64", "transition_id": "Int64",
                "stream_type": "Int64", "stream_id": "Int64", "sender": "Int64", "flags": "Int64",
                "sequence_no": "Int64", "payload_size": "Int64", "flow_id": "Int64",
                "offset": "Int64", "packet": "Int64", "epoch": "UInt64"}
_FLOATS, _BOOLS = ("time",), ("decrypted",)


@dataclass
class Capture:
    """A read capture: the ``frames`` and ``errors`` tables plus what was learnt on the way.

    Derived tables, built in bulk on first access and cached (:mod:`.tables`,
    :mod:`gbp_lab.analysis`): :attr:`messages` (GTP), :attr:`audio` (GAP), :attr:`signals` (GSP),
    :attr:`control` (GBP control, PREPARE's commit decrypted when the key log allows),
    :attr:`epochs` (timeline) and :attr:`findings` (security/robustness findings). Each has
    ``time`` and ``frame`` columns (``frame`` = index into :attr:`frames`).
    """

    frames: pd.DataFrame
    errors: pd.DataFrame
    plaintexts: List[Optional[bytes]]  #: decrypted payload per ``frames`` row (None if not)
    keylog: Optional[KeyLog]
    secrets: List[DecryptionSecrets] = field(default_factory=list)
    interfaces: List[Interface] = field(default_factory=list)
    stats: Optional[PipelineStats] = None
    source: Optional[str] = None
    payloads: List[Optional[bytes]] = field(default_factory=list)  #: frame ``pl`` per row
    _cache: Dict[str, pd.DataFrame] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        return (f"Capture({self.source!r}: {len(self.frames)} frames, {len(self.errors)} errors, "
                f"{int(self.frames['decrypted'].sum()) if len(self.frames) else 0} decrypted)")

    # -- derived tables (lazy) -----------------------------------------------------------------
    def _get(self, name: str, build) -> pd.DataFrame:
        df = self._cache.get(name)
        if df is None:
            df = self._cache[name] = build()
        return df

    @property
    def messages(self) -> pd.DataFrame:
        """GTP text messages (see :func:`.tables.build_messages`)."""
        from . import tables
        return self._get("messages", lambda: tables.build_messages(self.frames, self.plaintexts))

    @property
    def audio(self) -> pd.DataFrame:
        """GAP audio payloads with SFrame header fields (see :func:`.tables.build_audio`)."""
        from . import tables
        return self._get("audio", lambda: tables.build_audio(self.frames, self.plaintexts))

    @property
    def signals(self) -> pd.DataFrame:
        """GSP signals with decoded args (see :func:`.tables.build_signals`)."""
        from . import tables
        return self._get("signals", lambda: tables.build_signals(self.frames, self.plaintexts))

    @property
    def control(self) -> pd.DataFrame:
        """GBP control messages (see :func:`.tables.build_control`)."""
        from . import tables
        return self._get("control", lambda: tables.build_control(self.frames, self.plaintexts,
                                                                 self.keylog))

    @property
    def epochs(self) -> pd.DataFrame:
        """Epoch timeline (see :func:`.tables.build_epochs`)."""
        from . import tables
        return self._get("epochs", lambda: tables.build_epochs(self.frames))

    @property
    def findings(self) -> pd.DataFrame:
        """Findings (nonce reuse, replays, …; kinds in :data:`gbp_lab.analysis.findings.KINDS`)."""
        from gbp_lab.analysis.findings import find
        return self._get("findings", lambda: find(self))

    TABLES = ("frames", "errors", "messages", "audio", "signals", "control", "epochs", "findings")

    # -- presentation ----------------------------------------------------------------------------
    def summary(self) -> str:
        """A text summary: counts per protocol / stream / epoch, members, findings."""
        f = self.frames
        lines = [f"capture {self.source or '<memory>'}: {len(f)} frames "
                 f"({int(f['decrypted'].sum()) if len(f) else 0} decrypted), "
                 f"{len(self.errors)} errors"]
        if self.stats is not None:
            st = self.stats
            lines.append(f"  packets {st.packets}, records {st.records}, flows {st.flows} "
                         f"(GBP {st.gbp_flows}), TCP gaps {st.gaps}")
        if len(f):
            lines.append("  per protocol: " + ", ".join(
                f"{k} {v}" for k, v in f["protocol"].value_counts().sort_index().items()))
            gbp = f[f["stream_name"].notna()]
            if len(gbp):
                lines.append("  per stream: " + ", ".join(
                    f"{k} {v}" for k, v in gbp["stream_name"].value_counts().sort_index().items()))
        ep = self.epochs
        for r in ep.itertuples(index=False):
            lines.append(f"  epoch {r.epoch} (group {str(r.group_id)[:8]}…, tid {r.transition_id}): "
                         f"{r.frames} frames, {r.decrypted} decrypted, members {list(r.members)}, "
                         f"{r.first_time:.3f} … {r.last_time:.3f}")
        members = sorted({int(x) for x in f["sender"].dropna()}) if len(f) else []
        lines.append(f"  members seen: {members}")
        fi = self.findings
        if len(fi):
            lines.append(f"  findings: {len(fi)} — " + ", ".join(
                f"{k} {v}" for k, v in fi["kind"].value_counts().sort_index().items()))
        else:
            lines.append("  findings: none")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        from gbp_lab.analysis.findings import SEVERITY

        parts = [f"<pre>{html.escape(self.summary())}</pre>"]
        fi = self.findings
        if len(fi):
            def style(row):
                sev = SEVERITY.get(row["kind"], "info")
                color = {"high": "#f8d7da", "medium": "#fff3cd"}.get(sev, "#e2e3e5")
                return [f"background-color: {color}"] * len(row)

            shown = fi.drop(columns=[c for c in ("xor",) if c in fi.columns]).head(50)
            try:
                parts.append("<h4>Findings</h4>" + shown.style.apply(style, axis=1).to_html())
            except Exception:  # jinja2 missing: plain table
                parts.append("<h4>Findings</h4>" + shown.to_html())
        parts.append("<h4>Frames (head)</h4>" + self.frames.head(20).to_html())
        return "\n".join(parts)

    def to_parquet(self, directory) -> Dict[str, str]:
        """Write every table to ``directory/<table>.parquet`` (object columns made parquet-safe:
        bytes as hex text, lists/dicts as JSON text). Returns ``{table: path}``."""
        os.makedirs(directory, exist_ok=True)
        out = {}
        for name in self.TABLES:
            df = getattr(self, name)
            path = os.path.join(str(directory), f"{name}.parquet")
            _parquet_safe(df).to_parquet(path, index=True)
            out[name] = path
        return out


def _json_safe(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_json_safe(x) for x in v]
    return v


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns → one Arrow type each: str, bytes→hex, containers→JSON text."""
    import json

    out = df.copy()
    for c in out.columns:
        if out[c].dtype != object:
            continue
        vals = out[c].tolist()
        kinds = {type(v) for v in vals if v is not None and v is not pd.NA}
        if kinds <= {str}:
            continue
        conv = []
        for v in vals:
            if v is None or v is pd.NA:
                conv.append(None)
            elif isinstance(v, str):
                conv.append(v)
            elif isinstance(v, (bytes, bytearray, memoryview)):
                conv.append(bytes(v).hex())
            elif isinstance(v, (dict, list, tuple, set, frozenset)):
                conv.append(json.dumps(_json_safe(v), sort_keys=True, default=str))
            else:
                conv.append(str(v))
        out[c] = pd.array(conv, dtype=object)
    return out


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


_chain = chain.from_iterable


def _attrs(cls) -> tuple:
    return tuple(f.attr for f in cls.SCHEMA.fields)


#: payload class -> (canonical-CBOR values matcher, attribute names), see :func:`_fields`
_FAST = {cls: (cbor_values_matcher(cls.SCHEMA), _attrs(cls))
         for cls in (GtpMessage, GapPayload, GspSignal)}


def _fields(cls, pt: bytes, codec: int) -> Dict[str, Any]:
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


#: what the GTP Info line shows; the matcher checks the whole message but converts only these
_GTP_INFO = ("message_id", "sender_id", "content_type", "content")
_GTP_FAST = cbor_values_matcher(GtpMessage.SCHEMA, _GTP_INFO)


def _gtp_line(vals) -> str:
    """The Info line of a GTP message from its :data:`_GTP_INFO` values."""
    mid, sender, ct, content = vals
    try:
        body = repr(content[:200].decode("utf-8")[:60])
    except UnicodeDecodeError:
        body = f"{len(content)}B binary"
    return f"GTP mid={mid} from={sender} ct={ct} {body}"


def _summary(st: int, pt: bytes, codec: int) -> str:
    """One line describing a decrypted payload (raises DecodeError for bad plaintext)."""
    if st == _TEXT:  # the common case first; plain ints (no IntEnum comparison)
        vals = _GTP_FAST(pt) if codec != 1 and codec != 2 and type(pt) is bytes else None
        if vals is None:
            g = _fields(GtpMessage, pt, codec)
            vals = [g[a] for a in _GTP_INFO]
        return _gtp_line(vals)
    if st == _CONTROL:
        m = decode_control(pt)
        try:
            name = ControlOpcode(m.opcode).name
        except ValueError:
            name = f"opcode 0x{m.opcode:04x}"
        return f"{name} tid={m.transition_id} rid={m.request_id} from={m.sender_id} args={m.args_length}B"
    if st == _AUDIO:
        a = _fields(GapPayload, pt, codec)
        return (f"GAP msid={a['media_source_id']} seq={a['rtp_sequence']} ts={a['rtp_timestamp']} "
                f"kp={a['key_phase']} opus={len(a['opus_frame'])}B")
    if st == _SIGNAL:
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
    state = _ReadState()
    frame_cells: List[Any] = []
    error_rows: List[tuple] = []
    plaintexts: List[Optional[bytes]] = []
    payloads: List[Optional[bytes]] = []
    for fr, er, pt, pl in _read_chunks(path, keylog, state, ports=ports, heuristic=heuristic,
                                       decrypt=decrypt, summarize=summarize, chunksize=None,
                                       **pipeline_kw):
        frame_cells, error_rows, plaintexts, payloads = fr, er, pt, pl
    return Capture(_frames_table(frame_cells), _frame(error_rows, ERROR_COLUMNS),
                   plaintexts, state.keys, state.secrets, state.interfaces, state.stats,
                   str(path) if isinstance(path, (str, os.PathLike)) else None, payloads)


def _aead_of(keys: KeyLog, gid: bytes, epoch: int, st: int) -> Any:
    """The stream AEAD of a frame if the key log has its epoch (16-byte group id, known stream
    type); ``None`` sends the frame to :func:`open_frame` (which raises the right error)."""
    if len(gid) != 16 or not 0 <= st <= 3:
        return None
    secret = keys.exporter_secret(gid, epoch)
    if secret is None:
        return None
    try:
        return _aead_for(secret, st, keys.suite(gid))
    except GbpLabError:
        return None


def _frame_of(vals: tuple) -> GbpFrame:
    """A :class:`GbpFrame` from its :func:`~gbp_lab.core.gbp.frame.frame_values` (for the slow
    paths that want the object)."""
    return GbpFrame(*vals)


def _open_slow(fr, keys: KeyLog, it, add_error, row: int) -> tuple:
    """:func:`open_frame` with its typed errors turned into ``(plaintext, error text)``; a tag
    failure is also an ``errors`` row (kind ``decrypt``)."""
    try:
        return open_frame(fr, keys), None
    except MissingKeyError as exc:
        return None, f"[{exc.vid}] {exc.message}"
    except DecryptError as exc:
        add_error(it, "decrypt", exc.vid, f"frame seq={fr.sequence_no} st={fr.stream_type} "
                                          f"epoch={fr.epoch}: {exc.message}", row)
        return None, f"[{exc.vid}] {exc.message}"
    except GbpLabError as exc:
        return None, f"[{exc.vid}] {exc.message}"


def _nonce(seq: int, cache: Dict[int, bytes]) -> bytes:
    """``seq`` as u32 big-endian ‖ 8 zero bytes (reference-map §5), cached for the first 64 Ki
    sequence numbers (bounded: streaming reads must not grow with the capture)."""
    n = seq.to_bytes(4, "big") + b"\0" * 8
    if len(cache) < 65536:
        cache[seq] = n
    return n


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


class _ReadState:
    """What a read learnt besides the rows (filled while :func:`_read_chunks` runs)."""

    __slots__ = ("keys", "secrets", "interfaces", "stats")

    def __init__(self) -> None:
        self.keys: Optional[KeyLog] = None
        self.secrets: List[DecryptionSecrets] = []
        self.interfaces: List[Interface] = []
        self.stats: Optional[PipelineStats] = None


def _read_chunks(path, keylog, state: _ReadState, *, ports=(GBP_PORT,), heuristic: bool = True,
                 decrypt: bool = True, summarize: bool = True, chunksize: Optional[int] = None,
                 on_raw=None, **pipeline_kw):
    """The reading loop: yield ``(frame_cells, error_rows, plaintexts, payloads)`` lists, a new set
    whenever ``chunksize`` frame rows are collected (``None``: once, at the end). ``frame_cells``
    holds the frame rows' cells one after the other (:data:`_ROW_COLUMNS` order, see
    :func:`_frames_table`); ``state`` gets the key log, secrets, interfaces and stats as they
    become known."""
    keys = _load_keylog(keylog)
    state.keys = keys
    pipe = RecordPipeline(ports=ports, heuristic=heuristic, **pipeline_kw)
    state.stats = pipe.stats
    holder: list = []
    # the frame rows' cells in one flat list (``extend`` with each row): no tracked tuple per
    # row for the cyclic collector to walk, and one C call turns it into a 2-D array at the end
    frame_rows, plaintexts, payloads = _long_lived_lists(3)
    error_rows: List[tuple] = []
    seen_secrets = 0
    width = len(_ROW_COLUMNS)
    limit = chunksize * width if chunksize else -1
    ctx: Dict[tuple, tuple] = {}  # (gid, epoch, st) -> (gid hex, ChaCha20Poly1305 or None)
    nonces: Dict[int, bytes] = {}

    done = 0  # frame rows already handed out in earlier chunks

    def add_error(it: tuple, kind: str, vid: str, text: str, frame: Optional[int] = None) -> None:
        """``it``: an item tuple (:class:`~.records.RecordItem` field order)."""
        error_rows.append(it[:8] + (it[11], kind, vid, text, frame))

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
    stream_names = _STREAM_NAMES
    gtp_fast, gtp_line = _GTP_FAST, _gtp_line
    ctx_get = ctx.get
    summary, decode, nonces_get = _summary, decode_frame, nonces.get
    matcher_for = FRAME_MATCHERS.get
    for it in _chain(iter_item_batches(path, reader_out=holder, pipeline=pipe, on_raw=on_raw)):
        if len(holder[0].secrets) != seen_secrets:  # a DSB was read: its keys apply from here
            merge_secrets(it[0])
        (time, src, sport, dst, dport, flow_id, transport, offset, data, error, vid,
         packet) = it
        if error is not None:
            kind = ("capture" if vid.startswith(("CAP-", "IP-")) else
                    "tcp" if vid.startswith("TCP-") else
                    "udp" if vid.startswith("UDP-") else "record")
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
            # this read's own (gid, epoch, st) → (group id hex, stream AEAD or None) table;
            # anything unusual (no key, short payload, bad tag, odd group id) goes through
            # open_frame, which raises the typed error
            ck = (gid, epoch, st)
            c = ctx_get(ck)
            if c is None:
                if len(ctx) >= 4096:  # bounded: garbage group ids must not grow it
                    ctx.clear()
                c = ctx[ck] = (gid.hex(), _aead_of(keys, gid, epoch, st)
                               if decrypt and keys is not None else None)
            gh, aead = c
            pt: Optional[bytes] = None
            err: Optional[str] = None
            if aead is not None and len(payload) >= 16:
                try:
                    pt = aead.decrypt(nonces_get(seq) or _nonce(seq, nonces), payload, None)
                except InvalidTag:
                    pt = None
            if pt is None and decrypt and keys is not None:
                pt, err = _open_slow(_frame_of(vals), keys, it, add_error,
                                     done + len(frame_rows) // width)
            if pt is None:
                info = f"{stream_names.get(st) or f'unknown({st})'} seq={seq} {psz}B encrypted"
            elif summarize:
                gtp = gtp_fast(pt) if st == 2 and pf == 0 else None  # the commonest payload
                if gtp is not None:
                    info = gtp_line(gtp)
                else:
                    try:
                        info = summary(st, pt, pf)
                    except GbpLabError as exc:
                        info = (f"{stream_names.get(st) or f'unknown({st})'} seq={seq} "
                                f"{len(pt)}B plaintext")
                        err = f"[{exc.vid}] plaintext does not decode: {exc.message}"
            else:
                info = f"{stream_names.get(st) or f'unknown({st})'} seq={seq} {len(pt)}B plaintext"
            frames_extend((time, src, sport, dst, dport, gh, epoch, tid, st, sid, flags, seq,
                           psz, pf, pt is not None, info, err, flow_id, transport, offset,
                           packet))
            pts_append(pt)
            pls_append(payload)
        elif len(data) >= 4 and data[0] == 0 and data[1] == 1 and data[2] == 0:
            what = _MLS_WIRE.get(data[3], f"MLS wire format {data[3]}")
            frames_extend((time, src, sport, dst, dport, None, None, None, None, None, None,
                           None, len(data), None, False, f"{what} ({len(data)}B)", None,
                           flow_id, transport, offset, packet))
            pts_append(None)
            pls_append(None)
        else:
            add_error(it, "decode", "REC-UNKNOWN",
                      f"record of {len(data)} bytes is neither a GBP frame nor an MLS message "
                      f"(starts {data[:8].hex()})")
            continue
        if len(frame_rows) == limit:
            yield frame_rows, error_rows, plaintexts, payloads
            done += len(frame_rows) // width
            frame_rows, plaintexts, payloads = _long_lived_lists(3)
            error_rows = []
            frames_extend, pts_append = frame_rows.extend, plaintexts.append
            pls_append = payloads.append

    reader = holder[0] if holder else None
    if reader is not None and len(reader.secrets) != seen_secrets:
        merge_secrets(pipe._last_time)  # blocks after the last record: for Capture.keylog
    if reader is not None:
        state.secrets = list(reader.secrets)
        state.interfaces = list(reader.interfaces)
    state.keys = keys
    if frame_rows or error_rows or chunksize is None:
        yield frame_rows, error_rows, plaintexts, payloads


def _frame(rows: List[tuple], order: List[str]) -> pd.DataFrame:
    """Row tuples → DataFrame (:func:`.columns.frame_of_rows`)."""
    return frame_of_rows(rows, order, _INT_COLUMNS, _FLOATS, _BOOLS)


def _frames_table(cells: List[Any]) -> pd.DataFrame:
    """The ``frames`` table from the read loop's flat cell list (rows of :data:`_ROW_COLUMNS`
    one after the other): one ``fromiter`` makes the 2-D object array; the columns that follow
    from a row's stream type, stream id and payload format are computed per column, not per row
    (``sender`` = stream id // 100 as ``sender_of``; MLS rows, without a stream type, get
    ``protocol`` "MLS" and missing values)."""
    if cells:
        table = np.fromiter(cells, dtype=object, count=len(cells))
        cols = typed_columns(table.reshape(-1, len(_ROW_COLUMNS)), _ROW_COLUMNS, _INT_COLUMNS,
                             _FLOATS, _BOOLS)
    else:
        cols = columns_of_tuples([], _ROW_COLUMNS, _INT_COLUMNS, _FLOATS, _BOOLS)
    st, pf = cols["stream_type"], cols.pop("pf")
    framed = ~st.isna()
    sti = np.where(framed, st.to_numpy(dtype=np.int64, na_value=0), 0)
    pfi = pf.to_numpy(dtype=np.int64, na_value=0)
    missing = np.array(None, dtype=object)
    cols["stream_name"] = text_column(np.where(framed, _ST_NAMES[sti], missing))
    cols["protocol"] = text_column(np.where(framed, _PROTO_NAMES[sti], "MLS").astype(object))
    cols["codec"] = text_column(np.where(framed, _PF_NAMES[pfi], missing))
    cols["sender"] = cols["stream_id"] // STREAM_ID_STRIDE
    return pd.DataFrame(cols, columns=FRAME_COLUMNS)
