"""SFrame media opened in the capture's ``audio`` table (gbp_lab/capture/media.py).

The SFrame payloads are sealed by the reference wheel (gbp_stack 1.9.1, RFC 9605 profile) and
carried in GAP frames its nodes send; the expected Opus bytes are what the reference was asked to
encrypt. The draft-1.5 profile (gbp-stack 1.5.x, not installable next to 1.9.1) is sealed by
core/sframe.py's encryptor, whose bytes tests/test_sframe.py checks against the 1.5.x vectors."""
from __future__ import annotations

import itertools
import pathlib
import sys

import pandas as pd
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # pytest runs with importlib mode
import refpeer  # noqa: E402

import gbp_stack as g  # noqa: E402

from gbp_lab.capture.model import read_capture  # noqa: E402
from gbp_lab.capture.stream import iter_capture  # noqa: E402
from gbp_lab.core.gbp.framing import encode_record  # noqa: E402
from gbp_lab.core.sframe import SFrameSession  # noqa: E402
from gbp_lab.sim import Tap  # noqa: E402

pytestmark = pytest.mark.interop

RELAY = ("10.0.0.1", 7878)
BOB = ("10.0.0.2", 40000)
ALICE = ("10.0.0.3", 40001)


def relay_capture(path, sent, forwarded=()):
    """``sent``: wires bob sends to the relay (connection 0); ``forwarded``: wires the relay
    writes to alice (connection 1)."""
    c = itertools.count()
    tap = Tap(clock=lambda: 1_700_000_000.0 + 0.001 * next(c))
    tap.open(0, BOB, RELAY)
    tap.open(1, ALICE, RELAY)
    for w in sent:
        tap.data(0, True, encode_record(w))
    for w in forwarded:
        tap.data(1, False, encode_record(w))
    tap.close(0, by_client=True)
    tap.close(1, by_client=True)
    tap.write_pcap(path)
    return path


OPUS = [bytes(range(60)), bytes(30), b"\xfc" + bytes(range(100, 180))]


@pytest.fixture(scope="module")
def sframe_run(tmp_path_factory):
    """bob seals three Opus frames with the reference's SFrame session (leaf 1); the relay
    forwards them to alice; one more payload has a flipped tag byte."""
    with refpeer.two_member_group() as grp:
        bob = grp.mls["bob"]
        with g.SFrameSession.create(bob) as session:
            enc = session.create_encryptor(bob, 1)
            sealed = [enc.encrypt(x) for x in OPUS]
            bad = bytearray(enc.encrypt(b"tampered"))
            enc.close()
        bad[-1] ^= 1
        wires = refpeer.gap_wires(grp, sealed + [bytes(bad)])
        keys, epoch = grp.keylog("alice"), grp.epoch
    path = relay_capture(tmp_path_factory.mktemp("sf") / "sf.pcap", wires, wires[:3])
    return path, keys, epoch, sealed


def audio_row_by_row(cap) -> pd.DataFrame:
    """The ``audio`` table computed one frame at a time from ``Capture.media`` (the oracle of
    the column-wise build), dtypes as the table's."""
    from gbp_lab.capture.tables import AUDIO_COLUMNS

    got = cap.audio.drop(columns="rel_time")
    f = cap.frames
    rows = []
    for i in range(len(f)):
        m = cap.media.get(i)
        if f["stream_type"].iloc[i] is pd.NA or f["stream_type"].iloc[i] != 1 \
                or cap.plaintexts[i] is None or m is None:
            continue
        a = m.gap
        rows.append((f["time"].iloc[i], i, f["sender"].iloc[i], a["media_source_id"],
                     a["rtp_sequence"], a["rtp_timestamp"], a["key_phase"],
                     len(a["opus_frame"]), m.profile, m.kid, m.ctr, f["codec"].iloc[i],
                     f["epoch"].iloc[i], m.decrypted, None if m.opus is None else len(m.opus),
                     m.error, m.key_epoch, m.opus))
    want = pd.DataFrame(rows, columns=AUDIO_COLUMNS, dtype=object)
    want["time"] = f["time"].iloc[[r[1] for r in rows]].reset_index(drop=True)
    return want.astype(got.dtypes.to_dict())


def assert_audio_row_by_row(cap) -> None:
    pd.testing.assert_frame_equal(cap.audio.drop(columns="rel_time").reset_index(drop=True),
                                  audio_row_by_row(cap), check_exact=True)


def test_reference_sframe_opens_to_the_opus_it_encrypted(sframe_run):
    path, keys, epoch, sealed = sframe_run
    cap = read_capture(path, keylog=keys)
    assert_audio_row_by_row(cap)  # the column-wise build (tables.build_audio)
    a = cap.audio
    assert len(a) == 7  # 4 sent + 3 forwarded
    ok = a[a["sframe_decrypted"]]
    assert list(ok["opus"]) == OPUS + OPUS  # bob → relay, relay → alice
    assert list(ok["opus_len"]) == [len(x) for x in OPUS] * 2
    assert list(ok["key_epoch"]) == [epoch] * 6 and (ok["profile"] == "rfc9605").all()
    # the relay's copies are judged by their own receiver: no replay
    assert ok["sframe_error"].isna().all()
    assert [cap.opus(int(i)) for i in ok["frame"]] == OPUS + OPUS
    assert list(ok["payload_len"]) == [len(x) for x in sealed] * 2  # header + ct + tag


def test_sframe_tag_failure_is_an_error_row(sframe_run):
    path, keys, _epoch, _sealed = sframe_run
    cap = read_capture(path, keylog=keys)
    assert_audio_row_by_row(cap)
    a = cap.audio
    bad = a[~a["sframe_decrypted"]]
    assert len(bad) == 1 and int(bad["ctr"].iloc[0]) == 3
    assert "SFRAME-DECRYPT" in bad["sframe_error"].iloc[0]
    assert bad["opus"].iloc[0] is None and cap.opus(int(bad["frame"].iloc[0])) is None
    e = cap.errors[cap.errors["vid"] == "SFRAME-DECRYPT"]
    assert list(e["frame"]) == [int(bad["frame"].iloc[0])] and list(e["kind"]) == ["decrypt"]
    # the GBP layer decrypted every frame: the defect is one layer down
    assert cap.frames["decrypted"].all()


def test_without_the_sframe_key_or_with_another_label(sframe_run):
    path, keys, epoch, _sealed = sframe_run
    cap = read_capture(path, keylog=keys, sframe_label="gbp/sframe v2")
    assert_audio_row_by_row(cap)
    a = cap.audio
    assert not a["sframe_decrypted"].any()  # the other label's key fails every tag
    assert a["sframe_error"].str.contains("SFRAME-DECRYPT").all()
    cap = read_capture(path)  # no key log at all: nothing is decrypted, no audio rows
    assert len(cap.audio) == 0 and cap.opus(0) is None
    assert_audio_row_by_row(cap)


def _replayed_ctr_capture(tmp_path):
    """``(capture path, key log)``: bob's encryptor (the reference's) seals two Opus packets and
    the first SFrame payload is sent again inside a third GAP frame (a new GBP sequence number)."""
    with refpeer.two_member_group() as grp:
        bob = grp.mls["bob"]
        with g.SFrameSession.create(bob) as session:
            enc = session.create_encryptor(bob, 1)
            sealed = [enc.encrypt(x) for x in OPUS[:2]]
            enc.close()
        wires = refpeer.gap_wires(grp, [sealed[0], sealed[1], sealed[0]])
        keys = grp.keylog("alice")
    return relay_capture(tmp_path / "r.pcap", wires), keys


def test_replayed_ctr_towards_one_receiver_opens_but_is_flagged(tmp_path):
    path, keys = _replayed_ctr_capture(tmp_path)
    cap = read_capture(path, keylog=keys)
    assert_audio_row_by_row(cap)
    a = cap.audio
    assert a["sframe_decrypted"].all() and list(a["opus"]) == [OPUS[0], OPUS[1], OPUS[0]]
    assert a["sframe_error"].iloc[:2].isna().all()
    assert "SFRAME-REPLAY" in a["sframe_error"].iloc[2]


def test_draft_profile_and_raw_opus_in_one_capture(tmp_path):
    """draft-1.5 SFrame (1.5.x layout) and raw Opus, both carried by reference GAP frames."""
    with refpeer.two_member_group() as grp:
        keys, epoch = grp.keylog("alice"), grp.epoch
        session = SFrameSession.from_keylog(keys, grp.group_id, epoch, profile="draft-1.5")
        enc = session.encryptor(1)
        draft = [enc.encrypt(x) for x in OPUS[:2]]
        wires = refpeer.gap_wires(grp, draft + [b"\xfc\x01\x02"])
    cap = read_capture(relay_capture(tmp_path / "d.pcap", wires), keylog=keys)
    assert_audio_row_by_row(cap)
    a = cap.audio
    assert list(a["profile"].iloc[:2]) == ["draft-1.5"] * 2
    assert list(a["opus"]) == OPUS[:2] + [b"\xfc\x01\x02"]
    assert list(a["sframe_decrypted"]) == [True, True, False]
    assert a["sframe_error"].isna().all() and a["profile"].isna().iloc[2]


def _chunked_audio(path, keys, chunksize):
    audio, errors, frames = [], [], []
    for df in iter_capture(path, keylog=keys, chunksize=chunksize, progress=False,
                           audio=audio, errors=errors):
        frames.append(df)
    return audio, errors, frames


@pytest.mark.parametrize("chunksize", [1, 2, 3, 100])
def test_iter_capture_chunks_carry_the_opened_media(sframe_run, tmp_path, chunksize):
    """The chunks' audio tables, concatenated, are read_capture's (the reference's SFrame media
    opened, the tag failure an error row with its capture frame number)."""
    path, keys, _epoch, _sealed = sframe_run
    whole = read_capture(path, keylog=keys, progress=False)
    audio, errors, frames = _chunked_audio(path, keys, chunksize)
    assert len(frames) == -(-len(whole.frames) // chunksize)
    # a chunk whose text column is all missing stores it as object: the types of the whole
    got = pd.concat(audio, ignore_index=True).astype(whole.audio.dtypes.to_dict())
    pd.testing.assert_frame_equal(got, whole.audio)
    assert list(got[got["sframe_decrypted"]]["opus"]) == OPUS + OPUS
    err = pd.concat(errors, ignore_index=True)
    want = whole.errors[whole.errors["vid"] == "SFRAME-DECRYPT"]
    mine = err[err["vid"] == "SFRAME-DECRYPT"]
    assert list(mine["frame"]) == list(want["frame"]) and list(mine["error"]) == list(want["error"])
    # no audio list: the chunks are the frames alone, as before
    assert sum(len(df) for df in iter_capture(path, keylog=keys, chunksize=chunksize,
                                               progress=False)) == len(whole.frames)


def test_iter_capture_replay_window_spans_chunks(tmp_path):
    """A CTR replayed two chunks later is flagged as in one whole read."""
    path, keys = _replayed_ctr_capture(tmp_path)
    audio, _errors, _frames = _chunked_audio(path, keys, 1)
    want = read_capture(path, keylog=keys, progress=False).audio
    got = pd.concat(audio, ignore_index=True).astype(want.dtypes.to_dict())
    pd.testing.assert_frame_equal(got, want)
    assert "SFRAME-REPLAY" in got["sframe_error"].iloc[2] and got["sframe_error"].iloc[:2].isna().all()
