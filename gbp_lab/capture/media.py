"""SFrame media of a capture: every GAP frame's ``opus`` field opened with the key log.

GAP audio (gap_rfc.md §4) carries Opus either raw or as an SFrame payload (RFC 9605 §4.2,
``header ‖ ciphertext ‖ tag``; reference-map §7). :func:`open_media` looks at every decrypted
audio frame of a capture once, in bulk (``read_capture`` calls it after the read loop):

* the header (RFC 9605 §4.3) is read when one fits: the profile is detected per frame
  (:func:`~gbp_lab.core.sframe.detect_header`: ``rfc9605`` as 1.9.x sends, ``draft-1.5`` as
  1.5.x) and the KID's epoch bits must name the frame's epoch (RFC 9605 §5.2) — otherwise the
  bytes are raw Opus;
* the base key is ``MLS-Exporter(label, epoch u64, 32)`` (RFC 9420 §8.5) from the key log's
  exporter secret (:meth:`~gbp_lab.core.sframe.SFrameSession.from_keylog`; label
  ``"gbp/sframe v1"`` unless told otherwise), the per-KID key and salt RFC 9605 §4.4.2
  (:func:`~gbp_lab.core.sframe.derive_key_salt`), the AEAD RFC 9605 §4.4.3
  (:class:`~gbp_lab.core.sframe.SFrameOpener`, :func:`~gbp_lab.core.sframe.sframe_open`'s per-key
  form) — AES-128-GCM first, AES-256-GCM when that fails;
* a receiver's replay window (RFC 9605 §9.3, :class:`~gbp_lab.core.sframe.ReplayWindow`) per
  receiving endpoint (``dst:dport``, as the ``messages`` table judges GTP): a relay's copy of a
  payload is not a replay, a second payload with the same (KID, CTR) towards the same receiver
  is — it is still opened (the tag verifies), and ``error`` says a receiver drops it.

A failed tag is reported twice, as the GBP layer's are: in the frame's :class:`MediaOpen`
(``error``) and as an ``errors`` row (kind ``decrypt``, vid ``SFRAME-DECRYPT``) linked to the frame.
"""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import pandas as pd

from gbp_lab.core.errors import DecryptError, GbpLabError, ReplayError
from gbp_lab.core.gap.payload import GapPayload
from gbp_lab.core.gbp.registry import PayloadCodec, StreamType
from gbp_lab.core.sframe import (AES_128_GCM, AES_256_GCM, DEFAULT_LABEL, TAG_LENGTH,
                                 ReplayWindow, SFrameOpener, SFrameProfile, SFrameSession,
                                 derive_key_salt, detect_header, epoch_matches)

from .columns import time_cells
from .readpath import ERROR_ROW, payload_fields

__all__ = ["MediaOpen", "MediaState", "open_media", "sframe_header"]

_CODECS = {c.name: int(c) for c in PayloadCodec}
_SUITES = (AES_128_GCM, AES_256_GCM)
#: the GAP payload's attribute names in schema order (the order of the read loop's values)
_GAP_ATTRS = tuple(f.attr for f in GapPayload.SCHEMA.fields)
#: a profile's name as the ``audio`` table shows it
_PROFILE_NAMES = {p: str(p) for p in SFrameProfile}
#: the ``errors`` row's place columns, taken from the frame's row
_PLACE = ERROR_ROW.names[:9]
_RFC, _NA = SFrameProfile.RFC9605, pd.NA  # read per frame: globals, not class attributes


class MediaOpen(NamedTuple):
    """What :func:`open_media` made of one audio frame's ``opus`` field."""

    gap: Dict[str, Any]  #: the GAP payload's fields by attribute name
    profile: Optional[str]  #: SFrame profile, ``None`` for raw Opus
    kid: Optional[int]
    ctr: Optional[int]
    #: the epoch whose key opened it (``None`` when not opened / raw Opus)
    key_epoch: Optional[int]
    #: the Opus bytes: the SFrame plaintext, or the field itself for raw Opus; ``None`` when an
    #: SFrame payload could not be opened
    opus: Optional[bytes]
    decrypted: bool  #: an SFrame payload whose tag verified
    error: Optional[str]  #: why not opened, or the replay verdict of a receiver


def sframe_header(opus: bytes, epoch: Optional[int]) -> Tuple[Optional[SFrameProfile], Any, int]:
    """``(profile, header, header length)`` when ``opus`` starts with a plausible SFrame header
    for ``epoch`` (room for the tag, KID epoch bits = ``epoch``), else ``(None, None, 0)``."""
    if len(opus) < 1 + TAG_LENGTH or epoch is None:
        return None, None, 0
    try:
        prof, hdr, n = detect_header(opus, epoch)  # each profile's header parsed once
    except (GbpLabError, ValueError):
        return None, None, 0
    if len(opus) < n + TAG_LENGTH or not epoch_matches(hdr.kid, epoch, prof):
        return None, None, 0
    return prof, hdr, n


def _err(exc: GbpLabError) -> str:
    return f"[{exc.vid}] {exc.message}"


class _Keys:
    """Base keys per (group, epoch, profile) and, per KID, one :class:`SFrameOpener` per suite,
    from the key log."""

    def __init__(self, keylog, label: str) -> None:
        self.keylog = keylog
        self.label = label
        self.base: Dict[tuple, Any] = {}
        #: (group id hex, epoch, profile, KID) -> (group id, the openers or why there are none)
        self.kid: Dict[tuple, Tuple[bytes, Any]] = {}

    def base_key(self, gid: bytes, epoch: int, profile: SFrameProfile):
        """The base key, or the error text saying why there is none."""
        k = (gid, epoch, profile)
        v = self.base.get(k)
        if v is None:
            if self.keylog is None:
                v = "no key log: the SFrame payload stays encrypted"
            else:
                try:
                    v = SFrameSession.from_keylog(self.keylog, gid, epoch, self.label,
                                                  profile=profile).base_key
                except GbpLabError as exc:
                    v = _err(exc)
            self.base[k] = v
        return v

    def openers(self, group_hex: str, epoch: int, profile: SFrameProfile,
                kid: int) -> Tuple[bytes, Any]:
        """``(group id, [opener per suite] or the error text)`` for a KID of a group given by
        its hex column value (looked up once per KID, not per frame)."""
        k = (group_hex, epoch, profile, kid)
        v = self.kid.get(k)
        if v is None:
            gid = bytes.fromhex(group_hex or "")
            base = self.base_key(gid, epoch, profile)
            v = self.kid[k] = (gid, base if isinstance(base, str) else
                               [SFrameOpener(*derive_key_salt(base, kid, s, profile))
                                for s in _SUITES])
        return v


class MediaState:
    """What :func:`open_media` carries from one call to the next when a capture is opened in
    pieces (:func:`~.stream.iter_capture`'s chunks): the base keys and per-KID key material
    found so far, and every receiver's replay window (RFC 9605 §9.3) — a payload replayed in a
    later chunk is judged as in one whole read. The key log may grow between calls (a pcapng
    secrets block): a missing key is looked up again in the next call."""

    def __init__(self, keylog=None, label: str = DEFAULT_LABEL) -> None:
        self.keys = _Keys(keylog, label)
        self.windows: Dict[tuple, ReplayWindow] = {}

    def use(self, keylog) -> None:
        """The key log as it stands now; forget the "no key" answers of earlier calls."""
        k = self.keys
        k.keylog = keylog
        k.base = {key: v for key, v in k.base.items() if not isinstance(v, str)}


def open_media(frames: pd.DataFrame, plaintexts, keylog, label: str = DEFAULT_LABEL,
               state: Optional[MediaState] = None, first_row: int = 0,
               values: Optional[Sequence[Optional[tuple]]] = None
               ) -> Tuple[Dict[int, MediaOpen], List[tuple]]:
    """Open the ``opus`` field of every decrypted GAP frame of a ``frames`` table (see the
    module docstring). Returns ``({frames row: MediaOpen}, errors rows)`` — the rows in
    :data:`~.readpath.ERROR_ROW` order. Frames whose GAP payload does not decode are left out
    (their ``error`` column says why). A chunk of a bigger read passes its :class:`MediaState`
    (then ``keylog`` and ``label`` are the state's: see :meth:`MediaState.use`) and
    ``first_row``, the capture row of its first frame (the frame numbers errors name).
    ``values``: the read loop's decoded payload values per frame row
    (:attr:`~.readpath.ReadChunk.values`): a GAP payload it decoded is not decoded again."""
    out: Dict[int, MediaOpen] = {}
    errors: List[tuple] = []
    if not len(frames):
        return out, errors
    st = frames["stream_type"].to_numpy(dtype="float64", na_value=-1.0)
    idx = (st == int(StreamType.AUDIO)).nonzero()[0].tolist()
    idx = [i for i in idx if plaintexts[i] is not None]
    if not idx:
        return out, errors
    sub = frames.iloc[idx]
    cols = {c: sub[c].tolist() for c in ("group_id", "epoch", "codec", "dst", "dport")}
    place_cols: Dict[str, list] = {}

    def place(k: int) -> tuple:
        """The ``errors`` row's place cells of audio row ``k`` (columns read on first use)."""
        if not place_cols:
            place_cols.update({c: sub[c].tolist() if c != "time" else time_cells(sub[c])
                               for c in _PLACE})  # time: integer ns
        return tuple(place_cols[c][k] for c in _PLACE)

    if state is None:
        state = MediaState(keylog, label)
    keys, windows = state.keys, state.windows
    pre = values if values else None
    for k, i in enumerate(idx):
        v = None if pre is None else pre[i]
        if v is not None:
            gap = dict(zip(_GAP_ATTRS, v))
        else:
            try:
                gap = payload_fields(GapPayload, plaintexts[i], _CODECS.get(cols["codec"][k], 0))
            except GbpLabError:
                continue
        opus = gap["opus_frame"]
        if type(opus) is not bytes:
            opus = bytes(opus)
        ep = cols["epoch"][k]
        ep = None if ep is None or ep is _NA else int(ep)
        prof, hdr, hlen = sframe_header(opus, ep)
        if prof is None:
            out[i] = MediaOpen(gap, None, None, None, None, opus, False, None)
            continue
        assert ep is not None and hdr is not None
        kid, ctr = hdr.kid, hdr.ctr
        gid, materials = keys.openers(cols["group_id"][k], ep, prof, kid)
        if type(materials) is str:
            out[i] = MediaOpen(gap, _PROFILE_NAMES[prof], kid, ctr, None, None, False, materials)
            continue
        pt = None
        last: Optional[DecryptError] = None
        for opener in materials:  # AES-128-GCM first, then AES-256-GCM
            try:
                pt = opener.open(opus, hdr, hlen)
                break
            except DecryptError as exc:
                last = exc
            except GbpLabError as exc:  # malformed beyond the header checks
                last = DecryptError(exc.message, vid=exc.vid)
                break
        if pt is None:
            assert last is not None
            text = (f"SFrame of frame {i + first_row} (KID {kid:#x}, CTR {ctr}, epoch {ep}) does "
                    f"not open: {last.message}")
            errors.append(place(k) + ("decrypt", last.vid, text, i + first_row))
            out[i] = MediaOpen(gap, _PROFILE_NAMES[prof], kid, ctr, None, None, False,
                               _err(last))
            continue
        slot = kid if prof is _RFC else hdr.leaf
        wk = (cols["dst"][k], cols["dport"][k], gid, ep, prof, slot)
        win = windows.get(wk)
        if win is None:
            win = windows[wk] = ReplayWindow()
        err = None
        try:
            win.check(ctr)
            win.record(ctr)
        except ReplayError as exc:
            err = f"[{exc.vid}] {exc.message} at {cols['dst'][k]}:{cols['dport'][k]}: a receiver drops it"
        out[i] = MediaOpen(gap, _PROFILE_NAMES[prof], kid, ctr, ep, pt, True, err)
    return out, errors
