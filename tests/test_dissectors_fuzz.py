"""Hostile bytes never make a dissector raise: random data on TCP/7878 (and UDP, and every layer
class directly) dissects to the layers it can, with ``error`` annotations and ``Raw`` for the
rest; ``show()``/``summary()`` work and ``bytes()`` gives back the input."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.config import conf
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from gbp_lab.core.gbp.aead import seal_frame
from gbp_lab.core.gbp.control import ControlMessage
from gbp_lab.core.gbp.framing import encode_record
from gbp_lab.core.gsp.signal import GspSignal as CoreGsp
from gbp_lab.core.gtp.message import GtpMessage as CoreGtp
from gbp_lab.core.keylog import EXPORTER, SENDER_DATA, ENCRYPTION, KeyLog
from gbp_lab.dissectors import (GapPayload, GbpControl, GbpCborArgs, GbpErrorObject, GbpFrame,
                                GbpRecord, GspArgs, GspSignal, GtpMessage, MLSCommit,
                                MLSKeyPackage, MLSMessage, MLSProposal, SFrame, mls_layer,
                                use_keylog)

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
GID = bytes(range(16))
SECRET = bytes(range(32, 64))


def _keylog() -> KeyLog:
    log = KeyLog()
    for label in (EXPORTER, SENDER_DATA, ENCRYPTION):
        for ep in range(3):
            log.add(label, GID, ep, SECRET)
    return log


@pytest.fixture(autouse=True)
def _keys():
    # decryption paths are exercised too; scapy's debug_dissector re-raises what a layer throws
    # (instead of quietly falling back to Raw), so "no exception" is really tested
    old = conf.debug_dissector
    conf.debug_dissector = True
    use_keylog(_keylog())
    yield
    use_keylog(None)
    conf.debug_dissector = old


def _sealed_frames():
    out = []
    for st, pt in ((2, CoreGtp.plain(1, 1, "hi").to_bytes()),
                   (3, CoreGsp(200, 1, 1, 0, None, b"\xa1\x00\x02").to_bytes(1)),
                   (0, ControlMessage.build(1, 1, 1, 1, b"\x00\x01\x00\x02" + os.urandom(40)).to_cbor()),
                   (1, bytes.fromhex("a5646d7369640563736571016274731903c0626b7001646f7075734101"))):
        out.append(seal_frame(SECRET, GID, 1, 0, st, 100 + st, 7, 5, pt,
                              payload_format=1 if st == 3 else 0).to_cbor())
    return out


VALID = _sealed_frames()


def _check(pkt, data: bytes) -> None:
    pkt.show(dump=True)
    pkt.summary()
    assert bytes(pkt) == data
    if TCP in pkt or UDP in pkt:
        # a rebuild through scapy's field iteration (checksum recomputed) gives the same bytes:
        # the dissection state survives copies and clones
        q = pkt.copy()
        del q[IP].chksum
        del q[(TCP if TCP in q else UDP)].chksum
        assert bytes(q) == data


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_on_tcp_7878(data):
    wire = bytes(Ether() / IP() / TCP(sport=1234, dport=7878) / Raw(data))
    pkt = Ether(wire)
    _check(pkt, wire)
    if len(data) >= 4:
        assert GbpRecord in pkt  # the port is bound: always shown as a record (maybe malformed)


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes_on_udp_7878_and_other_tcp_ports(data):
    for layer in (UDP(sport=7878, dport=5), TCP(sport=5, dport=4321)):
        wire = bytes(Ether() / IP() / layer / Raw(data))
        _check(Ether(wire), wire)


@SETTINGS
@given(st.binary(min_size=1, max_size=200), st.sampled_from([GbpFrame, GbpRecord, GbpControl, GbpCborArgs,
                                                 GbpErrorObject, GtpMessage, GapPayload,
                                                 GspSignal, GspArgs, SFrame, MLSMessage,
                                                 MLSKeyPackage, MLSCommit, MLSProposal]))
def test_random_bytes_into_every_layer(data, cls):
    # (scapy reads ``cls(b"")`` as "build with the defaults", so the input is never empty)
    _check(cls(data), data)


@SETTINGS
@given(st.binary(min_size=1, max_size=200), st.integers(0, 2))
def test_random_payload_codecs(data, codec):
    for cls in (GtpMessage, GapPayload, GspSignal):
        _check(cls.dissect_as(data, codec), data)


@SETTINGS
@given(st.sampled_from(range(len(VALID))), st.data())
def test_mutated_frames_in_records(index, data):
    frame = bytearray(VALID[index])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(frame) - 1))
        frame[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    stream = encode_record(bytes(frame)) + encode_record(VALID[index])[:cut + 4]
    wire = bytes(Ether() / IP() / TCP(sport=7878, dport=1) / Raw(stream))
    _check(Ether(wire), wire)


@SETTINGS
@given(st.binary(min_size=1, max_size=300))
def test_random_mls_blobs(data):
    for blob in (data, b"\x00\x01\x00\x02" + data, b"\x00\x01\x00\x03" + data, b"\x00\x01" + data):
        _check(mls_layer(blob), blob)


def test_valid_sealed_frames_decrypt():
    """The corpus the mutation test starts from really is decryptable (else it tests little)."""
    for wire in VALID:
        pkt = GbpFrame(wire)
        assert pkt.crypto.startswith("decrypted"), pkt.crypto
        assert pkt.payload and pkt.payload.getfieldval("error") is None
