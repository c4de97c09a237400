"""Exact-shape matchers: the one-step fast path in front of :func:`gbp_lab.core.cbor.decode_map`.

Every sender of the stack (serde + ciborium in the reference, :mod:`gbp_lab.core.cbor` here)
writes a struct as one *shape*: a definite-length map (RFC 8949 §3.1) whose text keys come in
the struct's field order, each value of its declared kind, every head in the shortest form
(preferred serialization, RFC 8949 §4.2.1), nothing after the map. :func:`compile_shape` turns a
``decode_map`` spec — ``(key, kind, max[, name])`` rows — into a matcher for exactly those bytes:

* one regular expression per run of fixed-size items (the map head, each key as its literal
  bytes, each unsigned integer as the shortest-form heads its ``max`` allows — the leading byte
  of a 2/4/8-byte argument must not make a shorter form possible), cut after the head of every
  byte/text string whose length is not fixed, whose content is then sliced by its length;
* straight-line Python generated once per spec (:func:`compile_shape` ``exec``\\ s it) that turns
  the captured items into values: a table for the one- and two-byte heads, ``int.from_bytes``
  for longer ones, ``str`` fields decoded as UTF-8.

``matcher(data)`` returns the values as a tuple in spec order, or ``None`` for *anything* else —
another key order, a non-shortest head, a tag, an indefinite length, an out-of-range integer,
trailing bytes, bad UTF-8 — and the caller then runs the full decoder, which accepts what the
reference accepts and names the problem. For every input on which a matcher returns a tuple the
full decoder (strict or serde leniency) returns the same values: the shape is a subset of both
(``tests/test_cbor_shape.py`` checks it with hypothesis). A matcher allocates nothing beyond the
returned values and the slices of ``data``; it never raises for ``bytes`` input.

It replaces "decode with cbor2, then prove the result canonical": regular expressions in C do
the walking, and no intermediate dict is built (about twice as fast on a GBP frame).
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import cbor as _cbor
from .errors import UsageError

__all__ = ["compile_shape", "ShapeMatcher"]

#: ``matcher(data) -> tuple | None``
ShapeMatcher = Callable[[bytes], Optional[tuple]]

#: every one- and two-byte shortest-form head of major types 0, 2 and 3 → its argument
_SMALL: Dict[bytes, int] = {}
for _major in (0x00, 0x40, 0x60):
    for _n in range(256):
        _SMALL[_cbor.enc_head(_major, _n)] = _n
del _major, _n

_ANY = b"[\\x00-\\xff]"


def _head_pattern(major: int, max_value: int) -> bytes:
    """Shortest-form heads of *major* with an argument ``<= max_value`` rounded up to the next
    head width (the exact maximum of a non-power width is checked after the match)."""
    def b(x: int) -> bytes:
        return b"\\x%02x" % x

    alts = [b"[" + b(major) + b"-" + b(major | 23) + b"]", b(major | 24) + b"[\\x18-\\xff]"]
    if max_value >= 0x100:
        alts.append(b(major | 25) + b"(?!\\x00)" + _ANY + b"{2}")
    if max_value >= 0x10000:
        alts.append(b(major | 26) + b"(?!\\x00\\x00)" + _ANY + b"{4}")
    if max_value >= 0x100000000:
        alts.append(b(major | 27) + b"(?!\\x00{4})" + _ANY + b"{8}")
    return b"(" + b"|".join(alts) + b")"


def _width_max(max_value: int) -> int:
    """The largest argument the head pattern of *max_value* admits."""
    for top in (0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        if max_value <= top:
            return top
    raise UsageError(f"max {max_value} does not fit a CBOR head", vid="CBOR-SHAPE-SPEC")


def _conversions(groups: Sequence[Tuple[str, str, int]], indent: str = "    ") -> List[str]:
    """Generated lines turning captured items into values."""
    code: List[str] = []
    for v, kind, mx in groups:
        if kind == "int":
            if mx > 0xFF:
                code.append(f"x = T.get({v})")
                code.append(f"{v} = fb({v}[1:], 'big') if x is None else x")
            else:
                code.append(f"{v} = T[{v}]")
            if mx not in (0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
                code.append(f"if {v} > {mx}:")
                code.append("    return None")
        elif kind == "text":
            code.append("try:")
            code.append(f"    {v} = {v}.decode('utf-8')")
            code.append("except UnicodeDecodeError:")
            code.append("    return None")
    return [indent + line for line in code]


def _unpack(names: Sequence[str]) -> str:
    return ", ".join(names) + ("," if len(names) == 1 else "")


def compile_shape(spec: Sequence[Tuple[Any, ...]], *,
                  fixed_lengths: Optional[Mapping[str, int]] = None, memo: int = 0,
                  memo_size: int = 4096,
                  equal_lengths: Sequence[Tuple[str, str]] = (),
                  values: Optional[Sequence[str]] = None,
                  defaults: Sequence[Any] = ()) -> ShapeMatcher:
    """The matcher of the canonical encoding of *spec* (module docstring), every row present.

    *spec*: ``decode_map`` rows ``(key, kind, max[, name])`` with kinds ``UINT``, ``BSTR``,
    ``TSTR`` (a negative ``max`` — an optional row — counts as present; match the shape without
    the row with a second matcher). *fixed_lengths*: ``{key: n}`` for byte strings that the fast
    path accepts only with exactly *n* bytes (others go to the full decoder), which keeps them
    inside one regular expression. *memo*: the first *memo* rows (which must be of fixed size)
    repeat from message to message — a frame's version … flags: one combination per stream and
    epoch — so their values are remembered by their encoded bytes (at most *memo_size*
    combinations; the table is emptied when full). *equal_lengths*: ``(count_key, data_key)``
    pairs — a declared length (``psz``, ``len``, ``alen``) that must equal the length of its data;
    a message where they differ is left to the full decoder (which reports it). *values*: the
    keys whose values the matcher returns (in spec order; default all) — the others are still
    checked in full but not converted unless a check needs them (a one-line summary needs only
    some fields). *defaults*: constants appended to every returned tuple (the values of optional
    rows this shape lacks, so that shapes with and without them return alike).
    """
    fixed = dict(fixed_lengths or {})
    rows = [(row[0], row[1], abs(row[2])) for row in spec]
    if not 0 < len(rows) < 24 or len({k for k, _, _ in rows}) != len(rows):
        raise UsageError("a shape needs 1..23 distinct keys", vid="CBOR-SHAPE-SPEC")
    # segments: runs of fixed-size items, each ended by a variable string head or the map end
    segments: List[Tuple[bytes, List[Tuple[str, str, int]], Optional[Tuple[str, str, str]]]] = []
    cur = re.escape(bytes((0xA0 + len(rows),)))
    groups: List[Tuple[str, str, int]] = []
    names: List[str] = []
    for key, kind, mx in rows:
        var = f"v{len(names)}"
        names.append(var)
        cur += re.escape(_cbor.enc_tstr(key))
        if kind == _cbor.UINT:
            cur += _head_pattern(0x00, _width_max(mx))
            groups.append((var, "int", mx))
        elif kind in (_cbor.BSTR, _cbor.TSTR):
            major = 0x40 if kind == _cbor.BSTR else 0x60
            n = fixed.get(key)
            if n is not None:
                cur += re.escape(_cbor.enc_head(major, n)) + b"(" + _ANY + b"{%d})" % n
                groups.append((var, "bytes" if kind == _cbor.BSTR else "text", 0))
                continue
            head = f"h{len(names)}"
            cur += _head_pattern(major, 0xFFFFFFFF)
            groups.append((head, "int", 0xFFFFFFFF))
            segments.append((cur, groups, (head, var, kind)))
            cur, groups = b"", []
        else:
            raise UsageError(f"kind {kind!r} has no shape", vid="CBOR-SHAPE-SPEC", where=key)
    if cur or groups:
        segments.append((cur + b"\\Z", groups, None))
    first_groups = segments[0][1]
    if memo and (memo > len(first_groups) or any(v.startswith("h") for v, _, _ in
                                                     first_groups[:memo])):
        raise UsageError("memo rows must be fixed-size rows at the start of the map",
                         vid="CBOR-SHAPE-SPEC")
    keys = [k for k, _, _ in rows]
    wanted = keys if values is None else [k for k in keys if k in set(values)]
    if values is not None and len(wanted) != len(set(values)):
        raise UsageError(f"values names unknown keys: {sorted(set(values) - set(keys))}",
                         vid="CBOR-SHAPE-SPEC")
    # a value is converted if returned, range-checked below its head width, or compared
    needed = {names[keys.index(k)] for k in wanted}
    needed |= {names[i] for i, (_k, kind, mx) in enumerate(rows)
               if kind == _cbor.UINT and mx not in (0xFF, 0xFFFF, 0xFFFFFFFF, 2**64 - 1)}
    for pair in equal_lengths:
        needed |= {names[keys.index(k)] for k in pair if k in keys}

    def conv(groups, indent="    "):
        return _conversions([g for g in groups  # string heads and UTF-8 are always checked
                             if g[0] in needed or g[0].startswith("h") or g[1] == "text"],
                            indent)

    ns: Dict[str, Any] = {"T": _SMALL, "fb": int.from_bytes, "M": {}}
    code: List[str] = []
    for k, (pattern, groups, tail) in enumerate(segments):
        ns[f"p{k}"] = re.compile(pattern, re.DOTALL).match
        code += [f"    m = p{k}(data)" if k == 0 else f"    m = p{k}(data, pos)",
                 "    if m is None:", "        return None"]
        rest = groups
        if k == 0 and memo:
            mine, rest = groups[:memo], groups[memo:]
            tup = _unpack([v for v, _, _ in mine])
            code += [f"    key = data[:m.end({memo})]", "    hit = M.get(key)", "    if hit is None:",
                     f"        {tup} = m.group({', '.join(str(i + 1) for i in range(memo))})"
                     + ("," if memo == 1 else "")]
            code += conv(mine, "        ")
            code += [f"        hit = ({tup})", f"        if len(M) >= {memo_size}:",
                     "            M.clear()", "        M[key] = hit", "    else:",
                     f"        {tup} = hit"]
            if rest:
                code.append(f"    {_unpack([v for v, _, _ in rest])} = m.group("
                            f"{', '.join(str(memo + i + 1) for i in range(len(rest)))})"
                            + ("," if len(rest) == 1 else ""))
        elif groups:
            code.append(f"    {_unpack([v for v, _, _ in groups])} = m.groups()")
        code += conv(rest)
        if tail is not None:
            head, var, kind = tail
            code += ["    pos = m.end()", f"    end = pos + {head}", f"    {var} = data[pos:end]",
                     f"    if len({var}) != {head}:", "        return None", "    pos = end"]
            code += conv([(var, "text" if kind == _cbor.TSTR else "bytes", 0)])
    if segments[-1][2] is not None:  # the map ends with a variable string: nothing may follow
        code += ["    if pos != len(data):", "        return None"]
    for count_key, data_key in equal_lengths:
        if count_key not in keys or data_key not in keys:
            raise UsageError(f"equal_lengths names an unknown key: {count_key}/{data_key}",
                             vid="CBOR-SHAPE-SPEC")
        code += [f"    if {names[keys.index(count_key)]} != len({names[keys.index(data_key)]}):",
                 "        return None"]
    ret = [names[keys.index(k)] for k in wanted] + [f"D{i}" for i in range(len(defaults))]
    ns.update({f"D{i}": d for i, d in enumerate(defaults)})
    code.append(f"    return ({_unpack(ret)})")
    src = "def match(data):\n" + "\n".join(code) + "\n"
    exec(compile(src, f"<shape {'/'.join(k for k, _, _ in rows)}>", "exec"), ns)  # noqa: S102
    fn = ns["match"]
    fn.__doc__ = f"Exact-shape matcher of the map {[k for k, _, _ in rows]} (see cbor_shape)."
    fn.source = src
    fn.memo = ns["M"]
    return fn
