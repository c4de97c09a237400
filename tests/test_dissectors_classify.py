"""The dissectors name KeyPackages, Welcomes and GroupInfos of all seven suites, raw and wrapped,
as the core classifier does (dissectors/transport.py → core/gbp/classify.py)."""
from __future__ import annotations

import pathlib
import sys
import pytest

from gbp_lab.core.gbp.aead import seal_frame
from gbp_lab.core.gbp.framing import encode_record
from gbp_lab.core.mls.mls_message import wrap
from gbp_lab.dissectors import GbpFrame, GbpRecord
from gbp_lab.dissectors.mls import MLSGroupInfo, MLSKeyPackage, MLSMessage, MLSWelcome
from gbp_lab.dissectors.transport import GbpDatagram, body_layer_class

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import mls_structs  # noqa: E402


@pytest.mark.parametrize("suite", range(1, 8))
def test_records_of_every_suite_get_their_layer(suite):
    kp, w, gi = mls_structs.raw_structs(suite)
    for raw, layer in ((kp, MLSKeyPackage), (w, MLSWelcome), (gi, MLSGroupInfo)):
        assert body_layer_class(raw) is layer
        rec = GbpRecord(encode_record(raw))
        assert isinstance(rec.body, layer) and rec.body.cipher_suite == suite
        assert not rec.body.error
        wrapped = wrap(layer.core_class.from_bytes(raw)).to_bytes()
        rec = GbpRecord(encode_record(wrapped))
        assert isinstance(rec.body, MLSMessage) and isinstance(rec.body.payload, layer)
        assert isinstance(GbpDatagram(raw), layer)


def test_frames_and_garbage():
    wire = seal_frame(bytes(32), bytes(range(16)), 3, 0, 2, 101, 7, 1, b"hi").to_cbor()
    assert isinstance(GbpRecord(encode_record(wire)).body, GbpFrame)
    assert body_layer_class(b"\xaa\x00") is GbpFrame  # a broken frame is shown as one
    assert body_layer_class(b"\x00\x01\x00\x09zz") is MLSMessage  # with its decode error


def test_heuristic_claims_what_the_record_splitter_calls_a_frame_start():
    """The heuristic on other ports asks the record splitter (``framing.plausible_header``) whether a
    body starts like a GBP frame: a map whose key ``"v"`` = 1 comes first or among the first keys
    (a lenient peer's order), not any map of 10 or 11 entries."""
    from gbp_lab.core.gbp.framing import plausible_header
    from gbp_lab.dissectors.transport import looks_like_record

    wire = seal_frame(bytes(32), bytes(range(16)), 3, 0, 2, 101, 7, 1, b"hi").to_cbor()
    assert looks_like_record(encode_record(wire))
    reordered = b"\xa2\x61\x78\x00\x61\x76\x01" + bytes(12)  # {"x": 0, "v": 1} then padding
    assert plausible_header(encode_record(reordered), 0, strict=False)
    assert looks_like_record(encode_record(reordered))
    no_version = b"\xaa" + bytes(30)  # a 10-entry map header, no "v" anywhere
    assert not looks_like_record(encode_record(no_version))
