"""GBP over QUIC the reference's way (gbp_lab/sim/quic.py): real loopback UDP, aioquic on both
sides, frames from the gbp-stack wheel, the simulator's scripts with the same outcome as TCP, the
TLS secrets in keys.log, and hostile peers dropped with typed reasons."""
from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # pytest runs with importlib mode
import refpeer  # noqa: E402

from gbp_lab.capture.model import read_capture  # noqa: E402
from gbp_lab.core.errors import GbpLabError  # noqa: E402
from gbp_lab.core.gbp.framing import encode_record  # noqa: E402
from gbp_lab.core.keylog import KeyLog  # noqa: E402
from gbp_lab.sim.client import RelayClosedError  # noqa: E402
from gbp_lab.sim.quic import (QuicRelay, QuicRelayClient, TlsSecretsLog,  # noqa: E402
                              make_certificate, pump)
from gbp_lab.sim.relay import RelayThread  # noqa: E402
from gbp_lab.sim.simulator import Simulator  # noqa: E402

GBP_LAB = os.path.join(os.path.dirname(sys.executable), "gbp-lab")  # the venv's console script
TLS_LABELS = {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
              "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"}
TLS_LINE = re.compile(r"\A([A-Z_0-9]+) ([0-9a-f]{64}) ([0-9a-f]{64}|[0-9a-f]{96})\Z")
MLS_BLOB = b"\x00\x01\x00\x05opaque"  # MLS-shaped (mls10, KeyPackage wire format): forwarded


def quic_relay(**kw) -> RelayThread:
    return RelayThread("127.0.0.1", 0, relay_class=QuicRelay, **kw)


def tls_lines(text: str):
    return [TLS_LINE.match(ln) for ln in text.splitlines() if ln.split(" ")[0] in TLS_LABELS]


@pytest.mark.parametrize("script,layout", [("demo", "reference"), ("classroom", "reference"),
                                           ("demo", "spec")])
def test_script_over_quic_has_the_tcp_outcome(script, layout, tmp_path):
    """Same seed, TCP then QUIC: every member received the same messages, is at the same epoch
    with the same exporter; the captures decode to the same frames; keys.log adds 4 TLS secrets
    per QUIC connection (one client random each) to the very same MLS lines."""
    runs = {tr: Simulator(script, 3, transport=tr, quic_layout=layout).run() for tr in ("tcp", "quic")}
    tcp, quic = runs["tcp"], runs["quic"]
    assert not tcp.errors and not quic.errors
    assert tcp.frames_sent == quic.frames_sent > 10
    assert quic.members.keys() == tcp.members.keys()
    for name, m in tcp.members.items():
        q = quic.members[name]
        assert q.received == m.received and len(m.received) > 0, name
        assert (q.epoch, q.in_group) == (m.epoch, m.in_group)
        if m.in_group:
            assert q.mls.export_raw("gbp/text", b"", 32) == m.mls.export_raw("gbp/text", b"", 32)
    final = {m.mls.export_raw("gbp/text", b"", 32) for m in quic.members.values() if m.in_group}
    assert len(final) == 1
    assert [ln for ln in quic.keylog.lines() if ln.startswith("MLS_")] == tcp.keylog.lines()
    tls = tls_lines(quic.keylog.dump())
    opens = [e for e in quic.tap_events if e.kind.name == "OPEN"]
    assert all(tls) and len(tls) == 4 * len(opens) > 0
    by_random = {}
    for m in tls:
        by_random.setdefault(m.group(2), set()).add(m.group(1))
    assert len(by_random) == len(opens) and all(v == TLS_LABELS for v in by_random.values())
    cols = ["epoch", "stream_id", "sequence_no", "stream_type", "protocol", "decrypted", "info"]
    frames = {}
    for tr, res in runs.items():
        pcap, keys = res.write(tmp_path / tr)
        cap = read_capture(pcap, keylog=keys)
        assert len(cap.errors) == 0
        frames[tr] = cap.frames[cols].reset_index(drop=True)
    assert frames["quic"].equals(frames["tcp"])
    gbp = frames["quic"][frames["quic"]["protocol"] != "MLS"]
    assert len(gbp) > 10 and bool(gbp["decrypted"].all())


@pytest.mark.interop
def test_reference_frames_cross_the_quic_relay_unchanged():
    """Frames made by the gbp-stack wheel go member → relay → member over QUIC byte for byte; the
    relay learns the sender from the frame (reference stream-id scheme), without ALPN."""
    with refpeer.two_member_group() as grp, quic_relay(trace=True) as relay:
        frames = [rf.wire for rf in refpeer.reference_frames(grp)]
        with QuicRelayClient("127.0.0.1", relay.port, ca_cert=relay.relay.certificate_pem) as a, \
                QuicRelayClient("127.0.0.1", relay.port) as b:
            assert a.alpn is None and b.alpn is None and a.stream_id == b.stream_id == 0
            a.send(MLS_BLOB)  # a stream exists once its first byte arrives (RFC 9000 §3.2):
            b.send(MLS_BLOB + b"b")  # members are served once they sent, as with quinn's accept_bi
            assert a.recv(5).data == MLS_BLOB + b"b" and b.recv(5).data == MLS_BLOB
            for w in frames:
                a.queue(w)
            assert pump([a, b], lambda: len(b.inbox) == len(frames), 20)
            assert [d.data for d in b.inbox] == frames
        relay.wait_for(lambda e: e.kind == "leave", count=2)
        ev = relay.events
        assert [e.member for e in ev if e.kind == "member"] == [1]
        assert len([e for e in ev if e.kind == "record"]) == len(frames) + 2
        assert {e.reason for e in ev if e.kind == "leave"} == {"closed by peer"}


def test_tls_secrets_are_logged_by_both_sides_alike(tmp_path):
    """Client and relay log the same SSLKEYLOGFILE lines for a connection; the file is owner-only
    and a KeyLog keeps the lines next to the MLS ones."""
    server_log = TlsSecretsLog()
    path = tmp_path / "keys.log"
    path.write_text("MLS_CIPHER_SUITE " + "ab" * 16 + " 1\n")
    os.chmod(path, 0o600)
    client_log = TlsSecretsLog(str(path))
    with quic_relay(secrets_log=server_log) as relay:
        with QuicRelayClient("127.0.0.1", relay.port, secrets_log=client_log) as c:
            c.send(MLS_BLOB)
    assert sorted(server_log.lines) == sorted(client_log.lines)
    assert {m.group(1) for m in tls_lines(client_log.text())} == TLS_LABELS
    assert len({m.group(2) for m in tls_lines(client_log.text())}) == 1
    assert os.stat(path).st_mode & 0o777 == 0o600
    kl = KeyLog.load(path)
    assert kl.suite(bytes.fromhex("ab" * 16)) == 1 and sorted(kl.unknown_lines) == sorted(client_log.lines)


def test_wrong_certificate_and_no_relay_are_typed_errors():
    with quic_relay() as relay:
        other = make_certificate()[0]
        with pytest.raises(RelayClosedError) as err:
            QuicRelayClient("127.0.0.1", relay.port, ca_cert=other, timeout=5)
        assert err.value.vid == "DS-QUIC-HANDSHAKE"
        with QuicRelayClient("127.0.0.1", relay.port, ca_cert=relay.relay.certificate_pem) as ok:
            assert ok.connected
        port = relay.port
    with pytest.raises(GbpLabError) as err2:  # nobody listens any more
        QuicRelayClient("127.0.0.1", port, timeout=0.5)
    assert err2.value.vid == "DS-QUIC-HANDSHAKE"


def test_hostile_members_cost_only_their_connection():
    """Garbage, an oversize length and a second stream each drop that member (typed reason);
    the others keep exchanging records."""
    with quic_relay() as relay:
        with QuicRelayClient("127.0.0.1", relay.port) as a, \
                QuicRelayClient("127.0.0.1", relay.port) as b:
            a.send(MLS_BLOB)
            b.send(MLS_BLOB)
            assert a.recv(5).data == MLS_BLOB
            bad = [QuicRelayClient("127.0.0.1", relay.port) for _ in range(3)]
            bad[0].send(b"garbage!")
            bad[1].send_raw(b"\xff\xff\xff\x7f")
            bad[2].send(MLS_BLOB)
            bad[2].quic.send_stream_data(4, encode_record(MLS_BLOB))  # a second bidi stream
            bad[2].transmit()
            drops = relay.wait_for(lambda e: e.kind == "drop", count=3)
            assert sorted(e.vid for e in drops) == ["DS-GARBAGE", "DS-QUIC-STREAM",
                                                    "GBP-RECORD-OVERSIZE"]
            for c in bad:
                assert c.wait_closed(5) and c.eof
                c.close()
            a.send(MLS_BLOB + b"2")
            got = [b.recv(5).data for _ in range(3)]  # a's blob, bad[2]'s first record, a's 2nd
            assert got[0] == MLS_BLOB and got[-1] == MLS_BLOB + b"2"
        assert relay.stats["drops"] == 3


def test_cli_relay_and_simulate_over_quic(tmp_path):
    """The installed command: ``gbp-lab relay --transport quic --keylog`` serves two members;
    ``gbp-lab simulate demo --transport quic`` writes a key log with both layers."""
    keys = tmp_path / "relay-keys.log"
    relay_pcap = tmp_path / "relay.pcapng"
    proc = subprocess.Popen([GBP_LAB, "relay", "--transport", "quic", "--port", "0",
                             "--keylog", str(keys), "--pcap", str(relay_pcap)],
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # log lines, then the address
            m = re.search(r"listening on 127\.0\.0\.1:(\d+) UDP \(QUIC\)", line)
            if m:
                break
        assert m, line
        port = int(m.group(1))
        with QuicRelayClient("127.0.0.1", port) as a, QuicRelayClient("127.0.0.1", port) as b:
            a.send(MLS_BLOB)
            b.send(MLS_BLOB + b"b")
            assert a.recv(5).data == MLS_BLOB + b"b" and b.recv(5).data == MLS_BLOB
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "2 connections, 2 records in, 2 deliveries, 0 drops" in err
    assert len(tls_lines(keys.read_text())) == 8
    # --pcap: the UDP datagrams the relay's socket saw; keys.log opens both connections
    seen = read_capture(relay_pcap, keylog=keys)  # MLS_BLOB is only MLS-shaped: error rows
    assert seen.stats.quic_datagrams == seen.stats.udp_datagrams > 6
    errs = seen.errors
    assert list(errs["vid"]) == ["REC-UNKNOWN"] * 4 and set(errs["transport"]) == {"quic"}  # 2 in, 2 out
    assert errs["error"].str.contains(MLS_BLOB[:8].hex()).all() and len(seen.frames) == 0
    out = tmp_path / "run"
    done = subprocess.run([GBP_LAB, "simulate", "demo", "--transport", "quic", "--out", str(out),
                           "--seed", "1", "--quiet", "--embed-secrets"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = (out / "keys.log").read_text()
    assert len(tls_lines(text)) == 4 * 3 and "MLS_EXPORTER_SECRET" in text
    cap = read_capture(out / "capture.pcapng")  # the secrets are in the file
    gbp = cap.frames[cap.frames["protocol"] != "MLS"]
    assert len(gbp) > 10 and bool(gbp["decrypted"].all()) and len(cap.errors) == 0
    bad = subprocess.run([GBP_LAB, "simulate", "demo", "--out", str(tmp_path / "tcp"),
                          "--embed-secrets"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--embed-secrets is for --transport quic" in bad.stderr


@pytest.mark.interop
def test_spec_layout_one_stream_per_class():
    """``layout="spec"`` (gbp_rfc.md §3): the wheel's frames of the four classes go on streams
    0/4/8/12; the relay answers on the member's stream of that class, or its own 4·type+1; a
    record on another class's stream or an unknown stream drops that member."""
    with refpeer.two_member_group() as grp, quic_relay(layout="spec") as relay:
        rfs = refpeer.reference_frames(grp)
        with QuicRelayClient("127.0.0.1", relay.port, layout="spec") as a, \
                QuicRelayClient("127.0.0.1", relay.port, layout="spec") as b:
            b.send(MLS_BLOB)  # b opens its control stream only
            for rf in rfs:
                a.queue(rf.wire)
            assert pump([a, b], lambda: len(b.inbox) == len(rfs), 20)
            got = [d.data for d in b.inbox]  # streams are independent: order kept per class
            assert sorted(got) == sorted(rf.wire for rf in rfs)
            for st in range(4):
                assert [w for w in got if w in {rf.wire for rf in rfs if rf.stream_type == st}] == \
                    [rf.wire for rf in rfs if rf.stream_type == st]
            assert {rf.stream_type for rf in rfs} == {0, 1, 2, 3}
            assert a.used == {0, 4, 8, 12} and set(b.readers) == {0, 5, 9, 13}
            assert a.recv(5).data == MLS_BLOB
            bad = [QuicRelayClient("127.0.0.1", relay.port, layout="spec") for _ in range(2)]
            text = next(rf.wire for rf in rfs if rf.stream_type == 2)
            bad[0].send_raw(encode_record(text))  # a text frame on the control stream
            bad[1].quic.send_stream_data(16, encode_record(MLS_BLOB))
            bad[1].transmit()
            drops = relay.wait_for(lambda e: e.kind == "drop", count=2)
            assert [e.vid for e in drops] == ["DS-QUIC-STREAM"] * 2
            for c in bad:
                c.close()
        assert relay.stats["drops"] == 2
