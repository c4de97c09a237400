"""Sub-protocol tables of a :class:`~gbp_lab.capture.model.Capture`, built from its decrypted frames.

Every table has a ``time`` column and a ``frame`` column: the index of the row in
``Capture.frames`` the entry came from. Rows are collected as tuples and turned into a DataFrame
once (``_table``). Only decrypted frames feed ``messages`` / ``audio`` / ``signals``; ``control``
has a row for every control frame (encrypted ones with the header fields only) and ``epochs`` is
built from the frame headers alone.

* ``messages`` — GTP (gtp_rfc.md §4, reference-map §3): ``status`` is what a receiving
  :class:`~gbp_lab.core.gtp.client.GtpClient` answers (``new`` / ``duplicate`` by ``(sender_id,
  message_id)`` within an epoch, or ``error``); one client per receiving endpoint (``dst:dport``),
  so a relay's forwarded copy is judged by its own receiver, not counted as a duplicate.
* ``audio`` — GAP (gap_rfc.md §4); the ``opus`` bytes are read as an SFrame header
  (RFC 9605 §4.3) when one fits (profile detected per frame, KID epoch bits = the frame's epoch)
  — otherwise ``profile`` / ``kid`` / ``ctr`` stay empty (raw Opus, or SFrame of another epoch).
  With a key log the payload is opened (:func:`~.media.open_media`, RFC 9605 §4.4):
  ``sframe_decrypted``, ``opus_len`` (plaintext length), ``sframe_error`` (no key for the epoch,
  tag failure, replayed CTR …), ``key_epoch`` and ``opus`` (the Opus bytes: the plaintext, or the
  field itself for raw Opus).
* ``signals`` — GSP (gsp_rfc.md §6); ``args`` is the strict decoding of the integer-keyed CBOR map
  (:func:`~gbp_lab.core.gsp.args.parse_args`), ``args_error`` says why it did not decode.
* ``control`` — GBP control messages (gbp-control-plane.md §3, §5). For PREPARE_TRANSITION the
  args are an MLSMessage (RFC 9420 §6): ``mls_type`` names its wire format / content type. A
  PrivateMessage Commit is decrypted when the key log has ``MLS_SENDER_DATA_SECRET`` and
  ``MLS_ENCRYPTION_SECRET`` for the message's MLS epoch (RFC 9420 §6.3.2 sender data, §9 secret
  tree); the tree size is not in the capture, so the core's one policy for that opens it
  (:func:`~gbp_lab.core.mls.observer.open_private_message`: padded widths 2^k from the smallest
  holding the sender's leaf). ``commit`` then lists the proposals; otherwise ``commit_error``
  says why not (no secrets for that epoch, a consumed secret-tree root, a PublicMessage …).
* ``epochs`` — one row per (group, epoch): ``transition_id`` = the highest ``tid`` its frames
  carry (the transition that led to the epoch; a member bootstrapped from a Welcome may still
  send an older one — all are in ``transition_ids``), first/last time, the senders seen, the
  number of frames.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import pandas as pd

from gbp_lab.core.errors import GbpLabError
from gbp_lab.core.gbp.classify import classify_record
from gbp_lab.core.gbp.control import decode_control
from gbp_lab.core.gbp.registry import ControlOpcode, PayloadCodec, StreamType
from gbp_lab.core.gsp.args import parse_args
from gbp_lab.core.gsp.signal import GspSignal, SignalType
from gbp_lab.core.gtp.client import GTP_FIELDS, GtpClient
from gbp_lab.core.gtp.message import GtpMessage
from .columns import frame_of_columns, frame_of_rows, time_cells
from .media import open_media
from .readpath import payload_fields  # the read path's CBOR fast path + strict fallback

_fields = payload_fields

__all__ = ["MESSAGE_COLUMNS", "AUDIO_COLUMNS", "SIGNAL_COLUMNS", "CONTROL_COLUMNS",
           "EPOCH_COLUMNS", "build_messages", "build_audio", "build_signals", "build_control",
           "build_epochs", "decode_prepare_commit", "codec_wire"]

MESSAGE_COLUMNS = ["time", "frame", "sender", "sender_id", "message_id", "text", "content_type",
                   "flags", "status", "codec", "epoch", "request_id", "timestamp_ms", "length",
                   "receiver"]
AUDIO_COLUMNS = ["time", "frame", "sender", "media_source_id", "rtp_sequence", "rtp_timestamp",
                 "key_phase", "payload_len", "profile", "kid", "ctr", "codec", "epoch",
                 "sframe_decrypted", "opus_len", "sframe_error", "key_epoch", "opus"]
SIGNAL_COLUMNS = ["time", "frame", "sender", "signal", "signal_type", "args", "args_error",
                  "role_claim", "request_id", "sender_id", "codec", "epoch"]
CONTROL_COLUMNS = ["time", "frame", "sender", "opcode", "opcode_name", "transition_id",
                   "request_id", "sender_id", "args_len", "epoch", "decrypted", "mls_type",
                   "mls_epoch", "commit_sender_leaf", "proposals", "added", "removed", "commit",
                   "commit_error"]
EPOCH_COLUMNS = ["group_id", "epoch", "transition_id", "transition_ids", "first_time", "last_time", "members",
                 "frames", "decrypted", "time", "frame"]

_INT = {"frame": "Int64", "sender": "Int64", "sender_id": "Int64", "message_id": "UInt64",
        "content_type": "Int64", "flags": "Int64", "epoch": "UInt64", "request_id": "Int64",
        "timestamp_ms": "UInt64", "length": "Int64", "media_source_id": "Int64",
        "rtp_sequence": "Int64", "rtp_timestamp": "UInt64", "key_phase": "Int64",
        "payload_len": "Int64", "kid": "UInt64", "ctr": "UInt64", "signal_type": "Int64",
        "role_claim": "Int64", "opcode": "Int64", "transition_id": "Int64", "args_len": "Int64",
        "mls_epoch": "UInt64", "commit_sender_leaf": "Int64", "frames": "Int64",
        "decrypted": "Int64", "opus_len": "Int64", "key_epoch": "UInt64"}
_FLOAT: set = set()  # times: columns.TIME_COLUMNS (datetime64[ns, UTC])
_BOOL = {"control": {"decrypted"}}

_CODEC_BY_NAME = {c.name: int(c) for c in PayloadCodec}


def codec_wire(name: Optional[str]) -> int:
    """The ``pf`` value behind a ``frames.codec`` name (unknown names were read as CBOR)."""
    return _CODEC_BY_NAME.get(name, 0) if name else 0


def _column_table(columns: Sequence[Sequence[Any]], names: Sequence[str], bools=()) -> pd.DataFrame:
    return frame_of_columns(columns, names, _INT, _FLOAT, bools)


def _table(rows: List[tuple], columns: Sequence[str], bools=()) -> pd.DataFrame:
    return frame_of_rows(rows, columns, _INT, _FLOAT, bools)


def _row_columns(frames: pd.DataFrame, plaintexts: Sequence[Optional[bytes]], stream_type: int,
                 decrypted_only: bool = True):
    """The frames of one stream type as columns: ``(rows, times, senders, epochs, codec names,
    dsts, dports, plaintexts)`` — lists, one entry per frame row (decrypted ones only, unless
    ``decrypted_only`` is false). Each column is taken from ``frames`` alone (not the whole
    table's rows)."""
    st = frames["stream_type"].to_numpy(dtype="float64", na_value=-1.0)
    idx = (st == stream_type).nonzero()[0]
    if decrypted_only and len(idx):
        keep = [k for k, i in enumerate(idx.tolist()) if plaintexts[i] is not None]
        if len(keep) != len(idx):
            idx = idx[keep]
    if not len(idx):
        return None
    rows = idx.tolist()
    col = {c: frames[c].iloc[idx] for c in ("time", "sender", "epoch", "codec", "dst", "dport")}
    return (rows, time_cells(col["time"]), col["sender"].tolist(), col["epoch"].tolist(),
            col["codec"].tolist(), col["dst"].tolist(), col["dport"].tolist(),
            [plaintexts[i] for i in rows])


def _rows_of(frames: pd.DataFrame, plaintexts: Sequence[Optional[bytes]], stream_type: int,
             decrypted_only: bool = True):
    """(row index, time, sender, epoch, codec name, dst, dport, plaintext) of one stream type."""
    cols = _row_columns(frames, plaintexts, stream_type, decrypted_only)
    return [] if cols is None else list(zip(*cols))


def _stale_rows(frames: pd.DataFrame) -> set:
    """Rows that opened only under an earlier epoch's key (``key_epoch`` ≠ ``epoch``)."""
    if "key_epoch" not in frames.columns or not len(frames):
        return set()
    ke = frames["key_epoch"].to_numpy(dtype="float64", na_value=-1.0)
    ep = frames["epoch"].to_numpy(dtype="float64", na_value=-1.0)
    return set(((ke >= 0) & (ke != ep)).nonzero()[0].tolist())


#: the verdict on a GTP frame sealed with a stale key: the reference node drops it (RFC 9420
#: §8.5 keys of an epoch the sender left) before GTP; the row shows the message as decoded
STALE_KEY = "stale_key"


# ------------------------------------------------------------------------------------------------
def build_messages(frames: pd.DataFrame, plaintexts: Sequence[Optional[bytes]],
                   values: Optional[Sequence[Optional[tuple]]] = None) -> pd.DataFrame:
    """GTP messages (decrypted text frames), with the receiver's ``new``/``duplicate`` verdict:
    one :class:`GtpClient` per receiving endpoint judges that endpoint's frames in capture order
    (:meth:`GtpClient.accept_many`, the client's batch path — the verdicts of ``accept``).
    ``values``: the read loop's decoded payload values per frame row
    (:attr:`~.readpath.ReadChunk.values`), handed to ``accept_many`` (no second decode).
    Built column by column (no tuple per row)."""
    cols = _row_columns(frames, plaintexts, StreamType.TEXT)
    if cols is None:
        return _table([], MESSAGE_COLUMNS)
    rows_i, times, snds, eps, cnames, dsts, dports, pts = cols
    n = len(rows_i)
    pre = values if values else None
    stale = _stale_rows(frames)
    wires = [codec_wire(c) for c in cnames]
    by_recv: Dict[tuple, List[int]] = {}
    for k, key in enumerate(zip(dsts, dports)):
        if not stale or rows_i[k] not in stale:  # sealed with an earlier epoch's key: the
            by_recv.setdefault(key, []).append(k)  # node drops it before GTP
    statuses: List[Any] = [STALE_KEY] * n
    vals: List[Any] = [None] * n
    for ks in by_recv.values():
        got = GtpClient().accept_many([pts[k] for k in ks], [eps[k] for k in ks],
                                      [wires[k] for k in ks],
                                      None if pre is None else [pre[rows_i[k]] for k in ks])
        for k, (status, v, _reason) in zip(ks, got):
            statuses[k] = status
            vals[k] = v
    for k in range(n):
        if statuses[k] is STALE_KEY:  # stale key: the message as decoded, status stale_key
            try:
                g = payload_fields(GtpMessage, pts[k], wires[k])
                vals[k] = tuple(g[a] for a in GTP_FIELDS)
            except GbpLabError:
                pass
        if vals[k] is None:
            statuses[k] = "error"
            vals[k] = _NO_VALUES
    mid, sid, ts, rid, fl, ct, ln, body = zip(*vals)
    text = [b.decode("utf-8", "replace") if c == 0 or c == 1 else None
            for b, c in zip(body, ct)]
    return _column_table((times, rows_i, snds, sid, mid, text, ct, fl, statuses, cnames, eps,
                           rid, ts, ln, [f"{d}:{p}" for d, p in zip(dsts, dports)]),
                          MESSAGE_COLUMNS)


#: a message that does not decode: no field values (the ``error`` row)
_NO_VALUES = (None,) * len(GTP_FIELDS)


def build_audio(frames: pd.DataFrame, plaintexts: Sequence[Optional[bytes]],
                media: Optional[Mapping[int, Any]] = None) -> pd.DataFrame:
    """GAP audio payloads (decrypted audio frames) with the SFrame header fields and the opened
    media (:func:`~.media.open_media`'s results by frame row; computed here when not given).
    Built column by column, as :func:`build_messages`."""
    if media is None:
        media = open_media(frames, plaintexts, None)[0]
    cols = _row_columns(frames, plaintexts, StreamType.AUDIO)
    if cols is not None:
        rows_i, times, snds, eps, cnames = cols[:5]
        # a frame without a MediaOpen: its GAP payload does not decode (its error column says why)
        keep = [k for k, i in enumerate(rows_i) if media.get(i) is not None]
        if len(keep) != len(rows_i):
            rows_i, times, snds, eps, cnames = ([c[k] for k in keep]
                                                for c in (rows_i, times, snds, eps, cnames))
    if cols is None or not rows_i:
        return _table([], AUDIO_COLUMNS, bools={"sframe_decrypted"})
    gap, profile, kid, ctr, key_epoch, opus, decrypted, error = zip(*[media[i] for i in rows_i])
    return _column_table((
        times, rows_i, snds, [a["media_source_id"] for a in gap],
        [a["rtp_sequence"] for a in gap], [a["rtp_timestamp"] for a in gap],
        [a["key_phase"] for a in gap], [len(a["opus_frame"]) for a in gap], profile, kid, ctr,
        cnames, eps, decrypted, [None if o is None else len(o) for o in opus], error, key_epoch,
        opus), AUDIO_COLUMNS, bools={"sframe_decrypted"})


def build_signals(frames: pd.DataFrame, plaintexts: Sequence[Optional[bytes]]) -> pd.DataFrame:
    """GSP signals (decrypted signal frames); ``args`` decoded to a dict."""
    rows: List[tuple] = []
    for i, t, snd, ep, cname, _d, _p, pt in _rows_of(frames, plaintexts, StreamType.SIGNAL):
        try:
            s = _fields(GspSignal, pt, codec_wire(cname))
        except GbpLabError:
            continue
        try:
            name = SignalType(s["signal_type"]).name
        except ValueError:
            name = f"UNKNOWN({s['signal_type']})"
        args, err = None, None
        if s["args"]:
            try:
                args = parse_args(s["args"])
            except GbpLabError as exc:
                err = f"[{exc.vid}] {exc.message}"
        else:
            args = {}
        rows.append((t, i, snd, name, s["signal_type"], args, err, s["role_claim"],
                     s["request_id"], s["sender_id"], cname, ep))
    return _table(rows, SIGNAL_COLUMNS)


# ------------------------------------------------------------------------------------------------
_CONTENT_NAMES = {1: "application", 2: "proposal", 3: "commit"}


def decode_prepare_commit(args: bytes, keylog) -> Dict[str, Any]:
    """What the MLSMessage inside PREPARE_TRANSITION's args says (RFC 9420 §6, §12.4).

    Returns a dict with ``mls_type``, ``mls_epoch``, and — when the Commit could be decrypted —
    ``leaf`` (the committer's leaf), ``proposals`` (type names), ``added`` (identities of Add
    proposals' credentials), ``removed`` (leaf indexes), ``commit`` (a summary dict) and
    ``authenticated`` (the §6.1 ``AuthenticatedContent``: what :mod:`.trees` replays); otherwise
    ``error`` says why not."""
    from gbp_lab.core.mls.commit import Commit
    from gbp_lab.core.mls.framing import AuthenticatedContent, PrivateMessage, PublicMessage
    from gbp_lab.core.mls.observer import open_private_message
    from gbp_lab.core.mls.registries import WireFormat
    from gbp_lab.core.mls.suites import CipherSuite

    out: Dict[str, Any] = {"mls_type": None, "mls_epoch": None, "error": None}
    rc = classify_record(args)  # which MLS structure: by parsing (the core's one classifier)
    if not rc.kind.is_mls:
        why = rc.error or f"a {rc.name}"
        out["error"] = f"args are not an MLSMessage: {why}"
        return out
    body = rc.body
    name = rc.name
    content_body = None
    if isinstance(body, (PrivateMessage, PublicMessage)):
        ct = body.content_type if isinstance(body, PrivateMessage) else body.content.content_type
        out["mls_type"] = f"{name}/{_CONTENT_NAMES.get(int(ct), int(ct))}"
        gid = body.group_id if isinstance(body, PrivateMessage) else body.content.group_id
        epoch = body.epoch if isinstance(body, PrivateMessage) else body.content.epoch
        out["mls_epoch"] = epoch
        if int(ct) != 3:
            out["error"] = "the MLS message is not a commit"
            return out
        if isinstance(body, PublicMessage):  # a plaintext commit: readable without keys
            content_body = body.content.body
            out["leaf"] = getattr(body.content.sender, "index", None)
            authenticated = AuthenticatedContent(WireFormat.MLS_PUBLIC_MESSAGE, body.content, body.auth)
        else:
            if keylog is None:
                out["error"] = "no key log: the commit is an encrypted PrivateMessage"
                return out
            sds = keylog.sender_data_secret(gid, epoch)
            enc = keylog.encryption_secret(gid, epoch)
            if sds is None or enc is None:
                missing = [n for n, v in (("MLS_SENDER_DATA_SECRET", sds),
                                          ("MLS_ENCRYPTION_SECRET", enc)) if v is None]
                why = (" (a gbp_stack export_state() holds the secret-tree root only until the "
                       "epoch's first handshake/application key is derived: log the state "
                       "before the commit is created)" if enc is None and sds is not None else "")
                out["error"] = (f"the key log has no {' / '.join(missing)} for group {gid.hex()} "
                                f"MLS epoch {epoch}: the PrivateMessage commit cannot be "
                                f"decrypted{why}")
                return out
            try:
                cs = CipherSuite.get(keylog.suite(gid))
            except GbpLabError as exc:
                out["error"] = f"[{exc.vid}] {exc.message}"
                return out
            try:  # the tree size is not in the capture: the observer's one policy
                opened = open_private_message(body, cs, sds, enc)
            except GbpLabError as exc:
                out["error"] = (f"[{exc.vid}] commit does not decrypt with the logged secrets: "
                                f"{exc.message}")
                return out
            content_body = opened.content.body
            out["leaf"] = opened.leaf_index
            authenticated = AuthenticatedContent(WireFormat.MLS_PRIVATE_MESSAGE, opened.content,
                                                 opened.auth)
    else:
        out["mls_type"] = name
        out["error"] = f"PREPARE carries a {name}, not a commit"
        return out
    try:
        commit = Commit.from_bytes(content_body)
    except GbpLabError as exc:
        out["error"] = f"[{exc.vid}] decrypted commit does not decode: {exc.message}"
        return out
    kinds, added, removed, items = [], [], [], []
    for por in commit.proposals:
        if por.proposal is None:
            kinds.append("reference")
            ref = por.reference
            items.append({"type": "reference", "ref": ref.hex() if ref is not None else None})
            continue
        p = por.proposal
        kind = p.proposal_type.name.lower()
        kinds.append(kind)
        item: Dict[str, Any] = {"type": kind}
        b: Any = p.body  # the proposal body named by ``kind``
        if kind == "add":
            cred = b.key_package.leaf_node.credential
            ident = cred.identity
            who = ident.decode("utf-8", "replace") if ident is not None else None
            added.append(who)
            item["identity"] = who
        elif kind == "remove":
            removed.append(b.removed)
            item["removed"] = b.removed
        items.append(item)
    out.update(proposals=kinds, added=added, removed=removed,
               commit={"proposals": items, "path": commit.path is not None},
               authenticated=authenticated)
    return out


def build_control(frames: pd.DataFrame, plaintexts: Sequence[Optional[bytes]],
                  keylog=None) -> pd.DataFrame:
    """Control frames (stream type 0); PREPARE's commit decrypted when the key log allows."""
    rows: List[tuple] = []
    tids = None
    for i, t, snd, ep, _c, _d, _p, pt in _rows_of(frames, plaintexts, StreamType.CONTROL,
                                                    decrypted_only=False):
        if pt is None:
            if tids is None:
                tids = frames["transition_id"]
            rows.append((t, i, snd, None, None, tids.iloc[i], None, None, None, ep, False, None,
                         None, None, None, None, None, None, "control frame not decrypted"))
            continue
        try:
            m = decode_control(pt)
        except GbpLabError:
            continue
        try:
            opname = ControlOpcode(m.opcode).name
        except ValueError:
            opname = f"0x{m.opcode:04x}"
        mls_type = mls_epoch = leaf = kinds = added = removed = commit = cerr = None
        if m.opcode == ControlOpcode.PREPARE_TRANSITION:
            d = decode_prepare_commit(m.args, keylog)
            mls_type, mls_epoch, cerr = d["mls_type"], d["mls_epoch"], d["error"]
            leaf, kinds, added = d.get("leaf"), d.get("proposals"), d.get("added")
            removed, commit = d.get("removed"), d.get("commit")
        rows.append((t, i, snd, m.opcode, opname, m.transition_id, m.request_id, m.sender_id,
                     m.args_length, ep, True, mls_type, mls_epoch, leaf, kinds, added, removed,
                     commit, cerr))
    return _table(rows, CONTROL_COLUMNS, bools={"decrypted"})


def build_epochs(frames: pd.DataFrame) -> pd.DataFrame:
    """The epoch timeline: one row per (group, epoch) in order of first appearance."""
    if not len(frames):
        return _table([], EPOCH_COLUMNS)
    gids = frames["group_id"].tolist()
    eps = frames["epoch"].tolist()
    tids = frames["transition_id"].tolist()
    times = time_cells(frames["time"])
    snds = frames["sender"].tolist()
    dec = frames["decrypted"].tolist()
    acc: Dict[tuple, list] = {}
    for i, (g, e) in enumerate(zip(gids, eps)):
        if e is None or e is pd.NA or e != e:
            continue  # raw MLS blobs have no epoch
        a = acc.get((g, e))
        t = times[i]
        if a is None:
            acc[(g, e)] = [set(), t, t, set(), 0, 0, i]
            a = acc[(g, e)]
        tid = tids[i]
        if tid is not None and tid is not pd.NA and tid == tid:
            a[0].add(int(tid))
        if t < a[1]:
            a[1] = t
        if t > a[2]:
            a[2] = t
        s = snds[i]
        if s is not None and s is not pd.NA and s == s:
            a[3].add(int(s))
        a[4] += 1
        a[5] += bool(dec[i])
    rows: List[tuple] = []
    for (g, e), (tset, first, last, members, n, nd, fi) in acc.items():
        rows.append((g, e, max(tset) if tset else None, sorted(tset), first, last,
                     sorted(members), n, nd, first, fi))
    rows.sort(key=lambda r: (r[4], r[1]))
    df = _table(rows, EPOCH_COLUMNS)
    return df
