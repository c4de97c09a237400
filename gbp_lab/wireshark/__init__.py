"""gbp_lab.wireshark — GBP in Wireshark.

* :mod:`.generator` — writes the Lua dissector ``gbp.lua`` from the stack's own tables (stream
  types, flags, opcodes, codecs, signal types, frame/control keys, payload ``MessageSchema`` objects);
  the checked-in ``gbp_lab/wireshark/gbp.lua`` is its output (``tests/test_wireshark.py``);
* :mod:`.plugin_cmd` — ``gbp-lab wireshark-plugin [DIR]``;
* :mod:`.export` — decrypted export (pcapng of Wireshark "exported PDUs", link type
  ``WIRESHARK_UPPER_PDU``) through the one capture read path; :mod:`.export_cmd` —
  ``gbp-lab export-decrypted``.
"""
