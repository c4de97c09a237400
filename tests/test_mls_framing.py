"""MLS framing (RFC 9420 §6): PublicMessage / PrivateMessage / MLSMessage codecs, protection and
hostile input; interop with the gbp-stack 1.9.1 wheel (openmls 0.8) for the key schedule,
transcript hashes and PrivateMessage in both directions.

Reference bytes come from the official vectors (messages.json, message-protection.json, vendored)
and from the wheel; nothing here is compared against our own earlier output."""
import gzip
import json
import os
import struct
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gbp_lab.core.errors import (CryptoError, DecodeError, GbpLabError, ProtocolError, ReplayError,
                                 StateError, TrailingBytesError, TruncatedError, UsageError)
from gbp_lab.core.mls.framing import (AuthenticatedContent, ContentDecryptError, FramedContent,
                                      FramedContentAuthData, FramingSignatureError, MLSMessage,
                                      MembershipTagError, PrivateMessage, PublicMessage, Sender,
                                      SenderData, SenderDataDecryptError, WrongEpochError,
                                      WrongGroupError, create_private_message, create_public_message,
                                      decrypt_sender_data, framed_content_tbs, sender_data_key_nonce,
                                      unprotect, unprotect_and_verify, unprotect_public_message)
from gbp_lab.core.mls.registries import ContentType, SenderType, WireFormat
from gbp_lab.core.mls.schedule import GroupContext, key_schedule_from_joiner, verify_confirmation_tag
from gbp_lab.core.mls.secret_tree import GenerationReusedError, SecretTree
from gbp_lab.core.mls.suites import CipherSuite
from gbp_lab.core.mls.transcript import TranscriptHashes
from gbp_lab.core.tls import Reader, Writer

VEC = os.path.join(os.path.dirname(__file__), "vectors", "mls")
H = bytes.fromhex


def load(name):
    with gzip.open(os.path.join(VEC, name + ".json.gz"), "rt") as fh:
        return json.load(fh)


MSGS = load("messages")
MP = load("message-protection")
MSG_KEYS = ("public_message_application", "public_message_proposal", "public_message_commit",
            "private_message")


# --- codecs against messages.json ------------------------------------------------------------

def test_messages_vector_round_trips_every_public_and_private_message():
    kinds = {k: 0 for k in MSG_KEYS}
    for case in MSGS:
        for key in MSG_KEYS:
            data = H(case[key])
            m = MLSMessage.from_bytes(data)
            assert m.to_bytes() == data
            want = WireFormat.MLS_PRIVATE_MESSAGE if key == "private_message" else WireFormat.MLS_PUBLIC_MESSAGE
            assert m.wire_format == want
            if key != "private_message":
                ctype = {"application": ContentType.APPLICATION, "proposal": ContentType.PROPOSAL,
                         "commit": ContentType.COMMIT}[key.rsplit("_", 1)[1]]
                assert m.message.content.content_type == ctype
                assert (m.message.auth.confirmation_tag is not None) == (ctype == ContentType.COMMIT)
                assert (m.message.membership_tag is not None) == (
                    m.message.content.sender.sender_type == SenderType.MEMBER)
            kinds[key] += 1
    assert kinds == {k: len(MSGS) for k in MSG_KEYS}


def test_messages_vector_body_is_the_raw_proposal_or_commit():
    # the body of a proposal/commit PublicMessage is a Proposal/Commit; messages.json lists
    # standalone ones too: the standalone commit bytes parse through the same body reader
    from gbp_lab.core.mls.framing import default_read_body
    for case in MSGS[:50]:
        for key, ctype in (("commit", ContentType.COMMIT), ("remove_proposal", ContentType.PROPOSAL),
                           ("add_proposal", ContentType.PROPOSAL), ("update_proposal", ContentType.PROPOSAL),
                           ("pre_shared_key_proposal", ContentType.PROPOSAL),
                           ("re_init_proposal", ContentType.PROPOSAL),
                           ("external_init_proposal", ContentType.PROPOSAL)):
            data = H(case[key])
            if key != "commit":
                # standalone proposal bodies lack the proposal_type; prefix it
                ptype = {"add_proposal": 1, "update_proposal": 2, "remove_proposal": 3,
                         "pre_shared_key_proposal": 4, "re_init_proposal": 5,
                         "external_init_proposal": 6}[key]
                data = ptype.to_bytes(2, "big") + data
            r = Reader(data)
            assert default_read_body(r, ctype) == data
            r.done()


@pytest.mark.parametrize("key", MSG_KEYS)
def test_truncated_and_trailing_messages_are_typed(key):
    data = H(MSGS[0][key])
    for cut in range(0, len(data), max(1, len(data) // 97)):
        with pytest.raises(DecodeError):
            MLSMessage.from_bytes(data[:cut])
    with pytest.raises(TrailingBytesError):
        MLSMessage.from_bytes(data + b"\x00")


@pytest.mark.parametrize("patch, vid", [
    (lambda d: b"\x00\x00" + d[2:], "MLS-ENUM-RESERVED"),          # version reserved
    (lambda d: d[:2] + b"\x00\x00" + d[4:], "MLS-ENUM-RESERVED"),  # wire_format 0
    (lambda d: d[:2] + b"\x00\x09" + d[4:], "MLS-ENUM"),           # wire_format 9
])
def test_bad_header_fields(patch, vid):
    data = H(MSGS[0]["public_message_proposal"])
    with pytest.raises(DecodeError) as ei:
        MLSMessage.from_bytes(patch(data))
    assert ei.value.vid == vid


def _public_bytes(sender_type_byte, content_type_byte):
    w = Writer().u16(1).u16(1).vec(b"g").u64(0).u8(sender_type_byte).u32(0).vec(b"").u8(content_type_byte)
    return w.vec(b"x").vec(b"sig").vec(b"tag").getvalue()


@pytest.mark.parametrize("sender, ctype", [(0, 1), (5, 1), (1, 0), (1, 4)])
def test_bad_sender_and_content_types(sender, ctype):
    assert MLSMessage.from_bytes(_public_bytes(1, 1)).message.content.body == b"x"
    with pytest.raises(DecodeError):
        MLSMessage.from_bytes(_public_bytes(sender, ctype))


def test_unknown_proposal_type_cannot_be_framed():
    w = Writer().u16(1).u16(1).vec(b"g").u64(0).u8(1).u32(0).vec(b"").u8(2).u16(0x0A0A)
    with pytest.raises(DecodeError) as ei:
        MLSMessage.from_bytes(w.vec(b"sig").vec(b"tag").getvalue())
    assert ei.value.vid == "MLS-ENUM"      # an unknown proposal type has no known length


@given(st.binary(max_size=200))
@settings(max_examples=200, deadline=None)
def test_fuzz_random_bytes_only_decode_errors(data):
    try:
        m = MLSMessage.from_bytes(data)
    except GbpLabError as exc:
        assert isinstance(exc, DecodeError)
    else:
        assert m.to_bytes() == data


@given(st.sampled_from(range(40)), st.sampled_from(MSG_KEYS), st.data())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_mutated_messages_decode_or_fail_typed(case_index, key, data):
    raw = bytearray(H(MSGS[case_index][key]))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    try:
        m = MLSMessage.from_bytes(bytes(raw))
    except GbpLabError as exc:
        assert isinstance(exc, DecodeError)
    else:
        assert m.to_bytes() == bytes(raw)


# --- protection against message-protection.json ----------------------------------------------

def _gc(case):
    return GroupContext(case["cipher_suite"], H(case["group_id"]), case["epoch"], H(case["tree_hash"]),
                        H(case["confirmed_transcript_hash"]))


def _cs(case):
    return CipherSuite.get(case["cipher_suite"])


def _tree(case):
    return SecretTree(case["cipher_suite"], H(case["encryption_secret"]), 2)


def _pub(case, key):
    return MLSMessage.from_bytes(H(case[key])).message


def _priv(case, key):
    return MLSMessage.from_bytes(H(case[key])).message


CASES = pytest.mark.parametrize("case", MP, ids=lambda c: f"suite{c['cipher_suite']}")


@CASES
def test_public_message_vector_verifies_and_tampering_is_caught(case):
    cs, gc, mk, pub = _cs(case), _gc(case), H(case["membership_key"]), H(case["signature_pub"])
    msg = _pub(case, "commit_pub")
    ac = unprotect_public_message(cs, msg, pub, gc, membership_key=mk)
    assert ac.content.body == H(case["commit"])
    # membership tag flipped
    bad_tag = replace(msg, membership_tag=bytes([msg.membership_tag[0] ^ 1]) + msg.membership_tag[1:])
    with pytest.raises(MembershipTagError) as ei:
        unprotect_public_message(cs, bad_tag, pub, gc, membership_key=mk)
    assert isinstance(ei.value, CryptoError) and ei.value.vid == "MLS-MEMBERSHIP-TAG"
    # wrong membership key
    with pytest.raises(MembershipTagError):
        unprotect_public_message(cs, msg, pub, gc, membership_key=bytes(len(mk)))
    # authenticated data changed: tag no longer matches
    bad_ad = replace(msg, content=replace(msg.content, authenticated_data=b"x"))
    with pytest.raises(MembershipTagError):
        unprotect_public_message(cs, bad_ad, pub, gc, membership_key=mk)
    # a different confirmed transcript hash in the GroupContext breaks the tag as well
    with pytest.raises(MembershipTagError):
        unprotect_public_message(cs, msg, pub, replace(gc, confirmed_transcript_hash=b"\x00"),
                                 membership_key=mk)
    # wrong group / epoch
    with pytest.raises(WrongEpochError) as ei:
        unprotect_public_message(cs, msg, pub, replace(gc, epoch=gc.epoch + 1), membership_key=mk)
    assert isinstance(ei.value, StateError)
    with pytest.raises(WrongGroupError):
        unprotect_public_message(cs, msg, pub, replace(gc, group_id=b"other"), membership_key=mk)


@CASES
def test_public_message_bad_signature(case):
    cs, gc, mk = _cs(case), _gc(case), H(case["membership_key"])
    priv = H(case["signature_priv"]).rjust(cs.signature_private_key_length, b"\x00")
    msg = _pub(case, "proposal_pub")
    other_priv, other_pub = cs.generate_signature_key_pair()
    with pytest.raises(FramingSignatureError) as ei:
        unprotect_public_message(cs, msg, other_pub, gc, membership_key=mk)
    assert ei.value.vid == "MLS-CONTENT-SIGNATURE"
    # re-signed by somebody else but correctly tagged: membership ok, signature not
    forged = create_public_message(cs, msg.content, other_priv, gc, membership_key=mk)
    with pytest.raises(FramingSignatureError):
        unprotect_public_message(cs, forged, H(case["signature_pub"]), gc, membership_key=mk)
    ok = create_public_message(cs, msg.content, priv, gc, membership_key=mk)
    assert unprotect_public_message(cs, ok, H(case["signature_pub"]), gc, membership_key=mk).content == msg.content


def test_application_data_is_never_a_public_message():
    case = MP[0]
    cs, gc, mk = _cs(case), _gc(case), H(case["membership_key"])
    content = FramedContent(gc.group_id, gc.epoch, Sender.member(1), b"", ContentType.APPLICATION, b"hi")
    with pytest.raises(UsageError):
        create_public_message(cs, content, H(case["signature_priv"]), gc, membership_key=mk)
    # a peer's PublicMessage carrying application data (messages.json has such bytes)
    msg = MLSMessage.from_bytes(H(MSGS[0]["public_message_application"])).message
    with pytest.raises(DecodeError) as ei:
        unprotect_public_message(cs, msg, b"", None, membership_key=mk)
    assert ei.value.vid == "MLS-PUBLIC-APPLICATION"


@CASES
def test_private_message_vector_tampering_replay_and_epoch(case):
    cs, gc, sds, pub = _cs(case), _gc(case), H(case["sender_data_secret"]), H(case["signature_pub"])
    msg = _priv(case, "application_priv")
    # wrong epoch / group are refused before any key is consumed
    tree = _tree(case)
    with pytest.raises(WrongEpochError):
        unprotect(cs, msg, tree, sds, group_context=replace(gc, epoch=gc.epoch - 1))
    with pytest.raises(WrongGroupError):
        unprotect(cs, msg, tree, sds, group_context=replace(gc, group_id=b"x"))
    # sender data: flipping the encrypted sender data, or the ciphertext sample that keys it
    bad_esd = replace(msg, encrypted_sender_data=bytes([msg.encrypted_sender_data[0] ^ 1]) + msg.encrypted_sender_data[1:])
    with pytest.raises(SenderDataDecryptError) as ei:
        unprotect(cs, bad_esd, tree, sds)
    assert ei.value.vid == "MLS-SENDER-DATA-DECRYPT" and isinstance(ei.value, CryptoError)
    bad_sample = replace(msg, ciphertext=bytes([msg.ciphertext[0] ^ 1]) + msg.ciphertext[1:])
    with pytest.raises(SenderDataDecryptError):
        unprotect(cs, bad_sample, tree, sds)
    # content: the last byte (AEAD tag) flipped keeps the sample, breaks the content AEAD
    bad_ct = replace(msg, ciphertext=msg.ciphertext[:-1] + bytes([msg.ciphertext[-1] ^ 1]))
    with pytest.raises(ContentDecryptError) as ei:
        unprotect(cs, bad_ct, tree, sds)
    assert ei.value.vid == "MLS-CONTENT-DECRYPT"
    # changed authenticated data (in the AAD)
    with pytest.raises(ContentDecryptError):
        unprotect(cs, replace(msg, authenticated_data=b"x"), tree, sds)
    # ... the forged copies did not burn the genuine message's key
    ac = unprotect_and_verify(cs, msg, tree, sds, gc, lambda leaf: pub)
    assert ac.content.body == H(case["application"]) and ac.content.sender == Sender.member(1)
    # replay of the genuine message
    with pytest.raises(GenerationReusedError) as ei:
        unprotect(cs, msg, tree, sds)
    assert isinstance(ei.value, ReplayError)


@CASES
def test_private_message_signature_checked_with_the_senders_key(case):
    cs, gc, sds = _cs(case), _gc(case), H(case["sender_data_secret"])
    _, other_pub = cs.generate_signature_key_pair()
    with pytest.raises(FramingSignatureError):
        unprotect_and_verify(cs, _priv(case, "commit_priv"), _tree(case), sds, gc, lambda leaf: other_pub)


def test_sender_data_reveals_leaf_generation_and_guard():
    case = MP[0]
    cs, sds = _cs(case), H(case["sender_data_secret"])
    sd = decrypt_sender_data(cs, _priv(case, "proposal_priv"), sds)
    assert sd.leaf_index == 1 and len(sd.reuse_guard) == 4
    with pytest.raises(DecodeError):
        SenderData.from_bytes(sd.to_bytes() + b"\x00")


def _encrypt_raw(cs, case, plaintext, *, leaf=1, content_type=ContentType.APPLICATION,
                 tree=None, sender_data=None):
    """Build a PrivateMessage around an arbitrary plaintext (to test the receiver's parsing)."""
    tree = tree or _tree(case)
    from gbp_lab.core.mls.secret_tree import RatchetType
    kind = RatchetType.APPLICATION if content_type == ContentType.APPLICATION else RatchetType.HANDSHAKE
    key = tree.next_sending_key(leaf, kind)
    shell = PrivateMessage(H(case["group_id"]), case["epoch"], content_type, b"", b"", b"")
    ct = cs.aead_encrypt(key.key.reveal(), key.nonce.reveal(), shell.content_aad(), plaintext)
    sdk, sdn = sender_data_key_nonce(cs, H(case["sender_data_secret"]), ct)
    sd = sender_data if sender_data is not None else SenderData(leaf, key.generation, b"\x00" * 4).to_bytes()
    esd = cs.aead_encrypt(sdk.reveal(), sdn.reveal(), shell.sender_data_aad(), sd)
    return replace(shell, encrypted_sender_data=esd, ciphertext=ct)


@pytest.mark.parametrize("plaintext, err, vid", [
    (b"\x02hi\x03sig\x00\x00\x01", DecodeError, "MLS-PADDING"),       # non-zero padding
    (b"\x02hi\x03si", TruncatedError, "TLS-TRUNCATED"),               # auth data cut
    (b"\x05hi", TruncatedError, "TLS-TRUNCATED"),                     # body length beyond
])
def test_private_content_parsing_is_strict(plaintext, err, vid):
    case = MP[0]
    cs = _cs(case)
    msg = _encrypt_raw(cs, case, plaintext)
    with pytest.raises(err) as ei:
        unprotect(cs, msg, _tree(case), H(case["sender_data_secret"]))
    assert ei.value.vid == vid


def test_private_content_zero_padding_is_accepted():
    case = MP[0]
    cs = _cs(case)
    msg = _encrypt_raw(cs, case, b"\x02hi\x03sig" + bytes(40))
    ac, sd = unprotect(cs, msg, _tree(case), H(case["sender_data_secret"]))
    assert ac.content.body == b"hi" and ac.auth.signature == b"sig" and sd.generation == 0


@pytest.mark.parametrize("sender_data, err", [
    (SenderData(9, 0, b"\x00" * 4).to_bytes(), "MLS-SECRET-TREE-LEAF"),   # leaf outside the tree
    (SenderData(1, 5000, b"\x00" * 4).to_bytes(), "MLS-SECRET-TREE-FUTURE"),
    (b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00", "TLS-TRUNCATED"),   # 11 bytes
])
def test_hostile_sender_data(sender_data, err):
    case = MP[0]
    cs = _cs(case)
    msg = _encrypt_raw(cs, case, b"\x02hi\x03sig", sender_data=sender_data)
    with pytest.raises(ProtocolError) as ei:
        unprotect(cs, msg, _tree(case), H(case["sender_data_secret"]))
    assert ei.value.vid == err


@given(st.data())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_mutated_private_messages_fail_typed(data):
    case = MP[data.draw(st.integers(0, len(MP) - 1))]
    cs = _cs(case)
    raw = bytearray(H(case[data.draw(st.sampled_from(["proposal_priv", "commit_priv", "application_priv"]))]))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    try:
        m = MLSMessage.from_bytes(bytes(raw))
        if m.wire_format != WireFormat.MLS_PRIVATE_MESSAGE:   # no longer a PrivateMessage at all
            return
        unprotect_and_verify(cs, m.message, _tree(case), H(case["sender_data_secret"]), _gc(case),
                             lambda leaf: H(case["signature_pub"]))
    except GbpLabError as exc:
        assert isinstance(exc, ProtocolError)
    else:  # the flip hit something not authenticated by either AEAD or the signature
        pytest.fail(f"mutation at {pos} went unnoticed")


@CASES
def test_protect_then_unprotect_all_content_types_with_padding(case):
    cs, gc, sds = _cs(case), _gc(case), H(case["sender_data_secret"])
    priv = H(case["signature_priv"]).rjust(cs.signature_private_key_length, b"\x00")
    sender, receiver = _tree(case), _tree(case)
    tag = b"\x11" * cs.hash_length
    for ctype, body, conf in ((ContentType.APPLICATION, H(case["application"]), None),
                              (ContentType.PROPOSAL, H(case["proposal"]), None),
                              (ContentType.COMMIT, H(case["commit"]), tag)):
        content = FramedContent(gc.group_id, gc.epoch, Sender.member(1), b"ad", ctype, body)
        msgs = [create_private_message(cs, content, priv, gc, sender, sds, confirmation_tag=conf,
                                       padding=p) for p in (0, 33)]
        sigs = {}
        for i in (1, 0):   # out of order
            wire = MLSMessage.private(msgs[i]).to_bytes()
            ac = unprotect_and_verify(cs, MLSMessage.from_bytes(wire).message, receiver, sds, gc,
                                      lambda leaf: H(case["signature_pub"]))
            assert ac.content == content and ac.auth.confirmation_tag == conf
            assert ac.wire_format == WireFormat.MLS_PRIVATE_MESSAGE
            sigs[i] = len(ac.auth.signature)
        # the padding is inside the ciphertext (ECDSA signature lengths vary by a byte or two)
        assert len(msgs[1].ciphertext) - len(msgs[0].ciphertext) == 33 + sigs[1] - sigs[0]


def test_reuse_guard_changes_the_ciphertext():
    case = MP[0]
    cs, gc, sds = _cs(case), _gc(case), H(case["sender_data_secret"])
    content = FramedContent(gc.group_id, gc.epoch, Sender.member(0), b"", ContentType.APPLICATION, b"x")
    auth = FramedContentAuthData(b"s")
    from gbp_lab.core.mls.framing import protect
    a = protect(cs, content, auth, _tree(case), sds, reuse_guard=b"\x00\x00\x00\x00")
    b = protect(cs, content, auth, _tree(case), sds, reuse_guard=b"\x00\x00\x00\x01")
    assert a.ciphertext != b.ciphertext        # same key and generation, guarded nonce differs
    with pytest.raises(UsageError):
        protect(cs, content, auth, _tree(case), sds, reuse_guard=b"\x00")
    with pytest.raises(UsageError):
        protect(cs, replace(content, sender=Sender.external(0)), auth, _tree(case), sds)


def test_framed_content_tbs_includes_group_context_only_for_members():
    case = MP[0]
    gc = _gc(case)
    base = FramedContent(b"g", 1, Sender.member(0), b"", ContentType.PROPOSAL, H(case["proposal"]))
    tbs = framed_content_tbs(WireFormat.MLS_PUBLIC_MESSAGE, base, gc)
    assert tbs.endswith(gc.to_bytes()) and tbs.startswith(b"\x00\x01\x00\x01")
    ext = replace(base, sender=Sender.external(3))
    assert framed_content_tbs(WireFormat.MLS_PUBLIC_MESSAGE, ext, gc) == \
        framed_content_tbs(WireFormat.MLS_PUBLIC_MESSAGE, ext, None)
    nmc = replace(base, sender=Sender.new_member_commit())
    with pytest.raises(UsageError):
        framed_content_tbs(WireFormat.MLS_PUBLIC_MESSAGE, nmc, None)


def test_non_member_public_messages_have_no_membership_tag():
    case = MP[0]
    cs = _cs(case)
    priv, pub = cs.generate_signature_key_pair()
    content = FramedContent(H(case["group_id"]), 3, Sender.new_member_proposal(), b"",
                            ContentType.PROPOSAL, H(case["proposal"]))
    msg = create_public_message(cs, content, priv, None)
    wire = MLSMessage.public(msg).to_bytes()
    back = MLSMessage.from_bytes(wire).message
    assert back.membership_tag is None
    assert unprotect_public_message(cs, back, pub, None).content == content
    with pytest.raises(UsageError):
        replace(msg, membership_tag=b"t").to_bytes()
    with pytest.raises(UsageError):
        Sender(SenderType.MEMBER)


senders = st.one_of(st.builds(Sender.member, st.integers(0, 2**32 - 1)),
                    st.builds(Sender.external, st.integers(0, 2**32 - 1)),
                    st.just(Sender.new_member_proposal()), st.just(Sender.new_member_commit()))


@given(gid=st.binary(max_size=20), epoch=st.integers(0, 2**64 - 1), sender=senders,
       ad=st.binary(max_size=20), body=st.binary(max_size=50), sig=st.binary(max_size=80))
@settings(max_examples=200, deadline=None)
def test_public_application_round_trip(gid, epoch, sender, ad, body, sig):
    content = FramedContent(gid, epoch, sender, ad, ContentType.APPLICATION, body)
    tag = b"m" * 32 if sender.sender_type == SenderType.MEMBER else None
    msg = PublicMessage(content, FramedContentAuthData(sig), tag)
    wire = MLSMessage.public(msg).to_bytes()
    assert MLSMessage.from_bytes(wire).message == msg
    ac = msg.authenticated_content
    assert AuthenticatedContent.from_bytes(ac.to_bytes()) == ac


def test_opaque_bodies_round_trip_and_the_body_decoder_hook(monkeypatch):
    from gbp_lab.core.mls import framing
    monkeypatch.setattr(framing, "_BODY_DECODERS", {})      # whatever other modules registered
    w = Writer().u16(1).u16(3).raw(b"welcome-body").getvalue()
    m = MLSMessage.from_bytes(w)
    assert m.wire_format == WireFormat.MLS_WELCOME and m.message == b"welcome-body"
    assert m.to_bytes() == w

    class Blob:
        def __init__(self, data):
            self.data = data

        def encode(self, wr):
            wr.vec(self.data)

    framing.register_body_decoder(WireFormat.MLS_KEY_PACKAGE, lambda r: Blob(r.vec()))
    kp = Writer().u16(1).u16(5).vec(b"kp").getvalue()
    m = MLSMessage.from_bytes(kp)
    assert isinstance(m.message, Blob) and m.message.data == b"kp" and m.to_bytes() == kp
    with pytest.raises(TrailingBytesError):
        MLSMessage.from_bytes(kp + b"\x00")
    with pytest.raises(UsageError):
        framing.register_body_decoder(WireFormat.MLS_PRIVATE_MESSAGE, lambda r: None)


# --- interop with the gbp-stack wheel (openmls 0.8) -------------------------------------------

def _storage(blob):
    """The storage section of the wheel's ``export_state`` blob: {label: [(key, json value)]}."""
    sections, p = [], 0
    while p < len(blob):
        n = struct.unpack_from("<I", blob, p)[0]
        sections.append(blob[p + 4:p + 4 + n])
        p += 4 + n
    stor = sections[0]
    count, p, out = struct.unpack_from("<I", stor, 0)[0], 4, {}
    for _ in range(count):
        kl = struct.unpack_from("<I", stor, p)[0]
        key = stor[p + 4:p + 4 + kl]
        p += 4 + kl
        vl = struct.unpack_from("<I", stor, p)[0]
        value = stor[p + 4:p + 4 + vl]
        p += 4 + vl
        label = key.split(b"{")[0].split(b"[")[0].decode()
        out.setdefault(label, []).append((key[len(label):], json.loads(value)))
    return out


def _pick(stor, label, gid=None):
    entries = stor[label]
    if gid is None:
        assert len(entries) == 1
        return entries[0][1]
    prefix = json.dumps({"value": {"vec": list(gid)}}, separators=(",", ":")).encode()
    found = [v for k, v in entries if k.startswith(prefix)]
    assert len(found) == 1
    return found[0]


def _secret(obj):
    return bytes(obj["secret"]["value"]["vec"])


def _group_context(stor, gid):
    g = _pick(stor, "GroupContext", gid)
    assert g["ciphersuite"] == "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
    assert g["extensions"]["unique"] == []
    return GroupContext(1, bytes(g["group_id"]["value"]["vec"]), g["epoch"], bytes(g["tree_hash"]["vec"]),
                        bytes(g["confirmed_transcript_hash"]["vec"]))


def _make_ref_group():
    gbp_stack = pytest.importorskip("gbp_stack.mls_context")
    alice = gbp_stack.MlsContext.create("alice")
    bob = gbp_stack.MlsContext.create("bob")
    gid = alice.group_id
    a0 = _storage(alice.export_state())
    bob_kp = _storage(bob.export_state())
    commit, welcome = alice.invite_full(bob.export_key_package())
    alice.finalize_commit()
    a1 = _storage(alice.export_state())
    bob.accept_welcome(welcome)
    b1 = _storage(bob.export_state())
    return dict(alice=alice, bob=bob, gid=gid, a0=a0, a1=a1, b1=b1, bob_kp=bob_kp, commit=commit,
                welcome=welcome)


@pytest.fixture(scope="module")
def ref_group():
    ref = _make_ref_group()
    yield ref
    ref["alice"].close()
    ref["bob"].close()


CS1 = CipherSuite.get(1)


def _joiner_epoch(ref):
    """Open the reference's Welcome with Bob's init key and run our key schedule from it."""
    assert ref["welcome"][:4] == b"\x00\x01\x00\x03"     # MLSMessage(version 1, mls_welcome)
    r = Reader(ref["welcome"][4:])
    assert r.u16() == 1                                  # Welcome.cipher_suite
    secrets = r.sub()
    secrets.vec()                      # new_member KeyPackageRef
    kem_output, ciphertext = secrets.vec(), secrets.vec()
    assert secrets.remaining == 0
    encrypted_group_info = r.vec()
    r.done()
    init_priv = bytes(_pick(ref["bob_kp"], "KeyPackage")["private_init_key"]["vec"])
    gs = Reader(CS1.decrypt_with_label(init_priv, "Welcome", encrypted_group_info, kem_output, ciphertext))
    joiner = gs.vec()
    gs.optional(Reader.vec)
    assert gs.vec() == b""             # no PSKs
    gs.done()
    gc1 = _group_context(ref["a1"], ref["gid"])
    return key_schedule_from_joiner(CS1, joiner, gc1), gc1, encrypted_group_info


@pytest.mark.interop
def test_group_context_encoding_matches_reference(ref_group):
    for stor in (ref_group["a0"], ref_group["a1"], ref_group["b1"]):
        gc = _group_context(stor, ref_group["gid"])
        ms = _pick(stor, "MessageSecrets", ref_group["gid"])["message_secrets"]
        assert gc.to_bytes() == bytes(ms["serialized_context"])
        assert GroupContext.from_bytes(bytes(ms["serialized_context"])) == gc


@pytest.mark.interop
def test_reference_commit_unprotects_and_updates_transcript(ref_group):
    a0, a1, gid = ref_group["a0"], ref_group["a1"], ref_group["gid"]
    gc0, gc1 = _group_context(a0, gid), _group_context(a1, gid)
    ms0 = _pick(a0, "MessageSecrets", gid)["message_secrets"]
    assert ms0["secret_tree"]["size"] == 1          # one leaf: its secret is the root's
    tree = SecretTree(CS1, _secret(ms0["secret_tree"]["leaf_nodes"][0]), 1)
    alice_pub = bytes(_pick(a0, "SignatureKeyPair")["public"])
    msg = MLSMessage.from_bytes(ref_group["commit"])
    assert msg.wire_format == WireFormat.MLS_PRIVATE_MESSAGE and msg.to_bytes() == ref_group["commit"]
    ac = unprotect_and_verify(CS1, msg.message, tree, _secret(ms0["sender_data_secret"]), gc0,
                              lambda leaf: alice_pub)
    assert ac.content.sender == Sender.member(0) and ac.content.content_type == ContentType.COMMIT
    # transcript hashes and confirmation tag of epoch 1 as the reference stored them
    before = TranscriptHashes(gc0.confirmed_transcript_hash, bytes(_pick(a0, "InterimTranscriptHash", gid)))
    after = before.update(CS1, ac)
    assert after.confirmed == gc1.confirmed_transcript_hash
    assert after.interim == bytes(_pick(a1, "InterimTranscriptHash", gid))
    assert ac.auth.confirmation_tag == bytes(_pick(a1, "ConfirmationTag", gid)["mac_value"]["vec"])
    ms1 = _pick(a1, "MessageSecrets", gid)["message_secrets"]
    verify_confirmation_tag(CS1, _secret(ms1["confirmation_key"]), after.confirmed, ac.auth.confirmation_tag)


@pytest.mark.interop
def test_key_schedule_from_reference_welcome_matches_reference_secrets(ref_group):
    es, gc1, encrypted_group_info = _joiner_epoch(ref_group)
    for stor in (ref_group["a1"], ref_group["b1"]):
        stored = _pick(stor, "EpochSecrets", ref_group["gid"])
        for name in ("init_secret", "exporter_secret", "epoch_authenticator", "external_secret",
                     "resumption_psk"):
            assert getattr(es, name) == _secret(stored[name]), name
        ms = _pick(stor, "MessageSecrets", ref_group["gid"])["message_secrets"]
        for name in ("sender_data_secret", "membership_key", "confirmation_key"):
            assert getattr(es, name) == _secret(ms[name]), name
    # the fresh epoch-1 secret tree of the reference holds encryption_secret at its root
    tree = _pick(ref_group["a1"], "MessageSecrets", ref_group["gid"])["message_secrets"]["secret_tree"]
    assert es.encryption_secret == _secret(tree["parent_nodes"][0])
    # welcome_key / welcome_nonce open the reference's encrypted GroupInfo
    key, nonce = es.welcome_key_nonce()
    group_info = CS1.aead_decrypt(key.reveal(), nonce.reveal(), b"", encrypted_group_info)
    assert group_info.startswith(gc1.to_bytes())   # GroupInfo starts with the GroupContext


@pytest.mark.interop
def test_reference_accepts_our_private_messages_and_rejects_tampering(ref_group):
    es, gc1, _ = _joiner_epoch(ref_group)
    bob_priv = bytes(_pick(ref_group["b1"], "SignatureKeyPair")["private"])
    assert _pick(ref_group["b1"], "OwnLeafNodeIndex", ref_group["gid"]) == 1
    tree = SecretTree(CS1, es.encryption_secret, 2)
    content = FramedContent(gc1.group_id, gc1.epoch, Sender.member(1), b"", ContentType.APPLICATION,
                            b"hello from gbp-lab")
    first = MLSMessage.private(create_private_message(CS1, content, bob_priv, gc1, tree,
                                                      es.sender_data_secret)).to_bytes()
    second = MLSMessage.private(create_private_message(CS1, content, bob_priv, gc1, tree,
                                                       es.sender_data_secret, padding=16)).to_bytes()
    alice = ref_group["alice"]
    assert alice.process_message(first) == "application"
    with pytest.raises(OSError, match="SecretReuseError"):     # replayed generation
        alice.process_message(first)
    tampered = second[:-1] + bytes([second[-1] ^ 1])
    with pytest.raises(OSError, match="UnableToDecrypt"):
        alice.process_message(tampered)
    # openmls consumed generation 1 on the forged copy, so the genuine one is now a "reuse"
    # (our unprotect gives the key back instead); a later generation still goes through
    with pytest.raises(OSError, match="SecretReuseError"):
        alice.process_message(second)
    third = MLSMessage.private(create_private_message(CS1, content, bob_priv, gc1, tree,
                                                      es.sender_data_secret)).to_bytes()
    assert alice.process_message(third) == "application"
    # and a message signed with a key that is not Bob's is refused
    other_priv, _ = CS1.generate_signature_key_pair()
    forged = MLSMessage.private(create_private_message(CS1, content, other_priv, gc1, tree,
                                                       es.sender_data_secret)).to_bytes()
    with pytest.raises(OSError):
        alice.process_message(forged)


@pytest.mark.interop
def test_reference_remove_commit_unprotects_with_our_epoch_secrets(ref_group):
    es, gc1, _ = _joiner_epoch(ref_group)
    alice_pub = bytes(_pick(ref_group["a1"], "SignatureKeyPair")["public"])
    commit = ref_group["alice"].remove_member(1)
    ref_group["alice"].clear_pending_commit()
    msg = MLSMessage.from_bytes(commit).message
    assert msg.epoch == 1
    ac = unprotect_and_verify(CS1, msg, SecretTree(CS1, es.encryption_secret, 2), es.sender_data_secret,
                              gc1, lambda leaf: alice_pub)
    assert ac.content.sender == Sender.member(0) and ac.auth.confirmation_tag is not None
    assert len(ac.auth.confirmation_tag) == 32


@pytest.mark.interop
def test_out_of_order_window_matches_the_reference():
    """Deliver the same generations to the reference (openmls) and to our SecretTree: both accept
    and refuse the same ones (tolerance 5 backwards, 1000 forwards)."""
    ref = _make_ref_group()
    try:
        es, gc1, _ = _joiner_epoch(ref)
        bob_priv = bytes(_pick(ref["b1"], "SignatureKeyPair")["private"])
        sender = SecretTree(CS1, es.encryption_secret, 2)
        content = FramedContent(gc1.group_id, gc1.epoch, Sender.member(1), b"", ContentType.APPLICATION, b"w")
        wire = {}
        for g in range(22):
            wire[g] = MLSMessage.private(create_private_message(CS1, content, bob_priv, gc1, sender,
                                                                es.sender_data_secret)).to_bytes()
        for _ in range(22, 1022):
            sender.next_sending_key(1, 1)            # skip ahead without building messages
        for g in (1022, 1023):
            wire[g] = MLSMessage.private(create_private_message(CS1, content, bob_priv, gc1, sender,
                                                                es.sender_data_secret)).to_bytes()
        ours = SecretTree(CS1, es.encryption_secret, 2)
        outcome = []
        for g in (20, 15, 16, 19, 16, 21, 1023, 1022):   # after 21, 1022 = next + 1000
            try:
                ref["alice"].process_message(wire[g])
                theirs = "ok"
            except OSError as exc:
                theirs = str(exc)
            try:
                unprotect(CS1, MLSMessage.from_bytes(wire[g]).message, ours, es.sender_data_secret)
                mine = "ok"
            except (StateError, ReplayError) as exc:
                mine = type(exc).__name__
            outcome.append((g, theirs, mine))
        names = {"ok": "ok", "GenerationTooOldError": "TooDistantInThePast",
                 "GenerationReusedError": "SecretReuseError", "GenerationTooFarError": "TooDistantInTheFuture"}
        for g, theirs, mine in outcome:
            assert names[mine] in theirs or theirs == mine, (g, theirs, mine)
        assert [m for _, _, m in outcome] == ["ok", "GenerationTooOldError", "ok", "ok",
                                              "GenerationReusedError", "ok", "GenerationTooFarError", "ok"]
    finally:
        ref["alice"].close()
        ref["bob"].close()


@pytest.mark.interop
def test_our_exporter_opens_a_reference_gbp_control_frame(ref_group):
    """MLS-Exporter (§8.5) from our key schedule = the reference's GBP stream key: a control frame
    the reference seals at MLS epoch 1 opens with ``export("gbp/control", "", 32)``."""
    import cbor2
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from gbp_stack import ControlOpcode, GroupNode

    es, gc1, _ = _joiner_epoch(ref_group)
    node = GroupNode.create(1, ref_group["gid"])
    try:
        node.bootstrap_as_creator(1)
        out = node.send_control(ref_group["alice"], 0, ControlOpcode.CAPABILITIES_ADVERTISE, 0, 7,
                                b"\xa1\x00\xf5")
    finally:
        node.close()
    frame = cbor2.loads(out.wire)
    assert frame["ep"] == 1 and frame["st"] == 0
    key = es.export("gbp/control", b"", 32)
    plain = ChaCha20Poly1305(key).decrypt(frame["seq"].to_bytes(4, "big") + bytes(8), frame["pl"], b"")
    control = cbor2.loads(plain)
    assert control["op"] == 8 and control["rid"] == 7 and control["args"] == b"\xa1\x00\xf5"
    from cryptography.exceptions import InvalidTag
    with pytest.raises(InvalidTag):                      # another label is another key
        ChaCha20Poly1305(es.export("gbp/text", b"", 32)).decrypt(
            frame["seq"].to_bytes(4, "big") + bytes(8), frame["pl"], b"")
