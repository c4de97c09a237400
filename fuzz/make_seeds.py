"""Write the seed corpora ``fuzz/corpus/<harness>/seed-*`` from real bytes.

Sources: frames, control messages, payloads, KeyPackages, Welcomes and state blobs made by the
``gbp-stack`` reference wheel (``tests/refpeer.py``, ``tests/refmls.py``; needs the ``test`` extra),
the official MLS test vectors (``tests/vectors/mls/*.json.gz``), the reference test captures
(``tests/captures/``) and the demo capture, and — where a harness needs a key it knows — bytes our
own encoders sealed with the harness's fixed key (SFrame, the dissectors' key store).

Run from the checkout root: ``python fuzz/make_seeds.py`` (``--check`` only prints the sizes).
Old ``seed-*`` files are replaced; regression inputs (``crash-*``, ``slow-*`` …) are kept. The
reference's group ids and keys are random, so a new run writes other (equally valid) bytes.
"""
from __future__ import annotations

import argparse
import gzip
import json
import zlib
import sys
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

Seeds = Dict[str, List[Tuple[str, bytes]]]


def _vectors(name: str) -> list:
    with gzip.open(ROOT / "tests" / "vectors" / "mls" / name) as fh:
        return json.load(fh)


def _record(body: bytes) -> bytes:
    return len(body).to_bytes(4, "little") + body


def reference_seeds(out: Seeds) -> None:
    """Frames, payloads, control messages, MLS objects and state blobs from the gbp-stack wheel."""
    import refpeer  # noqa: E402  (tests/ fixture: the gbp_stack wheel)

    from gbp_lab.core import decode_frame, open_frame

    from fuzz.harnesses import scapy as scapy_h

    with refpeer.two_member_group() as grp:
        frames = refpeer.reference_frames(grp)
        keys = grp.keylog("alice")
        blob = grp.mls["bob"].export_state()
        keylog_text = keys.dump()
    flow = refpeer.transition_flow()
    flow.group.close()
    dave = refpeer.MlsContext.create("dave")
    try:
        kp = bytes(dave.export_key_package())
    finally:
        dave.close()
    codec_index = {0: 0, 1: 1, 2: 2}
    cls_index = {"gtp": 0, "gap": 1, "gsp": 2}
    for i, f in enumerate(frames):
        tag = f"ref-{f.kind}-{f.codec}-{i}"
        out["frame"].append((tag, f.wire))
        out["scapy"].append((tag, b"\x00" + _record(f.wire)))
        if f.kind == "control":
            pt = open_frame(decode_frame(f.wire), keys)
            out["control"].append((tag, b"\x00" + pt))
            out["scapy"].append((tag + "-layer", bytes([scapy_h.selector_for(scapy_h.GbpControl)]) + pt))
        elif f.plaintext is not None:
            sel = cls_index[f.kind] + 5 * codec_index[f.codec]
            out["payload"].append((tag, bytes([sel]) + f.plaintext))
    for sender, op, wire in flow.frames:
        out["frame"].append((f"ref-flow-{op.lower()}", wire))
    out["frame"].append(("ref-text-new-epoch", flow.text_after))
    stream = b"".join(_record(f.wire) for f in frames[:6])
    for mode, pattern in ((0, b""), (1, b"\x07\x01\x00\x40"), (3, b"\x03"), (5, b"\x10\x02")):
        out["framing"].append((f"ref-mode{mode}", bytes([mode, len(pattern)]) + pattern + stream))
    out["framing"].append(("ref-handshake-raw", b"\x00\x00" + _record(flow.welcome) + _record(frames[0].wire)))
    out["mls_message"].append(("ref-commit", flow.commit))
    out["mls_message"].append(("ref-welcome", flow.welcome))
    out["key_package"].append(("ref-key-package", kp))  # a bare KeyPackage (no MLSMessage envelope)
    out["welcome"].append(("ref-welcome", flow.welcome[4:]))
    out["keylog"].append(("ref-export-state-keylog", b"\x00" + keylog_text.encode()))
    out["keylog"].append(("ref-state-blob", b"\x01" + blob))
    out["keylog"].append(("ref-state-blob-all", b"\x03" + blob))


def vector_seeds(out: Seeds) -> None:
    """MLS structures from the official test vectors (messages.json, tree-validation.json)."""
    cases = _vectors("messages.json.gz")
    for i, case in enumerate(cases[:2]):
        for key in ("mls_welcome", "mls_group_info", "mls_key_package", "public_message_application",
                    "public_message_proposal", "public_message_commit", "private_message"):
            out["mls_message"].append((f"vec-{key}-{i}", bytes.fromhex(case[key])))
        out["key_package"].append((f"vec-{i}", bytes.fromhex(case["mls_key_package"])[4:]))
        out["welcome"].append((f"vec-{i}", bytes.fromhex(case["mls_welcome"])[4:]))
        out["group_info"].append((f"vec-{i}", bytes.fromhex(case["mls_group_info"])[4:]))
        out["ratchet_tree"].append((f"vec-messages-{i}", b"\x00" + bytes.fromhex(case["ratchet_tree"])))
    trees = sorted(_vectors("tree-validation.json.gz"), key=lambda c: len(c["tree"]))
    for i, case in enumerate(trees[:4]):
        suite = int(case["cipher_suite"])
        if suite in (1, 2, 3):
            out["ratchet_tree"].append((f"vec-validation-{i}", bytes([suite - 1]) + bytes.fromhex(case["tree"])))


def own_seeds(out: Seeds) -> None:
    """Bytes our encoders make with the harnesses' fixed keys (SFrame, dissector key store),
    and the ErrorObjects / attachments the reference fixtures do not send."""
    from gbp_lab.core import AttachmentChunk, AttachmentManifest, ErrorObject, SFrameSession, seal_frame
    from gbp_lab.core.gbp.control import ControlMessage
    from gbp_lab.core.gbp.registry import ERROR_SPECS
    from gbp_lab.core.gsp.signal import GspSignal
    from gbp_lab.core.gtp.message import GtpMessage
    from gbp_lab.core.payload_codec import encode

    from fuzz.harnesses import scapy as scapy_h
    from fuzz.harnesses import sframe as sframe_h

    for code, spec in list(ERROR_SPECS.items())[:3]:
        out["control"].append((f"own-errobj-{int(code)}", b"\x01" + ErrorObject.from_spec(spec, "why").to_cbor()))
    man = AttachmentManifest(attachment_id=9, filename="a.txt", mime_type="text/plain", total_size=5,
                             chunk_count=1, sha256=bytes(32))
    chunk = AttachmentChunk(attachment_id=9, chunk_index=0, chunk_count=1, data=b"hello")
    for ci, codec in enumerate((0, 1, 2)):
        out["payload"].append((f"own-manifest-{codec}", bytes([3 + 5 * ci]) + encode(man, codec)))
        out["payload"].append((f"own-chunk-{codec}", bytes([4 + 5 * ci]) + encode(chunk, codec)))
    for pi, profile in enumerate(("rfc9605", "draft-1.5")):
        session = SFrameSession.from_base_key(sframe_h.BASE_KEY, sframe_h.EPOCH, profile=profile)
        for leaf in (0, 1, 5):
            enc = session.create_encryptor(None, leaf)
            for n, size in enumerate((0, 40)):
                payload = enc.encrypt(bytes(range(size)))
                out["sframe"].append((f"own-{profile}-leaf{leaf}-{n}", bytes([pi]) + payload))
        out["sframe"].append((f"own-{profile}-auto", b"\x02" + payload))
    gid, secret = scapy_h.GID, scapy_h.SECRET
    plaintexts = ((2, GtpMessage.plain(1, 1, "hi").to_bytes(), 0),
                  (3, GspSignal(200, 1, 1, 0, None, b"\xa1\x00\x02").to_bytes(1), 1),
                  (0, ControlMessage.build(1, 1, 1, 1, b"\x00\x01\x00\x02" + bytes(40)).to_cbor(), 0),
                  (1, bytes.fromhex("a5646d7369640563736571016274731903c0626b7001646f7075734101"), 0))
    for st, pt, pf in plaintexts:
        wire = seal_frame(secret, gid, 1, 0, st, 100 + st, 7, 5, pt, payload_format=pf).to_cbor()
        out["scapy"].append((f"own-sealed-st{st}", b"\x00" + _record(wire)))
    out["scapy"].append(("own-sframe-layer", bytes([scapy_h.selector_for(scapy_h.SFrame)]) + out["sframe"][1][1][1:]))


def capture_seeds(out: Seeds) -> None:
    """The reference test captures and the demo capture (whole files) and TCP segment
    sequences cut from the demo capture."""
    from gbp_lab.capture import CaptureReader, decode_packet
    from gbp_lab.sim.demo import DEMO_PCAP

    files = sorted((ROOT / "tests" / "captures").glob("*.pcap*")) + [Path(DEMO_PCAP)]
    for path in files:
        data = path.read_bytes()
        out["pcap"].append((f"file-{path.name}", data))
        if len(data) <= 65536:
            out["capture"].append((f"file-{path.name}", data))
    # a cut demo capture whose crc32 selects the capture harness's iter_capture oracle, so the
    # corpus replay exercises it too
    demo = Path(DEMO_PCAP).read_bytes()
    cut = next(n for n in range(20000, 10000, -1) if zlib.crc32(demo[:n]) % 3 == 0)
    out["capture"].append(("demo-cut-diff-oracle", demo[:cut]))
    # TCP: each direction of the first flow of two captures, as harness operations
    for path in (ROOT / "tests" / "captures" / "segmented.pcap", Path(DEMO_PCAP)):
        reader = CaptureReader(path.read_bytes())
        dirs: Dict[Tuple[str, int, str, int], List[bytes]] = {}
        for t in reader.iter_tuples():
            d = decode_packet(t[2], t[7])
            if d is None or d.proto != 6 or d.fragment:
                continue
            key = (d.src, d.sport, d.dst, d.dport)
            ops = dirs.setdefault(key, [])
            payload = d.payload[:255]
            ops.append(bytes([4]) + d.seq.to_bytes(4, "big") + bytes([d.flags, len(payload)]) + payload)
            if d.flags & 0x10:
                ops.append(b"\x03" + d.ack.to_bytes(4, "big"))
        for n, (key, ops) in enumerate(list(dirs.items())[:2]):
            body = b"".join(ops[:40])
            out["tcp"].append((f"pcap-{path.stem}-{n}", b"\x05" + bytes(4) + body))
    # synthetic: SYN, out of order, retransmission with other bytes, FIN
    syn = b"\x04" + (1000).to_bytes(4, "big") + b"\x02\x00"
    seg = lambda seq, flags, data: b"\x04" + seq.to_bytes(4, "big") + bytes([flags, len(data)]) + data  # noqa: E731
    out["tcp"].append(("synthetic-ooo", b"\x00" + bytes(4) + syn + seg(1011, 0x18, b"B" * 10)
                       + seg(1001, 0x18, b"A" * 10) + seg(1001, 0x18, b"C" * 10) + seg(1021, 0x11, b"")))
    out["tcp"].append(("synthetic-nosyn-wrap", b"\x1a" + bytes(4) + seg(0xFFFFFFF0, 0x18, b"x" * 32)
                       + seg(0x10, 0x18, b"y" * 8) + b"\x03" + (0x40).to_bytes(4, "big")))


def quic_seeds(out: Seeds) -> None:
    """A real QUIC connection (aioquic both ends, in memory): handshake, stream bytes both ways,
    a key update, the TLS lines up front (the quic harness's input format)."""
    from aioquic.quic.connection import QuicConnection

    from gbp_lab.sim.quic import (TlsSecretsLog, client_configuration, make_certificate,
                                  server_configuration)
    log = TlsSecretsLog()
    client = QuicConnection(configuration=client_configuration(None, secrets_log=log))
    server = QuicConnection(configuration=server_configuration(make_certificate(), secrets_log=log),
                            original_destination_connection_id=client.original_destination_connection_id)
    wire: List[Tuple[int, bytes]] = []
    now = 0.0

    def pump() -> None:
        nonlocal now
        for _ in range(10):
            for fc, a, b, src in ((1, client, server, ("10.0.0.1", 40000)),
                                  (0, server, client, ("10.0.0.2", 7878))):
                for data, _addr in a.datagrams_to_send(now=now):
                    wire.append((fc, data))
                    b.receive_datagram(data, src, now=now)
            now += 0.01

    client.connect(("10.0.0.2", 7878), now=now)
    pump()
    for i in range(4):
        client.send_stream_data(0, _record(b"\xaa" + bytes([i]) * 40))
        server.send_stream_data(1, _record(b"\xab" + bytes([i]) * 30), end_stream=i == 3)
        if i == 1:
            client.request_key_update()
        pump()
    keys = log.text().encode()
    body = b"".join(bytes([fc]) + len(d).to_bytes(2, "big") + d for fc, d in wire)
    out["quic"].append(("aioquic-connection", len(keys).to_bytes(2, "big") + keys + body))
    out["quic"].append(("aioquic-no-secrets", b"\x00\x00" + body))


def main(argv=None) -> int:
    from fuzz.harnesses import NAMES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only print what would be written")
    ap.add_argument("--no-reference", action="store_true", help="skip the gbp-stack wheel's seeds")
    args = ap.parse_args(argv)
    out: Seeds = {n: [] for n in NAMES}
    if not args.no_reference:
        reference_seeds(out)
    vector_seeds(out)
    own_seeds(out)
    quic_seeds(out)
    capture_seeds(out)
    total = 0
    for name, seeds in out.items():
        size = sum(len(b) for _, b in seeds)
        total += size
        print(f"{name:14} {len(seeds):3} seeds {size:8} bytes")
        if args.check:
            continue
        folder = ROOT / "fuzz" / "corpus" / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for tag, data in seeds:
            (folder / f"seed-{tag}").write_bytes(data)
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
