"""The MLS layers against the official RFC 9420 test vectors (vendored copies): every message of
``messages.json`` dissects to the right layer chain with the core's values and builds back to its
bytes; the PrivateMessages of ``message-protection.json`` decrypt (with a key store holding the
vector's sender-data and encryption secrets) to exactly the vector's proposal / commit /
application content."""
from __future__ import annotations

import gzip
import json
import pathlib

import pytest
from scapy.packet import Raw

from gbp_lab.core.mls import messages as core_msgs
from gbp_lab.core.mls.commit import Commit as CoreCommit
from gbp_lab.core.mls.framing import MLSMessage as CoreMLS
from gbp_lab.dissectors import (MLSCommit, MLSGroupInfo, MLSKeyPackage, MLSMessage,
                                MLSPrivateMessage, MLSProposal, MLSPublicMessage, MLSWelcome,
                                mls_layer, use_keylog)

VECTORS = pathlib.Path(__file__).parent / "vectors" / "mls"


def _load(name):
    with gzip.open(VECTORS / f"{name}.json.gz", "rt") as fh:
        return json.load(fh)


MESSAGES = _load("messages")[:25]
PROTECTION = _load("message-protection")

ENVELOPES = {
    "mls_welcome": (3, MLSWelcome),
    "mls_group_info": (4, MLSGroupInfo),
    "mls_key_package": (5, MLSKeyPackage),
    "public_message_application": (1, MLSPublicMessage),
    "public_message_proposal": (1, MLSPublicMessage),
    "public_message_commit": (1, MLSPublicMessage),
    "private_message": (2, MLSPrivateMessage),
}


@pytest.fixture(autouse=True)
def _reset():
    use_keylog(None)
    yield
    use_keylog(None)


@pytest.mark.parametrize("case", range(len(MESSAGES)))
def test_messages_vector(case):
    vec = MESSAGES[case]
    for field, (wf, layer) in ENVELOPES.items():
        data = bytes.fromhex(vec[field])
        pkt = mls_layer(data)
        core = CoreMLS.from_bytes(data)
        assert isinstance(pkt, MLSMessage) and pkt.wire_format == wf == core.wire_format, field
        body = pkt[layer]
        assert body.getfieldval("error") is None, (field, body.error)
        assert bytes(pkt) == data and bytes(body) == data[4:]
        m = core.message
        if layer is MLSPublicMessage:
            assert (bytes(body.group_id), body.epoch, body.content_type) == (
                m.content.group_id, m.content.epoch, m.content.content_type)
            assert bytes(body.signature) == m.auth.signature
            child = body.payload
            if m.content.content_type == 1:
                assert isinstance(child, Raw) and child.load == m.content.body
            else:
                assert bytes(child) == m.content.body
                assert isinstance(child, MLSCommit if m.content.content_type == 3 else MLSProposal)
        elif layer is MLSPrivateMessage:
            assert (bytes(body.ciphertext), body.epoch) == (m.ciphertext, m.epoch)
            assert "no key log" in body.crypto
        elif layer is MLSWelcome:
            assert (body.cipher_suite, body.secrets_count) == (m.cipher_suite, len(m.secrets))
        elif layer is MLSGroupInfo:
            assert (body.epoch, body.signer, bytes(body.group_id)) == (
                m.group_context.epoch, m.signer, m.group_context.group_id)
        else:
            assert bytes(body.init_key) == m.init_key
        body.show(dump=True)
        pkt.summary()
    commit = bytes.fromhex(vec["commit"])
    c = MLSCommit(commit)
    core_c = CoreCommit.from_bytes(commit)
    assert c.proposal_count == len(core_c.proposals) and bytes(c) == commit
    assert len(c.proposals) == sum(1 for p in core_c.proposals if p.proposal is not None)
    assert c.path.startswith("absent" if core_c.path is None else "present")


class _Store:
    """A key store for the vectors' group ids (32-64 bytes, which the key-log file format does
    not take) — duck-typed like KeyLog."""

    def __init__(self, vec):
        self.gid = bytes.fromhex(vec["group_id"])
        self.epoch = vec["epoch"]
        self.vec = vec

    def _get(self, name, gid, epoch):
        if bytes(gid) == self.gid and epoch == self.epoch:
            return bytes.fromhex(self.vec[name])
        return None

    def exporter_secret(self, gid, epoch):
        return None

    def sender_data_secret(self, gid, epoch):
        return self._get("sender_data_secret", gid, epoch)

    def encryption_secret(self, gid, epoch):
        return self._get("encryption_secret", gid, epoch)

    def suite(self, gid):
        return self.vec["cipher_suite"]


@pytest.mark.parametrize("case", range(len(PROTECTION)))
def test_message_protection_vector_decrypts(case):
    vec = PROTECTION[case]
    from gbp_lab.core.mls.suites import CipherSuite
    from gbp_lab.core.errors import UsageError

    try:
        CipherSuite.get(vec["cipher_suite"])
    except UsageError:
        pytest.skip(f"suite {vec['cipher_suite']} not in the core")
    use_keylog(_Store(vec))
    for kind, layer in (("proposal", MLSProposal), ("commit", MLSCommit), ("application", Raw)):
        priv = bytes.fromhex(vec[f"{kind}_priv"])
        pkt = mls_layer(priv)
        pm = pkt[MLSPrivateMessage]
        assert pm.crypto.startswith("decrypted"), (kind, pm.crypto)
        assert pm.leaf_index == "1"  # the vectors' sender
        child = pm.payload
        assert isinstance(child, layer)
        assert bytes(child) == bytes.fromhex(vec[kind])
        assert bytes(pkt) == priv
        if kind != "application":  # application data is never a PublicMessage
            pub = mls_layer(bytes.fromhex(vec[f"{kind}_pub"]))
            assert bytes(pub[MLSPublicMessage].payload) == bytes.fromhex(vec[kind])
    # another epoch: nothing to decrypt with, said so
    use_keylog(None)
    pm = mls_layer(bytes.fromhex(vec["commit_priv"]))[MLSPrivateMessage]
    assert "no key log" in pm.crypto and not pm.payload


def test_build_envelope_from_core_objects():
    vec = MESSAGES[0]
    welcome = CoreMLS.from_bytes(bytes.fromhex(vec["mls_welcome"])).message
    pkt = MLSMessage(wire_format=3) / MLSWelcome.from_core(welcome)
    assert bytes(pkt) == bytes.fromhex(vec["mls_welcome"])
    assert isinstance(welcome, core_msgs.Welcome)
