"""Pre-shared keys a member knows: external PSKs and resumption PSKs of past epochs (RFC 9420 §8.4,
§8.6, §12.1.4).

A :class:`PskStore` answers "what is the value of this ``PreSharedKeyID``?" for the key
schedule of a Commit (ours or a received one, :func:`~.group.create_commit` /
:func:`~.group.process_message`) and for a Welcome (:func:`~.group.join_group`):

* **external** PSKs (``psktype = external``) are registered by the application under their
  ``psk_id`` (:meth:`PskStore.add_external`);
* **resumption** PSKs (``psktype = resumption``) are the ``resumption_psk`` of an epoch
  (:class:`~.schedule.EpochSecrets`, §8): the store remembers the ones of every epoch it is shown
  (:meth:`PskStore.remember`, bounded), and a :meth:`resolver` bound to a current
  :class:`~.group.GroupState` also finds the ones that state keeps for its own group.

The resolver is a plain callable ``PreSharedKeyID -> bytes | None``, the form the group module
and :func:`~.welcome.process_welcome` accept.

:func:`check_psk_id` holds the §12.1.4 validity rules of a PreSharedKey proposal (nonce of
``Nh`` bytes; resumption usage ``reinit``/``branch`` only while creating a re-initialised or
branched group) — called from :func:`~.proposal_validation.apply_proposals`.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Callable, Dict, Optional, Tuple, Union

from ..errors import UsageError
from .group_state import GroupState, ProposalError
from .psk import PreSharedKeyID
from .registries import PSKType, ResumptionPSKUsage
from .suites import CipherSuite

Rng = Callable[[int], bytes]
Resolver = Callable[[PreSharedKeyID], Optional[bytes]]

#: resumption PSKs a store keeps (oldest forgotten first)
DEFAULT_MAX_RESUMPTION = 256


class PskStore:
    """External PSKs by ``psk_id`` and resumption PSKs by ``(group_id, epoch)`` (see the module
    docstring). Mutable; not thread-safe."""

    def __init__(self, *, max_resumption: int = DEFAULT_MAX_RESUMPTION) -> None:
        if max_resumption < 1:
            raise UsageError("max_resumption must be >= 1", vid="MLS-PSK-STORE")
        self._external: Dict[bytes, bytes] = {}
        self._resumption: "OrderedDict[Tuple[bytes, int], bytes]" = OrderedDict()
        self._max = max_resumption

    # -- external PSKs ----------------------------------------------------------------------------
    def add_external(self, psk_id: Union[bytes, str], secret: bytes) -> None:
        """Register (or replace) the external PSK ``psk_id`` (RFC 9420 §8.4, ``psktype = external``)."""
        pid = psk_id.encode("utf-8") if isinstance(psk_id, str) else bytes(psk_id)
        if not pid:
            raise UsageError("an external PSK needs a non-empty psk_id", vid="MLS-PSK-ID")
        if not isinstance(secret, (bytes, bytearray)) or not secret:
            raise UsageError("an external PSK needs a non-empty secret", vid="MLS-PSK-SECRET")
        self._external[pid] = bytes(secret)

    def remove_external(self, psk_id: Union[bytes, str]) -> None:
        pid = psk_id.encode("utf-8") if isinstance(psk_id, str) else bytes(psk_id)
        self._external.pop(pid, None)

    def external_ids(self) -> Tuple[bytes, ...]:
        return tuple(self._external)

    # -- resumption PSKs --------------------------------------------------------------------------
    def remember(self, group_id: bytes, epoch: int, resumption_psk: bytes) -> None:
        """Keep the ``resumption_psk`` of ``(group_id, epoch)`` (§8.6)."""
        key = (bytes(group_id), int(epoch))
        self._resumption[key] = bytes(resumption_psk)
        self._resumption.move_to_end(key)
        while len(self._resumption) > self._max:
            self._resumption.popitem(last=False)

    def remember_state(self, state: GroupState) -> None:
        """Keep the resumption PSK of a :class:`~.group.GroupState`'s current epoch."""
        self.remember(state.group_id, state.epoch, state.secrets.resumption_psk.reveal())

    def resumption(self, group_id: bytes, epoch: int) -> Optional[bytes]:
        return self._resumption.get((bytes(group_id), int(epoch)))

    # -- lookup -----------------------------------------------------------------------------------
    def lookup(self, pid: PreSharedKeyID, state: Optional[GroupState] = None) -> Optional[bytes]:
        """The value of ``pid`` or ``None``. With ``state``, the resumption PSKs that state keeps
        for its own group are searched first."""
        if pid.psktype == PSKType.EXTERNAL:
            return self._external.get(pid.psk_id)
        if pid.psktype == PSKType.RESUMPTION:
            if state is not None and pid.psk_group_id == state.group_id:
                value = state.resumption_psks.get(pid.psk_epoch)
                if value is not None:
                    return value
            return self.resumption(pid.psk_group_id, pid.psk_epoch)
        return None  # pragma: no cover - PSKType has no other decodable value

    def resolver(self, state: Optional[GroupState] = None) -> Resolver:
        """A callable ``PreSharedKeyID -> bytes | None`` over this store (and ``state``)."""
        return lambda pid: self.lookup(pid, state)

    def __repr__(self) -> str:
        return f"PskStore(external={len(self._external)}, resumption={len(self._resumption)})"


# --- building ids ----------------------------------------------------------------------------------

def new_nonce(suite: CipherSuite, rng: Optional[Rng] = None) -> bytes:
    """A fresh ``psk_nonce`` of ``KDF.Nh`` bytes (§8.4: randomly sampled, length Nh)."""
    return (rng or os.urandom)(suite.hash_length)


def external_psk_id(suite: CipherSuite, psk_id: Union[bytes, str], rng: Optional[Rng] = None) -> PreSharedKeyID:
    """A ``PreSharedKeyID`` for the external PSK ``psk_id`` with a fresh nonce."""
    pid = psk_id.encode("utf-8") if isinstance(psk_id, str) else bytes(psk_id)
    return PreSharedKeyID.external(pid, new_nonce(suite, rng))


def resumption_psk_id(suite: CipherSuite, group_id: bytes, epoch: int,
                      usage: ResumptionPSKUsage = ResumptionPSKUsage.APPLICATION,
                      rng: Optional[Rng] = None) -> PreSharedKeyID:
    """A ``PreSharedKeyID`` for the resumption PSK of ``(group_id, epoch)`` with a fresh nonce."""
    return PreSharedKeyID.resumption(usage, group_id, epoch, new_nonce(suite, rng))


# --- validity (§12.1.4) ------------------------------------------------------------------------------

def check_psk_id(suite: CipherSuite, pid: PreSharedKeyID, *, creating_group: bool) -> None:
    """RFC 9420 §12.1.4: a PreSharedKey proposal is invalid if its ``psk_nonce`` is not ``Nh``
    bytes, or if it names a resumption PSK of usage ``reinit``/``branch`` outside the creation of a
    re-initialised / branched group (``creating_group``: the commit moves a fresh group from
    epoch 0 to 1). Raises :class:`~.group_state.ProposalError`."""
    if len(pid.psk_nonce) != suite.hash_length:
        raise ProposalError(f"psk_nonce has {len(pid.psk_nonce)} bytes, not Nh={suite.hash_length}",
                            vid="MLS-PROPOSAL-PSK-NONCE")
    if (pid.psktype == PSKType.RESUMPTION and pid.usage is not None
            and pid.usage != ResumptionPSKUsage.APPLICATION and not creating_group):
        raise ProposalError(f"resumption PSK of usage {ResumptionPSKUsage(pid.usage).name} outside a "
                            "reinit/branch", vid="MLS-PROPOSAL-PSK-USAGE")


__all__ = ["PskStore", "Resolver", "DEFAULT_MAX_RESUMPTION", "new_nonce", "external_psk_id",
           "resumption_psk_id", "check_psk_id"]
