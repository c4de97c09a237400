"""View-models of the lab's widgets: plain Python, no ipywidgets, fully unit-testable.

* :class:`EpochStepper` — step through the MLS epochs (RFC 9420 §8) of live
  :class:`~gbp_lab.core.mls.context.MlsContext` objects (their ``history``) or of a capture with
  its key log: ratchet tree (§7), members, key schedule (§8, hidden until :attr:`reveal`), the
  commit that led there (§12.4) and the traffic of the epoch.
* :class:`FrameInspector` — a Wireshark-like frame list with a text filter and a pandas query,
  the protocol tree of the selected frame (every layer, decrypted ones included) and the byte
  range of the selected field for the hex dump.
* :class:`FlowLadder` — the sequence diagram of members and the delivery service.

Each model has ``observe(callback)``: the callback runs (with the model) after every change, which
is how the thin views of :mod:`.views` re-render.

What a capture can tell: its key log holds four secrets per epoch (exporter, sender data,
encryption, epoch secret — :mod:`gbp_lab.core.keylog`), never the ratchet tree; the stepper shows
what is known and lists what is not in :attr:`EpochView.unknown`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields as dc_fields
from types import MappingProxyType
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import pandas as pd

from gbp_lab.core.cbor import Reader as CborReader
from gbp_lab.core.errors import DecodeError, GbpLabError, UsageError
from gbp_lab.core.gbp.control import decode_control
from gbp_lab.core.gbp.registry import ControlOpcode, PayloadCodec, StreamType
from gbp_lab.core.mls.schedule import EpochSecrets

from . import render

__all__ = [
    "WidgetError", "FieldNode", "cbor_fields", "frame_protocol_tree", "EpochKey", "EpochView",
    "EpochStepper", "TreeRecorder", "FrameInspector", "FlowLadder", "Arrow", "Lane", "EpochBand",
    "TRAFFIC_COLUMNS",
]


class WidgetError(UsageError):
    """Misuse of a widget model (bad index, bad filter, nothing selected)."""

    default_vid = "LAB-WIDGET"


class _Observable:
    def __init__(self) -> None:
        self._observers: List[Callable[[Any], None]] = []

    def observe(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(model)`` after every change."""
        self._observers.append(callback)

    def _changed(self) -> None:
        for cb in list(self._observers):
            cb(self)


# =============================================================================================
# protocol trees with byte offsets
# =============================================================================================

@dataclass(frozen=True)
class FieldNode:
    """One node of a protocol tree: a layer (with children) or a field.

    ``start``/``end`` (end exclusive) locate the field's CBOR value item in the buffer named
    ``buffer`` (``"frame"``: the frame record, ``"plaintext"``: the decrypted payload); ``None``
    when the codec has no byte positions to offer (Protobuf/FlatBuffers payloads, scapy-only
    fields). ``raw`` is the decoded value."""

    name: str
    value: Any = None
    start: Optional[int] = None
    end: Optional[int] = None
    buffer: Optional[str] = None
    children: Tuple["FieldNode", ...] = ()
    raw: Any = field(default=None, compare=False, repr=False)
    label: Optional[str] = None  #: a readable name for a wire key ("seq" → "sequence no")


def _pretty(v: Any) -> str:
    if isinstance(v, (bytes, bytearray)):
        b = bytes(v)
        return b.hex() if len(b) <= 24 else f"{b[:24].hex()}… ({len(b)} bytes)"
    return str(v)


def cbor_fields(data: bytes, *, base: int = 0,
                context: str = "cbor") -> List[Tuple[Any, Any, int, int]]:
    """``(key, value, start, end)`` for each entry of the CBOR map at the start of ``data``:
    ``data[start - base:end - base]`` is the value's whole CBOR item (head and body), so it
    decodes back to ``value``. Uses the core's bounded CBOR reader (:mod:`gbp_lab.core.cbor`),
    whose ``pos`` gives the offsets; a malformed map raises its :class:`DecodeError`."""
    r = CborReader(bytes(data), context=context, vid_prefix="LAB-WIDGET-CBOR")
    major, _ai, n, _tags = r.head_skip_tags()
    if major != 5:
        raise DecodeError(f"{context}: not a CBOR map (major type {major})",
                          vid="LAB-WIDGET-CBOR-NOT-MAP", where=0)
    out = []
    count = 0
    while r.more(n, count):
        k = r.item(1)
        s = r.pos
        v = r.item(1)
        out.append((k, v, base + s, base + r.pos))
        count += 1
    return out


def _core_layer(name: str, data: bytes, buffer: str, labels: Mapping[str, str] = {}) -> FieldNode:
    """A layer from a CBOR map with offsets (keys shown as in the wire, with a readable label)."""
    kids = []
    for k, v, s, e in cbor_fields(data, context=name):
        kids.append(FieldNode(str(k), _pretty(v), s, e, buffer, (), v,
                              labels.get(k) if isinstance(k, str) else None))
    return FieldNode(name, f"{len(data)} bytes", 0, len(data), buffer, tuple(kids))


_FRAME_LABELS = {"v": "version", "gid": "group id", "ep": "epoch", "tid": "transition id",
                 "st": "stream type", "sid": "stream id", "fl": "flags", "seq": "sequence no",
                 "psz": "payload size", "pl": "payload (ciphertext ‖ tag)", "pf": "payload codec"}
_PAYLOAD_CLASSES = None


def _payload_classes():
    global _PAYLOAD_CLASSES
    if _PAYLOAD_CLASSES is None:
        from gbp_lab.core.gap.payload import GapPayload
        from gbp_lab.core.gsp.signal import GspSignal
        from gbp_lab.core.gtp.message import GtpMessage

        _PAYLOAD_CLASSES = {int(StreamType.TEXT): ("GTP Message", GtpMessage),
                            int(StreamType.AUDIO): ("GAP Payload", GapPayload),
                            int(StreamType.SIGNAL): ("GSP Signal", GspSignal)}
    return _PAYLOAD_CLASSES


def _core_tree(data: bytes, plaintext: Optional[bytes]) -> List[FieldNode]:
    """The protocol tree from the core decoders only (fallback when the dissectors are not
    importable): the frame map, then the decrypted payload."""
    from gbp_lab.core.gbp.frame import decode_frame

    try:
        layers = [_core_layer("GBP Frame", data, "frame", _FRAME_LABELS)]
        fr = decode_frame(data, strict=False)
    except GbpLabError as exc:
        return [FieldNode("GBP Frame (does not decode)", f"[{exc.vid}] {exc.message}", 0,
                          len(data), "frame")]
    if plaintext is None:
        return layers
    try:
        layers.extend(_plaintext_layers(fr.stream_type, fr.payload_format, plaintext))
    except GbpLabError as exc:
        layers.append(FieldNode("plaintext (does not decode)", f"[{exc.vid}] {exc.message}", 0,
                                len(plaintext), "plaintext"))
    return layers


def _plaintext_layers(st: int, pf: int, pt: bytes) -> List[FieldNode]:
    codec = PayloadCodec.for_wire(pf)
    if st == StreamType.CONTROL:
        m = decode_control(pt)
        op = m.op.name if m.op is not None else f"0x{m.opcode:04x}"
        layer = _core_layer(f"GBP Control ({op})", pt, "plaintext")
        kids = list(layer.children)
        if m.opcode == ControlOpcode.PREPARE_TRANSITION and m.args:
            kids.append(FieldNode("args → MLSMessage", _mls_summary(m.args)))
        return [FieldNode(layer.name, layer.value, layer.start, layer.end, layer.buffer, tuple(kids))]
    classes = _payload_classes()
    if st not in classes:
        return [FieldNode("payload", _pretty(pt), 0, len(pt), "plaintext", (), pt)]
    name, cls = classes[st]
    if codec is PayloadCodec.CBOR:
        layer = _core_layer(name, pt, "plaintext")
        if st == StreamType.SIGNAL:  # GSP args: an integer-keyed CBOR map inside the bstr
            kids = list(layer.children)
            for i, k in enumerate(kids):
                if k.name == "args" and k.raw:
                    body = k.end - len(k.raw)
                    try:
                        sub = [FieldNode(str(a), _pretty(b), s, e, "plaintext", (), b)
                               for a, b, s, e in cbor_fields(k.raw, base=body, context="GSP args")]
                    except GbpLabError:
                        sub = []
                    kids[i] = FieldNode(k.name, k.value, k.start, k.end, k.buffer, tuple(sub), k.raw)
            layer = FieldNode(layer.name, layer.value, layer.start, layer.end, layer.buffer, tuple(kids))
        return [layer]
    from gbp_lab.core.payload_codec import decode as pc_decode

    msg = pc_decode(cls, pt, codec)
    kids = tuple(FieldNode(f.key, _pretty(getattr(msg, f.attr)), None, None, None, (),
                           getattr(msg, f.attr)) for f in cls.SCHEMA.fields)
    return [FieldNode(f"{name} ({codec.name})", f"{len(pt)} bytes", 0, len(pt), "plaintext", kids)]


def _mls_summary(data: bytes) -> str:
    if len(data) >= 4 and data[:2] == b"\x00\x01":
        wf = int.from_bytes(data[2:4], "big")
        names = {1: "PublicMessage", 2: "PrivateMessage", 3: "Welcome", 4: "GroupInfo",
                 5: "KeyPackage"}
        return f"{names.get(wf, f'wire format {wf}')} ({len(data)} bytes)"
    return f"{len(data)} bytes"


#: GspArgs layer fields by integer key of the args map (reference-map §3)
_GSP_ARG_FIELDS = {0: ("target_member_id", "stream_type", "codec_id"), 1: ("new_role",)}


def _scapy_tree(data: bytes, plaintext: Optional[bytes], keylog: Any) -> List[FieldNode]:
    """The protocol tree from the scapy dissectors (:mod:`gbp_lab.dissectors`), with byte offsets
    taken from the CBOR maps of the frame and of a CBOR plaintext (scapy field names are the wire
    keys)."""
    import gbp_lab.dissectors as d
    from gbp_lab.dissectors.keystore import keylog_in_use

    with keylog_in_use(keylog):
        pkt = d.GbpFrame(bytes(data))
    offsets: Dict[Tuple[int, str], Tuple[int, int, str]] = {}
    for k, _v, s, e in cbor_fields(data):
        offsets[(0, str(k))] = (s, e, "frame")
    if plaintext is not None:
        try:
            for k, v, s, e in cbor_fields(plaintext):
                offsets[(1, str(k))] = (s, e, "plaintext")
                if k == "args" and isinstance(v, bytes) and v:
                    # GSP args: {0: target / stream type / codec id, 1: new role} (gsp_rfc §6)
                    for ak, _av, a_s, a_e in cbor_fields(v, base=e - len(v), context="GSP args"):
                        names = _GSP_ARG_FIELDS.get(ak, ())
                        for n in names:
                            offsets[(2, n)] = (a_s, a_e, "plaintext")
        except GbpLabError:
            pass  # not CBOR (Protobuf/FlatBuffers) or odd args: no positions
    totals = {0: ("frame", len(data))}
    if plaintext is not None:
        totals[1] = ("plaintext", len(plaintext))
    return _layer_nodes(pkt, offsets, totals, _FRAME_LABELS)


def _layer_nodes(pkt: Any, offsets: Mapping[Tuple[int, str], Tuple[int, int, str]],
                 totals: Mapping[int, Tuple[str, int]],
                 labels0: Mapping[str, str] = {}) -> List[FieldNode]:
    """One :class:`FieldNode` per scapy layer of ``pkt`` with its set fields; ``offsets`` maps
    (layer depth, field name) to a byte range, ``totals`` a depth to its whole buffer."""
    layers = []
    layer = pkt
    depth = 0
    while layer is not None and layer.__class__.__name__ != "NoPayload":
        kids = []
        for f in layer.fields_desc:
            try:
                val = layer.getfieldval(f.name)
            except Exception:  # noqa: BLE001 - scapy raises arbitrary errors on odd fields
                continue
            if val is None:
                continue
            if isinstance(val, (bytes, bytearray)):
                shown = _pretty(val)
            else:
                try:
                    shown = f.i2repr(layer, val)
                except Exception:  # noqa: BLE001 - scapy field reprs may fail on odd values
                    shown = repr(val)
            s, e, buf = offsets.get((depth, f.name), (None, None, None))
            kids.append(FieldNode(f.name, shown, s, e, buf, (), val,
                                  labels0.get(f.name) if depth == 0 else None))
        buf_all, total = totals.get(depth, (None, None))
        layers.append(FieldNode(layer.name, f"{total} bytes" if total is not None else "",
                                0 if total is not None else None, total, buf_all, tuple(kids)))
        layer = layer.payload if layer.payload else None
        depth += 1
    return layers


def frame_protocol_tree(data: bytes, plaintext: Optional[bytes] = None, keylog: Any = None,
                        *, use_dissectors: bool = True) -> List[FieldNode]:
    """Every layer of one GBP frame record: the scapy dissection (:mod:`gbp_lab.dissectors`,
    with ``keylog`` for the decrypted layers) when importable, else the core decoders with the
    already decrypted ``plaintext``. Fields carry byte ranges wherever the encoding is CBOR."""
    if use_dissectors:
        try:
            layers = _scapy_tree(data, plaintext, keylog)
            if plaintext is None or (len(layers) > 1 and layers[1].name != "Raw"):
                return layers  # (else scapy could not open what the capture reader did)
        except Exception:  # noqa: BLE001 - optional layer (ImportError, scapy quirks): fall back
            pass
    return _core_tree(data, plaintext)


def _mls_tree(data: bytes) -> List[FieldNode]:
    """A raw MLS message (KeyPackage / Welcome / Commit blob, RFC 9420 §6): the scapy MLS
    layers (:func:`gbp_lab.dissectors.mls_layer`) when importable, else the header words."""
    try:
        import gbp_lab.dissectors as d

        return _layer_nodes(d.mls_layer(bytes(data)), {}, {0: ("frame", len(data))})
    except Exception:  # noqa: BLE001 - the dissectors are optional here
        pass
    kids = (FieldNode("version", int.from_bytes(data[0:2], "big"), 0, 2, "frame"),
            FieldNode("wire_format / suite", int.from_bytes(data[2:4], "big"), 2, 4, "frame"))
    return [FieldNode("MLS", _mls_summary(data), 0, len(data), "frame", kids)]


# =============================================================================================
# EpochStepper
# =============================================================================================

class TreeRecorder(dict):
    """``{(group_id, epoch): RatchetTree}`` filled by :meth:`snap` — call it after each step of a
    scenario so that :class:`EpochStepper` (``trees=recorder``) can draw every epoch's whole
    tree, parent nodes and unmerged leaves included (``MlsContext.history`` keeps only the
    members of past epochs)."""

    def __init__(self, *contexts: Any) -> None:
        super().__init__()
        self.contexts = list(contexts)
        self.snap()

    def snap(self, *contexts: Any) -> "TreeRecorder":
        for ctx in contexts or self.contexts:
            self[(bytes(ctx.group_id), int(ctx.epoch))] = ctx.tree
        return self


class EpochKey(NamedTuple):
    group_id: Optional[bytes]
    epoch: int


#: columns of the traffic table (a subset of the capture's ``frames`` columns)
TRAFFIC_COLUMNS = ["time", "src", "dst", "epoch", "transition_id", "stream_name", "sender",
                   "sequence_no", "protocol", "info", "decrypted", "error"]

_DERIVATIONS = {f.name: f.metadata["derivation"] for f in dc_fields(EpochSecrets)
                if "derivation" in f.metadata}
#: the secrets a key log holds (gbp_lab.core.keylog), by their EpochSecrets / KeyLog method names
_KEYLOG_SECRETS = frozenset({"exporter_secret", "sender_data_secret", "encryption_secret",
                             "epoch_secret"})


@dataclass(frozen=True, eq=False)
class EpochView:
    """A frozen snapshot of one epoch as the stepper shows it.

    ``secrets``: one dict per secret of RFC 9420 §8 (``name``, ``derivation``, ``known``,
    ``value`` = hex, or ``None`` while hidden or unknown). ``unknown`` lists what the source does
    not tell (e.g. the ratchet tree of a capture)."""

    key: EpochKey
    index: int
    tree_svg: str
    tree_known: bool
    members: Tuple[Mapping[str, Any], ...]
    secrets: Tuple[Mapping[str, Any], ...]
    revealed: bool
    commit: str
    proposals: Tuple[str, ...]
    traffic: pd.DataFrame
    unknown: Tuple[str, ...]
    source: str
    senders: Tuple[int, ...] = ()  #: GBP member ids seen sending in this epoch (captures)

    @property
    def epoch(self) -> int:
        return self.key.epoch

    @property
    def group_id(self) -> Optional[bytes]:
        return self.key.group_id

    def secrets_html(self) -> str:
        why = "unknown (not in the key log)" if self.source == "capture" else "unknown (not kept)"
        return render.secrets_html(self.secrets, self.revealed, unknown_text=why)

    def _repr_html_(self) -> str:
        gid = self.group_id.hex() if self.group_id else "?"
        parts = [f"<h4>epoch {self.epoch} <small>group {render.esc(gid)}</small></h4>",
                 self.tree_svg,
                 render.table_html(list(self.members), ["leaf_index", "identity"]) if self.members else "",
                 f"<p><b>commit:</b> {render.esc(self.commit)}</p>",
                 "<ul>" + "".join(f"<li>{render.esc(p)}</li>" for p in self.proposals) + "</ul>"
                 if self.proposals else "",
                 self.secrets_html(),
                 "".join(f"<p><i>{render.esc(u)}</i></p>" for u in self.unknown)]
        return "".join(parts)


@dataclass
class _EpochData:
    key: EpochKey
    tree: Any = None  # RatchetTree or None
    members: Optional[List[Any]] = None  # Member-like (leaf_index, identity)
    secrets: List[Tuple[str, str, Optional[bytes]]] = field(default_factory=list)
    commit: str = ""
    proposals: List[str] = field(default_factory=list)
    unknown: List[str] = field(default_factory=list)
    senders: List[int] = field(default_factory=list)


class EpochStepper(_Observable):
    """Step through MLS epochs (see the module docstring).

    ``source``: an :class:`~gbp_lab.core.mls.context.MlsContext`, a list of them (their
    ``history`` is merged — only the group most of them are in now, unless ``group_id`` says
    which; the current epoch of a context also contributes its full ratchet tree, since a
    history entry keeps the members but not the parent nodes; ``trees`` = a
    :class:`TreeRecorder` gives the others), or a capture
    (:class:`gbp_lab.capture.model.Capture`, with its key log)."""

    def __init__(self, source: Any, *, group_id: Optional[bytes] = None,
                 trees: Optional[Mapping[Tuple[bytes, int], Any]] = None) -> None:
        super().__init__()
        self._capture = None
        self._reveal = False
        if hasattr(source, "frames") and hasattr(source, "keylog"):
            self._capture = source
            self._data = _epochs_of_capture(source, group_id)
            self.source_kind = "capture"
        else:
            ctxs = list(source) if isinstance(source, (list, tuple)) else [source]
            self._data = _epochs_of_contexts(ctxs, group_id, trees or {})
            self.source_kind = "contexts"
        if not self._data:
            raise WidgetError("no epoch to show (no history, no key log, no frames)",
                              vid="LAB-WIDGET-NO-EPOCH")
        self._index = 0
        self._cache: Dict[Tuple[int, bool], EpochView] = {}

    # -- navigation --------------------------------------------------------------------------
    @property
    def keys(self) -> Tuple[EpochKey, ...]:
        return tuple(d.key for d in self._data)

    @property
    def epochs(self) -> List[int]:
        """The epoch numbers, in order (one per step)."""
        return [d.key.epoch for d in self._data]

    @property
    def index(self) -> int:
        return self._index

    def go(self, i: int) -> EpochView:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(self._data):
            raise WidgetError(f"epoch step {i!r} outside 0..{len(self._data) - 1}",
                              vid="LAB-WIDGET-INDEX")
        if i != self._index:
            self._index = i
            self._changed()
        return self.current

    def go_epoch(self, epoch: int) -> EpochView:
        """Go to the first step showing ``epoch``."""
        for i, d in enumerate(self._data):
            if d.key.epoch == epoch:
                return self.go(i)
        raise WidgetError(f"epoch {epoch} is not in this source", vid="LAB-WIDGET-INDEX")

    def next(self) -> EpochView:
        return self.go(min(self._index + 1, len(self._data) - 1))

    def prev(self) -> EpochView:
        return self.go(max(self._index - 1, 0))

    @property
    def reveal(self) -> bool:
        """Whether secret values are shown (hidden by default)."""
        return self._reveal

    @reveal.setter
    def reveal(self, value: bool) -> None:
        value = bool(value)
        if value != self._reveal:
            self._reveal = value
            self._changed()

    def __len__(self) -> int:
        return len(self._data)

    # -- the snapshot ------------------------------------------------------------------------
    @property
    def current(self) -> EpochView:
        key = (self._index, self._reveal)
        view = self._cache.get(key)
        if view is None:
            view = self._cache[key] = self._build(self._index)
        return view

    def _build(self, i: int) -> EpochView:
        d = self._data[i]
        if d.tree is not None:
            rows = render.tree_rows(d.tree)
            members = d.tree.members()
            tree_known = True
        elif d.members is not None:
            rows = render.tree_rows(members=d.members)
            members = d.members
            tree_known = False
        else:
            rows, members, tree_known = [], [], False
        svg = render.tree_svg(rows) if rows else _unknown_svg()
        mem = tuple(MappingProxyType({"leaf_index": int(m.leaf_index),
                                      "identity": render.identity_text(m.identity)})
                    for m in members)
        secrets = tuple(MappingProxyType({"name": n, "derivation": how, "known": v is not None,
                                          "value": v.hex() if (v is not None and self._reveal) else None})
                        for n, how, v in d.secrets)
        traffic = self._traffic(d.key)
        return EpochView(d.key, i, svg, tree_known, mem, secrets, self._reveal, d.commit,
                         tuple(d.proposals), traffic, tuple(d.unknown), self.source_kind,
                         tuple(d.senders))

    def _traffic(self, key: EpochKey) -> pd.DataFrame:
        if self._capture is None:
            return pd.DataFrame(columns=TRAFFIC_COLUMNS)
        f = self._capture.frames
        mask = f["epoch"].eq(key.epoch).fillna(False).astype(bool)
        if key.group_id is not None:
            mask &= f["group_id"].eq(key.group_id.hex()).fillna(False).astype(bool)
        cols = [c for c in TRAFFIC_COLUMNS if c in f.columns]
        return f.loc[mask, cols]

    def secrets_html(self) -> str:
        return self.current.secrets_html()

    def _repr_html_(self) -> str:
        return self.current._repr_html_()


def _unknown_svg() -> str:
    return ('<svg xmlns="http://www.w3.org/2000/svg" class="gbp-tree unknown" width="260" '
            'height="30"><text x="4" y="20" font-family="sans-serif" font-size="12">ratchet tree '
            'unknown (not in the key log)</text></svg>')


def _epochs_of_contexts(ctxs: Sequence[Any], group_id: Optional[bytes],
                        trees: Mapping[Tuple[bytes, int], Any]) -> List[_EpochData]:
    if group_id is None:  # the group most of the contexts are in now (not their own old ones)
        counts: Dict[bytes, int] = {}
        for ctx in ctxs:
            try:
                counts[bytes(ctx.group_id)] = counts.get(bytes(ctx.group_id), 0) + 1
            except GbpLabError:
                continue
        if counts:
            group_id = max(counts, key=lambda g: counts[g])
    by_key: Dict[EpochKey, _EpochData] = {}
    for ctx in ctxs:
        for s in ctx.history:
            if group_id is not None and s.group_id != group_id:
                continue
            key = EpochKey(bytes(s.group_id), int(s.epoch))
            if key in by_key:
                continue
            by_key[key] = _EpochData(
                key, None, list(s.members),
                [(n, how, None if v is None else v.reveal()) for n, how, v in s.epoch_secrets.explain()])
    # full trees: recorded ones (TreeRecorder), and where a context sits in that epoch now
    for (gid, ep), tree in dict(trees).items():
        key = EpochKey(bytes(gid), int(ep))
        if key in by_key:
            by_key[key].tree = tree
    for ctx in ctxs:
        try:
            key = EpochKey(bytes(ctx.group_id), int(ctx.epoch))
            if key in by_key and by_key[key].tree is None:
                by_key[key].tree = ctx.tree
        except GbpLabError:  # closed context
            continue
    out = sorted(by_key.values(), key=lambda d: (d.key.group_id or b"", d.key.epoch))
    prev: Optional[_EpochData] = None
    for d in out:
        if d.tree is None:
            d.unknown.append("parent nodes and unmerged leaves: a past epoch keeps only its "
                             "members (MlsContext.history), not the whole tree")
        _infer_commit(prev if prev is not None and prev.key.group_id == d.key.group_id else None, d)
        prev = d
    return out


def _ident(m: Any) -> str:
    return render.identity_text(m.identity)


def _infer_commit(prev: Optional[_EpochData], d: _EpochData) -> None:
    """The commit that led to ``d`` from the change of members (RFC 9420 §12.1 proposals)."""
    if prev is None:
        if d.key.epoch == 0:
            who = ", ".join(_ident(m) for m in (d.members or []))
            d.commit = f"group created (epoch 0) by {who}" if who else "group created (epoch 0)"
        else:
            d.commit = "first epoch seen (joined by Welcome or history truncated): commit unknown"
        return
    if prev.key.epoch + 1 != d.key.epoch:
        d.commit = f"epochs {prev.key.epoch + 1}..{d.key.epoch - 1} not seen: commit unknown"
        return
    old = {int(m.leaf_index): m for m in (prev.members or [])}
    new = {int(m.leaf_index): m for m in (d.members or [])}
    props = []
    for li in sorted(set(old) - set(new)):
        props.append(f"Remove(leaf {li}: {_ident(old[li])})")
    for li in sorted(set(new) - set(old)):
        props.append(f"Add({_ident(new[li])} → leaf {li})")
    for li in sorted(set(old) & set(new)):
        if old[li].identity != new[li].identity:
            props.append(f"Remove(leaf {li}: {_ident(old[li])}) + Add({_ident(new[li])} → leaf {li})")
        elif old[li].encryption_key != new[li].encryption_key:
            props.append(f"Update / path of leaf {li} ({_ident(new[li])}): new encryption key")
    d.proposals = props
    d.commit = (f"Commit epoch {prev.key.epoch} → {d.key.epoch}: " +
                ("; ".join(props) if props else "no membership change (empty commit)") +
                " (inferred from the members of both epochs)")


def _epochs_of_capture(cap: Any, group_id: Optional[bytes]) -> List[_EpochData]:
    frames = cap.frames
    keys: Dict[EpochKey, _EpochData] = {}
    gids = set()
    if len(frames):
        sub = frames[frames["group_id"].notna() & frames["epoch"].notna()]
        for gid_hex, ep in sub[["group_id", "epoch"]].drop_duplicates().itertuples(index=False):
            try:
                gid = bytes.fromhex(gid_hex)
            except ValueError:
                continue
            gids.add(gid)
            keys.setdefault(EpochKey(gid, int(ep)), _EpochData(EpochKey(gid, int(ep))))
    log = cap.keylog
    framed = set(gids)
    if log is not None:
        for gid in log.groups():
            if framed and gid not in framed and group_id is None:
                continue  # a group of the key log that no frame of the capture belongs to
            gids.add(gid)
            for ep in log.epochs(gid):
                keys.setdefault(EpochKey(gid, int(ep)), _EpochData(EpochKey(gid, int(ep))))
    if group_id is not None:
        keys = {k: v for k, v in keys.items() if k.group_id == group_id}
    out = sorted(keys.values(), key=lambda d: (d.key.group_id or b"", d.key.epoch))
    control = _control_rows(cap)
    for d in out:
        gid, ep = d.key
        for name, how in _DERIVATIONS.items():
            value = None
            if log is not None and name in _KEYLOG_SECRETS:
                value = getattr(log, name)(gid, ep)
            d.secrets.append((name, how, value))
        missing = [n for n, _h, v in d.secrets if v is None]
        if missing:
            d.unknown.append("secrets not in the key log: " + ", ".join(missing))
        d.unknown.append("ratchet tree and MLS members: a capture's key log carries secrets only")
        if len(frames):
            m = frames["epoch"].eq(ep).fillna(False).astype(bool) & \
                frames["group_id"].eq(gid.hex()).fillna(False).astype(bool)
            d.senders = sorted({int(s) for s in frames.loc[m, "sender"].dropna()})
        # the commit that led here: PREPARE of the previous epoch whose EXECUTE advanced to ep
        prep = [c for c in control if c["group_id"] == gid.hex() and c["epoch"] == ep - 1
                and c["opcode"] == ControlOpcode.PREPARE_TRANSITION]
        exe = [c for c in control if c["group_id"] == gid.hex() and c["epoch"] == ep - 1
               and c["opcode"] == ControlOpcode.EXECUTE_TRANSITION]
        if prep:
            p = prep[0]
            d.commit = (f"PREPARE_TRANSITION tid={p['tid']} from member {p['sender']} at "
                        f"t={p['time']:.6f}: {_mls_summary(p['args'])}"
                        + (f"; EXECUTE tid={exe[0]['tid']} at t={exe[0]['time']:.6f}" if exe else ""))
            commit = p.get("commit")
            if isinstance(commit, dict) and commit.get("proposals") is not None:
                d.proposals = [_proposal_text(x) for x in commit["proposals"]]
                if not d.proposals:
                    d.proposals.append("no proposals: an empty commit (key rotation, §12.4)")
                if commit.get("path"):
                    d.proposals.append("UpdatePath (the committer's new path secrets, §12.4.1)")
            else:
                why = p.get("commit_error") or ("an MLS PrivateMessage; opening it needs the "
                                                "epoch's sender-data and encryption secrets")
                d.proposals = []
                d.unknown.append(f"the commit's proposals ({why})")
        elif ep == 0:
            d.commit = "epoch 0: group creation (no commit)"
        else:
            d.commit = "no PREPARE_TRANSITION of the previous epoch in the capture: commit unknown"
    return out


def _proposal_text(p: Any) -> str:
    if not isinstance(p, dict):
        return str(p)
    kind = str(p.get("type", "?"))
    rest = ", ".join(f"{k}={v}" for k, v in p.items() if k != "type")
    return f"{kind.capitalize()}({rest})"


def _control_rows(cap: Any) -> List[Dict[str, Any]]:
    """Decrypted control messages of a capture, with the PREPARE commit's decoded proposals when
    the capture's ``control`` table (:mod:`gbp_lab.capture.tables`) has them."""
    f = cap.frames
    out: List[Dict[str, Any]] = []
    if not len(f):
        return out
    extra: Dict[int, Dict[str, Any]] = {}
    try:
        table = cap.control
        if isinstance(table, pd.DataFrame) and {"frame", "commit"} <= set(table.columns):
            for fr, commit, err in zip(table["frame"], table["commit"],
                                       table.get("commit_error", [None] * len(table))):
                if not pd.isna(fr):
                    extra[int(fr)] = {"commit": commit, "commit_error": err}
    except (AttributeError, GbpLabError):
        pass  # an older Capture without derived tables
    m = f["stream_type"].eq(int(StreamType.CONTROL)).fillna(False).astype(bool) & f["decrypted"]
    for pos in m.to_numpy().nonzero()[0]:
        pt = cap.plaintexts[pos]
        if pt is None:
            continue
        try:
            c = decode_control(pt)
        except GbpLabError:
            continue
        row = f.iloc[pos]
        out.append({"time": float(row["time"]), "group_id": row["group_id"],
                    "epoch": int(row["epoch"]), "opcode": c.opcode, "tid": c.transition_id,
                    "sender": c.sender_id, "args": c.args, "row": int(pos),
                    **extra.get(int(pos), {})})
    return out


# =============================================================================================
# FrameInspector
# =============================================================================================

class FrameInspector(_Observable):
    """Frame list + protocol tree + hex dump (see the module docstring).

    ``capture``: a :class:`~gbp_lab.capture.model.Capture`. The frame bytes are read again from
    the capture's ``source`` file (or from ``source=``: path, bytes or file object) — the frames
    table keeps positions, not bytes; ``records=`` may give them directly as a list aligned with
    ``capture.frames``."""

    TEXT_COLUMNS = ("protocol", "info", "src", "dst")

    def __init__(self, capture: Any, *, source: Any = None,
                 records: Optional[Sequence[bytes]] = None, use_dissectors: bool = True) -> None:
        super().__init__()
        self.capture = capture
        self._source = source if source is not None else capture.source
        self._records = list(records) if records is not None else None
        self._use_dissectors = use_dissectors
        self._text = ""
        self._query = ""
        self._rows = capture.frames
        self._selected: Optional[int] = None
        self._field: Optional[Tuple[int, ...]] = None
        self._tree_cache: Dict[int, List[FieldNode]] = {}

    # -- filtering ---------------------------------------------------------------------------
    @property
    def text(self) -> str:
        return self._text

    @property
    def query(self) -> str:
        return self._query

    def set_filter(self, text: Optional[str] = None, query: Optional[str] = None) -> pd.DataFrame:
        """Filter the list: ``text`` (case-insensitive substring of protocol/info/src/dst) and a
        pandas ``query`` string over the frame columns; ``None`` keeps the current one. A bad
        query raises :class:`WidgetError` (``LAB-WIDGET-QUERY``) and changes nothing."""
        text = self._text if text is None else str(text)
        query = self._query if query is None else str(query)
        f = self.capture.frames
        if text:
            needle = text.lower()
            mask = pd.Series(False, index=f.index)
            for c in self.TEXT_COLUMNS:
                mask |= f[c].astype("string").str.lower().str.contains(needle, regex=False).fillna(False)
            f = f[mask]
        if query.strip():
            try:
                f = f.query(query, engine="python")
            except Exception as exc:  # noqa: BLE001 - pandas raises many kinds
                raise WidgetError(f"bad query {query!r}: {exc}", vid="LAB-WIDGET-QUERY") from None
        self._text, self._query, self._rows = text, query, f
        if self._selected is not None and self._selected not in f.index:
            self._selected, self._field = None, None
        self._changed()
        return f

    @property
    def rows(self) -> pd.DataFrame:
        """The filtered frame list (index = row label in ``capture.frames``)."""
        return self._rows

    # -- selection ---------------------------------------------------------------------------
    @property
    def selected(self) -> Optional[int]:
        return self._selected

    def select(self, label: int) -> List[FieldNode]:
        """Select the frame with row label ``label`` (of ``capture.frames``); returns its tree."""
        if label not in self.capture.frames.index:
            raise WidgetError(f"no frame {label!r}", vid="LAB-WIDGET-INDEX")
        self._selected, self._field = int(label), None
        self._changed()
        return self.tree

    def select_position(self, pos: int) -> List[FieldNode]:
        """Select the ``pos``-th row of the filtered list."""
        if not 0 <= pos < len(self._rows):
            raise WidgetError(f"row {pos} outside the {len(self._rows)} listed", vid="LAB-WIDGET-INDEX")
        return self.select(int(self._rows.index[pos]))

    def _need(self) -> int:
        if self._selected is None:
            raise WidgetError("no frame selected", vid="LAB-WIDGET-NO-SELECTION")
        return self._selected

    def record(self, label: Optional[int] = None) -> bytes:
        """The bytes of a frame record (the CBOR frame or MLS message, without the length
        prefix)."""
        label = self._need() if label is None else label
        pos = self.capture.frames.index.get_loc(label)
        if self._records is None:
            self._records = _reread_records(self.capture, self._source)
        return self._records[pos]

    def plaintext(self, label: Optional[int] = None) -> Optional[bytes]:
        label = self._need() if label is None else label
        return self.capture.plaintexts[self.capture.frames.index.get_loc(label)]

    @property
    def tree(self) -> List[FieldNode]:
        """The protocol tree of the selected frame."""
        label = self._need()
        t = self._tree_cache.get(label)
        if t is None:
            data = self.record(label)
            row = self.capture.frames.loc[label]
            if row["protocol"] == "MLS":
                t = _mls_tree(data)
            else:
                t = frame_protocol_tree(data, self.plaintext(label), self.capture.keylog,
                                        use_dissectors=self._use_dissectors)
            self._tree_cache[label] = t
        return t

    def fields(self) -> Dict[str, Tuple[int, ...]]:
        """``"Layer/field"`` → path, for every field of the selected frame's tree."""
        out: Dict[str, Tuple[int, ...]] = {}

        def walk(nodes, path, prefix):
            for i, n in enumerate(nodes):
                name = f"{prefix}/{n.name}" if prefix else n.name
                out.setdefault(name, path + (i,))
                walk(n.children, path + (i,), name)

        walk(self.tree, (), "")
        return out

    def node(self, path: Sequence[int]) -> FieldNode:
        nodes, n = self.tree, None
        try:
            for i in path:
                n = nodes[i]
                nodes = n.children
        except (IndexError, TypeError):
            raise WidgetError(f"no field at {tuple(path)!r}", vid="LAB-WIDGET-FIELD") from None
        if n is None:
            raise WidgetError("empty field path", vid="LAB-WIDGET-FIELD")
        return n

    def select_field(self, path_or_name: Any) -> FieldNode:
        """Select a field by path (tuple of child indexes) or by ``"Layer/field"`` name."""
        if isinstance(path_or_name, str):
            paths = self.fields()
            if path_or_name not in paths:
                raise WidgetError(f"no field {path_or_name!r}", vid="LAB-WIDGET-FIELD")
            path = paths[path_or_name]
        else:
            path = tuple(path_or_name)
        n = self.node(path)
        self._field = path
        self._changed()
        return n

    @property
    def selected_field_path(self) -> Optional[Tuple[int, ...]]:
        return self._field

    @property
    def selected_field(self) -> Optional[FieldNode]:
        return None if self._field is None else self.node(self._field)

    @property
    def highlight(self) -> Optional[Tuple[str, int, int]]:
        """``(buffer, start, end)`` of the selected field, ``None`` when it has no position."""
        n = self.selected_field
        if n is None or n.start is None or n.buffer is None:
            return None
        return n.buffer, n.start, n.end

    def buffer(self, name: str = "frame") -> bytes:
        if name == "plaintext":
            return self.plaintext() or b""
        return self.record()

    def hexdump_html(self) -> str:
        """The hex dump of the buffer of the selected field (the frame when none) with the
        field's bytes highlighted."""
        hl = self.highlight
        name = hl[0] if hl else "frame"
        return (f"<div class='gbp-buffer'>{render.esc(name)}</div>" +
                render.hexdump_html(self.buffer(name), (hl[1], hl[2]) if hl else None))

    def tree_html(self) -> str:
        """The protocol tree, preceded by the frame's ``error`` (no key, tag failure, …) if any."""
        err = self.capture.frames.loc[self._need(), "error"] if "error" in self.capture.frames else None
        head = ""
        if isinstance(err, str) and err:
            head = f'<div class="gbp-frame-error" style="color:#b00">{render.esc(err)}</div>'
        return head + render.protocol_tree_html(self.tree, selected=self._field)


def _reread_records(cap: Any, source: Any) -> List[bytes]:
    """Record bytes aligned with ``cap.frames``, read again from ``source``."""
    from gbp_lab.capture.records import iter_records

    if source is None:
        raise WidgetError("the capture has no source file: pass source= or records=",
                          vid="LAB-WIDGET-SOURCE")
    by_pos: Dict[Tuple, bytes] = {}
    for it in iter_records(source):
        if it.error is None and it.data is not None:
            by_pos.setdefault((it.flow_id, it.offset, it.packet, it.transport), it.data)
    out = []
    f = cap.frames
    for flow, off, pkt, tr in zip(f["flow_id"], f["offset"], f["packet"], f["transport"]):
        k = (None if pd.isna(flow) else int(flow), None if pd.isna(off) else int(off),
             None if pd.isna(pkt) else int(pkt), tr)
        if k not in by_pos:
            raise WidgetError(f"frame at {k} not found when reading the source again",
                              vid="LAB-WIDGET-SOURCE")
        out.append(by_pos[k])
    return out


# =============================================================================================
# FlowLadder
# =============================================================================================

class Lane(NamedTuple):
    name: str
    endpoint: str
    kind: str  # "member" | "ds"


class Arrow(NamedTuple):
    time: float
    src: int  # lane index
    dst: int
    label: str
    epoch: Optional[int]
    row: int  # row label in frames
    protocol: str


class EpochBand(NamedTuple):
    epoch: int
    start: float
    end: float


class FlowLadder(_Observable):
    """Sequence diagram of a capture: one lane per endpoint (the delivery service = the endpoint
    on the GBP port, :data:`gbp_lab.capture.records.GBP_PORT`), one arrow per frame labelled with
    its ``info``, epochs as bands. ``window(start, count)`` pages through long captures."""

    def __init__(self, capture: Any, *, max_arrows: int = 60, ds_ports: Iterable[int] = ()) -> None:
        super().__init__()
        from gbp_lab.capture.records import GBP_PORT

        self.capture = capture
        ports = set(ds_ports) or {GBP_PORT}
        f = capture.frames
        lanes: List[Lane] = []
        index: Dict[str, int] = {}
        senders: Dict[str, set] = {}
        for src, sp, dst, dp, snd in zip(f["src"], f["sport"], f["dst"], f["dport"], f["sender"]):
            a, b = _ep(src, sp), _ep(dst, dp)
            if not pd.isna(snd):
                senders.setdefault(a, set()).add(int(snd))
            for e, port in ((a, sp), (b, dp)):
                if e not in index:
                    is_ds = (not pd.isna(port)) and int(port) in ports
                    index[e] = len(lanes)
                    lanes.append(Lane("", e, "ds" if is_ds else "member"))
        named = []
        for ln in lanes:
            if ln.kind == "ds":
                name = f"DS {ln.endpoint}"
            else:
                ids = sorted(senders.get(ln.endpoint, ()))
                name = (f"member {','.join(map(str, ids))}" if ids else "peer") + f" {ln.endpoint}"
            named.append(Lane(name, ln.endpoint, ln.kind))
        # delivery service lanes in the middle-left: members left to right after the first DS
        order = sorted(range(len(named)), key=lambda i: (named[i].kind != "ds", i))
        remap = {old: new for new, old in enumerate(order)}
        self.lanes: List[Lane] = [named[i] for i in order]
        self.arrows: List[Arrow] = []
        for label, src, sp, dst, dp, t, info, ep, proto in zip(
                f.index, f["src"], f["sport"], f["dst"], f["dport"], f["time"], f["info"],
                f["epoch"], f["protocol"]):
            self.arrows.append(Arrow(float(t), remap[index[_ep(src, sp)]], remap[index[_ep(dst, dp)]],
                                     str(info), None if pd.isna(ep) else int(ep), int(label), str(proto)))
        self.bands: List[EpochBand] = []
        for a in self.arrows:
            if a.epoch is None:
                continue
            if self.bands and self.bands[-1].epoch == a.epoch:
                b = self.bands[-1]
                self.bands[-1] = EpochBand(b.epoch, b.start, a.time)
            else:
                self.bands.append(EpochBand(a.epoch, a.time, a.time))
        self.max_arrows = max_arrows
        self._start = 0

    @property
    def start(self) -> int:
        return self._start

    def window(self, start: int, count: Optional[int] = None) -> List[Arrow]:
        if count is not None:
            self.max_arrows = int(count)
        self._start = max(0, min(int(start), max(len(self.arrows) - 1, 0)))
        self._changed()
        return self.visible

    @property
    def visible(self) -> List[Arrow]:
        return self.arrows[self._start:self._start + self.max_arrows]

    def svg(self, *, lane_dx: int = 170, row_dy: int = 26) -> str:
        """The visible window as SVG: lanes as vertical lines, one ``<g class="arrow">`` per
        frame (text = info), epoch bands as ``<rect class="band">``."""
        arrows = self.visible
        n = len(self.lanes)
        width = max(n, 1) * lane_dx + 40
        height = 50 + row_dy * (len(arrows) + 1)
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="gbp-ladder" width="{width}" '
               f'height="{height}" font-family="sans-serif" font-size="10">']
        # epoch bands over the rows of the window
        colors = ("#f3f7ff", "#fff7ec")
        k = 0
        while k < len(arrows):
            ep = arrows[k].epoch
            j = k
            while j + 1 < len(arrows) and arrows[j + 1].epoch == ep:
                j += 1
            y0 = 40 + row_dy * k + row_dy // 2
            h = row_dy * (j - k + 1)
            out.append(f'<rect class="band" data-epoch="{"" if ep is None else ep}" x="0" y="{y0}" '
                       f'width="{width}" height="{h}" fill="{colors[(ep or 0) % 2]}"/>'
                       f'<text x="2" y="{y0 + 11}" fill="#777">'
                       f'{"MLS" if ep is None else f"epoch {ep}"}</text>')
            k = j + 1
        for i, ln in enumerate(self.lanes):
            x = 20 + lane_dx * i + lane_dx // 2
            out.append(f'<text class="lane" x="{x}" y="16" text-anchor="middle" '
                       f'font-weight="bold">{render.esc(ln.name)}</text>'
                       f'<line x1="{x}" y1="24" x2="{x}" y2="{height}" stroke="#aaa"/>')
        out.append('<defs><marker id="gbp-ah" markerWidth="8" markerHeight="8" refX="7" refY="3" '
                   'orient="auto"><path d="M0,0 L7,3 L0,6 z" fill="#333"/></marker></defs>')
        for r, a in enumerate(arrows):
            y = 40 + row_dy * (r + 1)
            x1 = 20 + lane_dx * a.src + lane_dx // 2
            x2 = 20 + lane_dx * a.dst + lane_dx // 2
            out.append(f'<g class="arrow" data-row="{a.row}"><title>{render.esc(f"t={a.time:.6f} {a.label}")}</title>'
                       f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#333" '
                       f'marker-end="url(#gbp-ah)"/>'
                       f'<text x="{(x1 + x2) / 2:.0f}" y="{y - 4}" text-anchor="middle">'
                       f'{render.esc(render._short(a.label, 48))}</text></g>')
        out.append("</svg>")
        return "".join(out)


def _ep(host: Any, port: Any) -> str:
    h = "?" if host is None or (isinstance(host, float) and host != host) else str(host)
    p = "?" if port is None or pd.isna(port) else str(int(port))
    return f"[{h}]:{p}" if ":" in h else f"{h}:{p}"
