"""The socket tap and its pcap writer (gbp_lab.sim.tap): packets read back by scapy and by the lab's
own capture reader (gbp_lab.capture), every record recovered in order."""
from __future__ import annotations

import io
import itertools
import pathlib
import struct
import sys
from collections import defaultdict

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # pytest runs with importlib mode
import refpeer  # noqa: E402

from scapy.all import IP, IPv6, TCP, Ether, rdpcap  # noqa: E402

from gbp_lab.capture.records import read_records  # noqa: E402
from gbp_lab.core.errors import UsageError  # noqa: E402
from gbp_lab.core.gbp.framing import encode_record  # noqa: E402
from gbp_lab.sim import RelayClient, RelayThread, Tap, TapKind, pcap_bytes, write_pcap  # noqa: E402

WAIT = 20.0
CLIENT, SERVER = ("10.0.0.2", 50123), ("10.0.0.1", 7878)


def ticking_clock(start: float = 1_700_000_000.0, step: float = 0.001):
    counter = itertools.count()
    return lambda: start + step * next(counter)


def sample_tap(**kw) -> Tap:
    tap = Tap(clock=ticking_clock())
    tap.open(1, CLIENT, SERVER)
    tap.data(1, True, encode_record(b"\x00\x01\x00\x01" + bytes(100)))  # a KeyPackage-like blob
    tap.data(1, False, encode_record(bytes(range(256)) * 20))  # 5 124 bytes: 4 segments at 1460
    tap.data(1, True, encode_record(b"a") + encode_record(b"bc"))  # two records in one write
    tap.close(1, by_client=True)
    return tap


def streams_from_scapy(path) -> dict:
    """(src, sport, dst, dport) → payload bytes, concatenated in capture order."""
    out = defaultdict(bytes)
    for p in rdpcap(str(path)):
        ip = p[IP] if IP in p else p[IPv6]
        t = p[TCP]
        if len(t.payload):
            out[(ip.src, t.sport, ip.dst, t.dport)] += bytes(t.payload)
    return out


def test_synthetic_tap_packets_handshake_segments_teardown(tmp_path):
    tap = sample_tap()
    path = tmp_path / "s.pcap"
    n = tap.write_pcap(path, mss=1460)
    pkts = rdpcap(str(path))
    assert len(pkts) == n
    flags = [str(p[TCP].flags) for p in pkts]
    # handshake, data + ACK, 4 segments + ACK, data + ACK, FIN/ACK teardown
    assert flags == ["S", "SA", "A", "PA", "A", "A", "A", "A", "PA", "A", "PA", "A", "FA", "A", "FA", "A"]
    syn = pkts[0]
    assert (syn[IP].src, syn[TCP].sport, syn[IP].dst, syn[TCP].dport) == (*CLIENT[:1], CLIENT[1], *SERVER)
    assert ("MSS", 1460) in syn[TCP].options
    assert all(p[Ether].type == 0x0800 and p[IP].ttl == 64 for p in pkts)
    # seq/ack bookkeeping: each data segment starts where the previous one of its direction ended
    c_isn, s_isn = pkts[0][TCP].seq, pkts[1][TCP].seq
    assert pkts[1][TCP].ack == c_isn + 1 and pkts[2][TCP].ack == s_isn + 1
    nxt = {CLIENT[1]: c_isn + 1, SERVER[1]: s_isn + 1}
    for p in pkts[3:]:
        t = p[TCP]
        other = SERVER[1] if t.sport == CLIENT[1] else CLIENT[1]
        assert t.seq == nxt[t.sport]
        assert t.ack == nxt[other]
        nxt[t.sport] += len(t.payload) + (1 if "F" in str(t.flags) else 0)
        assert len(t.payload) <= 1460
    seg_sizes = [len(p[TCP].payload) for p in pkts if p[TCP].sport == SERVER[1] and len(p[TCP].payload)]
    assert seg_sizes == [1460, 1460, 1460, 5124 - 3 * 1460]
    # checksums as a real stack would have computed them
    for p in pkts:
        raw_ip, raw_tcp = p[IP].chksum, p[TCP].chksum
        q = Ether(bytes(p))
        del q[IP].chksum
        del q[TCP].chksum
        q = Ether(bytes(q))
        assert (q[IP].chksum, q[TCP].chksum) == (raw_ip, raw_tcp)
    # timestamps come from the injected clock (one tick per tap event)
    times = sorted({float(p.time) for p in pkts})
    assert times == pytest.approx([1_700_000_000.0 + 0.001 * i for i in range(5)], abs=2e-6)
    # every record recovered, in order, per direction
    streams = streams_from_scapy(path)
    c2s = streams[(CLIENT[0], CLIENT[1], SERVER[0], SERVER[1])]
    s2c = streams[(SERVER[0], SERVER[1], CLIENT[0], CLIENT[1])]
    assert c2s == tap.stream(1, True) and s2c == tap.stream(1, False)
    assert tap.records(1, True) == [b"\x00\x01\x00\x01" + bytes(100), b"a", b"bc"]


def test_pcap_is_deterministic_and_fast_paths():
    a, b = pcap_bytes(sample_tap()), pcap_bytes(sample_tap())
    assert a == b
    assert a[:4] == struct.pack("<I", 0xA1B2C3D4)
    assert struct.unpack_from("<I", a, 20)[0] == 1  # LINKTYPE_ETHERNET
    buf = io.BytesIO()
    assert write_pcap(sample_tap(), buf) == 16 and buf.getvalue() == a
    ns = pcap_bytes(sample_tap(), nanoseconds=True)
    assert ns[:4] == struct.pack("<I", 0xA1B23C4D)
    zero = pcap_bytes(sample_tap(), checksums=False)
    assert len(zero) == len(a) and zero != a
    small = rdpcap(io.BytesIO(pcap_bytes(sample_tap(), mss=100)))
    assert max(len(p[TCP].payload) for p in small) == 100


def test_reset_and_ipv6():
    tap = Tap(clock=ticking_clock())
    tap.open(7, ("::1", 40000), ("::1", 7878))
    tap.data(7, False, encode_record(b"x" * 10))
    tap.close(7, by_client=False, reset=True)
    pkts = rdpcap(io.BytesIO(pcap_bytes(tap)))
    assert all(IPv6 in p for p in pkts)
    assert [str(p[TCP].flags) for p in pkts] == ["S", "SA", "A", "PA", "A", "RA"]
    assert pkts[-1][TCP].sport == 7878
    q = Ether(bytes(pkts[3]))
    del q[TCP].chksum
    assert Ether(bytes(q))[TCP].chksum == pkts[3][TCP].chksum


def test_tap_usage_errors():
    tap = Tap()
    with pytest.raises(UsageError):
        tap.data(1, True, b"x")
    tap.open(1, CLIENT, SERVER)
    with pytest.raises(UsageError):
        tap.open(1, CLIENT, SERVER)
    with pytest.raises(UsageError):
        pcap_bytes(tap, mss=0)
    bad = Tap()
    bad.open(1, ("not-an-ip", 1), SERVER)
    with pytest.raises(UsageError):
        pcap_bytes(bad)
    assert [e.kind for e in tap.events] == [TapKind.OPEN]


@pytest.mark.interop
def test_relay_tap_roundtrip_scapy_and_lab_reader(tmp_path):
    """Reference frames through the relay; the tap's pcap gives back every record, in order, per
    direction — with scapy and with gbp_lab.capture."""
    tap = Tap(clock=ticking_clock(start=1_600_000_000.0, step=0.25))
    with refpeer.two_member_group() as grp:
        wires = [rf.wire for rf in refpeer.reference_frames(grp)]
    big = b"\x00\x01\x00\x03" + bytes(range(256)) * 40  # a Welcome-sized MLS blob (> MSS)
    with RelayThread(port=0, idle_timeout=None, tap=tap) as relay:
        a, b, c = (RelayClient(port=relay.port) for _ in range(3))
        relay.wait_for(lambda e: e.kind == "join", WAIT, count=3)
        for w in wires:
            a.send(w)
        c.send(big)
        got_a = [d.data for d in a.recv_many(1, WAIT)]
        got_b = [d.data for d in b.recv_many(len(wires) + 1, WAIT)]
        got_c = [d.data for d in c.recv_many(len(wires), WAIT)]
        assert got_a == [big] and sorted(got_b) == sorted(wires + [big]) and got_c == wires
        local = {x.local_port: name for name, x in zip("abc", (a, b, c))}
        for x in (a, b, c):
            x.close()
        relay.wait_for(lambda e: e.kind == "leave", WAIT, count=3)
        port = relay.port
    path = tmp_path / "relay.pcap"
    tap.write_pcap(path)
    conns = tap.connections
    assert len(conns) == 3 and {cli[1] for cli, _ in conns.values()} == set(local)

    expected = {}  # (src, sport, dst, dport) -> records, in order
    by_name = {}
    for cid, (cli, srv) in conns.items():
        assert srv[1] == port
        name = local[cli[1]]
        expected[(cli[0], cli[1], srv[0], srv[1])] = by_name[name + ">"] = tap.records(cid, True)
        expected[(srv[0], srv[1], cli[0], cli[1])] = by_name[">" + name] = tap.records(cid, False)
    # the tap saw exactly what the clients sent and received
    assert by_name["a>"] == wires and by_name["b>"] == [] and by_name["c>"] == [big]
    assert by_name[">a"] == got_a and by_name[">b"] == got_b and by_name[">c"] == got_c

    # scapy
    times = {round(float(p.time) * 4) for p in rdpcap(str(path))}
    assert times == {round(e.time * 4) for e in tap.events}  # the injected clock, one tick per event
    assert min(times) == 1_600_000_000 * 4
    streams = streams_from_scapy(path)
    from gbp_lab.core.gbp.framing import RecordReader
    for key, recs in expected.items():
        assert RecordReader().feed(streams.get(key, b"")) == recs

    # the lab's reader
    res = read_records(str(path), ports=(port,))
    assert not res.errors, res.errors
    lab = defaultdict(list)
    for it in res.records:
        lab[(it.src, it.sport, it.dst, it.dport)].append(it.data)
    assert {k: v for k, v in expected.items() if v} == dict(lab)
