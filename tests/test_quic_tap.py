"""A QUIC capture without dumpcap: the QUIC relay's tap records every UDP datagram its socket
received or sent, and the simulator writes them as Ethernet/IP/UDP packets in ``capture.pcapng``
(:func:`gbp_lab.sim.tap.write_udp_pcapng`), optionally with the run's TLS + MLS secrets embedded.
``read_capture`` of that file gives the frames of the TCP run with the same seed."""
from __future__ import annotations

import os
import stat
import sys

import pytest

from gbp_lab.capture.model import read_capture
from gbp_lab.capture.pcapfile import (SECRETS_TYPE_GBP_KEYLOG, SECRETS_TYPE_TLS_KEYLOG,
                                      CaptureReader)
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.quic.observer import KEYS_MISSING_VID
from gbp_lab.sim.simulator import CANONICAL_CLIENT_BASE, CANONICAL_SERVER, Simulator
from gbp_lab.sim.tap import TapKind

sys.path.insert(0, os.path.dirname(__file__))
from test_quic_capture import frame_multiset  # noqa: E402

SEED = 5


@pytest.fixture(scope="module")
def runs():
    """The classroom over QUIC and over TCP, same seed, in process."""
    quic = Simulator("classroom", SEED, transport="quic").run()
    tcp = Simulator("classroom", SEED).run()
    assert not quic.errors and not tcp.errors
    return quic, tcp


def _read_blocks(path):
    reader = CaptureReader(str(path))
    try:
        pkts = [(p.data, p.ts_ticks) for p in reader]
        return pkts, {s.secrets_type: s.data.decode() for s in reader.secrets}
    finally:
        reader.close()


def test_embedded_secrets_capture_reads_as_the_tcp_run(runs, tmp_path):
    quic, tcp = runs
    pcap, keys = quic.write(tmp_path / "quic", embed_secrets=True)
    assert pcap.endswith("capture.pcapng")
    assert stat.S_IMODE(os.stat(pcap).st_mode) == 0o600  # it carries secrets
    tpcap, tkeys = tcp.write(tmp_path / "tcp")
    ref = read_capture(tpcap, keylog=tkeys)
    cap = read_capture(pcap)  # no key log: the DSBs decrypt both layers
    assert len(cap.errors) == 0, cap.errors[["vid", "error"]].to_string()
    assert len(cap.frames) == len(ref.frames) > 100
    assert frame_multiset(cap.frames) == frame_multiset(ref.frames)
    gbp = cap.frames[cap.frames["protocol"] != "MLS"]
    assert bool(gbp["decrypted"].all()) and set(cap.frames["transport"]) == {"quic"}
    grams = [e for e in quic.tap_events if e.kind is TapKind.DATAGRAM]
    assert cap.stats.udp_datagrams == cap.stats.quic_datagrams == len(grams)
    opens = [e for e in quic.tap_events if e.kind is TapKind.OPEN]
    assert len(set(cap.frames["quic_connection"])) == len(opens) > 3
    pkts, blocks = _read_blocks(pcap)
    assert set(blocks) == {SECRETS_TYPE_TLS_KEYLOG, SECRETS_TYPE_GBP_KEYLOG}
    assert "CLIENT_TRAFFIC_SECRET_0" in blocks[SECRETS_TYPE_TLS_KEYLOG]
    assert "MLS_" not in blocks[SECRETS_TYPE_TLS_KEYLOG]
    assert "TRAFFIC_SECRET" not in blocks[SECRETS_TYPE_GBP_KEYLOG]
    assert "MLS_EXPORTER_SECRET" in blocks[SECRETS_TYPE_GBP_KEYLOG]
    ticks = [t for _d, t in pkts]
    assert ticks == sorted(ticks) and ticks[0] > 0
    # what crossed the socket: each packet's UDP payload is one tapped datagram, in order
    assert [d[42:] for d, _t in pkts] == [e.data for e in grams]


def test_udp_packets_are_well_formed(runs, tmp_path):
    """scapy's checksum functions give every IPv4 header and UDP checksum we wrote (RFC 791,
    RFC 768 pseudo-header); canonical ports put the relay at 127.0.0.1:7878 and the n-th member
    at 40000+n; with real ports the relay's own address and port are kept."""
    from scapy.layers.inet import IP, UDP, in4_chksum
    from scapy.utils import checksum

    quic, _tcp = runs
    pcap, _keys = quic.write(tmp_path / "canon")
    pkts, blocks = _read_blocks(pcap)
    assert blocks == {}
    members = set()
    for data, _t in pkts:
        ip = IP(data[14:34])  # the header alone: no upper layer dissected
        ip_sum, udp_sum = ip.chksum, int.from_bytes(data[40:42], "big")
        assert checksum(data[14:24] + b"\0\0" + data[26:34]) == ip_sum and ip.flags == "DF"
        # a computed 0 is sent as 0xFFFF (RFC 768): 0 means "no checksum" on the wire
        assert (in4_chksum(17, ip, data[34:40] + b"\0\0" + data[42:]) or 0xFFFF) == udp_sum
        sport, dport = UDP(data[34:42]).sport, UDP(data[34:42]).dport
        ends = {(ip.src, sport), (ip.dst, dport)}
        assert CANONICAL_SERVER in ends and ip.len == len(data) - 14
        members |= ends - {CANONICAL_SERVER}
    n = len([e for e in quic.tap_events if e.kind is TapKind.OPEN])
    assert members == {("127.0.0.1", CANONICAL_CLIENT_BASE + i) for i in range(1, n + 1)}
    real, _ = quic.write(tmp_path / "real", canonical_ports=False)
    relay = {e.server for e in quic.tap_events if e.kind is TapKind.OPEN}
    assert len(relay) == 1
    host, port = relay.pop()
    for data, _t in _read_blocks(real)[0][:5]:
        ip, udp = IP(data[14:34]), UDP(data[34:42])
        assert (host, port) in {(ip.src, udp.sport), (ip.dst, udp.dport)}


def test_without_embedded_secrets_keys_log_or_error_rows(runs, tmp_path):
    """No DSB: with keys.log the same frames; without it one QUIC-KEYS-MISSING row per
    connection and no frame."""
    quic, _tcp = runs
    pcap, keys = quic.write(tmp_path / "plain")
    with_keys = read_capture(pcap, keylog=keys)
    embedded = read_capture(quic.write(tmp_path / "emb", embed_secrets=True)[0])
    cols = ["epoch", "stream_id", "sequence_no", "decrypted", "quic_connection", "quic_stream"]
    assert with_keys.frames[cols].equals(embedded.frames[cols]) and len(with_keys.errors) == 0
    bare = read_capture(pcap)
    n = len(KeyLog.load(keys).unknown_lines) // 4
    assert len(bare.frames) == 0 and list(bare.errors["vid"]) == [KEYS_MISSING_VID] * n and n > 3


def test_tcp_run_cannot_embed(runs, tmp_path):
    from gbp_lab.core.errors import UsageError

    _quic, tcp = runs
    with pytest.raises(UsageError) as ei:
        tcp.write(tmp_path, embed_secrets=True)
    assert ei.value.vid == "SIM-EMBED"


def _rewrite(src, dst, edit):
    """Copy a capture's packets through ``edit(list of (data, ticks)) → list`` to ``dst``."""
    from gbp_lab.capture.pcapwriter import PcapngWriter

    pkts, _blocks = _read_blocks(src)
    with PcapngWriter(str(dst)) as w:
        w.add_interface(1)
        for data, ticks in edit(pkts):
            w.write_packet(data, ticks=ticks, ts_units=1_000_000)
    return dst


def _ports(data):
    return int.from_bytes(data[34:36], "big"), int.from_bytes(data[36:38], "big")


def test_short_header_packets_of_no_connection_get_an_error_row(runs, tmp_path):
    """A connection whose Initial and Handshake packets the capture lacks (it started
    mid-connection): one ``QUIC-NO-CONNECTION`` row for its path, every other connection read
    as before. Short-header packets captured before their connection's Initial: one row too.
    A UDP datagram that only looks like a short header, between hosts that are no QUIC server of
    the capture, is left alone."""
    from gbp_lab.capture.quicflows import NO_CONNECTION_VID

    quic, _tcp = runs
    pcap, keys = quic.write(tmp_path / "plain")
    base = read_capture(pcap, keylog=keys)
    member = CANONICAL_CLIENT_BASE + 3
    mine = lambda d: member in _ports(d)  # noqa: E731

    def mid_connection(pkts):
        shorts = [p for p in pkts if mine(p[0]) and not p[0][42] & 0x80]
        mid_connection.shorts = len(shorts)
        dns = pkts[0][0][:34] + (5353).to_bytes(2, "big") * 2 + pkts[0][0][38:42] + b"\x40" * 40
        return [p for p in pkts if not (mine(p[0]) and p[0][42] & 0x80)] + [(dns, pkts[-1][1])]

    cap = read_capture(_rewrite(pcap, tmp_path / "mid.pcapng", mid_connection), keylog=keys)
    errs = cap.errors
    assert list(errs["vid"]) == [NO_CONNECTION_VID], errs[["vid", "error"]].to_string()
    row = errs.iloc[0]
    assert member in (row["sport"], row["dport"]) and row["transport"] == "quic"
    assert f"{mid_connection.shorts} QUIC short-header packet(s)" in row["error"]
    assert "does not hold" in row["error"] and mid_connection.shorts > 3
    lost = frame_multiset(base.frames) - frame_multiset(cap.frames)
    assert not frame_multiset(cap.frames) - frame_multiset(base.frames)
    gone = base.frames[(base.frames["sport"] == member) | (base.frames["dport"] == member)]
    assert sum(lost.values()) == len(gone) > 0  # exactly that connection's frames

    def early(pkts):
        """Three short-header datagrams of the member captured before everything else."""
        at = [i for i, p in enumerate(pkts) if mine(p[0]) and not p[0][42] & 0x80][:3]
        return [pkts[i] for i in at] + [p for i, p in enumerate(pkts) if i not in at]

    cap = read_capture(_rewrite(pcap, tmp_path / "early.pcapng", early), keylog=keys)
    rows = cap.errors[cap.errors["vid"] == NO_CONNECTION_VID]
    assert len(rows) == 1 and "3 QUIC short-header packet(s)" in rows.iloc[0]["error"]
    assert "before its connection's Initial" in rows.iloc[0]["error"]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_a_udp_checksum_that_sums_to_zero_is_sent_as_ffff(tmp_path, host):
    """RFC 768: a computed UDP checksum of 0 is transmitted as all ones (0 would mean "none").
    The datagram's first two payload bytes are chosen so that the checksum comes out 0; the
    written packet carries 0xFFFF and scapy, which applies the same rule, agrees."""
    from scapy.layers.inet import IP, UDP, in4_chksum
    from scapy.layers.inet6 import IPv6, in6_chksum

    from gbp_lab.sim.tap import TapEvent, write_udp_pcapng

    src, dst, rest = (host, 40001), (host, 7878), b"gbp-lab!"
    v6 = ":" in host
    ip = IPv6(src=host, dst=host, nh=17) if v6 else IP(src=host, dst=host, proto=17)
    header = UDP(sport=src[1], dport=dst[1], len=8 + 2 + len(rest), chksum=0)
    blank = bytes(header) + b"\0\0" + rest
    word = (in6_chksum if v6 else in4_chksum)(17, ip, blank)  # adding it makes the sum 0xFFFF
    data = word.to_bytes(2, "big") + rest
    event = TapEvent(time=1.0, conn=0, kind=TapKind.DATAGRAM, data=data, client=src, server=dst)
    assert write_udp_pcapng([event], tmp_path / "zero.pcapng") == 1
    (frame, _t), = _read_blocks(tmp_path / "zero.pcapng")[0]
    off = 14 + (40 if v6 else 20)
    assert frame[off + 8:] == data and frame[off + 6:off + 8] == b"\xff\xff"
    assert (in6_chksum if v6 else in4_chksum)(17, ip, bytes(header) + data) == 0
    packet = (IPv6 if v6 else IP)(frame[14:])
    del packet[UDP].chksum  # scapy computes it again when it rebuilds the packet
    assert (IPv6 if v6 else IP)(bytes(packet))[UDP].chksum == 0xFFFF
