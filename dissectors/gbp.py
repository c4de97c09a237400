"""Scapy layer of the GBP frame (gbp_rfc.md §6, §12.1; reference crates/gbp/base/src/frame.rs).

The frame is a CBOR map (not fixed offsets), so :class:`GbpFrame` dissects by calling
:func:`gbp_lab.core.gbp.frame.decode_frame` (lenient: defects become the ``defects`` annotation)
and builds with :meth:`gbp_lab.core.gbp.frame.GbpFrame.to_cbor`. Field names are the wire keys::

    v · gid · ep · tid · st · sid · fl · seq · psz · pl · pf

Payload: with a key log installed (:func:`gbp_lab.dissectors.keystore.use_keylog`) the ``pl``
ciphertext is opened with :func:`gbp_lab.core.gbp.aead.open_frame` (key = MLS-Exporter of the
stream label, ChaCha20-Poly1305, nonce from ``seq``; gbp-mls-binding.md) and the plaintext becomes
the child layer chosen by ``st`` (``bind_layers``: 0 control, 1 GAP, 2 GTP, 3 GSP) in the codec of
``pf``. The ``crypto`` annotation says what happened (decrypted / no key / tag failure).

Building: ``GbpFrame(gid=…, ep=1, st=2, sid=101, fl=7, seq=1) / GtpMessage(…)`` — with ``pl``
left unset the child layers are encoded and sealed with the installed key log's exporter secret
for ``(gid, ep)``; without a key they are carried in clear. ``psz`` defaults to ``len(pl)``.
"""
from __future__ import annotations

from scapy.config import conf
from scapy.fields import (ByteEnumField, ByteField, FlagsField, IntField, LongField, StrLenField,
                          XStrFixedLenField)
from scapy.packet import NoPayload

from gbp_lab.core.errors import DecryptError, MissingKeyError
from gbp_lab.core.gbp import aead as _aead
from gbp_lab.core.gbp.frame import GbpFrame as _CoreFrame
from gbp_lab.core.gbp.frame import decode_frame
from gbp_lab.core.gbp.registry import GBP_VERSION, FrameFlags, PayloadCodec, StreamType, sender_of

from . import keystore
from ._common import NO_DEFAULT, FrameLayer, annotation, describe_error

__all__ = ["GbpFrame", "STREAM_TYPE_NAMES", "CODEC_NAMES", "FRAME_FLAG_NAMES"]

STREAM_TYPE_NAMES = {int(s): s.name for s in StreamType}
CODEC_NAMES = {int(c): c.name for c in PayloadCodec}
#: bit order of the ``fl`` FlagsField (bit 0 first)
FRAME_FLAG_NAMES = [str(f.name) for f in (FrameFlags.ORDERED, FrameFlags.RELIABLE,
                                     FrameFlags.ACK_REQUESTED, FrameFlags.SYSTEM,
                                     FrameFlags.CRITICAL)]


class GbpFrame(FrameLayer):
    """One GBP frame (CBOR map). See the module docstring."""

    name = "GBP Frame"
    annotations = ("error", "defects", "crypto")
    fields_desc = [
        ByteField("v", GBP_VERSION),
        XStrFixedLenField("gid", b"\x00" * 16, 16),
        LongField("ep", 0),
        IntField("tid", 0),
        ByteEnumField("st", StreamType.TEXT, STREAM_TYPE_NAMES),
        IntField("sid", 0),
        FlagsField("fl", 0, 16, FRAME_FLAG_NAMES),
        IntField("seq", 1),
        IntField("psz", None),
        StrLenField("pl", NO_DEFAULT, length_from=lambda p: p.psz),
        ByteEnumField("pf", PayloadCodec.CBOR, CODEC_NAMES),
        annotation("crypto"),
        annotation("defects"),
        annotation("error"),
    ]

    # -- dissection ----------------------------------------------------------------------------
    def decode_core(self, s: bytes) -> _CoreFrame:
        return decode_frame(s, strict=False)

    def fill(self, f: _CoreFrame) -> None:
        for name, value in (("v", f.version), ("gid", f.group_id), ("ep", f.epoch),
                            ("tid", f.transition_id), ("st", f.stream_type), ("sid", f.stream_id),
                            ("fl", f.flags), ("seq", f.sequence_no), ("psz", f.payload_size),
                            ("pl", f.payload), ("pf", f.payload_format)):
            if name == "fl" and isinstance(value, int) and not 0 <= value <= 0xFFFF:
                # lenient decoding keeps an out-of-range ``fl`` (recorded in ``defects``); scapy's
                # flag rendering needs the 16 bits it was declared with (a negative value would
                # never finish printing)
                value &= 0xFFFF
            self.fields[name] = self.get_field(name).any2i(self, value)
        if f.defects:
            self.fields["defects"] = "; ".join(describe_error(d) for d in f.defects)

    def dissect_children(self) -> None:
        frame: _CoreFrame = self._obj
        log = keystore.current_keylog()
        if log is None:
            self.fields["crypto"] = "encrypted (no key log in use)"
            return
        epoch = frame.epoch + keystore.mls_epoch_offset()
        try:
            plaintext = _aead.open_frame(frame, log, mls_epoch=epoch)
        except MissingKeyError as exc:
            self.fields["crypto"] = f"not decrypted: {describe_error(exc)}"
            return
        except DecryptError as exc:
            self.fields["crypto"] = f"decryption failed: {describe_error(exc)}"
            return
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - unknown stream type etc.
            self.fields["crypto"] = f"not decrypted: {describe_error(exc)}"
            return
        self.fields["crypto"] = f"decrypted (MLS epoch {epoch})"
        self.add_payload(self.payload_layer(plaintext))

    def payload_layer(self, plaintext: bytes):
        """The child layer for a decrypted payload (``bind_layers`` on ``st``)."""
        cls = self.guess_payload_class(plaintext)
        try:
            return cls(plaintext, _internal=1, _underlayer=self)
        except MemoryError:
            raise
        except Exception:  # noqa: BLE001 - never raise from dissection
            return conf.raw_layer(plaintext, _internal=1, _underlayer=self)

    # -- building ------------------------------------------------------------------------------
    @property
    def codec(self) -> PayloadCodec:
        """The codec a receiver applies to the payload (unknown ``pf`` → CBOR)."""
        return PayloadCodec.for_wire(int(self.pf))

    def _plaintext(self) -> bytes:
        return b"" if isinstance(self.payload, NoPayload) else bytes(self.payload)

    def encode_core(self) -> bytes:
        pl = self.pl
        if pl is None:
            pl = self._plaintext()
            log = keystore.current_keylog()
            gid = bytes(self.gid)
            gid16 = gid[:16].ljust(16, b"\0")
            secret = None if log is None else log.exporter_secret(
                gid16, int(self.ep) + keystore.mls_epoch_offset())
            if log is not None and secret is not None:
                pl = _aead.CIPHERS.get(secret, int(self.st), log.suite(gid16)).seal(int(self.seq), pl)
        pl = bytes(pl)
        psz = len(pl) if self.psz is None else int(self.psz)
        return _CoreFrame(int(self.v), bytes(self.gid), int(self.ep), int(self.tid), int(self.st),
                          int(self.sid), int(self.fl), int(self.seq), psz, pl,
                          int(self.pf)).to_cbor()

    def build_trailer(self) -> bytes:
        return b""  # the payload travels inside ``pl``

    # -- display -------------------------------------------------------------------------------
    def describe(self) -> str:
        st = STREAM_TYPE_NAMES.get(int(self.st), str(self.st))
        extra = f" pf={CODEC_NAMES.get(int(self.pf), self.pf)}" if self.pf else ""
        return (f"GBP {st} ep={self.ep} tid={self.tid} sid={self.sid} seq={self.seq} "
                f"psz={self.psz}{extra}")

    @property
    def sender(self) -> int:
        """Member id of the sender (:func:`~gbp_lab.core.gbp.registry.sender_of`, ``sid // 100``)."""
        return sender_of(int(self.sid))
