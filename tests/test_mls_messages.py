"""MLS message structures (RFC 9420): round trips on the official vectors, strict decoding,
KeyPackage validation (§10.1), Welcome joining and creation (§12.4.3), and interop with the
reference wheel (openmls 0.8 inside ``gbp_stack``)."""
from __future__ import annotations

import dataclasses
import gzip
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbp_lab.core.errors import (DecodeError, DecryptError, MissingKeyError, ProtocolError,
                                 SignatureError, TrailingBytesError, TruncatedError, UsageError)
from gbp_lab.core.mls.messages import (Add, ApplicationId, Capabilities, Commit, Credential,
                                       CredentialType, EncryptedGroupSecrets, Extension,
                                       ExtensionType, ExternalInit, ExternalPub, ExternalSender,
                                       ExternalSenders, GroupContextExtensions, GroupInfo,
                                       GroupSecrets, HPKECiphertext, KeyPackage, KeyPackageError,
                                       LeafNode, LeafNodeSource, Lifetime, LifetimeError,
                                       MLSMessage, Node, ParentNode, PathSecret, PreSharedKey,
                                       PreSharedKeyID, Proposal, ProposalOrRef, ProposalType,
                                       ProtocolVersion, RatchetTree, ReInit, Remove,
                                       RequiredCapabilities, Update, UpdatePath, UpdatePathNode,
                                       Welcome, WireFormat, create_welcome, process_welcome, wrap)
from gbp_lab.core.mls.schedule import ConfirmationTagError, GroupContext, key_schedule_from_joiner
from gbp_lab.core.mls.suites import CipherSuite
from gbp_lab.core.mls.vectors import run_file
from gbp_lab.core.mls.vectors.messages import FIELDS

HERE = os.path.dirname(__file__)
VEC = os.path.join(HERE, "vectors", "mls")


def _load(name):
    with gzip.open(os.path.join(VEC, name), "rt") as fh:
        return json.load(fh)


MESSAGES = _load("messages.json.gz")
WELCOMES = _load("welcome.json.gz")
FRAMED = {WireFormat.MLS_PUBLIC_MESSAGE, WireFormat.MLS_PRIVATE_MESSAGE}
OWN_FIELDS = [name for name, (_, wf) in FIELDS.items() if wf not in FRAMED]


# --- official vectors: bytes → object → identical bytes --------------------------------------

@pytest.mark.parametrize("field", OWN_FIELDS)
def test_messages_vector_field_round_trips_in_every_case(field):
    cls, wire_format = FIELDS[field]
    for i, case in enumerate(MESSAGES):
        data = bytes.fromhex(case[field])
        obj = cls.from_bytes(data)
        assert obj.to_bytes() == data, f"case {i}"
        if wire_format is not None:
            assert obj.wire_format == wire_format


def test_messages_vector_structures_have_the_expected_shape():
    case = MESSAGES[0]
    kp_msg = MLSMessage.from_bytes(bytes.fromhex(case["mls_key_package"]))
    assert isinstance(kp_msg.message, KeyPackage)
    assert kp_msg.message.leaf_node.leaf_node_source == LeafNodeSource.KEY_PACKAGE
    assert isinstance(MLSMessage.from_bytes(bytes.fromhex(case["mls_welcome"])).message, Welcome)
    gi = MLSMessage.from_bytes(bytes.fromhex(case["mls_group_info"])).message
    assert isinstance(gi, GroupInfo) and isinstance(gi.group_context, GroupContext)
    tree = RatchetTree.from_bytes(bytes.fromhex(case["ratchet_tree"]))
    assert tree.nodes[0].leaf_node is not None  # array order: node 0 is leaf 0
    assert all(n is None or n.parent_node is not None for n in tree.nodes[1::2])
    remove = case["remove_proposal"]
    assert Remove.from_bytes(bytes.fromhex(remove)).removed == int(remove, 16)


def test_key_packages_of_the_messages_vector_verify():
    seen = set()
    for case in MESSAGES:
        kp = MLSMessage.from_bytes(bytes.fromhex(case["mls_key_package"])).message
        if kp.cipher_suite in seen:
            continue
        seen.add(kp.cipher_suite)
        kp.verify_signature()
        kp.leaf_node.verify(CipherSuite.get(kp.cipher_suite))
    assert len(seen) >= 3


def test_messages_vector_file_passes_completely():
    res = run_file(os.path.join(VEC, "messages.json.gz"))
    assert (res.passed, res.failed, res.skipped) == (len(MESSAGES), 0, 0), res.failures[:2]


def test_public_message_bodies_decode_with_our_structures():
    case = MESSAGES[0]
    commit_msg = MLSMessage.from_bytes(bytes.fromhex(case["public_message_commit"])).message
    commit = Commit.from_bytes(commit_msg.content.body)
    assert commit.to_bytes() == commit_msg.content.body
    proposal_msg = MLSMessage.from_bytes(bytes.fromhex(case["public_message_proposal"])).message
    proposal = Proposal.from_bytes(proposal_msg.content.body)
    assert proposal.to_bytes() == proposal_msg.content.body
    assert proposal.proposal_type == proposal_msg.content.body[1]  # uint16 type, < 256 here


def test_welcome_vector_file_passes_completely():
    res = run_file(os.path.join(VEC, "welcome.json.gz"))
    assert (res.passed, res.failed, res.skipped) == (7, 0, 0), res.failures[:2]


PASSIVE_WELCOMES = _load("passive-client-welcome.json.gz")


def _hpke_priv(suite, hex_value):
    # Some vectors store P-521 private keys without their leading zero byte (65 of Nsk = 66
    # bytes); RFC 9180 §7.1.2 serialises them at full length.
    return bytes.fromhex(hex_value).rjust(suite.hpke_private_key_length, b"\x00")


def test_passive_client_welcome_vectors_join_with_the_right_epoch_authenticator():
    """``passive-client-welcome.json`` (all its cases have no later epochs): join with an
    out-of-band or in-GroupInfo tree and external PSKs; the epoch authenticator must match."""
    suites = set()
    for i, case in enumerate(PASSIVE_WELCOMES):
        suite = CipherSuite.get(case["cipher_suite"])
        kp = MLSMessage.from_bytes(bytes.fromhex(case["key_package"])).message
        welcome = MLSMessage.from_bytes(bytes.fromhex(case["welcome"])).message
        psks = {bytes.fromhex(p["psk_id"]): bytes.fromhex(p["psk"]) for p in case["external_psks"]}
        tree = case["ratchet_tree"]
        joined = process_welcome(welcome, kp, _hpke_priv(suite, case["init_priv"]),
                                 psks=lambda pid: psks.get(pid.psk_id),
                                 ratchet_tree=None if tree is None else bytes.fromhex(tree))
        got = joined.epoch_secrets.epoch_authenticator.reveal()
        assert got.hex() == case["initial_epoch_authenticator"], f"case {i}"
        own_leaf = joined.tree.leaf(joined.own_leaf_index)
        assert own_leaf.encryption_key == suite.hpke_public_key(_hpke_priv(suite, case["encryption_priv"]))
        assert len(joined.group_secrets.psks) == len(case["external_psks"])
        suites.add(case["cipher_suite"])
    assert suites == set(range(1, 8)) and len(PASSIVE_WELCOMES) == 56


def test_welcome_vector_key_packages_validate():
    for case in WELCOMES:
        kp = MLSMessage.from_bytes(bytes.fromhex(case["key_package"])).message
        kp.validate(now=1_700_000_000, cipher_suite=case["cipher_suite"])


# --- strict decoding ---------------------------------------------------------------------------

def test_trailing_and_truncated_bytes_are_typed_errors():
    data = bytes.fromhex(MESSAGES[0]["mls_welcome"])
    with pytest.raises(TrailingBytesError):
        MLSMessage.from_bytes(data + b"\x00")
    with pytest.raises(TruncatedError):
        MLSMessage.from_bytes(data[:-1])


@pytest.mark.parametrize("data,vid", [
    ("00020003", "MLS-ENUM"),            # version 2
    ("00000003", "MLS-ENUM-RESERVED"),   # version 0
    ("00010009", "MLS-ENUM"),            # wire format 9
])
def test_unknown_registry_values_are_rejected(data, vid):
    with pytest.raises(DecodeError) as exc:
        MLSMessage.from_bytes(bytes.fromhex(data))
    assert exc.value.vid == vid


def test_unknown_credential_and_proposal_types_are_decode_errors():
    with pytest.raises(DecodeError):
        Credential.from_bytes(bytes.fromhex("0003" "00"))
    with pytest.raises(DecodeError):
        Proposal.from_bytes(bytes.fromhex("0008" "00000001"))
    with pytest.raises(DecodeError):
        ProposalOrRef.from_bytes(bytes.fromhex("03" "00"))


def test_ratchet_tree_ending_in_a_blank_is_rejected():
    case = MESSAGES[0]
    tree = RatchetTree.from_bytes(bytes.fromhex(case["ratchet_tree"]))
    bad = RatchetTree(tree.nodes + (None,)).to_bytes()
    with pytest.raises(DecodeError) as exc:
        RatchetTree.from_bytes(bad)
    assert exc.value.vid == "MLS-TREE-TRAILING-BLANK"


def test_grease_values_survive_capabilities_and_extensions():
    caps = Capabilities((1,), (1, 0x0A0A), (0x1A1A,), (0x2A2A,), (1, 0x3A3A))
    assert Capabilities.from_bytes(caps.to_bytes()) == caps
    ext = Extension(0x4A4A, b"grease")
    back = Extension.from_bytes(ext.to_bytes())
    assert back == ext and back.parse() is None


def test_extension_bodies_round_trip_and_parse():
    cred = Credential.basic(b"ext")
    bodies = [ApplicationId(b"app"), RequiredCapabilities((ExtensionType.EXTERNAL_SENDERS,),
                                                          (ProposalType.REINIT,), (CredentialType.X509,)),
              ExternalPub(b"\x01" * 32), ExternalSenders((ExternalSender(b"\x02" * 32, cred),)),
              RatchetTree((Node(ParentNode(b"\x03" * 32, b"", (1, 2))),))]
    for body in bodies:
        ext = body.to_extension()
        assert ext.extension_type == body.EXTENSION_TYPE
        assert Extension.from_bytes(ext.to_bytes()).parse() == body


def test_x509_credential_round_trip():
    cred = Credential.x509([b"leaf-der", b"ca-der"])
    assert Credential.from_bytes(cred.to_bytes()) == cred
    assert cred.to_bytes()[:2] == b"\x00\x02"


# --- fuzzing: only typed errors leave a decoder -------------------------------------------------

DECODERS = [MLSMessage, KeyPackage, LeafNode, GroupInfo, Welcome, GroupSecrets, Commit, RatchetTree,
            Proposal, ProposalOrRef, Add, Update, PreSharedKey, ReInit, ExternalInit,
            GroupContextExtensions, UpdatePath, Credential, Capabilities, Extension, ExternalSenders,
            RequiredCapabilities, EncryptedGroupSecrets, Node]
SEEDS = [bytes.fromhex(MESSAGES[0][f]) for f in OWN_FIELDS]


def _decode_or_typed_error(cls, data):
    try:
        obj = cls.from_bytes(data)
    except ProtocolError:
        return
    assert obj.to_bytes() == data  # anything that decodes re-encodes to the same bytes


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cls=st.sampled_from(DECODERS), data=st.binary(max_size=300))
def test_fuzz_random_bytes(cls, data):
    _decode_or_typed_error(cls, data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wire_format=st.sampled_from([3, 4, 5]), data=st.binary(max_size=300))
def test_fuzz_envelopes_of_our_bodies(wire_format, data):
    _decode_or_typed_error(MLSMessage, b"\x00\x01" + wire_format.to_bytes(2, "big") + data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, len(SEEDS) - 1), pos=st.integers(0, 10_000), byte=st.integers(0, 255),
       cut=st.integers(0, 10_000))
def test_fuzz_mutated_vector_bytes(which, pos, byte, cut):
    cls = FIELDS[OWN_FIELDS[which]][0]
    seed = bytearray(SEEDS[which])
    seed[pos % len(seed)] = byte
    _decode_or_typed_error(cls, bytes(seed[: max(1, len(seed) - cut % 8)]))


# --- generated structures: object → bytes → equal object → identical bytes ----------------------

_blob = st.binary(max_size=40)
_u16 = st.integers(0, 0xFFFF)
_u32 = st.integers(0, 0xFFFFFFFF)
_u64 = st.integers(0, 2**64 - 1)
_credentials = st.one_of(st.builds(Credential.basic, _blob),
                         st.builds(Credential.x509, st.lists(_blob, max_size=3)))
_extensions = st.lists(st.builds(Extension, _u16, _blob), max_size=3).map(tuple)
_u16s = st.lists(_u16, max_size=4).map(tuple)
_capabilities = st.builds(Capabilities, _u16s, _u16s, _u16s, _u16s, _u16s)


@st.composite
def _leaf_nodes(draw):
    source = draw(st.sampled_from(list(LeafNodeSource)[1:]))
    lifetime = draw(st.builds(Lifetime, _u64, _u64)) if source == LeafNodeSource.KEY_PACKAGE else None
    parent_hash = draw(_blob) if source == LeafNodeSource.COMMIT else None
    return LeafNode(draw(_blob), draw(_blob), draw(_credentials), draw(_capabilities), source,
                    lifetime=lifetime, parent_hash=parent_hash, extensions=draw(_extensions),
                    signature=draw(_blob))


_key_packages = st.builds(KeyPackage, st.just(ProtocolVersion.MLS10), _u16, _blob, _leaf_nodes(),
                          _extensions, _blob)
_psk_ids = st.one_of(
    st.builds(PreSharedKeyID.external, _blob, _blob),
    st.builds(PreSharedKeyID.resumption, st.sampled_from([1, 2, 3]), _blob, _u64, _blob))
_bodies = st.one_of(
    st.builds(Add, _key_packages), st.builds(Update, _leaf_nodes()), st.builds(Remove, _u32),
    st.builds(PreSharedKey, _psk_ids),
    st.builds(ReInit, _blob, st.just(ProtocolVersion.MLS10), _u16, _extensions),
    st.builds(ExternalInit, _blob), st.builds(GroupContextExtensions, _extensions))
_proposal_or_refs = st.one_of(st.builds(lambda b: ProposalOrRef(proposal=Proposal(b)), _bodies),
                              st.builds(lambda r: ProposalOrRef(reference=r), _blob))
_hpke_cts = st.builds(HPKECiphertext, _blob, _blob)
_path_nodes = st.builds(UpdatePathNode, _blob, st.lists(_hpke_cts, max_size=2).map(tuple))
_update_paths = st.builds(UpdatePath, _leaf_nodes(), st.lists(_path_nodes, max_size=2).map(tuple))
_commits = st.builds(Commit, st.lists(_proposal_or_refs, max_size=3).map(tuple),
                     st.none() | _update_paths)
_parents = st.builds(ParentNode, _blob, _blob, st.lists(_u32, max_size=3).map(tuple))
_nodes = st.one_of(st.builds(Node, _leaf_nodes()), st.builds(Node, _parents))
_trees = st.builds(lambda ns, last: RatchetTree(tuple(ns) + (last,)),  # the last node is never blank
                   st.lists(st.none() | _nodes, max_size=3), _nodes)
_group_secrets = st.builds(GroupSecrets, _blob, st.none() | st.builds(PathSecret, _blob),
                           st.lists(_psk_ids, max_size=2).map(tuple))
_welcomes = st.builds(Welcome, _u16, st.lists(st.builds(EncryptedGroupSecrets, _blob, _hpke_cts),
                                             max_size=2).map(tuple), _blob)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=st.one_of(_key_packages, _commits, _trees, _group_secrets, _welcomes, _leaf_nodes(),
                     _bodies.map(Proposal)))
def test_generated_structures_round_trip(obj):
    data = obj.to_bytes()
    back = type(obj).from_bytes(data)
    assert back == obj and back.to_bytes() == data
    with pytest.raises(TrailingBytesError):
        type(obj).from_bytes(data + b"\x00")


# --- our own group: KeyPackage, GroupInfo, Welcome built and joined -----------------------------

SUITE = CipherSuite.get(1)


def _seq_rng(seed):
    state = {"n": 0}

    def rng(n):
        state["n"] += 1
        return SUITE.hash(seed + state["n"].to_bytes(4, "big"))[:n].ljust(n, b"\x00")
    return rng


def _make_key_package(name=b"carol", suite=SUITE, lifetime=Lifetime(100, 200)):
    sig_priv, sig_pub = suite.generate_signature_key_pair()
    init_priv, init_pub = suite.generate_key_pair()
    _, enc_pub = suite.generate_key_pair()
    leaf = LeafNode(enc_pub, sig_pub, Credential.basic(name),
                    Capabilities(cipher_suites=(int(suite.id),)), LeafNodeSource.KEY_PACKAGE,
                    lifetime=lifetime).signed(suite, sig_priv)
    kp = KeyPackage(ProtocolVersion.MLS10, int(suite.id), init_pub, leaf).signed(sig_priv)
    return kp, init_priv, sig_priv


def _make_group_info(joiner, tag=None):
    sig_priv, sig_pub = SUITE.generate_signature_key_pair()
    gc = GroupContext(1, b"group-id-16bytes", 3, b"\x11" * 32, b"\x22" * 32)
    if tag is None:
        tag = key_schedule_from_joiner(SUITE, joiner, gc).confirmation_tag(gc.confirmed_transcript_hash)
    return GroupInfo(gc, (), tag, 0).signed(sig_priv), sig_pub


def test_key_package_sign_validate_and_typed_failures():
    kp, _, _ = _make_key_package()
    assert KeyPackage.from_bytes(kp.to_bytes()) == kp
    kp.validate(now=150, cipher_suite=1)
    with pytest.raises(LifetimeError):
        kp.validate(now=201)
    with pytest.raises(KeyPackageError) as exc:
        kp.validate(now=150, cipher_suite=2)
    assert exc.value.vid == "MLS-KP-SUITE"
    bad = dataclasses.replace(kp, init_key=kp.leaf_node.encryption_key)
    with pytest.raises(SignatureError):  # the signature covers init_key
        bad.validate(now=150)
    with pytest.raises(SignatureError):
        dataclasses.replace(kp, signature=bytes(64)).verify_signature()
    kp.validate(now=150, required_capabilities=RequiredCapabilities(
        (ExtensionType.EXTERNAL_SENDERS,), (ProposalType.REMOVE,), (CredentialType.BASIC,)))
    with pytest.raises(KeyPackageError) as exc:
        kp.validate(now=150, required_capabilities=RequiredCapabilities((0xFF00,), (), ()))
    assert exc.value.vid == "MLS-KP-REQUIRED-CAPS"
    with pytest.raises(KeyPackageError):
        kp.validate(now=150, required_capabilities=RequiredCapabilities((), (), (CredentialType.X509,)))


def test_leaf_node_tbs_needs_group_for_update_and_commit_sources():
    kp, _, sig_priv = _make_key_package()
    leaf = dataclasses.replace(kp.leaf_node, leaf_node_source=LeafNodeSource.UPDATE, lifetime=None)
    with pytest.raises(UsageError):
        leaf.tbs()
    signed = leaf.signed(SUITE, sig_priv, group_id=b"g", leaf_index=4)
    signed.verify(SUITE, b"g", 4)
    with pytest.raises(SignatureError):
        signed.verify(SUITE, b"g", 5)  # the leaf index is signed
    assert LeafNode.from_bytes(signed.to_bytes()) == signed
    commit_leaf = dataclasses.replace(leaf, leaf_node_source=LeafNodeSource.COMMIT, parent_hash=b"\x07" * 32)
    assert LeafNode.from_bytes(commit_leaf.to_bytes()) == commit_leaf


def test_leaf_node_rejects_inconsistent_source_fields():
    kp, _, _ = _make_key_package()
    with pytest.raises(UsageError):
        dataclasses.replace(kp.leaf_node, lifetime=None)


def test_create_and_process_welcome_round_trip():
    joiner = bytes(range(32))
    kp1, init1, _ = _make_key_package(b"carol")
    kp2, init2, _ = _make_key_package(b"dave")
    gi, signer_pub = _make_group_info(joiner)
    welcome = create_welcome(gi, joiner, [kp1, (kp2, b"\x05" * 32)], rng=_seq_rng(b"w"))
    msg = wrap(welcome)
    assert msg.wire_format == WireFormat.MLS_WELCOME
    wire = msg.to_bytes()
    assert wire[:4] == bytes.fromhex("00010003")
    back = MLSMessage.from_bytes(wire).message
    j1 = process_welcome(back, kp1, init1, signer_pub=signer_pub)
    j2 = process_welcome(back, kp2, init2, signer_pub=signer_pub)
    assert j1.group_info == gi and j1.path_secret is None
    assert j2.path_secret.reveal() == b"\x05" * 32
    assert j1.epoch_secrets.exporter_secret == j2.epoch_secrets.exporter_secret
    assert "00010203" not in repr(j1.group_secrets)  # secrets stay out of repr


def test_tampered_welcomes_raise_typed_errors():
    joiner = bytes(range(32))
    kp, init, _ = _make_key_package()
    gi, signer_pub = _make_group_info(joiner)
    welcome = create_welcome(gi, joiner, [kp])

    flipped = bytearray(welcome.encrypted_group_info)
    flipped[-1] ^= 1
    # the GroupSecrets are bound to encrypted_group_info (HPKE context), so that fails first
    with pytest.raises(DecryptError) as exc:
        process_welcome(dataclasses.replace(welcome, encrypted_group_info=bytes(flipped)), kp, init,
                        signer_pub=signer_pub)
    assert exc.value.vid == "MLS-WELCOME-SECRETS"

    entry = welcome.secrets[0]
    ct = bytearray(entry.encrypted_group_secrets.ciphertext)
    ct[0] ^= 1
    bad_entry = dataclasses.replace(entry, encrypted_group_secrets=dataclasses.replace(
        entry.encrypted_group_secrets, ciphertext=bytes(ct)))
    with pytest.raises(DecryptError):
        process_welcome(dataclasses.replace(welcome, secrets=(bad_entry,)), kp, init, signer_pub=signer_pub)

    other, other_init, _ = _make_key_package(b"eve")
    with pytest.raises(MissingKeyError):
        process_welcome(welcome, other, other_init, signer_pub=signer_pub)

    with pytest.raises(SignatureError):
        process_welcome(welcome, kp, init, signer_pub=SUITE.generate_signature_key_pair()[1])

    with pytest.raises(MissingKeyError):  # no ratchet_tree extension to find the signer in
        process_welcome(welcome, kp, init)

    bad_gi, bad_signer = _make_group_info(joiner, tag=b"\x00" * 32)
    with pytest.raises(ConfirmationTagError):
        process_welcome(create_welcome(bad_gi, joiner, [kp]), kp, init, signer_pub=bad_signer)


def _two_member_group(joiner_kp, *, with_tree_extension=True, tree_hash=None):
    """Our leaf 0 plus ``joiner_kp`` at leaf 1; returns (GroupInfo, joiner_secret, tree, epoch)."""
    from gbp_lab.core.mls.tree import RatchetTree as Tree
    sig_priv, sig_pub = SUITE.generate_signature_key_pair()
    _, enc_pub = SUITE.generate_key_pair()
    leaf = LeafNode(enc_pub, sig_pub, Credential.basic(b"alice"), Capabilities(cipher_suites=(1,)),
                    LeafNodeSource.KEY_PACKAGE, lifetime=Lifetime(0, 2**64 - 1)).signed(SUITE, sig_priv)
    tree = Tree.create(SUITE, leaf)
    assert tree.add_leaf(joiner_kp.leaf_node) == 1
    gc = GroupContext(1, bytes(range(16)), 1, tree.tree_hash() if tree_hash is None else tree_hash,
                      SUITE.hash(b"our transcript"))
    joiner = SUITE.hash(b"joiner secret of the test")
    epoch = key_schedule_from_joiner(SUITE, joiner, gc)
    exts = (tree.to_extension_body().to_extension(),) if with_tree_extension else ()
    gi = GroupInfo(gc, exts, epoch.confirmation_tag(gc.confirmed_transcript_hash), 0).signed(sig_priv)
    return gi, joiner, tree, epoch


def test_welcome_with_ratchet_tree_is_validated_and_finds_our_leaf():
    from gbp_lab.core.mls.tree import TreeValidationError
    from gbp_lab.core.mls.welcome import WelcomeError
    kp, init, _ = _make_key_package()
    gi, joiner, tree, epoch = _two_member_group(kp)
    joined = process_welcome(create_welcome(gi, joiner, [kp]), kp, init)
    assert joined.own_leaf_index == 1 and joined.tree == tree
    assert joined.epoch_secrets.exporter_secret == epoch.exporter_secret

    gi_bad, joiner, _, _ = _two_member_group(kp, tree_hash=b"\x00" * 32)
    with pytest.raises(TreeValidationError):
        process_welcome(create_welcome(gi_bad, joiner, [kp]), kp, init)

    gi_no_tree, joiner, tree, _ = _two_member_group(kp, with_tree_extension=False)
    welcome = create_welcome(gi_no_tree, joiner, [kp])
    assert process_welcome(welcome, kp, init, ratchet_tree=tree.to_bytes()).own_leaf_index == 1
    with pytest.raises(WelcomeError):  # a signer key that is not the signer leaf's
        process_welcome(welcome, kp, init, ratchet_tree=tree, signer_pub=kp.leaf_node.signature_key)
    other_kp, _, _ = _make_key_package(b"mallory")
    _, _, other_tree, _ = _two_member_group(other_kp)
    with pytest.raises((WelcomeError, TreeValidationError)):
        process_welcome(welcome, kp, init, ratchet_tree=other_tree)


_FUZZ_KP, _FUZZ_INIT, _ = _make_key_package(b"fuzz")
_FUZZ_GI, _FUZZ_JOINER, _, _ = _two_member_group(_FUZZ_KP)
_FUZZ_WIRE = wrap(create_welcome(_FUZZ_GI, _FUZZ_JOINER, [_FUZZ_KP], rng=_seq_rng(b"fuzz"))).to_bytes()


def test_fuzz_welcome_fixture_joins():
    msg = MLSMessage.from_bytes(_FUZZ_WIRE)
    assert process_welcome(msg.message, _FUZZ_KP, _FUZZ_INIT).own_leaf_index == 1


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pos=st.integers(0, len(_FUZZ_WIRE) - 1), mask=st.integers(1, 255))
def test_fuzz_tampered_welcome_bytes_never_join(pos, mask):
    """Any single flipped byte of a Welcome is caught: decode, decrypt, signature or tag error."""
    wire = bytearray(_FUZZ_WIRE)
    wire[pos] ^= mask
    with pytest.raises(ProtocolError):
        msg = MLSMessage.from_bytes(bytes(wire))
        process_welcome(msg.message, _FUZZ_KP, _FUZZ_INIT)


def test_unsupported_cipher_suites_from_a_peer_are_protocol_errors():
    kp, init, _ = _make_key_package()
    alien = dataclasses.replace(kp, cipher_suite=0x4A4A)
    with pytest.raises(ProtocolError):
        alien.validate()
    gi, joiner, _, _ = _two_member_group(kp)
    welcome = create_welcome(gi, joiner, [kp])
    with pytest.raises(ProtocolError):
        process_welcome(dataclasses.replace(welcome, cipher_suite=0x4A4A), alien, init)
    alien_gi = dataclasses.replace(gi, group_context=dataclasses.replace(gi.group_context, cipher_suite=0x4A4A))
    with pytest.raises(ProtocolError):
        alien_gi.verify(b"\x00" * 32)


def test_welcome_with_unknown_psk_needs_the_psk():
    joiner = bytes(range(32))
    kp, init, _ = _make_key_package()
    psk_id = PreSharedKeyID.external(b"psk-1", b"\x09" * 32)
    from gbp_lab.core.mls.psk import psk_secret
    secret = psk_secret(SUITE, [(psk_id, b"\x42" * 32)])
    sig_priv, sig_pub = SUITE.generate_signature_key_pair()
    gc = GroupContext(1, b"gid", 1, b"\x11" * 32, b"\x22" * 32)
    tag = key_schedule_from_joiner(SUITE, joiner, gc, secret).confirmation_tag(gc.confirmed_transcript_hash)
    gi = GroupInfo(gc, (), tag, 0).signed(sig_priv)
    welcome = create_welcome(gi, joiner, [kp], psks=[psk_id], psk_secret=secret)
    with pytest.raises(MissingKeyError):
        process_welcome(welcome, kp, init, signer_pub=sig_pub)
    joined = process_welcome(welcome, kp, init, signer_pub=sig_pub, psks={psk_id: b"\x42" * 32})
    assert joined.group_secrets.psks == (psk_id,)


def test_commit_with_inline_proposals_and_reference_round_trips():
    kp, _, _ = _make_key_package()
    commit = Commit((ProposalOrRef(proposal=Proposal(Add(kp))),
                     ProposalOrRef(proposal=Proposal(Remove(3))),
                     ProposalOrRef(reference=b"\xaa" * 32),
                     ProposalOrRef(proposal=Proposal(ReInit(b"g", ProtocolVersion.MLS10, 1, ())))),
                    UpdatePath(kp.leaf_node, ()))
    data = commit.to_bytes()
    assert Commit.from_bytes(data) == commit
    assert Commit.from_bytes(data).proposals[1].proposal.proposal_type == ProposalType.REMOVE


# --- interop with the reference wheel ------------------------------------------------------------

def _private_init_key(state: bytes) -> bytes:
    """The KeyPackage private init key in a reference ``export_state`` blob (storage record
    ``KeyPackage{…}`` → ``{"key_package", "private_init_key", …}``, openmls 0.8 storage)."""
    from gbp_lab.core.keylog import split_gbp_stack_state
    values = [json.loads(v) for k, v in split_gbp_stack_state(state).storage.items()
              if k.startswith(b"KeyPackage{")]
    keys = [bytes(v["private_init_key"]["vec"]) for v in values if "private_init_key" in v]
    assert len(keys) == 1, "the reference state holds exactly one KeyPackage private init key"
    return keys[0]


def _exporter_secret(state: bytes, group_id: bytes) -> bytes:
    from gbp_lab.core.keylog import parse_gbp_stack_state
    (group,) = [g for g in parse_gbp_stack_state(state, all_groups=True) if g.group_id == group_id]
    return group.exporter_secret


@pytest.fixture(scope="module")
def reference_pair():
    gbp_stack = pytest.importorskip("gbp_stack")
    alice = gbp_stack.MlsContext.create("alice")
    bob = gbp_stack.MlsContext.create("bob")
    kp_bytes = bob.export_key_package()
    bob_state = bob.export_state()
    welcome_bytes = alice.invite(kp_bytes)
    return alice, kp_bytes, bob_state, welcome_bytes


@pytest.mark.interop
def test_reference_key_package_decodes_verifies_and_re_encodes(reference_pair):
    _, kp_bytes, _, _ = reference_pair
    assert kp_bytes[:4] == bytes.fromhex("00010001")  # bare KeyPackage: mls10, suite 1
    kp = KeyPackage.from_bytes(kp_bytes)
    assert kp.to_bytes() == kp_bytes
    assert kp.leaf_node.credential == Credential.basic(b"bob")
    kp.verify_signature()
    lt = kp.leaf_node.lifetime
    kp.validate(now=(lt.not_before + lt.not_after) // 2, cipher_suite=1)
    with pytest.raises(LifetimeError):
        kp.validate(now=lt.not_after + 1)


@pytest.mark.interop
def test_reference_welcome_decodes_and_re_encodes(reference_pair):
    _, kp_bytes, _, welcome_bytes = reference_pair
    msg = MLSMessage.from_bytes(welcome_bytes)
    assert msg.wire_format == WireFormat.MLS_WELCOME and msg.to_bytes() == welcome_bytes
    kp = KeyPackage.from_bytes(kp_bytes)
    assert [s.new_member for s in msg.message.secrets] == [kp.ref()]


@pytest.mark.interop
def test_reference_welcome_joins_with_the_reference_init_key(reference_pair):
    alice, kp_bytes, bob_state, welcome_bytes = reference_pair
    kp = KeyPackage.from_bytes(kp_bytes)
    init_priv = _private_init_key(bob_state)
    joined = process_welcome(MLSMessage.from_bytes(welcome_bytes).message, kp, init_priv)  # signer from tree
    assert joined.group_context.group_id == alice.group_id
    assert joined.group_context.epoch == alice.epoch == 1
    assert joined.own_leaf_index == 1 and joined.tree.leaf(1) == kp.leaf_node
    assert joined.tree.tree_hash() == joined.group_context.tree_hash
    ext_tree = joined.group_info.ratchet_tree()
    assert ext_tree.nodes[2].leaf_node.credential == Credential.basic(b"bob")
    want = _exporter_secret(alice.export_state(), alice.group_id)
    assert joined.epoch_secrets.exporter_secret.reveal() == want


@pytest.mark.interop
def test_tampered_reference_welcome_is_rejected_with_typed_errors(reference_pair):
    _, kp_bytes, bob_state, welcome_bytes = reference_pair
    kp = KeyPackage.from_bytes(kp_bytes)
    init_priv = _private_init_key(bob_state)
    welcome = MLSMessage.from_bytes(welcome_bytes).message
    for i in (0, len(welcome.encrypted_group_info) // 2, len(welcome.encrypted_group_info) - 1):
        egi = bytearray(welcome.encrypted_group_info)
        egi[i] ^= 0x80
        with pytest.raises(DecryptError):
            process_welcome(dataclasses.replace(welcome, encrypted_group_info=bytes(egi)), kp, init_priv)
    with pytest.raises(DecryptError):  # someone else's init key
        process_welcome(welcome, kp, SUITE.generate_key_pair()[0])
    wire = bytearray(welcome_bytes)
    wire[6] ^= 0xFF  # inside the secrets vector length: the decoder must fail cleanly
    with pytest.raises(DecodeError):
        MLSMessage.from_bytes(bytes(wire))


@pytest.mark.interop
def test_reference_joins_a_group_from_our_welcome():
    """We build a two-member group (our leaf 0, the reference's KeyPackage at leaf 1), sign the
    GroupInfo and encrypt the Welcome; openmls must accept it and agree on the epoch's secrets."""
    gbp_stack = pytest.importorskip("gbp_stack")
    bob = gbp_stack.MlsContext.create("bob")
    kp = KeyPackage.from_bytes(bob.export_key_package())
    gi, joiner, _, epoch = _two_member_group(kp)
    group_id = gi.group_context.group_id
    wire = wrap(create_welcome(gi, joiner, [kp])).to_bytes()

    bob.accept_welcome(wire)
    assert bob.epoch == 1 and bob.group_id == group_id
    assert _exporter_secret(bob.export_state(), group_id) == epoch.exporter_secret.reveal()
