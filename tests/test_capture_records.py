"""gbp_lab.capture.records: the pipeline from capture files to record items.

Expectations come from the generator scripts under ``tests/captures/`` (what they put on the wire,
frames encoded by the reference wheel) — never from our own reader's output."""
from __future__ import annotations

import importlib.util
import io
import random
import struct
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbp_lab.capture.pcap import LinkType, PcapngWriter
from gbp_lab.capture.records import iter_records, read_records

CAPTURES = Path(__file__).parent / "captures"
GENERATED = {
    "segmented": "segmented.pcap",
    "defects": "defects.pcap",
    "truncated": "truncated.pcap",
    "multi_if": "multi_if.pcapng",
    "secrets": "secrets.pcapng",
}
pytestmark = pytest.mark.interop  # the expected frames are encoded by gbp_stack


def _generator(name: str):
    spec = importlib.util.spec_from_file_location(f"_capgen_{name}", CAPTURES / f"make_{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _by_direction(rows):
    out = defaultdict(list)
    for src, sport, dst, dport, transport, body in rows:
        out[(src, sport, dst, dport, transport)].append(body)
    return dict(out)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_every_good_frame_recovered_and_every_defect_reported(name):
    _, expected = _generator(name).build()
    result = read_records(CAPTURES / GENERATED[name])
    got = [(i.src, i.sport, i.dst, i.dport, i.transport, i.data) for i in result.records]
    assert _by_direction(got) == _by_direction(expected["records"])
    assert Counter(i.vid for i in result.errors) == Counter(expected["errors"])
    for item in result.items:
        assert (item.data is None) != (item.error is None)
        if item.error is not None:
            assert item.vid and len(item.error) > 10
        else:
            assert item.flow_id is not None and item.time > 1_600_000_000
    assert result.stats.records == len(result.records)
    assert result.stats.errors == len(result.errors)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generators_are_deterministic(name, tmp_path):
    out = tmp_path / GENERATED[name]
    _generator(name).main(out)
    assert out.read_bytes() == (CAPTURES / GENERATED[name]).read_bytes()


def test_defect_details():
    _, expected = _generator("defects").build()
    result = read_records(CAPTURES / "defects.pcap")
    gap = [i for i in result.errors if i.vid == "TCP-GAP"]
    assert len(gap) == 1
    start, end = expected["gap"]
    assert gap[0].offset == start and f"[{start}, {end})" in gap[0].error
    assert result.stats.gaps == 1 and result.stats.gap_bytes == end - start
    assert result.stats.retransmitted_bytes >= 200  # one duplicate segment + overlap halves
    rst = [i for i in result.errors if i.vid == "REC-TRUNCATED-END"]
    assert "RST" in rst[0].error
    # items come out in capture order: the gap is reported before the frames after it
    flow0 = [i for i in result.items if i.flow_id == gap[0].flow_id]
    k = flow0.index(gap[0])
    assert all(i.offset <= start for i in flow0[:k] if i.data is not None)
    assert all(i.offset >= end for i in flow0[k + 1:] if i.data is not None)


def test_heuristic_and_ports():
    path = CAPTURES / "segmented.pcap"
    ports = lambda items: sorted({i.dport for i in items if i.data is not None})  # noqa: E731
    assert ports(read_records(path).items) == [7878, 9000, 40001]
    assert ports(read_records(path, heuristic=False).items) == [7878, 40001]
    only = read_records(path, ports=(9000,), heuristic=False)
    assert ports(only.items) == [9000] and len(only.records) == 3
    assert read_records(path).stats.gbp_flows == 3  # the HTTP flow on 8080 is not GBP


def test_streaming_equals_batch():
    path = CAPTURES / "defects.pcap"
    assert list(iter_records(path)) == read_records(path).items


def test_file_defects_are_items():
    result = read_records(CAPTURES / "truncated.pcap")
    cap = [i for i in result.errors if i.vid == "CAP-TRUNCATED-RECORD"]
    assert len(cap) == 1 and cap[0].flow_id is None and "truncated" in cap[0].error
    link = read_records(CAPTURES / "multi_if.pcapng")
    assert link.stats.unknown_linktype_packets == 2
    assert [i.vid for i in link.errors] == ["CAP-LINKTYPE"]  # once per interface, not per packet


# ---------------------------------------------------------------------------------------------
# pipeline-level properties on synthetic captures (raw IPv4 built with struct: fast)
# ---------------------------------------------------------------------------------------------
def _ipv4_tcp(src, dst, sport, dport, seq, flags, payload, ack=0):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, bytes(src), bytes(dst))
    return ip + tcp


def _capture(packets):
    buf = io.BytesIO()
    with PcapngWriter(buf) as w:
        w.add_interface(LinkType.IPV4, tsresol=9)
        for i, p in enumerate(packets):
            w.write_packet(p, ticks=1_700_000_000 * 10**9 + i * 1000, ts_units=10**9)
    return buf.getvalue()


gbp_stack = pytest.importorskip("gbp_stack")
_rng = random.Random(9)
_FRAMES = [gbp_stack.encode_gbp_frame(1, bytes(16), 1, 0, 1, 102, 1, i + 1,
                                      bytes(_rng.randrange(256) for _ in range(_rng.randrange(20, 500))))
           for i in range(10)]
_STREAM = b"".join(struct.pack("<I", len(f)) + f for f in _FRAMES)
A, B = (10, 9, 0, 1), (10, 9, 0, 2)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(1, len(_STREAM) - 1), max_size=40), window=st.integers(0, 6),
       seed=st.integers(0, 2**31), isn=st.integers(0, 0xFFFFFFFF), dup=st.integers(0, 4))
def test_pipeline_same_records_for_any_segmentation(cuts, window, seed, isn, dup):
    rnd = random.Random(seed)
    bounds = [0] + sorted(set(cuts)) + [len(_STREAM)]
    segs = [(a, _STREAM[a:b]) for a, b in zip(bounds, bounds[1:])]
    keyed = sorted((i + rnd.uniform(0, window), i, s) for i, s in enumerate(segs))
    order = [s for _, _, s in keyed]
    for _ in range(dup):
        order.insert(rnd.randrange(len(order) // 2, len(order) + 1), rnd.choice(segs))
    pkts = [_ipv4_tcp(A, B, 50000, 7878, isn, 0x02, b"")]
    pkts += [_ipv4_tcp(A, B, 50000, 7878, (isn + 1 + a) & 0xFFFFFFFF, 0x18, d) for a, d in order]
    pkts.append(_ipv4_tcp(A, B, 50000, 7878, (isn + 1 + len(_STREAM)) & 0xFFFFFFFF, 0x11, b""))
    result = read_records(_capture(pkts))
    assert [i.data for i in result.items] == _FRAMES


def test_ip_fragments_are_reassembled():
    sc = pytest.importorskip("scapy.all")
    big = gbp_stack.encode_gbp_frame(1, bytes(16), 1, 0, 2, 101, 7, 1, bytes(range(256)) * 12)
    rec = struct.pack("<I", len(big)) + big
    v4udp = sc.fragment(sc.IP(src="10.9.0.1", dst="10.9.0.2", id=77) / sc.UDP(sport=1, dport=7878)
                        / big, fragsize=1000)
    v4tcp = sc.fragment(sc.IP(src="10.9.0.1", dst="10.9.0.2", id=78)
                        / sc.TCP(sport=2, dport=7878, seq=0, flags="S"), fragsize=8) + \
        sc.fragment(sc.IP(src="10.9.0.1", dst="10.9.0.2", id=79)
                    / sc.TCP(sport=2, dport=7878, seq=1, flags="PA") / rec, fragsize=512)
    v6udp = sc.fragment6(sc.IPv6(src="fd00::1", dst="fd00::2") / sc.IPv6ExtHdrFragment(id=5)
                         / sc.UDP(sport=3, dport=7878) / big, 1280)
    assert len(v4udp) > 3 and len(v6udp) > 2
    rnd = random.Random(3)
    shuffled4 = list(v4udp)
    rnd.shuffle(shuffled4)
    packets = [bytes(p) for p in shuffled4 + [v4udp[1]]]  # plus a duplicate fragment
    packets += [bytes(p) for p in v4tcp]
    buf = io.BytesIO()
    with PcapngWriter(buf) as w:
        w.add_interface(LinkType.RAW)
        for i, p in enumerate(packets + [bytes(p) for p in reversed(v6udp)]):
            w.write_packet(p, time=1_700_000_000 + i / 100)
    result = read_records(buf.getvalue())
    assert result.errors == []
    assert [(i.transport, i.src, i.data) for i in result.records] == [
        ("udp", "10.9.0.1", big), ("tcp", "10.9.0.1", big), ("udp", "fd00::1", big)]
    # one fragment missing: the datagram is reported, nothing else comes out of it
    buf = io.BytesIO()
    with PcapngWriter(buf) as w:
        w.add_interface(LinkType.RAW)
        for i, p in enumerate(v4udp[:1] + v4udp[2:]):
            w.write_packet(bytes(p), time=1_700_000_000 + i)
    result = read_records(buf.getvalue())
    assert result.records == [] and [i.vid for i in result.errors] == ["IP-FRAGMENTS"]


def test_ip_fragment_and_data_after_reset_and_port_reuse():
    f = _FRAMES[0]
    rec = struct.pack("<I", len(f)) + f
    frag = bytearray(_ipv4_tcp(A, B, 50001, 7878, 1, 0x18, rec))
    frag[6] = 0x20  # More Fragments
    pkts = [bytes(frag),
            _ipv4_tcp(A, B, 50002, 7878, 100, 0x02, b""),
            _ipv4_tcp(A, B, 50002, 7878, 101, 0x18, rec),
            _ipv4_tcp(A, B, 50002, 7878, 101 + len(rec), 0x04, b""),
            _ipv4_tcp(A, B, 50002, 7878, 101, 0x18, rec),  # late retransmission: ignored
            _ipv4_tcp(A, B, 50002, 7878, 101 + len(rec), 0x18, b"late"),
            _ipv4_tcp(A, B, 50002, 7878, 9000, 0x02, b""),  # same 5-tuple, new connection
            _ipv4_tcp(A, B, 50002, 7878, 9001, 0x18, rec)]
    result = read_records(_capture(pkts))
    kinds = [(i.vid or "record", i.flow_id) for i in result.items]
    # the lone first fragment (More Fragments set, nothing follows) is reported at the end
    assert kinds == [("record", 0), ("TCP-AFTER-CLOSE", 0), ("record", 1), ("IP-FRAGMENTS", None)]
    assert result.items[0].data == result.items[2].data == f
    assert "7878" in result.items[3].error and "fragments missing" in result.items[3].error


def test_udp_datagrams_and_heuristic_on_other_port():
    f = _FRAMES[1]

    def udp(sport, dport, payload):
        u = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(u), 0, 0, 64, 17, 0, bytes(A),
                           bytes(B)) + u

    pkts = [udp(1000, 7878, f), udp(1000, 7878, struct.pack("<I", len(f)) + f),
            udp(1000, 5000, f), udp(1000, 5000, b"dns-ish"), udp(1000, 7878, b"")]
    result = read_records(_capture(pkts))
    assert [i.data for i in result.records] == [f, f, f]
    assert [i.vid for i in result.errors] == ["UDP-EMPTY"]
    assert {i.transport for i in result.items} == {"udp"}
    assert [i.data for i in read_records(_capture(pkts), heuristic=False).records] == [f, f]


# ---------------------------------------------------------------------------------------------
# live reference session: KeyPackage, Welcome and encrypted frames as the CLI demo sends them
# ---------------------------------------------------------------------------------------------
def live_session_capture(path):
    """Write a pcapng of a real gbp_stack exchange (listener sends its KeyPackage, the connector
    answers with a Welcome and GTP text frames) with the connector's key log in a GBPK DSB.
    Returns (records per direction, keylog text, plaintexts)."""
    from gbp_lab.core.keylog import KeyLog

    alice = gbp_stack.MlsContext.create("alice")
    bob = gbp_stack.MlsContext.create("bob")
    kp = bob.export_key_package()
    _commit, welcome = alice.invite_full(kp)
    alice.finalize_commit()
    node = gbp_stack.GroupNode.create(1, alice.group_id)
    node.bootstrap_as_creator(alice.epoch)
    gtp = gbp_stack.GtpClient.create()
    texts = [f"hello {i}" * (i + 1) for i in range(4)]
    frames = [gtp.send(node, alice, 0, 10 + i, t).wire for i, t in enumerate(texts)]
    keylog = KeyLog.from_gbp_stack_state(alice.export_state()).dump()

    L, C = (127, 0, 0, 1), (127, 0, 0, 2)
    to_c = struct.pack("<I", len(kp)) + kp
    to_l = struct.pack("<I", len(welcome)) + welcome + b"".join(
        struct.pack("<I", len(f)) + f for f in frames)
    pkts = [_ipv4_tcp(C, L, 40000, 7878, 10, 0x02, b""),
            _ipv4_tcp(L, C, 7878, 40000, 500, 0x12, b"", ack=11),
            _ipv4_tcp(L, C, 7878, 40000, 501, 0x18, to_c[:100], ack=11),
            _ipv4_tcp(L, C, 7878, 40000, 601, 0x18, to_c[100:], ack=11)]
    for off in range(0, len(to_l), 700):
        pkts.append(_ipv4_tcp(C, L, 40000, 7878, 11 + off, 0x18, to_l[off:off + 700]))
    with PcapngWriter(path) as w:
        w.add_interface(LinkType.IPV4)
        w.add_secrets(keylog)
        for i, p in enumerate(pkts):
            w.write_packet(p, time=1_700_000_000 + i / 1000)
    return {("127.0.0.1", 7878): [kp], ("127.0.0.2", 40000): [welcome] + frames}, keylog, texts


def test_live_reference_session(tmp_path):
    path = tmp_path / "live.pcapng"
    expected, keylog, _ = live_session_capture(path)
    result = read_records(path)
    assert result.errors == []
    got = defaultdict(list)
    for i in result.records:
        got[(i.src, i.sport)].append(i.data)
    assert dict(got) == expected
    assert result.reader.gbp_keylog_text == keylog


# ---------------------------------------------------------------------------------------------
# the Capture model (frames / errors tables)
# ---------------------------------------------------------------------------------------------
BRIEF_COLUMNS = ["time", "src", "sport", "dst", "dport", "group_id", "epoch", "transition_id",
                 "stream_type", "stream_name", "stream_id", "sender", "flags", "sequence_no",
                 "payload_size", "codec", "decrypted", "protocol", "info", "error"]


def test_model_decrypts_with_keys_from_the_secrets_block():
    from gbp_lab.capture.model import read_capture

    _, expected = _generator("secrets").build()
    cap = read_capture(CAPTURES / "secrets.pcapng")
    f = cap.frames
    assert list(f.columns[:len(BRIEF_COLUMNS)]) == BRIEF_COLUMNS
    assert len(f) == len(expected["records"])
    raw = [r[-1] for r in expected["records"]]
    for i, body in enumerate(raw):
        want = expected["plaintexts"].get(body)
        assert cap.plaintexts[i] == want
        assert bool(f["decrypted"].iloc[i]) == (want is not None)
    bad = raw.index(expected["bad_tag"])
    nokey = raw.index(expected["no_key"])
    assert "GBP-AEAD-TAG" in f["error"].iloc[bad] and "GBP-AEAD-NOKEY" in f["error"].iloc[nokey]
    assert list(cap.errors["vid"]) == ["GBP-AEAD-TAG"] and list(cap.errors["kind"]) == ["decrypt"]
    assert set(f["protocol"]) == {"GTP", "GAP", "GSP", "GBP"}
    assert set(f["group_id"]) == {bytes.fromhex("6762702d6c61622d636170747572652a").hex()}
    assert (f["sender"] == f["stream_id"] // 100).all()
    text = f[f["stream_name"] == "text"]
    assert list(text["info"].str.contains("text message")) == [True] * 3
    assert str(f["epoch"].dtype) == "UInt64" and str(f["sport"].dtype) == "Int64"
    # without decryption nothing is opened
    plain = read_capture(CAPTURES / "secrets.pcapng", decrypt=False)
    assert not plain.frames["decrypted"].any() and len(plain.errors) == 0


def test_model_errors_table_collects_every_defect():
    from gbp_lab.capture.model import ERROR_COLUMNS, read_capture

    _, expected = _generator("defects").build()
    cap = read_capture(CAPTURES / "defects.pcap")
    assert list(cap.errors.columns) == ERROR_COLUMNS
    # pipeline defects + the 5-byte "hello" record, which is no frame
    assert Counter(cap.errors["vid"]) == Counter(expected["errors"] + ["REC-UNKNOWN"])
    frames = [r[-1] for r in expected["records"] if r[-1] != b"hello"]
    assert len(cap.frames) == len(frames)
    assert not cap.frames["decrypted"].any()
    assert (cap.frames["payload_size"] > 0).all()


def test_model_live_reference_session_keylog_argument(tmp_path):
    from gbp_lab.capture.model import read_capture
    from gbp_lab.core.keylog import KeyLog

    path = tmp_path / "live.pcapng"
    expected, keylog, texts = live_session_capture(path)
    for keys in (None, keylog, KeyLog.parse(keylog)):  # DSB alone, text, object
        cap = read_capture(path, keylog=keys)
        f = cap.frames
        mls = f[f["protocol"] == "MLS"]
        assert list(mls["info"].str.split(" ").str[0]) == ["KeyPackage", "Welcome"]
        gtp = f[f["protocol"] == "GTP"]
        assert gtp["decrypted"].all() and len(gtp) == len(texts)
        assert all(t[:20] in info for t, info in zip(texts, gtp["info"]))
    # the reference itself accepts what we decrypted
    client = gbp_stack.GtpClient.create()
    got = [client.accept(cap.plaintexts[i], 0).text for i in gtp.index]
    assert got == texts
    # a key log given as a file path works for a capture without secrets block
    bare = tmp_path / "bare.pcapng"
    from gbp_lab.capture.pcap import read_packets

    packets, _ = read_packets(path)
    with PcapngWriter(bare) as w:
        w.add_interface(LinkType.IPV4)
        for p in packets:
            w.write_packet(p.data, ticks=p.ts_ticks, ts_units=p.ts_units)
    assert not read_capture(bare).frames["decrypted"].any()
    log = tmp_path / "keys.log"
    log.write_text(keylog)
    assert read_capture(bare, keylog=str(log)).frames["decrypted"].sum() == len(texts)


_DEFECTS = (CAPTURES / "defects.pcap").read_bytes()
_SECRETS = (CAPTURES / "secrets.pcapng").read_bytes()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([_DEFECTS, _SECRETS]),
       st.lists(st.tuples(st.integers(24, 7000), st.integers(0, 255)), min_size=1, max_size=12),
       st.integers(100, 8000))
def test_corrupted_captures_never_raise(base, flips, cut):
    from gbp_lab.capture.model import read_capture

    data = bytearray(base[:cut])
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    result = read_records(bytes(data))
    for item in result.items:
        assert (item.data is None) != (item.error is None)
    cap = read_capture(bytes(data))
    assert len(cap.frames) + len(cap.errors) >= 0
    assert len(cap.frames) <= len(result.records)


def test_flow_table_forgets_finished_and_foreign_flows():
    from gbp_lab.capture.pcap import Packet
    from gbp_lab.capture.records import RecordPipeline

    f = _FRAMES[0]
    rec = struct.pack("<I", len(f)) + f
    pipe = RecordPipeline(forget_after=10.0)
    pipe.SWEEP_EVERY = 4
    pkts = [_ipv4_tcp(A, B, 1, 7878, 0, 0x02, b""), _ipv4_tcp(A, B, 1, 7878, 1, 0x18, rec),
            _ipv4_tcp(A, B, 1, 7878, 1 + len(rec), 0x04, b""),            # GBP flow, reset
            _ipv4_tcp(A, B, 2, 8080, 5, 0x18, b"GET / HTTP/1.1\r\n" * 4),  # not GBP (probes)
            _ipv4_tcp(A, B, 3, 7878, 0, 0x02, b"")]                        # GBP flow, open
    pkts += [_ipv4_tcp(A, B, 2, 8080, 5 + 64 * i, 0x18, b"x" * 64) for i in range(1, 4)]
    items = []
    for i, p in enumerate(pkts):
        items += pipe.packet(Packet(i, 0, 228, 1000.0 + i, 1000 + i, 1, len(p), p))
    assert [i.data for i in items] == [f]
    assert len(pipe._flows) == 3
    for i in range(8):  # much later: the sweep runs
        p = _ipv4_tcp(A, B, 9, 9999, 0, 0x10, b"")
        pipe.packet(Packet(100 + i, 0, 228, 2000.0 + i, 2000 + i, 1, len(p), p))
    assert [k[2] for k in pipe._flows] == [3]  # (proto, a, a_port, b, b_port), a < b
    assert pipe.finish() == []  # the open GBP flow held nothing


@pytest.mark.parametrize("same_time", [False, True], ids=["distinct-times", "one-timestamp"])
def test_mid_stream_flow_records_name_the_packet_that_carried_them(same_time):
    """A flow seen without its SYN is held until its base is known (at most ``hold_segments``
    segments, or the end of the capture); its records still name the packet that carried
    their last byte, not the one that released the hold (secrets.pcapng's SLL flow)."""
    r = [struct.pack("<I", len(f)) + f for f in _FRAMES[:4]]
    segs = [r[0], r[1] + r[2][:7], r[2][7:], r[3]]  # record 2 completes in segment 2
    pkts, seq = [], 5000
    for s in segs:
        pkts.append(_ipv4_tcp(A, B, 40000, 7878, seq, 0x18, s))
        seq += len(s)
    other = (10, 9, 0, 3)
    pkts.append(_ipv4_tcp(other, B, 41000, 7878, 1, 0x02, b""))  # another flow's SYN, last
    buf = io.BytesIO()
    with PcapngWriter(buf) as w:
        w.add_interface(LinkType.IPV4, tsresol=9)
        for i, p in enumerate(pkts):
            w.write_packet(p, ticks=1_700_000_000 * 10**9 + (0 if same_time else i * 1000),
                           ts_units=10**9)
    got = [(it.packet, it.data) for it in iter_records(buf.getvalue()) if it.data is not None]
    assert [b for _, b in got] == _FRAMES[:4]
    assert [p for p, _ in got] == [0, 1, 2, 3]
