"""The epoch timeline and the transitions of a capture (gbp-control-plane.md §5, reference-map §5).

A GBP epoch change is PREPARE_TRANSITION (the coordinator's commit) → READY_FOR_TRANSITION from
each member → EXECUTE_TRANSITION (sealed under the old epoch); after it every node's ``ep`` is one
higher and ``tid`` is the applied transition id.

* :func:`timeline` — ``Capture.epochs``: one row per (group, epoch) with the transition id, first
  and last time, members seen (frame senders) and frame counts;
* :func:`transitions` — one row per transition id seen in control frames: when PREPARE, the
  READYs and EXECUTE were seen, who sent them, the epoch before / after (from the frames that
  follow) and — when the commit decrypted — its proposals, added identities and removed leaves.
"""
from __future__ import annotations

from typing import Dict, List

import pandas as pd

from gbp_lab.capture.tables import build_epochs

__all__ = ["timeline", "transitions", "TRANSITION_COLUMNS"]

TRANSITION_COLUMNS = ["transition_id", "coordinator", "prepare_time", "prepare_frame",
                      "ready_from", "execute_time", "execute_frame", "epoch_before",
                      "epoch_after", "mls_type", "proposals", "added", "removed",
                      "commit_error", "time", "frame"]


def timeline(capture) -> pd.DataFrame:
    """The epoch timeline of a capture (same as ``capture.epochs``)."""
    return build_epochs(capture.frames)


def transitions(capture) -> pd.DataFrame:
    """One row per transition id announced in the capture's decrypted control frames."""
    c = capture.control
    by: Dict[int, dict] = {}
    for r in c.itertuples(index=False):
        if not r.decrypted or r.opcode_name not in ("PREPARE_TRANSITION", "READY_FOR_TRANSITION",
                                                    "EXECUTE_TRANSITION"):
            continue
        tid = int(r.transition_id)
        d = by.setdefault(tid, {"ready": set()})
        if r.opcode_name == "PREPARE_TRANSITION" and "prepare_frame" not in d:
            d.update(coordinator=int(r.sender_id), prepare_time=r.time, prepare_frame=int(r.frame),
                     mls_type=r.mls_type, proposals=r.proposals, added=r.added,
                     removed=r.removed, commit_error=r.commit_error,
                     epoch_before=None if r.epoch is pd.NA else int(r.epoch))
        elif r.opcode_name == "READY_FOR_TRANSITION":
            d["ready"].add(int(r.sender_id))
        elif r.opcode_name == "EXECUTE_TRANSITION" and "execute_frame" not in d:
            d.update(execute_time=r.time, execute_frame=int(r.frame))
            if d.get("epoch_before") is None and r.epoch is not pd.NA:
                d["epoch_before"] = int(r.epoch)
    f = capture.frames
    rows: List[tuple] = []
    for tid, d in sorted(by.items()):
        after = None
        if len(f) and "execute_frame" in d:
            later = f.iloc[d["execute_frame"] + 1:]
            later = later[later["transition_id"] == tid]
            if len(later):
                after = int(later["epoch"].iloc[0])
        first_t = d.get("prepare_time", d.get("execute_time"))
        first_f = d.get("prepare_frame", d.get("execute_frame"))
        rows.append((tid, d.get("coordinator"), d.get("prepare_time"), d.get("prepare_frame"),
                     sorted(d["ready"]), d.get("execute_time"), d.get("execute_frame"),
                     d.get("epoch_before"), after, d.get("mls_type"), d.get("proposals"),
                     d.get("added"), d.get("removed"), d.get("commit_error"), first_t, first_f))
    df = pd.DataFrame(rows, columns=TRANSITION_COLUMNS)
    for col in ("transition_id", "coordinator", "prepare_frame", "execute_frame", "epoch_before",
                "epoch_after", "frame"):
        df[col] = pd.array(df[col].tolist(), dtype="Int64")
    for col in ("prepare_time", "execute_time", "time"):  # datetime64[ns, UTC], NaT if none
        df[col] = pd.to_datetime(df[col], utc=True)
    return df
