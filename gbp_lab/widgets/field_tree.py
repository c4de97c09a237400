"""Protocol trees with byte offsets: the layers of one record as :class:`FieldNode` objects.

* :func:`frame_protocol_tree` — a GBP frame record: the scapy dissection
  (:mod:`gbp_lab.dissectors`, decrypted layers included) when importable, else the core decoders
  (:mod:`gbp_lab.core.gbp.frame`, :mod:`gbp_lab.core.gbp.control`, the payload classes);
* :func:`mls_tree` — a raw MLS record (KeyPackage, Welcome, GroupInfo, Public/PrivateMessage,
  RFC 9420 §6): the scapy MLS layers, else the record's class from the core's classifier;
* :func:`cbor_fields` — ``(key, value, start, end)`` of a CBOR map (RFC 8949), the positions
  every tree uses to highlight a field in the hex dump.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from gbp_lab.core.cbor import Reader as CborReader
from gbp_lab.core.errors import DecodeError, GbpLabError
from gbp_lab.core.gbp.classify import RecordClass, RecordKind, classify_record
from gbp_lab.core.gbp.control import decode_control
from gbp_lab.core.gbp.registry import STREAM_TYPES, ControlOpcode, PayloadCodec, StreamType
from gbp_lab.core.payload_codec import field_spans

__all__ = ["FieldNode", "cbor_fields", "frame_protocol_tree", "mls_tree", "mls_summary",
           "FRAME_LABELS", "payload_class"]


@dataclass(frozen=True)
class FieldNode:
    """One node of a protocol tree: a layer (with children) or a field.

    ``start``/``end`` (end exclusive) locate the field's CBOR value item in the buffer named
    ``buffer`` (``"frame"``: the frame record, ``"plaintext"``: the decrypted payload): a CBOR
    field's whole value item; a Protobuf/FlatBuffers payload field's value bytes as the codec
    reports them (:func:`gbp_lab.core.payload_codec.field_spans`: a varint, a little-endian
    scalar, or a bytes/string content); ``None`` when there is no position to offer (a field
    absent from the wire, scapy-only fields). ``raw`` is the decoded value."""

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


FRAME_LABELS = {"v": "version", "gid": "group id", "ep": "epoch", "tid": "transition id",
                 "st": "stream type", "sid": "stream id", "fl": "flags", "seq": "sequence no",
                 "psz": "payload size", "pl": "payload (ciphertext ‖ tag)", "pf": "payload codec"}
_PAYLOAD_CLASSES: Dict[int, Tuple[str, Any]] = {}


def _payload_classes() -> Dict[int, Tuple[str, Any]]:
    """Stream type -> (layer title, payload class) of the sub-protocol streams, from the one
    stream-type table (:data:`gbp_lab.core.gbp.registry.STREAM_TYPES`; "GTP Message" …)."""
    if not _PAYLOAD_CLASSES:
        for st, info in STREAM_TYPES.items():
            if st == StreamType.CONTROL:
                continue  # the control plane has its own layer (decode_control)
            cls = getattr(importlib.import_module(info.payload_module), info.payload)
            title = (info.payload[len(info.protocol):]
                     if info.payload.upper().startswith(info.protocol) else info.payload)
            _PAYLOAD_CLASSES[int(st)] = (f"{info.protocol} {title}", cls)
    return _PAYLOAD_CLASSES


def payload_class(stream_type: int) -> Any:
    """The payload message class of a sub-protocol stream type (``GtpMessage`` for text …),
    from the stream-type table; a :class:`KeyError` for the control stream and unknown types."""
    return _payload_classes()[int(stream_type)][1]


def _core_tree(data: bytes, plaintext: Optional[bytes]) -> List[FieldNode]:
    """The protocol tree from the core decoders only (fallback when the dissectors are not
    importable): the frame map, then the decrypted payload."""
    from gbp_lab.core.gbp.frame import decode_frame

    try:
        layers = [_core_layer("GBP Frame", data, "frame", FRAME_LABELS)]
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
        ctl_kids = list(layer.children)
        if m.opcode == ControlOpcode.PREPARE_TRANSITION and m.args:
            ctl_kids.append(FieldNode("args → MLSMessage", mls_summary(m.args)))
        return [FieldNode(layer.name, layer.value, layer.start, layer.end, layer.buffer,
                          tuple(ctl_kids))]
    classes = _payload_classes()
    if st not in classes:
        return [FieldNode("payload", _pretty(pt), 0, len(pt), "plaintext", (), pt)]
    name, cls = classes[st]
    if codec is PayloadCodec.CBOR:
        layer = _core_layer(name, pt, "plaintext")
        if st == StreamType.SIGNAL:  # GSP args: an integer-keyed CBOR map inside the bstr
            kids = list(layer.children)
            for i, k in enumerate(kids):
                if k.name == "args" and k.raw and k.end is not None:
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
    spans = field_spans(cls, pt, codec)
    kids_ = []
    for f in cls.SCHEMA.fields:
        v = getattr(msg, f.attr)
        s, e = spans.get(f.attr, (None, None))
        args: Tuple[FieldNode, ...] = ()
        if f.key == "args" and s is not None and isinstance(v, bytes) and v:
            try:  # GSP args: an integer-keyed CBOR map inside the byte field
                args = tuple(FieldNode(str(a), _pretty(b), a_s, a_e, "plaintext", (), b)
                             for a, b, a_s, a_e in cbor_fields(v, base=s, context="GSP args"))
            except GbpLabError:
                args = ()
        kids_.append(FieldNode(f.key, _pretty(v), s, e, None if s is None else "plaintext", args, v))
    fields_ = tuple(kids_)
    return [FieldNode(f"{name} ({codec.name})", f"{len(pt)} bytes", 0, len(pt), "plaintext",
                      fields_)]


def mls_summary(data: bytes) -> str:
    """What an MLS record is, as the core's record classifier names it (by parsing:
    :func:`gbp_lab.core.gbp.classify.classify_record`), and its size — e.g.
    ``KeyPackage suite 2 (310 bytes)``, ``MLSMessage(PrivateMessage) (212 bytes)``; just the
    size when it is no MLS structure."""
    rc = classify_record(data)
    if not rc.kind.is_mls:
        return f"{len(data)} bytes"
    return f"{rc.label} ({len(data)} bytes)"


def _mls_header(data: bytes, rc: RecordClass) -> Tuple[FieldNode, ...]:
    """The leading words of an MLS structure with their byte ranges (RFC 9420 §6: an envelope
    is ``version ‖ wire_format``, a KeyPackage / GroupInfo ``version ‖ cipher_suite``, a Welcome
    starts with its ``cipher_suite``)."""
    def u16(name: str, at: int) -> FieldNode:
        return FieldNode(name, int.from_bytes(data[at:at + 2], "big"), at, at + 2, "frame")

    if rc.wrapped:
        return (u16("version", 0), u16("wire_format", 2))
    if rc.kind is RecordKind.WELCOME:
        return (u16("cipher_suite", 0),)
    if rc.kind in (RecordKind.KEY_PACKAGE, RecordKind.GROUP_INFO):
        return (u16("version", 0), u16("cipher_suite", 2))
    return ()


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
            for k, v, s, e in _payload_spans(data, plaintext):
                offsets[(1, str(k))] = (s, e, "plaintext")
                if k == "args" and isinstance(v, bytes) and v:
                    # GSP args: {0: target / stream type / codec id, 1: new role} (gsp_rfc §6)
                    for ak, _av, a_s, a_e in cbor_fields(v, base=_content_start(plaintext, s, e, v),
                                                         context="GSP args"):
                        names = _GSP_ARG_FIELDS.get(ak, ())
                        for n in names:
                            offsets[(2, n)] = (a_s, a_e, "plaintext")
        except GbpLabError:
            pass  # a plaintext that does not decode or odd args: no positions
    totals = {0: ("frame", len(data))}
    if plaintext is not None:
        totals[1] = ("plaintext", len(plaintext))
    return _layer_nodes(pkt, offsets, totals, FRAME_LABELS)


def _payload_spans(record: bytes, plaintext: bytes) -> List[Tuple[Any, Any, int, int]]:
    """``(wire key, value, start, end)`` of each payload field in ``plaintext``, in the codec the
    frame's ``pf`` names: the CBOR map's items (:func:`cbor_fields`; the control plane is always
    CBOR), or the Protobuf/FlatBuffers spans the payload codec reports
    (:func:`gbp_lab.core.payload_codec.field_spans`: the codec owns the wire layout)."""
    from gbp_lab.core.gbp.frame import decode_frame

    fr = decode_frame(record, strict=False)
    codec = PayloadCodec.for_wire(fr.payload_format)
    classes = _payload_classes()
    if codec is PayloadCodec.CBOR or fr.stream_type not in classes:
        return cbor_fields(plaintext)
    cls = classes[fr.stream_type][1]
    spans = field_spans(cls, plaintext, codec)
    msg = cls.from_bytes(plaintext, codec)
    return [(f.key, getattr(msg, f.attr), *spans[f.attr]) for f in cls.SCHEMA.fields
            if f.attr in spans]


def _content_start(buf: bytes, start: int, end: int, value: bytes) -> int:
    """Where a byte field's content begins inside its span ``[start, end)``: after the CBOR
    head when the span is a whole CBOR item, at ``start`` when it is the bare content
    (Protobuf/FlatBuffers spans)."""
    return start if end - start == len(value) and buf[start:end] == value else end - len(value)


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
    already decrypted ``plaintext``. Fields carry byte ranges in every payload codec (CBOR,
    Protobuf, FlatBuffers) wherever the field is on the wire."""
    if use_dissectors:
        try:
            layers = _scapy_tree(data, plaintext, keylog)
            if plaintext is None or (len(layers) > 1 and layers[1].name != "Raw"):
                return layers  # (else scapy could not open what the capture reader did)
        except Exception:  # noqa: BLE001 - optional layer (ImportError, scapy quirks): fall back
            pass
    return _core_tree(data, plaintext)


def mls_tree(data: bytes, *, use_dissectors: bool = True) -> List[FieldNode]:
    """An MLS record (KeyPackage, Welcome, GroupInfo, Public/PrivateMessage — raw or in an
    ``MLSMessage`` envelope, RFC 9420 §6): the scapy MLS layers the dissectors pick for it
    (:func:`gbp_lab.dissectors.transport.record_body`, by the core's classifier) when
    importable, else one layer named by the classifier with the header words."""
    data = bytes(data)
    if use_dissectors:
        try:
            from gbp_lab.dissectors.transport import record_body

            return _layer_nodes(record_body(data), {}, {0: ("frame", len(data))})
        except Exception:  # noqa: BLE001 - the dissectors are optional here
            pass
    rc = classify_record(data)
    name = f"MLS {rc.name}" if rc.kind.is_mls else "MLS"
    return [FieldNode(name, mls_summary(data), 0, len(data), "frame", _mls_header(data, rc))]

