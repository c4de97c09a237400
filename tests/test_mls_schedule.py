"""Key schedule, PSKs, secret tree and transcript hashes (RFC 9420 §8, §8.2, §8.4, §9).

Expected values come from the official test vectors (vendored in tests/vectors/mls); hostile
input must end in typed errors."""
import gzip
import json
import os

import pytest
from hypothesis import given, settings, strategies as st

from gbp_lab.core.errors import (DecodeError, GbpLabError, MissingKeyError, ReplayError, StateError,
                                 TrailingBytesError, TruncatedError, UsageError)
from gbp_lab.core.mls.extensions import Extension
from gbp_lab.core.tls import encode_vec
from gbp_lab.core.mls.framing import AuthenticatedContent
from gbp_lab.core.mls.psk import PreSharedKeyID, PSKType, ResumptionPSKUsage, psk_label, psk_secret, psk_secret_steps
from gbp_lab.core.mls.schedule import (ConfirmationTagError, EPOCH_DERIVED, EpochSecrets, GroupContext,
                                       confirmation_tag, external_key_pair, joiner_secret, key_schedule,
                                       key_schedule_from_joiner, verify_confirmation_tag,
                                       welcome_key_nonce, welcome_secret_from_joiner)
from gbp_lab.core.mls.secret_tree import (GenerationReusedError, GenerationTooFarError,
                                          GenerationTooOldError, RatchetType, SecretTree,
                                          UnknownLeafError)
from gbp_lab.core.mls.secrets import Secret
from gbp_lab.core.mls.suites import CipherSuite
from gbp_lab.core.mls.transcript import (TranscriptHashes, confirmed_transcript_hash_input,
                                         interim_transcript_hash)

VEC = os.path.join(os.path.dirname(__file__), "vectors", "mls")


def load(name):
    with gzip.open(os.path.join(VEC, name + ".json.gz"), "rt") as fh:
        return json.load(fh)


KS = load("key-schedule")
ST = load("secret-tree")
PSK = load("psk_secret")
TH = load("transcript-hashes")
H = bytes.fromhex


def _epoch_inputs(case, i, init):
    ep = case["epochs"][i]
    gc = GroupContext(case["cipher_suite"], H(case["group_id"]), i, H(ep["tree_hash"]),
                      H(ep["confirmed_transcript_hash"]))
    return ep, gc


# --- Secret ------------------------------------------------------------------------------------

def test_secret_is_redacted_and_reveals_on_request():
    s = Secret(bytes.fromhex("deadbeef" * 8), "init_secret")
    assert "deadbeef" not in repr(s) and "deadbeef" not in str(s)
    assert "32 bytes" in repr(s) and "init_secret" in repr(s)
    assert s.reveal() == bytes.fromhex("deadbeef" * 8)
    assert s == bytes.fromhex("deadbeef" * 8) and s == Secret(s.reveal())
    assert s != Secret(b"\x00" * 32)
    with pytest.raises(UsageError):
        bytes(s)
    with pytest.raises(AttributeError):
        s.label = "x"
    with pytest.raises(UsageError):
        Secret("not bytes")


# --- key schedule -----------------------------------------------------------------------------

@pytest.mark.parametrize("case", KS, ids=[f"suite{c['cipher_suite']}" for c in KS])
def test_key_schedule_matches_vector_and_repr_is_redacted(case):
    cs = CipherSuite.get(case["cipher_suite"])
    init = H(case["initial_init_secret"])
    for i, ep in enumerate(case["epochs"]):
        ep, gc = _epoch_inputs(case, i, init)
        es = key_schedule(cs, init, H(ep["commit_secret"]), gc, H(ep["psk_secret"]))
        assert isinstance(es, EpochSecrets)
        assert es.joiner_secret.reveal().hex() == ep["joiner_secret"]
        assert joiner_secret(cs, init, H(ep["commit_secret"]), gc) == es.joiner_secret
        assert es.epoch_authenticator.reveal().hex() == ep["epoch_authenticator"]
        assert es.resumption_psk.reveal().hex() == ep["resumption_psk"]
        # the joiner's path (Welcome) gives the same epoch
        es2 = key_schedule_from_joiner(cs, es.joiner_secret, gc.to_bytes(), H(ep["psk_secret"]))
        for name, _label in EPOCH_DERIVED:
            assert getattr(es2, name) == getattr(es, name)
        assert welcome_secret_from_joiner(cs, es.joiner_secret, H(ep["psk_secret"])) == es.welcome_secret
        assert external_key_pair(cs, es.external_secret)[1].hex() == ep["external_pub"]
        if i + 1 < len(case["epochs"]):      # chaining through the helper gives the same epoch
            nxt, gc_next = _epoch_inputs(case, i + 1, None)
            chained = es.next_epoch(H(nxt["commit_secret"]), gc_next, H(nxt["psk_secret"]))
            assert chained.joiner_secret.reveal().hex() == nxt["joiner_secret"]
        text = repr(es)
        for name in ("joiner_secret", "init_secret", "exporter_secret", "encryption_secret",
                     "confirmation_key", "membership_key"):
            assert ep[name] not in text
        init = es.init_secret


def test_epoch_secrets_explain_lists_every_secret_with_its_derivation():
    case = KS[0]
    ep, gc = _epoch_inputs(case, 0, None)
    cs = CipherSuite.get(1)
    es = key_schedule(cs, H(case["initial_init_secret"]), H(ep["commit_secret"]), gc, H(ep["psk_secret"]))
    rows = {name: (how, secret) for name, how, secret in es.explain()}
    for name, label in EPOCH_DERIVED:
        how, secret = rows[name]
        assert f'"{label.decode()}"' in how
        assert secret.reveal().hex() == ep[name]
    assert '"joiner"' in rows["joiner_secret"][0] and '"welcome"' in rows["welcome_secret"][0]
    assert rows["commit_secret"][1].reveal().hex() == ep["commit_secret"]
    # exporter and confirmation tag helpers
    exp = ep["exporter"]
    assert es.export(exp["label"].encode(), H(exp["context"]), exp["length"]).hex() == exp["secret"]
    tag = es.confirmation_tag(b"th")
    assert tag == confirmation_tag(cs, H(ep["confirmation_key"]), b"th")
    verify_confirmation_tag(cs, es.confirmation_key, b"th", tag)


def test_key_schedule_without_commit_secret_uses_zeros():
    cs = CipherSuite.get(1)
    gc = GroupContext(1, b"g", 0, b"t" * 32, b"")
    a = key_schedule(cs, b"\x01" * 32, None, gc)
    b = key_schedule(cs, b"\x01" * 32, b"\x00" * 32, gc, b"\x00" * 32)
    assert a.init_secret == b.init_secret and a.psk_secret == b"\x00" * 32


def test_key_schedule_binds_group_context():
    cs = CipherSuite.get(1)
    gc1 = GroupContext(1, b"g", 0, b"t" * 32, b"")
    gc2 = GroupContext(1, b"g", 1, b"t" * 32, b"")
    assert key_schedule(cs, b"\x01" * 32, None, gc1).epoch_secret != key_schedule(cs, b"\x01" * 32, None, gc2).epoch_secret


def test_welcome_key_and_nonce_sizes_follow_the_suite():
    for suite, nk in ((1, 16), (3, 32), (5, 32)):
        k, n = welcome_key_nonce(suite, b"\x02" * CipherSuite.get(suite).hash_length)
        assert len(k) == nk and len(n) == 12 and "redacted" in repr(k)


@pytest.mark.parametrize("kwargs", [
    dict(init_secret=b"\x01" * 31, commit_secret=None),
    dict(init_secret=b"\x01" * 32, commit_secret=b"\x00" * 33),
])
def test_key_schedule_rejects_wrong_lengths(kwargs):
    gc = GroupContext(1, b"g", 0, b"", b"")
    with pytest.raises(UsageError) as ei:
        key_schedule(1, kwargs["init_secret"], kwargs["commit_secret"], gc)
    assert ei.value.vid == "MLS-SCHEDULE-LEN"


def test_bad_confirmation_tag_is_a_crypto_error():
    with pytest.raises(ConfirmationTagError) as ei:
        verify_confirmation_tag(1, b"\x01" * 32, b"hash", b"\x00" * 32)
    assert ei.value.vid == "MLS-CONFIRMATION-TAG"


# --- GroupContext codec ------------------------------------------------------------------------

def test_group_context_vector_bytes_and_round_trip():
    for case in KS:
        for i, ep in enumerate(case["epochs"]):
            _, gc = _epoch_inputs(case, i, None)
            assert gc.to_bytes().hex() == ep["group_context"]
            assert GroupContext.from_bytes(H(ep["group_context"])) == gc


@given(gid=st.binary(max_size=40), epoch=st.integers(0, 2**64 - 1), th=st.binary(max_size=70),
       cth=st.binary(max_size=70),
       exts=st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=20)), max_size=3))
@settings(max_examples=200, deadline=None)
def test_group_context_round_trip(gid, epoch, th, cth, exts):
    gc = GroupContext(2, gid, epoch, th, cth, tuple(Extension(t, d) for t, d in exts))
    data = gc.to_bytes()
    back = GroupContext.from_bytes(data)
    assert back.to_bytes() == data
    assert back.epoch == epoch and back.group_id == gid


def test_group_context_hostile_encodings():
    good = GroupContext(1, b"gid", 7, b"t", b"c").to_bytes()
    with pytest.raises(TrailingBytesError):
        GroupContext.from_bytes(good + b"\x00")
    for cut in range(len(good)):
        with pytest.raises(TruncatedError):
            GroupContext.from_bytes(good[:cut])
    with pytest.raises(DecodeError) as ei:
        GroupContext.from_bytes(b"\x00\x00" + good[2:])
    assert ei.value.vid.startswith("MLS-ENUM")


@given(st.binary(max_size=80))
@settings(max_examples=200, deadline=None)
def test_group_context_fuzz_only_typed_errors(data):
    try:
        GroupContext.from_bytes(data)
    except GbpLabError as exc:
        assert isinstance(exc, DecodeError)


# --- PSKs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", PSK[:21], ids=lambda c: f"suite{c['cipher_suite']}-{len(c['psks'])}")
def test_psk_secret_vector(case):
    cs = CipherSuite.get(case["cipher_suite"])
    psks = [(PreSharedKeyID.external(H(p["psk_id"]), H(p["psk_nonce"])), H(p["psk"])) for p in case["psks"]]
    value, steps = psk_secret_steps(cs, psks)
    assert value.reveal().hex() == case["psk_secret"]
    assert len(steps) == len(psks)
    if len(psks) >= 2:  # the chain depends on the order (PSKLabel carries index and count)
        assert psk_secret(cs, list(reversed(psks))).reveal().hex() != case["psk_secret"]
        assert steps[-1].psk_secret == value and "redacted" in repr(steps[0])


def test_psk_secret_without_psks_is_zero():
    assert psk_secret(CipherSuite.get(7), []).reveal() == bytes(48)


def test_psk_label_layout():
    pid = PreSharedKeyID.external(b"id", b"nn")
    assert psk_label(pid, 1, 3) == bytes.fromhex("01" "026964" "026e6e" "0001" "0003")


psk_ids = st.one_of(
    st.builds(PreSharedKeyID.external, st.binary(max_size=40), st.binary(max_size=40)),
    st.builds(PreSharedKeyID.resumption, st.sampled_from(list(ResumptionPSKUsage)[1:]),
              st.binary(max_size=40), st.integers(0, 2**64 - 1), st.binary(max_size=40)))


@given(psk_ids)
@settings(max_examples=200, deadline=None)
def test_psk_id_round_trip(pid):
    data = pid.to_bytes()
    assert PreSharedKeyID.from_bytes(data) == pid


@pytest.mark.parametrize("data", ["00", "03", "0200", "0204", "01", "0102", "020100"])
def test_psk_id_hostile(data):
    with pytest.raises(DecodeError):
        PreSharedKeyID.from_bytes(H(data))


def test_psk_id_resumption_layout():
    pid = PreSharedKeyID.resumption(ResumptionPSKUsage.BRANCH, b"g", 2, b"n")
    assert pid.to_bytes().hex() == "02" "03" "0167" "0000000000000002" "016e"
    assert pid.psktype == PSKType.RESUMPTION


# --- secret tree -------------------------------------------------------------------------------

def _tree(case, **kw):
    return SecretTree(case["cipher_suite"], H(case["encryption_secret"]), len(case["leaves"]), **kw)


@pytest.mark.parametrize("case", [c for c in ST if len(c["leaves"]) == 8],
                         ids=lambda c: f"suite{c['cipher_suite']}")
def test_secret_tree_sender_and_receiver_agree_with_vector(case):
    sender = _tree(case)
    leaf = 5
    want = {g["generation"]: g for g in case["leaves"][leaf]}
    keys = [sender.next_sending_key(leaf, RatchetType.APPLICATION) for _ in range(16)]
    assert [k.generation for k in keys] == list(range(16))
    for gen, g in want.items():
        assert keys[gen].key.reveal().hex() == g["application_key"]
        assert keys[gen].nonce.reveal().hex() == g["application_nonce"]
    # handshake ratchet is independent of the application one
    hs = sender.next_sending_key(leaf, RatchetType.HANDSHAKE)
    assert hs.generation == 0 and hs.key.reveal().hex() == want[0]["handshake_key"]
    receiver = _tree(case)
    assert receiver.key_for(leaf, RatchetType.APPLICATION, 15).key == keys[15].key


def _small_tree():
    return SecretTree(1, b"\x07" * 32, 4)


def test_out_of_order_within_tolerance_then_replay_is_rejected():
    sender, receiver = _small_tree(), _small_tree()
    keys = [sender.next_sending_key(2, RatchetType.APPLICATION) for _ in range(8)]
    for gen in (3, 1, 2, 0, 4, 7, 6, 5):
        assert receiver.key_for(2, RatchetType.APPLICATION, gen).key == keys[gen].key
    for gen in (0, 3, 7):
        with pytest.raises((GenerationReusedError, GenerationTooOldError)):
            receiver.key_for(2, RatchetType.APPLICATION, gen)
    with pytest.raises(GenerationReusedError) as ei:
        receiver.key_for(2, RatchetType.APPLICATION, 7)
    assert isinstance(ei.value, ReplayError) and ei.value.vid == "MLS-SECRET-TREE-REUSED"


def test_generation_beyond_tolerance_is_too_old():
    t = SecretTree(1, b"\x07" * 32, 2, out_of_order_tolerance=5)
    t.key_for(1, RatchetType.HANDSHAKE, 20)          # like openmls: window = 16..20 (20 used)
    t.key_for(1, RatchetType.HANDSHAKE, 16)          # inside the window
    t.key_for(1, RatchetType.HANDSHAKE, 19)
    with pytest.raises(GenerationTooOldError) as ei:
        t.key_for(1, RatchetType.HANDSHAKE, 15)
    assert isinstance(ei.value, StateError) and ei.value.vid == "MLS-SECRET-TREE-PAST"


def test_generation_too_far_ahead():
    t = SecretTree(1, b"\x07" * 32, 2, maximum_forward_distance=1000)
    t.key_for(0, RatchetType.APPLICATION, 1000)      # exactly the maximum distance is fine
    with pytest.raises(GenerationTooFarError) as ei:
        t.key_for(1, RatchetType.APPLICATION, 1001)
    assert ei.value.vid == "MLS-SECRET-TREE-FUTURE"
    assert t.generation(1, RatchetType.APPLICATION) == 0   # nothing was derived


def test_unknown_leaf_and_bad_config():
    t = _small_tree()
    for leaf in (4, -1, 2**32):
        with pytest.raises(UnknownLeafError) as ei:
            t.key_for(leaf, RatchetType.APPLICATION, 0)
        assert isinstance(ei.value, MissingKeyError)
    with pytest.raises(UsageError):
        SecretTree(1, b"\x00" * 32, 0)
    with pytest.raises(UsageError):
        SecretTree(1, b"\x00" * 32, 2, out_of_order_tolerance=-1)


def test_secret_tree_deletes_node_secrets_once_used():
    case = next(c for c in ST if len(c["leaves"]) == 8)
    t = _tree(case)
    assert "node_secrets=1" in repr(t)
    for leaf in range(8):
        t.key_for(leaf, RatchetType.HANDSHAKE, 0)
    assert "node_secrets=0" in repr(t)     # every inner and leaf secret is gone
    assert case["encryption_secret"] not in repr(t)


def test_give_back_restores_an_unused_key():
    t = _small_tree()
    k = t.key_for(0, RatchetType.APPLICATION, 3)
    t.give_back(0, RatchetType.APPLICATION, k)
    assert t.key_for(0, RatchetType.APPLICATION, 3).key == k.key


def test_non_power_of_two_leaf_count_uses_the_padded_tree():
    # 3 leaves live in the 4-leaf tree: same secrets as the 4-leaf tree for leaves 0..2
    t3, t4 = SecretTree(1, b"\x05" * 32, 3), SecretTree(1, b"\x05" * 32, 4)
    for leaf in range(3):
        assert t3.key_for(leaf, RatchetType.HANDSHAKE, 2).key == t4.key_for(leaf, RatchetType.HANDSHAKE, 2).key
    with pytest.raises(UnknownLeafError):
        t3.key_for(3, RatchetType.HANDSHAKE, 0)


# --- transcript hashes -----------------------------------------------------------------------

@pytest.mark.parametrize("case", TH, ids=lambda c: f"suite{c['cipher_suite']}")
def test_transcript_hashes_vector(case):
    cs = CipherSuite.get(case["cipher_suite"])
    ac = AuthenticatedContent.from_bytes(H(case["authenticated_content"]))
    after = TranscriptHashes(b"", H(case["interim_transcript_hash_before"])).update(cs, ac)
    assert after.confirmed.hex() == case["confirmed_transcript_hash_after"]
    assert after.interim.hex() == case["interim_transcript_hash_after"]
    assert confirmation_tag(cs, H(case["confirmation_key"]), after.confirmed) == ac.auth.confirmation_tag
    # ConfirmedTranscriptHashInput is AuthenticatedContent without its confirmation tag
    tag_len = len(encode_vec(ac.auth.confirmation_tag))
    assert H(case["authenticated_content"]).startswith(confirmed_transcript_hash_input(ac))
    assert len(H(case["authenticated_content"])) - len(confirmed_transcript_hash_input(ac)) == tag_len
    with pytest.raises(ConfirmationTagError):
        verify_confirmation_tag(cs, H(case["confirmation_key"]), after.interim, ac.auth.confirmation_tag)


def test_initial_transcript_hashes():
    cs = CipherSuite.get(1)
    t = TranscriptHashes.initial(cs, b"\x01" * 32)
    assert t.confirmed == b"" and t.interim == interim_transcript_hash(cs, b"", b"\x01" * 32)
    assert t.interim == cs.hash(b"\x20" + b"\x01" * 32)


def test_transcript_needs_a_commit():
    case = TH[0]
    ac = AuthenticatedContent.from_bytes(H(case["authenticated_content"]))
    from dataclasses import replace
    from gbp_lab.core.mls.registries import ContentType
    prop = replace(ac, content=replace(ac.content, content_type=ContentType.PROPOSAL))
    with pytest.raises(UsageError):
        confirmed_transcript_hash_input(prop)


_SENDER_KEYS = None


def _sender_keys():
    global _SENDER_KEYS
    if _SENDER_KEYS is None:
        t = SecretTree(1, b"\x09" * 32, 2)
        _SENDER_KEYS = [t.next_sending_key(1, RatchetType.APPLICATION) for _ in range(40)]
    return _SENDER_KEYS


@given(st.lists(st.integers(0, 39), max_size=25))
@settings(max_examples=200, deadline=None)
def test_receiver_either_returns_the_senders_key_or_a_typed_state_error(gens):
    """Any arrival order: a generation is delivered at most once, with the sender's key; the
    rest are ReplayError (already used) or GenerationTooOldError (out of the window)."""
    keys = _sender_keys()
    t = SecretTree(1, b"\x09" * 32, 2, out_of_order_tolerance=5)
    delivered = set()
    for g in gens:
        try:
            k = t.key_for(1, RatchetType.APPLICATION, g)
        except (GenerationReusedError, GenerationTooOldError) as exc:
            assert isinstance(exc, StateError)
            if isinstance(exc, GenerationReusedError):
                assert g in delivered
        else:
            assert g not in delivered
            assert k.key == keys[g].key and k.nonce == keys[g].nonce
            delivered.add(g)


def test_epoch_secrets_build_the_epochs_secret_tree():
    case = next(c for c in KS if c["cipher_suite"] == 3)
    ep, gc = _epoch_inputs(case, 0, None)
    es = key_schedule_from_joiner(3, H(ep["joiner_secret"]), gc, H(ep["psk_secret"]))
    tree = es.secret_tree(4, out_of_order_tolerance=2)
    direct = SecretTree(3, H(ep["encryption_secret"]), 4)
    assert tree.key_for(3, RatchetType.APPLICATION, 1).key == direct.key_for(3, RatchetType.APPLICATION, 1).key
    assert tree.out_of_order_tolerance == 2
