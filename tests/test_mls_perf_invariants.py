"""Behavioural invariants of the speed work in ``gbp_lab.core.mls`` (no timings here: see
``benchmarks/mls_bench.py``).

What was made faster, and what must stay true:

* ``LeafNode`` keeps its encodings on the instance (``to_bytes``, ``tbs``): a decoded leaf's kept
  bytes equal a fresh encoding, ``replace()`` never inherits a stale one, equality ignores it;
  capability lists are split in one go (unknown values stay ints, an odd length is a typed error);
* ``RatchetTree``: iterative resolution, filtered direct path by "is the copath subtree all
  blank", plain-int ``copath_child`` and a tree hash built as one byte string — each checked
  against a from-the-definition reference (RFC 9420 §4.1.1, §4.1.2, §7.8) on the official vector
  trees, and the tree-hash cache against a fresh decode after every kind of mutation;
* HKDF-Expand on one-shot HMACs equals ``cryptography``'s ``HKDFExpand``; DHKEM Encap/Decap that
  load each key once give the same results as the RFC 9180 composition of ``dh``/``public_key``.
"""
from __future__ import annotations

import gzip
import json
import os
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from hypothesis import given, settings
from hypothesis import strategies as st

from gbp_lab.core.errors import DecodeError
from gbp_lab.core.mls import treemath as tm
from gbp_lab.core.mls.hpke import KemId, hkdf_expand, kem
from gbp_lab.core.mls.credentials import Credential
from gbp_lab.core.mls.leaf_node import Capabilities, LeafNode, Lifetime
from gbp_lab.core.mls.registries import ExtensionType, LeafNodeSource, ProposalType
from gbp_lab.core.mls.schedule import GroupContext
from gbp_lab.core.mls.suites import CipherSuite
from gbp_lab.core.mls.tree import RatchetTree
from gbp_lab.core.mls.treekem import create_update_path
from gbp_lab.core.tls import Reader, Writer, encode_vec

VEC = os.path.join(os.path.dirname(__file__), "vectors", "mls")


def _load(name):
    with gzip.open(os.path.join(VEC, name + ".json.gz"), "rt") as fh:
        return json.load(fh)


TREE_VALIDATION = _load("tree-validation")
TREE_OPERATIONS = _load("tree-operations")


def _vector_trees():
    for case in TREE_VALIDATION:
        yield RatchetTree.from_bytes(bytes.fromhex(case["tree"]), case["cipher_suite"])
    for case in TREE_OPERATIONS:
        for key in ("tree_before", "tree_after"):
            yield RatchetTree.from_bytes(bytes.fromhex(case[key]), case["cipher_suite"])


VECTOR_TREES = list(_vector_trees())


# --- reference definitions (straight from the RFC text, no caches) -----------------------------

def ref_resolution(tree, x):
    """RFC 9420 §4.1.1."""
    node = tree.nodes[x]
    if node is not None:
        if x % 2 == 0:
            return [x]
        return [x] + [2 * u for u in node.unmerged_leaves]
    if x % 2 == 0:
        return []
    return ref_resolution(tree, int(tm.left(x))) + ref_resolution(tree, int(tm.right(x)))


def ref_filtered_direct_path(tree, leaf):
    """RFC 9420 §4.1.2: direct-path nodes whose copath child has a non-empty resolution."""
    out = []
    path = [2 * leaf] + [int(p) for p in tm.direct_path(2 * leaf, tree.n_leaves)]
    for child, p in zip(path, path[1:]):
        sib = int(tm.sibling(child, tree.n_leaves))
        if ref_resolution(tree, sib):
            out.append(p)
    return out


def ref_tree_hash(tree, x):
    """RFC 9420 §7.8, encoded with the generic Writer and no cache."""
    w = Writer()
    node = tree.nodes[x]
    if x % 2 == 0:
        w.u8(1).u32(x // 2)
        w.optional(node, lambda ww, n: ww.raw(_fresh_leaf_bytes(n)))
    else:
        w.u8(2)
        w.optional(node, lambda ww, n: n.encode(ww))
        w.vec(ref_tree_hash(tree, int(tm.left(x)))).vec(ref_tree_hash(tree, int(tm.right(x))))
    return tree.suite.hash(w.getvalue())


def _fresh_leaf_bytes(leaf: LeafNode) -> bytes:
    """The leaf encoded field by field, bypassing any kept encoding."""
    w = Writer()
    leaf._write_content(w)
    w.vec(leaf.signature)
    return w.getvalue()


# --- LeafNode encodings -------------------------------------------------------------------------

def test_decoded_leaves_keep_exactly_a_fresh_encoding():
    seen = 0
    for tree in VECTOR_TREES:
        for _, leaf in tree.leaves():
            fresh = replace(leaf)                       # a new instance: nothing kept yet
            assert "_encoded" in leaf.__dict__ and "_encoded" not in fresh.__dict__
            assert leaf.to_bytes() == fresh.to_bytes() == _fresh_leaf_bytes(leaf)
            assert leaf.tbs(b"gid", 3) == fresh.tbs(b"gid", 3)
            assert leaf == fresh and hash(leaf) == hash(fresh)
            seen += 1
    assert seen > 100


def test_replace_never_inherits_a_kept_encoding():
    leaf = next(leaf for tree in VECTOR_TREES for _, leaf in tree.leaves())
    before = leaf.to_bytes()
    tbs_before = leaf.tbs(b"g", 0)
    other = replace(leaf, encryption_key=bytes(len(leaf.encryption_key)), signature=b"\x01" * 64)
    assert other.to_bytes() != before
    assert other.to_bytes() == _fresh_leaf_bytes(other)
    assert other.tbs(b"g", 0) != tbs_before
    assert leaf.to_bytes() == before  # the original is untouched
    # LeafNode.from_bytes of a re-encoded leaf gives the same kept bytes
    assert LeafNode.from_bytes(other.to_bytes()).to_bytes() == other.to_bytes()


def test_leaf_encode_writer_matches_to_bytes():
    leaf = next(leaf for tree in VECTOR_TREES for _, leaf in tree.leaves())
    w = Writer()
    w.u8(7)
    leaf.encode(w)
    assert w.getvalue() == b"\x07" + leaf.to_bytes()


def _caps_bytes(*lists):
    w = Writer()
    for values in lists:
        w.vec_of(values, lambda ww, v: ww.u16(v))
    return w.getvalue()


def test_capabilities_keep_unknown_values_as_ints_and_known_as_members():
    data = _caps_bytes([1, 0x0A0A], [1, 3, 0x1A1A], [int(ExtensionType.RATCHET_TREE), 0xF000],
                       [int(ProposalType.ADD), 0xFFFE], [1, 0x2A2A])
    caps = Capabilities.from_bytes(data)
    assert caps.versions == (1, 0x0A0A) and type(caps.versions[1]) is int
    assert caps.extensions[0] is ExtensionType.RATCHET_TREE and type(caps.extensions[1]) is int
    assert caps.proposals[0] is ProposalType.ADD
    assert type(caps.cipher_suites[0]) is int          # suites are never mapped
    assert caps.to_bytes() == data


@pytest.mark.parametrize("cut", [1, 3])
def test_capabilities_odd_length_vector_is_a_decode_error(cut):
    good = _caps_bytes([1, 2], [], [], [], [1])
    first = bytes([4]) + good[1:1 + 4]                  # versions vector of 4 bytes
    body = bytes([cut]) + first[1:1 + cut] + good[5:]   # claim an odd length instead
    with pytest.raises(DecodeError):
        Capabilities.decode(Reader(body))


# --- tree walks ------------------------------------------------------------------------------------

def test_resolution_matches_the_definition_on_vector_trees():
    for tree in VECTOR_TREES:
        for x in range(tree.n_nodes):
            assert tree.resolution(x) == ref_resolution(tree, x)


def test_filtered_direct_path_matches_the_definition_on_vector_trees():
    for tree in VECTOR_TREES:
        for li, _ in tree.leaves():
            assert tree.filtered_direct_path(li) == ref_filtered_direct_path(tree, li)


def test_copath_child_matches_treemath_for_every_parent_and_leaf():
    tree = max(VECTOR_TREES, key=lambda t: t.n_leaves)
    for p in range(1, tree.n_nodes, 2):
        left = int(tm.left(p))
        for li in range(tree.n_leaves):
            want = int(tm.right(p)) if tm.is_ancestor(left, 2 * li) else left
            assert tree.copath_child(p, li) == want


def test_tree_hashes_match_the_definition_on_vector_trees():
    for tree in VECTOR_TREES[::3]:
        assert tree.tree_hashes() == [ref_tree_hash(tree, x) for x in range(tree.n_nodes)]


def _rich_tree():
    return max((RatchetTree.from_bytes(bytes.fromhex(c["tree"]), c["cipher_suite"]) for c in TREE_VALIDATION),
               key=lambda t: (sum(1 for i, n in enumerate(t.nodes) if i % 2 and n is not None), t.n_leaves))


RICH = _rich_tree()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "remove", "update", "hash"]), st.integers(0, 63)),
                min_size=1, max_size=12))
def test_tree_hash_cache_is_never_stale(ops):
    """After any sequence of adds / removes / updates (hashes read in between, so the cache is
    warm), every cached tree hash equals a fresh decode's and the from-the-definition value; a
    copy taken before the changes keeps the old hashes."""
    tree = RICH.copy()
    snapshot = tree.copy()
    old = snapshot.tree_hashes()
    spare = [leaf for _, leaf in RICH.leaves()]
    for op, k in ops:
        members = [li for li, _ in tree.leaves()]
        if op == "add":
            tree.add_leaf(spare[k % len(spare)])
        elif op == "remove" and len(members) > 1:
            tree.remove_leaf(members[k % len(members)])
        elif op == "update":
            li = members[k % len(members)]
            tree.update_leaf(li, spare[k % len(spare)])
        else:
            tree.tree_hash()
        tree.tree_hash(tree.root)
    fresh = RatchetTree.from_bytes(tree.to_bytes(), tree.suite)
    assert tree.tree_hashes() == fresh.tree_hashes() == [ref_tree_hash(tree, x) for x in range(tree.n_nodes)]
    for li, _ in tree.leaves():
        assert tree.filtered_direct_path(li) == ref_filtered_direct_path(tree, li)
    assert snapshot.tree_hashes() == old


def test_update_path_tree_hashes_are_fresh_and_the_input_tree_is_untouched():
    """create_update_path warms the input's cache and merges into a copy: the new tree's cached
    hashes (parent hashes rewritten along the path) equal a fresh decode's; the input is unchanged."""
    suite = CipherSuite.get(1)
    sig_priv, sig_pub = suite.generate_signature_key_pair()
    def leaf(i):
        _, enc = suite.generate_key_pair()
        return LeafNode(enc, sig_pub if i == 0 else suite.generate_signature_key_pair()[1],
                        Credential.basic(b"m%d" % i), Capabilities(cipher_suites=(1,)),
                        LeafNodeSource.KEY_PACKAGE, lifetime=Lifetime(0, 2 ** 63))

    tree = RatchetTree.create(suite, leaf(0))
    for i in range(1, 11):
        tree.add_leaf(leaf(i))
    before_bytes, before_hashes = tree.to_bytes(), tree.tree_hashes()
    gc = GroupContext(1, b"g" * 16, 1, b"", b"", ())
    res = create_update_path(tree, 0, gc, sig_priv)
    assert tree.to_bytes() == before_bytes and tree.tree_hashes() == before_hashes
    new = res.tree
    fresh = RatchetTree.from_bytes(new.to_bytes(), suite)
    assert new.tree_hashes() == fresh.tree_hashes()
    assert res.group_context.tree_hash == fresh.tree_hash()
    fresh.verify_parent_hashes()
    # a second path from another member on top: still consistent
    res2 = create_update_path(new, 5, replace(gc, epoch=2), sig_priv)
    fresh2 = RatchetTree.from_bytes(res2.tree.to_bytes(), suite)
    assert res2.tree.tree_hashes() == fresh2.tree_hashes()
    assert new.tree_hashes() == fresh.tree_hashes()


# --- KDF and KEM -----------------------------------------------------------------------------------

_HASH = {"sha256": (hashes.SHA256, 32), "sha384": (hashes.SHA384, 48), "sha512": (hashes.SHA512, 64)}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(_HASH)), st.binary(min_size=1, max_size=80), st.binary(max_size=120),
       st.integers(1, 300))
def test_hkdf_expand_equals_cryptography(name, prk, info, length):
    algo, nh = _HASH[name]
    length = min(length, 255 * nh)
    assert hkdf_expand(name, nh, prk, info, length) == HKDFExpand(algo(), length, info).derive(prk)


@pytest.mark.parametrize("suite_id", [1, 2, 3, 4, 5, 7])
def test_suite_expand_and_labels_equal_cryptography(suite_id):
    suite = CipherSuite.get(suite_id)
    algo = _HASH[suite.hash_name][0]
    prk = bytes(range(suite.hash_length))
    for length in (0, 1, suite.hash_length, suite.hash_length + 1, 3 * suite.hash_length):
        want = HKDFExpand(algo(), length, b"info").derive(prk) if length else b""
        assert suite.expand(prk, b"info", length) == want
    info = Writer().u16(16).vec(b"MLS 1.0 key").vec(b"ctx").getvalue()
    assert suite.expand_with_label(prk, "key", b"ctx", 16) == HKDFExpand(algo(), 16, info).derive(prk)


@pytest.mark.parametrize("kem_id", list(KemId))
def test_encap_decap_equal_the_rfc9180_composition(kem_id):
    """Encap/Decap load each key once; the result must be RFC 9180 §4.1's
    ``ExtractAndExpand(DH(skE, pkR), enc ‖ pkR)`` written with the public helpers."""
    k = kem(kem_id)
    sk_r, pk_r = k.derive_key_pair(b"recipient" * 4)
    sk_e, pk_e = k.derive_key_pair(b"ephemeral" * 4)
    shared, enc = k.encap(pk_r, ephemeral=sk_e)
    assert enc == pk_e == k.public_key(sk_e)
    assert shared == k._extract_and_expand(k.dh(sk_e, pk_r), pk_e + pk_r)
    assert k.decap(enc, sk_r) == shared
    # random ephemerals come from rng through DeriveKeyPair
    draws = []

    def rng(n):
        draws.append(os.urandom(n))
        return draws[-1]

    shared2, enc2 = k.encap(pk_r, rng=rng)
    assert len(draws) == 1 and enc2 == k.derive_key_pair(draws[0])[1]
    assert k.decap(enc2, sk_r) == shared2
    # auth mode
    sk_s, pk_s = k.derive_key_pair(b"sender" * 6)
    shared3, enc3 = k.auth_encap(pk_r, sk_s, ephemeral=sk_e)
    assert shared3 == k._extract_and_expand(k.dh(sk_e, pk_r) + k.dh(sk_s, pk_r), pk_e + pk_r + pk_s)
    assert k.auth_decap(enc3, sk_r, pk_s) == shared3


def test_encode_vec_used_by_tree_hash_matches_writer():
    for n in (0, 32, 63, 64, 100):
        assert encode_vec(b"x" * n) == Writer().vec(b"x" * n).getvalue()


@pytest.mark.parametrize("suite_id", [1, 2, 3, 4, 5, 6, 7])
def test_encrypt_with_label_fast_path_opens_with_the_written_out_hpke(suite_id):
    """EncryptWithLabel with OS randomness may run in cryptography's own HPKE; what it makes
    must open with our RFC 9180 code, for every suite (X448 suites stay on ours)."""
    import gbp_lab.core.mls.hpke as hp

    suite = CipherSuite.get(suite_id)
    sk, pk = suite.generate_key_pair()
    for pt in (b"", b"x" * suite.hash_length):
        kem_output, ct = suite.encrypt_with_label(pk, "UpdatePathNode", b"context", pt)
        assert len(kem_output) == suite.hpke.kem.Nenc
        assert suite.decrypt_with_label(sk, "UpdatePathNode", b"context", kem_output, ct) == pt
        info = CipherSuite._encrypt_context("UpdatePathNode", b"context")
        assert suite.hpke.setup_r(kem_output, sk, info).open(b"", ct) == pt  # written-out RFC 9180
    native = hp._native_suite(suite.hpke)
    assert (native is None) == (suite.hpke.kem.kind == "x448")


def test_seal_fast_path_is_skipped_for_injected_randomness_and_aad():
    """An injected rng (or ephemeral) must drive the ephemeral key: same rng, same output."""
    suite = CipherSuite.get(1)
    sk, pk = suite.generate_key_pair()
    seed = bytes(range(32))
    one = suite.hpke_seal(pk, b"info", b"", b"pt", rng=lambda n: seed[:n])
    two = suite.hpke_seal(pk, b"info", b"", b"pt", rng=lambda n: seed[:n])
    assert one == two
    enc, ct = suite.hpke_seal(pk, b"info", b"aad", b"pt")
    assert suite.hpke_open(sk, enc, b"info", b"aad", ct) == b"pt"


def test_seal_to_a_small_order_x25519_key_is_still_a_typed_error():
    from gbp_lab.core.errors import CryptoError

    suite = CipherSuite.get(1)
    with pytest.raises(CryptoError):
        suite.encrypt_with_label(bytes(32), "UpdatePathNode", b"", b"secret")


def test_commit_from_bytes_hands_back_only_the_commit_of_the_same_bytes():
    """Commit.from_bytes reuses the last decoded Commit only for identical bytes."""
    from gbp_lab.core.mls.commit import Commit
    from gbp_lab.core.mls.proposals import Proposal, ProposalOrRef, Remove

    one = Commit((ProposalOrRef(proposal=Proposal(Remove(1))),))
    two = Commit((ProposalOrRef(proposal=Proposal(Remove(2))),))
    b1, b2 = one.to_bytes(), two.to_bytes()
    r = Reader(b1)
    first = Commit.decode(r)
    assert Commit.from_bytes(b1) is first                     # reused: same bytes
    assert Commit.from_bytes(b2) == two                       # other bytes: decoded afresh
    assert Commit.from_bytes(b1) == one and Commit.from_bytes(b1).to_bytes() == b1
    with pytest.raises(DecodeError):
        Commit.from_bytes(b1 + b"\x00")                       # trailing bytes still refused
    with pytest.raises(DecodeError):
        Commit.from_bytes(b1[:-1])


def test_seal_with_os_urandom_patched_stays_deterministic(monkeypatch):
    """A seeded run that patches os.urandom must get the ephemeral from the patch, not from
    the native HPKE's own randomness."""
    suite = CipherSuite.get(1)
    sk, pk = suite.generate_key_pair()
    monkeypatch.setattr(os, "urandom", lambda n: b"\x07" * n)
    one = suite.hpke_seal(pk, b"info", b"", b"pt")
    two = suite.hpke_seal(pk, b"info", b"", b"pt", rng=os.urandom)
    assert one == two
    assert suite.hpke_open(sk, one[0], b"info", b"", one[1]) == b"pt"


def test_enum_lookups_equal_calling_the_enum():
    """enum_value/known read the enum's value map directly; same answers as ``cls(value)``."""
    from enum import IntEnum

    from gbp_lab.core.mls import registries

    enums = [v for v in vars(registries).values()
             if isinstance(v, type) and issubclass(v, IntEnum) and v is not IntEnum]
    assert len(enums) >= 8
    for cls in enums:
        for v in list(range(0, 12)) + [0x0A0A, 0xF000, 0xFFFF, 255, 256]:
            try:
                want = cls(v)
            except ValueError:
                want = None
            assert registries.known(cls, v) == (v if want is None else want)
            assert type(registries.known(cls, v)) is (int if want is None else cls)
            if want is None:
                with pytest.raises(DecodeError):
                    registries.enum_value(cls, v, "x")
            elif want.value == 0:
                with pytest.raises(DecodeError):
                    registries.enum_value(cls, v, "x")
                assert registries.enum_value(cls, v, "x", allow_reserved=True) is want
            else:
                assert registries.enum_value(cls, v, "x") is want


@pytest.mark.parametrize("suite_id", [1, 2, 3, 4, 5, 6, 7])
def test_open_fast_path_equals_the_written_out_open(suite_id, monkeypatch):
    """``Hpke.open`` (base mode, empty aad: every DecryptWithLabel) runs in cryptography's HPKE
    where it has the suite; it must give the written-out RFC 9180 result, and every failure —
    tampered ciphertext, wrong enc length, wrong key — stays our typed :class:`DecryptError` /
    :class:`DecodeError`."""
    import gbp_lab.core.mls.hpke as hp
    from gbp_lab.core.errors import DecryptError, ProtocolError

    suite = CipherSuite.get(suite_id)
    h = suite.hpke
    sk, pk = suite.generate_key_pair()
    eph, _ = suite.generate_key_pair()
    used = []
    real = hp._native_suite

    def spy(x):
        n = real(x)
        used.append(n is not None)
        return n

    monkeypatch.setattr(hp, "_native_suite", spy)
    enc, ct = h.seal(pk, b"info", b"", b"plaintext", ephemeral=eph)  # deterministic: written-out
    assert h.open(enc, sk, b"info", b"", ct) == b"plaintext"
    assert used and used[-1] == (h.kem.kind != "x448")
    assert h.setup_r(enc, sk, b"info").open(b"", ct) == b"plaintext"
    bad = bytearray(ct)
    bad[-1] ^= 1
    with pytest.raises(DecryptError):
        h.open(enc, sk, b"info", b"", bytes(bad))
    with pytest.raises(ProtocolError):  # enc one byte short: never re-split by the fast path
        h.open(enc[:-1], sk, b"info", b"", enc[-1:] + ct)
    other, _ = suite.generate_key_pair()
    with pytest.raises(DecryptError):
        h.open(enc, other, b"info", b"", ct)


def test_public_signature_keys_are_loaded_once_and_bad_keys_never_kept():
    """``signatures.load_public_key`` keeps loaded keys; a verification still runs every time
    (a bad signature under a kept key fails) and an invalid key is refused every time."""
    from gbp_lab.core.errors import SignatureError
    from gbp_lab.core.mls import signatures as sg

    for scheme in (sg.SignatureScheme.ED25519, sg.SignatureScheme.ECDSA_SECP256R1_SHA256):
        priv, pub = sg.generate_key_pair(scheme)
        assert sg.load_public_key(scheme, pub) is sg.load_public_key(int(scheme), bytearray(pub))
        sig = sg.sign(scheme, priv, b"message")
        sg.verify(scheme, pub, b"message", sig)
        with pytest.raises(SignatureError):
            sg.verify(scheme, pub, b"messagf", sig)
        bad = b"\x05" + pub[1:] if scheme != sg.SignatureScheme.ED25519 else pub[:-1]
        for _ in range(2):
            with pytest.raises(DecodeError):
                sg.load_public_key(scheme, bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 3), st.booleans())
def test_reader_fast_paths_equal_the_checked_reads(data, start, as_view):
    """``Reader.u8/u16/varint/vec`` try the common case inline; results, positions and typed
    errors must equal the checked reads built from ``_take`` (RFC 9420 §2.1.2 varints)."""
    from gbp_lab.core.errors import GbpLabError

    def ref_varint(buf, pos):
        if pos >= len(buf):
            raise DecodeError("t")
        prefix = buf[pos] >> 6
        if prefix == 3:
            raise DecodeError("p")
        n = 1 << prefix
        if pos + n > len(buf):
            raise DecodeError("t")
        v = int.from_bytes(buf[pos:pos + n], "big") & ((1 << (8 * n - 2)) - 1)
        if (n == 2 and v < 0x40) or (n == 4 and v < 0x4000):
            raise DecodeError("m")
        return v, pos + n

    def ref(kind, buf, pos):
        if kind == "u8":
            if pos + 1 > len(buf):
                raise DecodeError("t")
            return buf[pos], pos + 1
        if kind == "u16":
            if pos + 2 > len(buf):
                raise DecodeError("t")
            return int.from_bytes(buf[pos:pos + 2], "big"), pos + 2
        v, p = ref_varint(buf, pos)
        if kind == "varint":
            return v, p
        if p + v > len(buf):
            raise DecodeError("t")
        return bytes(buf[p:p + v]), p + v

    start = min(start, len(data))
    for kind in ("u8", "u16", "varint", "vec"):
        r = Reader(memoryview(data) if as_view else data, start)
        try:
            want = ref(kind, data, start)
        except DecodeError:
            with pytest.raises(GbpLabError):
                getattr(r, kind)()
            continue
        got = getattr(r, kind)()
        assert (got, r.pos) == want
        assert type(got) is (bytes if kind == "vec" else int)


def test_verified_signature_memo_answers_only_exact_repeats_of_successes(monkeypatch):
    """``signatures.verify`` keeps a digest of each (scheme, key, message, signature) that
    verified; a repeat is answered without the primitive, anything else runs it — a bad
    signature fails every time and is never kept."""
    from gbp_lab.core.errors import SignatureError
    from gbp_lab.core.mls import signatures as sg

    memo = sg.VerifiedSignatures(maxsize=3)
    monkeypatch.setattr(sg, "verified_signatures", memo)
    loads = []
    real_load = sg.load_public_key
    monkeypatch.setattr(sg, "load_public_key", lambda s, p: loads.append(p) or real_load(s, p))
    scheme = sg.SignatureScheme.ED25519
    priv, pub = sg.generate_key_pair(scheme)
    _, other = sg.generate_key_pair(scheme)
    sig = sg.sign(scheme, priv, b"m1")
    sg.verify(scheme, pub, b"m1", sig)
    assert (len(memo), memo.hits, len(loads)) == (1, 0, 1)
    sg.verify(scheme, bytearray(pub), b"m1", sig)  # the same triple: answered by the memo
    assert (len(memo), memo.hits, len(loads)) == (1, 1, 1)
    bad = bytes([sig[0] ^ 1]) + sig[1:]
    for pub_, msg, sig_ in ((pub, b"m1", bad), (pub, b"m2", sig), (other, b"m1", sig)):
        for _ in range(2):
            with pytest.raises(SignatureError):
                sg.verify(scheme, pub_, msg, sig_)
    assert (len(memo), memo.hits) == (1, 1)
    with pytest.raises(DecodeError):  # a malformed key is refused even next to a kept triple
        sg.verify(scheme, pub[:-1], b"m1", sig)
    for i in range(5):  # bounded: the oldest entries go first
        sg.verify(scheme, pub, b"x%d" % i, sg.sign(scheme, priv, b"x%d" % i))
    assert len(memo) == 3
    memo.enabled = False
    n = len(loads)
    sg.verify(scheme, pub, b"x4", sg.sign(scheme, priv, b"x4"))
    assert len(loads) == n + 1 and memo.hits == 1  # off: the primitive runs
    memo.clear()
    assert len(memo) == 0 and memo.hits == 0


def test_a_tampered_leaf_signature_fails_after_the_same_tree_was_accepted():
    """RFC 9420 §12.4.3.1 with the memo warm: the vector tree validates (its leaf signatures now
    kept); the same tree with one leaf's signature or content changed is still refused."""
    from gbp_lab.core.errors import SignatureError

    case = next(c for c in TREE_VALIDATION if c["cipher_suite"] == 1)
    tree = RatchetTree.from_bytes(bytes.fromhex(case["tree"]), 1)
    gid = bytes.fromhex(case["group_id"])
    tree.validate(gid)
    tree.validate(gid)  # warm
    li, leaf = next(iter(tree.leaves()))
    for changed in (replace(leaf, signature=bytes([leaf.signature[0] ^ 1]) + leaf.signature[1:]),
                    replace(leaf, capabilities=replace(leaf.capabilities, proposals=(0x0A0A,)))):
        bad = tree.copy()
        bad.set_node(2 * li, changed)
        with pytest.raises(SignatureError) as info:
            bad.verify_leaf_signatures(gid)
        assert info.value.vid == "MLS-TREE-LEAF-SIGNATURE"


def test_decoded_capabilities_are_kept_by_their_exact_bytes():
    """``Capabilities.decode`` hands back the kept value for bytes it decoded before (equal to a
    fresh split); other bytes, long lists and malformed lists take the checked path."""
    caps = Capabilities(cipher_suites=(1, 0x0A0A), extensions=(ExtensionType.RATCHET_TREE, 0xBABA),
                        proposals=(ProposalType.ADD,))
    data = caps.to_bytes()
    one, two = Capabilities.from_bytes(data), Capabilities.from_bytes(data + b"")
    assert one is two and one == caps and one == Capabilities._decode(Reader(data))
    assert type(one.extensions[1]) is int  # unknown (GREASE) values stay ints
    long = Capabilities(cipher_suites=tuple(range(1, 40)))  # a 78-byte list: 2-byte length
    assert Capabilities.from_bytes(long.to_bytes()) == long
    odd = bytearray(data)
    odd[0] += 1  # versions list of 3 bytes: the next vector is misread, then an odd length
    with pytest.raises(DecodeError):
        Capabilities.from_bytes(bytes(odd) + b"\x00")
    with pytest.raises(DecodeError):
        Capabilities.from_bytes(data[:-1])
