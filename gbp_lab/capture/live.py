"""Live capture: watch GBP traffic as it happens — :class:`LiveCapture`.

Three sources, one read path (:func:`~.readpath.read_chunks` with its ``reader=`` hook, so every
row is the row :func:`~.model.read_capture` would make for the same bytes):

* a capture file another program is still writing (``dumpcap -w``, ``tcpdump -w``), followed like
  ``tail -f`` (:class:`FileFollower`);
* a binary stream (``dumpcap -w - | …``, ``sys.stdin.buffer``), read until it ends or :meth:`stop`;
* a network interface (``"lo"``, ``"eth0"``, ``"any"``) sniffed with scapy's L2 listen socket
  (:class:`InterfaceSniffer`; needs root or CAP_NET_RAW, else :class:`LiveCapturePermissionError`).

The pcap/pcapng bytes are parsed by the one reader's incremental form,
:class:`~.pcapfile.CaptureStream`: the packets of the complete records/blocks as they arrive, an
incomplete one waiting for more bytes, interfaces and sections carried over.

The key log (``keylog=`` a path) is followed too: new lines reach the read loop as GBPK
decryption secrets (so later frames decrypt), and the rows that arrived before their epoch's key
are decoded again from their kept record bytes (:func:`~.readpath.read_chunks` ``items=``), not by
re-reading the capture. ``max_frames`` keeps the last N rows (the counters keep counting); the TCP
reassembly, flow table and cipher caches are the read path's, bounded as in
:func:`~.stream.iter_capture`. Error rows reach the tables with the next frame row or at
:meth:`LiveCapture.stop`.
"""
from __future__ import annotations

import math
import os
import select
import socket
import threading
import time
from collections import Counter, deque
from typing import Any, BinaryIO, Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple

import pandas as pd

from gbp_lab.core.errors import GbpLabError, UsageError
from gbp_lab.core.gbp.registry import stream_protocol
from gbp_lab.core.keylog import KeyLog

from .model import Capture
from .pcapfile import (SECRETS_TYPE_GBP_KEYLOG, CaptureFormatError, CaptureIssue,
                       CaptureStream, DecryptionSecrets, Interface)
from .readpath import FRAME_ROW, ReadState, errors_table, frames_table, load_keylog, read_chunks
from .records import GBP_PORT, PipelineStats

__all__ = ["LiveCapture", "LiveCaptureError", "LiveCapturePermissionError", "FileFollower",
           "InterfaceSniffer", "KeyLogFollower", "is_interface"]

_F = {n: i for i, n in enumerate(FRAME_ROW.names)}
_NO_KEY = "NOKEY]"  # in a row's error when its epoch had no key yet (open_frame's vid)


def _merged(a: KeyLog, b: KeyLog) -> KeyLog:
    out = KeyLog()
    out.update(a)
    out.update(b)
    return out


class LiveCaptureError(UsageError):
    """A live capture cannot start or was used wrongly."""

    default_vid = "CAP-LIVE"


class LiveCapturePermissionError(LiveCaptureError):
    """This process may not capture on the interface (no root, no CAP_NET_RAW)."""

    default_vid = "CAP-LIVE-PERMISSION"


def is_interface(name: str) -> bool:
    """Is ``name`` a network interface of this machine (or ``"any"``)?"""
    if name == "any":
        return True
    try:
        return name in {n for _i, n in socket.if_nameindex()}
    except OSError:  # pragma: no cover - no interface listing on this platform
        return False


class KeyLogFollower:
    """The complete lines appended to a key-log file since the last :meth:`poll` (the file may
    not exist yet; a file that shrank is read again from its start)."""

    def __init__(self, path) -> None:
        self.path = os.fspath(path)
        self.offset = 0
        self._partial = b""

    def poll(self) -> str:
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return ""
        if size < self.offset:  # truncated / replaced
            self.offset, self._partial = 0, b""
        if size == self.offset:
            return ""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(size - self.offset)
        self.offset += len(data)
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return data[:cut].decode("utf-8", "replace")


class _Source:
    """What :func:`~.records.iter_item_batches` needs of a packet source (``reader=``):
    ``iter_tuples()``, ``secrets``, ``interfaces``, ``issues``, ``close()``. ``secrets`` also
    carries the key log's new lines (type GBPK) so the read loop merges them;
    ``file_secrets`` only the capture's own blocks."""

    def __init__(self, stop: threading.Event, poll: float,
                 on_keys: Optional[Callable[[str], None]], keylog: Optional[KeyLogFollower]) -> None:
        self.secrets: List[DecryptionSecrets] = []
        self.file_secrets: List[DecryptionSecrets] = []
        self.interfaces: List[Interface] = []
        self.issues: List[CaptureIssue] = []
        self.stop = stop
        self.poll = poll
        self.on_keys = on_keys
        self.keylog = keylog
        self.count = 0

    def tick(self) -> None:
        """Pick up new key-log lines (before any further packet is handed out)."""
        if self.keylog is None:
            return
        text = self.keylog.poll()
        if text:
            self.secrets.append(DecryptionSecrets(SECRETS_TYPE_GBP_KEYLOG, text.encode(),
                                                  self.keylog.offset))
            if self.on_keys is not None:
                self.on_keys(text)

    def close(self) -> None:
        pass


class FileFollower(_Source):
    """Packets of a pcap/pcapng file that is still being written (``follow=True``: wait at its
    end like ``tail -f`` until the stop event, then read what is left), or of a binary stream
    (until it ends or the stop event)."""

    def __init__(self, source, stop: threading.Event, *, follow: bool = True, poll: float = 0.05,
                 on_keys=None, keylog: Optional[KeyLogFollower] = None) -> None:
        super().__init__(stop, poll, on_keys, keylog)
        self.source = source
        self.follow = follow
        self._failed = False

    # -- bytes in ----------------------------------------------------------------------------
    def _chunks(self):
        """New bytes as they arrive; ``b""`` when nothing is new right now."""
        src = self.source
        if isinstance(src, (str, os.PathLike)):
            f = None
            while f is None:
                try:
                    f = open(src, "rb")
                except FileNotFoundError:
                    if self.stop.is_set():
                        return
                    yield b""
            with f:
                while True:
                    data = f.read(1 << 20)
                    if data:
                        yield data
                        continue
                    if self.stop.is_set() or not self.follow:
                        return
                    yield b""
        else:
            fd = None
            try:
                fd = src.fileno()
            except (AttributeError, OSError, ValueError):
                pass
            while True:
                if fd is not None:
                    ready, _, _ = select.select([fd], [], [], self.poll)
                    if not ready:
                        if self.stop.is_set():
                            return
                        yield b""
                        continue
                    data = os.read(fd, 1 << 20)
                else:
                    read1 = getattr(src, "read1", None)
                    data = read1(1 << 20) if read1 is not None else src.read(1 << 20)
                if not data:
                    return
                yield data

    # -- packets out -------------------------------------------------------------------------
    def iter_tuples(self):
        stream = CaptureStream()
        for data in self._chunks():
            self.tick()
            if not data:
                time.sleep(self.poll)
                continue
            yield from self._packets(stream, stream.feed, data)
        self.tick()
        yield from self._packets(stream, stream.finish)

    def _packets(self, stream: CaptureStream, step, *args):
        """The packets of one :class:`~.pcapfile.CaptureStream` step; its secrets blocks reach
        :attr:`secrets` before the packets that follow them."""
        if self._failed:
            return
        seen = len(stream.secrets)
        try:
            for t in step(*args):
                if len(stream.secrets) != seen:
                    self._secrets(stream.secrets[seen:])
                    seen = len(stream.secrets)
                self.count += 1
                yield t
        except CaptureFormatError as exc:
            self._fail(0, exc.vid, exc.message)
            return
        if len(stream.secrets) != seen:
            self._secrets(stream.secrets[seen:])
        self.interfaces = list(stream.interfaces)
        self.issues = list(stream.issues)

    def _secrets(self, blocks: List[DecryptionSecrets]) -> None:
        self.secrets.extend(blocks)
        self.file_secrets.extend(blocks)

    def _fail(self, offset: int, vid: str, reason: str) -> None:
        self.issues.append(CaptureIssue(offset, vid, reason, self.count))
        self._failed = True


class InterfaceSniffer(_Source):
    """Packets sniffed on a network interface with scapy's L2 listen socket (opened by
    :meth:`open`, which raises :class:`LiveCapturePermissionError` without the right)."""

    SNAPLEN = 262144
    RCVBUF = 64 << 20  #: kernel receive buffer asked for (SO_RCVBUFFORCE as root)

    def __init__(self, iface: str, stop: threading.Event, *, bpf: Optional[str] = None,
                 poll: float = 0.05, on_keys=None, keylog: Optional[KeyLogFollower] = None) -> None:
        super().__init__(stop, poll, on_keys, keylog)
        self.iface = iface
        self.bpf = bpf
        self._sock: Any = None

    def open(self) -> None:
        import scapy.arch  # noqa: F401 - sets conf.L2listen for this platform
        from scapy.config import conf

        iface = None if self.iface == "any" else self.iface
        try:
            try:
                self._sock = conf.L2listen(iface=iface, filter=self.bpf)
            except PermissionError:
                raise
            except Exception:  # no BPF compiler (tcpdump/libpcap): the read path filters ports
                if self.bpf is None:
                    raise
                self._sock = conf.L2listen(iface=iface)
        except PermissionError as exc:
            raise LiveCapturePermissionError(
                f"no permission to capture on interface {self.iface!r} ({exc.strerror}): run as "
                f"root or grant CAP_NET_RAW (sudo setcap cap_net_raw,cap_net_admin=eip "
                f"$(readlink -f $(which python))), or capture with dumpcap/tcpdump and follow "
                f"its file (LiveCapture('live.pcapng'), dumpcap -i {self.iface} -w live.pcapng) "
                f"or pipe (dumpcap -i {self.iface} -w - | gbp-lab dissect --live -)",
                where=self.iface) from None
        except OSError as exc:
            raise LiveCaptureError(f"cannot capture on interface {self.iface!r}: {exc}",
                                   vid="CAP-LIVE-IFACE", where=self.iface) from None
        ins = getattr(self._sock, "ins", None)
        if isinstance(ins, socket.socket):  # room for bursts while a frame is being decoded
            for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
                try:
                    if opt is not None:
                        ins.setsockopt(socket.SOL_SOCKET, opt, self.RCVBUF)
                        break
                except OSError:
                    continue

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def iter_tuples(self):
        from scapy.config import conf

        if self._sock is None:
            self.open()
        sock = self._sock
        linktypes: Dict[Any, int] = {}
        while not self.stop.is_set():
            self.tick()
            ready, _, _ = select.select([sock], [], [], self.poll)
            if not ready:
                continue
            cls, data, ts = sock.recv_raw(self.SNAPLEN)
            if data is None:
                continue
            lt = linktypes.get(cls)
            if lt is None:
                lt = linktypes[cls] = int(conf.l2types.layer2num.get(cls, 1))
                self.interfaces.append(Interface(len(self.interfaces), lt, self.SNAPLEN,
                                                 1_000_000, 0, self.iface))
            if ts is None:
                ts = time.time()
            ticks = int(round(ts * 1_000_000))
            iface = [i.index for i in self.interfaces if i.linktype == lt][0]
            self.count += 1
            yield (self.count - 1, iface, lt, ticks / 1_000_000, ticks, 1_000_000, len(data),
                   bytes(data))
        self.tick()


class LiveCapture:
    """Watch GBP traffic live: a network interface, a growing capture file or a binary stream.

    ``keylog``: a key-log path (followed: lines appended later are used, and earlier frames of
    their epochs are decrypted then), a :class:`~gbp_lab.core.keylog.KeyLog` or key-log text.
    ``ports`` / ``heuristic`` select the GBP flows as in :func:`~.model.read_capture`; on an
    interface without ``heuristic`` a BPF filter keeps only those ports (``bpf=``: your own
    capture filter, as ``tshark -f``, e.g. ``"host 127.0.0.77"``). ``max_frames``: keep the
    last N ``frames`` / ``errors`` rows (:attr:`counters` keep counting). ``on_frame(row)``: called
    in the capture thread with each new row (a dict of the ``frames`` columns, ``no`` = its row
    number). ``follow=False`` reads a file to its current end and stops.

    Use :meth:`start` / :meth:`stop` or ``with LiveCapture(...) as live:``; :meth:`snapshot` is a
    :class:`~.model.Capture` of what was seen so far (after :meth:`stop`, exactly what
    :func:`~.model.read_capture` gives for the same bytes and key log).
    """

    def __init__(self, source, keylog=None, *, ports: Sequence[int] = (GBP_PORT,),
                 heuristic: bool = True, max_frames: Optional[int] = None,
                 on_frame: Optional[Callable[[Dict[str, Any]], None]] = None,
                 follow: bool = True, poll: float = 0.05, bpf: Optional[str] = None) -> None:
        if max_frames is not None and max_frames < 1:
            raise LiveCaptureError("max_frames must be >= 1 (or None)", vid="CAP-LIVE-MAX")
        self.source = source
        self.ports = tuple(ports)
        self.heuristic = heuristic
        self.max_frames = max_frames
        self.on_frame = on_frame
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._thread: Optional[threading.Thread] = None
        self._failure: Optional[BaseException] = None
        self._keylog_follower: Optional[KeyLogFollower] = None
        initial: Optional[KeyLog] = None
        if isinstance(keylog, (str, os.PathLike)) and not (isinstance(keylog, str)
                                                           and "\n" in keylog):
            self._keylog_follower = KeyLogFollower(keylog)
        else:
            initial = load_keylog(keylog)
        self._initial_keys = initial
        self._keys = KeyLog()  # every key so far (initial + followed): re-decoding late rows
        if initial is not None:
            self._keys.update(initial)
        cb = self._keys_arrived
        if isinstance(source, (str, os.PathLike)) and not os.path.exists(source) \
                and isinstance(source, str) and is_interface(source):
            if bpf is None and not heuristic:
                bpf = " or ".join(f"port {p}" for p in self.ports)
            self._src: Any = InterfaceSniffer(source, self._stop, bpf=bpf, poll=poll, on_keys=cb,
                                              keylog=self._keylog_follower)
        elif isinstance(source, (str, os.PathLike)) or hasattr(source, "read") \
                or hasattr(source, "fileno"):
            self._src = FileFollower(source, self._stop, follow=follow, poll=poll, on_keys=cb,
                                     keylog=self._keylog_follower)
        else:
            raise LiveCaptureError(f"cannot capture from {type(source).__name__}: give an "
                                   f"interface name, a capture path or a binary stream",
                                   vid="CAP-LIVE-SOURCE")
        # the live tables (last max_frames rows) and what is needed to re-decode a row
        self._rows: Deque[tuple] = deque(maxlen=max_frames)  # FRAME_ROW tuples
        self._pts: Deque[Optional[bytes]] = deque(maxlen=max_frames)
        self._pls: Deque[Optional[bytes]] = deque(maxlen=max_frames)
        self._recs: Deque[bytes] = deque(maxlen=max_frames)
        self._errors: Deque[tuple] = deque(maxlen=max_frames)
        self._pending: Dict[int, Tuple[str, int]] = {}  # row no -> (group hex, epoch): no key yet
        self._n = 0  # frame rows so far (row numbers)
        self._state = ReadState()
        self.counters: Counter = Counter()  #: frames, decrypted, errors, per protocol, redecoded
        self.started: Optional[float] = None

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> "LiveCapture":
        if self._thread is not None:
            raise LiveCaptureError("this live capture was already started", vid="CAP-LIVE-STATE")
        if isinstance(self._src, InterfaceSniffer):
            self._src.open()  # a permission error raises here, in the caller's thread
        self.started = time.time()
        self._thread = threading.Thread(target=self._run, name="gbp-live-capture", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> "LiveCapture":
        """Stop (a followed file is read to its current end first) and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._src.close()
        if self._failure is not None:
            raise self._failure
        return self

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until the source ends by itself (a stream closed, ``follow=False``); True if so."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "LiveCapture":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the capture thread ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            for chunk in read_chunks(None, self._initial_keys, self._state, ports=self.ports,
                                     heuristic=self.heuristic, chunksize=1, reader=self._src):
                self._absorb(chunk.frame_cells, chunk.error_rows, chunk.plaintexts,
                             chunk.payloads, chunk.records)
        except BaseException as exc:  # reported by stop()
            self._failure = exc

    def _absorb(self, cells, error_rows, pts, pls, recs) -> None:
        width = FRAME_ROW.width
        rows = [tuple(cells[i:i + width]) for i in range(0, len(cells), width)]
        new: List[Tuple[int, tuple]] = []
        with self._lock:
            for er in error_rows:
                self._errors.append(er)
                self.counters["errors"] += 1
            for row, pt, pl, rec in zip(rows, pts, pls, recs):
                no = self._n
                self._n += 1
                self._rows.append(row)
                self._pts.append(pt)
                self._pls.append(pl)
                self._recs.append(rec)
                st = row[_F["stream_type"]]
                self.counters["frames"] += 1
                self.counters["MLS" if st is None else stream_protocol(st)] += 1
                if row[_F["decrypted"]]:
                    self.counters["decrypted"] += 1
                elif st is not None and (row[_F["error"]] is None
                                         or _NO_KEY in row[_F["error"]]):
                    self._pending[no] = (row[_F["group_id"]], row[_F["epoch"]])
                new.append((no, row))
            if self.max_frames is not None and len(self._pending) > self.max_frames:
                first = self._n - len(self._rows)
                self._pending = {k: v for k, v in self._pending.items() if k >= first}
        if self.on_frame is not None and new:
            df = frames_table([c for _no, r in new for c in r], None, self._t0(),
                              self._state.quic_flows)
            for (no, _r), rec in zip(new, df.to_dict("records")):
                rec["no"] = no
                self.on_frame(rec)

    def _keys_arrived(self, text: str) -> None:
        """New key-log lines: decode again the kept rows of the epochs they key."""
        try:
            extra = KeyLog.parse(text)
        except GbpLabError:
            return  # the read loop reports the bad lines as an errors row
        with self._lock:
            self._keys.update(extra)
            keyed: Set[Tuple[str, int]] = {(g.hex(), ep) for g in extra.groups()
                                           for ep in extra.epochs(g)}
            redo = sorted(no for no, ge in self._pending.items() if ge in keyed)
            if not redo:
                return
            first = self._n - len(self._rows)
            items = []
            for no in redo:
                r = self._rows[no - first]
                items.append((r[_F["time"]], r[_F["src"]], r[_F["sport"]], r[_F["dst"]],
                              r[_F["dport"]], r[_F["flow_id"]], r[_F["transport"]],
                              r[_F["offset"]], self._recs[no - first], None, None,
                              r[_F["packet"]]))
            chunk = next(read_chunks(None, self._keys, ReadState(), ports=self.ports,
                                     heuristic=self.heuristic, chunksize=None, items=[items]))
            width = FRAME_ROW.width
            cells = chunk.frame_cells
            for k, no in enumerate(redo):
                row = tuple(cells[k * width:(k + 1) * width])
                self._rows[no - first] = row
                self._pts[no - first] = chunk.plaintexts[k]
                if row[_F["decrypted"]]:
                    self.counters["decrypted"] += 1
                    self.counters["redecoded"] += 1
                    del self._pending[no]
            for er in chunk.error_rows:
                f = er[-1]
                self._errors.append(er[:-1] + ((redo[f] if f is not None else None),))
                self.counters["errors"] += 1

    # -- what was seen -----------------------------------------------------------------------
    def _t0(self):
        """The first packet's time (integer ns; ``rel_time`` 0), NaN before any."""
        st = self._state.stats
        return st.first_time if st is not None else math.nan

    def view(self, **kw: Any) -> Any:
        """An ipywidgets panel that follows this capture while the notebook stays responsive:
        frames/s, per-protocol counters, the last frames, the current epoch and members, a
        live ladder with epoch bands, the epoch timeline and the findings, redrawn a few times a
        second by a background thread (:class:`gbp_lab.widgets.views.LiveCaptureView`;
        ``interval=``, ``last=``, ``ladder_arrows=`` … as :class:`gbp_lab.widgets.LivePanel`)."""
        from gbp_lab.widgets.views import LiveCaptureView

        return LiveCaptureView(self, **kw)

    @property
    def frames(self) -> pd.DataFrame:
        """The current ``frames`` table (the last ``max_frames`` rows; index = row number)."""
        with self._lock:
            cells = [c for r in self._rows for c in r]
            first = self._n - len(self._rows)
        df = frames_table(cells, None, self._t0(), self._state.quic_flows)
        df.index = pd.RangeIndex(first, first + len(df))
        return df

    @property
    def keylog(self) -> KeyLog:
        """Every key seen so far (a copy)."""
        with self._lock:
            k = KeyLog()
            k.update(self._keys)
            return k

    def snapshot(self) -> Capture:
        """Everything so far as a :class:`~.model.Capture` (with every derived table)."""
        with self._lock:
            cells = [c for r in self._rows for c in r]
            first = self._n - len(self._rows)
            frames = frames_table(cells, None, self._t0(), self._state.quic_flows)
            frames.index = pd.RangeIndex(first, first + len(frames))
            errors = errors_table(list(self._errors), self._t0())
            stats = self._state.stats
            keys = self._state.keys
            if len(self._keys):  # followed lines the read loop has not merged yet
                keys = self.keylog if keys is None else _merged(keys, self._keys)
            src = self._src
            return Capture(frames, errors, list(self._pts), keys,
                           list(getattr(src, "file_secrets", [])), list(src.interfaces),
                           PipelineStats(**vars(stats)) if stats is not None else None,
                           os.fspath(self.source) if isinstance(self.source, (str, os.PathLike))
                           else None, list(self._pls), list(self._recs))

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped" if self._thread else "not started"
        return (f"LiveCapture({self.source!r}, {state}: {self.counters['frames']} frames, "
                f"{self.counters['decrypted']} decrypted, {self.counters['errors']} errors)")
