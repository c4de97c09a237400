"""The MLSMessage bodies (Welcome, GroupInfo, KeyPackage; RFC 9420 §6) decode to their structures
whatever was imported first: importing any ``gbp_lab.core.mls`` module registers them."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from gbp_lab.core.mls.context import MlsContext

SCRIPT = textwrap.dedent("""
    import os, sys, types
    import gbp_lab
    # gbp_lab.core's own __init__ happens to import most of the MLS package today: stand in an
    # empty package for it so that only gbp_lab.core.mls (and what framing needs) is imported
    core = types.ModuleType("gbp_lab.core")
    core.__path__ = [os.path.join(os.path.dirname(gbp_lab.__file__), "core")]
    sys.modules["gbp_lab.core"] = core
    from gbp_lab.core.mls.framing import MLSMessage
    assert "gbp_lab.core.mls.context" not in sys.modules
    data = bytes.fromhex(sys.argv[1])
    kp = bytes.fromhex(sys.argv[2])
    m = MLSMessage.from_bytes(data)
    from gbp_lab.core.mls.welcome import Welcome
    assert isinstance(m.message, Welcome), type(m.message)
    assert m.to_bytes() == data
    m = MLSMessage.from_bytes(b"\\x00\\x01\\x00\\x05" + kp)
    from gbp_lab.core.mls.key_package import KeyPackage
    assert isinstance(m.message, KeyPackage), type(m.message)
    print("ok")
""")


def test_fresh_interpreter_importing_only_framing_gets_a_welcome():
    alice = MlsContext.create("alice")
    bob = MlsContext.create("bob")
    kp = bob.export_key_package()
    welcome = alice.invite(kp)
    out = subprocess.run([sys.executable, "-c", SCRIPT, welcome.hex(), kp.hex()],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
