"""gbp_lab.capture.pcap: pcap/pcapng reading (cross-checked with scapy), the pcapng writer with
its GBPK Decryption Secrets Block, link/IP/TCP/UDP header parsing, and robustness."""
from __future__ import annotations

import importlib.util
import io
import math
import struct
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbp_lab.capture.pcap import (
    SECRETS_TYPE_GBP_KEYLOG,
    SECRETS_TYPE_TLS_KEYLOG,
    CaptureFormatError,
    CaptureReader,
    LinkType,
    PcapngWriter,
    decode_packet,
    inject_secrets,
    read_packets,
)
from gbp_lab.core.errors import DecodeError, UsageError

CAPTURES = Path(__file__).parent / "captures"
ALL = ["segmented.pcap", "defects.pcap", "truncated.pcap", "multi_if.pcapng", "secrets.pcapng"]


def _generator(name: str):
    path = CAPTURES / f"make_{name}.py"
    spec = importlib.util.spec_from_file_location(f"_capgen_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def scapy_all():
    return pytest.importorskip("scapy.all")


# ---------------------------------------------------------------------------------------------
# cross-check against scapy's reader
# ---------------------------------------------------------------------------------------------
def _scapy_view(sc, p):
    """(src, sport, dst, dport, proto, payload) of a scapy packet, or None."""
    for ipcls in (sc.IP, sc.IPv6):
        if ipcls in p:
            ip = p[ipcls]
            for l4, proto in ((sc.TCP, 6), (sc.UDP, 17)):
                if l4 in p:
                    seg = p[l4]
                    return (ip.src, seg.sport, ip.dst, seg.dport, proto, bytes(seg.payload))
    return None


@pytest.mark.parametrize("name", ALL)
def test_cross_check_with_scapy(name, scapy_all):
    sc = scapy_all
    ours, reader = read_packets(CAPTURES / name)
    theirs = sc.rdpcap(str(CAPTURES / name))
    if name == "truncated.pcap":  # scapy keeps the cut packet; we report it as an issue
        assert len(theirs) == len(ours) + 1
        assert [i.vid for i in reader.issues] == ["CAP-TRUNCATED-RECORD"]
        theirs = theirs[:len(ours)]
    else:
        assert reader.issues == []
    assert len(ours) == len(theirs) > 0
    views = 0
    for o, t in zip(ours, theirs):
        assert o.data == t.original
        assert Decimal(o.ts_ticks) / Decimal(o.ts_units) == Decimal(t.time)
        assert o.time == pytest.approx(float(t.time), abs=1e-6)
        assert o.origlen == t.wirelen or (t.wirelen is None and o.origlen == len(o.data))
        v = _scapy_view(sc, t)
        if v is None and o.linktype == 0 and sc.Loopback in t:
            # scapy binds BSD AF_INET6 = 24 to no layer: dissect the rest as IP itself
            inner = bytes(t[sc.Loopback].payload)
            v = _scapy_view(sc, (sc.IPv6 if inner[0] >> 4 == 6 else sc.IP)(inner))
        d = decode_packet(o.linktype, o.data)
        if v is None:
            assert d is None
        else:
            views += 1
            assert (d.src, d.sport, d.dst, d.dport, d.proto, d.payload) == v
    assert views > 0


def test_pcapng_interfaces_and_linktypes():
    _, reader = read_packets(CAPTURES / "multi_if.pcapng")
    linktypes = {i.name: i.linktype for i in reader.interfaces}
    assert linktypes["eth0"] == LinkType.ETHERNET
    assert linktypes["any"] == LinkType.LINUX_SLL2
    assert linktypes["lo"] == LinkType.NULL
    assert linktypes["usb0"] == 147


@pytest.mark.interop  # the generator encodes its frames with gbp_stack
def test_secrets_block_exposed():
    gen = _generator("secrets")
    _, expected = gen.build()
    packets, reader = read_packets(CAPTURES / "secrets.pcapng")
    assert [s.secrets_type for s in reader.secrets] == [SECRETS_TYPE_GBP_KEYLOG]
    assert reader.secrets[0].data.decode() == expected["keylog"]
    assert reader.gbp_keylog_text == expected["keylog"]
    assert SECRETS_TYPE_GBP_KEYLOG.to_bytes(4, "big") == b"GBPK"
    # nanosecond resolution survives exactly
    assert all(p.ts_units == 10**9 for p in packets)
    pkts, _ = gen.build()
    assert [p.ts_ticks for p in packets] == [t for _, t, _ in pkts]


# ---------------------------------------------------------------------------------------------
# byte orders, resolutions, block kinds — files built by hand from the format specs
# ---------------------------------------------------------------------------------------------
def _classic(endian: str, nano: bool, records, linktype=1, modified=False) -> bytes:
    magic = 0xA1B2CD34 if modified else (0xA1B23C4D if nano else 0xA1B2C3D4)
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for sec, frac, data in records:
        out += struct.pack(endian + "IIII", sec, frac, len(data), len(data) + 3)
        if modified:
            out += bytes(8)
        out += data
    return out


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_classic_pcap_byte_orders_and_resolution(endian, nano):
    recs = [(1_700_000_000, 999_999 if not nano else 999_999_999, b"\x01" * 20),
            (1_700_000_001, 5, b"\x02" * 3)]
    packets, reader = read_packets(_classic(endian, nano, recs))
    units = 10**9 if nano else 10**6
    assert reader.format == "pcap" and reader.issues == []
    assert [p.data for p in packets] == [r[2] for r in recs]
    assert [p.ts_ticks for p in packets] == [s * units + f for s, f, _ in recs]
    assert [p.origlen for p in packets] == [len(r[2]) + 3 for r in recs]
    assert reader.interfaces[0].ts_units == units


def test_modified_pcap_variant():
    packets, _ = read_packets(_classic("<", False, [(1, 2, b"abc")], modified=True))
    assert [(p.data, p.ts_ticks) for p in packets] == [(b"abc", 1_000_002)]


def _block(e, btype, body):
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def _opt(e, code, value):
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _handmade_pcapng() -> bytes:
    out = b""
    # section 1, big-endian: IDB (2^-20 s resolution, +10 s offset), EPB, SPB, obsolete PB, DSB
    e = ">"
    out += _block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += _block(e, 1, struct.pack(e + "HHI", 101, 0, 64) + _opt(e, 9, b"\x94")
                  + _opt(e, 14, struct.pack(e + "q", 10)) + _opt(e, 2, b"tun0") + _opt(e, 0, b""))
    out += _block(e, 6, struct.pack(e + "IIIII", 0, 0, 3 << 20, 5, 9) + b"hello")
    out += _block(e, 3, struct.pack(e + "I", 3) + b"abc")
    out += _block(e, 2, struct.pack(e + "HHIIII", 0, 0, 0, 1 << 19, 2, 2) + b"xy")
    out += _block(e, 0x0A, struct.pack(e + "II", SECRETS_TYPE_TLS_KEYLOG, 5) + b"CLNT!")
    out += _block(e, 0x0BAD, b"unknown block body")
    # section 2, little-endian: interfaces restart at id 0
    e = "<"
    out += _block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += _block(e, 1, struct.pack(e + "HHI", 1, 0, 0) + _opt(e, 9, b"\x03"))
    out += _block(e, 6, struct.pack(e + "IIIII", 0, 0, 1234, 4, 4) + b"wxyz")
    out += _block(e, 0x0A, struct.pack(e + "II", SECRETS_TYPE_GBP_KEYLOG, 4) + b"k1\n\n")
    return out


def test_pcapng_blocks_byte_orders_sections():
    packets, reader = read_packets(_handmade_pcapng())
    assert reader.format == "pcapng" and reader.issues == []
    assert [p.data for p in packets] == [b"hello", b"abc", b"xy", b"wxyz"]
    assert [p.interface for p in packets] == [0, 0, 0, 1]
    assert [p.linktype for p in packets] == [101, 101, 101, 1]
    e0, spb, pb, e1 = packets
    assert e0.ts_units == 2**20 and e0.time == 3 + 10 and e0.origlen == 9
    assert math.isnan(spb.time) and spb.origlen == 3
    assert pb.time == 0.5 + 10
    assert e1.ts_units == 1000 and e1.time == pytest.approx(1.234)
    assert reader.interfaces[0].name == "tun0" and reader.interfaces[0].ts_offset == 10
    assert [(s.secrets_type, s.data) for s in reader.secrets] == [
        (SECRETS_TYPE_TLS_KEYLOG, b"CLNT!"), (SECRETS_TYPE_GBP_KEYLOG, b"k1\n\n")]
    assert reader.gbp_keylog_text == "k1\n\n"


def test_pcapng_defects_become_issues():
    good = _handmade_pcapng()
    # a packet on an undeclared interface, then a block whose trailer disagrees
    e = "<"
    bad_if = _block(e, 6, struct.pack(e + "IIIII", 7, 0, 0, 1, 1) + b"z")
    broken = bytearray(_block(e, 6, struct.pack(e + "IIIII", 0, 0, 0, 1, 1) + b"q"))
    broken[-4:] = struct.pack("<I", 999)
    packets, reader = read_packets(good + bad_if + bytes(broken) + _block(e, 3, b"\0\0\0\0"))
    assert len(packets) == 4
    assert [i.vid for i in reader.issues] == ["CAP-UNKNOWN-INTERFACE", "CAP-CORRUPT-BLOCK"]
    # truncated inside a block
    packets, reader = read_packets(good[:-7])
    assert len(packets) == 4 and [i.vid for i in reader.issues] == ["CAP-TRUNCATED-BLOCK"]


@pytest.mark.parametrize("data", [b"", b"\x00\x01", b"not a capture at all", bytes(64)])
def test_not_a_capture_raises_typed_error(data):
    with pytest.raises(CaptureFormatError) as ei:
        CaptureReader(data)
    assert isinstance(ei.value, DecodeError) and ei.value.vid == "CAP-MAGIC"


def test_source_kinds(tmp_path):
    raw = (CAPTURES / "segmented.pcap").read_bytes()
    a, _ = read_packets(CAPTURES / "segmented.pcap")
    b, _ = read_packets(raw)
    c, _ = read_packets(io.BytesIO(raw))
    d, _ = read_packets(str(CAPTURES / "segmented.pcap"))
    assert a == b == c == d
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(CaptureFormatError):
        CaptureReader(empty)
    with pytest.raises(UsageError):
        CaptureReader(12345)


# ---------------------------------------------------------------------------------------------
# the writer
# ---------------------------------------------------------------------------------------------
def test_writer_round_trip_and_scapy_reads_it(scapy_all):
    buf = io.BytesIO()
    frames = [bytes([i]) * (i + 1) for i in range(5)]
    with PcapngWriter(buf) as w:
        a = w.add_interface(LinkType.RAW, tsresol=9, name="gbp0")
        b = w.add_interface(LinkType.ETHERNET)
        w.add_secrets("MLS_EXPORTER_SECRET 00 1 ff\n")
        for i, f in enumerate(frames):
            w.write_packet(f, ticks=1_700_000_000_123_456_789 + i, ts_units=10**9,
                           interface=a if i % 2 else b)
    data = buf.getvalue()
    packets, reader = read_packets(data)
    assert [p.data for p in packets] == frames
    assert [p.interface for p in packets] == [1, 0, 1, 0, 1]
    assert packets[1].ts_ticks == 1_700_000_000_123_456_790  # exact in ns
    assert packets[0].ts_ticks == 1_700_000_000_123_456  # converted to the µs interface
    assert reader.secrets[0].secrets_type == 0x4742504B
    assert reader.gbp_keylog_text == "MLS_EXPORTER_SECRET 00 1 ff\n"
    theirs = scapy_all.rdpcap(io.BytesIO(data))
    assert [t.original for t in theirs] == frames
    with pytest.raises(UsageError):
        PcapngWriter(io.BytesIO()).write_packet(b"x", interface=0)
    with pytest.raises(UsageError):
        PcapngWriter(io.BytesIO()).add_interface(1, tsresol=200)


def test_inject_secrets_keeps_binary_resolution_and_offsets_exact(tmp_path):
    src = _handmade_pcapng()  # 2^-20 s resolution with a +10 s offset, then milliseconds
    before, _ = read_packets(src)
    dst = tmp_path / "out.pcapng"
    inject_secrets(src, dst, "k\n")
    after, reader = read_packets(dst)
    timed = [(p.data, p.time, p.ts_units) for p in before if not math.isnan(p.time)]
    # the simple packet block (no timestamp) is copied as an EPB at time 0
    assert [(p.data, p.time, p.ts_units) for p in after if p.data != b"abc"] == timed
    assert [p.data for p in after] == [p.data for p in before]
    assert {i.ts_units for i in reader.interfaces} == {2**20, 1000}
    with pytest.raises(UsageError):
        PcapngWriter(io.BytesIO()).add_interface(1, ts_units=3)


def test_inject_secrets_copies_packets(tmp_path):
    src = CAPTURES / "defects.pcap"
    dst = tmp_path / "with_keys.pcapng"
    n = inject_secrets(src, dst, "# keys\n")
    before, _ = read_packets(src)
    after, reader = read_packets(dst)
    assert n == len(before) == len(after)
    assert [(p.data, p.ts_ticks, p.ts_units, p.linktype) for p in before] == [
        (p.data, p.ts_ticks, p.ts_units, p.linktype) for p in after]
    assert reader.gbp_keylog_text == "# keys\n"
    # secrets already in the source are kept
    dst2 = tmp_path / "again.pcapng"
    inject_secrets(dst, dst2, "# more\n")
    _, r2 = read_packets(dst2)
    assert [s.data for s in r2.secrets] == [b"# more\n", b"# keys\n"]


# ---------------------------------------------------------------------------------------------
# header parsing details
# ---------------------------------------------------------------------------------------------
def test_decode_vlan_padding_fragments_snaplen(scapy_all):
    sc = scapy_all
    # 802.1Q tagged, Ethernet padding after a short IPv4 packet
    p = bytes(sc.Ether() / sc.Dot1Q(vlan=5) / sc.IP(src="1.2.3.4", dst="5.6.7.8")
              / sc.TCP(sport=1, dport=7878, seq=7, flags="PA") / b"ab") + b"\0" * 10
    d = decode_packet(1, p)
    assert (d.src, d.dst, d.sport, d.dport, d.seq, d.payload, d.missing) == (
        "1.2.3.4", "5.6.7.8", 1, 7878, 7, b"ab", 0)
    # snap length cut: 5 of 10 payload bytes captured
    full = bytes(sc.IP(src="1.1.1.1", dst="2.2.2.2") / sc.TCP(sport=2, dport=7878) / (b"x" * 10))
    d = decode_packet(228, full[:-5])
    assert (d.payload, d.missing) == (b"x" * 5, 5)
    # IPv4 fragments
    frags = sc.fragment(sc.IP(src="1.1.1.1", dst="2.2.2.2") / sc.UDP(sport=3, dport=7878)
                        / (b"y" * 64), fragsize=24)
    first, later = decode_packet(228, bytes(frags[0])), decode_packet(228, bytes(frags[1]))
    assert first.fragment and first.dport == 7878 and later.fragment and later.dport == 0
    # IPv6 with hop-by-hop and destination options before TCP
    p6 = bytes(sc.IPv6(src="::1", dst="::2") / sc.IPv6ExtHdrHopByHop()
               / sc.IPv6ExtHdrDestOpt() / sc.TCP(sport=9, dport=7878) / b"zz")
    d = decode_packet(229, p6)
    assert (d.src, d.dport, d.payload) == ("::1", 7878, b"zz")
    # Linux SLL / SLL2 / NULL / OpenBSD loop
    ip = bytes(sc.IP(src="9.9.9.9", dst="8.8.8.8") / sc.UDP(sport=4, dport=5) / b"q")
    assert decode_packet(113, bytes(sc.CookedLinux(proto=0x0800)) + ip).payload == b"q"
    assert decode_packet(276, bytes(sc.CookedLinuxV2(proto=0x0800)) + ip).payload == b"q"
    assert decode_packet(0, struct.pack("<I", 2) + ip).src == "9.9.9.9"
    assert decode_packet(0, struct.pack(">I", 2) + ip).src == "9.9.9.9"
    assert decode_packet(108, struct.pack(">I", 2) + ip).src == "9.9.9.9"
    # not TCP/UDP, unknown link type, non-IP ethertype
    assert decode_packet(228, bytes(sc.IP() / sc.ICMP())) is None
    assert decode_packet(147, ip) is None
    assert decode_packet(1, bytes(sc.Ether() / sc.ARP())) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([0, 1, 12, 101, 108, 113, 228, 229, 276, 147]), st.binary(max_size=120))
def test_decode_packet_never_raises(linktype, data):
    d = decode_packet(linktype, data)
    assert d is None or d.proto in (6, 17) or (d.fragment and d.ip_version == 6)


_SEGMENTED = (CAPTURES / "segmented.pcap").read_bytes()
_SECRETS = (CAPTURES / "secrets.pcapng").read_bytes()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([_SEGMENTED, _SECRETS]), st.integers(4, 9000),
       st.lists(st.tuples(st.integers(0, 9000), st.integers(0, 255)), max_size=6))
def test_reader_survives_truncation_and_corruption(base, cut, flips):
    data = bytearray(base[:cut])
    for pos, val in flips:
        if 4 <= pos < len(data):  # keep the magic: otherwise it is simply not a capture
            data[pos] = val
    try:
        reader = CaptureReader(bytes(data))
    except CaptureFormatError:
        return
    packets = list(reader)
    full, _ = read_packets(base)
    assert len(packets) <= len(full) or flips
    if not flips:
        # a cut between two blocks is undetectable; anything else is an issue. Either way the
        # packets read are exactly a prefix of the file's packets.
        assert [p.data for p in packets] == [p.data for p in full[:len(packets)]]
        if cut < len(base) and not reader.issues:
            again = CaptureReader(base[:cut + 1])
            list(again)
            assert again.issues, "one byte into the next block must be reported"


@pytest.mark.parametrize("name", ["segmented.pcap", "secrets.pcapng"])
def test_one_byte_short_is_reported(name):
    base = (CAPTURES / name).read_bytes()
    full, _ = read_packets(base)
    packets, reader = read_packets(base[:-1])
    assert len(packets) == len(full) - 1
    assert len(reader.issues) == 1 and reader.issues[0].vid.startswith("CAP-TRUNCATED")
    assert reader.issues[0].packet_index == len(full) - 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 64), st.binary(max_size=64),
                          st.booleans()), max_size=30))
def test_defragmenter_never_raises_and_is_bounded(frags):
    from gbp_lab.capture.pcap import Decoded, IpDefragmenter

    dfr = IpDefragmenter(max_datagrams=3, max_bytes=200, timeout=5.0)
    for t, (ident, off8, payload, more) in enumerate(frags):
        d = Decoded(17, "1.1.1.1", 0, "2.2.2.2", 0, payload, fragment=True, frag_id=ident,
                    frag_offset=off8 * 8, frag_more=more)
        whole, dropped = dfr.push(d, float(t))
        assert whole is None or whole.proto == 17
        assert len(dfr._pending) <= 3 and dfr._bytes <= 200
        assert all(e.reason for e in dropped)
    assert all(e.reason == "end of capture" for e in dfr.flush())
    assert dfr._bytes == 0


def test_pcapng_bytes_object_bytes():
    """secrets.pcapng was written by PcapngWriter: reading it and writing what was read gives the
    same bytes (interfaces, secrets block, exact nanosecond timestamps, packet data)."""
    original = (CAPTURES / "secrets.pcapng").read_bytes()
    packets, reader = read_packets(original)
    buf = io.BytesIO()
    with PcapngWriter(buf) as w:
        for iface in reader.interfaces:
            w.add_interface(iface.linktype, snaplen=iface.snaplen, ts_units=iface.ts_units,
                            name=iface.name)
        for s in reader.secrets:
            w.add_secrets(s.data, s.secrets_type)
        for p in packets:
            w.write_packet(p.data, ticks=p.ts_ticks, ts_units=p.ts_units, interface=p.interface,
                           origlen=p.origlen)
    assert buf.getvalue() == original


# --- CaptureStream: the same parse, fed piece by piece (live files and pipes) -------------------
from gbp_lab.capture.pcap import CaptureStream  # noqa: E402


def _reader_view(data: bytes):
    reader = CaptureReader(data)
    tuples = list(reader.iter_tuples())
    return tuples, reader.interfaces, reader.secrets, reader.issues


def _stream_view(data: bytes, cuts):
    s = CaptureStream()
    tuples, pos = [], 0
    for c in sorted(cuts) + [len(data)]:
        tuples += list(s.feed(data[pos:c]))
        pos = max(pos, c)
    tuples += list(s.finish())
    assert s.halted
    return tuples, s.interfaces, s.secrets, s.issues


_STREAM_BASES = [(CAPTURES / n).read_bytes() for n in ALL] + [_handmade_pcapng()]


@pytest.mark.parametrize("i", range(len(_STREAM_BASES)),
                         ids=ALL + ["handmade.pcapng"])
def test_capture_stream_byte_by_byte_equals_the_reader(i):
    """Every byte fed alone: the packets, interfaces (two sections, two byte orders), secrets
    (with their file offsets) and issues (defects, truncation at the end) of CaptureReader."""
    data = _STREAM_BASES[i]
    want = _reader_view(data)
    assert want[0], "the file has packets"
    s = CaptureStream()
    got = []
    for k in range(len(data)):
        got += list(s.feed(data[k:k + 1]))
        assert s.buffered < 1 << 16  # parsed bytes are dropped
    got += list(s.finish())
    assert (got, s.interfaces, s.secrets, s.issues) == want


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(_STREAM_BASES))), st.integers(4, 9000),
       st.lists(st.integers(0, 9000), max_size=8),
       st.lists(st.tuples(st.integers(4, 9000), st.integers(0, 255)), max_size=4))
def test_capture_stream_any_pieces_cut_or_corrupt_equals_the_reader(i, cut, cuts, flips):
    data = bytearray(_STREAM_BASES[i][:cut])
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    assert _stream_view(bytes(data), [c for c in cuts if c < len(data)]) == _reader_view(bytes(data))


def test_capture_stream_waits_for_the_rest_and_rejects_non_captures():
    data = (CAPTURES / "segmented.pcap").read_bytes()
    s = CaptureStream()
    assert list(s.feed(data[:3])) == [] and s.format is None
    assert list(s.feed(data[3:30])) == [] and s.format == "pcap" and s.issues == []
    first = list(s.feed(data[30:]))
    assert len(first) == len(_reader_view(data)[0]) and s.buffered == 0
    with pytest.raises(CaptureFormatError) as ei:
        list(CaptureStream().feed(b"not a capture"))
    assert ei.value.vid == "CAP-MAGIC"
    short = CaptureStream()
    assert list(short.feed(b"\xd4\xc3")) == []
    with pytest.raises(CaptureFormatError):
        list(short.finish())


def test_capture_stream_does_not_buffer_for_a_block_no_capture_writes():
    """A pcapng block header claiming more than MAX_BLOCK bytes is corrupt at once — for the
    stream (which would otherwise keep every later byte while waiting for the block's end) and
    for the reader alike."""
    from gbp_lab.capture.pcapfile import MAX_BLOCK

    data = (CAPTURES / "multi_if.pcapng").read_bytes()
    want_packets = _reader_view(data)[0]
    huge = struct.pack("<II", 0x00000006, (MAX_BLOCK + 4096) & ~3) + b"\0" * 8
    s = CaptureStream()
    got = list(s.feed(data)) + list(s.feed(huge))
    for _ in range(64):  # keep sending: nothing is kept
        got += list(s.feed(b"\xaa" * 4096))
        assert s.buffered <= len(huge) + 4096
    assert got == want_packets
    assert s.halted and s.issues[-1].vid == "CAP-CORRUPT-BLOCK" and "claims" in s.issues[-1].reason
    reader = _reader_view(data + huge + b"\xaa" * 4096)
    assert reader[0] == want_packets and reader[3][-1].vid == "CAP-CORRUPT-BLOCK"
