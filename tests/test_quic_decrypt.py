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
