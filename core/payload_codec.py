"""Shared machinery of the sub-protocol payload codecs (GTP, GAP, GSP) in CBOR, Protobuf and
FlatBuffers (reference gbp_rfc.md §12.2-§12.3, gtp_rfc.md §10-§11, gap_rfc.md §10-§11,
gsp_rfc.md §10-§11; code ``crates/{gtp,gap,gsp}/src``, ``crates/gbp-proto``, ``crates/gbp-flat``).

Every payload message is described ONCE, as a :class:`MessageSchema` (a table of
:class:`FieldSpec` rows: dataclass attribute, CBOR text key, integer width, Protobuf field number,
FlatBuffers slot). The three codecs are generic functions of that table:

* **CBOR** (RFC 8949; the codec is :mod:`gbp_lab.core.cbor`, policy
  :attr:`~gbp_lab.core.cbor.Leniency.SERDE`) — what the reference writes with serde + ciborium: a definite-length map with
  text keys in struct (serde) field order, integers in shortest form, byte fields as byte strings.
  The reader accepts what serde + ciborium accept — checked against the reference wheel in
  ``tests/test_codecs_interop.py`` (crafted cases and differential fuzzing): any key order;
  unknown keys with any well-formed value (nesting up to ciborium's recursion limit of 256, the
  message map included); byte-string keys; non-shortest integers; indefinite-length maps and
  strings; tags anywhere (ignored), bignums (tag 2/3 directly on a byte string) for integers;
  a byte field written as an array of u8. It rejects what they reject: a key that is neither
  text nor bytes, a duplicate known key (serde's ``duplicate field``), a missing key, a value of
  the wrong type or out of the field's range, a bignum tag not directly on a byte string. Unlike
  the reference (ciborium stops after one item) bytes after the map are refused
  (:class:`~gbp_lab.core.errors.TrailingBytesError`). Only the canonical form re-encodes to the
  same bytes.
* **Protobuf** (proto3, zero values omitted) — message classes are built at import time from a
  ``FileDescriptorProto`` assembled here with ``descriptor_pb2`` and loaded into a private
  ``DescriptorPool``; no protoc output, so nothing is tied to one protobuf runtime release. The
  runtime's serialisation equals prost's (fields in number order, defaults omitted). Decoding is as
  strict as prost: a known field number with the wrong wire type is an error (the Python runtime
  would keep it as an unknown field), and ``google.protobuf.message.DecodeError`` becomes our
  :class:`~gbp_lab.core.errors.DecodeError`.
* **FlatBuffers** — built with the ``flatbuffers`` package's ``Builder`` (no file identifier, the
  message table is the root, default scalars omitted like planus does); read with its ``Table``
  API only after :class:`_FlatTable` has checked the root offset, the vtable (size even, >= 4,
  inside the buffer) and every field and vector against the end of the buffer, so hostile buffers
  raise typed errors and never allocate more than their own length. Like planus, the table size
  stored in the vtable is not trusted and bytes after the last object are not looked at; the
  layout differs from planus' (both are valid FlatBuffers), so only fields, not bytes, compare.

Length fields (``len``, ``alen``) are compared with their data in every codec, as the reference
does (``CodecError::PayloadSizeMismatch`` → :class:`LengthMismatchError`). Integers are
range-checked against the width of the reference's struct field (u8/u16/u32/u64); where the
Protobuf/FlatBuffers field is wider (``flags``/``content_type`` are u32 on those wires but u8 in
the struct) an out-of-range value is rejected instead of being truncated as the reference's
``as u8`` does.

Codec values: :func:`resolve_codec` maps anything that is not a known :class:`PayloadCodec`
number to CBOR, as the reference receiver does (``PayloadCodec::from_u8(..).unwrap_or(Cbor)``).
"""
from __future__ import annotations

from dataclasses import dataclass, fields as dc_fields
from enum import Enum
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar, cast

import flatbuffers
from flatbuffers import number_types as _fbn
from flatbuffers.table import Table as _FbTable
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf import message as _pb_message
from google.protobuf import unknown_fields as _pb_unknown

from . import cbor as _cbor
from .cbor_shape import compile_shape
from .cbor import CborSimple, CborTag, Reader, Writer, encode_map
from .errors import DecodeError, TruncatedError, UsageError
from .gbp.registry import PayloadCodec

__all__ = [
    "cbor_values_matcher",
    "PayloadCodec",
    "Kind",
    "FieldSpec",
    "MessageSchema",
    "LengthMismatchError",
    "resolve_codec",
    "encode",
    "decode",
    "field_spans",
    "CborWriter",
    "CborReader",
    "cbor_encode_text_map",
    "cbor_decode_text_map",
    "cbor_encode_int_map",
    "cbor_decode_item",
    "check_int",
    "validate_fields",
    "register_protobuf",
    "protobuf_class",
    "PayloadMessage",
    "CborTag",
    "CborSimple",
    "MAX_CBOR_DEPTH",
]

T = TypeVar("T")

#: Deepest nesting of CBOR arrays/maps/tags the generic reader follows (unknown keys, GSP args).
MAX_CBOR_DEPTH = _cbor.MAX_DEPTH


class LengthMismatchError(DecodeError):
    """A declared length field (``len``, ``alen``) differs from the length of its data
    (reference ``CodecError::PayloadSizeMismatch``)."""

    default_vid = "CODEC-LEN-MISMATCH"


# ---------------------------------------------------------------------------------------------
# field kinds and range checks
# ---------------------------------------------------------------------------------------------
class Kind(Enum):
    """Value kinds of payload fields; integers carry their bit width."""

    U8 = 8
    U16 = 16
    U32 = 32
    U64 = 64
    BYTES = "bytes"
    TEXT = "text"

    @property
    def is_int(self) -> bool:
        return isinstance(self.value, int)


def check_int(value: Any, bits: int, *, where: str, decoding: bool) -> int:
    """Return *value* if it is an ``int`` in ``0..2**bits-1``.

    Raises :class:`DecodeError` (``CODEC-RANGE``) for decoded values, :class:`UsageError` for
    values handed to us by the caller."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >> bits:
        msg = f"{where} = {value!r} is not a u{bits}"
        if decoding:
            raise DecodeError(msg, vid="CODEC-RANGE", where=where)
        raise UsageError(msg, vid="CODEC-FIELD-RANGE", where=where)
    return value


@dataclass(frozen=True)
class FieldSpec:
    """One field of a payload message, in all three codecs.

    ``attr`` names the dataclass attribute, ``key`` the CBOR text key (serde rename),
    ``kind`` the reference struct type, ``pb_number`` the Protobuf field number and FlatBuffers
    slot (field id + 1: both schemas list fields in the same order), ``wire_bits`` the width of the
    Protobuf/FlatBuffers integer when wider than the struct (``flags: u8`` is ``uint32`` there).
    """

    attr: str
    key: str
    kind: Kind
    pb_number: int
    wire_bits: Optional[int] = None

    @property
    def pb_bits(self) -> int:
        return self.wire_bits or (self.kind.value if self.kind.is_int else 0)

    @property
    def fb_slot(self) -> int:
        """FlatBuffers field id (0-based)."""
        return self.pb_number - 1


@dataclass(frozen=True)
class MessageSchema:
    """A payload message in all three codecs.

    ``pb_package``/``name`` give the Protobuf full name (``gtp.GtpMessage``), ``length_checks``
    pairs a declared-length attribute with its data attribute, ``fb_omit_empty`` lists the vector
    attributes the reference leaves out of the FlatBuffers table when they are empty (GSP
    ``args``; GTP ``content`` and GAP ``opus_frame`` are always written).
    """

    name: str
    pb_package: str
    fields: Tuple[FieldSpec, ...]
    length_checks: Tuple[Tuple[str, str], ...] = ()
    fb_omit_empty: Tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        return f"{self.pb_package}.{self.name}"

    def field(self, attr: str) -> FieldSpec:
        for f in self.fields:
            if f.attr == attr:
                return f
        raise KeyError(attr)


def validate_fields(schema: MessageSchema, obj: Any) -> None:
    """Type/range check of a message instance built by the caller (used by ``__post_init__``)."""
    for f in schema.fields:
        v = getattr(obj, f.attr)
        if f.kind.is_int:
            check_int(v, f.kind.value, where=f.attr, decoding=False)
        elif f.kind is Kind.BYTES:
            if not isinstance(v, bytes):
                raise UsageError(f"{f.attr} must be bytes, not {type(v).__name__}",
                                 vid="CODEC-FIELD-TYPE", where=f.attr)
        elif not isinstance(v, str):
            raise UsageError(f"{f.attr} must be str, not {type(v).__name__}",
                             vid="CODEC-FIELD-TYPE", where=f.attr)


def check_lengths(schema: MessageSchema, values: Mapping[str, Any], codec: str) -> None:
    """The reference's declared-length check: ``len == len(body)``, ``alen == len(args)``."""
    for len_attr, data_attr in schema.length_checks:
        declared, actual = values[len_attr], len(values[data_attr])
        if declared != actual:
            raise LengthMismatchError(
                f"{schema.name}: {schema.field(len_attr).key}={declared} but "
                f"{schema.field(data_attr).key} has {actual} bytes ({codec})",
                where=len_attr)


def _as_bytes(data: Any) -> bytes:
    return _cbor.as_bytes(data, "CODEC-INPUT")


# ---------------------------------------------------------------------------------------------
# codec dispatch
# ---------------------------------------------------------------------------------------------
def resolve_codec(codec: Any) -> PayloadCodec:
    """The codec used for *codec*: a :class:`PayloadCodec`, or an int where unknown values mean
    CBOR (reference ``PayloadCodec::from_u8(c).unwrap_or(Cbor)``, both on send and on accept)."""
    if isinstance(codec, PayloadCodec):
        return codec
    if isinstance(codec, bool) or not isinstance(codec, int):
        raise UsageError(f"codec must be a PayloadCodec or int, not {type(codec).__name__}",
                         vid="CODEC-SELECT")
    return PayloadCodec.for_wire(codec)


def _schema_of(cls: type) -> MessageSchema:
    schema = getattr(cls, "SCHEMA", None)
    if not isinstance(schema, MessageSchema):
        raise UsageError(f"{cls.__name__} is not a payload message", vid="CODEC-SELECT")
    return schema


def encode(msg: Any, codec: Any = PayloadCodec.CBOR) -> bytes:
    """Encode a payload message (an instance of a class with a ``SCHEMA``) in *codec*."""
    schema = _schema_of(type(msg))
    values = {f.attr: getattr(msg, f.attr) for f in schema.fields}
    c = resolve_codec(codec)
    if c is PayloadCodec.PROTOBUF:
        return _pb_encode(schema, values)
    if c is PayloadCodec.FLATBUFFERS:
        return _fb_encode(schema, values)
    return _cbor_encode(schema, values)


def decode(cls: Type[T], data: Any, codec: Any = PayloadCodec.CBOR) -> T:
    """Decode *data* as a *cls* payload message in *codec*; bad bytes raise :class:`DecodeError`
    (or a subclass), never anything else."""
    if type(data) is bytes and (codec is PayloadCodec.CBOR or (type(codec) is int and codec == 0)):
        fast = _CBOR_FAST.get(cls)  # the canonical form every sender writes, in one step
        if fast is None:
            fast = _cbor_fast_for(cls)
        vals = fast[0](data)
        if vals is not None:
            obj = _new(cls)
            _setattr(obj, "__dict__", dict(zip(fast[1], vals)))
            return obj
    schema = _schema_of(cls)
    data = _as_bytes(data)
    c = resolve_codec(codec)
    if c is PayloadCodec.PROTOBUF:
        values = _pb_decode(schema, data)
    elif c is PayloadCodec.FLATBUFFERS:
        values = _fb_decode(schema, data)
    else:
        values = _cbor_decode(schema, data)
    check_lengths(schema, values, c.name)
    obj = cls.__new__(cls)
    # Values are already type- and range-checked: skip __post_init__'s caller checks.
    for f in dc_fields(cast(Any, cls)):  # every payload message class is a dataclass
        object.__setattr__(obj, f.name, values[f.name])
    return obj


def field_spans(cls: type, data: Any, codec: Any = PayloadCodec.CBOR) -> Dict[str, Tuple[int, int]]:
    """Where each field of a *cls* payload message sits in *data* (encoded in *codec*):
    ``{attr: (start, end)}``, end exclusive, for the fields present on the wire. The message is
    decoded first (:func:`decode`; bad bytes raise its :class:`DecodeError`), so the spans are
    those of bytes this module accepts:

    * CBOR — the value's whole data item (head and body: ``cbor2.loads(data[s:e])`` is the
      value), from the bounded reader's positions (:class:`gbp_lab.core.cbor.Reader`);
    * Protobuf — from the wire walk (:func:`_pb_walk`): a varint field's varint bytes, a
      length-delimited field's content (after its length); proto3 omits zero values, so they have
      no span; a repeated field number keeps its last record (protobuf's "last one wins");
    * FlatBuffers — from the checked table (:class:`_FlatTable`): a scalar's little-endian
      bytes (``u32`` or ``u64`` wide), a vector's or string's content after its ``u32`` length;
      absent (default) fields have no span.
    """
    schema = _schema_of(cls)
    data = _as_bytes(data)
    c = resolve_codec(codec)
    decode(cls, data, c)  # the bytes must be a valid message first
    out: Dict[str, Tuple[int, int]] = {}
    if c is PayloadCodec.PROTOBUF:
        by_number = {f.pb_number: f for f in schema.fields}
        for number, _wire, start, end in _pb_walk(schema, data):
            f = by_number.get(number)
            if f is not None:
                out[f.attr] = (start, end)
    elif c is PayloadCodec.FLATBUFFERS:
        t = _FlatTable(data, schema.name)
        for f in schema.fields:
            sp = t.span(f)
            if sp is not None:
                out[f.attr] = sp
    else:
        by_key = {f.key: f for f in schema.fields}
        r = Reader(data, context=schema.name, vid_prefix="CODEC-CBOR")
        _major, _ai, n, _tags = r.head_skip_tags()
        count = 0
        while r.more(n, count):
            k = r.item(1)
            start = r.pos
            r.item(1)
            f = by_key.get(k.decode("utf-8", "replace") if isinstance(k, bytes) else k)
            if f is not None:
                out[f.attr] = (start, r.pos)
            count += 1
    return out


# ---------------------------------------------------------------------------------------------
# CBOR (RFC 8949) — the codec is :mod:`gbp_lab.core.cbor`; here only the schema → spec glue
# ---------------------------------------------------------------------------------------------
#: Older names of the :mod:`gbp_lab.core.cbor` pull/push pair (kept for importers).
CborWriter = Writer
CborReader = Reader
cbor_encode_int_map = encode_map

_CBOR_KIND = {Kind.BYTES: _cbor.BSTR, Kind.TEXT: _cbor.TSTR}
_CBOR_SPECS: Dict[int, Tuple[MessageSchema, Tuple[Tuple[str, str, int, str], ...]]] = {}


def cbor_spec(schema: MessageSchema) -> Tuple[Tuple[str, str, int, str], ...]:
    """*schema* as a :func:`gbp_lab.core.cbor.decode_map` spec: ``(key, kind, max, attr)`` rows."""
    hit = _CBOR_SPECS.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    spec = tuple((f.key, _cbor.UINT, (1 << f.kind.value) - 1, f.attr) if f.kind.is_int
                 else (f.key, _CBOR_KIND[f.kind], 0, f.attr) for f in schema.fields)
    _CBOR_SPECS[id(schema)] = (schema, spec)
    return spec


def cbor_decode_item(data: bytes, *, context: str = "cbor", allow_trailing: bool = False) -> Any:
    """Decode exactly one CBOR item (trailing bytes rejected unless *allow_trailing*)."""
    return _cbor.decode_item(data, context=context, allow_trailing=allow_trailing)


def cbor_encode_text_map(schema: MessageSchema, values: Mapping[str, Any]) -> bytes:
    """The serde/ciborium form: definite map, text keys in schema order, shortest integers
    (*values* by attribute name)."""
    return _cbor.encode_text_map(cbor_spec(schema), values)


def cbor_decode_text_map(schema: MessageSchema, data: bytes) -> Dict[str, Any]:
    """Read the serde/ciborium form of *schema* (:attr:`gbp_lab.core.cbor.Leniency.SERDE`): any
    key order, unknown keys ignored, duplicate known keys / missing keys / wrong types /
    out-of-range integers / trailing bytes rejected. Returns values by attribute name."""
    values, _ = _cbor.decode_map(data, cbor_spec(schema), "CODEC-CBOR", schema.name,
                                 leniency=_cbor.Leniency.SERDE, range_vid="CODEC-RANGE")
    return values


_cbor_encode = cbor_encode_text_map
_cbor_decode = cbor_decode_text_map
_new = object.__new__
_setattr = object.__setattr__
#: payload class -> (values matcher, attribute names) of :func:`decode`'s fast path
_CBOR_FAST: Dict[type, Tuple[Any, Tuple[str, ...]]] = {}
_CBOR_VALUES: Dict[tuple, Tuple[MessageSchema, Any]] = {}


def cbor_values_matcher(schema: MessageSchema, attrs: Optional[Sequence[str]] = None):
    """``match(data) -> tuple | None``: the field values of *schema* (in schema order; only
    *attrs*, if given) when *data* is its canonical CBOR — the serde form with keys in schema
    order, shortest heads, nothing after the map (:mod:`gbp_lab.core.cbor_shape`) — and its
    declared lengths agree with the data (``len``/``alen``); ``None`` for anything else, which
    :func:`decode` then reads with the full serde-compatible decoder (accepting more, or naming
    the problem). On every input where the matcher returns values, :func:`decode` returns a
    message with those values. Matchers are compiled once per (schema, attrs)."""
    ck = (id(schema), None if attrs is None else tuple(attrs))
    hit = _CBOR_VALUES.get(ck)
    if hit is not None and hit[0] is schema:
        return hit[1]
    key_of = {f.attr: f.key for f in schema.fields}
    match = compile_shape(cbor_spec(schema), equal_lengths=[
        (key_of[a], key_of[b]) for a, b in schema.length_checks],
        values=None if attrs is None else [key_of[a] for a in attrs])
    _CBOR_VALUES[ck] = (schema, match)
    return match


def _cbor_fast_for(cls: type) -> Tuple[Any, Tuple[str, ...]]:
    schema = _schema_of(cls)
    if tuple(f.name for f in dc_fields(cls)) != tuple(f.attr for f in schema.fields):
        raise UsageError(f"{cls.__name__}: dataclass fields differ from its schema",
                         vid="CODEC-SELECT")  # pragma: no cover - a programming error
    hit = _CBOR_FAST[cls] = (cbor_values_matcher(schema), tuple(f.attr for f in schema.fields))
    return hit


# ---------------------------------------------------------------------------------------------
# Protobuf (proto3) — descriptors built programmatically
# ---------------------------------------------------------------------------------------------
_PB_POOL = descriptor_pool.DescriptorPool()
_PB_CLASSES: Dict[str, type] = {}
_FDP = descriptor_pb2.FieldDescriptorProto


def _pb_type(f: FieldSpec) -> int:
    if f.kind is Kind.BYTES:
        return _FDP.TYPE_BYTES
    if f.kind is Kind.TEXT:
        return _FDP.TYPE_STRING
    return _FDP.TYPE_UINT64 if f.pb_bits > 32 else _FDP.TYPE_UINT32


def register_protobuf(schemas: Sequence[MessageSchema]) -> None:
    """Build the proto3 message classes of *schemas* (one .proto file per package) in our private
    descriptor pool. Called at import time by each message module."""
    by_pkg: Dict[str, List[MessageSchema]] = {}
    for s in schemas:
        if s.full_name not in _PB_CLASSES:
            by_pkg.setdefault(s.pb_package, []).append(s)
    for pkg, group in by_pkg.items():
        fdp = descriptor_pb2.FileDescriptorProto(
            name=f"gbp_lab/{pkg}_{'_'.join(s.name for s in group)}.proto",
            package=pkg, syntax="proto3")
        for s in group:
            mp = fdp.message_type.add(name=s.name)
            for f in s.fields:
                mp.field.add(name=f.attr, number=f.pb_number, type=_pb_type(f),
                             label=_FDP.LABEL_OPTIONAL, json_name=f.attr)
        _PB_POOL.Add(fdp)
        for s in group:
            _PB_CLASSES[s.full_name] = message_factory.GetMessageClass(
                _PB_POOL.FindMessageTypeByName(s.full_name))


def protobuf_class(schema: MessageSchema) -> type:
    """The generated-at-import protobuf message class for *schema*."""
    return _PB_CLASSES[schema.full_name]


def _pb_encode(schema: MessageSchema, values: Mapping[str, Any]) -> bytes:
    return protobuf_class(schema)(**dict(values)).SerializeToString()


_PB_WIRE = {Kind.BYTES: 2, Kind.TEXT: 2}


def _pb_walk(schema: MessageSchema, data: bytes) -> List[Tuple[int, int, int, int]]:
    """The Protobuf wire walk: ``(field number, wire type, value start, value end)`` per field
    record in order, the value span excluding the tag (and, for length-delimited fields, the
    length varint: ``data[start:end]`` is the bytes/string content). Refuses a varint whose value
    does not fit 64 bits (10th byte above 1): prost rejects it, the Python runtime silently
    truncates it; and a record running past the end."""
    pos, n = 0, len(data)
    out: List[Tuple[int, int, int, int]] = []

    def varint() -> int:
        nonlocal pos
        value = shift = 0
        for i in range(10):
            if pos >= n:
                raise TruncatedError(f"{schema.name}: protobuf varint truncated",
                                     vid="CODEC-PB-MALFORMED", where=pos)
            b = data[pos]
            pos += 1
            if i == 9 and b > 1:
                raise DecodeError(f"{schema.name}: protobuf varint overflows 64 bits",
                                  vid="CODEC-PB-MALFORMED", where=pos - 10)
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value
        raise DecodeError(f"{schema.name}: protobuf varint longer than 10 bytes",
                          vid="CODEC-PB-MALFORMED", where=pos - 10)

    while pos < n:
        tag = varint()
        wire = tag & 7
        start = pos
        if wire == 0:
            varint()
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length = varint()  # (not `pos += varint()`: varint() moves pos itself)
            start = pos
            pos += length
        elif wire == 5:
            pos += 4
        # wire types 3/4 (group start/end) carry nothing themselves
        if pos > n:
            raise TruncatedError(f"{schema.name}: protobuf field {tag >> 3} runs past the end",
                                 vid="CODEC-PB-MALFORMED", where=start)
        out.append((tag >> 3, wire, start, pos))
    return out


def _pb_check_varints(schema: MessageSchema, data: bytes) -> None:
    """Refuse a varint that overflows 64 bits (:func:`_pb_walk`). Runs after a successful
    parse, so the wire structure is already known to be sound."""
    _pb_walk(schema, data)


def _pb_decode(schema: MessageSchema, data: bytes) -> Dict[str, Any]:
    m = protobuf_class(schema)()
    try:
        m.ParseFromString(data)
    except _pb_message.DecodeError as e:
        raise DecodeError(f"{schema.name}: protobuf: {e}", vid="CODEC-PB-MALFORMED") from None
    except (ValueError, RuntimeError) as e:  # defensive: the runtime reports some cases so
        raise DecodeError(f"{schema.name}: protobuf: {e}", vid="CODEC-PB-MALFORMED") from None
    _pb_check_varints(schema, data)
    known = {f.pb_number: f for f in schema.fields}
    for uf in _pb_unknown.UnknownFieldSet(m):
        f = known.get(uf.field_number)
        if f is not None:
            # prost refuses a known field with the wrong wire type; upb keeps it as unknown.
            raise DecodeError(
                f"{schema.name}: field {uf.field_number} ({f.attr}) has wire type "
                f"{uf.wire_type}, expected {_PB_WIRE.get(f.kind, 0)}",
                vid="CODEC-PB-WIRETYPE", where=f.attr)
    out: Dict[str, Any] = {}
    for f in schema.fields:
        v = getattr(m, f.attr)
        if f.kind.is_int:
            v = check_int(v, f.kind.value, where=f.attr, decoding=True)
        out[f.attr] = v
    return out


# ---------------------------------------------------------------------------------------------
# FlatBuffers
# ---------------------------------------------------------------------------------------------
def _fb_encode(schema: MessageSchema, values: Mapping[str, Any]) -> bytes:
    b = flatbuffers.Builder(64)
    offsets: Dict[str, int] = {}
    for f in schema.fields:  # vectors and strings first (they cannot be built inside a table)
        v = values[f.attr]
        if f.kind is Kind.BYTES:
            if v or f.attr not in schema.fb_omit_empty:
                offsets[f.attr] = b.CreateByteVector(v)
        elif f.kind is Kind.TEXT:
            offsets[f.attr] = b.CreateString(v)
    b.StartObject(len(schema.fields))
    # Largest scalars first, as flatc/planus do to avoid padding (any order is valid).
    for f in sorted(schema.fields, key=lambda f: -f.pb_bits):
        v = values[f.attr]
        if f.kind.is_int:
            if f.pb_bits > 32:
                b.PrependUint64Slot(f.fb_slot, v, 0)
            else:
                b.PrependUint32Slot(f.fb_slot, v, 0)
        elif f.attr in offsets:
            b.PrependUOffsetTRelativeSlot(f.fb_slot, offsets[f.attr], 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


class _FlatTable:
    """A FlatBuffers table whose offsets are checked against the buffer before the
    ``flatbuffers.table.Table`` accessors read them (they do no checking themselves)."""

    def __init__(self, buf: bytes, name: str) -> None:
        self.buf, self.name = buf, name
        n = len(buf)
        self._need(0, 4, "root offset")
        pos = int.from_bytes(buf[0:4], "little")
        self._need(pos, 4, "table")
        soff = int.from_bytes(buf[pos:pos + 4], "little", signed=True)
        vt = pos - soff
        if vt < 0 or vt + 4 > n:
            raise self._bad(f"vtable at {vt} outside the buffer")
        vt_size = int.from_bytes(buf[vt:vt + 2], "little")
        tbl_size = int.from_bytes(buf[vt + 2:vt + 4], "little")
        if vt_size < 4 or vt_size & 1:
            raise self._bad(f"vtable size {vt_size} invalid")
        self._need(vt, vt_size, "vtable")
        # The table size in the vtable is not trusted (planus ignores it): every field is
        # checked against the buffer instead.
        self.pos, self.vt, self.vt_size, self.tbl_size = pos, vt, vt_size, tbl_size
        self.table = _FbTable(buf, pos)

    def _bad(self, msg: str) -> DecodeError:
        return DecodeError(f"{self.name}: flatbuffers: {msg}", vid="CODEC-FB-BOUNDS")

    def _need(self, start: int, size: int, what: str) -> None:
        if start < 0 or start + size > len(self.buf):
            raise TruncatedError(
                f"{self.name}: flatbuffers: {what} [{start}, +{size}) outside {len(self.buf)} bytes",
                vid="CODEC-FB-BOUNDS", where=start)

    def field_offset(self, slot: int, width: int, what: str) -> int:
        """Offset of field *slot* inside the table, 0 when absent; bounds checked."""
        vo = 4 + 2 * slot
        if vo + 2 > self.vt_size:
            return 0
        off = int.from_bytes(self.buf[self.vt + vo:self.vt + vo + 2], "little")
        if off == 0:
            return 0
        # planus accepts offsets below 4 (overlapping the table's own soffset); so do we.
        self._need(self.pos + off, width, what)
        return off

    def scalar(self, slot: int, bits: int, what: str) -> int:
        off = self.field_offset(slot, bits // 8, what)
        if not off:
            return 0
        flags = _fbn.Uint64Flags if bits > 32 else _fbn.Uint32Flags
        return int(self.table.Get(flags, self.pos + off))

    def _vector_span(self, slot: int, what: str) -> Optional[Tuple[int, int]]:
        off = self.field_offset(slot, 4, what)
        if not off:
            return None
        ref = self.pos + off
        target = ref + int.from_bytes(self.buf[ref:ref + 4], "little")
        self._need(target, 4, f"{what} length")
        length = self.table.VectorLen(off)
        self._need(target + 4, length, what)
        return self.table.Vector(off), length

    def span(self, f: FieldSpec) -> Optional[Tuple[int, int]]:
        """``(start, end)`` of field *f* in the buffer: a scalar's little-endian bytes, a
        vector's or string's content (after its u32 length); ``None`` when absent (default)."""
        if f.kind.is_int:
            width = f.pb_bits // 8 if f.pb_bits > 32 else 4
            off = self.field_offset(f.fb_slot, width, f.attr)
            return (self.pos + off, self.pos + off + width) if off else None
        vs = self._vector_span(f.fb_slot, f.attr)
        return None if vs is None else (vs[0], vs[0] + vs[1])

    def byte_vector(self, slot: int, what: str) -> Optional[bytes]:
        span = self._vector_span(slot, what)
        if span is None:
            return None
        start, length = span
        return bytes(self.buf[start:start + length])

    def string(self, slot: int, what: str) -> Optional[str]:
        raw = self.byte_vector(slot, what)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError(f"{self.name}: flatbuffers: {what} is not UTF-8",
                              vid="CODEC-FB-UTF8", where=what) from None


def _fb_decode(schema: MessageSchema, data: bytes) -> Dict[str, Any]:
    t = _FlatTable(data, schema.name)
    out: Dict[str, Any] = {}
    for f in schema.fields:
        if f.kind.is_int:
            v = t.scalar(f.fb_slot, f.pb_bits, f.attr)
            out[f.attr] = check_int(v, f.kind.value, where=f.attr, decoding=True)
        elif f.kind is Kind.BYTES:
            out[f.attr] = t.byte_vector(f.fb_slot, f.attr) or b""
        else:
            out[f.attr] = t.string(f.fb_slot, f.attr) or ""
    return out


# ---------------------------------------------------------------------------------------------
# mixin for the message dataclasses
# ---------------------------------------------------------------------------------------------
class PayloadMessage:
    """Mixin giving a frozen payload dataclass ``to_bytes``/``from_bytes`` in every codec.

    Subclasses set ``SCHEMA`` (a :class:`MessageSchema`) and call :func:`validate_fields` in
    ``__post_init__``."""

    SCHEMA: ClassVar[MessageSchema]

    def to_bytes(self, codec: Any = PayloadCodec.CBOR) -> bytes:
        """Encode in *codec* (unknown codec numbers mean CBOR)."""
        return encode(self, codec)

    @classmethod
    def from_bytes(cls: Type[T], data: Any, codec: Any = PayloadCodec.CBOR) -> T:
        """Decode *data* in *codec*; bad bytes raise :class:`~gbp_lab.core.errors.DecodeError`."""
        return decode(cls, data, codec)

    def to_cbor(self) -> bytes:
        return encode(self, PayloadCodec.CBOR)

    @classmethod
    def from_cbor(cls: Type[T], data: Any) -> T:
        return decode(cls, data, PayloadCodec.CBOR)
