"""The key-log format and the bridge from the reference's ``export_state()`` blob."""
from __future__ import annotations

import json
import pathlib
import struct
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import refpeer  # noqa: E402

from gbp_lab.core.errors import GbpLabError, KeyLogError, UsageError  # noqa: E402
from gbp_lab.core.keylog import (ENCRYPTION, EXPORTER, SENDER_DATA, KeyLog, StateBlobError,  # noqa: E402
                                 parse_gbp_stack_state, split_gbp_stack_state)
from gbp_lab.core.mls.suites import CipherSuite  # noqa: E402

G1 = bytes(range(16))
G2 = bytes(range(16, 32))
S = bytes(range(32))

TEXT = f"""# gbp-lab key log
MLS_EXPORTER_SECRET {G1.hex()} 1 {S.hex()}
MLS_SENDER_DATA_SECRET {G1.hex()} 1 {S[::-1].hex()}   # trailing comment
MLS_CIPHER_SUITE {G1.hex()} 3

MLS_EPOCH_SECRET {G2.hex().upper()} 18446744073709551615 {'ab' * 48}
MLS_FUTURE_THING {G2.hex()} 7 whatever extra fields
MLS_ENCRYPTION_SECRET {G2.hex()} 0 00
"""


def test_parse_queries_and_dump_round_trip():
    log = KeyLog.parse(TEXT)
    assert len(log) == 4
    assert log.exporter_secret(G1, 1) == S and log.get(SENDER_DATA, G1, 1) == S[::-1]
    assert log.epoch_secret(G2, 2**64 - 1) == bytes([0xAB]) * 48
    assert log.encryption_secret(G2, 0) == b"\x00"
    assert log.exporter_secret(G1, 2) is None and log.get(EXPORTER, G2, 1) is None
    assert log.suite(G1) == 3 and log.suite(G2) == 1
    assert log.unknown_lines == (f"MLS_FUTURE_THING {G2.hex()} 7 whatever extra fields",)
    assert [e.label for e in log] == ["MLS_EXPORTER_SECRET", "MLS_SENDER_DATA_SECRET",
                                      "MLS_EPOCH_SECRET", "MLS_ENCRYPTION_SECRET"]
    assert log.groups() == [G1, G2] and log.epochs(G1) == [1]
    dumped = log.dump()
    assert "MLS_FUTURE_THING" in dumped and "#" not in dumped
    again = KeyLog.parse(dumped)
    assert again == log and again.dump() == dumped


def test_same_secret_twice_is_fine_a_different_one_is_not():
    line = f"MLS_EXPORTER_SECRET {G1.hex()} 1 {S.hex()}\n"
    assert len(KeyLog.parse(line * 3)) == 1
    other = f"MLS_EXPORTER_SECRET {G1.hex()} 1 {bytes(32).hex()}\n"
    with pytest.raises(KeyLogError) as ei:
        KeyLog.parse(line + "\n" + other)
    assert ei.value.where == 3 and ei.value.vid == "KEYLOG-CONFLICT"
    with pytest.raises(KeyLogError):
        KeyLog.parse(f"MLS_CIPHER_SUITE {G1.hex()} 1\nMLS_CIPHER_SUITE {G1.hex()} 2\n")
    log = KeyLog.parse(line)
    with pytest.raises(KeyLogError):
        log.add(EXPORTER, G1, 1, bytes(32))
    log.add(EXPORTER, G1, 1, S)
    assert len(log) == 1


@pytest.mark.parametrize("line,vid", [
    (f"MLS_EXPORTER_SECRET {G1.hex()} 1", "KEYLOG-FIELDS"),
    (f"MLS_EXPORTER_SECRET {G1.hex()[:-2]} 1 00", "KEYLOG-GID"),
    (f"MLS_EXPORTER_SECRET {'zz' * 16} 1 00", "KEYLOG-GID"),
    (f"MLS_EXPORTER_SECRET {G1.hex()} -1 00", "KEYLOG-EPOCH"),
    (f"MLS_EXPORTER_SECRET {G1.hex()} 1.5 00", "KEYLOG-EPOCH"),
    (f"MLS_EXPORTER_SECRET {G1.hex()} {2**64} 00", "KEYLOG-EPOCH"),
    (f"MLS_EXPORTER_SECRET {G1.hex()} 1 abc", "KEYLOG-SECRET"),
    (f"MLS_EXPORTER_SECRET {G1.hex()} 1 xy", "KEYLOG-SECRET"),
    (f"MLS_CIPHER_SUITE {G1.hex()} one", "KEYLOG-SUITE"),
    (f"MLS_CIPHER_SUITE {G1.hex()}", "KEYLOG-FIELDS"),
    ("hello world", "KEYLOG-LABEL"),
])
def test_malformed_lines_name_their_line_number(line, vid):
    with pytest.raises(KeyLogError) as ei:
        KeyLog.parse("# header\n\n" + line + "\n")
    assert ei.value.where == 3 and ei.value.vid == vid


def test_add_validates_and_file_io(tmp_path):
    log = KeyLog()
    with pytest.raises(UsageError):
        log.add("MLS_NOPE", G1, 1, S)
    with pytest.raises(UsageError):
        log.add(EXPORTER, G1[:8], 1, S)
    with pytest.raises(UsageError):
        log.add(EXPORTER, G1, -1, S)
    log.add(EXPORTER, G1, 5, S)
    log.set_suite(G1, 1)
    path = tmp_path / "keys.log"
    log.append_to(path)
    log.append_to(path)  # appending twice: identical records are accepted on reading
    more = KeyLog()
    more.add(ENCRYPTION, G2, 0, S)
    more.append_to(path)
    back = KeyLog.load(path)
    assert len(back) == 2 and back.exporter_secret(G1, 5) == S and back.encryption_secret(G2, 0) == S
    merged = KeyLog()
    merged.update(log)
    merged.update(more)
    assert merged == back


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([EXPORTER, SENDER_DATA, ENCRYPTION, "MLS_EPOCH_SECRET"]),
                          st.binary(min_size=16, max_size=16), st.integers(0, 2**64 - 1),
                          st.binary(min_size=1, max_size=64)), max_size=10))
def test_round_trip_property(entries):
    log = KeyLog()
    seen = {}
    for label, gid, epoch, secret in entries:
        if seen.setdefault((label, gid, epoch), secret) == secret:
            log.add(label, gid, epoch, secret)
    back = KeyLog.parse(log.dump())
    assert back == log and list(back) == list(log) and len(back) == len(seen)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_parse_only_typed_errors(text):
    try:
        KeyLog.parse(text)
    except KeyLogError as e:
        assert isinstance(e.where, int)


# --- the reference's state blob ------------------------------------------------------------------
@pytest.mark.interop
def test_state_blob_gives_current_epoch_secrets_for_every_member():
    with refpeer.two_member_group() as grp:
        la, lb = grp.keylog("alice"), grp.keylog("bob")
        gid, epoch = grp.group_id, grp.epoch
        blob = split_gbp_stack_state(grp.mls["bob"].export_state())
    assert la == lb and epoch == 1
    assert {(e.label, e.group_id, e.epoch) for e in la} == {
        (EXPORTER, gid, 1), (SENDER_DATA, gid, 1), (ENCRYPTION, gid, 1)}
    assert la.suite(gid) == 1 and all(len(e.secret) == 32 for e in la)
    assert blob.identity == b"bob" and blob.group_id == gid
    # bob's storage still holds his own pre-Welcome group; only the current one is taken
    state = _bob_state()
    assert len(parse_gbp_stack_state(state)) == 1
    assert len(parse_gbp_stack_state(state, all_groups=True)) == 2


def _bob_state() -> bytes:
    with refpeer.two_member_group() as grp:
        return grp.mls["bob"].export_state()


@pytest.mark.interop
def test_encryption_secret_is_the_secret_tree_root():
    """bob's exported root derives (RFC 9420 §9 tree secrets) the right-child secret alice's tree
    kept after she consumed the root by sending a commit in the same epoch."""
    with refpeer.two_member_group() as grp:
        gid = grp.group_id
        root = grp.keylog("bob").encryption_secret(gid, grp.epoch)
        carol = refpeer.MlsContext.create("carol")
        grp.mls["alice"].invite_full(carol.export_key_package())  # alice's handshake ratchet runs
        storage = split_gbp_stack_state(grp.mls["alice"].export_state()).storage
        alice_log = grp.keylog("alice")
        carol.close()
    # alice's own log no longer has the root (consumed), but still the exporter secret
    assert alice_log.encryption_secret(gid, 1) is None and alice_log.exporter_secret(gid, 1)
    key = next(k for k in storage if k.startswith(b"MessageSecrets") and str(list(gid))[1:-1].replace(" ", "") in k.decode())
    tree = json.loads(storage[key])["message_secrets"]["secret_tree"]
    assert tree["parent_nodes"][0] is None  # alice consumed the root …
    right = bytes(tree["leaf_nodes"][1]["secret"]["value"]["vec"])
    assert right == CipherSuite.get(1).expand_with_label(root, "tree", b"right", 32)  # … bob has it


@pytest.mark.interop
def test_state_blob_matches_gbp_stack_with_more_members():
    flow = refpeer.transition_flow()
    try:
        logs = [flow.group.keylog(m) for m in ("alice", "bob", "carol")]
        gid = flow.group.group_id
    finally:
        flow.group.close()
    assert logs[0] == logs[1] == logs[2]
    assert logs[0].epochs(gid) == [flow.new_epoch]


@pytest.mark.interop
def test_malformed_state_blobs_raise_typed_errors():
    state = _bob_state()
    for cut in list(range(0, 64)) + list(range(64, len(state), 97)):
        with pytest.raises(StateBlobError):
            KeyLog.from_gbp_stack_state(state[:cut])
    with pytest.raises(StateBlobError) as ei:
        KeyLog.from_gbp_stack_state(state + b"\x00")
    assert ei.value.vid == "KEYLOG-STATE-TRAILING"
    # a record whose JSON is broken
    storage = split_gbp_stack_state(state)
    recs = dict(storage.storage)
    k = b'EpochSecrets{"value":{"vec":[%s]}}\x00\x01' % ",".join(map(str, storage.group_id)).encode()
    assert k in recs
    recs[k] = b"{not json"
    with pytest.raises(StateBlobError) as ei:
        KeyLog.from_gbp_stack_state(_rebuild(recs, storage))
    assert ei.value.vid == "KEYLOG-STATE-JSON"
    recs[k] = b'{"exporter_secret": {"secret": {"value": {"vec": [1, 256]}}}}'
    with pytest.raises(StateBlobError):
        KeyLog.from_gbp_stack_state(_rebuild(recs, storage))
    recs.pop(k)
    with pytest.raises(StateBlobError):
        KeyLog.from_gbp_stack_state(_rebuild(recs, storage))


def _rebuild(recs, blob) -> bytes:
    u32 = struct.Struct("<I").pack
    storage = u32(len(recs)) + b"".join(u32(len(k)) + k + u32(len(v)) + v for k, v in recs.items())
    return b"".join(u32(len(s)) + s for s in (storage, blob.signer, blob.identity, blob.group_id))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_state_blob(data):
    try:
        KeyLog.from_gbp_stack_state(data)
    except GbpLabError:
        pass
