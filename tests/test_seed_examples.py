"""The examples of the reference's Python README run unchanged on gbp_lab.core.

The example text is read at test time from the installed wheel's README (its package metadata,
the PyPI description): quick start, payload-codec selection, GSP signals with per-signal args and
the multi-member ``invite_full`` pattern. Each example runs three ways:

* ``reference`` — as written (``from gbp_stack import …``): proves the example text is right;
* ``ours+refmls`` — ``from gbp_stack import`` replaced by a module whose ``GroupNode``,
  ``GtpClient``, ``GspClient``, ``SignalType``, ``PayloadCodec`` … are gbp_lab.core's and whose
  ``MlsContext`` is the reference's wrapped in ``tests/refmls.RefMls`` (our node needs only
  ``epoch`` + ``export_raw``): proves our node and clients run the text unchanged today;
* ``ours`` — ``from gbp_lab.core import …``; needs our MlsContext and is skipped ONLY while
  ``gbp_lab.core.MlsContext`` does not exist.

Fragments that use names defined in an earlier example (``alice``, ``bob_mls``, ``gtp_alice`` …)
get a small prelude that builds those names with the same library.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import io
import pathlib
import re
import sys
import types

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import gbp_lab.core as core  # noqa: E402

WANTED = {
    "quick_start": "Quick start",
    "codec": "Payload codec",
    "gsp_args": "GSP signals with per-signal arguments",
    "invite_full": "MLS multi-member group pattern",
}

PRELUDE = '''
from {lib} import MlsContext, GroupNode, GtpClient
alice_mls = MlsContext.create("alice")
bob_mls = MlsContext.create("bob")
carol_mls = MlsContext.create("carol")
bob_mls.accept_welcome(alice_mls.invite(bob_mls.export_key_package()))
alice = GroupNode.create(member_id=1, group_id=alice_mls.group_id)
bob = GroupNode.create(member_id=2, group_id=alice_mls.group_id)
alice.bootstrap_as_creator(alice_mls.epoch)
bob.bootstrap_as_joiner(bob_mls.epoch)
alice_node = alice
gtp_alice = GtpClient.create()
gtp_bob = GtpClient.create()
'''


def _readme() -> str:
    return importlib.metadata.metadata("gbp-stack").get_payload()


def _examples():
    text = _readme()
    out = {}
    for key, heading in WANTED.items():
        m = re.search(r"^## " + re.escape(heading) + r"\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
        assert m, f"README section {heading!r} not found"
        blocks = re.findall(r"```python\n(.*?)```", m.group(1), re.S)
        assert blocks, heading
        out[key] = blocks[0]
    return out


EXAMPLES = _examples()


def _hybrid_module() -> types.ModuleType:
    import refmls

    mod = types.ModuleType("gbp_lab_hybrid")
    for name in ("GroupNode", "GtpClient", "GapClient", "GspClient", "SignalType", "PayloadCodec",
                 "NodeEvent", "OutboundFrame", "StreamType", "ControlOpcode"):
        setattr(mod, name, getattr(core, name))
    mod.MlsContext = refmls.RefMls
    return mod


def _run(key: str, lib: str) -> tuple:
    code = EXAMPLES[key]
    if key != "quick_start":
        code = PRELUDE + code
    code = code.replace("{lib}", lib).replace("from gbp_stack import", f"from {lib} import")
    if lib != "gbp_stack":
        assert "gbp_stack" not in code
    ns: dict = {"__name__": f"example_{key}"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"<README {WANTED[key]}>", "exec"), ns)
    return ns, out.getvalue()


def _check(key: str, ns: dict, printed: str) -> None:
    if key == "quick_start":
        assert printed.strip() == "hello"
    elif key == "codec":
        assert printed.strip() == "hello" and int(ns["codec"]) == 2
    elif key == "gsp_args":
        frame = ns["frame"]
        assert frame.target == 0 and len(frame.wire) > 40
        evs = ns["bob"].on_wire(ns["bob_mls"], frame.wire)
        (ev,) = [e for e in evs if e.kind == "payload_received"]
        from gbp_lab.core.gsp.signal import GspSignal

        sig = GspSignal.from_bytes(ev.plaintext)
        assert (sig.signal_type, sig.request_id, sig.sender_id, sig.args) == (200, 1, 1, b"\xa1\x00\x03")
    elif key == "invite_full":
        assert ns["alice_mls"].epoch == ns["bob_mls"].epoch == ns["carol_mls"].epoch == 2


def test_examples_are_found():
    assert set(EXAMPLES) == set(WANTED)
    assert "invite_full" in EXAMPLES["invite_full"] and "SignalType.MUTE" in EXAMPLES["gsp_args"]


@pytest.mark.interop
@pytest.mark.parametrize("key", list(WANTED))
def test_example_runs_on_the_reference(key):
    ns, printed = _run(key, "gbp_stack")
    _check(key, ns, printed)


@pytest.mark.interop
@pytest.mark.parametrize("key", list(WANTED))
def test_example_runs_on_our_node_and_clients(key, monkeypatch):
    monkeypatch.setitem(sys.modules, "gbp_lab_hybrid", _hybrid_module())
    ns, printed = _run(key, "gbp_lab_hybrid")
    assert ns["GroupNode"] is core.GroupNode
    if key != "quick_start":
        assert isinstance(ns["bob"], core.GroupNode) and isinstance(ns["gtp_alice"], core.GtpClient)
    _check(key, ns, printed)


@pytest.mark.parametrize("key", list(WANTED))
def test_example_runs_on_gbp_lab_core(key):
    if not hasattr(core, "MlsContext"):
        pytest.skip("gbp_lab.core.MlsContext does not exist yet (our MLS is being written)")
    ns, printed = _run(key, "gbp_lab.core")
    _check(key, ns, printed)
