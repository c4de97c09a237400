"""core/gbp/classify.py: one answer to "what is this record?", decided by parsing.

KeyPackages, Welcomes and GroupInfos of all seven cipher suites (built with our MLS), raw and
wrapped in an MLSMessage envelope; the reference wheel's suite-1 records; Public/PrivateMessages;
GBP frames; garbage. The prefixes collide (a raw KeyPackage of suite N begins ``00 01 00 0N``, like
an envelope of wire format N), which is the bug this owner fixes.
"""
from __future__ import annotations

import pathlib
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbp_lab.core.gbp.aead import seal_frame
from gbp_lab.core.gbp.classify import RecordClass, RecordKind, classify_record, looks_like_frame
from gbp_lab.core.gbp.frame import GbpFrame
from gbp_lab.core.mls.context import MlsContext
from gbp_lab.core.mls.framing import MLSMessage
from gbp_lab.core.mls.group import GroupConfig
from gbp_lab.core.mls.group_info import GroupInfo
from gbp_lab.core.mls.key_package import KeyPackage
from gbp_lab.core.mls.mls_message import wrap
from gbp_lab.core.mls.registries import WireFormat
from gbp_lab.core.mls.welcome import Welcome

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import mls_structs  # noqa: E402

K = RecordKind
SUITES = range(1, 8)


STRUCTS = {s: mls_structs.structs(s) for s in SUITES}


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("wrapped", [False, True])
def test_key_packages_welcomes_group_infos_of_every_suite(suite, wrapped):
    for obj, kind, cls in zip(STRUCTS[suite], (K.KEY_PACKAGE, K.WELCOME, K.GROUP_INFO),
                              (KeyPackage, Welcome, GroupInfo)):
        data = wrap(obj).to_bytes() if wrapped else obj.to_bytes()
        r = classify_record(data)
        assert (r.kind, r.name, r.wrapped, r.suite, r.error) == (
            kind, kind.value, wrapped, suite, None), (suite, kind, data[:6].hex())
        assert isinstance(r.body, cls) and r.body.to_bytes() == obj.to_bytes()
        if wrapped:
            assert isinstance(r.value, MLSMessage) and r.value.to_bytes() == data
            assert r.label == f"MLSMessage({kind.value}) suite {suite}"
        else:
            assert r.value is r.body and r.label == f"{kind.value} suite {suite}"


def test_the_old_mislabels_are_gone():
    # raw KeyPackages of suites 2, 3, 7 used to read as PrivateMessage, Welcome, wire format 7
    for s in (2, 3, 7):
        data = STRUCTS[s][0].to_bytes()
        assert data[:4] == bytes([0, 1, 0, s])
        assert classify_record(data).kind is K.KEY_PACKAGE


def test_public_and_private_messages():
    a = MlsContext.create("alice", config=GroupConfig(handshake_wire_format=WireFormat.MLS_PUBLIC_MESSAGE))
    b = MlsContext.create("bob")
    commit, _w = a.invite_full(b.export_key_package())
    r = classify_record(commit)
    assert (r.kind, r.name, r.wrapped, r.suite) == (K.PUBLIC_MESSAGE, "PublicMessage", True, None)
    a.finalize_commit()
    app = a.send_application(b"hello")
    r = classify_record(app)
    assert (r.kind, r.name, r.wrapped, r.suite) == (K.PRIVATE_MESSAGE, "PrivateMessage", True, None)
    assert r.value.wire_format == WireFormat.MLS_PRIVATE_MESSAGE


def test_reference_wheel_records():
    g = pytest.importorskip("gbp_stack")
    alice, bob = g.MlsContext.create("alice"), g.MlsContext.create("bob")
    kp = bob.export_key_package()
    commit, welcome = alice.invite_full(kp)
    r = classify_record(kp)
    assert (r.kind, r.wrapped, r.suite) == (K.KEY_PACKAGE, False, 1)
    r = classify_record(welcome)
    assert (r.kind, r.suite) == (K.WELCOME, 1) and r.error is None
    assert classify_record(commit).kind in (K.PUBLIC_MESSAGE, K.PRIVATE_MESSAGE)
    # the raw Welcome (the reference's other form) too
    raw = r.body.to_bytes()
    r2 = classify_record(raw)
    assert (r2.kind, r2.wrapped, r2.suite) == (K.WELCOME, False, 1)


def test_gbp_frames():
    wire = seal_frame(bytes(32), bytes(range(16)), 3, 0, 2, 101, 7, 1, b"hi").to_cbor()
    assert looks_like_frame(wire)
    r = classify_record(wire)
    assert (r.kind, r.name, r.wrapped, r.suite, r.error) == (K.GBP_FRAME, "GBP frame", False, None, None)
    assert isinstance(r.value, GbpFrame) and r.value.to_cbor() == wire


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x01\x00\x05", b"\xaa\x00", b"garbage!",
                                  b"\x00\x01\x00\x09" + bytes(20), b"\xff" * 40])
def test_garbage_is_unknown_with_a_reason(data):
    r = classify_record(data)
    assert r.kind is K.UNKNOWN and r.name == "unknown" and r.error and r.value is None


def test_trailing_bytes_are_not_consumed_exactly():
    kp = STRUCTS[1][0].to_bytes()
    assert classify_record(kp + b"\x00").kind is K.UNKNOWN
    wire = seal_frame(bytes(32), bytes(range(16)), 3, 0, 2, 101, 7, 1, b"hi").to_cbor()
    assert classify_record(wire + b"\x00").kind is K.UNKNOWN


_SAMPLES = [STRUCTS[s][i].to_bytes() for s in (1, 4) for i in range(3)]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200),
                 st.tuples(st.sampled_from(_SAMPLES), st.integers(0, 400), st.binary(max_size=4)).map(
                     lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + len(t[2]):])))
def test_fuzz_never_raises(data):
    r = classify_record(data)
    assert isinstance(r, RecordClass) and isinstance(r.kind, RecordKind)
    assert (r.kind is K.UNKNOWN) == (r.error is not None)
