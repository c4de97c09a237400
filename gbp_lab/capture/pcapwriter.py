"""The pcapng writer (draft-ietf-opsawg-pcapng): :class:`PcapngWriter` writes a little-endian
section — SHB, IDBs (§4.2, ``if_tsresol``), Decryption Secrets Blocks (§4.7: our GBPK key log,
and the standard TLS key log, type ``0x544c534b``, that Wireshark decrypts TLS/QUIC with) and
EPBs (§4.3) — and :func:`inject_secrets` copies a capture with our GBPK key log (and a TLS key
log, when given) up front (like ``editcap --inject-secrets``). Block types and magics are :mod:`.pcapfile`'s, which reads what this writes.
"""
from __future__ import annotations

import contextlib
import math
import os
import struct
from typing import BinaryIO, Iterator, List, Optional, Union

from gbp_lab.core.errors import UsageError

from .pcapfile import (BT_DSB, BT_EPB, BT_IDB, BT_SHB, BYTE_ORDER_MAGIC, SECRETS_TYPE_GBP_KEYLOG,
                       SECRETS_TYPE_TLS_KEYLOG, Source, read_packets)

__all__ = ["PcapngWriter", "inject_secrets", "owner_only_output"]


@contextlib.contextmanager
def owner_only_output(path: str) -> Iterator[str]:
    """A file to write *path* through, for outputs that carry secrets or plaintext: yields
    ``path + ".part"``, created owner-only (0600) before anything is written; it replaces *path*
    when the block succeeds and is removed when it raises (no half-written output is left)."""
    tmp = path + ".part"
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.chmod(tmp, 0o600)  # an existing .part keeps its mode through O_CREAT
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class PcapngWriter:
    """Write a little-endian pcapng file: SHB, IDBs, DSBs and EPBs.

    ``tsresol`` is the IDB ``if_tsresol`` exponent (decimal): 6 = microseconds, 9 = nanoseconds.
    Secrets should be added before the packets they decrypt (Wireshark reads DSBs in file order).
    """

    def __init__(self, target: Union[str, os.PathLike, BinaryIO], *, shb_options: bytes = b"") -> None:
        self._f: BinaryIO
        if isinstance(target, (str, os.PathLike)):
            self._f = open(target, "wb")
            self._own = True
        else:
            self._f = target
            self._own = False
        self._ifaces: List[int] = []  # ts units per interface
        self._block(BT_SHB, struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + shb_options)

    def _block(self, btype: int, body: bytes) -> None:
        body += b"\x00" * (-len(body) % 4)
        blen = len(body) + 12
        self._f.write(struct.pack("<II", btype, blen) + body + struct.pack("<I", blen))

    @staticmethod
    def _opt(code: int, value: bytes) -> bytes:
        return struct.pack("<HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)

    def add_interface(self, linktype: int, *, snaplen: int = 0, tsresol: int = 6,
                      name: Optional[str] = None, ts_units: Optional[int] = None) -> int:
        """Write an IDB; returns its interface id. ``tsresol`` is a decimal exponent;
        ``ts_units`` (ticks per second, a power of 10 or of 2) overrides it."""
        if ts_units is not None:
            code = _tsresol_code(ts_units)
        elif 0 <= tsresol <= 0x7F:
            code = tsresol
        else:
            raise UsageError("tsresol exponent must be 0..127", vid="CAP-WRITER-TSRESOL")
        opts = b""
        if name is not None:
            opts += self._opt(2, name.encode())
        if code != 6:
            opts += self._opt(9, bytes([code]))
        if opts:
            opts += struct.pack("<HH", 0, 0)
        self._block(BT_IDB, struct.pack("<HHI", linktype, 0, snaplen) + opts)
        self._ifaces.append(2 ** (code & 0x7F) if code & 0x80 else 10 ** code)
        return len(self._ifaces) - 1

    def add_secrets(self, data: Union[bytes, str], secrets_type: int = SECRETS_TYPE_GBP_KEYLOG) -> None:
        """Write a Decryption Secrets Block (default type "GBPK": our key-log text)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._block(BT_DSB, struct.pack("<II", secrets_type, len(data)) + data)

    def add_tls_keylog(self, data: Union[bytes, str]) -> None:
        """Write a TLS key log (NSS key-log format, ``SSLKEYLOGFILE``: ``LABEL <client_random>
        <secret>`` lines) as the standard Decryption Secrets Block of type ``0x544c534b`` ("TLSK"),
        which Wireshark uses to decrypt TLS 1.2/1.3 and QUIC. A line that is neither empty, a
        ``#`` comment nor three hex-bearing fields raises ``UsageError`` (``CAP-WRITER-TLSKEYLOG``)."""
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        for no, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 3 or not all(_is_hex(p) for p in parts[1:]):
                raise UsageError(f"TLS key log line {no} is not 'LABEL <hex> <hex>': {line[:60]!r}",
                                 vid="CAP-WRITER-TLSKEYLOG")
        self.add_secrets(data, SECRETS_TYPE_TLS_KEYLOG)

    def write_packet(self, data: bytes, *, time: Optional[float] = None, ticks: Optional[int] = None,
                     ts_units: Optional[int] = None, interface: int = 0,
                     origlen: Optional[int] = None) -> None:
        """Write an EPB. Give ``time`` (float seconds) or exact ``ticks`` with their ``ts_units``
        (converted to the interface resolution)."""
        if not 0 <= interface < len(self._ifaces):
            raise UsageError(f"unknown interface {interface}", vid="CAP-WRITER-IFACE")
        units = self._ifaces[interface]
        if ticks is not None:
            src_units = ts_units or units
            t = ticks * units // src_units if src_units != units else ticks
        elif time is not None and not math.isnan(time):
            t = round(time * units)
        else:
            t = 0
        if origlen is None:
            origlen = len(data)
        self._block(BT_EPB, struct.pack("<IIIII", interface, (t >> 32) & 0xFFFFFFFF, t & 0xFFFFFFFF,
                                         len(data), origlen) + bytes(data))

    def close(self) -> None:
        if self._own:
            self._f.close()
        else:
            self._f.flush()

    def __enter__(self) -> "PcapngWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def inject_secrets(src: Source, dst: Union[str, os.PathLike, BinaryIO], keylog_text: str, *,
                   tls_keylog: Optional[str] = None) -> int:
    """Copy a pcap/pcapng capture to pcapng with a GBPK Decryption Secrets Block up front
    (like ``editcap --inject-secrets``), followed by a TLS key-log block when *tls_keylog* is
    given (:meth:`PcapngWriter.add_tls_keylog`). Existing secrets blocks are kept. Returns the
    packet count."""
    packets, reader = read_packets(src)
    with PcapngWriter(dst) as w:
        for iface in reader.interfaces:
            w.add_interface(iface.linktype, snaplen=iface.snaplen, ts_units=iface.ts_units,
                            name=iface.name)
        w.add_secrets(keylog_text, SECRETS_TYPE_GBP_KEYLOG)
        if tls_keylog is not None:
            w.add_tls_keylog(tls_keylog)
        for s in reader.secrets:
            w.add_secrets(s.data, s.secrets_type)
        for p in packets:
            w.write_packet(p.data, ticks=p.ts_ticks if p.ts_ticks >= 0 else 0, ts_units=p.ts_units,
                           interface=p.interface, origlen=p.origlen)
    return len(packets)


def _is_hex(s: str) -> bool:
    try:
        bytes.fromhex(s)
    except ValueError:
        return False
    return len(s) > 0


def _tsresol_code(units: int) -> int:
    """The ``if_tsresol`` byte for ``units`` ticks per second (10**n → n, 2**n → 0x80 | n)."""
    for n in range(0x80):
        if 10 ** n == units:
            return n
        if 2 ** n == units:
            return 0x80 | n
        if 2 ** n > units:
            break
    raise UsageError(f"{units} ticks per second is neither a power of 10 nor of 2",
                     vid="CAP-WRITER-TSRESOL")
