"""Shared machinery of the gbp-lab scapy layers.

Every layer here is a *view* of a core structure: dissection calls the core decoder
(:meth:`CoreLayer.decode_core`) and copies the decoded values into the scapy fields
(:meth:`CoreLayer.fill`); building calls the core encoder (:meth:`CoreLayer.encode_core`). The
scapy field types only serve ``show()`` / ``ls()`` / keyword construction — their own
``getfield`` / ``addfield`` are never used, so nothing parses the wire a second time.

Round trip: a dissected layer whose fields were not changed builds back to exactly the bytes it
was dissected from (also for non-canonical encodings the core accepts). Once a field is changed,
the core encoder produces the canonical form.

Failures never escape: a decoder error becomes the layer's ``error`` annotation (``[vid] message``)
and the undecodable bytes a ``Raw`` payload; crypto failures are annotations of the layer that
tried to decrypt.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, cast

from scapy.config import conf
from scapy.fields import ConditionalField, StrField
from scapy.packet import Packet

from gbp_lab.core.errors import GbpLabError

__all__ = ["CoreLayer", "FrameLayer", "SchemaLayer", "NO_DEFAULT", "text_field", "annotation", "describe_error", "find_under"]


def describe_error(exc: BaseException) -> str:
    """``[vid] message`` for our errors, ``ExceptionType: message`` for anything else."""
    if isinstance(exc, GbpLabError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


#: the default of a field that has none until set (scapy accepts ``None``; its type stubs want
#: a value of the field's type)
NO_DEFAULT: Any = None


def text_field(name: str, default: str = "") -> StrField:
    """A field holding text (scapy's ``StrField`` keeps ``str`` values too; its stubs say bytes)."""
    return StrField(name, cast(Any, default))


def annotation(name: str) -> ConditionalField:
    """A non-wire text field, shown only when set (dissection notes: errors, crypto status)."""
    def shown(p: Packet) -> bool:
        return p.getfieldval(name) is not None

    return ConditionalField(StrField(name, NO_DEFAULT), shown)


#: names of the annotation fields every CoreLayer may carry
ANNOTATIONS: Tuple[str, ...] = ("error",)


class CoreLayer(Packet):
    """Base class: dissect with a core decoder, build with a core encoder (see module doc)."""

    #: names of fields that are annotations (not compared for the round-trip cache)
    annotations: Tuple[str, ...] = ANNOTATIONS

    _orig: Optional[bytes] = None
    _orig_fields: Optional[Dict[str, Any]] = None
    _failed: bool = False
    _obj: Any = None

    # -- hooks for subclasses ------------------------------------------------------------------
    def decode_core(self, s: bytes) -> Any:  # pragma: no cover - abstract
        """Decode *s* (this layer's bytes, the whole rest) with the core; return the object."""
        raise NotImplementedError

    def fill(self, obj: Any) -> None:  # pragma: no cover - abstract
        """Copy the decoded object's values into the fields."""
        raise NotImplementedError

    def encode_core(self) -> bytes:  # pragma: no cover - abstract
        """This layer's bytes from the fields (and the payload, when it is embedded)."""
        raise NotImplementedError

    def dissect_children(self) -> None:
        """Add child layers after a successful dissection (default: none)."""

    def consumed(self, s: bytes, obj: Any) -> int:
        """How many bytes of *s* the decoded object used (default: all)."""
        return len(s)

    # -- scapy plumbing ------------------------------------------------------------------------
    def do_dissect(self, s: bytes) -> bytes:
        try:
            obj = self.decode_core(bytes(s))
            n = self.consumed(s, obj)
            self.fill(obj)
        except MemoryError:  # out of memory says nothing about the bytes: not shown as their error
            raise
        except Exception as exc:  # noqa: BLE001 - a dissector must never raise; anything that is
            # not one of our typed errors (a core bug) is still shown, with its type, in ``error``
            self._failed = True
            self.fields["error"] = describe_error(exc)
            self._orig = b""
            self._orig_fields = self._snapshot()
            return s
        self._obj = obj
        self._orig = bytes(s[:n])
        self._orig_fields = self._snapshot()
        return s[n:]

    def do_dissect_payload(self, s: bytes) -> None:
        if self._failed:
            if s:
                self.add_payload(conf.raw_layer(s, _internal=1, _underlayer=self))
            return
        try:
            self.dissect_children()
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001
            self.fields["error"] = describe_error(exc)
        if s:
            super().do_dissect_payload(s)

    def _snapshot(self) -> Dict[str, Any]:
        return {k: v for k, v in self.fields.items() if k not in self.annotations}

    def unchanged(self) -> bool:
        """True when the fields still hold the dissected values."""
        return self._orig is not None and self._snapshot() == self._orig_fields

    def self_build(self) -> bytes:
        if self._orig is not None and self.unchanged():
            return self._orig
        if self._failed:
            return b""
        return self.encode_core()

    def do_build(self) -> bytes:
        if self._failed:  # undecodable bytes travel in the Raw payload
            return self.self_build() + self.do_build_payload()
        return self.self_build() + self.build_trailer()

    def build_trailer(self) -> bytes:
        """Bytes after this layer's own: the payload, unless the layer embeds it."""
        return self.do_build_payload()

    def describe(self) -> str:
        """One-line summary of a well-formed layer (subclasses override)."""
        return str(self.name)

    def mysummary(self):
        if self._failed:
            return f"{self.name} malformed {self.getfieldval('error')}"
        return self.describe()

    #: per-instance dissection state carried into copies and clones
    _state_attrs = ("_orig", "_orig_fields", "_failed", "_obj", "_codec_override", "_plaintext")

    def _carry_state(self, other: "CoreLayer") -> "CoreLayer":
        for attr in self._state_attrs:
            if attr in self.__dict__:
                setattr(other, attr, self.__dict__[attr])
        return other

    def copy(self):  # keep the dissection state in copies (p / q, show2 …)
        return self._carry_state(super().copy())

    def clone_with(self, payload=None, **kargs):  # used by scapy's build-time iteration
        return self._carry_state(super().clone_with(payload=payload, **kargs))


def find_under(pkt: Packet, cls: type) -> Optional[Packet]:
    """The nearest layer below *pkt* (through ``underlayer`` and ``parent`` links) that is a
    *cls*, or ``None``."""
    seen = 0
    p = pkt.underlayer if pkt.underlayer is not None else pkt.parent
    while p is not None and seen < 64:
        if isinstance(p, cls):
            return p
        p = p.underlayer if p.underlayer is not None else p.parent
        seen += 1
    return None


class FrameLayer(CoreLayer):
    """Base of the layer that carries payload messages and names their codec (the GBP frame,
    :class:`gbp_lab.dissectors.gbp.GbpFrame`): :class:`SchemaLayer` finds it below itself
    without importing it."""

    @property
    def codec(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class SchemaLayer(CoreLayer):
    """A layer for a payload message of :mod:`gbp_lab.core.payload_codec` (GTP / GAP / GSP):
    fields named by the CBOR keys of the message's ``SCHEMA``, decoded and encoded by the core
    message class in the codec of the enclosing frame's ``pf`` (CBOR when standalone, or as given
    to :meth:`dissect_as`)."""

    core_class: Any = None
    _codec_override: Any = None

    @classmethod
    def dissect_as(cls, data: bytes, codec: Any):
        """Dissect *data* in *codec* (``PayloadCodec`` or its number) outside a GBP frame."""
        from gbp_lab.core.payload_codec import resolve_codec

        pkt = cls()
        pkt._codec_override = resolve_codec(codec)
        pkt.dissect(bytes(data))
        return pkt

    @property
    def codec(self):
        from gbp_lab.core.payload_codec import PayloadCodec

        if self._codec_override is not None:
            return self._codec_override
        frame = find_under(self, FrameLayer)
        if frame is not None:
            return frame.codec
        return PayloadCodec.CBOR

    def decode_core(self, s: bytes) -> Any:
        return self.core_class.from_bytes(s, self.codec)

    def fill(self, obj: Any) -> None:
        for f in self.core_class.SCHEMA.fields:
            self.fields[f.key] = self.get_field(f.key).any2i(self, getattr(obj, f.attr))

    def core_values(self) -> Dict[str, Any]:
        out = {}
        for f in self.core_class.SCHEMA.fields:
            v = self.getfieldval(f.key)
            if v is not None and f.kind.is_int:
                v = int(v)
            elif v is not None and not isinstance(v, str):
                v = bytes(v)
            out[f.attr] = v
        return out

    def to_core(self) -> Any:
        """The core message these fields describe."""
        return self.core_class(**self.core_values())

    def encode_core(self) -> bytes:
        return self.to_core().to_bytes(self.codec)

