"""The lab names records with the core's one classifier (gbp_lab.core.gbp.classify): KeyPackages,
Welcomes and GroupInfos of all seven cipher suites, raw and in an MLSMessage envelope, are named
correctly by the widgets (protocol tree, summaries), the relay (forwarded as MLS) and the
simulator's members (a KeyPackage of any suite is kept as one; a raw KeyPackage of suite 3, which
begins like an envelope of a Welcome, is not taken for a Welcome).

Before the consolidation each of them read the first four bytes: ``00 01 00 0N`` is both a raw
KeyPackage of suite N and an envelope of wire format N.
"""
from __future__ import annotations

import pathlib
import sys
import types

import pytest

from gbp_lab.core.gbp.frame import GbpFrame
from gbp_lab.core.mls.mls_message import wrap
from gbp_lab.sim import relay
from gbp_lab.sim.clock import VirtualClock
from gbp_lab.sim.members import SimMember, frame_sender
from gbp_lab.widgets.field_tree import mls_summary, mls_tree

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import mls_structs  # noqa: E402

SUITES = range(1, 8)
KINDS = ("KeyPackage", "Welcome", "GroupInfo")


def _records(suite: int):
    """(kind name, wrapped, bytes) for the three structures of *suite*, raw and wrapped."""
    for name, obj in zip(KINDS, mls_structs.structs(suite)):
        yield name, False, obj.to_bytes()
        yield name, True, wrap(obj).to_bytes()


@pytest.mark.parametrize("suite", SUITES)
def test_widgets_name_every_suite(suite):
    for name, wrapped, data in _records(suite):
        label = f"MLSMessage({name}) suite {suite}" if wrapped else f"{name} suite {suite}"
        assert mls_summary(data) == f"{label} ({len(data)} bytes)"
        core = mls_tree(data, use_dissectors=False)
        assert [n.name for n in core] == [f"MLS {name}"], (suite, name, wrapped)
        heads = {n.name: n.value for n in core[0].children}
        if wrapped:
            assert heads["wire_format"] == {"Welcome": 3, "GroupInfo": 4, "KeyPackage": 5}[name]
        else:
            assert heads["cipher_suite"] == suite
        layers = [n.name for n in mls_tree(data)]  # the dissectors' layers, picked by the classifier
        assert f"MLS {name}" in layers and not any(
            other in n for n in layers for other in ("PrivateMessage", "PublicMessage")), layers
        assert (layers[0] == "MLS Message") is wrapped


@pytest.mark.parametrize("suite", SUITES)
def test_relay_forwards_every_suite_as_mls(suite):
    for _name, _wrapped, data in _records(suite):
        assert relay.classify_record(data) == (relay.RecordKind.MLS, None)


def _member():
    host = types.SimpleNamespace(seed=0, clock=VirtualClock(), coordinator=None, removing=None,
                                 sframe_expected={}, expect_error=lambda ev: False,
                                 leaf_of=lambda m: 0)
    return SimMember(host, "carol", 3)


@pytest.mark.parametrize("suite", SUITES)
def test_simulated_member_keeps_key_packages_of_every_suite(suite):
    m = _member()
    m.awaiting_welcome = True  # a Welcome-lookalike must not be taken for the Welcome
    seen = []
    m._welcome = seen.append  # type: ignore[method-assign]
    kps = []
    for name, _wrapped, data in _records(suite):
        m.on_record(data)
        if name == "KeyPackage":
            kps.append(data)
    assert m.key_packages == kps
    assert seen == [d for n, _w, d in _records(suite) if n == "Welcome"]  # raw and wrapped


def test_frame_sender_and_garbage():
    wire = GbpFrame.build(b"g" * 16, 1, 0, 2, 4202, 7, 1, b"\x00" * 24).to_cbor()
    assert frame_sender(wire) == 42
    assert frame_sender(mls_structs.structs(3)[0].to_bytes()) is None
    assert relay.classify_record(wire) == (relay.RecordKind.FRAME, 42)
    assert relay.classify_record(b"\xff" * 40) == (relay.RecordKind.GARBAGE, None)
    # MLS-shaped but unparsable: the relay still forwards it opaque (its forwarding policy)
    assert relay.classify_record(b"\x00\x01\x00\x03" + bytes(20)) == (relay.RecordKind.MLS, None)
    assert mls_summary(b"\x00\x01\x00\x03" + bytes(20)) == "24 bytes"
