"""The DS relay (gbp_lab.sim.relay): forwarding rules of gbp-mls-binding.md §5 over the TCP framing
of gbp_rfc.md §3, fault isolation, DS order, load, and the optional DS extension codec."""
from __future__ import annotations

import pathlib
import socket
import struct
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # pytest runs with importlib mode
import refpeer  # noqa: E402

from gbp_lab.core.errors import GbpLabError, ProtocolError, UsageError  # noqa: E402
from gbp_lab.core.gbp.frame import GbpFrame, decode_frame  # noqa: E402
from gbp_lab.core.gbp.framing import RecordReader, encode_record  # noqa: E402
from gbp_lab.sim import (  # noqa: E402
    Deliver,
    DsExtensionError,
    Hello,
    MemberLeft,
    RecordKind,
    Relay,
    RelayClient,
    RelayClosedError,
    RelayThread,
    RelayTimeout,
    Route,
    classify_record,
    decode_ds_message,
    pump,
)
from gbp_lab.sim.relay import DS_MAGIC  # noqa: E402

GID = bytes(range(16))
WAIT = 20.0  # generous upper bound for waits (never asserted as a duration)


def frame(member: int, seq: int, payload: bytes = b"\x00" * 24, st_: int = 2) -> bytes:
    """A well-formed GBP frame (stream id by the reference scheme: base + member * 100)."""
    return GbpFrame.build(GID, 1, 0, st_, member * 100 + st_ - 1 if st_ in (1, 2) else member * 100 + st_,
                          7, seq, payload).to_cbor()


def prefixed(record: bytes) -> bytes:
    return struct.pack("<I", len(record)) + record


class PlainPeer:
    """A reference-style client: a bare socket, ``u32-LE length ‖ bytes`` both ways."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.reader = RecordReader()
        self.got: list = []

    def send(self, record: bytes) -> None:
        self.sock.sendall(prefixed(record))

    def recv(self, n: int) -> list:
        while len(self.got) < n:
            chunk = self.sock.recv(65536)
            assert chunk, "relay closed a healthy connection"
            self.got.extend(self.reader.feed(chunk))
        out, self.got = self.got[:n], self.got[n:]
        assert all(isinstance(r, bytes) for r in out)
        return out

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------------------------
# (1) plain reference clients, reference bytes, reference receivers
# --------------------------------------------------------------------------------------------
@pytest.mark.interop
def test_three_reference_members_plain_sockets():
    import gbp_stack as g

    flow = refpeer.transition_flow()  # alice, bob, carol: one live group, all ACTIVE
    grp = flow.group
    names = ["alice", "bob", "carol"]
    for n in names:
        grp.nodes[n].drain_events()  # start clean (epoch_advanced of the transition)
    try:
        with RelayThread(port=0, idle_timeout=None) as relay:
            peers = {n: PlainPeer(relay.port) for n in names}
            relay.wait_for(lambda e: e.kind == "join", WAIT, count=3)
            gtp, gsp, gap = g.GtpClient.create(), g.GspClient.create(), g.GapClient.create()
            sent = {}  # sender -> list of (wire, stream type)
            try:
                for n in names:
                    node, mls = grp.nodes[n], grp.mls[n]
                    sent[n] = [
                        (gtp.send(node, mls, 0, message_id=1, text=f"hi from {n}").wire, 2),
                        (gsp.send(node, mls, 0, g.SignalType.JOIN, role_claim=1, request_id=9).wire, 3),
                        (gap.send(node, mls, 0, media_source_id=5, rtp_timestamp=0, opus=b"\xfc" * 30).wire, 1),
                        (gtp.send(node, mls, 0, message_id=2, text=f"bye from {n}",
                                  codec=g.PayloadCodec.PROTOBUF).wire, 2),
                    ]
            finally:
                gtp.close(); gsp.close(); gap.close()
            for n in names:
                for wire, _ in sent[n]:
                    peers[n].send(wire)
            for n in names:
                others = [m for m in names if m != n]
                expected = sum(len(sent[m]) for m in others)
                got = peers[n].recv(expected)
                # exactly once: every other member's frames, none of our own, no duplicates
                assert sorted(got) == sorted(w for m in others for w, _ in sent[m])
                # per-sender order preserved
                for m in others:
                    assert [r for r in got if r in {w for w, _ in sent[m]}] == [w for w, _ in sent[m]]
                for r in got:
                    evs = grp.nodes[n].on_wire(grp.mls[n], r)
                    assert not [e for e in evs if e.kind == "error"], evs
                    assert [e.kind for e in evs] == ["payload_received"]
            # the relay learned who is who from the frames' stream ids
            assert relay.members.keys() == {1, 2, 3}
            for p in peers.values():
                p.close()
            relay.wait_for(lambda e: e.kind == "leave", WAIT, count=3)
            assert relay.stats["drops"] == 0
    finally:
        grp.close()


@pytest.mark.interop
def test_keypackage_and_welcome_blobs_route_to_joiner():
    """CLI-demo style blobs: the joiner's KeyPackage is broadcast by a plain client; the Welcome
    goes to the joiner only (ROUTE), and the joiner can use it."""
    from gbp_stack import MlsContext

    alice, carol = MlsContext.create("alice"), MlsContext.create("carol")
    try:
        with RelayThread(port=0, idle_timeout=None) as relay, \
                RelayClient(port=relay.port) as ca, RelayClient(port=relay.port) as cb, \
                RelayClient(port=relay.port) as cc:
            ca.hello(1)
            cc.hello(3)
            relay.wait_for(lambda e: e.kind == "member", WAIT, count=2)
            kp = carol.export_key_package()
            assert classify_record(kp) == (RecordKind.MLS, None)
            cc.send(kp)  # plain broadcast
            assert ca.recv().data == kp and cb.recv().data == kp
            commit, welcome = alice.invite_full(kp)
            assert classify_record(welcome)[0] is RecordKind.MLS
            assert classify_record(commit)[0] is RecordKind.MLS
            ca.send_to(3, welcome)
            marker = frame(1, 1)
            ca.send(marker)  # broadcast after the Welcome: DS order puts it behind
            assert cc.recv().data == welcome
            assert cc.recv().data == marker
            assert cb.recv().data == marker  # bob never saw the Welcome
            alice.finalize_commit()
            carol.accept_welcome(welcome)
            assert carol.epoch == alice.epoch and carol.group_id == alice.group_id
    finally:
        alice.close(); carol.close()


# --------------------------------------------------------------------------------------------
# (2) faults cost only the faulty connection
# --------------------------------------------------------------------------------------------
def _healthy_pair(relay):
    a, b = RelayClient(port=relay.port), RelayClient(port=relay.port)
    return a, b


def _still_works(a: RelayClient, b: RelayClient, seq: int) -> None:
    f = frame(1, seq)
    a.send(f)
    assert b.recv(WAIT).data == f


@pytest.mark.parametrize("bad,vid", [
    (prefixed(b"\xff" * 40), "DS-GARBAGE"),  # a record that is neither a frame nor an MLS blob
    (prefixed(b"\xa1\x61v\x01"), "DS-GARBAGE"),  # a CBOR map that is not a GbpFrame
    (struct.pack("<I", (1 << 20) + 1) + b"x" * 100, "GBP-RECORD-OVERSIZE"),
    (b"\xff\xff\xff\xff", "GBP-RECORD-OVERSIZE"),
    (prefixed(DS_MAGIC + b"\x01\x00"), "DS-BAD-EXT-HELLO"),
    (prefixed(DS_MAGIC + b"\x09"), "DS-BAD-EXT-TYPE"),
    (prefixed(Deliver(1, 2, b"").to_bytes()), "DS-BAD-EXT-DIR"),
    (prefixed(Route(0, Hello(3).to_bytes()).to_bytes()), "DS-BAD-EXT-NESTED"),
    (prefixed(Route(0, b"junk").to_bytes()), "DS-GARBAGE"),
], ids=["ff-garbage", "cbor-not-frame", "oversize", "oversize-prefix-only", "bad-hello", "bad-type",
        "deliver-from-client", "nested", "routed-garbage"])
def test_bad_client_loses_only_its_connection(bad, vid):
    with RelayThread(port=0, idle_timeout=None) as relay:
        a, b = _healthy_pair(relay)
        x = RelayClient(port=relay.port)
        try:
            relay.wait_for(lambda e: e.kind == "join", WAIT, count=3)
            _still_works(a, b, 1)
            assert x.recv(WAIT).data == frame(1, 1)  # x is a normal member so far
            x.send_raw(bad)
            assert x.wait_closed(WAIT)
            with pytest.raises(RelayClosedError):
                x.recv(1)
            drops = relay.wait_for(lambda e: e.kind == "drop", WAIT)
            assert [d.vid for d in drops] == [vid]
            assert drops[0].reason and drops[0].conn == 3
            leave = relay.wait_for(lambda e: e.kind == "leave", WAIT)[0]
            assert leave.conn == 3 and vid in leave.reason
            _still_works(a, b, 2)
            _still_works(b, a, 3)
            assert relay.stats["drops"] == 1 and relay.relay.connections == 2
        finally:
            a.close(); b.close(); x.close()


def test_idle_client_dropped_others_carry_on():
    with RelayThread(port=0, idle_timeout=4.0) as relay:
        a, b = _healthy_pair(relay)
        x = RelayClient(port=relay.port)  # connects, never sends anything
        try:
            relay.wait_for(lambda e: e.kind == "join", WAIT, count=3)
            # a and b keep talking (each record resets their idle clock) until x is gone
            seq = 0
            give_up = time.monotonic() + 4.0 + WAIT  # a safety bound, not a timing assertion
            while not [e for e in relay.events if e.kind == "drop"]:
                seq += 1
                _still_works(a, b, seq)
                b.hello(2)  # a listen-only member keeps itself alive with HELLO
                time.sleep(0.02)
                assert time.monotonic() < give_up, "the idle client was never dropped"
            drop = relay.wait_for(lambda e: e.kind == "drop", WAIT)[0]
            assert drop.vid == "DS-IDLE" and drop.conn == 3
            assert x.wait_closed(WAIT)
            _still_works(a, b, seq + 1)
        finally:
            a.close(); b.close(); x.close()


def test_slowloris_record_is_cut_off_idle_timer_or_not():
    """A client trickling one record byte by byte keeps the idle timer alive (fuzz/FINDINGS.md R1);
    ``record_timeout`` bounds the time one record may take. Good members, whose records arrive
    whole, are never affected however slowly they talk."""
    with RelayThread(port=0, idle_timeout=4.0, record_timeout=1.0) as relay:
        a, b = _healthy_pair(relay)
        slow = socket.socket()
        slow.connect(("127.0.0.1", relay.port))
        record = encode_record(b"\xa0" * 200)  # a 200-byte body, sent one byte per 0.05 s
        try:
            relay.wait_for(lambda e: e.kind == "join", WAIT, count=3)
            seq, sent = 0, 0
            give_up = time.monotonic() + 1.0 + WAIT  # a safety bound, not a timing assertion
            while not [e for e in relay.events if e.kind == "drop"]:
                try:
                    slow.send(record[sent:sent + 1])
                except OSError:
                    break
                sent += 1
                seq += 1
                _still_works(a, b, seq)  # slow, whole records: never a partial one pending
                b.hello(2)
                time.sleep(0.05)
                assert sent < len(record) and time.monotonic() < give_up, "the slowloris was never cut off"
            drop = relay.wait_for(lambda e: e.kind == "drop", WAIT)[0]
            assert drop.vid == "DS-SLOW-RECORD" and drop.conn == 3
            assert "bytes of one record" in drop.reason
            assert not [e for e in relay.events if e.kind == "drop" and e.conn in (1, 2)]
            _still_works(a, b, seq + 1)
        finally:
            a.close(); b.close(); slow.close()


def test_record_timeout_must_be_positive():
    from gbp_lab.core.errors import UsageError
    from gbp_lab.sim.relay import Relay

    with pytest.raises(UsageError):
        Relay(record_timeout=0)


def test_slow_reader_is_disconnected_not_backpressured():
    with RelayThread(port=0, idle_timeout=None, max_queue=32, write_buffer_high=1 << 16) as relay:
        a, b = _healthy_pair(relay)
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", relay.port))  # never reads
        try:
            relay.wait_for(lambda e: e.kind == "join", WAIT, count=3)
            # 40 rounds of 10 x 60 kB = 24 MB: far more than loopback socket buffers plus the
            # relay's queue can hold for the slow reader; b keeps up (it lags at most one round,
            # 10 records < max_queue), so only the slow reader is cut off.
            per, rounds = 10, 40
            for r in range(rounds):
                for i in range(per):
                    a.queue(frame(1, r * per + i + 1, b"\x55" * 60_000))
                want = (r + 1) * per
                assert pump([a, b], until=lambda: not a.outbuf and len(b.inbox) >= want, timeout=WAIT)
            n = per * rounds
            assert [decode_frame(d.data).sequence_no for d in b.inbox] == list(range(1, n + 1))
            drops = relay.wait_for(lambda e: e.kind == "drop", WAIT)
            assert [(d.vid, d.conn) for d in drops] == [("DS-SLOW-READER", 3)]
            b.inbox.clear()
            _still_works(a, b, n + 1)
        finally:
            a.close(); b.close(); slow.close()


# --------------------------------------------------------------------------------------------
# forwarding rules and DS order
# --------------------------------------------------------------------------------------------
def test_ds_order_stamped_and_plain_receivers_agree():
    with RelayThread(port=0, idle_timeout=None, trace=True) as relay:
        senders = [RelayClient(port=relay.port) for _ in range(3)]
        stamped, plain = RelayClient(port=relay.port), RelayClient(port=relay.port)
        try:
            stamped.hello(90, stamped=True)
            relay.wait_for(lambda e: e.kind == "member", WAIT)
            per = 60
            for i, s in enumerate(senders):
                for q in range(per):
                    s.queue(frame(i + 1, q + 1))
            total = per * len(senders)
            everyone = senders + [stamped, plain]
            assert pump(everyone, until=lambda: len(stamped.inbox) >= total and len(plain.inbox) >= total,
                        timeout=60)
            st_ = list(stamped.inbox)
            pl = list(plain.inbox)
            assert [d.data for d in st_] == [d.data for d in pl]  # one total order for everyone
            seqs = [d.ds_seq for d in st_]
            assert seqs == sorted(seqs) and len(set(seqs)) == total
            assert all(d.ds_seq is None for d in pl)  # plain clients get the bytes unchanged
            for d in st_:
                assert d.from_member == decode_frame(d.data).sender
            # the log's record events give the same order
            recs = [e for e in relay.events if e.kind == "record"]
            assert [e.ds_seq for e in recs] == seqs
            # each sender received the other senders' frames, in the same relative order
            for i, s in enumerate(senders):
                mine = [d.data for d in st_ if decode_frame(d.data).sender != i + 1]
                assert pump([s], until=lambda: len(s.inbox) >= len(mine), timeout=WAIT)
                assert [d.data for d in s.inbox] == mine
        finally:
            for c in senders + [stamped, plain]:
                c.close()


def test_unicast_route_and_unroutable():
    with RelayThread(port=0, idle_timeout=None) as relay:
        a, b, c = (RelayClient(port=relay.port) for _ in range(3))
        try:
            b.hello(2)
            c.hello(3)
            relay.wait_for(lambda e: e.kind == "member", WAIT, count=2)
            f1, f2, f3 = frame(1, 1), frame(1, 2), frame(1, 3)
            a.send_to(3, f1)  # only c
            a.send_to(42, f2)  # nobody: logged, dropped, connection kept
            a.send_to(0, f3)  # broadcast
            assert c.recv(WAIT).data == f1
            assert c.recv(WAIT).data == f3
            assert b.recv(WAIT).data == f3  # b never got f1 nor f2 (DS order)
            un = relay.wait_for(lambda e: e.kind == "unroutable", WAIT)[0]
            assert un.vid == "DS-UNROUTABLE" and "42" in un.detail
            assert relay.stats["drops"] == 0 and relay.relay.connections == 3
        finally:
            a.close(); b.close(); c.close()


def test_member_left_notice():
    """gbp-mls-binding.md §5 item 3: closures are noticed and reported (to HELLO notify clients)."""
    with RelayThread(port=0, idle_timeout=None) as relay:
        coord, m = RelayClient(port=relay.port), RelayClient(port=relay.port)
        try:
            coord.hello(1, notify=True)
            relay.wait_for(lambda e: e.kind == "member", WAIT)
            m.send(frame(4, 1))  # plain member 4, learned from its frame
            assert coord.recv(WAIT).data == frame(4, 1)
            m.close()
            note = coord.recv_notice(WAIT)
            assert isinstance(note, MemberLeft) and note.member_id == 4 and "closed" in note.reason
            leave = relay.wait_for(lambda e: e.kind == "leave", WAIT)[0]
            assert leave.member == 4 and leave.reason == note.reason
            with pytest.raises(RelayTimeout):
                coord.recv(0.05)
        finally:
            coord.close()


# --------------------------------------------------------------------------------------------
# (3) load: 50 members x 200 messages, loopback, bounded in time and count
# --------------------------------------------------------------------------------------------
def test_load_50_members_200_messages_exactly_once():
    members, per = 50, 200
    with RelayThread(port=0, idle_timeout=None, max_queue=100_000) as relay:
        clients = [RelayClient(port=relay.port) for _ in range(members)]
        try:
            relay.wait_for(lambda e: e.kind == "join", WAIT, count=members)
            for i, c in enumerate(clients):
                for q in range(per):
                    c.queue(frame(i + 1, q + 1, b""))
            want = (members - 1) * per
            assert pump(clients, until=lambda: all(len(c.inbox) >= want for c in clients), timeout=120)
            every = {(m + 1, q + 1) for m in range(members) for q in range(per)}
            decoded: dict = {}  # the same bytes reach 49 receivers: decode each record once
            for i, c in enumerate(clients):
                got = [decoded.get(d.data) or decoded.setdefault(d.data, decode_frame(d.data))
                       for d in c.inbox]
                keys = [(f.sender, f.sequence_no) for f in got]
                assert len(keys) == want and len(set(keys)) == want  # no duplicates
                assert set(keys) == every - {(i + 1, q + 1) for q in range(per)}
            s = relay.stats
            assert s["records_in"] == members * per and s["deliveries"] == members * want
            assert s["drops"] == 0
            assert relay.members.keys() == set(range(1, members + 1))
        finally:
            for c in clients:
                c.close()


# --------------------------------------------------------------------------------------------
# DS extension codec, record classification, CLI
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("msg", [Hello(1), Hello(0xFFFFFFFF, 3), Route(0, b""), Route(7, b"\x00\x01\x00\x03ab"),
                                 Deliver(0, 0, b""), Deliver(2**64 - 1, 5, b"x" * 10),
                                 MemberLeft(3, 9, "closed by peer ✓")])
def test_ds_message_roundtrip(msg):
    wire = msg.to_bytes()
    assert wire[:4] == DS_MAGIC and wire[4] == {Hello: 1, Route: 2, Deliver: 3, MemberLeft: 4}[type(msg)]
    assert decode_ds_message(wire) == msg
    assert decode_ds_message(wire).to_bytes() == wire


def test_ds_message_errors():
    with pytest.raises(DsExtensionError) as ei:
        decode_ds_message(DS_MAGIC + b"\x01" + struct.pack("<IB", 0, 0))
    assert ei.value.vid == "DS-BAD-EXT-MEMBER"
    with pytest.raises(DsExtensionError):
        decode_ds_message(DS_MAGIC + b"\x04" + b"\x00" * 12 + b"\xff")
    with pytest.raises(DsExtensionError):
        decode_ds_message(b"GBD")
    with pytest.raises(UsageError):
        Hello(-1).to_bytes()
    with pytest.raises(UsageError):
        Relay(max_queue=0)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.integers(0, 6))
def test_ds_decoder_fuzz(tail, t):
    for data in (tail, DS_MAGIC + tail, DS_MAGIC + bytes((t,)) + tail):
        try:
            msg = decode_ds_message(data)
        except DsExtensionError as err:
            assert isinstance(err, ProtocolError) and err.vid.startswith("DS-BAD-EXT")
            continue
        assert msg.to_bytes() == data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_classify_never_raises(data):
    kind, sender = classify_record(data)
    assert kind in RecordKind
    if kind is RecordKind.FRAME:
        assert sender == decode_frame(data).sender


@pytest.mark.interop
def test_classify_reference_bytes():
    with refpeer.two_member_group() as grp:
        for rf in refpeer.reference_frames(grp):
            assert classify_record(rf.wire) == (RecordKind.FRAME, 1)


def test_cli_relay_subcommand(tmp_path):
    from gbp_lab import cli

    parser = cli.build_parser()
    args = parser.parse_args(["relay", "--port", "0", "--duration", "0.2", "--pcap", str(tmp_path / "r.pcap"),
                              "--idle-timeout", "0"])
    assert args.port == 0 and args.host == "127.0.0.1" and args.idle_timeout == 0
    assert args._run(args) == 0
    data = (tmp_path / "r.pcap").read_bytes()
    assert data[:4] == struct.pack("<I", 0xA1B2C3D4)  # an empty but valid capture


def test_relay_thread_bind_error():
    with RelayThread(port=0, idle_timeout=None) as relay:
        with pytest.raises(OSError):
            RelayThread(port=relay.port).start()
    assert isinstance(RelayTimeout("x"), TimeoutError) and isinstance(RelayTimeout("x"), GbpLabError)


def test_relay_asyncio_serve():
    """The asyncio API underneath RelayThread: ``await relay.start()``, ``await relay.serve()``."""
    import asyncio

    async def main():
        relay = Relay("127.0.0.1", 0, trace=True)
        await relay.start()
        task = asyncio.ensure_future(relay.serve())
        r1, w1 = await asyncio.open_connection("127.0.0.1", relay.port)
        r2, w2 = await asyncio.open_connection("127.0.0.1", relay.port)
        while relay.connections < 2:
            await asyncio.sleep(0.01)
        f = frame(5, 1)
        w1.write(prefixed(f))
        got = await asyncio.wait_for(r2.readexactly(4 + len(f)), WAIT)
        relay.stop()
        await asyncio.wait_for(task, WAIT)
        assert await asyncio.wait_for(r1.read(), WAIT) == b""  # closed by the relay
        w1.close(); w2.close()
        return got, relay

    got, relay = asyncio.run(main())
    assert got == prefixed(frame(5, 1))
    kinds = [e.kind for e in relay.events]
    assert kinds[0] == "listen" and kinds[-1] == "stop" and kinds.count("leave") == 2
    assert [e.ds_seq for e in relay.events if e.kind == "record"] == [1]
    assert all(e.reason == "relay shutdown" for e in relay.events if e.kind == "leave")


class FakeTransport:
    """Enough of an asyncio transport to drive the relay's data path without sockets."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = bytearray()
        self.closed = self.aborted = False

    def get_extra_info(self, name):
        return ("127.0.0.1", self.port) if name == "peername" else ("127.0.0.1", 7878)

    def set_write_buffer_limits(self, high=None):
        pass

    def write(self, data):
        self.sent += data

    def close(self):
        self.closed = True

    def abort(self):
        self.aborted = True


def _fake_relay():
    import asyncio

    from gbp_lab.sim.relay import _Conn

    relay = Relay("127.0.0.1", 0)
    relay._loop = asyncio.new_event_loop()  # only its clock is used
    conns = []
    for port in (1001, 1002, 1003):
        c = _Conn(relay)
        c.connection_made(FakeTransport(port))
        conns.append(c)
    return relay, conns


_records = st.one_of(
    st.builds(lambda m, q, p: frame(m, q, p), st.integers(1, 5), st.integers(0, 2**32 - 1),
              st.binary(max_size=30)),
    st.binary(max_size=20).map(lambda b: b"\x00\x01\x00\x03" + b),  # MLS Welcome-like blob
    st.binary(max_size=20),  # most likely garbage
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_records, max_size=6), st.integers(1, 64), st.booleans())
def test_relay_data_path_fuzz(records, chunk, tail_garbage):
    """Any byte stream from one client: the relay never raises; it either forwards the records
    (identical bytes, in order, to both other clients) or drops the sender with a logged vid."""
    relay, (c1, c2, c3) = _fake_relay()
    stream = b"".join(prefixed(r) for r in records) + (b"\xff\xff\xff\xff" if tail_garbage else b"")
    for i in range(0, len(stream), chunk):
        c1.data_received(stream[i:i + chunk])
    ok = []
    for r in records:
        if classify_record(r)[0] in (RecordKind.GARBAGE, RecordKind.DS):
            break
        ok.append(r)
    dropped = [e for e in relay.events if e.kind == "drop"]
    assert c2.transport.sent == c3.transport.sent == b"".join(prefixed(r) for r in ok)
    assert c1.transport.sent == b""
    if len(ok) < len(records) or tail_garbage:
        assert len(dropped) == 1 and dropped[0].conn == c1.id and dropped[0].vid
        assert c1.transport.closed and not (c2.transport.closed or c3.transport.closed)
    else:
        assert not dropped


def test_connections_beyond_max_connections_are_refused():
    """A flood of idle sockets cannot exhaust the relay (fuzz/FINDINGS.md, R2): the connection over
    ``max_connections`` is refused at once (``DS-TOO-MANY-CONNS``); the members already connected
    carry on, and a slot freed by a leaving connection is usable again."""
    with RelayThread(port=0, max_connections=3) as relay:
        a, b = _healthy_pair(relay)
        idle = socket.socket()
        idle.connect(("127.0.0.1", relay.port))
        extra = socket.socket()
        extra.connect(("127.0.0.1", relay.port))
        try:
            drop = relay.wait_for(lambda e: e.kind == "drop", WAIT)[0]
            assert drop.vid == "DS-TOO-MANY-CONNS" and drop.conn == 4
            assert "more than 3 connections" in drop.reason
            extra.settimeout(WAIT)
            assert extra.recv(1) == b""  # closed by the relay, nothing sent
            assert relay.relay.stats["refused"] == 1
            _still_works(a, b, 1)
            idle.close()
            relay.wait_for(lambda e: e.kind == "leave" and e.conn == 3, WAIT)
            again = socket.socket()
            again.connect(("127.0.0.1", relay.port))
            relay.wait_for(lambda e: e.kind == "join" and e.conn == 5, WAIT)
            _still_works(a, b, 2)
            assert [e.conn for e in relay.events if e.kind == "drop"] == [4]
            again.close()
        finally:
            a.close(); b.close(); idle.close(); extra.close()


def test_max_connections_must_be_positive():
    from gbp_lab.core.errors import UsageError
    from gbp_lab.sim.relay import Relay

    with pytest.raises(UsageError):
        Relay(max_connections=0)
