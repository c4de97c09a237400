"""gbp_lab.capture.packets: the one packet decoder — its Ethernet/IPv4/TCP fast path
(``eth_ipv4_tcp``) gives what the general path gives for the same packet, on every test capture,
on synthetic packets and on fuzzed bytes; ``gbp_lab.capture.pcap`` re-exports the owners' names."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbp_lab.capture import defrag, packets, pcap, pcapfile, pcapwriter
from gbp_lab.capture.packets import (Decoded, decode_packet, eth_ipv4_tcp, flow_key_parts,
                                     ip_text)
from gbp_lab.capture.pcapfile import CaptureReader, LinkType

CAPTURES = Path(__file__).parent / "captures"
ALL = ["segmented.pcap", "defects.pcap", "truncated.pcap", "multi_if.pcapng", "secrets.pcapng"]
ETH = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"


def _eth_ipv4_tcp(payload: bytes, *, flags: int = 0x18, seq: int = 1000, ack: int = 7,
                  tot_delta: int = 0, frag: int = 0x4000, ihl: int = 5, doff: int = 5,
                  tcp_opts: bytes = b"", ip_opts: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", 40000, 7878, seq, ack, doff << 4, flags, 65535, 0, 0)
    tcp += tcp_opts + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(ip_opts) + len(tcp) + tot_delta, 0,
                     frag, 64, 6, 0, bytes((10, 0, 0, 1)), bytes((10, 1, 0, 1))) + ip_opts
    return ETH + b"\x08\x00" + ip + tcp


def _general(data: bytes):
    """The same IP packet through the general path: as raw IP (link type 101), and behind an
    802.1Q tag (Ethernet, not the fast path's layout)."""
    raw = decode_packet(LinkType.RAW, data[14:])
    vlan = decode_packet(LinkType.ETHERNET, ETH + b"\x81\x00\x00\x05" + data[12:])
    assert raw == vlan
    return raw


def _check(data: bytes) -> None:
    """The fast path and the general path agree on ``data`` (an Ethernet frame)."""
    fast = eth_ipv4_tcp(LinkType.ETHERNET, data)
    d = decode_packet(LinkType.ETHERNET, data)
    general = _general(data) if len(data) >= 14 and data[12:14] == b"\x08\x00" else d
    assert d == general
    if fast is not None:
        key, seq, ack, flags, payload = fast
        assert d is not None and not d.fragment and d.proto == 6 and d.ip_version == 4
        assert (d.src, d.sport, d.dst, d.dport) == flow_key_parts(key)
        assert (d.seq, d.ack, d.flags, d.payload, d.missing) == (seq, ack, flags, payload, 0)


@pytest.mark.parametrize("name", ALL)
def test_fast_path_matches_general_path_on_every_test_capture(name):
    fast_hits = 0
    with CaptureReader(CAPTURES / name) as r:
        for p in r:
            if p.linktype == LinkType.ETHERNET:
                _check(p.data)
                fast_hits += eth_ipv4_tcp(p.linktype, p.data) is not None
            elif eth_ipv4_tcp(p.linktype, p.data) is not None:
                pytest.fail("fast path taken for a non-Ethernet packet")
    if name in ("segmented.pcap", "defects.pcap"):
        assert fast_hits  # the fast path really ran


@pytest.mark.parametrize("kw", [
    {},
    {"flags": 0x02},  # SYN: decoded (the pipeline, not the decoder, sends it the general way)
    {"tot_delta": 5},  # IP length beyond the capture: missing bytes → general path
    {"tot_delta": -3},  # Ethernet padding after the IP packet: not payload
    {"frag": 0x2000},  # more fragments: a fragment → general path
    {"frag": 0x0001},  # a fragment offset
    {"ihl": 6, "ip_opts": b"\x01\x01\x01\x00"},  # IPv4 options → general path
    {"doff": 7, "tcp_opts": b"\x01" * 8},  # TCP options: fast path skips them
    {"doff": 4},  # data offset below 20: not TCP we parse
    {"doff": 15},  # data offset past the packet
])
def test_fast_path_matches_general_path_on_edge_packets(kw):
    for payload in (b"", b"\x00\x00\x00\x01\xa5", bytes(range(200))):
        _check(_eth_ipv4_tcp(payload, **kw))


def test_fast_path_declines_what_it_does_not_parse():
    good = _eth_ipv4_tcp(b"abcd")
    assert eth_ipv4_tcp(LinkType.ETHERNET, good) is not None
    assert eth_ipv4_tcp(LinkType.RAW, good[14:]) is None  # other link types: general path
    assert eth_ipv4_tcp(LinkType.ETHERNET, good[:53]) is None  # shorter than the headers
    assert eth_ipv4_tcp(LinkType.ETHERNET, _eth_ipv4_tcp(b"x", frag=0x2000)) is None
    assert eth_ipv4_tcp(LinkType.ETHERNET, _eth_ipv4_tcp(b"x", tot_delta=1)) is None
    udp = bytearray(good)
    udp[23] = 17
    assert eth_ipv4_tcp(LinkType.ETHERNET, bytes(udp)) is None
    key, seq, ack, flags, payload = eth_ipv4_tcp(LinkType.ETHERNET, good)
    assert (seq, ack, flags, payload) == (1000, 7, 0x18, b"abcd")
    assert flow_key_parts(key) == ("10.0.0.1", 40000, "10.1.0.1", 7878)
    assert key == bytes((10, 0, 0, 1, 10, 1, 0, 1)) + struct.pack("!HH", 40000, 7878)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=120), st.integers(0, 119), st.integers(0, 255))
def test_fast_path_fuzz(tail, pos, byte):
    data = bytearray(_eth_ipv4_tcp(tail))
    data[pos % len(data)] = byte  # one header byte changed: both paths still agree, never raise
    _check(bytes(data))
    _check(bytes(data[:pos]))


def test_ip_text():
    assert ip_text(bytes((192, 0, 2, 1))) == "192.0.2.1"
    assert ip_text(bytes(15) + b"\x01") == "::1"


def test_pcap_reexports_the_owners():
    owners = (pcapfile, pcapwriter, packets, defrag)
    for name in pcap.__all__:
        obj = getattr(pcap, name)
        homes = [m for m in owners if name in getattr(m, "__all__", ()) and getattr(m, name) is obj]
        assert len(homes) == 1, name
    assert pcap.Decoded is Decoded and pcap.decode_packet is decode_packet
