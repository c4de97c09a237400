"""``gbp_lab.core.mls.observer.open_private_message``: an observer with only the epoch's
sender-data and encryption secrets opens real PrivateMessages (our groups of 1, 3, 5 and 9
members, several senders, commits and application data; the reference's commits) and finds the
padded tree width; the failures are typed."""
from __future__ import annotations

import pytest

from gbp_lab.core.errors import DecryptError, GbpLabError
from gbp_lab.core.keylog import KeyLog
from gbp_lab.core.mls.commit import Commit
from gbp_lab.core.mls.context import MlsContext
from gbp_lab.core.mls.framing import MLSMessage, PrivateMessage, SenderDataDecryptError
from gbp_lab.core.mls.observer import (MAX_OBSERVED_LEAVES, NoTreeSizeOpensError, OpenedPrivateMessage,
                                       candidate_widths, open_private_message)
from gbp_lab.core.mls.registries import ContentType, WireFormat
from gbp_lab.core.mls.suites import CipherSuite


def _group(n: int, suite: int = 1):
    """``n`` members of one group (the first invites the rest in one commit)."""
    creator = MlsContext.create("m0", ciphersuite=suite)
    others = [MlsContext.create(f"m{i}", ciphersuite=suite) for i in range(1, n)]
    if others:
        _commit, welcome = creator.invite_many([o.export_key_package() for o in others])
        creator.finalize_commit()
        for o in others:
            o.accept_welcome(welcome)
    return [creator] + others


def _private(data: bytes) -> PrivateMessage:
    msg = MLSMessage.from_bytes(data)
    assert msg.wire_format == WireFormat.MLS_PRIVATE_MESSAGE
    assert isinstance(msg.message, PrivateMessage)
    return msg.message


def _secrets(ctx):
    s = ctx.epoch_secrets
    return s.sender_data_secret.reveal(), s.encryption_secret.reveal()


def _padded(n: int) -> int:
    w = 1
    while w < n:
        w *= 2
    return w


@pytest.mark.parametrize("n", [1, 3, 5, 9])
def test_opens_our_groups_application_and_commits(n):
    members = _group(n)
    suite = CipherSuite.get(1)
    sds, enc = _secrets(members[0])
    assert all(_secrets(m) == (sds, enc) for m in members)
    senders = sorted({0, n // 2, n - 1})
    for leaf in senders:
        ctx = members[leaf]
        assert ctx.own_leaf_index == leaf
        for i in range(3):  # a few generations of the application ratchet
            data = f"hello {leaf} {i}".encode()
            opened = open_private_message(_private(ctx.send_application(data)), suite, sds, enc)
            assert isinstance(opened, OpenedPrivateMessage)
            assert (opened.leaf_index, opened.generation) == (leaf, i)
            assert opened.content.content_type == ContentType.APPLICATION
            assert opened.content.body == data and opened.content.sender.index == leaf
            assert opened.leaves == _padded(n)
    # a commit (handshake ratchet) from the last member, a PrivateMessage by default
    last = members[-1]
    commit = open_private_message(_private(last.self_update()), suite, sds, enc)
    assert commit.content.content_type == ContentType.COMMIT and commit.leaf_index == n - 1
    assert commit.auth.confirmation_tag
    assert Commit.from_bytes(commit.content.body).path is not None
    assert commit.leaves == _padded(n)


def test_other_suite_and_the_next_epoch():
    members = _group(3, suite=3)
    suite = CipherSuite.get(3)
    members[1].self_update()
    members[1].finalize_commit()
    sds, enc = _secrets(members[1])
    msg = _private(members[1].send_application(b"x"))
    opened = open_private_message(msg, suite, sds, enc)
    assert (opened.leaf_index, opened.leaves, opened.content.body) == (1, 4, b"x")


def test_typed_failures():
    members = _group(3)
    suite = CipherSuite.get(1)
    sds, enc = _secrets(members[0])
    msg = _private(members[2].send_application(b"secret"))
    with pytest.raises(SenderDataDecryptError) as ei:
        open_private_message(msg, suite, bytes(len(sds)), enc)
    assert ei.value.vid == "MLS-SENDER-DATA-DECRYPT" and isinstance(ei.value, DecryptError)
    with pytest.raises(NoTreeSizeOpensError) as ei2:
        open_private_message(msg, suite, sds, bytes(len(enc)), max_leaves=64)
    e = ei2.value
    assert e.vid == "MLS-OBSERVER-TREE-SIZE" and isinstance(e, DecryptError) and isinstance(e, GbpLabError)
    assert "4 … 64" in e.message
    # the right secret but a bound below the group's width: no width opens
    with pytest.raises(NoTreeSizeOpensError):
        open_private_message(msg, suite, sds, enc, max_leaves=2)
    # and the message is still readable with the default bound (nothing was consumed)
    assert open_private_message(msg, suite, sds, enc).content.body == b"secret"


def test_candidate_widths_policy():
    assert list(candidate_widths(0, 8)) == [1, 2, 4, 8]
    assert list(candidate_widths(4, 64)) == [8, 16, 32, 64]
    assert list(candidate_widths(7, 8)) == [8]
    assert list(candidate_widths(8, 8)) == []
    assert list(candidate_widths(0))[-1] == MAX_OBSERVED_LEAVES


def test_opens_reference_commits():
    gbp_stack = pytest.importorskip("gbp_stack")
    alice = gbp_stack.MlsContext.create("alice")
    bob = gbp_stack.MlsContext.create("bob")
    carol = gbp_stack.MlsContext.create("carol")
    try:
        alice.invite(bob.export_key_package())
        # the key log before the commit: the reference's state still holds the secret-tree root
        log = KeyLog.from_gbp_stack_state(alice.export_state())
        gid, ep = alice.group_id, alice.epoch
        sds, enc = log.sender_data_secret(gid, ep), log.encryption_secret(gid, ep)
        assert sds is not None and enc is not None
        suite = CipherSuite.get(log.suite(gid))
        commit, _welcome = alice.invite_full(carol.export_key_package())
        opened = open_private_message(_private(commit), suite, sds, enc)
        assert opened.content.content_type == ContentType.COMMIT
        assert (opened.leaf_index, opened.leaves) == (0, 2)
        assert len(Commit.from_bytes(opened.content.body).proposals) == 1
    finally:
        for c in (alice, bob, carol):
            c.close()
