"""GBP over QUIC captured on real loopback UDP and decrypted passively: ``dumpcap`` records
``gbp-lab simulate classroom --transport quic``; ``read_capture`` with the run's keys.log (TLS +
MLS lines) gives the frames of the same script over TCP (same seed), every one decrypted;
``tshark -o tls.keylog_file`` on the same capture gives exactly the stream bytes our reassembly
made; without the TLS lines: one ``QUIC-KEYS-MISSING`` row per connection."""
from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from gbp_lab.capture.model import read_capture
from gbp_lab.capture.packets import decode_packet
from gbp_lab.capture.pcapfile import CaptureReader
from gbp_lab.capture.stream import iter_capture
from gbp_lab.core.gbp.framing import encode_record
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.quic.observer import KEYS_MISSING_VID, QuicObserver

GBP_LAB = os.path.join(os.path.dirname(sys.executable), "gbp-lab")
HOST = f"127.{50 + os.getpid() % 150}.0.17"  # this run's own loopback address
SEED = "5"
COLS = ["epoch", "stream_id", "sequence_no", "decrypted"]


def _tool(name):
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is missing: run `make tshark` as root (apt-get install -y tshark)")
    return exe


def _captured_quic_run(tmp, host, *extra):
    """``gbp-lab simulate classroom --transport quic`` on ``host`` while dumpcap records lo."""
    pcap = tmp / "quic.pcapng"
    dc = subprocess.Popen([_tool("dumpcap"), "-i", "lo", "-f", f"udp and host {host}", "-w",
                           str(pcap)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        line = dc.stderr.readline().decode()  # "Capturing on 'Loopback: lo'" once it listens
        assert "Capturing on" in line, line + dc.stderr.read().decode()
        r = subprocess.run([GBP_LAB, "simulate", "classroom", "--transport", "quic", "--out",
                            str(tmp / "quic"), "--seed", SEED, "--real-ports", "--quiet",
                            "--host", host, *extra], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        time.sleep(0.3)  # the last datagrams reach dumpcap's file
    finally:
        dc.send_signal(signal.SIGTERM)
        dc.wait(30)
    return pcap, tmp / "quic" / "keys.log"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The QUIC run captured by dumpcap on lo, and the TCP run of the same script and seed."""
    tmp = tmp_path_factory.mktemp("quic")
    pcap, keys = _captured_quic_run(tmp, HOST)
    r = subprocess.run([GBP_LAB, "simulate", "classroom", "--out", str(tmp / "tcp"), "--seed",
                        SEED, "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return tmp, pcap, keys


def frame_multiset(frames):
    """The frames as a multiset of (epoch, stream id, sequence, decrypted): the comparison of a
    QUIC capture with the TCP run of the same seed (tests/test_quic_tap.py uses it too)."""
    return collections.Counter(map(tuple, frames[COLS].astype(str).values.tolist()))


def test_quic_capture_reads_as_the_tcp_run(runs):
    tmp, pcap, keys = runs
    quic = read_capture(pcap, keylog=keys)
    tcp = read_capture(tmp / "tcp" / "capture.pcap", keylog=tmp / "tcp" / "keys.log")
    assert len(quic.errors) == 0, quic.errors[["vid", "error"]].to_string()
    assert len(quic.frames) == len(tcp.frames) > 100
    assert frame_multiset(quic.frames) == frame_multiset(tcp.frames)
    gbp = quic.frames[quic.frames["protocol"] != "MLS"]
    assert bool(gbp["decrypted"].all()) and set(quic.frames["transport"]) == {"quic"}
    n_conn = len(set(quic.frames["quic_connection"]))
    assert n_conn == len(KeyLog.load(keys).unknown_lines) // 4 > 3  # one per member connection
    assert set(quic.frames["quic_stream"]) == {0}  # the reference layout: one stream each way
    assert quic.stats.quic_datagrams == quic.stats.udp_datagrams > 0
    chunks = list(iter_capture(pcap, keylog=keys, chunksize=100))
    assert sum(len(c) for c in chunks) == len(quic.frames)
    assert list(chunks[0]["quic_connection"]) == list(quic.frames["quic_connection"][:100])


def test_spec_layout_capture_one_quic_stream_per_class(runs, tmp_path):
    """``--quic-layout spec`` (gbp_rfc.md §3: control on stream 0, one stream per class): the
    same frames as TCP, records spread over the classes' streams of both directions."""
    tmp, _pcap, _keys = runs
    host = HOST.rsplit(".", 1)[0] + ".18"
    pcap, keys = _captured_quic_run(tmp_path, host, "--quic-layout", "spec")
    quic = read_capture(pcap, keylog=keys)
    tcp = read_capture(tmp / "tcp" / "capture.pcap", keylog=tmp / "tcp" / "keys.log")
    assert len(quic.errors) == 0 and frame_multiset(quic.frames) == frame_multiset(tcp.frames)
    streams = set(quic.frames["quic_stream"])
    assert {0, 4, 8, 12} <= streams <= {0, 1, 4, 5, 8, 9, 12, 13} and len(streams) >= 6
    by_class = quic.frames.dropna(subset=["stream_type"])
    assert {(int(a), int(b)) for a, b in zip(by_class["stream_type"], by_class["quic_stream"])
            } <= {(st, 4 * st + d) for st in range(4) for d in (0, 1)}


def _our_streams(pcap, keys):
    """The core observer over the capture's UDP payloads: bytes per (src port, dst port, stream)."""
    kl = KeyLog.load(keys)
    obs = QuicObserver(kl.tls_secrets)
    events = []
    reader = CaptureReader(str(pcap))
    try:
        for pkt in reader:
            d = decode_packet(pkt.linktype, pkt.data)
            if d is not None and d.proto == 17:
                events += obs.datagram(d.payload, (d.src, d.sport, d.dst, d.dport))
    finally:
        reader.close()
    events += obs.finish()
    out = collections.defaultdict(bytes)
    for e in events:
        assert e.kind in ("data", "end"), e
        if e.kind == "data":
            p = obs.connections[e.connection].path
            sp, dp = (p[1], p[3]) if e.from_client else (p[3], p[1])
            key = (sp, dp, e.stream_id)
            assert len(out[key]) == e.offset
            out[key] += e.data
    return dict(out)


def _tshark_streams(pcap, keys):
    """``tshark -o tls.keylog_file`` STREAM frames reassembled by offset (retransmissions
    overlap: later bytes must agree with earlier ones)."""
    r = subprocess.run([_tool("tshark"), "-r", str(pcap), "-o", f"tls.keylog_file:{keys}",
                        "-Y", "quic.stream_data", "-T", "fields", "-E", "separator=|",
                        "-e", "udp.srcport", "-e", "udp.dstport", "-e", "quic.stream.stream_id",
                        "-e", "quic.stream.off", "-e", "quic.stream.offset",
                        "-e", "quic.stream.len", "-e", "quic.stream.length",
                        "-e", "quic.stream_data"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    pieces = collections.defaultdict(dict)

    def listed(text):
        return [] if text in ("", "<MISSING>") else text.split(",")

    for line in r.stdout.splitlines():
        sp, dp, sids, offbits, offs, lenbits, lens, datas = line.split("|")
        # per STREAM frame: an offset only when its OFF bit is set, a length only with LEN,
        # data only when it is not empty
        offs_i, lens_i, datas_i = iter(listed(offs)), iter(listed(lens)), iter(listed(datas))
        for sid, ob, lb in zip(listed(sids), listed(offbits), listed(lenbits)):
            off = int(next(offs_i)) if ob in ("1", "True") else 0
            n = int(next(lens_i)) if lb in ("1", "True") else -1
            if n == 0:
                continue
            data = bytes.fromhex(next(datas_i))
            assert n in (-1, len(data))
            pieces[(int(sp), int(dp), int(sid))][off] = data
        assert next(datas_i, None) is None, line[:200]
    out = {}
    for key, parts in pieces.items():
        buf = bytearray()
        for off in sorted(parts):
            data = parts[off]
            assert off <= len(buf), f"tshark left a hole in {key} at {len(buf)}"
            assert bytes(buf[off:off + len(data)]) == data[:len(buf) - off]
            buf[off:off + len(data)] = data
        out[key] = bytes(buf)
    return out


def test_tshark_gives_the_same_stream_bytes(runs):
    _tmp, pcap, keys = runs
    ours = _our_streams(pcap, keys)
    theirs = _tshark_streams(pcap, keys)
    assert ours.keys() == theirs.keys() and len(ours) > 6
    for key in ours:
        assert ours[key] == theirs[key], key
    cap = read_capture(pcap, keylog=keys)  # the records read_capture made are those bytes
    total = sum(len(encode_record(cap.record(i))) for i in range(len(cap.frames)))
    assert total == sum(len(v) for v in ours.values())


def test_without_tls_secrets_one_error_row_per_connection(runs, tmp_path):
    _tmp, pcap, keys = runs
    mls_only = tmp_path / "mls.log"
    mls_only.write_text("".join(ln + "\n" for ln in KeyLog.load(keys).lines()
                                if ln.startswith("MLS_")))
    for keylog in (None, mls_only):
        cap = read_capture(pcap, keylog=keylog)
        assert len(cap.frames) == 0
        errs = cap.errors
        assert list(errs["vid"]) == [KEYS_MISSING_VID] * len(errs) and len(errs) > 3
        assert errs["error"].str.contains("QUIC 1-RTT keys missing").all()
        assert set(errs["kind"]) == {"quic"} and set(errs["transport"]) == {"quic"}


def test_dissect_command_reads_the_quic_capture(runs):
    _tmp, pcap, keys = runs
    r = subprocess.run([GBP_LAB, "dissect", str(pcap), "--keylog", str(keys)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    cap = read_capture(pcap, keylog=keys)
    assert len(r.stdout.splitlines()) == len(cap.frames) and "GTP" in r.stdout


def test_inject_secrets_splits_tls_and_mls_blocks(runs, tmp_path):
    """``gbp-lab inject-secrets`` puts keys.log's TLS lines into the standard TLS key-log block
    (Wireshark decrypts QUIC with no other option) and the MLS lines into GBPK; read_capture of the
    result needs no key log."""
    from gbp_lab.capture.pcapfile import SECRETS_TYPE_GBP_KEYLOG, SECRETS_TYPE_TLS_KEYLOG

    _tmp, pcap, keys = runs
    out = tmp_path / "with-secrets.pcapng"
    r = subprocess.run([GBP_LAB, "inject-secrets", str(pcap), str(keys), str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    reader = CaptureReader(str(out))
    try:
        list(reader)
        blocks = {s.secrets_type: s.data.decode() for s in reader.secrets}
    finally:
        reader.close()
    assert set(blocks) == {SECRETS_TYPE_GBP_KEYLOG, SECRETS_TYPE_TLS_KEYLOG}
    assert "MLS_EXPORTER_SECRET" in blocks[SECRETS_TYPE_GBP_KEYLOG]
    assert "TRAFFIC_SECRET" not in blocks[SECRETS_TYPE_GBP_KEYLOG]
    tls = blocks[SECRETS_TYPE_TLS_KEYLOG].split()
    assert "CLIENT_TRAFFIC_SECRET_0" in tls and "MLS_EXPORTER_SECRET" not in tls
    embedded = read_capture(out)
    direct = read_capture(pcap, keylog=keys)
    assert len(embedded.errors) == 0
    assert embedded.frames[COLS].equals(direct.frames[COLS])
    w = subprocess.run([_tool("tshark"), "-r", str(out), "-Y", "quic.stream_data", "-T", "fields",
                        "-e", "frame.number"], capture_output=True, text=True, timeout=60)
    assert w.returncode == 0 and len(w.stdout.split()) > 100  # Wireshark decrypts from the DSB


def test_scapy_dissectors_open_the_quic_capture(runs):
    """With ``use_keylog(keys.log)`` the scapy layers follow the QUIC connections (the same core
    observer): every packet of the capture opens, and the GBP records the datagrams complete are
    the frames read_capture found, decrypted (GTP messages as child layers)."""
    from scapy.utils import rdpcap

    from gbp_lab.dissectors import GtpMessage, keylog_in_use
    from gbp_lab.dissectors.transport import GbpQuic, GbpRecord

    _tmp, pcap, keys = runs
    cap = read_capture(pcap, keylog=keys)
    with keylog_in_use(str(keys)):
        pkts = rdpcap(str(pcap))
        quic = [p[GbpQuic] for p in pkts if GbpQuic in p]
        records, gtp = [], 0
        for q in quic:
            x = q.payload
            while isinstance(x, GbpRecord):
                records.append(bytes(x.body))
                gtp += GtpMessage in x.body and x.body[GtpMessage] is not None
                x = x.payload
    assert len(quic) == len(pkts) and all(q.error is None and q.packets for q in quic)
    assert "1-RTT" in quic[-1].packets and bytes(quic[5]) == bytes(pkts[5][GbpQuic].original)
    assert records == [cap.record(i) for i in range(len(cap.frames))]
    assert gtp == int((cap.frames["protocol"] == "GTP").sum()) > 10


def _rewrite(pcap, out, edit):
    """Copy the capture's packets through ``edit(list of (data, origlen)) → list`` to ``out``."""
    from gbp_lab.capture.pcapwriter import PcapngWriter

    reader = CaptureReader(str(pcap))
    try:
        pkts = [(p.data, p.origlen, p.ts_ticks, p.ts_units) for p in reader]
        iface = reader.interfaces[0]
    finally:
        reader.close()
    with PcapngWriter(str(out)) as w:
        w.add_interface(iface.linktype, ts_units=iface.ts_units)
        for data, orig, ticks, units in edit(pkts):
            w.write_packet(data, ticks=ticks, ts_units=units, origlen=orig)
    return out


def test_hostile_quic_capture_keeps_every_good_record(runs, tmp_path):
    """Reordered and duplicated datagrams read exactly as the original; a datagram cut by the
    capture (snap length) and a corrupted one are typed error rows, the records of that stream's
    gap are reported lost (``QUIC-GAP``) and every other record is kept."""
    import random

    _tmp, pcap, keys = runs
    base = read_capture(pcap, keylog=keys)

    def shuffle(pkts):
        """Reorder in flight: each run of consecutive datagrams from one source is shuffled
        (a reply never overtakes what it answers); every fourth run is sent twice."""
        rng = random.Random(11)
        out, run = [], []
        for p in pkts + [(b"", 0, 0, 1)]:
            if run and _src_of(p[0]) != _src_of(run[0][0]):
                rng.shuffle(run)
                out += run + (run if len(out) % 4 == 0 else [])
                run = []
            run.append(p)
        assert len(out) > len(pkts)
        return out

    cap = read_capture(_rewrite(pcap, tmp_path / "shuffled.pcapng", shuffle), keylog=keys)
    assert len(cap.errors) == 0
    assert frame_multiset(cap.frames) == frame_multiset(base.frames)

    # the two biggest 1-RTT (short header) datagrams that carry stream bytes (the biggest of
    # all may be padded probes without any): one is cut by the capture, the other has a flipped
    # ciphertext byte. Only datagrams whose stream bytes were sent once (a loaded machine makes
    # QUIC retransmit: a retransmitted copy would fill the hole), and the two in different stream
    # directions (two adjacent holes of one stream would be one gap)
    obs = QuicObserver(KeyLog.load(keys).tls_secrets)
    candidates, sent = [], collections.Counter()
    for i, (d, *_r) in enumerate(_packets(pcap)):
        dec = decode_packet(1, d)
        obs.datagram(dec.payload, (dec.src, dec.sport, dec.dst, dec.dport))
        pieces = [((dec.src, dec.sport, f.stream_id), f.offset) for p in obs.last_packets
                  for f in p.frames if 0x08 <= f.type <= 0x0F and f.data]
        sent.update(pieces)
        if not d[42] & 0x80 and pieces:
            candidates.append((len(d), i, pieces))
    once = sorted((n, i, pieces[0][0]) for n, i, pieces in candidates
                  if all(sent[piece] == 1 for piece in pieces))
    _n, cut_at, cut_dir = once[-1]
    flip_at = next(i for _n, i, direction in reversed(once) if direction != cut_dir)

    def damage(pkts):
        out = list(pkts)
        d, orig, t, u = out[cut_at]
        out[cut_at] = (d[:len(d) - 40], orig, t, u)  # captured bytes < wire length
        d, orig, t, u = out[flip_at]
        out[flip_at] = (d[:-30] + bytes([d[-30] ^ 1]) + d[-29:], orig, t, u)
        return out

    cap = read_capture(_rewrite(pcap, tmp_path / "damaged.pcapng", damage), keylog=keys)
    vids = collections.Counter(cap.errors["vid"])
    assert vids["UDP-TRUNCATED"] == 1 and vids["QUIC-DECRYPT"] == 1, vids
    assert vids["QUIC-GAP"] == 2 and set(cap.errors["transport"]) == {"quic"}, cap.errors[["vid", "error"]].to_string()
    lost = frame_multiset(base.frames) - frame_multiset(cap.frames)
    assert not (frame_multiset(cap.frames) - frame_multiset(base.frames))  # nothing invented
    assert 2 <= sum(lost.values()) <= 12  # only the records of the two holes
    gbp = cap.frames[cap.frames["protocol"] != "MLS"]
    assert bool(gbp["decrypted"].all())


def _src_of(frame: bytes) -> bytes:
    """Ethernet/IPv4/UDP (dumpcap on lo): the source address and port bytes."""
    return frame[26:30] + frame[34:36]


def _packets(pcap):
    reader = CaptureReader(str(pcap))
    try:
        return [(p.data, p.origlen) for p in reader]
    finally:
        reader.close()


def test_live_capture_follows_the_quic_file(runs):
    """``LiveCapture`` (tail -f of the capture file, key log given) reads the same QUIC frames,
    with their connection and stream columns."""
    from gbp_lab.capture.live import LiveCapture

    _tmp, pcap, keys = runs
    ref = read_capture(pcap, keylog=keys)
    live = LiveCapture(str(pcap), keylog=str(keys), poll=0.02).start()
    try:
        deadline = time.time() + 30
        while live.counters["frames"] < len(ref.frames) and time.time() < deadline:
            time.sleep(0.05)
    finally:
        live.stop()
    snap = live.snapshot()
    cols = COLS + ["transport", "quic_connection", "quic_stream"]
    assert snap.frames[cols].equals(ref.frames[cols]) and len(snap.errors) == 0
