"""The guard every fuzz input goes through, and small helpers shared by the harnesses.

Our promise (docs/architecture.md, *Error model*): bad bytes give a typed error — a subclass of
:class:`gbp_lab.core.errors.GbpLabError` — or an error row, never another exception, a hang or
unbounded memory. :func:`run_input` checks exactly that for one input of one harness:

* any exception that is not a :class:`GbpLabError` is a finding (``kind="exception"``), and so is
  an :class:`AssertionError` raised by the harness's own oracle (``kind="assertion"``);
* the call must finish within ``Limits.cpu_seconds`` of CPU time (``kind="slow"``); a real hang
  never returns, and is caught by libFuzzer's ``-timeout`` in ``fuzz/run.py``;
* memory must stay under ``Limits.peak_bytes + Limits.per_input_byte * len(data)``
  (``kind="memory"``): a length field claiming 4 GiB must not allocate it. Two ways to watch it,
  either or both: ``trace_memory`` measures the call's tracemalloc peak (exact, but it makes
  every allocation several times dearer: 4x for the record splitter, 10x for the scapy layers);
  ``bound_memory`` lowers the process's ``RLIMIT_DATA`` to what it uses now plus the bound for
  the duration of the call (Linux; ~6 µs an input), so any allocation past the bound — Python's
  or a C library's — fails with ``MemoryError``. A ``MemoryError`` is a memory finding wherever
  it surfaces: escaping the call, or as the cause/context of the typed error the call ended with.
  ``resident_peak`` measures, almost for free, how far the call raised the process's resident
  set (Linux: ``VmHWM`` reset through ``/proc/self/clear_refs`` before the call, read after it):
  C allocations included, memory the heap already held not counted. Campaigns (``fuzz/run.py``)
  bound every input and measure its resident peak for the table; the corpus replay traces every
  input. (Tracing one input in 16, as campaigns first did, cost ~190 KB of resident memory per
  ``tracemalloc.start``/``stop`` cycle that was never given back: the capture lanes grew 12 KB an
  input until libFuzzer's ``-rss_limit_mb`` would have stopped them.)

A finding is raised as :class:`Finding`, whose ``signature`` (kind, exception type and the
innermost ``file:line`` inside gbp-lab) identifies it across inputs.

Nothing here imports atheris: the corpus replay in ``tests/test_fuzz_corpus.py`` runs on the
``test`` extra alone.
"""
from __future__ import annotations

import os
import resource
import time
import tracemalloc
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from gbp_lab.core.errors import GbpLabError

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
PENDING = ROOT / "fuzz" / "pending"
_OURS = tuple(str(ROOT / d) + os.sep for d in ("core", "dissectors", "gbp_lab"))
MiB = 1 << 20
_PAGE = resource.getpagesize()
_STATM = Path("/proc/self/statm")
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
#: where a campaign cannot measure resident peaks, it traces one input in this many instead
TRACE_EVERY = 16
#: whether this platform can bound a call's memory with ``RLIMIT_DATA`` (Linux)
CAN_BOUND_MEMORY = hasattr(resource, "RLIMIT_DATA") and _STATM.exists()
#: whether this platform can measure a call's resident peak (Linux ≥ 4.0: ``clear_refs`` 5)
CAN_MEASURE_RESIDENT = _CLEAR_REFS.exists() and os.access(_CLEAR_REFS, os.W_OK) and _STATUS.exists()


_FDS: Dict[Tuple[int, str], int] = {}


def _proc_fd(name: str, flags: int) -> int:
    """A descriptor of ``/proc/self/<name>``, opened once per process (a forked child opens its
    own: ``self`` is resolved when the file is opened). Reading it again with ``pread`` at 0 costs
    1–9 µs; opening the file for every input cost 20–70 µs, a third of a fast harness's input."""
    key = (os.getpid(), name)
    fd = _FDS.get(key)
    if fd is None:
        fd = _FDS[key] = os.open(f"/proc/self/{name}", flags | os.O_CLOEXEC)
    return fd


def _statm() -> List[bytes]:
    """The fields of ``/proc/self/statm`` (sizes in pages: total, resident, shared, text, lib,
    data, dirty)."""
    return os.pread(_proc_fd("statm", os.O_RDONLY), 256, 0).split()


def data_segment_bytes() -> int:
    """The process's data size as the kernel accounts it for ``RLIMIT_DATA`` (``/proc/self/statm``:
    private writable mappings, in pages)."""
    return int(_statm()[5]) * _PAGE


def reset_resident_peak() -> int:
    """Reset the process's resident high-water mark to its resident size now; return that size
    in bytes (``proc(5)``, ``/proc/<pid>/clear_refs``: writing 5)."""
    os.write(_proc_fd("clear_refs", os.O_WRONLY), b"5")
    return int(_statm()[1]) * _PAGE


def resident_peak() -> int:
    """The process's resident high-water mark (``VmHWM`` of ``/proc/self/status``), in bytes."""
    text = os.pread(_proc_fd("status", os.O_RDONLY), 16384, 0)
    at = text.index(b"VmHWM:") + 6
    return int(text[at:text.index(b"kB", at)]) * 1024


class _DataBound:
    """``with _DataBound(n):`` — no more than *n* further bytes of data segment during the block."""

    __slots__ = ("extra", "saved")

    def __init__(self, extra: int) -> None:
        self.extra = extra
        self.saved = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)

    def __enter__(self) -> None:
        self.saved = resource.getrlimit(resource.RLIMIT_DATA)
        soft = data_segment_bytes() + self.extra
        hard = self.saved[1]
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))

    def __exit__(self, *exc: object) -> None:
        resource.setrlimit(resource.RLIMIT_DATA, self.saved)


def _memory_error_in(exc: BaseException) -> Optional[BaseException]:
    """The ``MemoryError`` in *exc*'s cause/context chain, if any (a decoder that turned an
    allocation failure into a typed error has still allocated too much)."""
    seen = set()
    cur: Optional[BaseException] = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, MemoryError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


@dataclass(frozen=True)
class Limits:
    """Per-input bounds of a harness."""

    cpu_seconds: float = 1.0  #: CPU time of one call (generous: instrumented runs are slower)
    peak_bytes: int = 16 * MiB  #: tracemalloc peak allowed for any input …
    per_input_byte: int = 64  #: … plus this many bytes per input byte


class Finding(Exception):
    """One input broke the promise. ``kind``: exception | assertion | slow | memory."""

    def __init__(self, kind: str, signature: str, detail: str, cpu: float = 0.0, peak: int = 0,
                 resident: int = 0) -> None:
        super().__init__(f"{signature}: {detail}")
        self.kind = kind
        self.signature = signature
        self.detail = detail
        self.cpu = cpu
        self.peak = peak
        self.resident = resident


@dataclass
class Outcome:
    """What one input did: ``vid`` of the typed error it ended with (``None``: accepted)."""

    vid: Optional[str]
    cpu: float
    wall: float
    peak: int  #: tracemalloc peak (0 when not traced)
    resident: int = 0  #: how far the call raised the resident set (0 when not measured)


def fault_location(tb: Optional[TracebackType]) -> str:
    """``path:line in func`` of the innermost traceback frame inside gbp-lab (else the innermost)."""
    frames = traceback.extract_tb(tb)
    if not frames:
        return "?"
    ours = [f for f in frames if f.filename.startswith(_OURS)]
    f = (ours or frames)[-1]
    path = f.filename
    if path.startswith(str(ROOT) + os.sep):
        path = os.path.relpath(path, ROOT)
    elif "site-packages" + os.sep in path:
        path = path.split("site-packages" + os.sep, 1)[1]
    return f"{path}:{f.lineno} in {f.name}"


def run_input(check: Callable[[bytes], None], data: bytes, limits: Limits = Limits(), *,
              trace_memory: bool = True, bound_memory: bool = False,
              measure_resident: bool = False) -> Outcome:
    """Run ``check(data)`` under the guard; return its :class:`Outcome` or raise :class:`Finding`.
    ``trace_memory``: measure the tracemalloc peak; ``bound_memory``: cap the data segment;
    ``measure_resident``: measure how far the call raised the resident set (see the module
    docstring; the last two are ignored where :data:`CAN_BOUND_MEMORY` /
    :data:`CAN_MEASURE_RESIDENT` are false)."""
    bound = limits.peak_bytes + limits.per_input_byte * len(data)
    measure_resident = measure_resident and CAN_MEASURE_RESIDENT
    rss0 = reset_resident_peak() if measure_resident else 0
    if trace_memory and not tracemalloc.is_tracing():
        tracemalloc.start(1)
    base = tracemalloc.get_traced_memory()[0] if trace_memory else 0
    if trace_memory:
        tracemalloc.reset_peak()
    vid: Optional[str] = None
    failure: Optional[Tuple[str, BaseException]] = None
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        if bound_memory and CAN_BOUND_MEMORY:
            with _DataBound(bound):
                check(data)
        else:
            check(data)
    except GbpLabError as typed:
        vid = typed.vid
        oom = _memory_error_in(typed)
        if oom is not None:  # the allocation failed inside a decoder that reported it as bad bytes
            failure = ("memory", oom)
    except AssertionError as exc:
        failure = ("assertion", exc)
    except MemoryError as exc:
        failure = ("memory", exc)
    except Exception as exc:  # noqa: BLE001 - the point: nothing else may escape (RecursionError too)
        failure = ("exception", exc)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    peak = tracemalloc.get_traced_memory()[1] - base if trace_memory else 0
    resident = max(0, resident_peak() - rss0) if measure_resident else 0
    if failure is not None:
        kind, bug = failure
        where = fault_location(bug.__traceback__)
        text = "".join(traceback.format_exception(type(bug), bug, bug.__traceback__))
        raise Finding(kind, f"{kind}: {type(bug).__name__} at {where}", text, cpu, peak, resident)
    if cpu > limits.cpu_seconds:
        raise Finding("slow", "slow: CPU time over the bound",
                      f"{cpu:.3f} s CPU for {len(data)} bytes (bound {limits.cpu_seconds} s)", cpu, peak,
                      resident)
    if peak > bound:
        raise Finding("memory", "memory: tracemalloc peak over the bound",
                      f"peak {peak} bytes for {len(data)} input bytes (bound {bound})", cpu, peak, resident)
    return Outcome(vid, cpu, wall, peak, resident)


class Cursor:
    """Reads control values off the front of a fuzz input; past its end it yields zeros, so every
    input is valid for every harness (the fuzzer does not waste runs on "too short")."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u8(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def uint(self, n: int) -> int:
        chunk = self.take(n)
        return int.from_bytes(chunk.ljust(n, b"\0"), "big")

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk

    def rest(self) -> bytes:
        chunk = self.data[self.pos:]
        self.pos = len(self.data)
        return chunk


def chunks(pattern: bytes, body: bytes) -> Iterator[bytes]:
    """Cut ``body`` into pieces whose sizes cycle through ``pattern`` (a size byte ``b`` means
    ``b`` bytes, so 0 gives an empty feed; an empty pattern means one piece)."""
    if not pattern:
        yield body
        return
    pos = i = 0
    while pos < len(body):
        n = pattern[i % len(pattern)]
        i += 1
        yield body[pos:pos + n]
        pos += n
        if i > len(body) + 4 * len(pattern):  # many zero sizes in a row: finish in one piece
            yield body[pos:]
            return


def corpus_files(harness: str, *, pending: bool = False) -> List[Path]:
    """The committed inputs of a harness (``fuzz/corpus/<harness>/`` or ``fuzz/pending/…``)."""
    folder = (PENDING if pending else CORPUS) / harness
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


__all__ = ["TRACE_EVERY", "CAN_BOUND_MEMORY", "CAN_MEASURE_RESIDENT", "data_segment_bytes",
           "reset_resident_peak", "resident_peak", "Limits", "Finding", "Outcome",
           "run_input", "fault_location", "Cursor", "chunks", "corpus_files", "ROOT", "CORPUS", "PENDING",
           "MiB"]
