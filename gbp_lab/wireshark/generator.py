"""Generate the Wireshark Lua dissector ``gbp.lua`` from the stack's own tables.

Nothing in the plugin is typed by hand twice: the stream-type table
(:data:`~gbp_lab.core.gbp.registry.STREAM_TYPES`, gbp_rfc.md §6), the stream-id stride
(:data:`~gbp_lab.core.gbp.registry.STREAM_ID_STRIDE`), :class:`FrameFlags` (§6.1),
:class:`ControlOpcode` (gbp-control-plane.md §3), :class:`PayloadCodec`, the frame and control
keys (:data:`~gbp_lab.core.gbp.frame.FRAME_SPEC`, :data:`~gbp_lab.core.gbp.control.CONTROL_SPEC`),
the GTP/GAP/GSP :class:`~gbp_lab.core.payload_codec.MessageSchema` rows, :class:`SignalType`
(gsp_rfc §5), the MLS record kinds (:class:`~gbp_lab.core.gbp.classify.RecordKind`, RFC 9420 §6)
and the framing limits (:data:`~gbp_lab.core.gbp.framing.MAX_RECORD`, port 7878) become Lua
tables and ``ProtoField`` declarations; the dissection logic is the fixed Lua runtime below
(a small bounds-checked CBOR reader, RFC 8949 §3).

The plugin uses the Wireshark 4.0 Lua API only (Lua 5.2, no ``bit32``/integer operators):
``Proto``, ``ProtoField``, ``ProtoExpert``, ``dissect_tcp_pdus``, ``register_heuristic``,
``DissectorTable``. Dissectors: ``gbp`` (TCP 7878 + TCP heuristic, records reassembled across
segments), ``gbpudp`` (UDP 7878 + UDP heuristic, one record per datagram), ``gbprec`` and
``gbpdec`` (one record body as exported by :mod:`gbp_lab.wireshark.export`: as captured, resp.
with ``pl`` replaced by the decrypted payload).

``python -m gbp_lab.wireshark.generator [OUT]`` rewrites the checked-in
``gbp_lab/wireshark/gbp.lua`` (``tests/test_wireshark.py`` fails when it differs).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from gbp_lab.core.gap.payload import GAP_PAYLOAD_SCHEMA
from gbp_lab.core.gbp.classify import RecordKind
from gbp_lab.core.gbp.control import CONTROL_SPEC
from gbp_lab.core.gbp.frame import FRAME_SPEC
from gbp_lab.core.gbp.framing import MAX_RECORD
from gbp_lab.core.gbp.registry import (STREAM_ID_STRIDE, STREAM_TYPES, ControlOpcode, FrameFlags,
                                       PayloadCodec, StreamType)
from gbp_lab.core.gsp.signal import GSP_SIGNAL_SCHEMA, SignalType
from gbp_lab.core.gtp.message import GTP_MESSAGE_SCHEMA, GtpContentType
from gbp_lab.core.payload_codec import Kind, MessageSchema
from gbp_lab.core.sframe import TAG_LENGTH

__all__ = ["PLUGIN_NAME", "GBP_PORT", "FRAME_FIELDS", "CONTROL_FIELDS", "PAYLOAD_PROTOCOLS",
           "generate", "plugin_path", "main"]

PLUGIN_NAME = "gbp.lua"
#: the GBP TCP/UDP port (the capture read path's default, gbp_lab.capture.records.GBP_PORT)
GBP_PORT = 7878

#: frame key (FRAME_SPEC) -> display-filter field
FRAME_FIELDS: Mapping[str, str] = {
    "v": "gbp.version", "gid": "gbp.group_id", "ep": "gbp.epoch", "tid": "gbp.transition_id",
    "st": "gbp.stream_type", "sid": "gbp.stream_id", "fl": "gbp.flags", "seq": "gbp.seq",
    "psz": "gbp.psz", "pl": "gbp.payload", "pf": "gbp.codec"}
#: control key (CONTROL_SPEC) -> display-filter field
CONTROL_FIELDS: Mapping[str, str] = {
    "op": "gbpctl.opcode", "rid": "gbpctl.request_id", "sid": "gbpctl.sender_id",
    "tid": "gbpctl.transition_id", "alen": "gbpctl.args_length", "args": "gbpctl.args"}
#: stream type -> (field prefix, payload schema); the control stream is CONTROL_FIELDS
PAYLOAD_PROTOCOLS: Mapping[int, Tuple[str, MessageSchema]] = {
    int(StreamType.AUDIO): ("gap", GAP_PAYLOAD_SCHEMA),
    int(StreamType.TEXT): ("gtp", GTP_MESSAGE_SCHEMA),
    int(StreamType.SIGNAL): ("gsp", GSP_SIGNAL_SCHEMA),
}
#: (prefix, attribute) -> field name where the issue's filter name differs from the attribute
_RENAMES = {("gap", "rtp_sequence"): "rtp_seq", ("gsp", "signal_type"): "signal",
            ("gtp", "content"): "text"}
#: value strings of payload fields
_VALUE_STRINGS = {("gsp", "signal_type"): "SIGNALS", ("gtp", "content_type"): "CONTENT_TYPES"}
_FLAG_LETTERS = {"ORDERED": "O", "RELIABLE": "R", "ACK_REQUESTED": "A", "SYSTEM": "S",
                 "CRITICAL": "C"}
_KIND_FIELD = {Kind.U8: "uint8", Kind.U16: "uint16", Kind.U32: "uint32", Kind.U64: "uint64",
               Kind.BYTES: "bytes", Kind.TEXT: "string"}
_SPEC_FIELD = {0xFF: "uint8", 0xFFFF: "uint16", 0xFFFFFFFF: "uint32", (1 << 64) - 1: "uint64"}


def _lua_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lua_map(items: Iterable[Tuple[int, str]]) -> str:
    return "{" + ", ".join(f"[{k}]={_lua_str(v)}" for k, v in items) + "}"


def _spec_fields(spec: Sequence[tuple], names: Mapping[str, str]) -> List[Tuple[str, str, str]]:
    """(key, field, Lua ProtoField constructor) per key of a CBOR spec (``(key, kind, max)``)."""
    keys = [k for k, _, _ in spec]
    if sorted(keys) != sorted(names):  # the wire table changed: map the new key first
        raise RuntimeError(f"wireshark generator: keys {keys} != mapped {sorted(names)}")
    out = []
    for key, kind, maxv in spec:
        ctor = "bytes" if kind == "bstr" or maxv == 0 else _SPEC_FIELD.get(abs(maxv), "uint64")
        out.append((key, names[key], ctor))
    return out


def _payload_fields(prefix: str, schema: MessageSchema) -> List[Tuple[str, str, str, str]]:
    """(CBOR key, field, constructor, kind) per schema field."""
    out = []
    for f in schema.fields:
        name = _RENAMES.get((prefix, f.attr), f.attr)
        ctor = "string" if name == "text" else _KIND_FIELD[f.kind]
        out.append((f.key, f"{prefix}.{name}", ctor, f.kind.name.lower()))
    return out


def _title(field: str) -> str:
    return field.split(".", 1)[1].replace("_", " ").capitalize()


def _tables() -> str:
    """The generated Lua: tables and field declarations."""
    lines: List[str] = []
    add = lines.append
    add(f"local GBP_PORT = {GBP_PORT}")
    add(f"local MAX_RECORD = {MAX_RECORD}")
    add(f"local STRIDE = {STREAM_ID_STRIDE}")
    add(f"local SFRAME_TAG = {TAG_LENGTH}")
    add("local STREAM_NAMES = " + _lua_map((int(st), i.name) for st, i in STREAM_TYPES.items()))
    add("local STREAM_PROTOCOLS = " + _lua_map((int(st), i.protocol)
                                                for st, i in STREAM_TYPES.items()))
    add("local CODECS = " + _lua_map((int(c), c.name) for c in PayloadCodec))
    add("local OPCODES = " + _lua_map((int(o), o.name) for o in ControlOpcode))
    add("local SIGNALS = " + _lua_map((int(s), s.name) for s in SignalType))
    add("local CONTENT_TYPES = " + _lua_map((int(c), c.name) for c in GtpContentType))
    add("local MLS_KINDS = " + _lua_map(
        (i, k.value) for i, k in enumerate([RecordKind.PUBLIC_MESSAGE, RecordKind.PRIVATE_MESSAGE,
                                            RecordKind.WELCOME, RecordKind.GROUP_INFO,
                                            RecordKind.KEY_PACKAGE], start=1)))
    flags = [f for f in FrameFlags if f.value]
    add("local FLAG_BITS = {" + ", ".join(
        f"{{{int(f)}, {_lua_str(str(f.name))}, {_lua_str(_FLAG_LETTERS.get(str(f.name), '?'))}}}"
        for f in flags) + "}")
    add("")
    add("local F = {}  -- display-filter name -> ProtoField")
    add('F["gbp.record_length"] = ProtoField.uint32("gbp.record_length", "Record length")')
    frame = _spec_fields(FRAME_SPEC, FRAME_FIELDS)
    for key, name, ctor in frame:
        extra = ""
        if name == "gbp.stream_type":
            extra = ", base.DEC, STREAM_NAMES"
        elif name == "gbp.codec":
            extra = ", base.DEC, CODECS"
        elif name == "gbp.flags":
            extra = ", base.HEX"
        add(f'F["{name}"] = ProtoField.{ctor}("{name}", "{_title(name)} ({key})"{extra})')
    add('F["gbp.sender"] = ProtoField.uint32("gbp.sender", "Sender member id (stream id // '
        f'{STREAM_ID_STRIDE})")')
    for f in flags:
        n = str(f.name).lower()
        add(f'F["gbp.flags.{n}"] = ProtoField.bool("gbp.flags.{n}", '
            f'{_lua_str(str(f.name).replace("_", " ").title())}, 16, nil, {int(f)})')
    add('F["gbp.mls"] = ProtoField.string("gbp.mls", "MLS structure")')
    add('F["gbp.decrypted"] = ProtoField.bool("gbp.decrypted", "Decrypted by gbp-lab export")')
    add('F["gbp.not_decrypted"] = ProtoField.string("gbp.not_decrypted", "Not decrypted")')
    ctl = _spec_fields(CONTROL_SPEC, CONTROL_FIELDS)
    for key, name, ctor in ctl:
        extra = ", base.HEX, OPCODES" if name == "gbpctl.opcode" else ""
        add(f'F["{name}"] = ProtoField.{ctor}("{name}", "{_title(name)} ({key})"{extra})')
    payload_keys: Dict[int, list] = {}
    for st, (prefix, schema) in PAYLOAD_PROTOCOLS.items():
        rows = _payload_fields(prefix, schema)
        payload_keys[st] = rows
        for key, name, ctor, _kind in rows:
            attr = name.split(".", 1)[1]
            vs = _VALUE_STRINGS.get((prefix, {v: k for (p, k), v in _RENAMES.items()
                                              if p == prefix}.get(attr, attr)))
            extra = f", base.DEC, {vs}" if vs else ""
            add(f'F["{name}"] = ProtoField.{ctor}("{name}", "{_title(name)} ({key})"{extra})')
    add('F["gtp.content"] = ProtoField.bytes("gtp.content", "Content (body, not text)")')
    add('F["sframe.kid"] = ProtoField.uint64("sframe.kid", "SFrame KID (RFC 9605 §4.3)")')
    add('F["sframe.ctr"] = ProtoField.uint64("sframe.ctr", "SFrame CTR (RFC 9605 §4.3)")')
    add("")
    add("-- CBOR key -> {field, kind}, in wire order")
    add("local FRAME_KEYS = {" + ", ".join(
        f'{{"{k}", "{n}", "{c}"}}' for k, n, c in frame) + "}")
    add("local CONTROL_KEYS = {" + ", ".join(
        f'{{"{k}", "{n}", "{c}"}}' for k, n, c in ctl) + "}")
    add("local PAYLOADS = {")
    for st, rows in payload_keys.items():
        prefix = PAYLOAD_PROTOCOLS[st][0]
        add(f'  [{st}] = {{name = "{prefix.upper()}", keys = {{' + ", ".join(
            f'{{"{k}", "{n}", "{c}"}}' for k, n, c, _ in rows) + "}},")
    add("}")
    add(f"local CONTROL_STREAM = {int(StreamType.CONTROL)}")
    add(f"local AUDIO_STREAM = {int(StreamType.AUDIO)}")
    return "\n".join(lines)


_HEADER = """\
-- gbp.lua: Wireshark dissector for the Group Protocol Stack (GBP frames carrying GTP, GAP, GSP;
-- gbp_rfc.md §3 records, §6 frames; RFC 8949 CBOR; RFC 9605 SFrame headers).
-- GENERATED by `python -m gbp_lab.wireshark.generator` from gbp-lab's registries: do not edit.
-- Load: tshark -X lua_script:gbp.lua -r capture.pcap   (or copy into the personal plugin folder;
-- `gbp-lab wireshark-plugin` does). Wireshark 4.0 Lua API (Lua 5.2) only.
"""

_RUNTIME = r'''
local gbp = Proto("gbp", "Group Binary Protocol")
local gbpudp = Proto("gbpudp", "Group Binary Protocol over UDP")
local gbprec = Proto("gbprec", "Group Binary Protocol record (exported)")
local gbpdec = Proto("gbpdec", "Group Binary Protocol record, decrypted by gbp-lab")

local E = {
  psz = ProtoExpert.new("gbp.psz_mismatch", "psz does not match the length of pl",
                        expert.group.MALFORMED, expert.severity.ERROR),
  malformed = ProtoExpert.new("gbp.malformed", "malformed GBP record",
                              expert.group.MALFORMED, expert.severity.ERROR),
  oversize = ProtoExpert.new("gbp.oversize", "record length above the 1 MiB limit",
                             expert.group.MALFORMED, expert.severity.ERROR),
  unknown = ProtoExpert.new("gbp.unknown_record", "record is neither a GBP frame nor MLS",
                            expert.group.UNDECODED, expert.severity.WARN),
  encrypted = ProtoExpert.new("gbp.encrypted", "payload encrypted (export with gbp-lab export-decrypted)",
                              expert.group.DECRYPTION, expert.severity.CHAT),
  not_decrypted = ProtoExpert.new("gbp.not_decrypted.expert", "gbp-lab could not decrypt this frame",
                                  expert.group.DECRYPTION, expert.severity.WARN),
  internal = ProtoExpert.new("gbp.internal_error", "gbp.lua internal error",
                             expert.group.MALFORMED, expert.severity.ERROR),
}

local fields = {}
for _, f in pairs(F) do fields[#fields + 1] = f end
gbp.fields = fields
gbp.experts = {E.psz, E.malformed, E.oversize, E.unknown, E.encrypted, E.not_decrypted, E.internal}

-- CBOR (RFC 8949 §3): bounded reads, never past `limit`; errors are returned, not raised --------
local HEAD_BYTES = {[24] = 1, [25] = 2, [26] = 4, [27] = 8}

local function num(v)
  if type(v) == "number" then return v end
  return v:tonumber()
end

-- major type, argument (number, or UInt64 for 8-byte arguments), offset after the head
local function head(tvb, off, limit)
  if off >= limit then return nil, "truncated CBOR item" end
  local b = tvb(off, 1):uint()
  local major, ai = math.floor(b / 32), b % 32
  if ai < 24 then return major, ai, off + 1 end
  local n = HEAD_BYTES[ai]
  if n == nil then
    if ai == 31 then return nil, "indefinite-length CBOR item (not decoded here)" end
    return nil, "reserved CBOR additional information " .. ai
  end
  if off + 1 + n > limit then return nil, "truncated CBOR head" end
  if n == 8 then return major, tvb(off + 1, 8):uint64(), off + 9 end
  return major, tvb(off + 1, n):uint(), off + 1 + n
end

local function skip(tvb, off, limit, depth)
  if depth > 32 then return nil, "CBOR nested too deep" end
  local major, v, nxt = head(tvb, off, limit)
  if major == nil then return nil, v end
  if major == 2 or major == 3 then
    local n = num(v)
    if n > limit - nxt then return nil, "truncated CBOR string" end
    return nxt + n
  elseif major == 4 or major == 5 then
    local n = num(v) * (major == 5 and 2 or 1)
    if n > limit - nxt then return nil, "truncated CBOR container" end
    for _ = 1, n do
      local e
      nxt, e = skip(tvb, nxt, limit, depth + 1)
      if nxt == nil then return nil, e end
    end
    return nxt
  elseif major == 6 then
    return skip(tvb, nxt, limit, depth + 1)
  end
  return nxt
end

-- a definite-length map with text keys: {key = {off, len, major, value, doff, dlen}}, or nil, err
local function read_map(tvb, off, limit)
  local major, n, nxt = head(tvb, off, limit)
  if major == nil then return nil, n end
  if major ~= 5 then return nil, "not a CBOR map" end
  n = num(n)
  if n * 2 > limit - nxt then return nil, "truncated CBOR map" end
  local m = {}
  for _ = 1, n do
    local km, kl, kv = head(tvb, nxt, limit)
    if km == nil then return nil, kl end
    local key = nil
    if km == 3 then
      kl = num(kl)
      if kl > limit - kv then return nil, "truncated CBOR key" end
      key = tvb(kv, kl):string()
      kv = kv + kl
    else
      local e
      kv, e = skip(tvb, nxt, limit, 1)
      if kv == nil then return nil, e end
    end
    local vm, vv, vnext = head(tvb, kv, limit)
    if vm == nil then return nil, vv end
    local item = {off = kv, major = vm, value = vv}
    if vm == 2 or vm == 3 then
      local dl = num(vv)
      if dl > limit - vnext then return nil, "truncated CBOR string" end
      item.doff, item.dlen, item.len = vnext, dl, vnext + dl - kv
    else
      local e, stop = nil, nil
      stop, e = skip(tvb, kv, limit, 1)
      if stop == nil then return nil, e end
      item.len = stop - kv
    end
    if key ~= nil then
      if m[key] ~= nil then return nil, "duplicate key " .. key end
      m[key] = item
    end
    nxt = kv + item.len
  end
  return m, nxt
end

local function as_u64(v)
  if type(v) == "number" then return UInt64.new(v) end
  return v
end

-- add one map entry of kind `ctor` (uintN / bytes / string) to `tree`; returns its value
local function add_entry(tree, tvb, item, field, ctor)
  local f = F[field]
  if ctor == "bytes" or ctor == "string" then
    if item.major ~= 2 and item.major ~= 3 then return nil, field .. ": not a byte/text string" end
    if item.dlen == 0 then
      tree:add(f, tvb(item.off, item.len), "")
    elseif ctor == "string" then
      local r = tvb(item.doff, item.dlen)
      tree:add(f, r, r:string(ENC_UTF_8))
    else
      tree:add(f, tvb(item.doff, item.dlen))
    end
    return item.dlen
  end
  if item.major ~= 0 then return nil, field .. ": not an unsigned integer" end
  local r = tvb(item.off, item.len)
  if ctor == "uint64" then
    tree:add(f, r, as_u64(item.value))
  else
    tree:add(f, r, num(item.value))
  end
  return item.value
end

-- Info column: first PDU of a packet sets it, later ones append
local info_frame = -1
local function add_info(pinfo, text, proto)
  if info_frame ~= pinfo.number then
    info_frame = pinfo.number
    pinfo.cols.protocol:set(proto)
    pinfo.cols.info:set(text)
  else
    pinfo.cols.info:append(", " .. text)
  end
end

local function flag_letters(v)
  local s = ""
  for _, b in ipairs(FLAG_BITS) do
    if math.floor(v / b[1]) % 2 == 1 then s = s .. b[3] end
  end
  return s == "" and "-" or s
end

-- SFrame header (RFC 9605 §4.3) at the front of a GAP opus field, shown when the KID's epoch
-- bits (low 16, RFC 9605 §5.2 as gbp-stack) match the frame epoch and a tag fits after it
local function dissect_sframe(tvb, tree, off, len, epoch)
  if epoch == nil or len < 1 + SFRAME_TAG then return end
  local cfg = tvb(off, 1):uint()
  local x, k = math.floor(cfg / 128), math.floor(cfg / 16) % 8
  local y, c = math.floor(cfg / 8) % 2, cfg % 8
  local p = off + 1
  local kid, klen = UInt64.new(k), 0
  if x == 1 then klen = k + 1; kid = tvb(p, klen):uint64(); p = p + klen end
  local ctr, clen = UInt64.new(c), 0
  if y == 1 then clen = c + 1; if p + clen > off + len then return end; ctr = tvb(p, clen):uint64(); p = p + clen end
  if p - off + SFRAME_TAG > len then return end
  if (kid % 65536) ~= (epoch % 65536) then return end
  local st = tree:add(tvb(off, p - off), "SFrame header (RFC 9605 §4.3)")
  st:add(F["sframe.kid"], tvb(off, 1 + klen), kid)
  st:add(F["sframe.ctr"], tvb(off, p - off), ctr)
end

-- a decrypted payload: control message or GTP/GAP/GSP (CBOR codec; others shown as bytes)
local function dissect_plain(tvb, pinfo, tree, off, len, st, codec, epoch)
  local proto = STREAM_PROTOCOLS[st] or "GBP"
  if codec == 1 or codec == 2 then
    tree:add(tvb(off, len), "payload in " .. CODECS[codec] .. " (not decoded by gbp.lua)")
    return proto .. " " .. CODECS[codec]
  end
  local m, e = read_map(tvb, off, off + len)
  if m == nil then
    tree:add_proto_expert_info(E.malformed, "plaintext: " .. e)
    return proto .. " bad plaintext"
  end
  local keys, label
  if st == CONTROL_STREAM then
    keys, label = CONTROL_KEYS, "GBP control message"
  elseif PAYLOADS[st] ~= nil then
    keys, label = PAYLOADS[st].keys, PAYLOADS[st].name .. " message"
  else
    return proto
  end
  local sub = tree:add(tvb(off, len), label)
  local vals = {}
  for _, k in ipairs(keys) do
    local item = m[k[1]]
    if item == nil then
      sub:add_proto_expert_info(E.malformed, label .. ": missing key " .. k[1])
    else
      local field, ctor = k[2], k[3]
      if field == "gtp.text" then
        local ct = m["ct"]
        if ct ~= nil and ct.major == 0 and num(ct.value) >= 2 then field, ctor = "gtp.content", "bytes" end
      end
      local v, err = add_entry(sub, tvb, item, field, ctor)
      if v == nil then sub:add_proto_expert_info(E.malformed, err) end
      vals[k[2]] = v
      if field == "gap.opus_frame" and item.dlen ~= nil then
        dissect_sframe(tvb, sub, item.doff, item.dlen, epoch)
      end
    end
  end
  if st == CONTROL_STREAM then
    local op = vals["gbpctl.opcode"]
    local name = op and (OPCODES[num(op)] or string.format("opcode 0x%04x", num(op))) or "?"
    return name .. " tid=" .. tostring(vals["gbpctl.transition_id"]) ..
           " rid=" .. tostring(vals["gbpctl.request_id"])
  elseif proto == "GTP" then
    local t = m["body"]
    local text = (t and t.dlen and t.dlen > 0) and tvb(t.doff, math.min(t.dlen, 60)):string(ENC_UTF_8) or ""
    return "GTP mid=" .. tostring(vals["gtp.message_id"]) .. " " .. string.format("%q", text)
  elseif proto == "GSP" then
    local s = vals["gsp.signal"]
    return "GSP " .. (s and (SIGNALS[num(s)] or ("signal " .. tostring(s))) or "?") ..
           " rid=" .. tostring(vals["gsp.request_id"])
  end
  return "GAP msid=" .. tostring(vals["gap.media_source_id"]) .. " seq=" .. tostring(vals["gap.rtp_seq"])
end

-- MLS blob names (RFC 9420 §6: version mls10 = 0x0001 ‖ wire format); gbp-lab's classify_record
-- decides by parsing, this by prefix: a raw KeyPackage (version ‖ suite 1 ‖ 32-byte init key)
-- is told from a PublicMessage envelope by its init-key length byte
local function mls_name(tvb, off, len)
  if len < 4 or tvb(off, 2):uint() ~= 1 then
    if len >= 3 and tvb(off, 2):uint() >= 1 and tvb(off, 2):uint() <= 7 then return "Welcome" end
    return nil
  end
  local wf = tvb(off + 2, 2):uint()
  if wf == 1 and len > 37 and tvb(off + 4, 1):uint() == 0x20 and tvb(off + 37, 1):uint() == 0x20 then
    return MLS_KINDS[5]
  end
  return MLS_KINDS[wf]
end

-- one record body (after the u32-LE length); `plain`: pl holds the decrypted payload
local function dissect_body(tvb, pinfo, tree, off, len, plain, note)
  if len == 0 then
    tree:add_proto_expert_info(E.malformed, "empty record")
    add_info(pinfo, "empty record", "GBP")
    return
  end
  local b = tvb(off, 1):uint()
  if b < 0xA0 or b > 0xBF then
    local name = mls_name(tvb, off, len)
    if name ~= nil then
      tree:add(F["gbp.mls"], tvb(off, len), name)
      add_info(pinfo, name .. " (" .. len .. "B)", "MLS")
    else
      tree:add_proto_expert_info(E.unknown)
      add_info(pinfo, "unknown record (" .. len .. "B)", "GBP")
    end
    return
  end
  local m, e = read_map(tvb, off, off + len)
  if m == nil then
    tree:add_proto_expert_info(E.malformed, "frame: " .. e)
    add_info(pinfo, "malformed frame", "GBP")
    return
  end
  local vals, items = {}, {}
  for _, k in ipairs(FRAME_KEYS) do
    local item = m[k[1]]
    if item ~= nil then
      local v, err = add_entry(tree, tvb, item, k[2], k[3])
      if v == nil then tree:add_proto_expert_info(E.malformed, err) end
      vals[k[1]], items[k[1]] = v, item
      if k[1] == "sid" and v ~= nil then
        tree:add(F["gbp.sender"], tvb(item.off, item.len), math.floor(num(v) / STRIDE))
      elseif k[1] == "fl" and v ~= nil then
        local fv = num(v)
        for _, bit in ipairs(FLAG_BITS) do
          tree:add(F["gbp.flags." .. string.lower(bit[2])], tvb(item.off, item.len), fv)
        end
      end
    elseif k[1] ~= "pf" then
      tree:add_proto_expert_info(E.malformed, "frame: missing key " .. k[1])
    end
  end
  local st, pl = vals["st"] and num(vals["st"]), items["pl"]
  local psz = vals["psz"] and num(vals["psz"])
  if plain then tree:add(F["gbp.decrypted"], tvb(off, len), true) end
  if note ~= nil then
    tree:add(F["gbp.not_decrypted"], tvb(off, len), note)
    tree:add_proto_expert_info(E.not_decrypted, "not decrypted: " .. note)
  end
  if psz ~= nil and pl ~= nil and pl.dlen ~= nil and psz ~= pl.dlen then
    tree:add_proto_expert_info(E.psz, "psz=" .. psz .. " but pl has " .. pl.dlen .. " bytes")
  end
  local sname = st and (STREAM_NAMES[st] or ("unknown(" .. st .. ")")) or "?"
  local head_text = sname .. " ep=" .. tostring(vals["ep"]) .. " sid=" .. tostring(vals["sid"]) ..
                    " seq=" .. tostring(vals["seq"]) .. " fl=" .. flag_letters(vals["fl"] and num(vals["fl"]) or 0)
  local proto = "GBP"
  if plain and pl ~= nil and pl.dlen ~= nil and st ~= nil then
    local codec = vals["pf"] and num(vals["pf"]) or 0
    local ep = vals["ep"]
    head_text = dissect_plain(tvb, pinfo, tree, pl.doff, pl.dlen, st, codec,
                              ep and as_u64(ep) or nil) .. " [" .. head_text .. "]"
    proto = STREAM_PROTOCOLS[st] or "GBP"
  elseif pl ~= nil then
    tree:add_proto_expert_info(E.encrypted)
  end
  add_info(pinfo, head_text, proto)
end

local function safe_body(tvb, pinfo, tree, off, len, plain, note)
  local ok, err = pcall(dissect_body, tvb, pinfo, tree, off, len, plain, note)
  if not ok then tree:add_proto_expert_info(E.internal, tostring(err)) end
end

-- TCP: u32-LE length ‖ body records, reassembled across segments (gbp_rfc.md §3)
local function record_len(tvb, pinfo, off)
  local n = tvb(off, 4):le_uint()
  if n > MAX_RECORD then return tvb:len() - off end
  return n + 4
end

local function dissect_record(tvb, pinfo, tree)
  local n = tvb(0, 4):le_uint()
  local sub = tree:add(gbp, tvb(), "Group Binary Protocol record")
  sub:add_le(F["gbp.record_length"], tvb(0, 4))
  if n > MAX_RECORD then
    sub:add_proto_expert_info(E.oversize, "record length " .. n .. " above " .. MAX_RECORD)
    add_info(pinfo, "oversize record", "GBP")
    return tvb:len()
  end
  safe_body(tvb, pinfo, sub, 4, n, false, nil)
  return n + 4
end

-- a local function: the heuristic calls it directly (through Proto.dissector the call would
-- use up pinfo.can_desegment and the first record could not be reassembled)
local function dissect_stream(tvb, pinfo, tree)
  dissect_tcp_pdus(tvb, tree, 4, record_len, dissect_record, true)
  return tvb:len()
end
gbp.dissector = dissect_stream

local function frame_start(tvb, off)
  -- a GBP frame map: first entry "v" = 1 (0x61 0x76 0x01), as gbp-lab's heuristic
  if tvb:len() < off + 4 then return false end
  local b = tvb(off, 1):uint()
  return b >= 0xA1 and b <= 0xB7 and tvb(off + 1, 3):uint() == 0x617601
end

local function heur_tcp(tvb, pinfo, tree)
  if tvb:len() < 8 then return false end
  local n = tvb(0, 4):le_uint()
  if n < 4 or n > MAX_RECORD then return false end
  local mls = tvb(4, 3):uint() == 0x000100 and tvb(7, 1):uint() >= 1 and tvb(7, 1):uint() <= 3
  if not frame_start(tvb, 4) and not mls then return false end
  pinfo.conversation = gbp
  dissect_stream(tvb, pinfo, tree)
  return true
end

-- UDP: one record per datagram, its own u32-LE prefix optional (gbp-lab's convention)
local function udp_body(tvb)
  local n = tvb:len()
  if n >= 4 and tvb(0, 4):le_uint() == n - 4 then return 4, n - 4 end
  return 0, n
end

local function dissect_datagram(tvb, pinfo, tree)
  local off, len = udp_body(tvb)
  local sub = tree:add(gbp, tvb(), "Group Binary Protocol datagram")
  if off == 4 then sub:add_le(F["gbp.record_length"], tvb(0, 4)) end
  safe_body(tvb, pinfo, sub, off, len, false, nil)
  return tvb:len()
end
gbpudp.dissector = dissect_datagram

local function heur_udp(tvb, pinfo, tree)
  local off = udp_body(tvb)
  if not frame_start(tvb, off) then return false end
  dissect_datagram(tvb, pinfo, tree)
  return true
end

-- exported PDUs (gbp-lab export-decrypted): one record body each
function gbprec.dissector(tvb, pinfo, tree)
  local sub = tree:add(gbp, tvb(), "Group Binary Protocol record")
  safe_body(tvb, pinfo, sub, 0, tvb:len(), false, "no key in the key log")
  return tvb:len()
end

function gbpdec.dissector(tvb, pinfo, tree)
  local sub = tree:add(gbp, tvb(), "Group Binary Protocol record (decrypted payload)")
  safe_body(tvb, pinfo, sub, 0, tvb:len(), true, nil)
  return tvb:len()
end

DissectorTable.get("tcp.port"):add(GBP_PORT, gbp)
DissectorTable.get("udp.port"):add(GBP_PORT, gbpudp)
gbp:register_heuristic("tcp", heur_tcp)
gbpudp:register_heuristic("udp", heur_udp)
'''


def generate() -> str:
    """The text of ``gbp.lua``."""
    return _HEADER + "\n" + _tables() + "\n" + _RUNTIME


def plugin_path() -> Path:
    """The checked-in, shipped ``gbp.lua`` (package data of :mod:`gbp_lab.wireshark`)."""
    return Path(__file__).resolve().with_name(PLUGIN_NAME)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m gbp_lab.wireshark.generator [OUT]``: write the plugin (default: the shipped one)."""
    args = list(sys.argv[1:] if argv is None else argv)
    out = Path(args[0]) if args else plugin_path()
    out.write_text(generate(), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
