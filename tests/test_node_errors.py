"""Every error the node raises, where the reference raises it, with the registry's class /
retryable / fatal — and ``on_wire`` never raising on hostile bytes (hypothesis).

The crafted frames are also fed to a reference node in the same state (interop-marked test) and
the events compared.
"""
from __future__ import annotations

import pathlib
import sys

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from gbp_lab.core.gbp.aead import seal_frame  # noqa: E402
from gbp_lab.core.gbp.control import ControlMessage  # noqa: E402
from gbp_lab.core.gbp.events import EVENT_KINDS  # noqa: E402
from gbp_lab.core.gbp.node import MAX_WIRE_SIZE, GroupNode  # noqa: E402
from gbp_lab.core.gbp.registry import ERROR_SPECS, ErrorCode, NodeState  # noqa: E402
from gbp_lab.core.mls.exporter_view import ExporterView  # noqa: E402

GID = bytes(range(16))
SECRET = bytes(range(32, 64))
V = ExporterView(SECRET, 1)
E = ErrorCode


def node(epoch=1, last=0):
    n = GroupNode.create(2, GID)
    n.bootstrap_as_joiner(epoch)
    if last:
        n.last_transition_id = last
    n.drain_events()
    return n


def text_frame(*, v=1, gid=None, ep=1, tid=0, st=2, sid=101, fl=7, seq=1, pt=b"hello", pf=0,
               secret=SECRET, psz=None, pl=None, base_gid=GID):
    f = seal_frame(secret, base_gid, ep, tid, st if st <= 3 else 2, sid, fl, seq, pt, pf)
    d = {"v": v, "gid": base_gid if gid is None else gid, "ep": ep, "tid": tid, "st": st, "sid": sid, "fl": fl, "seq": seq,
         "pl": f.payload if pl is None else pl}
    d["psz"] = len(d["pl"]) if psz is None else psz
    if pf:
        d["pf"] = pf
    return cbor2.dumps(d)


def ctl_frame(op, tid, *, sender=1, seq=1, plain=None, frame_tid=0):
    plain = ControlMessage.build(op, 0, sender, tid).to_cbor() if plain is None else plain
    return seal_frame(SECRET, GID, 1, frame_tid, 0, sender * 100, 0x1B, seq, plain).to_cbor()


def errors(evs):
    return [e for e in evs if e.kind == "error"]


def check_error(ev, code):
    spec = ERROR_SPECS[int(code)]
    assert (ev.code, ev.code_hex, ev.class_, ev.retryable, ev.fatal) == (
        int(code), f"0x{int(code):04X}", int(spec.error_class), spec.retryable, spec.fatal)
    assert ev.error_code == code


#: (name, frame builder, expected code, node kwargs)
CASES = [
    ("version", lambda: text_frame(v=2), E.UNSUPPORTED_VERSION),
    ("unknown group", lambda: text_frame(gid=b"\x01" * 16), E.UNKNOWN_GROUP),
    ("short gid other group", lambda: text_frame(gid=b"\x01" * 3), E.UNKNOWN_GROUP),
    ("epoch ahead", lambda: text_frame(ep=2), E.EPOCH_MISMATCH),
    ("epoch behind", lambda: text_frame(ep=0), E.EPOCH_MISMATCH),
    ("psz mismatch", lambda: text_frame(psz=3), E.STREAM_POLICY_VIOLATION),
    ("unknown stream type", lambda: text_frame(st=4), E.STREAM_POLICY_VIOLATION),
    ("unknown stream type in a critical frame with a stale tid",
     lambda: text_frame(st=9, fl=0x17, tid=5), E.STREAM_POLICY_VIOLATION),
    ("stale tid in a critical text frame", lambda: text_frame(fl=0x17, tid=3), E.TRANSITION_MISMATCH),
    ("wrong key", lambda: text_frame(secret=bytes(32)), E.DECRYPT_FAILED),
    ("payload shorter than the tag", lambda: text_frame(pl=b"abc"), E.DECRYPT_FAILED),
    ("not CBOR", lambda: b"\xff\x00", E.STREAM_POLICY_VIOLATION),
    ("empty", lambda: b"", E.STREAM_POLICY_VIOLATION),
    ("missing key", lambda: cbor2.dumps({"v": 1}), E.STREAM_POLICY_VIOLATION),
    ("control not decodable", lambda: ctl_frame(0, 0, plain=b"\xa1\x00\x00"), E.STREAM_POLICY_VIOLATION),
    ("control unknown opcode", lambda: ctl_frame(0x0B, 0), E.STREAM_POLICY_VIOLATION),
    ("READY without pending", lambda: ctl_frame(2, 1), E.TRANSITION_MISMATCH),
    ("EXECUTE without pending", lambda: ctl_frame(3, 1), E.TRANSITION_MISMATCH),
    ("ABORT without pending", lambda: ctl_frame(4, 1), E.TRANSITION_MISMATCH),
    ("PREPARE with the last tid", lambda: ctl_frame(1, 0), E.TRANSITION_MISMATCH),
]


@pytest.mark.parametrize("name,build,code", CASES, ids=[c[0] for c in CASES])
def test_each_error(name, build, code):
    n = node()
    evs = n.on_wire(V, build())
    (err,) = errors(evs)
    check_error(err, code)
    if err.fatal:
        assert n.state == NodeState.FAILED and evs[-1].to_state == "FAILED"
    elif code == E.EPOCH_MISMATCH:
        assert n.state == NodeState.RESYNCING
    else:
        assert n.state == NodeState.ACTIVE and len(evs) == 1


def test_replay_and_old_sequence_numbers():
    n = node()
    assert [e.kind for e in n.on_wire(V, text_frame(seq=5))] == ["payload_received"]
    (err,) = n.on_wire(V, text_frame(seq=5))
    check_error(err, E.REPLAY_DETECTED)
    assert err.reason == "st=text sid=101 seq=5 hw=5"
    check_error(n.on_wire(V, text_frame(seq=4))[0], E.REPLAY_DETECTED)
    # other stream ids / types have their own windows
    assert [e.kind for e in n.on_wire(V, text_frame(seq=1, sid=201))] == ["payload_received"]
    assert [e.kind for e in n.on_wire(V, text_frame(seq=1, st=3, sid=103))] == ["payload_received"]
    # the high-water mark moves before the AEAD check (reference order)
    check_error(n.on_wire(V, text_frame(seq=9, secret=bytes(32)))[0], E.DECRYPT_FAILED)
    check_error(n.on_wire(V, text_frame(seq=9))[0], E.REPLAY_DETECTED)
    # apply_transition clears the windows (and the epoch moves)
    n.apply_transition(1)
    evs = n.on_wire(V, text_frame(seq=5, ep=2, tid=1))
    assert [e.kind for e in evs] == ["epoch_advanced", "payload_received"]


def test_oversize_and_trailing_bytes_are_policy_violations():
    n = node()
    (err,) = n.on_wire(V, b"\x00" * (MAX_WIRE_SIZE + 1))
    check_error(err, E.STREAM_POLICY_VIOLATION)
    assert "exceed" in err.reason
    (err,) = n.on_wire(V, text_frame() + b"\x00")
    check_error(err, E.STREAM_POLICY_VIOLATION)
    small = GroupNode.create(2, GID, max_wire_size=64)
    small.bootstrap_as_joiner(1), small.drain_events()
    check_error(small.on_wire(V, text_frame(pt=b"x" * 100))[0], E.STREAM_POLICY_VIOLATION)


def test_fatal_errors_fail_the_node_each_time():
    n = node()
    evs = n.on_wire(V, text_frame(v=3))
    assert [(e.kind, e.to_state) for e in evs] == [("error", None), ("state_changed", "FAILED")]
    evs = n.on_wire(V, text_frame(v=3, seq=2))
    assert [(e.kind, e.from_state, e.to_state) for e in evs][1] == ("state_changed", "FAILED", "FAILED")


def test_unknown_payload_format_is_delivered_as_cbor():
    (ev,) = node().on_wire(V, text_frame(pf=9))
    assert ev.kind == "payload_received" and int(ev.codec) == 0


# --- hostile bytes never raise ------------------------------------------------------------------
_FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.binary(max_size=300))
def test_on_wire_never_raises_on_random_bytes(data):
    n = node()
    evs = n.on_wire(V, data)
    assert evs and all(e.kind in EVENT_KINDS for e in evs)


_u = st.integers
_frame_maps = st.fixed_dictionaries({
    "v": st.one_of(_u(0, 3), _u(-2, 300)), "gid": st.sampled_from([GID, GID[:8], b"", GID + b"x"]),
    "ep": st.one_of(_u(0, 2), st.just(2**64), st.text(max_size=2)),
    "tid": _u(0, 3), "st": st.one_of(_u(0, 5), _u(250, 260)), "sid": _u(0, 500),
    "fl": st.sampled_from([0, 7, 0x17, 0x1B, 0xFFFF, 0x10000]),
    "seq": st.one_of(_u(0, 3), st.just(2**32)), "psz": _u(0, 40),
    "pl": st.binary(max_size=40),
}, optional={"pf": _u(0, 300), "zz": st.integers()})


@_FUZZ
@given(_frame_maps)
def test_on_wire_never_raises_on_structured_frames(d):
    n = node()
    evs = n.on_wire(V, cbor2.dumps(d))
    assert evs and all(e.kind in EVENT_KINDS for e in evs)


@_FUZZ
@given(st.one_of(st.binary(max_size=80),
                 st.builds(lambda op, rid, sid, tid, args, alen: cbor2.dumps(
                     {"op": op, "rid": rid, "sid": sid, "tid": tid, "alen": alen, "args": args}),
                     _u(0, 0x10), _u(0, 2**32), _u(0, 20), _u(0, 5), st.binary(max_size=8),
                     _u(0, 9))))
def test_on_wire_never_raises_on_hostile_control_plaintexts(plain):
    """Valid frames whose sealed control plaintext is hostile."""
    n = node()
    evs = n.on_wire(V, ctl_frame(0, 0, plain=plain))
    assert all(e.kind in EVENT_KINDS for e in evs)
    assert evs


# --- the same frames into the reference node --------------------------------------------------
@pytest.mark.interop
def test_error_cases_match_the_reference_node():
    """Each crafted case, sealed under a real reference group's key, is fed to a fresh reference
    node and to ours in the same state; the events agree (reasons too, for the codes whose text we
    reproduce)."""
    import refmls

    for name, _build, code in CASES:
        p = refmls.mixed_pair()
        try:
            secret = p.bob_view.view().exporter_secret
            gid = p.group_id

            def tf(**kw):
                kw.setdefault("secret", secret)
                return text_frame(base_gid=gid, **kw)
            builders = {
                "version": lambda: tf(v=2), "unknown group": lambda: tf(gid=b"\x01" * 16),
                "short gid other group": lambda: tf(gid=b"\x01" * 3),
                "epoch ahead": lambda: tf(ep=2), "epoch behind": lambda: tf(ep=0),
                "psz mismatch": lambda: tf(psz=3), "unknown stream type": lambda: tf(st=4),
                "unknown stream type in a critical frame with a stale tid":
                    lambda: tf(st=9, fl=0x17, tid=5),
                "stale tid in a critical text frame": lambda: tf(fl=0x17, tid=3),
                "wrong key": lambda: tf(secret=bytes(32)), "payload shorter than the tag":
                    lambda: tf(pl=b"abc"),
                "not CBOR": lambda: b"\xff\x00", "empty": lambda: b"",
                "missing key": lambda: cbor2.dumps({"v": 1}),
            }
            if name in builders:
                wire = builders[name]()
            else:
                op, tid, plain = {
                    "control not decodable": (0, 0, b"\xa1\x00\x00"),
                    "control unknown opcode": (0x0B, 0, None),
                    "READY without pending": (2, 1, None), "EXECUTE without pending": (3, 1, None),
                    "ABORT without pending": (4, 1, None), "PREPARE with the last tid": (1, 0, None),
                }[name]
                plain = ControlMessage.build(op, 0, 1, tid).to_cbor() if plain is None else plain
                wire = seal_frame(secret, gid, 1, 0, 0, 100, 0x1B, 1, plain).to_cbor()
            ours, ref = p.both(wire)
            assert refmls.norms(ours) == refmls.norms(ref), name
            assert [e.code for e in ours if e.kind == "error"] == [int(code)], name
        finally:
            p.close()
