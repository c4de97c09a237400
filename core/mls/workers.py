"""The process-wide thread pool for independent primitive calls that release the GIL.

``cryptography`` drops the GIL inside its Rust/OpenSSL primitives: Ed25519/ECDSA ``verify`` and
the RFC 9180 HPKE ``encrypt`` (measured: a thread spinning in Python runs while they work). The
independent calls of one MLS operation — the leaf signatures of a ratchet tree (RFC 9420 §7.3,
§12.4.3.1, :func:`.signatures.verify_all`), the HPKE ciphertexts of an UpdatePath (§12.4.1,
:func:`.treekem.create_update_path`) — can therefore run side by side on the cores there are.

:data:`pool` (a :class:`WorkerPool`) is created lazily: ``workers`` = ``os.cpu_count()`` capped at
:attr:`WorkerPool.MAX_WORKERS`; ``workers - 1`` executor threads help the calling thread, which
always takes part. Its threads are joined at interpreter exit by :mod:`concurrent.futures`; a
forked child forgets its parent's executor (its threads do not exist there) and makes its own
(``os.register_at_fork``). With ``workers < 2``, for a batch smaller than ``min_batch`` or when
no thread can be started, everything runs in the calling thread. Work is cut in contiguous
chunks taken in turn, so a failure is always reported for the lowest index, as a plain loop
would: results never depend on the threads.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class WorkerPool:
    """A lazily created executor of ``workers - 1`` threads; ``batches`` counts the batches that
    went to it (the tests and benchmarks read it)."""

    MAX_WORKERS = 8

    def __init__(self, workers: Optional[int] = None, min_batch: int = 8) -> None:
        self.workers = workers if workers is not None else min(os.cpu_count() or 1, self.MAX_WORKERS)
        self.min_batch = min_batch
        self.batches = 0
        self._executor: Optional[ThreadPoolExecutor] = None
        self._lock = threading.Lock()

    def executor(self) -> Optional[ThreadPoolExecutor]:
        """The executor (created on first call), or ``None`` when the pool has no helper threads."""
        if self.workers < 2:
            return None
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(max_workers=self.workers - 1,
                                                        thread_name_prefix="mls-worker")
        return self._executor

    def forget(self) -> None:
        """Drop the executor without joining it: the state of a forked child."""
        self._executor = None
        self._lock = threading.Lock()

    def shutdown(self) -> None:
        """Join the threads now (a later batch makes a new executor)."""
        with self._lock:
            ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=True)

    def wants(self, n: int, parallel: Optional[bool]) -> bool:
        """Whether a batch of ``n`` items goes to the threads (``parallel`` None = by size)."""
        if parallel is None:
            parallel = n >= self.min_batch
        return bool(parallel) and n > 1 and self.workers >= 2

    def chunks(self, n: int, parallel: bool) -> Iterator[Tuple[int, int]]:
        """``(lo, hi)`` bounds cutting ``range(n)`` for the threads (one chunk when serial)."""
        k = min(n, 4 * self.workers) if parallel else min(n, 1)
        return iter([(n * c // k, n * (c + 1) // k) for c in range(k)])

    def helpers(self, work: Callable[[], None]) -> List["Future[None]"]:
        """Run ``work`` on every helper thread (``[]`` when there are none or none can start);
        the caller runs it too and then waits for these futures. Called from a helper thread
        (a batch inside a batch) it gives ``[]``: waiting there for queued work could deadlock."""
        if getattr(_local, "helper", False):
            return []
        ex = self.executor()
        if ex is None:
            return []
        try:
            futures = [ex.submit(_as_helper, work) for _ in range(self.workers - 1)]
        except RuntimeError:  # no new threads (interpreter shutting down): the caller does all
            return []
        self.batches += 1
        return futures

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, parallel: Optional[bool] = None) -> List[R]:
        """``[fn(x) for x in items]``, on the threads for a large batch; if calls raise, the
        exception of the lowest index is raised (each chunk stops at its first failure)."""
        n = len(items)
        par = self.wants(n, parallel)
        chunks = self.chunks(n, par)
        results: List[Optional[R]] = [None] * n
        errors: Dict[int, BaseException] = {}

        def work() -> None:
            for lo, hi in chunks:  # next() on a list iterator is atomic: each chunk runs once
                for i in range(lo, hi):
                    try:
                        results[i] = fn(items[i])
                    except BaseException as exc:  # noqa: BLE001 - re-raised below, in the caller
                        errors[i] = exc
                        break

        futures = self.helpers(work) if par else []
        work()
        for f in futures:
            f.result()
        if errors:
            raise errors[min(errors)]
        return results  # type: ignore[return-value]  # every slot was filled


_local = threading.local()


def _as_helper(work: Callable[[], None]) -> None:
    _local.helper = True  # this thread is the pool's for good
    work()


#: the process-wide pool
pool = WorkerPool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=pool.forget)

__all__ = ["WorkerPool", "pool"]
