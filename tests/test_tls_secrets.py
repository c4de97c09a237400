"""The standard TLS key-log Decryption Secrets Block (type 0x544c534b) next to our GBPK block:
a real TLS 1.3 session (Python's ``ssl`` over memory BIOs, keys logged ``SSLKEYLOGFILE``-style)
written as TCP packets; ``inject_secrets(..., tls_keylog=)`` / ``gbp-lab inject-secrets
--tls-keylog`` embed its keys and the real ``tshark`` decrypts the HTTP request inside."""
from __future__ import annotations

import datetime
import pathlib
import ssl
import subprocess
import sys

import pytest

from gbp_lab.capture import read_capture
from gbp_lab.capture.pcapfile import SECRETS_TYPE_GBP_KEYLOG, SECRETS_TYPE_TLS_KEYLOG
from gbp_lab.capture.pcapwriter import PcapngWriter, inject_secrets
from gbp_lab.core.errors import UsageError

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # pytest runs with importlib mode
from test_wireshark import tshark  # noqa: E402

DEMO = pathlib.Path(__file__).resolve().parents[1] / "gbp_lab" / "data" / "demo"
REQUEST = b"GET /gbp-lab-secret HTTP/1.1\r\nHost: lab\r\n\r\n"


def _cert(tmp):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lab")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return tmp / "c.pem", tmp / "k.pem"


def _tls_session(tmp):
    """[(from_client, bytes)] of a TLS 1.3 session carrying REQUEST, and the client's key log."""
    cert, key = _cert(tmp)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname, cctx.verify_mode = False, ssl.CERT_NONE
    cctx.keylog_filename = str(tmp / "tls.keys")
    bios = [ssl.MemoryBIO() for _ in range(4)]
    client = cctx.wrap_bio(bios[0], bios[1], server_hostname="lab")
    server = sctx.wrap_bio(bios[2], bios[3], server_side=True)
    flights = []

    def pump():
        for src, dst, from_client in ((bios[1], bios[2], True), (bios[3], bios[0], False)):
            data = src.read()
            if data:
                flights.append((from_client, data))
                dst.write(data)

    for _ in range(10):
        for end in (client, server):
            try:
                end.do_handshake()
            except ssl.SSLWantReadError:
                pass
        pump()
    client.write(REQUEST)
    pump()
    assert server.read(1024) == REQUEST
    return flights, (tmp / "tls.keys").read_text()


def _write_tcp(path, flights):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    seq = {True: 1000, False: 5000}
    with PcapngWriter(path) as w:
        w.add_interface(1)
        for i, (from_client, data) in enumerate(flights):
            a, b = ("10.0.0.1", "10.0.0.2") if from_client else ("10.0.0.2", "10.0.0.1")
            sp, dp = (40000, 443) if from_client else (443, 40000)
            pkt = (Ether() / IP(src=a, dst=b) /
                   TCP(sport=sp, dport=dp, seq=seq[from_client], ack=seq[not from_client],
                       flags="PA") / data)
            seq[from_client] += len(data)
            w.write_packet(bytes(pkt), time=1.0 + i / 10)


def _requests(cap):
    res = subprocess.run([tshark(), "-r", str(cap), "-Y", "http.request", "-T", "fields",
                          "-e", "http.request.uri"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    flights, keys = _tls_session(tmp)
    _write_tcp(tmp / "plain.pcapng", flights)
    assert "CLIENT_TRAFFIC_SECRET_0" in keys
    return tmp, keys


def test_tshark_decrypts_tls_with_the_injected_tls_secrets_block(session):
    tmp, keys = session
    assert _requests(tmp / "plain.pcapng") == []  # encrypted without the keys
    out = tmp / "with_keys.pcapng"
    gbpk = (DEMO / "keys.log").read_text()
    assert inject_secrets(tmp / "plain.pcapng", out, gbpk, tls_keylog=keys) > 0
    assert _requests(out) == ["/gbp-lab-secret"]
    secrets = read_capture(str(out)).secrets
    assert [s.secrets_type for s in secrets] == [SECRETS_TYPE_GBP_KEYLOG, SECRETS_TYPE_TLS_KEYLOG]
    assert secrets[1].data.decode() == keys


def test_inject_secrets_command_tls_keylog(session):
    tmp, keys = session
    exe = pathlib.Path(sys.executable).with_name("gbp-lab")
    (tmp / "tls.log").write_text(keys)
    out = tmp / "cli.pcapng"
    res = subprocess.run([str(exe), "inject-secrets", str(tmp / "plain.pcapng"),
                          str(DEMO / "keys.log"), str(out), "--tls-keylog", str(tmp / "tls.log")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert _requests(out) == ["/gbp-lab-secret"]
    (tmp / "bad.log").write_text("CLIENT_RANDOM nothex zz\n")
    bad = subprocess.run([str(exe), "inject-secrets", str(tmp / "plain.pcapng"),
                          str(DEMO / "keys.log"), str(tmp / "bad.pcapng"), "--tls-keylog",
                          str(tmp / "bad.log")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "TLS key log line 1" in bad.stderr
    assert not (tmp / "bad.pcapng").exists()


def test_add_tls_keylog_rejects_what_is_no_nss_key_log(tmp_path):
    with PcapngWriter(tmp_path / "x.pcapng") as w:
        w.add_tls_keylog("# comment\n\nCLIENT_RANDOM 00ff 11ee\n")
        with pytest.raises(UsageError) as ei:
            w.add_tls_keylog("CLIENT_RANDOM 00ff\n")
    assert ei.value.vid == "CAP-WRITER-TLSKEYLOG"
