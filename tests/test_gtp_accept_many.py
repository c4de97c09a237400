"""``GtpClient.accept_many`` (the capture's batch path, core/gtp/client.py) gives the verdicts of
per-message ``accept`` — on crafted runs (duplicates, epoch resets, every codec, non-canonical
CBOR, bad bytes, a closed client) and, through the ``messages`` table, on every test capture and
on reference-made traffic (gbp_stack 1.9.1 sender, duplicates across receivers and epochs)."""
from __future__ import annotations

import itertools
import pathlib
import random
import sys
from typing import Dict, List

import cbor2
import pandas as pd
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # pytest runs with importlib mode
import refpeer  # noqa: E402

import gbp_stack as g  # noqa: E402

import gbp_lab  # noqa: E402
import gbp_lab.core.errors  # noqa: E402
from gbp_lab.capture.model import read_capture  # noqa: E402
from gbp_lab.capture.tables import codec_wire  # noqa: E402
from gbp_lab.core.gbp.framing import encode_record  # noqa: E402
from gbp_lab.core.gbp.registry import PayloadCodec  # noqa: E402
from gbp_lab.core.gtp.client import GTP_FIELDS, GtpClient  # noqa: E402
from gbp_lab.core.gtp.message import GtpMessage  # noqa: E402
from gbp_lab.core.payload_codec import cbor_values_matcher, encode  # noqa: E402
from gbp_lab.sim import Tap  # noqa: E402

CAPTURES = pathlib.Path(__file__).parent / "captures"
#: the canonical-CBOR matcher of GtpMessage (the one accept_many and the read loop use)
GTP_VALUES = cbor_values_matcher(GtpMessage.SCHEMA)


def one_by_one(items, client=None) -> List[tuple]:
    """The reference verdicts: ``accept`` per item, in the shape accept_many answers."""
    c = client or GtpClient()
    out = []
    for pt, ep, codec in items:
        r = c.accept(pt, ep, codec)
        vals = None if r.message is None else tuple(getattr(r.message, a) for a in GTP_FIELDS)
        out.append((r.status, vals, r.reason))
    return out


def _noncanonical(m: GtpMessage) -> bytes:
    """The same message as a serde-readable map in another key order (not the fast shape)."""
    d = {"body": m.content, "len": m.content_length, "ct": m.content_type, "fl": m.flags,
         "rid": m.request_id, "ts": m.timestamp_ms, "sid": m.sender_id, "mid": m.message_id}
    return cbor2.dumps(d)


def crafted(seed: int, n: int = 600) -> list:
    rnd = random.Random(seed)
    items = []
    for _ in range(n):
        m = GtpMessage.plain(rnd.randrange(1, 4), rnd.randrange(0, 40), "t" * rnd.randrange(0, 9))
        kind = rnd.random()
        codec: object = 0
        if kind < 0.55:
            pt = encode(m)
        elif kind < 0.65:
            codec = PayloadCodec.PROTOBUF
            pt = encode(m, codec)
        elif kind < 0.72:
            codec = rnd.choice((PayloadCodec.FLATBUFFERS, 2))
            pt = encode(m, codec)
        elif kind < 0.8:
            pt = _noncanonical(m)
        elif kind < 0.85:
            codec = rnd.choice((PayloadCodec.CBOR, 7))  # the enum; unknown = CBOR
            pt = encode(m)
        elif kind < 0.9:  # declared length differs from the body: an error with a code
            pt = cbor2.dumps({**cbor2.loads(encode(m)), "len": m.content_length + 1})
        elif kind < 0.95:
            pt = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 12)))
        else:
            pt = bytearray(encode(m))  # not bytes: the full path
        ep = rnd.choice((1, 1, 1, 2, None))
        items.append((pt, ep, codec))
    return items


@pytest.mark.parametrize("seed", range(4))
def test_accept_many_is_accept_item_by_item(seed):
    items = crafted(seed)
    want = one_by_one(items)
    statuses = {w[0] for w in want}
    assert statuses == {"new", "duplicate", "error"}  # the run exercises every verdict
    c = GtpClient()
    got = c.accept_many(*zip(*items))
    assert got == want
    # in pieces, on one client: the state carries over from call to call
    c2 = GtpClient()
    pieces = []
    for k in range(0, len(items), 97):
        pieces += c2.accept_many(*zip(*items[k:k + 97])) if items[k:k + 97] else []
    assert pieces == want
    # after the run, both clients answer the same as a client that accepted one by one
    ref = GtpClient()
    one_by_one(items, ref)
    probe = [(encode(GtpMessage.plain(s, mid, "p")), 2, 0) for s in (1, 2, 3) for mid in (0, 5)]
    assert c.accept_many(*zip(*probe)) == one_by_one(probe, ref)


@pytest.mark.parametrize("seed", range(2))
def test_accept_many_with_values_of_a_reader_that_decoded_once(seed):
    """``values`` (what the canonical matcher answered, as the capture's read loop keeps it)
    give the same verdicts: given for some items, ``None`` for others, and ignored where the
    matcher would not run (another codec, not ``bytes``, a closed client)."""
    items = crafted(seed)
    want = one_by_one(items)
    rnd = random.Random(seed)
    values = []
    for pt, _ep, codec in items:
        v = GTP_VALUES(bytes(pt)) if rnd.random() < 0.8 else None
        values.append(v)
    given = sum(v is not None for (pt, _e, codec), v in zip(items, values)
                if type(pt) is bytes and codec in (0, PayloadCodec.CBOR))
    ignored = sum(v is not None for (pt, _e, codec), v in zip(items, values)
                  if not (type(pt) is bytes and codec in (0, PayloadCodec.CBOR)))
    assert given > 100 and ignored > 5  # both cases are exercised
    assert GtpClient().accept_many(*zip(*items), values) == want
    c = GtpClient()
    c.close()
    assert c.accept_many([items[0][0]], [1], [0], [values[0] or ("x",)]) == [
        ("error", None, "client closed")]


def test_read_loop_values_are_the_matchers_and_messages_agree():
    """The read loop's per-frame values (``Capture.values``) are the canonical matcher's answer
    for every text frame, and the ``messages`` table built from them equals the one built by
    decoding again (demo capture: every codec the simulator sends)."""
    cap = gbp_lab.demo_capture()
    vals = list(cap.values)
    assert len(vals) == len(cap.frames)
    text = cap.frames.index[cap.frames["stream_type"] == 2].tolist()
    assert any(vals[i] is not None for i in text)
    for i in text:
        pt = cap.plaintexts[i]
        if vals[i] is not None:
            assert vals[i] == GTP_VALUES(pt)
    from gbp_lab.capture.tables import build_messages
    again = build_messages(cap.frames, cap.plaintexts)
    got = cap.messages
    assert cap.values == []  # the decoded bodies are released once the table exists
    pd.testing.assert_frame_equal(got.drop(columns="rel_time"), again)


def test_accept_many_capacity_and_closed_client():
    wires = [encode(GtpMessage.plain(1, mid, "m")) for mid in range(10_001)]
    again = [wires[m] for m in (0, 9_000, 1)]
    items = [(w, 1, 0) for w in wires + again]
    got = GtpClient().accept_many(*zip(*items))
    assert [s for s, _v, _r in got[-3:]] == ["new", "duplicate", "new"]  # the first forgotten
    assert got == one_by_one(items)
    c = GtpClient()
    c.close()
    assert c.accept_many([wires[0]], [1], [0]) == [("error", None, "client closed")]


def per_message_verdicts(cap) -> List[str]:
    """``messages.status`` recomputed with one ``accept`` per message: a client per receiving
    endpoint, frames in capture order, stale-key frames left to the node (not judged)."""
    m = cap.messages
    clients: Dict[str, GtpClient] = {}
    out = []
    for fr, recv, ep, codec, status in zip(m["frame"], m["receiver"], m["epoch"], m["codec"],
                                            m["status"]):
        if status == "stale_key":
            out.append(status)
            continue
        c = clients.setdefault(recv, GtpClient())
        out.append(c.accept(cap.plaintexts[int(fr)], int(ep), codec_wire(codec)).status)
    return out


@pytest.mark.parametrize("name", sorted(p.name for p in CAPTURES.glob("*.pcap*")))
def test_messages_verdicts_on_every_test_capture(name):
    cap = read_capture(CAPTURES / name, progress=False)
    assert list(cap.messages["status"]) == per_message_verdicts(cap)


def messages_row_by_row(cap) -> pd.DataFrame:
    """The ``messages`` table computed one frame at a time (the oracle of the column-wise
    build): per decrypted text frame, in capture order, ``accept`` of its receiver's client —
    or, for a frame sealed with a stale key, the payload decoded and status ``stale_key``."""
    from gbp_lab.capture.readpath import payload_fields
    from gbp_lab.capture.tables import MESSAGE_COLUMNS

    f = cap.frames
    clients: Dict[tuple, GtpClient] = {}
    rows = []
    for i in range(len(f)):
        r = f.iloc[i]
        pt = cap.plaintexts[i]
        if r["stream_type"] is pd.NA or r["stream_type"] != 2 or pt is None:
            continue
        wire = codec_wire(r["codec"])
        if r["key_epoch"] is not pd.NA and r["key_epoch"] != r["epoch"]:
            status = "stale_key"
            try:
                g_ = payload_fields(GtpMessage, pt, wire)
                vals = tuple(g_[a] for a in GTP_FIELDS)
            except gbp_lab.core.errors.GbpLabError:
                vals = None
        else:
            c = clients.setdefault((r["dst"], r["dport"]), GtpClient())
            res = c.accept(pt, int(r["epoch"]), wire)
            status = res.status
            vals = None if res.message is None else tuple(getattr(res.message, a)
                                                           for a in GTP_FIELDS)
        recv = f"{r['dst']}:{r['dport']}"
        if vals is None:
            rows.append((r["time"], i, r["sender"], None, None, None, None, None, "error",
                         r["codec"], r["epoch"], None, None, None, recv))
            continue
        mid, sid, ts, rid, fl, ct, ln, body = vals
        text = body.decode("utf-8", "replace") if ct in (0, 1) else None
        rows.append((r["time"], i, r["sender"], sid, mid, text, ct, fl, status, r["codec"],
                     r["epoch"], rid, ts, ln, recv))
    out = pd.DataFrame(rows, columns=MESSAGE_COLUMNS, dtype=object)
    out["time"] = f["time"].iloc[[r[1] for r in rows]].reset_index(drop=True)
    return out


def assert_messages_row_by_row(cap) -> None:
    got = cap.messages.drop(columns="rel_time")
    want = messages_row_by_row(cap)
    assert len(got) == len(want)
    want = want.astype(got.dtypes.to_dict())
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_exact=True)


@pytest.mark.parametrize("name", sorted(p.name for p in CAPTURES.glob("*.pcap*")))
def test_messages_table_equals_the_row_by_row_build(name):
    """The column-wise ``messages`` build (tables.build_messages) equals a frame-by-frame one
    on every test capture (values, order; dtypes as the table's)."""
    assert_messages_row_by_row(read_capture(CAPTURES / name, progress=False))


def test_messages_verdicts_on_the_demo_capture():
    cap = gbp_lab.demo_capture()
    assert len(cap.messages) > 5
    assert list(cap.messages["status"]) == per_message_verdicts(cap)
    assert_messages_row_by_row(cap)


@pytest.mark.interop
def test_messages_verdicts_on_reference_traffic_with_duplicates(tmp_path):
    """A gbp_stack sender's messages in every codec, repeated towards two receivers and again
    in a later epoch label: the table, per-message ``accept`` and the reference's own
    ``GtpClient`` agree."""
    with refpeer.two_member_group() as grp:
        frames = refpeer.reference_frames(grp)
        gtp = g.GtpClient.create()
        dup = [gtp.send(grp.nodes["alice"], grp.mls["alice"], 2, message_id=100,
                        text="again").wire for _ in range(2)]
        gtp.close()
        keys = grp.keylog("bob")
    wires = [f.wire for f in frames] + dup
    c = itertools.count()
    tap = Tap(clock=lambda: 1_700_000_000.0 + 0.001 * next(c))
    for conn, port in ((0, 40000), (1, 40001)):  # two receivers, each gets every frame
        tap.open(conn, ("10.0.0.2", port), ("10.0.0.1", 7878))
    for w in wires:
        for conn in (0, 1):
            tap.data(conn, False, encode_record(w))
    for conn in (0, 1):
        tap.close(conn, by_client=True)
    path = tmp_path / "dup.pcap"
    tap.write_pcap(path)
    cap = read_capture(path, keylog=keys, progress=False)
    st = list(cap.messages["status"])
    assert st == per_message_verdicts(cap)
    assert st.count("duplicate") == 4 and st.count("new") >= 4  # per receiver: 100 thrice
    theirs = []
    for recv in sorted(set(cap.messages["receiver"])):
        sub = cap.messages[cap.messages["receiver"] == recv]
        rc = g.GtpClient.create()
        theirs += [(int(fr), rc.accept(cap.plaintexts[int(fr)], 1, codec_wire(cd)).status)
                   for fr, cd in zip(sub["frame"], sub["codec"])]
        rc.close()
    assert sorted(theirs) == sorted(zip(map(int, cap.messages["frame"]), st))
