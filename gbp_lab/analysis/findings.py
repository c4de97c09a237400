"""Findings: what an analyst should look at in a capture (security and robustness).

The one place the finding kinds are defined (:data:`KINDS`, stable strings):

==========================  ========  ===============================================================
kind                        severity  meaning
==========================  ========  ===============================================================
``nonce_reuse``             high      two or more DIFFERENT senders sealed frames with the same
                                      (group, epoch, stream type, seq). The reference derives one key
                                      per (epoch, stream type) for every member (``MLS-Exporter
                                      ("gbp/<stream>", "", 32)``) and uses ``nonce = seq ‖ 0^8``
                                      (reference-map §5), so these frames share key AND nonce:
                                      ChaCha20 keystream reuse, ``ct1 ⊕ ct2 = pt1 ⊕ pt2``, and the
                                      Poly1305 one-time key is reused (forgery). ONE row per (group,
                                      epoch, stream type, seq); ``frames`` = every frame involved
                                      (forwarded copies included), ``senders``, ``xor`` = pt1 ⊕ pt2 of
                                      the first two senders (from the plaintexts when decrypted, else
                                      from the ciphertexts — the same bytes), also in ``detail``.
                                      Identical bytes seen on several connections (a relay forwarding
                                      one frame) are ONE frame and never count.
``replay``                  medium    the same frame bytes again on the same direction of a flow.
``replay_modified``         high      the same (group, epoch, sender stream, seq) with different frame
                                      bytes (a re-sealed or forged frame; under the reference's keys it
                                      also reuses key + nonce). ``xor`` as for nonce_reuse.
``outside_window``          medium    seq ≤ the highest seq already seen for that (group, epoch,
                                      stream type, stream id) on that direction of the flow: the
                                      reference receiver drops it (no reordering window, §5).
``epoch_regression``        medium    a frame of a lower epoch after a higher one on the same direction
                                      of a flow (one row per regression, frames = its run).
``decrypt_failure``         high      the key log has the epoch's secret but the AEAD tag does not
                                      verify (tampered or mis-keyed frame).
``malformed``               medium    a record that is no valid frame, a decrypted plaintext that does
                                      not decode, an oversize length, a bad record (from ``errors``).
``capture_defect``          low       the capture itself lost data: truncated file, unknown link type,
                                      TCP gaps, garbage skipped during re-synchronisation …
``sframe_nonce_reuse``      high      two SFrame payloads with the same (group, epoch, KID, CTR) and
                                      different bytes: the same AES-GCM key and nonce (RFC 9605 §4.4.3,
                                      §9.1; gbp-stack 1.9.1 restarts CTR at 0 when an encryptor is
                                      re-created). One row per (group, epoch, KID, CTR): ``frames`` =
                                      every frame carrying one of them (relay copies included — a copy
                                      of one payload is never reuse), ``kid``/``ctr``, ``xor`` = the
                                      XOR of the first two plaintexts when both opened, else of the
                                      ciphertexts (the same bytes: the keystream cancels).
``stale_epoch_key``         high      frames labelled epoch N whose tag fails under epoch N's key but
                                      verifies under an earlier epoch's key from the same log
                                      (``frames.key_epoch``): a member still sending with keys it should
                                      no longer have — typically one a commit removed. One row per
                                      (group, epoch, sender, key epoch); ``removed`` says whether a
                                      commit the capture shows removed that sender (its leaf from its
                                      SFrame KIDs when it sent audio; else: a commit between the key
                                      epoch and N removed a leaf and the sender never used a newer key).
                                      Receivers drop these frames: ``errors`` keeps the tag failure.
``tree_mismatch``           high      a decrypted commit does not apply to the ratchet tree the observer
                                      rebuilt (``Capture.trees``, :mod:`gbp_lab.capture.trees`): blank
                                      committer, UpdatePath of the wrong length, Remove of a blank leaf.
``bad_parent_hash``         high      an UpdatePath leaf's parent hash or a rebuilt parent node is not
                                      parent-hash valid (RFC 9420 §7.9).
``bad_confirmation_tag``    high      a commit's confirmation tag is not the MAC of the transcript hash
                                      the observer computed (§6.1, §8.2; needs ``MLS_EPOCH_SECRET``).
``bad_leaf_signature``      high      a LeafNode signature (§7.3) or the commit's FramedContent signature
                                      over the rebuilt GroupContext (§6.1) does not verify.
==========================  ========  ===============================================================

These four come from ``Capture.trees`` (``epoch`` = the epoch the commit leads to, ``frames`` =
its PREPARE frame).

An SFrame payload whose tag fails under its epoch's key is a ``decrypt_failure`` too.

Columns: ``kind, epoch, stream_type, sequence_no, frames, detail`` (the brief's contract) then
``time`` (first frame/error), ``senders``, ``xor`` (bytes or None), ``errors`` (indexes into
``Capture.errors``), ``severity``, ``key_epoch``, ``kid``, ``ctr``, ``removed``.

Scopes (:data:`SCOPES`): each kind needs the frames of one key only, so the findings of a frames
table split by that key are the findings of the whole (``find_in(..., scopes=…)`` computes one
scope; :mod:`gbp_lab.capture.many` runs each on its own shuffle):

* ``nonce`` — key (group, epoch, stream type, seq): ``nonce_reuse``, ``replay_modified`` and the
  per-frame ``decrypt_failure``/``malformed`` of GBP frames;
* ``direction`` — key (flow, source address, source port, group), in capture order: ``replay``,
  ``outside_window``, ``epoch_regression``;
* ``group`` — one group's frames, its media opened in order, its ``control`` rows:
  ``sframe_nonce_reuse`` and SFrame ``decrypt_failure``, ``stale_epoch_key`` (the commits, SFrame
  leaves and fresh keys of the same group only) and the four tree kinds (in :func:`find`);
* ``errors`` — the ``errors`` table: ``capture_defect``, ``malformed`` records.

With ``numbers`` (the frame numbers of the rows of ``frames``; default: their positions) the
rows' frame lists and ``detail`` texts are rendered with those numbers, so a part of a capture
reports the numbers of the whole. :func:`sort_findings` puts rows from several scopes or parts back in
the order :func:`find` gives on the whole.
"""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import pandas as pd

from gbp_lab.capture.columns import frame_of_rows, gc_paused, time_cells, with_rel_time
from gbp_lab.core.sframe import leaf_from_kid, parse_header

__all__ = ["KINDS", "SEVERITY", "FINDING_COLUMNS", "SCOPES", "find", "find_in", "sort_findings",
           "xor_bytes"]

KINDS = ("nonce_reuse", "replay", "replay_modified", "outside_window", "epoch_regression",
         "decrypt_failure", "malformed", "capture_defect", "sframe_nonce_reuse",
         "stale_epoch_key", "tree_mismatch", "bad_parent_hash", "bad_confirmation_tag",
         "bad_leaf_signature")
SEVERITY = {"tree_mismatch": "high", "bad_parent_hash": "high", "bad_confirmation_tag": "high",
            "bad_leaf_signature": "high",
            "nonce_reuse": "high", "replay": "medium", "replay_modified": "high",
            "outside_window": "medium", "epoch_regression": "medium", "decrypt_failure": "high",
            "malformed": "medium", "capture_defect": "low", "sframe_nonce_reuse": "high",
            "stale_epoch_key": "high"}
FINDING_COLUMNS = ["kind", "epoch", "stream_type", "sequence_no", "frames", "detail", "time",
                   "senders", "xor", "errors", "severity", "key_epoch", "kid", "ctr", "removed",
                   "rel_time"]

TAG_LENGTH = 16
_FINDING_INTS = {"epoch": "UInt64", "stream_type": "Int64", "sequence_no": "Int64",
                 "key_epoch": "UInt64", "kid": "UInt64", "ctr": "UInt64"}
_DEFECT_KINDS = {"capture", "tcp", "udp"}
#: the scopes of :func:`find_in` (module docstring)
SCOPES = ("nonce", "direction", "group", "errors")
_TREE_KINDS = ("tree_mismatch", "bad_parent_hash", "bad_confirmation_tag", "bad_leaf_signature")
#: the order of the kinds :func:`find_in` emits for one frame (:func:`_frame_findings`: as a
#: frame-by-frame scan)
_LOOP_ORDER = {"decrypt_failure": 0, "malformed": 1, "replay": 2, "replay_modified": 3,
               "outside_window": 4, "epoch_regression": 5}


def xor_bytes(a: bytes, b: bytes) -> bytes:
    """``a ⊕ b`` over the shorter length."""
    n = min(len(a), len(b))
    return (int.from_bytes(a[:n], "big") ^ int.from_bytes(b[:n], "big")).to_bytes(n, "big")


def _plain_list(col: pd.Series) -> list:
    """A column as a list of plain Python values (ints, str …) with ``None`` for every missing
    value (``pd.NA`` in nullable integers, NaN in text), converted in bulk."""
    if not col.hasnans:
        return col.tolist()
    return col.to_numpy(dtype=object, na_value=None).tolist()


def _pair_xor(i: int, j: int, plaintexts, payloads) -> tuple:
    """(xor, source) of frames ``i`` and ``j``: plaintexts if both decrypted, else ciphertexts."""
    pi = plaintexts[i] if i < len(plaintexts) else None
    pj = plaintexts[j] if j < len(plaintexts) else None
    if pi is not None and pj is not None:
        return xor_bytes(pi, pj), "plaintexts"
    ci = payloads[i] if i < len(payloads) else None
    cj = payloads[j] if j < len(payloads) else None
    if ci is not None and cj is not None:
        return xor_bytes(ci[:-TAG_LENGTH], cj[:-TAG_LENGTH]), "ciphertexts (keystream cancels)"
    return None, None


def find(capture, scopes=SCOPES, numbers=None) -> pd.DataFrame:
    """All findings of a :class:`~gbp_lab.capture.model.Capture` (kinds in :data:`KINDS`), or
    those of ``scopes``; ``numbers``: the frame numbers of its rows (module docstring)."""
    df = find_in(capture.frames, capture.errors, capture.plaintexts,
                 getattr(capture, "payloads", None) or [], getattr(capture, "media", None),
                 lambda: capture.control, scopes=scopes, numbers=numbers)
    if "group" in scopes:
        if numbers is None:
            trees = getattr(capture, "trees", None)
        else:  # the commits' frames renumbered before the trees render them
            from gbp_lab.capture.trees import trees_of
            trees = trees_of(capture, numbers)
        if trees is not None and trees.findings:
            rows: List[tuple] = [(f.kind, f.epoch, None, None,
                                  [] if f.frame is None else [f.frame], f.detail,
                                  time_cells([f.time])[0] if f.time is not None else None,
                                  None, None, [], SEVERITY[f.kind], None, None, None, None)
                                 for f in trees.findings]
            more = _findings_frame(rows)
            df = pd.concat([df, more], ignore_index=True) if len(df) else more
            df = df.sort_values("time", kind="stable", na_position="last").reset_index(drop=True)
    return with_rel_time(df, getattr(capture, "t0", None))


def sort_findings(df: pd.DataFrame) -> pd.DataFrame:
    """Findings of several scopes or parts (frames and errors numbered as in the whole) in the
    order :func:`find` gives on the whole: by time, then as :func:`find_in` emits them (its
    frame loop, frame by frame; nonce reuses; SFrame failures; SFrame reuses; stale keys; the
    ``errors`` rows; the tree kinds last)."""
    phase, key, sub = [], [], []
    for kind, fr, er, kid in zip(df["kind"].tolist(), df["frames"].tolist(),
                                 df["errors"].tolist(), df["kid"].tolist()):
        fr = list(fr) if fr is not None else []
        if kind in _TREE_KINDS:
            p, k = 6, (fr[0] if fr else -1)
        elif not fr:
            p, k = 5, (list(er)[0] if er is not None and len(er) else -1)
        elif kind == "nonce_reuse":
            p, k = 1, min(fr)
        elif kind == "decrypt_failure" and kid is not None and kid is not pd.NA:
            p, k = 2, fr[0]
        elif kind == "sframe_nonce_reuse":
            p, k = 3, min(fr)
        elif kind == "stale_epoch_key":
            p, k = 4, fr[0]
        else:  # the loop: the frame it was at (an epoch regression's run grows after it)
            p, k = 0, (fr[0] if kind == "epoch_regression" else fr[-1])
        phase.append(p)
        key.append(int(k))
        sub.append(_LOOP_ORDER.get(kind, 0) if p == 0 else 0)
    order = pd.DataFrame({"time": df["time"].reset_index(drop=True), "p": phase, "k": key,
                          "s": sub})
    idx = order.sort_values(["time", "p", "k", "s"], kind="stable",
                            na_position="last").index
    return df.iloc[idx.to_numpy()].reset_index(drop=True)


def find_in(frames: pd.DataFrame, errors: pd.DataFrame, plaintexts, payloads, media=None,
            control=None, *, scopes=SCOPES, numbers=None) -> pd.DataFrame:
    """The findings of a frames/errors table pair (see the module docstring), those of
    ``scopes`` (:data:`SCOPES`), frames numbered by ``numbers`` (default: their positions).

    The cyclic garbage collector is paused meanwhile (and restored, whatever happens): the
    indexes built here hold a key tuple per frame, which would trigger full collections over the
    whole heap again and again (a third of the time at a million frames), and they are freed by
    reference counting when this returns — they make no cycles."""
    bad = set(scopes) - set(SCOPES)
    if bad:
        from gbp_lab.core.errors import UsageError
        raise UsageError(f"unknown finding scope(s) {sorted(bad)}: one of {', '.join(SCOPES)}",
                         vid="CAP-FIND-SCOPE", where="find_in")
    with gc_paused():
        return _find_in(frames, errors, plaintexts, payloads, media or {}, control,
                        frozenset(scopes), numbers)


def _find_in(frames: pd.DataFrame, errors: pd.DataFrame, plaintexts, payloads, media,
             control, scopes: frozenset, numbers) -> pd.DataFrame:
    rows: List[tuple] = []
    num = (lambda i: i) if numbers is None else numbers.__getitem__
    by_nonce, by_dir = "nonce" in scopes, "direction" in scopes

    def add(kind, epoch, st, seq, fr, detail, time, senders=None, xor=None, errs=None,
            key_epoch=None, kid=None, ctr=None, removed=None):
        rows.append((kind, epoch, st, seq, [num(i) for i in fr], detail, time, senders, xor,
                     list(errs or []), SEVERITY[kind], key_epoch, kid, ctr, removed))

    n = len(frames) if by_nonce or by_dir or "group" in scopes else 0
    if n:
        cols = {c: _plain_list(frames[c]) for c in (
            "src", "sport", "flow_id", "group_id", "epoch", "stream_type", "stream_id",
            "sender", "sequence_no", "error")}
        T = time_cells(frames["time"])
        SRC, SP, FL = cols["src"], cols["sport"], cols["flow_id"]
        GID, EP, ST = cols["group_id"], cols["epoch"], cols["stream_type"]
        SID, SND, SEQ, ERR = cols["stream_id"], cols["sender"], cols["sequence_no"], cols["error"]
        if by_nonce or by_dir:
            rows.extend(_frame_findings(frames, payloads, plaintexts, T, SRC, SP, FL, GID, EP,
                                        ST, SID, SND, SEQ, ERR, by_nonce, by_dir, num))
        if media and "group" in scopes:
            _sframe_findings(add, media, GID, EP, SND, T)
        if "key_epoch" in frames.columns and "group" in scopes:
            _stale_findings(add, frames, media, control, GID, EP, SND, T, ST, SEQ, num)
    # defects from the errors table
    if len(errors) and "errors" in scopes:
        kinds, vids, texts, times = (errors["kind"].tolist(), errors["vid"].tolist(),
                                     errors["error"].tolist(), time_cells(errors["time"]))
        for k in range(len(errors)):
            if kinds[k] == "decrypt":
                continue  # a decrypt_failure row per frame already
            kind = "capture_defect" if kinds[k] in _DEFECT_KINDS else "malformed"
            if vids[k] in ("GBP-RECORD-OVERSIZE", "REC-TRUNCATED-END", "REC-UNKNOWN"):
                kind = "malformed"
            add(kind, None, None, None, [], f"[{vids[k]}] {texts[k]}", times[k], errs=[k])
    rows.sort(key=lambda r: (r[6] if r[6] == r[6] and r[6] is not None else float("inf")))
    return _findings_frame(rows)


def _codes(columns: List[Any]) -> np.ndarray:
    """One integer per row naming the tuple of the rows' values in *columns* (equal tuples,
    equal codes; a missing value equals another missing value, as ``None`` does in a key
    tuple). Codes count from 0 in the order the tuples first appear."""
    out: Any = None
    for c in columns:
        codes, uniq = pd.factorize(c, use_na_sentinel=False)
        codes = np.asarray(codes, dtype=np.int64)
        out = codes if out is None else np.asarray(
            pd.factorize(out * (len(uniq) + 1) + codes)[0], dtype=np.int64)
    return out


def _first_pos(codes: np.ndarray) -> np.ndarray:
    """Per row: the position of the first row with the same code."""
    _u, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)]


def _frame_findings(frames: pd.DataFrame, payloads, plaintexts, T, SRC, SP, FL, GID, EP, ST,
                    SID, SND, SEQ, ERR, by_nonce: bool, by_dir: bool, num) -> List[tuple]:
    """The findings of the frames themselves, in bulk: ``decrypt_failure`` / ``malformed`` (the
    frame's ``error``), ``replay``, ``replay_modified``, ``outside_window``,
    ``epoch_regression`` and ``nonce_reuse`` — those of the ``nonce`` scope if ``by_nonce``,
    of the ``direction`` scope if ``by_dir`` (module docstring); frames numbered by ``num``
    in the rows' frame lists and details. Every key (direction, group, epoch, stream …) is
    an integer code per frame (:func:`_codes`); "the first frame with this key" and "the highest
    seq / epoch before this frame" are column operations, and Python runs only per finding.
    The rows come in the order a frame-by-frame scan would add them (frame order, per frame
    the kinds in the order above; ``nonce_reuse`` rows after, by first frame)."""
    n = len(frames)
    proto = frames["protocol"].to_numpy(dtype=object, na_value=None)
    ok = ~((proto == "MLS") | frames["epoch"].isna().to_numpy()
           | frames["stream_type"].isna().to_numpy() | frames["sequence_no"].isna().to_numpy())
    idx = np.flatnonzero(ok)
    m = len(idx)
    if not m:
        return []
    per: List[tuple] = []  # (frame, rank, row)

    def row(kind, epoch, st, seq, fr, detail, time, senders=None, xor=None):
        return (kind, epoch, st, seq, [num(i) for i in fr], detail, time, senders, xor, [],
                SEVERITY[kind], None, None, None, None)

    def sub(c: str):
        return frames[c].array[idx]

    # a direction of a flow (the direction scope's key, with the group)
    d = _codes([sub("flow_id"), sub("src"), sub("sport")]) if by_dir else None
    pos = np.arange(m)
    tag_failed = np.zeros(m, dtype=bool)
    pl = np.full(n, None, dtype=object)
    k = min(n, len(payloads))
    pl[:k] = list(payloads[:k])
    skey = _codes([sub("group_id"), sub("epoch"), sub("stream_type"), sub("stream_id"),
                   sub("sequence_no")])  # a sender stream's seq
    rest = _codes([sub("transition_id"), sub("flags"), sub("codec"), pl[idx]])  # the rest of
    #                                       a frame's identity (header fields and payload bytes)
    ident = _codes([skey, rest])
    if by_nonce:
        # the frame's own error: tag failure (the tampered frame counts for nothing else) or
        # an undecodable plaintext
        for p in np.flatnonzero(frames["error"].notna().to_numpy()[idx]).tolist():
            i = int(idx[p])
            err = ERR[i]
            snd = [SND[i]] if SND[i] is not None else None
            if "GBP-AEAD-TAG" in err:
                tag_failed[p] = True
                per.append((i, 0, row("decrypt_failure", EP[i], ST[i], SEQ[i], [i],
                                      f"AEAD tag does not verify: {err}", T[i], snd)))
            elif "plaintext does not decode" in err:
                per.append((i, 0, row("malformed", EP[i], ST[i], SEQ[i], [i],
                                      f"decrypted payload does not decode: {err}", T[i], snd)))
    if by_dir:
        # replay: identical bytes again on the same direction
        first = _first_pos(_codes([d, ident]))
        for p in np.flatnonzero(first != pos).tolist():
            i, j = int(idx[p]), int(idx[first[p]])
            per.append((i, 1, row("replay", EP[i], ST[i], SEQ[i], [j, i],
                                  f"frame {num(i)} repeats frame {num(j)} byte for byte on "
                                  f"{SRC[i]}:{SP[i]} (flow {FL[i]}), stream {SID[i]} seq "
                                  f"{SEQ[i]}", T[i], [SND[i]])))
    if by_nonce:
        # the same sender stream + seq with different bytes (a new identity under a known key)
        kfirst = _first_pos(skey)
        for p in np.flatnonzero((kfirst != pos) & (_first_pos(ident) == pos)
                                & ~tag_failed).tolist():
            i, j = int(idx[p]), int(idx[kfirst[p]])
            x, src = _pair_xor(j, i, plaintexts, payloads)
            per.append((i, 2, row("replay_modified", EP[i], ST[i], SEQ[i], [j, i],
                                  f"stream {SID[i]} seq {SEQ[i]} sent again with different "
                                  f"bytes (frames {num(j)}, {num(i)}); same key and nonce"
                                  + (f"; xor from {src}: {x.hex()}" if x else ""), T[i],
                                  [SND[i]], x)))
    if by_dir:
        # receiver window per direction and sender stream: seq <= the highest seq before
        wk = _codes([d, sub("group_id"), sub("epoch"), sub("stream_type"), sub("stream_id")])
        seq = pd.Series(np.asarray(sub("sequence_no"), dtype=np.int64))
        low = np.iinfo(np.int64).min
        high = seq.groupby(wk).cummax().groupby(wk).shift(1, fill_value=low).to_numpy()
        for p in np.flatnonzero((high != low) & (seq.to_numpy() <= high)).tolist():
            i = int(idx[p])
            per.append((i, 3, row("outside_window", EP[i], ST[i], SEQ[i], [i],
                                  f"seq {SEQ[i]} <= highest {int(high[p])} already seen for "
                                  f"stream {SID[i]} on {SRC[i]}:{SP[i]} (flow {FL[i]}): the "
                                  f"reference receiver drops it", T[i], [SND[i]])))
        # epoch regression per direction and group: a lower epoch than the highest before; a
        # run of frames of one lower epoch is one row
        dk = _codes([d, sub("group_id")])
        ep = pd.Series(np.asarray(sub("epoch"), dtype=np.uint64))
        later = pd.Series(dk).groupby(dk).cumcount().to_numpy() > 0
        mx = ep.groupby(dk).cummax().groupby(dk).shift(1, fill_value=0).to_numpy()
        regr = later & (ep.to_numpy() < mx)
        if regr.any():
            prev_ep = ep.groupby(dk).shift(1, fill_value=0).to_numpy()
            prev_regr = pd.Series(regr).groupby(dk).shift(1, fill_value=False).to_numpy(
                dtype=bool)
            open_run: Dict[int, list] = {}
            for p in np.flatnonzero(regr).tolist():
                i = int(idx[p])
                run = open_run.get(int(dk[p]))
                if run is not None and prev_regr[p] and prev_ep[p] == ep.iat[p]:
                    run.append(num(i))
                    continue
                r = row("epoch_regression", EP[i], ST[i], SEQ[i], [i],
                        f"epoch {EP[i]} after epoch {int(mx[p])} on {SRC[i]}:{SP[i]} "
                        f"(flow {FL[i]})", T[i], [SND[i]])
                open_run[int(dk[p])] = r[4]
                per.append((i, 4, r))
    per.sort(key=lambda e: (e[0], e[1]))
    out = [r for _i, _k, r in per]
    if not by_nonce:
        return out
    # nonce reuse: DIFFERENT senders under one (group, epoch, stream type, seq) — tampered
    # frames do not count
    cand = np.flatnonzero(~tag_failed & frames["sender"].notna().to_numpy()[idx])
    if len(cand):
        nk = _codes([sub("group_id")[cand], sub("epoch")[cand], sub("stream_type")[cand],
                     sub("sequence_no")[cand]])
        sc = pd.factorize(sub("sender")[cand])[0]
        pair_first = np.unique(_codes([nk, sc]), return_index=True)[1]
        senders_of = np.bincount(nk[pair_first], minlength=int(nk.max()) + 1)
        multi = np.flatnonzero(senders_of[nk] >= 2)
        if len(multi):
            multi = multi[np.argsort(nk[multi], kind="stable")]  # by key, then frame order
            distinct_of = _codes([sub("stream_id")[cand], rest[cand]])
            cuts = np.flatnonzero(np.diff(nk[multi])) + 1
            for grp in np.split(multi, cuts):
                v = idx[cand[grp]].tolist()
                by_sender: Dict[int, List[int]] = {}
                for i in v:
                    by_sender.setdefault(SND[i], []).append(i)
                senders = sorted(by_sender)
                a, b = by_sender[senders[0]][0], by_sender[senders[1]][0]
                x, src = _pair_xor(a, b, plaintexts, payloads)
                distinct = len(set(distinct_of[grp].tolist()))
                i0 = v[0]
                gid, e, st, sq = GID[i0], EP[i0], ST[i0], SEQ[i0]
                out.append(row("nonce_reuse", e, st, sq, v,
                               f"senders {senders} sealed {distinct} distinct frames under the "
                               f"same key and nonce (group {gid}, epoch {e}, stream type {st}, "
                               f"seq {sq}); xor of senders {senders[0]} and {senders[1]} from "
                               f"{src}: {x.hex() if x is not None else '?'}", T[v[0]], senders,
                               x))
    return out


def _findings_frame(rows: List[tuple]) -> pd.DataFrame:
    df = frame_of_rows(rows, FINDING_COLUMNS[:-1], _FINDING_INTS)
    if not rows:  # the text columns' dtype as when there are rows (pieces concatenate alike)
        for c in ("kind", "detail", "severity"):
            df[c] = df[c].astype("str")
    return df


def _sframe_findings(add, media, GID, EP, SND, T) -> None:
    """``sframe_nonce_reuse`` (same group, epoch, KID, CTR; different payloads) and the
    ``decrypt_failure`` of SFrame payloads whose tag fails (RFC 9605 §4.4.3, §9.1)."""
    by_nonce: Dict[tuple, List[int]] = {}
    for i, m in media.items():
        if m.profile is None:
            continue
        by_nonce.setdefault((GID[i], EP[i], m.profile, m.kid, m.ctr), []).append(i)
        if m.error is not None and "SFRAME-DECRYPT" in m.error:
            add("decrypt_failure", EP[i], 1, None, [i],
                f"SFrame tag does not verify (KID {m.kid:#x}, CTR {m.ctr}): {m.error}", T[i],
                [SND[i]], kid=m.kid, ctr=m.ctr)
    for (gid, ep, prof, kid, ctr), fr in by_nonce.items():
        if len(fr) < 2:
            continue
        first: Dict[bytes, int] = {}  # distinct payload -> first frame carrying it
        for i in fr:
            first.setdefault(bytes(media[i].gap["opus_frame"]), i)
        if len(first) < 2:
            continue  # copies of one payload (relay, replay): no reuse
        a, b = list(first.values())[:2]
        pa, pb = media[a].opus, media[b].opus
        if media[a].decrypted and media[b].decrypted and pa is not None and pb is not None:
            x, src = xor_bytes(pa, pb), "plaintexts"
        else:  # the same header, the tag last: the ciphertexts in between
            ca, cb = list(first)[:2]
            hl = parse_header(ca, prof)[1]
            x, src = xor_bytes(ca[hl:-TAG_LENGTH], cb[hl:-TAG_LENGTH]), "ciphertexts"
        senders = sorted({SND[i] for i in fr if SND[i] is not None})
        add("sframe_nonce_reuse", ep, 1, None, sorted(fr),
            f"{len(first)} different SFrame payloads under KID {kid:#x} CTR {ctr} ({prof}, group "
            f"{gid}, epoch {ep}): the same AES-GCM key and nonce (a re-created encryptor "
            f"restarts CTR); xor of the first two from {src}: {x.hex()}", T[min(fr)], senders, x,
            kid=kid, ctr=ctr)


def _stale_findings(add, frames, media, control, GID, EP, SND, T, ST, SEQ, num) -> None:
    """``stale_epoch_key``: frames that opened only under an earlier epoch's key. The commits,
    the SFrame leaves and the newest fresh keys considered are those of the frames' group (an
    MLS group's members, leaves and commits are its own, RFC 9420 §8)."""
    ke = frames["key_epoch"].to_numpy(dtype="float64", na_value=-1.0)
    ep = frames["epoch"].to_numpy(dtype="float64", na_value=-1.0)
    stale = ((ke >= 0) & (ke != ep)).nonzero()[0].tolist()
    if not stale:
        return
    groups: Dict[tuple, List[int]] = {}
    for i in stale:
        groups.setdefault((GID[i], EP[i], SND[i], int(ke[i])), []).append(i)
    # commits the capture shows: (group, MLS epoch, removed leaves, frame)
    commits = []
    if control is not None:
        c = control()
        for mls_ep, removed, fr in zip(c["mls_epoch"].tolist(), c["removed"].tolist(),
                                        c["frame"].tolist()):
            if removed and mls_ep is not None and mls_ep is not pd.NA:
                commits.append((GID[int(fr)], int(mls_ep), list(removed), int(fr)))
    # a sender's leaf in a group, from its SFrame KIDs; the newest key epoch each sender used
    leaf_of: Dict[Any, int] = {}
    for i, m in (media or {}).items():
        if m.kid is not None and SND[i] is not None:
            leaf_of.setdefault((GID[i], SND[i]), leaf_from_kid(m.kid, m.profile))
    fresh: Dict[Any, int] = {}
    for i in (ke >= 0).nonzero()[0].tolist():
        s = SND[i]
        if ke[i] == ep[i] and s is not None:
            fresh[(GID[i], s)] = max(fresh.get((GID[i], s), -1), int(ke[i]))
    for (gid, epoch, snd, kep), fr in groups.items():
        between = [(e, r, num(f)) for g, e, r, f in commits if g == gid and kep <= e < epoch]
        leaves = sorted({x for _e, r, _f in between for x in r})
        leaf = leaf_of.get((gid, snd))
        if not between:
            removed, why = False, "no commit in the capture removes a member in between"
        elif leaf is not None:
            removed = leaf in leaves
            why = (f"its leaf {leaf} (from its SFrame KIDs) is {'' if removed else 'not '}among "
                   f"the leaves {leaves} removed by the commit(s) in frame(s) "
                   f"{[f for *_x, f in between]}")
        else:
            removed = fresh.get((gid, snd), -1) <= kep
            why = (f"the commit(s) in frame(s) {[f for *_x, f in between]} removed leaves "
                   f"{leaves} and member {snd} {'never' if removed else 'did'} sent under a "
                   f"newer key")
        add("stale_epoch_key", epoch, ST[fr[0]], SEQ[fr[0]], fr,
            f"member {snd} sent {len(fr)} frame(s) labelled epoch {epoch} sealed with epoch "
            f"{kep}'s key (group {gid}); removed: {'yes' if removed else 'no'} — {why}; "
            f"receivers drop them", T[fr[0]], [snd], key_epoch=kep, removed=removed)
