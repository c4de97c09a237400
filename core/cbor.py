"""CBOR (RFC 8949), the wire codec the GBP maps and the sub-protocol payloads are written in: a
push/pull pair, like :mod:`.tls` for the MLS side.

Push (always the same form, the one the reference's serde + ciborium writes):

* :func:`enc_head` / :func:`enc_uint` / :func:`enc_bstr` / :func:`enc_tstr` / :func:`enc_bool` —
  pre-encoded pieces for hand-tuned hot paths (the frame encoder); heads in the shortest form
  (RFC 8949 §3.1, preferred serialization §4.2.1 / §4.2.2 rule 1).
* :class:`Writer` — a buffer with ``uint``/``int``/``bstr``/``tstr``/``bool``/``float``/``array``/
  ``map`` and ``value`` for generic Python values; definite lengths only; floats in their
  shortest exact width (f16/f32/f64, §4.2.2), as ciborium writes them.
* :func:`encode_fields` / :func:`encode_text_map` / :func:`encoder` — a definite-length map with
  text keys in the order of a *spec* (serde field order, not the §4.2.1 sorted order; the same
  specs :func:`decode_map` reads), :func:`encode_map` — any keys, in the given order.

Pull:

* :class:`Reader` — a bounded generic reader: every declared length is compared with the input
  left before anything is sliced (no allocation beyond the input's own size), nesting of
  arrays/maps/tags is limited to :data:`MAX_DEPTH` (ciborium's recursion limit, 256), every
  failure is a typed :class:`~gbp_lab.core.errors.DecodeError` whose vid starts with the
  reader's ``vid_prefix`` (``-MALFORMED``, ``-TRUNCATED``, ``-TRAILING``).
* :func:`decode_item` — exactly one item, trailing bytes rejected.
* :func:`decode_map` — one map with text keys described by a *spec* of ``(key, kind, max[, name])``
  rows (kinds :data:`UINT` :data:`BSTR` :data:`TSTR` :data:`BOOL`; ``max`` is the largest
  unsigned value, negative for an optional key; ``name`` is what errors report in ``where``).
  What it accepts is an explicit :class:`Leniency`:

  - :attr:`Leniency.STRICT` (GBP frame, control message, error object): the values must be of
    the exact CBOR type (a byte field is a byte string, no tags other than the ones cbor2 itself
    resolves), keys that are not text are skipped, problems are reported in the order the
    reference's decoder meets them and can be *collected* (``strict=False``) instead of raised,
    which the lenient frame decoder and the dissectors use.
  - :attr:`Leniency.SERDE` (GTP/GAP/GSP payloads): what serde + ciborium accept, checked against
    the reference wheel (``tests/test_codecs_interop.py``): tags anywhere are ignored, an integer
    may be a bignum (tag 2/3 directly on a byte string, RFC 8949 §3.4.3), a byte field may be an
    array of u8, keys may be byte strings, lengths may be indefinite, unknown values may nest
    down to :data:`MAX_DEPTH`; a key that is neither text nor bytes, a repeated known key, a
    missing key, a wrong type or an out-of-range integer is an error, raised where it is met.

  Both reject bytes after the map (the reference's ciborium stops after one item; we do not).

Only the canonical form re-encodes to the same bytes. :func:`fast_loads` is cbor2's C decoder
for callers that verify the result themselves (the frame fast path checks that the input has
exactly the length of the shortest encoding of what it decoded).
"""
from __future__ import annotations

import builtins
import io
import struct
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import cbor2

from .errors import DecodeError, TrailingBytesError, TruncatedError, UsageError

__all__ = [
    "MAX_DEPTH",
    "UINT",
    "BSTR",
    "TSTR",
    "BOOL",
    "U8",
    "U16",
    "U32",
    "U64",
    "enc_head",
    "enc_uint",
    "enc_bstr",
    "enc_tstr",
    "enc_key",
    "enc_bool",
    "head_len",
    "Writer",
    "encode_text_map",
    "encode_fields",
    "encoder",
    "encode_map",
    "CborTag",
    "CborSimple",
    "Reader",
    "decode_item",
    "as_bytes",
    "untag",
    "bignum",
    "Leniency",
    "decode_map",
    "fast_loads",
    "map_header_count",
]

#: Deepest nesting of arrays/maps/tags the reader follows (ciborium's recursion limit).
MAX_DEPTH = 256

#: Value kinds of :func:`decode_map` / :func:`encode_text_map` specs.
UINT, BSTR, TSTR, BOOL = "uint", "bstr", "tstr", "bool"
#: Largest values of the reference's unsigned struct fields (the ``max`` column of a spec).
U8, U16, U32, U64 = 0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF

# ---------------------------------------------------------------------------------------------
# push
# ---------------------------------------------------------------------------------------------
_pack_B = struct.Struct(">BB").pack
_pack_H = struct.Struct(">BH").pack
_pack_I = struct.Struct(">BI").pack
_pack_Q = struct.Struct(">BQ").pack


def enc_head(major: int, n: int) -> bytes:
    """Initial byte(s) for major type *major* (already shifted, e.g. ``0x40``) and the
    non-negative argument *n*, in the shortest form (RFC 8949 §3.1, §4.2.1)."""
    if n < 24:
        return bytes((major | n,))
    if n < 0x100:
        return _pack_B(major | 24, n)
    if n < 0x10000:
        return _pack_H(major | 25, n)
    if n < 0x100000000:
        return _pack_I(major | 26, n)
    if n < 0x10000000000000000:
        return _pack_Q(major | 27, n)
    raise UsageError(f"CBOR argument {n} does not fit 64 bits", vid="CBOR-RANGE")


def enc_uint(n: int) -> bytes:
    """Shortest-form unsigned integer (major type 0)."""
    return enc_head(0x00, n)


def enc_bstr(b: bytes) -> bytes:
    """Byte string (major type 2), definite length."""
    return enc_head(0x40, len(b)) + b


def enc_tstr(s: str) -> bytes:
    """Text string (major type 3, UTF-8), definite length."""
    b = s.encode("utf-8")
    return enc_head(0x60, len(b)) + b


_F64 = struct.Struct(">d")


def _f64_bits(x: float) -> int:
    """The IEEE 754 binary64 bit pattern of *x* (tells -0.0 from 0.0 and NaN payloads apart)."""
    return int.from_bytes(_F64.pack(x), "big")


#: (initial byte, struct) of the narrower float widths, narrowest first (RFC 8949 §3.3)
_FLOAT_FORMS = ((0xF9, struct.Struct(">e")), (0xFA, struct.Struct(">f")))

#: A text map key, pre-encoded (serde writes struct field names as text strings).
enc_key = enc_tstr


def enc_bool(v: bool) -> bytes:
    """``true`` (0xF5) or ``false`` (0xF4), RFC 8949 §3.3."""
    return b"\xf5" if v else b"\xf4"


def head_len(n: int) -> int:
    """Length of the shortest head carrying argument *n* (1, 2, 3, 5 or 9 bytes)."""
    return 1 if n < 24 else 2 if n < 0x100 else 3 if n < 0x10000 else 5 if n < 0x100000000 else 9


class Writer:
    """Push side: appends items to a buffer; shortest-form heads, definite lengths only.

    >>> Writer().map(1).tstr("a").uint(500).getvalue().hex()
    'a161611901f4'
    """

    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out = bytearray()

    def head(self, major: int, value: int) -> "Writer":
        """Initial byte + argument for major type *major* (0..7, not shifted)."""
        if value < 0:
            raise UsageError(f"CBOR argument {value} is negative", vid="CBOR-RANGE")
        if value < 24:
            self.out.append((major << 5) | value)
        else:
            self.out += enc_head(major << 5, value)
        return self

    def raw(self, data: bytes) -> "Writer":
        """Already-encoded CBOR."""
        self.out += data
        return self

    def uint(self, value: int) -> "Writer":
        return self.head(0, value)

    def int(self, value: int) -> "Writer":
        return self.head(0, value) if value >= 0 else self.head(1, -1 - value)

    def bstr(self, value: bytes) -> "Writer":
        self.head(2, len(value))
        self.out += value
        return self

    def tstr(self, value: str) -> "Writer":
        raw = value.encode("utf-8")
        self.head(3, len(raw))
        self.out += raw
        return self

    def bool(self, value: bool) -> "Writer":
        self.out.append(0xF5 if value else 0xF4)
        return self

    def array(self, n: builtins.int) -> "Writer":
        """Head of a definite-length array of *n* items (push them next)."""
        return self.head(4, n)

    def map(self, n: builtins.int) -> "Writer":
        """Head of a definite-length map of *n* pairs (push key, value, key, value …)."""
        return self.head(5, n)

    def float(self, value: builtins.float) -> "Writer":
        """A float in its shortest exact form (RFC 8949 §4.2.2 preferred serialization, as the
        reference's ciborium writes it): half precision (``0xF9``) if the value survives the
        round trip bit for bit, else single (``0xFA``), else double (``0xFB``). Infinities, -0.0
        and the default quiet NaN fit in two bytes; a NaN whose payload does not fit is widened."""
        bits = _f64_bits(value)
        if value != value:  # NaN: struct drops payloads, so narrow the bits by hand
            sign, payload = bits >> 63, bits & (1 << 52) - 1
            if not payload & (1 << 42) - 1:
                self.out += bytes([0xF9]) + (sign << 15 | 0x7C00 | payload >> 42).to_bytes(2, "big")
            elif not payload & (1 << 29) - 1:
                self.out += bytes([0xFA]) + (sign << 31 | 0x7F800000 | payload >> 29).to_bytes(4, "big")
            else:
                self.out += bytes([0xFB]) + bits.to_bytes(8, "big")
            return self
        for head, fmt in _FLOAT_FORMS:
            try:
                packed = fmt.pack(value)
            except OverflowError:  # finite but too large for this width
                continue
            if _f64_bits(fmt.unpack(packed)[0]) == bits:
                self.out.append(head)
                self.out += packed
                return self
        self.out.append(0xFB)
        self.out += _F64.pack(value)
        return self

    def value(self, v: Any) -> "Writer":
        """Any of: int, float (shortest exact width, :meth:`float`), bytes, str, bool, None, list/tuple, mapping (insertion
        order kept)."""
        if isinstance(v, bool):
            self.out.append(0xF5 if v else 0xF4)
        elif v is None:
            self.out.append(0xF6)
        elif isinstance(v, int):
            self.int(v)
        elif isinstance(v, float):
            self.float(v)
        elif isinstance(v, (bytes, bytearray, memoryview)):
            self.bstr(bytes(v))
        elif isinstance(v, str):
            self.tstr(v)
        elif isinstance(v, (list, tuple)):
            self.head(4, len(v))
            for item in v:
                self.value(item)
        elif isinstance(v, Mapping):
            self.map(len(v))
            for k, item in v.items():
                self.value(k)
                self.value(item)
        else:
            raise UsageError(f"cannot CBOR-encode {type(v).__name__}", vid="CBOR-TYPE")
        return self

    def getvalue(self) -> bytes:
        return bytes(self.out)


_ENC_PLANS: Dict[int, Tuple[Any, Tuple[str, ...], Any]] = {}
_ENC_BY_KIND = {UINT: "enc_uint", BSTR: "enc_bstr", TSTR: "enc_tstr", BOOL: "enc_bool"}


def _enc_plan(spec: Sequence[Tuple[Any, ...]]) -> Tuple[Any, Tuple[str, ...], Any]:
    """(spec, value names, encoder) for *spec*; cached by identity (specs are module constants).

    The encoder is generated once per spec as a single ``b"".join`` of pre-encoded keys and
    ``enc_*`` calls — as fast as a hand-written one (the GBP control path uses it)."""
    plan = _ENC_PLANS.get(id(spec))
    if plan is None or plan[0] is not spec:
        if len(_ENC_PLANS) > 256:  # specs are constants; bound the cache for ad-hoc ones
            _ENC_PLANS.clear()
        ns: Dict[str, Any] = {"enc_uint": enc_uint, "enc_bstr": enc_bstr, "enc_tstr": enc_tstr,
                              "enc_bool": enc_bool, "HEAD": enc_head(0xA0, len(spec))}
        items = []
        for i, row in enumerate(spec):
            ns[f"K{i}"] = enc_tstr(row[0])
            items.append(f"K{i}, {_ENC_BY_KIND[row[1]]}(v[{i}])")
        src = f"def encode(v):\n    return b''.join((HEAD, {', '.join(items)}))\n"
        exec(src, ns)  # noqa: S102 — source built from fixed templates and indices only
        names = tuple(row[3] if len(row) > 3 else row[0] for row in spec)
        plan = _ENC_PLANS[id(spec)] = (spec, names, ns["encode"])
    return plan


def encoder(spec: Sequence[Tuple[Any, ...]]) -> Callable[[Sequence[Any]], bytes]:
    """The function ``values -> bytes`` that :func:`encode_fields` uses for *spec*: for hot paths
    that check their values themselves (it does no length or type checks)."""
    return _enc_plan(spec)[2]


def encode_fields(spec: Sequence[Tuple[Any, ...]], values: Sequence[Any]) -> bytes:
    """The serde/ciborium form of a struct: a definite-length map whose text keys are the spec's
    keys in spec order, with *values* (one per spec row, same order) written as the row's kind
    says: uint in shortest form, bstr, tstr, bool. Every row is written (serde writes all
    fields)."""
    _, names, encode = _enc_plan(spec)
    if len(values) != len(names):
        raise UsageError(f"{len(values)} values for {len(names)} map entries", vid="CBOR-TYPE")
    return encode(values)


def encode_text_map(spec: Sequence[Tuple[Any, ...]], values: Mapping[str, Any]) -> bytes:
    """:func:`encode_fields` with the values taken from ``values[name]`` (``name`` = the row's
    4th column, else its key)."""
    _, names, encode = _enc_plan(spec)
    return encode([values[name] for name in names])


def encode_map(pairs: Union[Mapping[Any, Any], Iterable[Tuple[Any, Any]]]) -> bytes:
    """A definite-length map with the given keys and values in the given order (e.g. the
    integer-keyed GSP ``args``)."""
    items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
    w = Writer().map(len(items))
    for k, v in items:
        w.value(k).value(v)
    return w.getvalue()


# ---------------------------------------------------------------------------------------------
# pull: generic items
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CborTag:
    """A tagged item the generic reader does not interpret (RFC 8949 §3.4)."""

    tag: int
    value: Any


@dataclass(frozen=True)
class CborSimple:
    """A simple value other than false/true/null/undefined (RFC 8949 §3.3)."""

    value: int


def as_bytes(data: Any, vid: str) -> bytes:
    """*data* as ``bytes`` (bytearray/memoryview copied); anything else is a
    :class:`~gbp_lab.core.errors.UsageError` with *vid*."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise UsageError(f"expected bytes, got {type(data).__name__}", vid=vid)


class Reader:
    """Pull side over ``data`` (RFC 8949 §3): heads, strings, generic items.

    Lengths are compared with the remaining input before anything is sliced, so no declared
    length makes it allocate more than the input holds; nesting is limited to :data:`MAX_DEPTH`.
    Errors are :class:`DecodeError` with vids ``{vid_prefix}-MALFORMED``, ``-TRUNCATED``
    (:class:`TruncatedError`) and ``-TRAILING`` (:class:`TrailingBytesError`).
    """

    __slots__ = ("data", "pos", "context", "vid_prefix")

    def __init__(self, data: bytes, context: str = "cbor", vid_prefix: str = "CODEC-CBOR") -> None:
        self.data = data
        self.pos = 0
        self.context = context
        self.vid_prefix = vid_prefix

    # -- errors -------------------------------------------------------------------------------
    def _err(self, msg: str) -> DecodeError:
        return DecodeError(f"{self.context}: {msg}", vid=f"{self.vid_prefix}-MALFORMED",
                           where=self.pos)

    def need(self, n: int, what: str) -> None:
        """Raise :class:`TruncatedError` unless *n* more bytes are left."""
        if n > len(self.data) - self.pos:
            raise TruncatedError(
                f"{self.context}: {what} needs {n} bytes, {len(self.data) - self.pos} left",
                vid=f"{self.vid_prefix}-TRUNCATED", where=self.pos)

    # -- heads ----------------------------------------------------------------------------------
    def head(self) -> Tuple[int, int, Optional[int]]:
        """(major type, additional info, argument); argument is ``None`` for ai 31 (indefinite
        length, RFC 8949 §3.2)."""
        self.need(1, "initial byte")
        ib = self.data[self.pos]
        self.pos += 1
        major, ai = ib >> 5, ib & 0x1F
        if ai < 24:
            return major, ai, ai
        if ai <= 27:
            n = 1 << (ai - 24)
            self.need(n, "argument")
            v = int.from_bytes(self.data[self.pos:self.pos + n], "big")
            self.pos += n
            return major, ai, v
        if ai == 31:
            if major in (0, 1, 6):
                raise self._err(f"indefinite length not allowed for major type {major}")
            return major, ai, None
        raise self._err(f"reserved additional information {ai}")

    def head_skip_tags(self) -> Tuple[int, int, Optional[int], List[int]]:
        """A head after any leading tags (at most :data:`MAX_DEPTH`); also returns the tags."""
        tags: List[int] = []
        major, ai, arg = self.head()
        while major == 6:
            tags.append(arg)  # type: ignore[arg-type]
            if len(tags) > MAX_DEPTH:
                raise self._err(f"more than {MAX_DEPTH} nested tags")
            major, ai, arg = self.head()
        return major, ai, arg, tags

    def more(self, n: Optional[int], count: int) -> bool:
        """Whether a container of *n* entries (``None``: indefinite) has another after *count*;
        consumes the break that ends an indefinite one."""
        if n is not None:
            return count < n
        self.need(1, "container entry")
        if self.data[self.pos] == 0xFF:
            self.pos += 1
            return False
        return True

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def expect_end(self) -> None:
        """Raise :class:`TrailingBytesError` if bytes are left."""
        if self.pos != len(self.data):
            raise TrailingBytesError(
                f"{self.context}: {len(self.data) - self.pos} bytes after the item",
                vid=f"{self.vid_prefix}-TRAILING", where=self.pos)

    # -- strings --------------------------------------------------------------------------------
    def string_body(self, major: int, arg: Optional[int]) -> bytes:
        """Body of a byte/text string whose head was read (indefinite: chunks of the same major
        type, RFC 8949 §3.2.3)."""
        if arg is not None:
            self.need(arg, "string")
            out = self.data[self.pos:self.pos + arg]
            self.pos += arg
            return out
        parts: List[bytes] = []
        while True:
            self.need(1, "string chunk")
            if self.data[self.pos] == 0xFF:
                self.pos += 1
                return b"".join(parts)
            m, _ai, n = self.head()
            if m != major or n is None:
                raise self._err("bad chunk in indefinite-length string")
            self.need(n, "string chunk")
            parts.append(self.data[self.pos:self.pos + n])
            self.pos += n

    def text(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self._err("text string is not valid UTF-8") from None

    # -- generic items --------------------------------------------------------------------------
    def item(self, depth: int = 0) -> Any:
        """One item as Python values: int, bytes, str, list, dict, bool, None, float,
        :class:`CborTag`, :class:`CborSimple`. Map keys that are unhashable become tuples."""
        if depth > MAX_DEPTH:
            raise self._err(f"nesting deeper than {MAX_DEPTH}")
        major, ai, arg = self.head()
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg  # type: ignore[operator]
        if major == 2:
            return self.string_body(2, arg)
        if major == 3:
            return self.text(self.string_body(3, arg))
        if major == 4:
            out: List[Any] = []
            if arg is not None:
                self.need(arg, "array items")  # each item takes at least one byte
            while self.more(arg, len(out)):
                out.append(self.item(depth + 1))
            return out
        if major == 5:
            return {_hashable(k): v for k, v in self.map_entries(arg, depth)}
        if major == 6:
            return CborTag(arg, self.item(depth + 1))  # type: ignore[arg-type]
        # major 7 (RFC 8949 §3.3)
        if ai <= 24:
            if ai == 20:
                return False
            if ai == 21:
                return True
            if ai == 22:
                return None
            if ai == 24 and arg < 32:  # type: ignore[operator]
                raise self._err("two-byte simple value below 32")
            return CborSimple(arg)  # type: ignore[arg-type]
        if ai == 25:
            return struct.unpack(">e", arg.to_bytes(2, "big"))[0]  # type: ignore[union-attr]
        if ai == 26:
            return struct.unpack(">f", arg.to_bytes(4, "big"))[0]  # type: ignore[union-attr]
        if ai == 27:
            return struct.unpack(">d", arg.to_bytes(8, "big"))[0]  # type: ignore[union-attr]
        raise self._err("unexpected break")  # ai 31 outside an indefinite container

    def map_entries(self, n: Optional[int], depth: int = 0) -> List[Tuple[Any, Any]]:
        """The (key, value) pairs, in wire order and with repeats kept, of a map at nesting
        *depth* whose head (argument *n*) was just read."""
        if n is not None:
            self.need(2 * n, "map entries")
        out: List[Tuple[Any, Any]] = []
        while self.more(n, len(out)):
            k = self.item(depth + 1)
            out.append((k, self.item(depth + 1)))
        return out

    def skip(self, depth: int = 0) -> None:
        """Consume one well-formed item (e.g. the value of an unknown key at nesting *depth*)."""
        self.item(depth)


def _hashable(k: Any) -> Any:
    """A dict key for a decoded map key: arrays become tuples, maps tuples of pairs."""
    if isinstance(k, list):
        return tuple(_hashable(x) for x in k)
    if isinstance(k, dict):
        return tuple((a, _hashable(b)) for a, b in k.items())
    if isinstance(k, CborTag):
        return CborTag(k.tag, _hashable(k.value))
    return k


def decode_item(data: bytes, *, context: str = "cbor", allow_trailing: bool = False,
                vid_prefix: str = "CODEC-CBOR") -> Any:
    """Decode exactly one CBOR item (trailing bytes rejected unless *allow_trailing*)."""
    r = Reader(as_bytes(data, "CODEC-INPUT"), context, vid_prefix)
    v = r.item()
    if not allow_trailing:
        r.expect_end()
    return v


def bignum(v: Any) -> Any:
    """A bignum (tag 2/3 directly on a byte string, RFC 8949 §3.4.3) as its integer; anything
    else unchanged (ciborium's ``Value`` does this and keeps other tags)."""
    if isinstance(v, CborTag) and v.tag in (2, 3) and isinstance(v.value, bytes):
        n = int.from_bytes(v.value, "big")
        return n if v.tag == 2 else -1 - n
    return v


def untag(v: Any) -> Any:
    """Drop tags as ciborium does when it deserialises into a plain type; a bignum becomes its
    integer."""
    while isinstance(v, CborTag):
        if v.tag in (2, 3) and isinstance(v.value, bytes):
            return bignum(v)
        v = v.value
    return v


# ---------------------------------------------------------------------------------------------
# pull: maps with text keys described by a spec
# ---------------------------------------------------------------------------------------------
class Leniency(Enum):
    """What :func:`decode_map` accepts (see the module docstring)."""

    #: exact CBOR types (cbor2's view of the map), problems collectable: GBP frame/control/error
    STRICT = "strict"
    #: what the reference's serde + ciborium accept, first problem raised: sub-protocol payloads
    SERDE = "serde"


_ZERO = {UINT: 0, BSTR: b"", TSTR: "", BOOL: False}
_RANGE_NAME = {U8: "u8", U16: "u16", U32: "u32", U64: "u64"}
_KIND_NAME = {BSTR: "bytes", TSTR: "text", BOOL: "bool"}
_SPEC_INDEX: Dict[int, Tuple[Any, Dict[str, Tuple[str, int, str]],
                             Tuple[Tuple[str, str, int, str], ...]]] = {}


def _spec_index(spec: Sequence[Tuple[Any, ...]]
                ) -> Tuple[Dict[str, Tuple[str, int, str]], Tuple[Tuple[str, str, int, str], ...]]:
    """(key → (kind, max, name), rows of (key, kind, max, name)) for a spec of
    ``(key, kind, max[, name])`` rows; cached by identity (specs are module constants)."""
    hit = _SPEC_INDEX.get(id(spec))
    if hit is None or hit[0] is not spec:
        if len(_SPEC_INDEX) > 256:  # specs are constants; bound the cache for ad-hoc ones
            _SPEC_INDEX.clear()
        rows = tuple((row[0], row[1], row[2], row[3] if len(row) > 3 else row[0])
                     for row in spec)
        hit = _SPEC_INDEX[id(spec)] = (spec, {k: (kind, m, n) for k, kind, m, n in rows}, rows)
    return hit[1], hit[2]


def decode_map(data: bytes, spec: Sequence[Tuple[Any, ...]], prefix: str, what: str,
               strict: bool = True, *, leniency: Leniency = Leniency.STRICT,
               range_vid: Optional[str] = None) -> Tuple[Dict[str, Any], List[DecodeError]]:
    """Decode *data* as one CBOR map with text keys described by *spec*.

    Returns ``(values, defects)``: *values* maps every spec row's name (4th column, else its key)
    to its value, *defects* lists the typed errors found. With ``strict=True`` the first problem
    is raised instead (and *defects* is empty). An optional row (negative ``max``) that is
    absent gets its zero value. ``strict=False`` exists for :attr:`Leniency.STRICT` only: a missing or mistyped
    value then gets its zero value and the error is recorded; bytes that are not a CBOR map at
    all still raise.

    Vids: ``{prefix}-NOT-MAP``, ``-TRAILING``, ``-TYPE``, ``-RANGE`` (or *range_vid*), and for
    STRICT ``-CBOR``, ``-DUPLICATE``, ``-MISSING``; for SERDE ``-MALFORMED``, ``-TRUNCATED``,
    ``-KEY-TYPE``, ``-DUP-KEY``, ``-MISSING-KEY``.
    """
    if leniency is Leniency.SERDE:
        if not strict:
            raise UsageError("SERDE maps are decoded strictly only", vid="CBOR-LENIENCY")
        return _decode_map_serde(data, spec, prefix, what, range_vid or f"{prefix}-RANGE"), []
    return _decode_map_strict(data, spec, prefix, what, strict, range_vid)


#: cbor2's C decoder, for callers that validate what it returns (the frame fast path).
fast_loads = cbor2.loads


def map_header_count(data: bytes) -> Optional[int]:
    """Number of entries the definite-length map head at ``data[0]`` declares (``None`` if
    indefinite). The head must be well formed (e.g. already decoded)."""
    n = data[0] & 0x1F
    if n < 24:
        return n
    if n == 31:
        return None
    size = 1 << (n - 24)
    return int.from_bytes(data[1:1 + size], "big")


def _load_one(data: bytes, prefix: str) -> Tuple[Any, int]:
    """One item from the start of *data* with cbor2; returns (item, bytes consumed)."""
    fp = io.BytesIO(as_bytes(data, f"{prefix}-INPUT"))
    try:
        obj = cbor2.load(fp)
    except Exception as exc:  # cbor2 raises CBORDecodeError/EOF, ValueError, RecursionError …
        raise DecodeError(f"invalid CBOR: {exc}", vid=f"{prefix}-CBOR", where=fp.tell()) from None
    return obj, fp.tell()


def _decode_map_strict(data: bytes, spec: Sequence[Tuple[Any, ...]], prefix: str, what: str,
                       strict: bool, range_vid: Optional[str]
                       ) -> Tuple[Dict[str, Any], List[DecodeError]]:
    """STRICT: in the order the reference's decoder meets problems — invalid CBOR, not a map,
    per entry in wire order a wrong type or out-of-range integer, then a duplicate key (cbor2
    keeps the last; detected from the declared count), then missing keys in spec order. Unknown
    and non-text keys are skipped."""
    obj, used = _load_one(data, prefix)
    if type(obj) is not dict:
        raise DecodeError(f"{what}: expected a CBOR map, got {type(obj).__name__}",
                          vid=f"{prefix}-NOT-MAP")
    defects: List[DecodeError] = []

    def bad(err: DecodeError) -> None:
        if strict:
            raise err
        defects.append(err)

    if used != len(data):
        bad(TrailingBytesError(f"{what}: {len(data) - used} bytes after the CBOR map",
                               vid=f"{prefix}-TRAILING", where=used))
    out: Dict[str, Any] = {}
    kinds, rows = _spec_index(spec)
    for key in obj:  # cbor2 keeps the wire order: check entries as serde meets them
        if type(key) is not str or key not in kinds:
            continue  # unknown keys are ignored, as by the reference
        kind, maxv, name = kinds[key]
        v = obj[key]
        if kind == UINT:
            if type(v) is not int:
                bad(DecodeError(f"{what}.{key}: expected unsigned integer, got {type(v).__name__}",
                                vid=f"{prefix}-TYPE", where=name))
                v = 0
            elif v < 0 or v > abs(maxv):
                bad(DecodeError(f"{what}.{key}: {v} out of range for "
                                f"{_RANGE_NAME.get(abs(maxv), 'uint')}",
                                vid=range_vid or f"{prefix}-RANGE", where=name))
        elif kind == BSTR:
            if type(v) is not bytes:
                bad(DecodeError(f"{what}.{key}: expected byte string, got {type(v).__name__}",
                                vid=f"{prefix}-TYPE", where=name))
                v = b""
        elif kind == TSTR:
            if type(v) is not str:
                bad(DecodeError(f"{what}.{key}: expected text string, got {type(v).__name__}",
                                vid=f"{prefix}-TYPE", where=name))
                v = ""
        elif type(v) is not bool:
            bad(DecodeError(f"{what}.{key}: expected bool, got {type(v).__name__}",
                            vid=f"{prefix}-TYPE", where=name))
            v = False
        out[name] = v
    declared = map_header_count(data)
    if declared is not None and declared != len(obj):
        bad(DecodeError(f"{what}: duplicate key in map ({declared} entries, {len(obj)} distinct)",
                        vid=f"{prefix}-DUPLICATE"))
    for key, kind, maxv, name in rows:
        if name not in out:
            if maxv >= 0:
                bad(DecodeError(f"{what}: missing key {key!r}", vid=f"{prefix}-MISSING",
                                where=name))
            out[name] = _ZERO[kind]
    return out, defects


def _decode_map_serde(data: bytes, spec: Sequence[Tuple[Any, ...]], prefix: str, what: str,
                      range_vid: str) -> Dict[str, Any]:
    """SERDE: a streaming read that raises at the first problem, as serde does."""
    r = Reader(as_bytes(data, "CODEC-INPUT"), what, prefix)
    major, _ai, n, _tags = r.head_skip_tags()
    if major != 5:
        raise DecodeError(f"{what}: expected a CBOR map, got major type {major}",
                          vid=f"{prefix}-NOT-MAP", where=0)
    fields, rows = _spec_index(spec)
    values: Dict[str, Any] = {}
    count = 0
    if n is not None:
        r.need(2 * n, "map entries")
    while r.more(n, count):
        count += 1
        kstart = r.pos
        km, _kai, karg, _tags = r.head_skip_tags()
        if km == 3:
            key = r.text(r.string_body(3, karg))
        elif km == 2:
            # serde's field identifier also takes a byte string (ciborium visit_bytes)
            key = r.string_body(2, karg).decode("utf-8", "replace")
        else:
            r.pos = kstart
            raise DecodeError(f"{what}: map key of major type {km}, expected a text key",
                              vid=f"{prefix}-KEY-TYPE", where=kstart)
        f = fields.get(key)
        if f is None:
            r.skip(1)  # the message map itself is one level (ciborium's recursion limit)
            continue
        if f[2] in values:
            raise DecodeError(f"{what}: duplicate key {key!r}", vid=f"{prefix}-DUP-KEY",
                              where=f[2])
        values[f[2]] = _serde_value(r, what, key, f, prefix, range_vid)
    r.expect_end()
    for key, kind, maxv, name in rows:
        if name not in values:
            if maxv >= 0:
                raise DecodeError(f"{what}: missing key {key!r}",
                                  vid=f"{prefix}-MISSING-KEY", where=name)
            values[name] = _ZERO[kind]  # optional key (serde default)
    return values


def _serde_value(r: Reader, what: str, key: str, f: Tuple[str, int, str], prefix: str,
                 range_vid: str) -> Any:
    """One known value in the forms serde + ciborium accept: tags ignored, an integer may be a
    bignum, a byte field may be an array of u8."""
    kind, maxv, name = f
    start = r.pos
    major, ai, arg, tags = r.head_skip_tags()
    where = f"{what}.{key}"
    if kind == UINT:
        big = [i for i, t in enumerate(tags) if t in (2, 3)]
        if big and (big[0] != len(tags) - 1 or major != 2):
            # ciborium: a bignum tag must wrap a byte string directly
            r.pos = start
            raise DecodeError(f"{where}: bignum tag without a byte string",
                              vid=f"{prefix}-TYPE", where=name)
        if big:
            v = bignum(CborTag(tags[-1], r.string_body(2, arg)))
        elif major in (0, 1):
            v = arg if major == 0 else -1 - arg  # type: ignore[operator]
        else:
            v = None
        if v is not None:
            bits = abs(maxv).bit_length()
            if v < 0:
                raise DecodeError(f"{where}: negative integer for u{bits}", vid=range_vid,
                                  where=name)
            if v > abs(maxv):
                raise DecodeError(f"{name} = {v!r} is not a u{bits}", vid=range_vid, where=name)
            return v
    elif kind == BSTR:
        if major == 2:
            return r.string_body(2, arg)
        if major == 4:  # serde_bytes also takes a sequence of u8
            r.pos = start
            items = r.item(1)
            while isinstance(items, CborTag):
                items = items.value
            out = bytearray()
            for x in items:
                x = untag(x)
                if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x <= 0xFF:
                    raise DecodeError(f"{where}: array element {x!r} is not a u8",
                                      vid=f"{prefix}-TYPE", where=name)
                out.append(x)
            return bytes(out)
    elif kind == TSTR:
        if major == 3:
            return r.text(r.string_body(3, arg))
    elif major == 7 and ai in (20, 21):
        return ai == 21
    r.pos = start
    kname = f"u{abs(maxv).bit_length()}" if kind == UINT else _KIND_NAME[kind]
    raise DecodeError(f"{where}: major type {major} where {kname} was expected",
                      vid=f"{prefix}-TYPE", where=name)
