"""The committed fuzz corpora stay harmless (issue 20): every input in ``fuzz/corpus/<harness>/`` —
seeds made from real bytes and the regression inputs of fixed findings — goes through its
harness's ``check`` under the same guard as a fuzzing run (only typed errors, CPU-time and
tracemalloc-peak bounds, the harness's oracles). Unfixed findings wait in ``fuzz/pending/`` and are
not replayed here (fuzz/FINDINGS.md lists them). No atheris needed."""
from __future__ import annotations

import resource
import sys
import tracemalloc
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fuzz.common import (CAN_BOUND_MEMORY, CAN_MEASURE_RESIDENT, CORPUS, PENDING,  # noqa: E402
                         Finding, Limits, corpus_files, data_segment_bytes, run_input)
from fuzz.harnesses import NAMES, load  # noqa: E402


@pytest.fixture
def traced():
    # run_input starts tracemalloc; stop it afterwards so the worker's other tests run at full speed
    was = tracemalloc.is_tracing()
    yield
    if not was and tracemalloc.is_tracing():
        tracemalloc.stop()


@pytest.mark.parametrize("name", NAMES)
def test_corpus_replays_clean(name, traced):
    harness = load(name)
    files = corpus_files(name)
    assert any(p.name.startswith("seed-") for p in files), f"fuzz/corpus/{name}/ has no seeds"
    failures = []
    for path in files:
        try:
            run_input(harness.check, path.read_bytes(), harness.LIMITS)
        except Finding as f:
            failures.append(f"{path.relative_to(ROOT)}: {f.signature}\n{f.detail}")
    assert not failures, "\n\n".join(failures)


def test_every_corpus_folder_is_a_harness_and_the_corpus_stays_small():
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert folders == set(NAMES)
    if PENDING.is_dir():
        assert {p.name for p in PENDING.iterdir() if p.is_dir()} <= set(NAMES)
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    assert total < 2 * 1024 * 1024, f"committed corpus is {total} bytes (keep it under ~2 MB)"


def test_the_guard_reports_what_it_must(traced):
    def untyped(data: bytes) -> None:
        raise IndexError("boom")

    def oracle(data: bytes) -> None:
        assert data, "empty"

    def hungry(data: bytes) -> None:
        bytearray(8 << 20)

    from gbp_lab.core.errors import TruncatedError

    def typed(data: bytes) -> None:
        raise TruncatedError("short", vid="X-SHORT")

    assert run_input(typed, b"").vid == "X-SHORT"
    with pytest.raises(Finding) as e:
        run_input(untyped, b"")
    assert e.value.kind == "exception" and "IndexError" in e.value.signature
    with pytest.raises(Finding) as e:
        run_input(oracle, b"")
    assert e.value.kind == "assertion"
    with pytest.raises(Finding) as e:
        run_input(hungry, b"", Limits(peak_bytes=1 << 20, per_input_byte=0))
    assert e.value.kind == "memory"


@pytest.mark.skipif(not CAN_BOUND_MEMORY, reason="RLIMIT_DATA and /proc/self/statm are Linux's")
def test_the_data_segment_bound_catches_what_tracing_would(traced):
    from gbp_lab.core.errors import DecodeError

    def claims_4_gib(data: bytes) -> None:
        bytes(4 << 30)  # calloc'd, never touched: only the address-space bound sees it

    def masks_it(data: bytes) -> None:  # a decoder that reports any failure as bad bytes
        try:
            bytearray(64 << 20)
        except Exception as exc:  # noqa: BLE001
            raise DecodeError(f"bad: {exc!r}", vid="X-BAD") from None

    def modest(data: bytes) -> None:
        bytearray(len(data) * 32)

    before = resource.getrlimit(resource.RLIMIT_DATA)
    small = Limits(peak_bytes=8 << 20, per_input_byte=64)
    for check in (claims_4_gib, masks_it):
        with pytest.raises(Finding) as e:
            run_input(check, b"x", small, trace_memory=False, bound_memory=True)
        assert e.value.kind == "memory" and "MemoryError" in e.value.signature, e.value.signature
        assert check.__name__ in e.value.signature
    # within the bound (8 MiB + 64 bytes per input byte): accepted, and the limit is restored
    assert run_input(modest, bytes(100_000), small, trace_memory=False, bound_memory=True).vid is None
    assert resource.getrlimit(resource.RLIMIT_DATA) == before
    assert data_segment_bytes() > 0


def test_libfuzzer_arguments_and_the_hang_bound(tmp_path):
    """``fuzz/run.py --hang S`` sets libFuzzer's wall-clock ``-timeout`` (a campaign beside other
    work: a starved input is not a hang); by default it is ten times the harness's CPU bound."""
    from fuzz.harnesses import load
    from fuzz.run import default_hang, libfuzzer_args

    capture, frame = load("capture"), load("frame")
    assert default_hang(capture) == max(10, int(10 * capture.LIMITS.cpu_seconds)) == 50
    assert default_hang(frame) == 10
    args = libfuzzer_args("frame", frame, 1000, None, None, tmp_path / "w", tmp_path / "c")
    assert "-timeout=10" in args and "-runs=1000" in args and args[-2:] == [str(tmp_path / "w"),
                                                                          str(tmp_path / "c")]
    args = libfuzzer_args("capture", capture, 5, 60, 600, tmp_path / "w", None)
    assert args[1] == "-max_total_time=60" and "-timeout=600" in args
    assert f"-max_len={capture.MAX_LEN}" in args and args[-1] == str(tmp_path / "w")


def test_lanes_of_one_harness_make_one_row():
    """``fuzz/run.py --lanes N``: N processes fuzz one harness on a shared corpus; the table shows
    one row with their inputs summed, the best coverage, findings merged by signature (smallest
    input kept, counts added), the slowest input and largest peak of any lane."""
    from fuzz.run import merge_lanes, table

    def lane(inputs, cov, ft, secs, slow, peak, findings, code=0):
        return {"harness": "capture", "inputs": inputs, "cov": cov, "ft": ft, "findings": len(findings),
                "slowest": slow, "max_peak": peak, "seconds": secs, "exit": code, "log": f"l{inputs}",
                "exec_s": inputs // secs, "finding_list": findings}

    f1 = {"slow: CPU": {"kind": "slow", "file": "a", "size": 900, "count": 2, "detail": "d"}}
    f2 = {"slow: CPU": {"kind": "slow", "file": "b", "size": 300, "count": 1, "detail": "d"},
          "exception: X": {"kind": "exception", "file": "c", "size": 5, "count": 4, "detail": "e"}}
    row = merge_lanes([lane(600, 2400, 9000, 100, {"cpu": 0.2, "size": 10, "file": "s1"}, 5, f1),
                       lane(400, 2450, 8900, 120, {"cpu": 0.4, "size": 20, "file": "s2"}, 7, f2)])
    assert row["inputs"] == 1000 and row["lanes"] == 2
    assert (row["cov"], row["ft"], row["seconds"], row["exec_s"]) == (2450, 9000, 120, 8)
    assert row["slowest"]["file"] == "s2" and row["max_peak"] == 7 and row["exit"] == 0
    assert row["findings"] == 2
    assert row["finding_list"]["slow: CPU"] == {"kind": "slow", "file": "b", "size": 300, "count": 3,
                                                "detail": "d"}
    line = table([row]).splitlines()[2]
    assert line.split()[:4] == ["capture", "×2", "1000", "2450"]
    stopped = merge_lanes([lane(10, 1, 1, 1, None, 0, {}), {**lane(5, 1, 1, 2, None, 0, {}, code=70),
                                                               "error": "deadly signal"}])
    assert stopped["exit"] == 70 and stopped["error"] == "deadly signal" and stopped["slowest"] is None


@pytest.mark.skipif(not CAN_MEASURE_RESIDENT, reason="/proc/self/clear_refs is Linux's")
def test_the_resident_peak_of_a_call_is_what_it_touched():
    """``measure_resident``: how far one call raised the resident set, C allocations included;
    a call that touches little measures little, whatever the calls before it touched."""
    def touches_48_mib(data: bytes) -> None:
        block = bytearray(48 << 20)  # zeroed by calloc: touch one byte per page to make it resident
        for i in range(0, len(block), 4096):
            block[i] = 1

    def touches_little(data: bytes) -> None:
        bytes(data)

    big = run_input(touches_48_mib, b"x", Limits(peak_bytes=128 << 20), trace_memory=False,
                    measure_resident=True)
    assert 40 << 20 <= big.resident <= 64 << 20 and big.peak == 0
    small = run_input(touches_little, b"x" * 100, trace_memory=False, measure_resident=True)
    assert small.resident < 4 << 20
    assert run_input(touches_little, b"x", trace_memory=False).resident == 0  # not asked
