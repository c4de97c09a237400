"""GBP over QUIC against a plain aioquic peer, both ways (issue 17, "interop in process"): a stock
aioquic client with no ALPN talks to our relay, and our member client talks to a stock aioquic
server, exchanging GBP frames made by the gbp-stack wheel — the reference's QUIC layout (one
bidirectional stream, ``u32 LE length ‖ bytes`` records, no ALPN, certificate not verified)."""
from __future__ import annotations

import asyncio
import pathlib
import ssl
import sys
import threading

from aioquic.asyncio import connect, serve
from aioquic.quic.configuration import QuicConfiguration

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # pytest runs with importlib mode
import refpeer  # noqa: E402

from gbp_lab.core.gbp.framing import RecordReader, encode_record  # noqa: E402
from gbp_lab.sim.quic import QUIC_VERSION, QuicRelay, QuicRelayClient, make_certificate  # noqa: E402
from gbp_lab.sim.relay import RelayThread  # noqa: E402

MLS_BLOB = b"\x00\x01\x00\x05opaque"  # MLS-shaped: the relay forwards it and serves the member
WAIT = 20.0  # an upper bound for waits, never asserted as a duration


def _wheel_frames():
    with refpeer.two_member_group() as grp:
        return [rf.wire for rf in refpeer.reference_frames(grp)]


async def _read_records(reader: asyncio.StreamReader, n: int):
    """The next ``n`` records of a QUIC stream, split by the one record splitter."""
    rr, out = RecordReader(), []
    while len(out) < n:
        data = await asyncio.wait_for(reader.read(65536), WAIT)
        assert data, "stream ended early"
        out += [bytes(r) for r in rr.feed(data)]
    return out


def test_stock_aioquic_clients_exchange_wheel_frames_through_our_relay():
    frames = _wheel_frames()
    cfg = QuicConfiguration(is_client=True, alpn_protocols=None, supported_versions=[QUIC_VERSION])
    cfg.verify_mode = ssl.CERT_NONE  # as the reference's client without a CA

    async def run(port: int):
        async with connect("127.0.0.1", port, configuration=cfg) as a, \
                connect("127.0.0.1", port, configuration=cfg) as b:
            ra, wa = await a.create_stream()
            rb, wb = await b.create_stream()
            wa.write(encode_record(MLS_BLOB))  # a stream exists once its first byte arrives
            wb.write(encode_record(MLS_BLOB + b"b"))
            assert await _read_records(ra, 1) == [MLS_BLOB + b"b"]
            assert await _read_records(rb, 1) == [MLS_BLOB]
            for w in frames:
                wa.write(encode_record(w))
            got = await _read_records(rb, len(frames))
            return a._quic.tls.alpn_negotiated, got

    with RelayThread("127.0.0.1", 0, relay_class=QuicRelay, trace=True) as relay:
        alpn, got = asyncio.run(run(relay.port))
        assert alpn is None and got == frames  # byte for byte, in order
        assert [e.member for e in relay.events if e.kind == "member"] == [1]  # learnt from the frames


class _EchoServer:
    """A stock aioquic server (no ALPN, one certificate) on its own loop: every byte a client
    sends on a stream comes back on that stream."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.streams = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        cfg = QuicConfiguration(is_client=False, alpn_protocols=None,
                                supported_versions=[QUIC_VERSION])
        cfg.certificate, cfg.private_key = make_certificate()

        def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.streams += 1

            async def echo() -> None:
                while data := await reader.read(65536):
                    writer.write(data)
            self.loop.create_task(echo())

        async def start() -> None:
            server = await serve("127.0.0.1", 0, configuration=cfg, stream_handler=on_stream)
            self.server = server
            self.port = server._transport.get_extra_info("sockname")[1]
            self._ready.set()
        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def __enter__(self) -> "_EchoServer":
        self._thread.start()
        assert self._ready.wait(WAIT)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT)


def test_our_member_client_exchanges_wheel_frames_with_a_stock_aioquic_server():
    frames = _wheel_frames()
    with _EchoServer() as server, QuicRelayClient("127.0.0.1", server.port) as c:
        assert c.alpn is None and c.stream_id == 0
        for w in frames:
            c.send(w)
            assert c.recv(WAIT).data == w  # the record came back whole, byte for byte
        assert server.streams == 1  # one bidirectional stream per member, as the reference
