"""TLS presentation language codec as MLS uses it (RFC 9420 §2.1, RFC 8446 §3).

A pull/push pair on one buffer: :class:`Reader` pulls fixed-width integers, variable-length
vectors (MLS varint prefix, RFC 9420 §2.1.2), optionals and nested structures out of ``bytes``;
:class:`Writer` pushes the same into a ``bytearray``. Decoding is strict: truncation, trailing
bytes, non-minimal varints, the reserved ``0b11`` varint prefix and lengths beyond the input are
typed :mod:`gbp_lab.core.errors` exceptions.

>>> w = Writer(); _ = w.u16(1).vec(b"hi"); w.getvalue().hex()
'0001026869'
"""
from __future__ import annotations

from typing import Callable, Iterable, List, Optional, TypeVar, Union

from .errors import DecodeError, TrailingBytesError, TruncatedError, UsageError

T = TypeVar("T")

VARINT_MAX = (1 << 30) - 1


class Reader:
    """Pulls TLS-encoded values from ``data[pos:end]``."""

    __slots__ = ("data", "pos", "end", "context")

    def __init__(self, data: bytes, pos: int = 0, end: Optional[int] = None, context: str = "") -> None:
        self.data = data if isinstance(data, (bytes, memoryview)) else bytes(data)
        self.pos = pos
        self.end = len(self.data) if end is None else end
        self.context = context

    # -- primitives ---------------------------------------------------------------------------
    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def _take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise TruncatedError(
                f"{what}: need {n} bytes, {self.end - self.pos} left",
                vid="TLS-TRUNCATED", where=self._where())
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out if type(out) is bytes else bytes(out)

    def _where(self) -> str:
        return f"{self.context}@{self.pos}" if self.context else f"offset {self.pos}"

    def raw(self, n: int, what: str = "bytes") -> bytes:
        return self._take(n, what)

    # The readers below are on every decode's hot path (a ratchet tree of N leaves is ~50 N
    # calls): each tries the common case inline and falls back to the checked ``_take`` /
    # ``varint`` path, which raises the typed error, for anything else.
    def u8(self, what: str = "uint8") -> int:
        pos = self.pos
        if pos < self.end:
            self.pos = pos + 1
            return self.data[pos]
        return self._take(1, what)[0]

    def u16(self, what: str = "uint16") -> int:
        pos = self.pos
        if pos + 2 <= self.end:
            self.pos = pos + 2
            data = self.data
            return (data[pos] << 8) | data[pos + 1]
        return int.from_bytes(self._take(2, what), "big")

    def u32(self, what: str = "uint32") -> int:
        return int.from_bytes(self._take(4, what), "big")

    def u64(self, what: str = "uint64") -> int:
        return int.from_bytes(self._take(8, what), "big")

    def varint(self, what: str = "varint") -> int:
        """RFC 9420 §2.1.2 variable-length integer; minimal encoding required."""
        start = self.pos
        if start < self.end and self.data[start] < 0x40:  # one byte: always minimal
            self.pos = start + 1
            return self.data[start]
        first = self._take(1, what)[0]
        prefix = first >> 6
        if prefix == 3:
            raise DecodeError(f"{what}: reserved varint prefix 0b11", vid="TLS-VARINT-PREFIX",
                              where=self._where())
        n = 1 << prefix
        value = first & 0x3F
        for b in self._take(n - 1, what):
            value = (value << 8) | b
        if (prefix == 1 and value < 0x40) or (prefix == 2 and value < 0x4000):
            self.pos = start
            raise DecodeError(f"{what}: non-minimal varint encoding of {value}",
                              vid="TLS-VARINT-MINIMAL", where=self._where())
        return value

    # -- vectors ------------------------------------------------------------------------------
    def vec(self, what: str = "opaque<V>") -> bytes:
        """``opaque x<V>``: varint length then that many bytes."""
        pos, data = self.pos, self.data
        if pos < self.end:
            n = data[pos]
            if n < 0x40:  # a one-byte length (§2.1.2): the common case, minimal by construction
                stop = pos + 1 + n
                if stop <= self.end:
                    self.pos = stop
                    out = data[pos + 1:stop]
                    return out if type(out) is bytes else bytes(out)
        n = self.varint(what)
        return self._take(n, what)

    def sub(self, what: str = "vector") -> "Reader":
        """A reader over the body of a varint-prefixed vector; the caller must exhaust it."""
        n = self.varint(what)
        if self.pos + n > self.end:
            raise TruncatedError(f"{what}: vector of {n} bytes, {self.end - self.pos} left",
                                 vid="TLS-TRUNCATED", where=self._where())
        r = Reader(self.data, self.pos, self.pos + n, context=what)
        self.pos += n
        return r

    def vec_of(self, item: Callable[["Reader"], T], what: str = "vector") -> List[T]:
        """``T x<V>``: a varint-prefixed vector of structures, each pulled by ``item``."""
        r = self.sub(what)
        out: List[T] = []
        while r.remaining:
            out.append(item(r))
        return out

    def optional(self, item: Callable[["Reader"], T], what: str = "optional") -> Optional[T]:
        """``optional<T>``: a presence byte 0/1, then T when 1."""
        flag = self.u8(what)
        if flag == 0:
            return None
        if flag != 1:
            raise DecodeError(f"{what}: presence byte {flag} is neither 0 nor 1",
                              vid="TLS-OPTIONAL", where=self._where())
        return item(self)

    def done(self, what: str = "structure") -> None:
        """Reject trailing bytes."""
        if self.pos != self.end:
            raise TrailingBytesError(f"{what}: {self.end - self.pos} trailing bytes",
                                     vid="TLS-TRAILING", where=self._where())


class Writer:
    """Pushes TLS-encoded values into a ``bytearray``."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self.buf)

    def raw(self, data: bytes) -> "Writer":
        self.buf += data
        return self

    def u8(self, v: int) -> "Writer":
        self.buf += _fixed(v, 1)
        return self

    def u16(self, v: int) -> "Writer":
        self.buf += _fixed(v, 2)
        return self

    def u32(self, v: int) -> "Writer":
        self.buf += _fixed(v, 4)
        return self

    def u64(self, v: int) -> "Writer":
        self.buf += _fixed(v, 8)
        return self

    def varint(self, v: int) -> "Writer":
        self.buf += encode_varint(v)
        return self

    def vec(self, data: Union[bytes, bytearray]) -> "Writer":
        self.buf += encode_varint(len(data))
        self.buf += data
        return self

    def vec_of(self, items: Iterable[T], item: Callable[["Writer", T], object]) -> "Writer":
        inner = Writer()
        for it in items:
            item(inner, it)
        return self.vec(inner.buf)

    def optional(self, value: Optional[T], item: Callable[["Writer", T], object]) -> "Writer":
        if value is None:
            self.buf.append(0)
        else:
            self.buf.append(1)
            item(self, value)
        return self


def _fixed(v: int, n: int) -> bytes:
    try:
        return int(v).to_bytes(n, "big")
    except OverflowError:
        raise UsageError(f"value {v} does not fit in uint{8 * n}", vid="TLS-RANGE") from None


def encode_varint(v: int) -> bytes:
    """Minimal RFC 9420 §2.1.2 varint encoding of ``v`` (0 ≤ v < 2**30)."""
    if v < 0x40 and v >= 0:
        return bytes((v,))
    if v < 0x4000 and v >= 0:
        return (v | 0x4000).to_bytes(2, "big")
    if 0 <= v <= VARINT_MAX:
        return (v | 0x80000000).to_bytes(4, "big")
    raise UsageError(f"varint value {v} out of range", vid="TLS-RANGE")


def encode_vec(data: bytes) -> bytes:
    """``opaque<V>`` encoding of ``data``."""
    return encode_varint(len(data)) + bytes(data)


def decode(data: bytes, item: Callable[[Reader], T], what: str = "structure") -> T:
    """Decode exactly one ``item`` from ``data``; trailing bytes are an error."""
    r = Reader(data, context=what)
    value = item(r)
    r.done(what)
    return value
