"""The gbp-lab key log: MLS epoch secrets in a text file, like TLS's SSLKEYLOGFILE.

Format — one record per line, fields separated by spaces, ``#`` starts a comment (a whole line or
the rest of a line), blank lines ignored::

    MLS_EXPORTER_SECRET    <group_id: 32 hex> <epoch: decimal> <secret: hex>
    MLS_SENDER_DATA_SECRET <group_id> <epoch> <secret>
    MLS_ENCRYPTION_SECRET  <group_id> <epoch> <secret>
    MLS_EPOCH_SECRET       <group_id> <epoch> <secret>
    MLS_CIPHER_SUITE       <group_id> <suite id, decimal>      (optional; default 1)

The secrets are the RFC 9420 §8 key-schedule outputs of that epoch: ``exporter_secret`` (what the
GBP stream keys come from, :mod:`gbp_lab.core.gbp.aead`), ``sender_data_secret`` and
``encryption_secret`` (the secret-tree root, §9) for PrivateMessage, ``epoch_secret``.

TLS key-log lines (SSLKEYLOGFILE: ``CLIENT_TRAFFIC_SECRET_0 <client random> <secret>`` …, written
beside the MLS lines by the QUIC members) are kept as such lines and looked up by
:meth:`KeyLog.tls_secrets`. Lines with another first word are kept verbatim and written back by :meth:`KeyLog.dump` but
otherwise ignored (forward compatibility). A malformed line raises
:class:`~gbp_lab.core.errors.KeyLogError` with ``where`` = its line number. The same record twice
is fine (appending writers repeat themselves); two different secrets for one (label, group,
epoch), or two suites for one group, are an error.

:meth:`KeyLog.from_gbp_stack_state` builds a log from the reference's ``MlsContext.export_state()``
blob (openmls storage; see :func:`parse_gbp_stack_state`).
"""
from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple, Union, cast

from .errors import KeyLogError, UsageError
from .mls.suites import CipherSuiteId

EXPORTER = "MLS_EXPORTER_SECRET"
SENDER_DATA = "MLS_SENDER_DATA_SECRET"
ENCRYPTION = "MLS_ENCRYPTION_SECRET"
EPOCH = "MLS_EPOCH_SECRET"
CIPHER_SUITE = "MLS_CIPHER_SUITE"
SECRET_LABELS = (EXPORTER, SENDER_DATA, ENCRYPTION, EPOCH)
DEFAULT_SUITE = 1
GROUP_ID_LENGTH = 16

_HEX = re.compile(r"\A[0-9a-fA-F]+\Z")
_DEC = re.compile(r"\A[0-9]+\Z")


def is_tls_line(line: str) -> bool:
    """Is this key-log line an SSLKEYLOGFILE record (``LABEL <client random: 64 hex>
    <secret: hex>``, e.g. ``CLIENT_TRAFFIC_SECRET_0``)? Comments are ignored."""
    f = line.split("#", 1)[0].split()
    return (len(f) == 3 and f[0] not in SECRET_LABELS and f[0] != CIPHER_SUITE
            and re.match(r"\A[A-Z][A-Z0-9_]*\Z", f[0]) is not None and len(f[1]) == 64
            and bool(_HEX.match(f[1])) and bool(_HEX.match(f[2])) and not len(f[2]) % 2)


def split_tls_lines(text: str) -> Tuple[str, str]:
    """``(gbp text, tls text)``: key-log text split into the TLS lines (:func:`is_tls_line`,
    for the standard TLS key-log secrets block) and everything else (our ``GBPK`` block)."""
    gbp: List[str] = []
    tls: List[str] = []
    for line in text.splitlines():
        (tls if is_tls_line(line) else gbp).append(line + "\n")
    return "".join(gbp), "".join(tls)


class KeyLogEntry(NamedTuple):
    """One secret of the log."""

    label: str
    group_id: bytes
    epoch: int
    secret: bytes

    def line(self) -> str:
        return f"{self.label} {self.group_id.hex()} {self.epoch} {self.secret.hex()}"


class StateBlobError(KeyLogError):
    """The reference's ``export_state`` blob is malformed."""

    default_vid = "KEYLOG-STATE"


def _check_gid(group_id: bytes) -> bytes:
    if not isinstance(group_id, (bytes, bytearray)) or len(group_id) != GROUP_ID_LENGTH:
        raise UsageError("group_id must be 16 bytes", vid="KEYLOG-GID")
    return bytes(group_id)


class KeyLog:
    """A set of MLS epoch secrets by (label, group id, epoch), plus a cipher suite per group."""

    def __init__(self) -> None:
        self._secrets: Dict[Tuple[str, bytes, int], bytes] = {}
        self._suites: Dict[bytes, int] = {}
        self._unknown: List[str] = []
        #: tls_secrets' index: (unknown lines indexed, client random → {label: secret})
        self._tls_index: Optional[Tuple[int, Dict[bytes, Dict[str, bytes]]]] = None
        # dump order: ("s", key) | ("c", gid) | ("u", index)
        self._order: List[Tuple[str, object]] = []

    # -- reading -------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> "KeyLog":
        """Parse key-log text (see the module docstring)."""
        log = cls()
        log.extend_text(text)
        return log

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "KeyLog":
        """Read a key-log file (UTF-8)."""
        with open(path, "r", encoding="utf-8") as fh:
            return cls.parse(fh.read())

    def extend_text(self, text: str) -> None:
        """Add every record of *text* (line numbers in errors are 1-based within *text*)."""
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            label = fields[0]
            if label in SECRET_LABELS:
                if len(fields) != 4:
                    raise KeyLogError(f"{label} needs 3 fields, got {len(fields) - 1}",
                                      vid="KEYLOG-FIELDS", where=lineno)
                gid = self._parse_gid(fields[1], lineno)
                if not _DEC.match(fields[2]) or int(fields[2]) >= 1 << 64:
                    raise KeyLogError(f"epoch {fields[2]!r} is not a decimal u64",
                                      vid="KEYLOG-EPOCH", where=lineno)
                if not _HEX.match(fields[3]) or len(fields[3]) % 2:
                    raise KeyLogError("secret is not an even-length hex string",
                                      vid="KEYLOG-SECRET", where=lineno)
                self._add(label, gid, int(fields[2]), bytes.fromhex(fields[3]), lineno)
            elif label == CIPHER_SUITE:
                if len(fields) != 3:
                    raise KeyLogError(f"{label} needs 2 fields, got {len(fields) - 1}",
                                      vid="KEYLOG-FIELDS", where=lineno)
                gid = self._parse_gid(fields[1], lineno)
                if not _DEC.match(fields[2]) or int(fields[2]) > 0xFFFF:
                    raise KeyLogError(f"suite {fields[2]!r} is not a decimal u16",
                                      vid="KEYLOG-SUITE", where=lineno)
                self._set_suite(gid, int(fields[2]), lineno)
            elif re.match(r"\A[A-Z][A-Z0-9_]*\Z", label):
                self._unknown.append(line)
                self._order.append(("u", len(self._unknown) - 1))
            else:
                raise KeyLogError(f"not a key-log record: {label!r}", vid="KEYLOG-LABEL",
                                  where=lineno)

    @staticmethod
    def _parse_gid(text: str, lineno: int) -> bytes:
        if len(text) != 2 * GROUP_ID_LENGTH or not _HEX.match(text):
            raise KeyLogError("group id must be 32 hex digits", vid="KEYLOG-GID", where=lineno)
        return bytes.fromhex(text)

    # -- writing -------------------------------------------------------------------------------
    def _add(self, label: str, gid: bytes, epoch: int, secret: bytes, where) -> None:
        k = (label, gid, epoch)
        old = self._secrets.get(k)
        if old is not None:
            if old != secret:
                raise KeyLogError(f"conflicting {label} for group {gid.hex()} epoch {epoch}",
                                  vid="KEYLOG-CONFLICT", where=where)
            return
        self._secrets[k] = secret
        self._order.append(("s", k))

    def _set_suite(self, gid: bytes, suite: int, where) -> None:
        old = self._suites.get(gid)
        if old is not None:
            if old != suite:
                raise KeyLogError(f"conflicting cipher suite for group {gid.hex()}",
                                  vid="KEYLOG-CONFLICT", where=where)
            return
        self._suites[gid] = suite
        self._order.append(("c", gid))

    def add(self, label: str, group_id: bytes, epoch: int, secret: bytes) -> None:
        """Add one secret (:class:`KeyLogError` on a conflicting duplicate)."""
        if label not in SECRET_LABELS:
            raise UsageError(f"unknown secret label {label!r}", vid="KEYLOG-LABEL")
        if not isinstance(epoch, int) or not 0 <= epoch < 1 << 64:
            raise UsageError(f"epoch {epoch!r} out of range", vid="KEYLOG-EPOCH")
        if not isinstance(secret, (bytes, bytearray)) or not secret:
            raise UsageError("secret must be non-empty bytes", vid="KEYLOG-SECRET")
        self._add(label, _check_gid(group_id), epoch, bytes(secret), None)

    def set_suite(self, group_id: bytes, suite: int) -> None:
        """Record the MLS cipher suite of a group."""
        if not isinstance(suite, int) or not 0 <= suite <= 0xFFFF:
            raise UsageError(f"suite {suite!r} out of range", vid="KEYLOG-SUITE")
        self._set_suite(_check_gid(group_id), suite, None)

    def update(self, other: "KeyLog") -> None:
        """Merge another log into this one (conflicts raise)."""
        for e in other:
            self._add(e.label, e.group_id, e.epoch, e.secret, None)
        for gid, suite in other._suites.items():
            self._set_suite(gid, suite, None)
        for line in other._unknown:
            self._unknown.append(line)
            self._order.append(("u", len(self._unknown) - 1))

    # -- queries -------------------------------------------------------------------------------
    def get(self, label: str, group_id: bytes, epoch: int) -> Optional[bytes]:
        """The secret for (label, group, epoch), ``None`` if absent."""
        return self._secrets.get((label, bytes(group_id), epoch))

    def exporter_secret(self, group_id: bytes, epoch: int) -> Optional[bytes]:
        if type(group_id) is not bytes:
            group_id = bytes(group_id)
        return self._secrets.get((EXPORTER, group_id, epoch))

    def sender_data_secret(self, group_id: bytes, epoch: int) -> Optional[bytes]:
        if type(group_id) is not bytes:
            group_id = bytes(group_id)
        return self._secrets.get((SENDER_DATA, group_id, epoch))

    def encryption_secret(self, group_id: bytes, epoch: int) -> Optional[bytes]:
        if type(group_id) is not bytes:
            group_id = bytes(group_id)
        return self._secrets.get((ENCRYPTION, group_id, epoch))

    def epoch_secret(self, group_id: bytes, epoch: int) -> Optional[bytes]:
        if type(group_id) is not bytes:
            group_id = bytes(group_id)
        return self._secrets.get((EPOCH, group_id, epoch))

    def suite(self, group_id: bytes) -> int:
        """The group's cipher suite (1 when the log does not say)."""
        if type(group_id) is not bytes:
            group_id = bytes(group_id)
        return self._suites.get(group_id, DEFAULT_SUITE)

    @property
    def suites(self) -> Dict[bytes, int]:
        return dict(self._suites)

    @property
    def unknown_lines(self) -> Tuple[str, ...]:
        """Records with a label this version does not know, verbatim (comments stripped)."""
        return tuple(self._unknown)

    def tls_secrets(self, client_random: bytes) -> Dict[str, bytes]:
        """The TLS secrets of one connection by SSLKEYLOGFILE label (``CLIENT_TRAFFIC_SECRET_0``
        …: ``LABEL <client random: 64 hex> <secret: hex>`` lines, kept among the unknown lines),
        found by the ClientHello random (QUIC decryption, :mod:`gbp_lab.core.quic.observer`);
        empty when the log has none. The index is rebuilt when lines were added."""
        cache = self._tls_index
        if cache is None or cache[0] != len(self._unknown):
            index: Dict[bytes, Dict[str, bytes]] = {}
            for line in self._unknown:
                f = line.split()
                if is_tls_line(line):
                    index.setdefault(bytes.fromhex(f[1]), {})[f[0]] = bytes.fromhex(f[2])
            cache = self._tls_index = (len(self._unknown), index)
        return cache[1].get(bytes(client_random), {})

    def groups(self) -> List[bytes]:
        """Group ids with at least one secret, in first-seen order."""
        return list(dict.fromkeys(k[1] for k in self._secrets))

    def epochs(self, group_id: bytes, label: str = EXPORTER) -> List[int]:
        """Sorted epochs of *group_id* that have a *label* secret."""
        return sorted(e for (lb, g, e) in self._secrets if lb == label and g == group_id)

    def __len__(self) -> int:
        return len(self._secrets)

    def __iter__(self) -> Iterator[KeyLogEntry]:
        for kind, k in self._order:
            if kind == "s":
                sk = cast(Tuple[str, bytes, int], k)  # "s" entries hold a secret's key
                yield KeyLogEntry(sk[0], sk[1], sk[2], self._secrets[sk])

    def __contains__(self, key: object) -> bool:
        return key in self._secrets

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyLog):
            return NotImplemented
        return (self._secrets == other._secrets and self._suites == other._suites
                and sorted(self._unknown) == sorted(other._unknown))

    def __repr__(self) -> str:
        return f"KeyLog({len(self)} secrets, {len(self.groups())} groups)"

    # -- output --------------------------------------------------------------------------------
    def lines(self) -> List[str]:
        out = []
        for kind, k in self._order:
            if kind == "s":
                sk = cast(Tuple[str, bytes, int], k)  # "s" entries hold a secret's key
                out.append(KeyLogEntry(sk[0], sk[1], sk[2], self._secrets[sk]).line())
            elif kind == "c":
                gid = cast(bytes, k)  # "c" entries hold a group id
                out.append(f"{CIPHER_SUITE} {gid.hex()} {self._suites[gid]}")
            else:
                out.append(self._unknown[cast(int, k)])  # "u" entries hold an index
        return out

    def dump(self) -> str:
        """The log as text, records in insertion order, one per line (comments are not kept)."""
        lines = self.lines()
        return "\n".join(lines) + "\n" if lines else ""

    def append_to(self, path: Union[str, os.PathLike]) -> None:
        """Append every record to *path* (created if missing), MLS_KEYLOGFILE style.

        Appending the same log twice is harmless: repeated identical records are accepted when the
        file is read back. A file this creates is owner-only (mode 0600, as ``SSLKEYLOGFILE``
        writers such as NSS do): it holds secrets. An existing file keeps its mode.
        """
        text = self.dump()
        if not text:
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(text)

    # -- from the reference's state blob -------------------------------------------------------
    @classmethod
    def from_gbp_stack_state(cls, state: bytes, *, all_groups: bool = False) -> "KeyLog":
        """Secrets of the current epoch of the context's group in a ``gbp_stack``
        ``export_state()`` blob: exporter and sender-data secrets always, the encryption secret
        (secret-tree root) when the tree still holds it, and the cipher suite. (openmls does not
        store the epoch secret, so ``MLS_EPOCH_SECRET`` is never produced.)

        A member that joined by Welcome still has its own single-member group in storage; only
        the current group (the blob's group-id section) is taken unless *all_groups* is set.
        """
        log = cls()
        for g in parse_gbp_stack_state(state, all_groups=all_groups):
            gid = g.group_id
            if len(gid) != GROUP_ID_LENGTH:
                raise StateBlobError(f"group id of {len(gid)} bytes", vid="KEYLOG-STATE-GID")
            log._add(EXPORTER, gid, g.epoch, g.exporter_secret, None)
            log._add(SENDER_DATA, gid, g.epoch, g.sender_data_secret, None)
            if g.encryption_secret is not None:
                log._add(ENCRYPTION, gid, g.epoch, g.encryption_secret, None)
            log._set_suite(gid, g.suite, None)
        return log


# --- the reference's export_state blob --------------------------------------------------------
@dataclass(frozen=True)
class StateGroup:
    """What :func:`parse_gbp_stack_state` extracts for one group of the blob."""

    group_id: bytes
    epoch: int
    suite: int
    exporter_secret: bytes
    sender_data_secret: bytes
    encryption_secret: Optional[bytes]  #: secret-tree root; ``None`` once openmls consumed it


@dataclass(frozen=True)
class StateBlob:
    """The four sections of the blob and the decoded storage records (key bytes -> value)."""

    storage: Dict[bytes, bytes]
    signer: bytes
    identity: bytes
    group_id: bytes


_u32 = struct.Struct("<I")


def _take(data: bytes, pos: int, n: int, what: str) -> Tuple[bytes, int]:
    if pos + n > len(data):
        raise StateBlobError(f"{what}: need {n} bytes at offset {pos}, have {len(data) - pos}",
                             vid="KEYLOG-STATE-TRUNCATED", where=pos)
    return data[pos:pos + n], pos + n


def _take_vec(data: bytes, pos: int, what: str) -> Tuple[bytes, int]:
    raw, pos = _take(data, pos, 4, what + " length")
    return _take(data, pos, _u32.unpack(raw)[0], what)


def split_gbp_stack_state(state: bytes) -> StateBlob:
    """Split an ``export_state()`` blob: four ``u32-LE length ‖ bytes`` sections (storage, signer,
    identity, group id); storage = ``u32-LE count`` then ``u32-LE klen ‖ key ‖ u32-LE vlen ‖
    value`` records (crates/gbp/mls ``export_state``; reference-map §6)."""
    if not isinstance(state, (bytes, bytearray, memoryview)):
        raise UsageError("state must be bytes", vid="KEYLOG-STATE-INPUT")
    state = bytes(state)
    pos = 0
    sections = []
    for name in ("storage", "signer", "identity", "group id"):
        sec, pos = _take_vec(state, pos, name)
        sections.append(sec)
    if pos != len(state):
        raise StateBlobError(f"{len(state) - pos} bytes after the four sections",
                             vid="KEYLOG-STATE-TRAILING", where=pos)
    storage = sections[0]
    raw, p = _take(storage, 0, 4, "record count")
    count = _u32.unpack(raw)[0]
    records: Dict[bytes, bytes] = {}
    for i in range(count):
        k, p = _take_vec(storage, p, f"record {i} key")
        v, p = _take_vec(storage, p, f"record {i} value")
        records[k] = v
    if p != len(storage):
        raise StateBlobError(f"{len(storage) - p} bytes after {count} storage records",
                             vid="KEYLOG-STATE-TRAILING", where=p)
    return StateBlob(records, sections[1], sections[2], sections[3])


_LABEL = re.compile(rb"\A([A-Za-z]+)")


def _json(raw: bytes, what: str):
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise StateBlobError(f"{what}: invalid JSON ({exc})", vid="KEYLOG-STATE-JSON") from None


def _path(obj, what: str, *keys):
    for k in keys:
        try:
            obj = obj[k]
        except (KeyError, IndexError, TypeError):
            raise StateBlobError(f"{what}: no {'.'.join(map(str, keys))}",
                                 vid="KEYLOG-STATE-SHAPE") from None
    return obj


def _vec(obj, what: str) -> bytes:
    if not isinstance(obj, list) or not all(type(x) is int and 0 <= x <= 255 for x in obj):
        raise StateBlobError(f"{what}: not a byte vector", vid="KEYLOG-STATE-SHAPE")
    return bytes(obj)


def _secret(obj, what: str, *keys) -> bytes:
    """``{"secret":{"value":{"vec":[…]}}}`` under *keys*."""
    return _vec(_path(obj, what, *keys, "secret", "value", "vec"), what)


def _tree_root_index(size: int) -> int:
    """Parent-node index of the root in an openmls secret tree of *size* nodes (RFC 9420 §4.1:
    root node index = 2^k - 1 for the largest 2^k <= size; parent index = node index // 2)."""
    if size < 1:
        raise StateBlobError("secret tree of size 0", vid="KEYLOG-STATE-SHAPE")
    return ((1 << (size.bit_length() - 1)) - 1) // 2


def parse_gbp_stack_state(state: bytes, *, all_groups: bool = False) -> List[StateGroup]:
    """The current-epoch secrets of the current group (the blob's group-id section) in a
    ``gbp_stack`` state blob; of every group in its storage with *all_groups*.

    Storage keys are an ASCII label, the JSON of the key value(s) and ``00 01``; values are JSON
    (openmls 0.8 storage provider). Used here: ``GroupContext`` (epoch, ciphersuite),
    ``EpochSecrets`` (``exporter_secret``), ``MessageSecrets`` (``sender_data_secret`` and the
    ``secret_tree`` whose root is the epoch's ``encryption_secret`` until a sender ratchet has
    consumed it).
    """
    blob = split_gbp_stack_state(state)
    by_label: Dict[str, Dict[bytes, bytes]] = {}
    for k, v in blob.storage.items():
        m = _LABEL.match(k)
        if m is None:
            raise StateBlobError(f"storage key without a label: {k[:24]!r}", vid="KEYLOG-STATE-KEY")
        by_label.setdefault(m.group(1).decode(), {})[k[m.end():]] = v
    contexts = by_label.get("GroupContext", {})
    if not contexts:
        raise StateBlobError("no GroupContext record", vid="KEYLOG-STATE-SHAPE")
    out = []
    for keyrest, raw in contexts.items():
        ctx = _json(raw, "GroupContext")
        gid = _vec(_path(ctx, "GroupContext", "group_id", "value", "vec"), "GroupContext.group_id")
        epoch = _path(ctx, "GroupContext", "epoch")
        if type(epoch) is not int or not 0 <= epoch < 1 << 64:
            raise StateBlobError("GroupContext.epoch is not a u64", vid="KEYLOG-STATE-SHAPE")
        suite_name = _path(ctx, "GroupContext", "ciphersuite")
        try:
            suite = int(CipherSuiteId[suite_name])
        except (KeyError, TypeError):
            raise StateBlobError(f"unknown ciphersuite {suite_name!r}",
                                 vid="KEYLOG-STATE-SUITE") from None
        es_raw = by_label.get("EpochSecrets", {}).get(keyrest)
        ms_raw = by_label.get("MessageSecrets", {}).get(keyrest)
        if es_raw is None or ms_raw is None:
            raise StateBlobError(f"group {gid.hex()}: EpochSecrets/MessageSecrets missing",
                                 vid="KEYLOG-STATE-SHAPE")
        es = _json(es_raw, "EpochSecrets")
        ms = _path(_json(ms_raw, "MessageSecrets"), "MessageSecrets", "message_secrets")
        tree = _path(ms, "MessageSecrets", "secret_tree")
        size = _path(tree, "secret_tree", "size")
        parents = _path(tree, "secret_tree", "parent_nodes")
        if type(size) is not int or not isinstance(parents, list):
            raise StateBlobError("secret_tree has no size/parent_nodes", vid="KEYLOG-STATE-SHAPE")
        root = None
        if size == 1:  # one-member group: the root is the only leaf
            leaves = _path(tree, "secret_tree", "leaf_nodes")
            if isinstance(leaves, list) and leaves and leaves[0] is not None:
                root = _secret(leaves, "secret_tree.leaf_nodes", 0)
        else:
            idx = _tree_root_index(size)
            if idx < len(parents) and parents[idx] is not None:
                root = _secret(parents, "secret_tree.parent_nodes", idx)
        if not all_groups and gid != blob.group_id:
            continue
        out.append(StateGroup(gid, epoch, suite, _secret(es, "EpochSecrets", "exporter_secret"),
                              _secret(ms, "MessageSecrets", "sender_data_secret"), root))
    if not out:
        raise StateBlobError(f"no GroupContext for the current group {blob.group_id.hex()}",
                             vid="KEYLOG-STATE-SHAPE")
    return out


__all__ = ["KeyLog", "KeyLogEntry", "StateBlobError", "StateGroup", "StateBlob",
           "parse_gbp_stack_state", "split_gbp_stack_state", "EXPORTER", "SENDER_DATA",
           "ENCRYPTION", "EPOCH", "CIPHER_SUITE", "SECRET_LABELS", "is_tls_line", "split_tls_lines"]
