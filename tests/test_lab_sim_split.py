"""The simulator split (members vs the run) and its wire helpers.

* the resync digest args are written by the core CBOR codec (:func:`gbp_lab.core.cbor.encode_map`)
  and are byte-identical to what ``cbor2.dumps`` wrote before (cbor2 as the independent oracle);
* the names that lived in ``gbp_lab.sim.simulator`` are still importable from it and are the
  objects of their new owners.
"""
from __future__ import annotations

import pytest

cbor2 = pytest.importorskip("cbor2")

from gbp_lab.sim import clock, members, simulator  # noqa: E402
from gbp_lab.sim.simulator import digest_request_args, digest_response_args  # noqa: E402


@pytest.mark.parametrize("tid,epoch", [(0, 0), (1, 2), (23, 24), (255, 256), (70000, 2**32 + 5)])
def test_digest_request_args_same_bytes_as_cbor2(tid, epoch):
    assert digest_request_args(tid, epoch) == cbor2.dumps({"since_tid": tid, "since_epoch": epoch})


@pytest.mark.parametrize("epoch,tid,root,coord", [
    (0, 0, b"", 1), (3, 7, bytes(range(32)), 42), (300, 65536, b"\xff" * 64, 42_949_671)])
def test_digest_response_args_same_bytes_as_cbor2(epoch, tid, root, coord):
    want = cbor2.dumps({"epoch": epoch, "last_transition_id": tid, "member_set_root_hash": root,
                        "control_log_tail": [], "coordinator_id": coord})
    assert digest_response_args(epoch, tid, root, coord) == want


def test_digest_args_decode_back():
    got = cbor2.loads(digest_response_args(2, 5, b"\x01\x02", 9))
    assert got == {"epoch": 2, "last_transition_id": 5, "member_set_root_hash": b"\x01\x02",
                   "control_log_tail": [], "coordinator_id": 9}


def test_simulator_names_stay_importable():
    assert simulator.SimMember is members.SimMember and simulator.RefMember is members.RefMember
    assert simulator.Received is members.Received
    assert simulator.SimulationError is members.SimulationError
    assert simulator.VirtualClock is clock.VirtualClock
    assert simulator.DeterministicRng is clock.DeterministicRng
    assert simulator.EPOCH_BASE == clock.EPOCH_BASE == 1_767_225_600


def test_frame_sender_uses_the_registry():
    from gbp_lab.core.gbp.frame import GbpFrame
    from gbp_lab.core.gbp.registry import sender_of

    assert members.frame_sender(b"\x00\x01\x00\x01") is None  # not a GBP frame
    for member in (1, 42, 42_949_671):
        sid = member * 100 + 1
        wire = GbpFrame.build(b"g" * 16, 1, 0, 2, sid, 7, 1, b"\x00" * 24).to_cbor()
        assert members.frame_sender(wire) == sender_of(sid) == member


def test_ds_codec_owns_the_ds_wire_and_relay_reexports_it():
    from gbp_lab import sim
    from gbp_lab.sim import client, ds_codec, relay

    for name in ds_codec.__all__:
        assert getattr(relay, name) is getattr(ds_codec, name)
    assert sim.Hello is ds_codec.Hello and client.Route is ds_codec.Route
    for msg in (ds_codec.Hello(7, 3), ds_codec.Route(0, b"x"), ds_codec.Deliver(2**40, 9, b"\x00\x01"),
                ds_codec.MemberLeft(1, 2, "gone")):
        wire = msg.to_bytes()
        assert ds_codec.is_ds_message(wire) and ds_codec.decode_ds_message(wire) == msg
