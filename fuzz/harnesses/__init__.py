"""One module per decoder surface. Each defines ``check(data: bytes) -> None`` (raises only
:class:`gbp_lab.core.errors.GbpLabError` subclasses on bad input; an ``AssertionError`` is its own
oracle failing), ``LIMITS`` (:class:`fuzz.common.Limits`) and ``MAX_LEN`` (libFuzzer ``-max_len``).

Modules are imported on demand (:func:`load`): ``fuzz/run.py`` imports one harness per process,
under atheris' instrumentation, so its targets' coverage is what guides the fuzzer.
"""
from __future__ import annotations

import importlib
from types import ModuleType

#: every harness, in the order ``make fuzz`` runs them
NAMES = (
    "frame",          # decode_frame strict and lenient
    "framing",        # RecordReader / FrameReader under arbitrary chunkings
    "payload",        # payload_codec.decode: GTP/GAP/GSP messages x CBOR/Protobuf/FlatBuffers
    "control",        # decode_control, decode_error_object
    "mls_message",    # MLSMessage.from_bytes
    "key_package",    # KeyPackage.from_bytes (+ signature check)
    "welcome",        # Welcome.from_bytes
    "group_info",     # GroupInfo.from_bytes
    "ratchet_tree",   # ratchet_tree extension body, decoded and built into a tree
    "sframe",         # SFrame parse_header / detect_profile / SFrameSession.decrypt
    "keylog",         # KeyLog.parse, KeyLog.from_gbp_stack_state
    "pcap",           # CaptureReader on whole files + decode_packet
    "tcp",            # TcpReassembler on segment sequences
    "scapy",          # GbpRecord(bytes).show() and the other layers
    "capture",        # read_capture on whole (mutated) capture files
    "quic",           # the passive QUIC observer (core/quic) on datagram sequences
)


def load(name: str) -> ModuleType:
    """Import ``fuzz.harnesses.<name>``."""
    if name not in NAMES:
        raise KeyError(f"unknown harness {name!r} (known: {', '.join(NAMES)})")
    return importlib.import_module(f"{__name__}.{name}")
