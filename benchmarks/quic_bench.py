"""Throughput of the QUIC read path (not a test: ``python benchmarks/quic_bench.py``).

Builds one group's traffic twice — the same sealed GBP text frames (capture_bench's frames: GTP
text under a fixed exporter secret), each member on its own connection, one record per write as
live chat is sent:

* over **QUIC**: real aioquic connections (v1, no ALPN, the reference's layout: one
  bidirectional stream per member), client and server run sans-IO in this process, every
  datagram between them recorded by :class:`gbp_lab.sim.tap.Tap` and written as Ethernet/IP/UDP
  by :func:`~gbp_lab.sim.tap.write_udp_pcapng`; the TLS secrets (aioquic's key log) go into the
  key log next to the MLS line;
* over **TCP**: the same records on the same number of connections (``Tap`` → ``write_pcap``).

Then, in the same run, best of ``--repeat`` rounds in which the contenders alternate:

* ``read_capture QUIC`` — :func:`~gbp_lab.capture.model.read_capture` of the QUIC capture with
  the key log (QUIC decryption, STREAM reassembly, records, GBP decryption, tables);
* ``read_capture TCP`` — the same frames from the TCP capture;
* ``observer alone`` — the core's :class:`~gbp_lab.core.quic.observer.QuicObserver` over the
  capture's UDP payloads (packet reading, header and payload protection, frames, reassembly;
  no records);
* ``raw loop (aioquic)`` — the least a passive QUIC reader must do (:func:`raw_loop`): pcapng
  blocks → UDP payload → aioquic's own ``CryptoContext`` (set up once per direction from the key
  log's 1-RTT secrets, found by trial) → STREAM frames, in order by offset → ``u32`` record split; handshake
  packets are skipped, no checks, no GBP decryption.

Printed ratios: ``read_capture`` QUIC vs TCP (frames/s), and the observer vs the aioquic raw loop
(both stop at the stream bytes), in wall and CPU time.
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import ssl
import struct
import sys
import tempfile
import time

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from gbp_lab.capture.model import read_capture
from gbp_lab.capture.pcapfile import CaptureReader
from gbp_lab.capture.packets import decode_packet
from gbp_lab.core.gbp.aead import seal_frame
from gbp_lab.core.gbp.framing import encode_record
from gbp_lab.core.gtp.message import GtpMessage
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.payload_codec import encode
from gbp_lab.core.quic.observer import QuicObserver
from gbp_lab.sim.quic import TlsSecretsLog, make_certificate, server_configuration
from gbp_lab.sim.tap import Tap, write_pcap, write_udp_pcapng

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from capture_bench import _timed  # noqa: E402

GID = bytes(range(16))
SECRET = bytes(range(32))
RELAY = ("10.1.0.1", 7878)


def frames_for(n: int, members: int, seed: int = 1):
    """(member, record) pairs: sealed GTP text frames, round robin over the members."""
    rnd = random.Random(seed)
    seqs = [0] * members
    out = []
    for i in range(n):
        k = i % members
        seqs[k] += 1
        msg = encode(GtpMessage.plain(k + 1, i, "x" * rnd.randrange(10, 400)))
        out.append((k, seal_frame(SECRET, GID, 1, 0, 2, 101 + 100 * k, 7, seqs[k], msg).to_cbor()))
    return out


class _Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def build_quic(path: str, records, members: int) -> str:
    """Write the QUIC capture; returns the TLS key-log text."""
    clock = _Clock()
    tap = Tap(clock=clock)
    tls = TlsSecretsLog()
    server_cfg = server_configuration(make_certificate(), secrets_log=tls)
    pairs = []
    for k in range(members):
        addr = (f"10.0.0.{k + 1}", 40001 + k)
        ccfg = QuicConfiguration(is_client=True, alpn_protocols=None, secrets_log_file=tls,
                                 server_name="localhost")
        ccfg.verify_mode = ssl.CERT_NONE
        client = QuicConnection(configuration=ccfg)
        client.connect(RELAY, now=clock.t)
        first: list = []
        pairs.append([client, None, addr, first])
    def pump(k: int) -> None:
        client, server, addr, _first = pairs[k]
        moved = True
        while moved:
            moved = False
            for data, _a in client.datagrams_to_send(now=clock.t):
                tap.datagram(addr, RELAY, data, from_client=True)
                if server is None:
                    server = pairs[k][1] = QuicConnection(
                        configuration=server_cfg,
                        original_destination_connection_id=_dcid(data))
                server.receive_datagram(data, addr, now=clock.t)
                moved = True
            if server is not None:
                for data, _a in server.datagrams_to_send(now=clock.t):
                    tap.datagram(RELAY, addr, data, from_client=False)
                    client.receive_datagram(data, RELAY, now=clock.t)
                    moved = True
            clock.t += 0.0002
    for k in range(members):
        pump(k)
    for k, rec in records:
        client = pairs[k][0]
        client.send_stream_data(0, encode_record(rec))
        pump(k)
        while client.next_event() is not None:
            pass
        server = pairs[k][1]
        while server.next_event() is not None:
            pass
    for k in range(members):
        pairs[k][0].send_stream_data(0, b"", end_stream=True)
        pump(k)
    write_udp_pcapng(tap, path)
    return tls.text()


def _dcid(datagram: bytes) -> bytes:
    n = datagram[5]
    return datagram[6:6 + n]


def build_tcp(path: str, records, members: int) -> None:
    clock = _Clock()
    tap = Tap(clock=clock)
    for k in range(members):
        tap.open(k, (f"10.0.0.{k + 1}", 40001 + k), RELAY)
    for k, rec in records:
        clock.t += 0.0004
        tap.data(k, True, encode_record(rec))
    for k in range(members):
        tap.close(k, by_client=True)
    write_pcap(tap, path)


def udp_payloads(path: str):
    """(path tuple, UDP payload) of every packet (outside the timed loops' own reading)."""
    out = []
    reader = CaptureReader(path)
    try:
        for p in reader:
            d = decode_packet(p.linktype, p.data)
            out.append(((d.src, d.sport, d.dst, d.dport), d.payload))
    finally:
        reader.close()
    return out


def observer_alone(path: str, keys: KeyLog) -> int:
    """The core observer over the capture: packets read and decoded, datagrams opened,
    STREAM bytes put in order. Returns the stream bytes delivered."""
    obs = QuicObserver(keys.tls_secrets)
    total = 0
    reader = CaptureReader(path)
    try:
        for p in reader:
            d = decode_packet(p.linktype, p.data)
            for e in obs.datagram(d.payload, (d.src, d.sport, d.dst, d.dport)):
                if e.kind == "data":
                    total += len(e.data)
    finally:
        reader.close()
    for e in obs.finish():
        if e.kind == "data":
            total += len(e.data)
    return total


def raw_loop(path: str, tls_text: str) -> int:
    """The minimal passive QUIC reader on aioquic's crypto (see the module docstring): returns
    the number of records split out of the streams."""
    from aioquic.buffer import Buffer
    from aioquic.quic.crypto import CryptoContext
    from aioquic.tls import CipherSuite

    secrets = {}
    for line in tls_text.splitlines():
        label, rnd, sec = line.split()
        secrets.setdefault(rnd, {})[label] = bytes.fromhex(sec)
    with open(path, "rb") as f:
        data = f.read()
    u32 = struct.Struct("<I")
    # pcapng: the first EPBs carry the Initials; connection ids → keys found by trial on the
    # first short-header packet of each path (what a raw reader knows: the secrets, nothing else)
    ctx = {}  # (src port, dst port) → (CryptoContext, dcid length, {stream: [next, pending, buf]})
    candidates = [(r, lab) for r in secrets
                  for lab in ("CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0")]
    records = 0
    pos = 0
    n = len(data)
    while pos + 12 <= n:
        btype, blen = struct.unpack_from("<II", data, pos)
        if btype == 6:
            caplen = u32.unpack_from(data, pos + 20)[0]
            pkt = data[pos + 28:pos + 28 + caplen]
            udp = pkt[42:]
            if udp and not udp[0] & 0x80:  # 1-RTT, either direction
                sport, dport = struct.unpack_from("!HH", pkt, 34)
                if True:
                    st = ctx.get((sport, dport))
                    if st is None:
                        for rnd, lab in candidates:
                            c = CryptoContext()
                            c.setup(cipher_suite=CipherSuite.AES_128_GCM_SHA256
                                    if len(secrets[rnd][lab]) == 32
                                    else CipherSuite.AES_256_GCM_SHA384,
                                    secret=secrets[rnd][lab], version=1)
                            try:
                                c.decrypt_packet(udp, 1 + 8, 0)
                            except Exception:  # noqa: BLE001 - not this connection's key
                                continue
                            st = ctx[(sport, dport)] = [c, 0, {}]
                            candidates.remove((rnd, lab))
                            break
                    if st is not None:
                        c = st[0]
                        _h, payload, pn, _u = c.decrypt_packet(udp, 1 + 8, st[1])
                        st[1] = max(st[1], pn)
                        buf = Buffer(data=payload)
                        while not buf.eof():
                            ft = buf.pull_uint_var()
                            if 0x08 <= ft <= 0x0F:
                                sid = buf.pull_uint_var()
                                off = buf.pull_uint_var() if ft & 4 else 0
                                ln = buf.pull_uint_var() if ft & 2 else buf.capacity - buf.tell()
                                chunk = buf.pull_bytes(ln)
                                s = st[2].setdefault(sid, [0, {}, bytearray()])
                                s[1][off] = chunk
                                while s[0] in s[1]:
                                    piece = s[1].pop(s[0])
                                    s[0] += len(piece)
                                    s[2] += piece
                                b = s[2]
                                o = 0
                                while len(b) - o >= 4:
                                    ln = u32.unpack_from(b, o)[0]
                                    if len(b) - o - 4 < ln:
                                        break
                                    o += 4 + ln
                                    records += 1
                                if o:
                                    del b[:o]
                            elif ft == 0x02 or ft == 0x03:  # ACK
                                buf.pull_uint_var()
                                buf.pull_uint_var()
                                rc = buf.pull_uint_var()
                                buf.pull_uint_var()
                                for _ in range(rc):
                                    buf.pull_uint_var()
                                    buf.pull_uint_var()
                                if ft == 0x03:
                                    for _ in range(3):
                                        buf.pull_uint_var()
                            elif ft in (0x00, 0x01, 0x1E):  # PADDING, PING, HANDSHAKE_DONE
                                pass
                            else:
                                break  # anything else ends this packet's walk (none in the run)
        pos += blen
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=50_000,
                    help="frames in each capture (default 50,000)")
    ap.add_argument("--members", type=int, default=8, help="connections (default 8)")
    ap.add_argument("--repeat", type=int, default=2, help="best of N rounds")
    ap.add_argument("--profile", action="store_true",
                    help="instead: cProfile of read_capture on the QUIC capture (top 25)")
    args = ap.parse_args()
    records = frames_for(args.frames, args.members)
    with tempfile.TemporaryDirectory() as tmp:
        qpath, tpath = os.path.join(tmp, "quic.pcapng"), os.path.join(tmp, "tcp.pcap")
        t0 = time.perf_counter()
        tls_text = build_quic(qpath, records, args.members)
        build_tcp(tpath, records, args.members)
        keylog = f"MLS_EXPORTER_SECRET {GID.hex()} 1 {SECRET.hex()}\n" + tls_text
        keys = KeyLog.parse(keylog)
        n_udp = len(udp_payloads(qpath))
        print(f"{args.frames} frames on {args.members} connections: QUIC {n_udp} datagrams "
              f"{os.path.getsize(qpath) / 1e6:.1f} MB, TCP {os.path.getsize(tpath) / 1e6:.1f} MB "
              f"(built in {time.perf_counter() - t0:.0f} s)", flush=True)
        if args.profile:
            import cProfile
            import pstats

            cProfile.runctx("read_capture(qpath, keylog=keylog, progress=False)", globals(),
                            {"qpath": qpath, "keylog": keylog}, os.path.join(tmp, "prof"))
            pstats.Stats(os.path.join(tmp, "prof")).sort_stats("tottime").print_stats(25)
            return
        best = {}
        for _ in range(args.repeat):
            for label, fn, check in (
                    ("read_capture QUIC", lambda: read_capture(qpath, keylog=keylog, progress=False),
                     lambda c: len(c.frames) == args.frames and c.frames["decrypted"].all()
                     and len(c.errors) == 0),
                    ("read_capture TCP", lambda: read_capture(tpath, keylog=keylog, progress=False),
                     lambda c: len(c.frames) == args.frames and c.frames["decrypted"].all()),
                    ("observer alone", lambda: observer_alone(qpath, keys), lambda b: b > 0),
                    ("raw loop (aioquic)", lambda: raw_loop(qpath, tls_text),
                     lambda r: r == args.frames)):
                gc.collect()
                res = _timed(label, fn, args.frames, "frames")
                assert check(res), label
                del res
                w, c = best.get(label, (float("inf"), float("inf")))
                best[label] = (min(w, _timed.last), min(c, _timed.last_cpu))
        q, t = best["read_capture QUIC"], best["read_capture TCP"]
        o, r = best["observer alone"], best["raw loop (aioquic)"]
        print(f"read_capture QUIC / TCP speed:        {t[0] / q[0]:6.2f}x   (CPU {t[1] / q[1]:.2f}x)")
        print(f"read_capture QUIC / raw loop speed:   {r[0] / q[0]:6.2f}x   (CPU {r[1] / q[1]:.2f}x)")
        print(f"observer alone / raw loop speed:      {r[0] / o[0]:6.2f}x   (CPU {r[1] / o[1]:.2f}x; "
              f"both stop at the stream bytes)")


if __name__ == "__main__":
    main()
