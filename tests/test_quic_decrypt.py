"""Passive QUIC decryption (core/quic): RFC 9001 Appendix A vectors, the frame walker, the offset
reassembler, and the observer on a real aioquic connection (key update, reordering, duplicates,
truncation, wrong keys, a cleared fixed bit)."""
from __future__ import annotations

import pytest

from gbp_lab.core.errors import DecodeError, DecryptError, GbpLabError
from gbp_lab.core.quic.observer import (KEYS_MISSING_VID, OffsetReassembler, QuicObserver,
                                        client_hello_random, server_hello_suite)
from gbp_lab.core.quic.packets import (QuicDecodeError, decode_packet_number, encode_varint,
                                       parse_frames, parse_long_header, read_varint, unprotect)
from gbp_lab.core.quic.protection import (AES_128_GCM_SHA256, CHACHA20_POLY1305_SHA256,
                                          PacketKeys, hkdf_expand_label, initial_secrets)

H = bytes.fromhex
# RFC 9001 Appendix A.1-A.3, A.5
DCID = H("8394c8f03e515708")
CLIENT_PAYLOAD = H(
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
    "75300901100f088394c8f03e51570806048000ffff") + bytes(917)
CLIENT_PROTECTED = H(
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
    "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399"
    "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
    "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212"
    "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5"
    "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
    "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec"
    "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3"
    "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
    "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c"
    "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
    "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
    "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74"
    "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a"
    "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
    "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632"
    "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964"
    "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
    "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff"
    "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198"
    "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
    "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
    "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f"
    "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
    "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade"
    "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047"
    "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
    "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4"
    "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0"
    "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
    "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0"
    "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400"
    "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9"
    "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4"
    "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
    "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241"
    "e221af44860018ab0856972e194cd934")
SERVER_PAYLOAD = H(
    "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739"
    "88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94"
    "0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00"
    "020304")
SERVER_PROTECTED = H(
    "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a"
    "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3"
    "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84"
    "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4"
    "2158407dd074ee")
CHACHA_SECRET = H("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b")
CHACHA_PROTECTED = H("4cfe4189655e5cd55c41f69080575d7999c25a5bfb")


def test_rfc9001_a1_keys():
    c, s = initial_secrets(DCID)
    assert c == H("c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea")
    assert s == H("3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b")
    k = PacketKeys(c)
    assert (k.key, k.iv, k.hp) == (H("1f369613dd76d5467730efcbe3b1a22d"),
                                   H("fa044b2f42a3fd3b46fb255c"),
                                   H("9f50449e04a0e810283a1e9933adedd2"))
    k = PacketKeys(s)
    assert (k.key, k.iv, k.hp) == (H("cf3a5331653c364c88f0f379b6067e37"),
                                   H("0ac1493ca1905853b0bba03e"),
                                   H("c206b8d9b9f0f37644430b490eeaa314"))


@pytest.mark.parametrize("packet,payload,secret_i,pn,header", [
    (CLIENT_PROTECTED, CLIENT_PAYLOAD, 0, 2, "c300000001088394c8f03e5157080000449e00000002"),
    (SERVER_PROTECTED, SERVER_PAYLOAD, 1, 1, "c1000000010008f067a5502a4262b50040750001")])
def test_rfc9001_a2_a3_initial_packets(packet, payload, secret_i, pn, header):
    h = parse_long_header(packet)
    assert h.end == len(packet)
    keys = PacketKeys(initial_secrets(DCID)[secret_i])
    u = unprotect(packet, 0, h.pn_offset, h.end, keys, -1)
    assert (u.packet_number, u.header.hex()) == (pn, header)
    assert keys.open(u.packet_number, u.header, u.ciphertext) == payload
    with pytest.raises(DecryptError) as err:  # one bit off: the tag fails, typed
        keys.open(u.packet_number, u.header, u.ciphertext[:-1] + b"\x00")
    assert err.value.vid == "QUIC-DECRYPT"


def test_rfc9001_a5_chacha20_short_header_and_key_update():
    k = PacketKeys(CHACHA_SECRET, CHACHA20_POLY1305_SHA256)
    assert (k.key, k.iv, k.hp) == (
        H("c6d98ff3441c3fe1b2182094f69caa2ed4b716b65488960a7a984979fb23e1c8"),
        H("e0459b3474bdd0e44a41c144"),
        H("25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4"))
    u = unprotect(CHACHA_PROTECTED, 0, 1, len(CHACHA_PROTECTED), k, 654360563)
    assert (u.packet_number, u.header.hex()) == (654360564, "4200bff4")
    assert k.open(u.packet_number, u.header, u.ciphertext) == b"\x01"
    assert k.next_generation().secret == H(
        "1223504755036d556342ee9361d253421a826c9ecdf3c7148684b36b714881f9")
    assert k.next_generation().hp == k.hp


def test_observer_reads_the_rfc_handshake_start():
    """The A.2 client Initial then the A.3 server Initial: the connection, the ClientHello random
    and the suite the ServerHello chose; no TLS secrets needed for Initial packets."""
    obs = QuicObserver()
    path = ("10.0.0.1", 5000, "10.0.0.2", 443)
    assert obs.is_quic_start(CLIENT_PROTECTED) and obs.datagram(CLIENT_PROTECTED, path) == []
    assert obs.datagram(SERVER_PROTECTED, path[2:] + path[:2]) == []
    conn, = obs.connections
    assert conn.client_random == H("ebf8fa56f12939b9584a3896472ec40bb863cfd3e86804fe3a47f06a2b69484c")
    assert conn.suite is AES_128_GCM_SHA256 and obs.opened == 2
    assert obs.known(SERVER_PROTECTED, path[2:] + path[:2])
    assert client_hello_random(b"\x02" + bytes(40)) is None and server_hello_suite(b"\x01") is None


def test_varints_packet_numbers_and_frames():
    for v in (0, 63, 64, 16383, 16384, 2**30 - 1, 2**30, 2**62 - 1):
        assert read_varint(encode_varint(v), 0) == (v, len(encode_varint(v)))
    assert read_varint(H("c2197c5eff14e88c"), 0)[0] == 151288809941952652  # RFC 9000 A.1
    assert decode_packet_number(0x9b32, 16, 0xa82f30ea) == 0xa82f9b32  # RFC 9000 A.3
    with pytest.raises(QuicDecodeError) as err:
        read_varint(H("c2197c"), 0)
    assert err.value.vid == "QUIC-TRUNCATED" and isinstance(err.value, DecodeError)
    payload = (b"\x00\x00\x00\x01" + b"\x02" + encode_varint(7) + b"\x00\x01\x00\x00\x00"
               + b"\x0f" + encode_varint(4) + encode_varint(100) + encode_varint(3) + b"abc"
               + b"\x18\x01\x00\x08" + b"C" * 8 + b"T" * 16 + b"\x1c\x0a\x08\x02hi"
               + b"\x1e" + b"\x08\x00xyz")
    names = [(f.name, f.stream_id, f.offset, f.data, f.fin) for f in parse_frames(payload)]
    assert names == [("PADDING", None, 0, b"", False), ("PING", None, 0, b"", False),
                     ("ACK", None, 0, b"", False), ("STREAM", 4, 100, b"abc", True),
                     ("NEW_CONNECTION_ID", None, 0, b"C" * 8, False),
                     ("CONNECTION_CLOSE", None, 0, b"hi", False),
                     ("HANDSHAKE_DONE", None, 0, b"", False), ("STREAM", 0, 0, b"xyz", False)]
    for bad, vid in ((b"\x21", "QUIC-FRAME-TYPE"), (b"\x0a\x00\x05ab", "QUIC-TRUNCATED"),
                     (b"\x18\x01\x00\x15" + bytes(40), "QUIC-CID-LENGTH")):
        with pytest.raises(QuicDecodeError) as err:
            parse_frames(bad)
        assert err.value.vid == vid


def test_offset_reassembler_orders_dedups_and_reports_gaps():
    r = OffsetReassembler()
    assert r.push(5, b"fghij") == []
    assert r.push(0, b"abcde") == [("data", 0, b"abcde"), ("data", 5, b"fghij")]
    assert r.push(3, b"defgh") == [] and r.duplicate_bytes == 5
    assert r.push(8, b"ijklm") == [("data", 10, b"klm")]
    assert r.push(20, b"uv") == []
    r.fin = 25
    assert r.flush() == [("gap", 13, 20), ("data", 20, b"uv"), ("gap", 22, 25)]
    small = OffsetReassembler(max_held=4)
    assert small.push(10, b"abc") == [] and small.push(20, b"xyz") == [("gap", 0, 10),
                                                                       ("data", 10, b"abc")]


# ------------------------------------------------------------------------------------------------
# a real aioquic connection, in memory (no sockets): every datagram both ways, with the TLS secrets
# ------------------------------------------------------------------------------------------------
CLIENT = ("127.0.0.1", 40000)
SERVER = ("127.0.0.1", 7878)


class Pair:
    """An aioquic client and server exchanging datagrams in memory; ``wire`` keeps them in order
    as ``(from_client, bytes)``; ``sent[(from_client, stream)]`` what each side wrote."""

    def __init__(self, suite=None, secrets=True):
        from aioquic.quic.connection import QuicConnection

        from gbp_lab.sim.quic import (TlsSecretsLog, client_configuration, make_certificate,
                                      server_configuration)
        self.log = TlsSecretsLog()
        sl = self.log if secrets else None
        ccfg = client_configuration(None, secrets_log=sl)
        if suite is not None:
            ccfg.cipher_suites = [suite]
        self.client = QuicConnection(configuration=ccfg)
        self.server = QuicConnection(configuration=server_configuration(make_certificate(),
                                                                        secrets_log=sl),
                                     original_destination_connection_id=
                                     self.client.original_destination_connection_id)
        self.now = 0.0
        self.wire = []
        self.sent = {}
        self.client.connect(SERVER, now=self.now)
        self.pump()

    def pump(self):
        for _ in range(20):
            moved = False
            for fc, a, b, addr in ((True, self.client, self.server, CLIENT),
                                   (False, self.server, self.client, SERVER)):
                for data, _ in a.datagrams_to_send(now=self.now):
                    self.wire.append((fc, data))
                    b.receive_datagram(data, addr, now=self.now)
                    moved = True
            self.now += 0.01
            if not moved:
                break

    def send(self, from_client, stream, data, fin=False):
        (self.client if from_client else self.server).send_stream_data(stream, data, fin)
        self.sent[(from_client, stream)] = self.sent.get((from_client, stream), b"") + data
        self.pump()

    def keylog(self):
        from gbp_lab.core.keylog import KeyLog
        return KeyLog.parse(self.log.text())


def path_of(fc):
    return CLIENT + SERVER if fc else SERVER + CLIENT


def observe(wire, secrets):
    obs = QuicObserver(secrets)
    events = []
    for fc, data in wire:
        events += obs.datagram(data, path_of(fc))
    events += obs.finish()
    return obs, events


def streams_of(events):
    got = {}
    for e in events:
        if e.kind == "data":
            cur = got.setdefault((e.from_client, e.stream_id), b"")
            assert e.offset == len(cur)
            got[(e.from_client, e.stream_id)] = cur + e.data
    return got


def chatter(pair, n=30, update_at=15):
    for i in range(n):
        pair.send(True, 0, b"c%03d" % i * 50)
        pair.send(False, 1, b"s%03d" % i * 20)
        if i == update_at:
            pair.client.request_key_update()
            pair.server.request_key_update()


@pytest.fixture(scope="module")
def pair():
    p = Pair()
    chatter(p)
    p.send(True, 0, b"end", fin=True)
    return p


def test_aioquic_connection_with_key_update_is_read_whole(pair):
    obs, events = observe(pair.wire, pair.keylog().tls_secrets)
    assert [e for e in events if e.kind in ("error", "gap")] == []
    assert streams_of(events) == pair.sent
    conn, = obs.connections
    gens = {fc: conn.dirs[fc].keys[4].generation for fc in (True, False)}
    assert gens == {True: 1, False: 1}  # the key update was followed both ways
    assert obs.opened == obs.packets > len(pair.wire) // 2  # every packet opened
    ends = [e for e in events if e.kind == "end"]
    assert [(e.from_client, e.stream_id, e.message) for e in ends][0] == (True, 0, "FIN")


@pytest.mark.parametrize("suite", ["AES_256_GCM_SHA384", "CHACHA20_POLY1305_SHA256"])
def test_other_cipher_suites(suite):
    from aioquic.tls import CipherSuite as AioSuite
    p = Pair(getattr(AioSuite, suite))
    p.send(True, 0, b"hello" * 100)
    p.send(False, 1, b"world" * 100)
    obs, events = observe(p.wire, p.keylog().tls_secrets)
    assert streams_of(events) == p.sent and obs.connections[0].suite.name == "TLS_" + suite


def test_reordered_and_duplicated_datagrams(pair):
    import random
    rng = random.Random(7)
    hs = 6  # the handshake stays in order; 1-RTT datagrams are shuffled in windows and repeated
    wire = list(pair.wire[:hs])
    rest = list(pair.wire[hs:])
    for i in range(0, len(rest), 6):
        win = rest[i:i + 6]
        rng.shuffle(win)
        wire += win + win[:2]
    obs, events = observe(wire, pair.keylog().tls_secrets)
    assert [e for e in events if e.kind in ("error", "gap")] == []
    assert streams_of(events) == pair.sent


def test_without_tls_secrets_one_error_per_connection(pair):
    obs, events = observe(pair.wire, None)
    errs = [e for e in events if e.kind == "error"]
    assert [e.vid for e in errs] == [KEYS_MISSING_VID]
    assert "QUIC 1-RTT keys missing" in errs[0].message
    assert streams_of(events) == {}
    obs2, events2 = observe(pair.wire, lambda cr: {})  # a key log without this connection
    assert [e.vid for e in events2 if e.kind == "error"] == [KEYS_MISSING_VID]


def test_wrong_keys_are_typed_errors_per_packet(pair):
    bad = {k: bytes(48) for k in ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                                  "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0")}
    obs, events = observe(pair.wire, lambda cr: bad)
    errs = [e for e in events if e.kind == "error"]
    assert errs and {e.vid for e in errs} == {"QUIC-DECRYPT"}
    assert streams_of(events) == {}
    short = {k: v[:32] for k, v in bad.items()}  # no suite has 32-byte secrets with SHA-384
    _, events = observe(pair.wire, lambda cr: short)
    errs = [e for e in events if e.kind == "error"]
    assert [e.vid for e in errs] == ["QUIC-SECRET-LENGTH"] * 4  # once per direction and space


def test_truncated_datagrams_cost_only_their_bytes(pair):
    wire = list(pair.wire)
    cut = [i for i, (fc, d) in enumerate(wire) if fc and i > 10][3]
    wire[cut] = (True, wire[cut][1][:30])
    wire.insert(cut, (True, wire[cut][1][:5]))  # a second, shorter cut
    obs, events = observe(wire, pair.keylog().tls_secrets)
    errs = [e for e in events if e.kind == "error"]
    assert len(errs) == 2 and {e.vid for e in errs} <= {"QUIC-TRUNCATED", "QUIC-DECRYPT"}
    gaps = [e for e in events if e.kind == "gap"]
    got = streams_of_with_gaps(events)
    assert got[(False, 1)] == pair.sent[(False, 1)]  # the other direction: whole
    whole = pair.sent[(True, 0)]
    assert len(gaps) == 1 and gaps[0].from_client
    g = gaps[0]
    assert got[(True, 0)] == whole[:g.offset] + whole[g.end:]


def streams_of_with_gaps(events):
    got = {}
    for e in events:
        if e.kind == "data":
            got[(e.from_client, e.stream_id)] = got.get((e.from_client, e.stream_id), b"") + e.data
    return got


def reprotect(keys, header: bytearray, pn_len: int, payload: bytes) -> bytes:
    """Seal a short-header packet (the sender's side of RFC 9001 §5.3-§5.4)."""
    pn = int.from_bytes(header[-pn_len:], "big")
    ct = keys.seal(pn, bytes(header), payload)
    pn_off = len(header) - pn_len
    mask = keys.mask(ct[4 - pn_len:4 - pn_len + 16])
    out = bytearray(header) + ct
    out[0] ^= mask[0] & 0x1F
    for i in range(pn_len):
        out[pn_off + i] ^= mask[1 + i]
    return bytes(out)


def test_fixed_bit_cleared_is_read_and_tampering_is_caught(pair):
    """quinn greases the fixed bit (RFC 9287): a packet sealed with it cleared opens; a packet
    whose fixed bit was flipped after sealing fails its tag (typed error), the rest is kept."""
    secrets = pair.keylog().tls_secrets
    obs, _ = observe(pair.wire, secrets)
    conn = obs.connections[0]
    k0 = PacketKeys(secrets(conn.client_random)["SERVER_TRAFFIC_SECRET_0"], conn.suite)
    # the server's first short-header packet that carries stream bytes, under generation 0
    obs = QuicObserver(secrets)
    for i, (fc, d) in enumerate(pair.wire):
        if not fc and not d[0] & 0x80:
            n = 8  # aioquic's connection id length
            u = unprotect(d, 0, 1 + n, len(d), k0, -1)
            pt = k0.open(u.packet_number, u.header, u.ciphertext)
            if any(f.name == "STREAM" for f in parse_frames(pt)):
                break
    hdr = bytearray(u.header)
    hdr[0] &= ~0x40
    greased = reprotect(k0, hdr, (u.first & 3) + 1, pt)
    flipped = bytes([d[0] ^ 0x40]) + d[1:]
    for variant, ok in ((greased, True), (flipped, False)):
        wire = pair.wire[:i] + [(False, variant)] + pair.wire[i + 1:]
        _, events = observe(wire, secrets)
        errs = [e.vid for e in events if e.kind == "error"]
        if ok:
            assert errs == [] and streams_of(events) == pair.sent
        else:
            assert errs == ["QUIC-DECRYPT"]
            assert streams_of_with_gaps(events)[(True, 0)] == pair.sent[(True, 0)]


def test_garbage_never_raises(pair):
    import random
    rng = random.Random(3)
    obs = QuicObserver(pair.keylog().tls_secrets)
    for fc, d in pair.wire[:8]:
        obs.datagram(d, path_of(fc))
    samples = [d for _, d in pair.wire]
    for _ in range(300):
        d = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 4)):
            d[rng.randrange(len(d))] = rng.randrange(256)
        d = bytes(d[:rng.randint(0, len(d))])
        for e in obs.datagram(d, path_of(rng.random() < 0.5)):
            assert e.kind != "error" or (e.vid or "").startswith("QUIC-")
    obs.finish()
    with pytest.raises(GbpLabError):
        PacketKeys(b"short")


def test_connection_close_ends_every_stream():
    """CONNECTION_CLOSE (RFC 9000 §10.2) ends the connection's open streams right away; a record
    cut by it is reported by the splitter, not held to the end of the capture."""
    p = Pair()
    p.send(True, 0, b"abc" * 10)
    p.send(False, 1, b"xyz" * 10)
    p.client.close(error_code=7, reason_phrase="bye")
    p.pump()
    obs = QuicObserver(p.keylog().tls_secrets)
    ends = []
    for fc, d in p.wire:
        ends += [e for e in obs.datagram(d, path_of(fc)) if e.kind == "end"]
    assert {(e.from_client, e.stream_id) for e in ends} == {(True, 0), (False, 1)}
    assert all("CONNECTION_CLOSE error 7" == e.message for e in ends)
    assert obs.finish() == [] and obs.connections[0].closed
