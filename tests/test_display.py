"""Core objects display as HTML in notebooks (formatters registered by gbp_lab.display)."""
import pytest

IPython = pytest.importorskip("IPython")


def test_core_objects_render_as_html():
    from IPython.core.interactiveshell import InteractiveShell

    from gbp_lab import display
    from gbp_lab.core import GroupNode, MlsContext, decode_frame, encode_gbp_frame

    ip = InteractiveShell.instance()
    assert display.register(ip)
    fmt = ip.display_formatter

    alice, bob = MlsContext.create("alice"), MlsContext.create("bob")
    bob.accept_welcome(alice.invite(bob.export_key_package()))
    tree_html = fmt.format(alice.tree)[0]["text/html"]
    assert "<svg" in tree_html and "alice" in tree_html and "bob" in tree_html

    secrets_html = fmt.format(alice.epoch_secrets)[0]["text/html"]
    assert "exporter_secret" in secrets_html
    assert alice.epoch_secrets.exporter_secret.reveal().hex() not in secrets_html  # redacted

    frame = decode_frame(encode_gbp_frame(1, alice.group_id, 1, 0, 2, 101, 7, 1, b"\x00" * 20))
    frame_html = fmt.format(frame)[0]["text/html"]
    assert "sequence_no" in frame_html and "101" in frame_html

    node = GroupNode.create(1, alice.group_id)
    node.bootstrap_as_creator(1)
    events = node.drain_events()
    assert events
    assert "state_changed" in fmt.format(events[0])[0]["text/html"]


def test_registration_finds_a_running_shell_and_costs_nothing_elsewhere():
    import subprocess
    import sys

    from IPython.core.interactiveshell import InteractiveShell

    from gbp_lab import display

    InteractiveShell.instance()
    assert display.register() is True  # the shell of this process, found without being passed
    out = subprocess.run([sys.executable, "-c", "import sys, gbp_lab; print('IPython' in sys.modules)"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "False"  # plain `import gbp_lab` does not pull IPython in
