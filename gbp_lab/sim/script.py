"""Simulation scripts: the step model, the YAML loader and Python-script support.

A script is a name, a description and an ordered list of **steps**; the engine
(:mod:`gbp_lab.sim.simulator`) runs them one after the other on real members connected to the
relay. Every step is a frozen dataclass; :func:`load_script` builds them from YAML (pyyaml) or from
a Python file.

YAML form — a mapping with ``name``, ``description`` (optional) and ``steps``; each step is a
one-key mapping ``{kind: {arguments}}`` (or just ``kind`` for a step without arguments)::

    name: demo
    steps:
      - create: {member: alice}
      - join: {member: bob}                       # KeyPackage → PREPARE → READY → EXECUTE → Welcome
      - text: {member: alice, text: hello, codec: protobuf}
      - audio: {member: bob, frames: 3, sframe: true, codec: cbor}
      - signal: {member: bob, signal: MUTE, args: {target_member_id: 1}, codec: flatbuffers}
      - update: {}                                # the coordinator rotates its keys (empty commit)
      - leave: {member: bob}                      # GSP LEAVE, then the coordinator removes bob
      - remove: {member: carol}                   # the coordinator removes carol
      - fail_coordinator: {}                      # coordinator goes silent; next member claims
      - disconnect: {member: dave}
      - reconnect: {member: dave}                 # new TCP connection, RESYNCING → digest → ACTIVE
      - advance: {ms: 500}                        # move the virtual clock

Member names map to GBP member ids 1, 2, 3 … in order of first appearance in ``create``/``join``
(or ``id:`` on those steps). Codecs are ``cbor`` / ``protobuf`` / ``flatbuffers`` (or 0/1/2).
Signals are :class:`~gbp_lab.core.gsp.signal.SignalType` names; their ``args`` use the keys of
:func:`gbp_lab.core.gsp.args.build_args` (a member *name* is accepted wherever a member id is).

Python form — a ``.py`` file that defines ``SCRIPT`` (a :class:`Script`, or a dict like the YAML
document) or a function ``build()`` / ``build(seed)`` returning one.

Built-in scripts live in ``gbp_lab/sim/scripts/`` (``demo``, ``classroom``, ``stress``);
:func:`load_script` accepts their names.
"""
from __future__ import annotations

import inspect
import os
import runpy
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from gbp_lab.core.errors import UsageError
from gbp_lab.core.gbp.registry import PayloadCodec
from gbp_lab.core.gsp.args import REQUIRED_KEYS
from gbp_lab.core.gsp.signal import SignalType

__all__ = [
    "ScriptError", "Step", "Create", "Join", "Leave", "Remove", "Update", "Text", "Audio",
    "Signal", "FailCoordinator", "Disconnect", "Reconnect", "Advance", "Script", "STEP_KINDS",
    "SCRIPTS_DIR", "builtin_scripts", "load_script", "parse_script", "parse_codec",
]

SCRIPTS_DIR = Path(__file__).with_name("scripts")


class ScriptError(UsageError):
    """A script that cannot be loaded or run (unknown step, bad argument, impossible order)."""

    default_vid = "SIM-SCRIPT"


_CODEC_NAMES = {"cbor": PayloadCodec.CBOR, "protobuf": PayloadCodec.PROTOBUF,
                "proto": PayloadCodec.PROTOBUF, "flatbuffers": PayloadCodec.FLATBUFFERS,
                "fbs": PayloadCodec.FLATBUFFERS}


def parse_codec(value: Any) -> PayloadCodec:
    """``cbor`` / ``protobuf`` / ``flatbuffers`` (any case), 0/1/2 or a :class:`PayloadCodec`."""
    if isinstance(value, PayloadCodec):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return PayloadCodec(value)
        except ValueError:
            pass
    elif isinstance(value, str) and value.lower() in _CODEC_NAMES:
        return _CODEC_NAMES[value.lower()]
    raise ScriptError(f"unknown codec {value!r} (cbor, protobuf, flatbuffers)", vid="SIM-SCRIPT-CODEC")


# --------------------------------------------------------------------------------------------
# steps
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """Base of every step. ``at_ms``: advance the virtual clock by this much before the step."""

    at_ms: int = 0

    kind = ""


@dataclass(frozen=True)
class Create(Step):
    """*member* creates the group (MLS epoch 0), bootstraps its node as creator and claims the
    coordinator role (CAPABILITIES_ADVERTISE ``{0: true}``, gbp-control-plane §5.1)."""

    member: str = ""
    id: Optional[int] = None
    impl: str = "core"
    kind = "create"


@dataclass(frozen=True)
class Join(Step):
    """*member* connects and sends its KeyPackage; the coordinator adds it (Add commit,
    ``invite_full``), PREPARE(commit) → READY from every member → EXECUTE → Welcome to the joiner
    (reference-map §6, crates/gbp/stack/tests/lifecycle.rs). ``announce``: the joiner then sends a
    GSP JOIN signal."""

    member: str = ""
    id: Optional[int] = None
    announce: bool = True
    impl: str = "core"
    kind = "join"


@dataclass(frozen=True)
class Leave(Step):
    """*member* announces GSP LEAVE, the coordinator removes it (Remove commit, full transition),
    then the member closes its connection (gbp-leave-flow.md)."""

    member: str = ""
    kind = "leave"


@dataclass(frozen=True)
class Remove(Step):
    """The coordinator removes *member* (Remove commit, full transition); the removed member's
    connection is closed afterwards (if it still has one)."""

    member: str = ""
    kind = "remove"


@dataclass(frozen=True)
class Update(Step):
    """Key rotation: the coordinator (or *member*, which must then be the coordinator) commits
    an empty commit with a fresh UpdatePath (RFC 9420 §12.4) through the full transition."""

    member: Optional[str] = None
    kind = "update"


@dataclass(frozen=True)
class Text(Step):
    """*member* sends *text* (GTP, gtp_rfc §4) in *codec*; ``repeat`` sends it that many times
    (suffix `` #k`` from the second one)."""

    member: str = ""
    text: str = ""
    codec: PayloadCodec = PayloadCodec.CBOR
    repeat: int = 1
    kind = "text"


@dataclass(frozen=True)
class Audio(Step):
    """*member* sends *frames* GAP frames (gap_rfc §4), 20 ms apart on the virtual clock, with
    pseudo-Opus payloads of *size* bytes; ``sframe`` protects each with SFrame (RFC 9605,
    reference-map §7; ``suite`` 0 = AES-128-GCM, 1 = AES-256-GCM) before GAP carries it."""

    member: str = ""
    frames: int = 1
    codec: PayloadCodec = PayloadCodec.CBOR
    sframe: bool = True
    suite: int = 0
    size: int = 40
    source: Optional[int] = None
    kind = "audio"


@dataclass(frozen=True)
class Signal(Step):
    """*member* sends GSP *signal* with *args* (gsp_rfc §5) in *codec*."""

    member: str = ""
    signal: SignalType = SignalType.JOIN
    args: Tuple[Tuple[str, Any], ...] = ()
    codec: PayloadCodec = PayloadCodec.CBOR
    role: int = 0
    kind = "signal"


@dataclass(frozen=True)
class FailCoordinator(Step):
    """The coordinator goes silent (its connection drops). The virtual clock jumps past
    ``T_coordinator_grace``; members see COORDINATOR_GONE and the member with the lowest id
    claims the role (``claim_coordinator``). The failed member stays in the MLS group until a
    ``remove`` step."""

    kind = "fail_coordinator"


@dataclass(frozen=True)
class Disconnect(Step):
    """*member*'s TCP connection closes; it misses what is sent until ``reconnect``."""

    member: str = ""
    kind = "disconnect"


@dataclass(frozen=True)
class Reconnect(Step):
    """*member* opens a new connection, enters RESYNCING and sends GROUP_STATE_DIGEST_REQUEST;
    the coordinator answers GROUP_STATE_DIGEST_RESPONSE and the member is ACTIVE again
    (gbp-control-plane §6.1)."""

    member: str = ""
    kind = "reconnect"


@dataclass(frozen=True)
class Advance(Step):
    """Move the virtual clock by *ms* and run every member's ``check_timeouts``."""

    ms: int = 0
    kind = "advance"


STEP_KINDS: Dict[str, type] = {c.kind: c for c in (Create, Join, Leave, Remove, Update, Text, Audio,
                                                   Signal, FailCoordinator, Disconnect, Reconnect,
                                                   Advance)}


@dataclass(frozen=True)
class Script:
    """A named list of steps."""

    name: str
    steps: Tuple[Step, ...]
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        if not self.steps or not isinstance(self.steps[0], Create):
            raise ScriptError("a script starts with a 'create' step", vid="SIM-SCRIPT-ORDER")
        for s in self.steps[1:]:
            if isinstance(s, Create):
                raise ScriptError("only one 'create' step per script", vid="SIM-SCRIPT-ORDER")

    @property
    def members(self) -> Tuple[str, ...]:
        """Member names in order of first appearance (create/join)."""
        out: List[str] = []
        for s in self.steps:
            if isinstance(s, (Create, Join)) and s.member not in out:
                out.append(s.member)
        return tuple(out)


# --------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------
_TYPES = {"str": str, "Optional[str]": str, "int": int, "Optional[int]": int, "bool": bool}


def _step(kind: str, args: Mapping[str, Any], index: int) -> Step:
    cls = STEP_KINDS.get(kind)
    if cls is None:
        raise ScriptError(f"step {index}: unknown step {kind!r} (known: {', '.join(STEP_KINDS)})",
                          vid="SIM-SCRIPT-STEP", where=index)
    if not isinstance(args, Mapping):
        raise ScriptError(f"step {index} ({kind}): arguments must be a mapping", vid="SIM-SCRIPT-ARGS",
                          where=index)
    names = {f.name for f in fields(cls)}
    unknown = set(args) - names
    if unknown:
        raise ScriptError(f"step {index} ({kind}): unknown argument(s) {sorted(unknown)}",
                          vid="SIM-SCRIPT-ARGS", where=index)
    kw = dict(args)
    if isinstance(kw.get("member"), int) and not isinstance(kw.get("member"), bool):
        kw["member"] = str(kw["member"])  # YAML `member: 3`
    try:
        if "codec" in kw:
            kw["codec"] = parse_codec(kw["codec"])
        if cls is Signal:
            sig = kw.get("signal", "JOIN")
            if isinstance(sig, str):
                try:
                    sig = SignalType[sig.upper()]
                except KeyError:
                    raise ScriptError(f"step {index}: unknown signal {sig!r}", vid="SIM-SCRIPT-SIGNAL",
                                      where=index) from None
            else:
                sig = SignalType(sig)
            kw["signal"] = sig
            a = kw.get("args") or {}
            if isinstance(a, Mapping):
                a = tuple(sorted(a.items()))
            kw["args"] = tuple(tuple(p) for p in a)
            want_keys = {attr for _k, attr in REQUIRED_KEYS[sig]}
            if {k for k, _ in kw["args"]} != want_keys:
                raise ScriptError(f"step {index}: {sig.name} args need exactly {sorted(want_keys)}",
                                  vid="SIM-SCRIPT-ARGS", where=index)
        for f in fields(cls):
            if f.name not in kw:
                continue
            v, want = kw[f.name], _TYPES.get(str(f.type))
            if want is None:
                continue
            if v is None and str(f.type).startswith("Optional"):
                continue
            ok = (isinstance(v, bool) if want is bool else
                  isinstance(v, int) and not isinstance(v, bool) and v >= 0 if want is int else
                  isinstance(v, want))
            if not ok:
                raise ScriptError(f"step {index} ({kind}): {f.name} must be "
                                  f"{'a non-negative integer' if want is int else want.__name__}, "
                                  f"got {v!r}", vid="SIM-SCRIPT-ARGS", where=index)
        if kw.get("suite", 0) not in (0, 1):
            raise ScriptError(f"step {index}: SFrame suite is 0 (AES-128-GCM) or 1 (AES-256-GCM)",
                              vid="SIM-SCRIPT-ARGS", where=index)
        if cls is Audio and not 1 <= kw.get("size", 40) <= 4000:
            raise ScriptError(f"step {index}: audio size is 1..4000 bytes", vid="SIM-SCRIPT-ARGS",
                              where=index)
        if "impl" in kw and kw["impl"] not in ("core", "reference"):
            raise ScriptError(f"step {index}: impl is 'core' or 'reference'", vid="SIM-SCRIPT-ARGS",
                              where=index)
        step = cls(**kw)
    except ScriptError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:
        raise ScriptError(f"step {index} ({kind}): {exc}", vid="SIM-SCRIPT-ARGS", where=index) from None
    if hasattr(step, "member") and cls not in (Update,) and not getattr(step, "member"):
        raise ScriptError(f"step {index} ({kind}) needs a member", vid="SIM-SCRIPT-ARGS", where=index)
    return step


def parse_script(doc: Any, name: str = "script") -> Script:
    """A :class:`Script` from a parsed YAML document (or a list of steps, or a Script)."""
    if isinstance(doc, Script):
        return doc
    if isinstance(doc, (list, tuple)):
        doc = {"steps": doc}
    if not isinstance(doc, Mapping) or "steps" not in doc:
        raise ScriptError("a script is a mapping with 'steps'", vid="SIM-SCRIPT-FORMAT")
    steps: List[Step] = []
    raw_steps = doc["steps"] or ()
    if not isinstance(raw_steps, (list, tuple)):
        raise ScriptError("'steps' is a list", vid="SIM-SCRIPT-FORMAT")
    for i, raw in enumerate(raw_steps):
        if isinstance(raw, Step):
            steps.append(raw)
            continue
        args: Any
        if isinstance(raw, str):
            kind, args = raw, {}
        elif isinstance(raw, Mapping) and len(raw) == 1:
            kind, args = next(iter(raw.items()))
            args = {} if args is None else args
        else:
            raise ScriptError(f"step {i}: a step is a one-key mapping {{kind: {{args}}}}",
                              vid="SIM-SCRIPT-STEP", where=i)
        steps.append(_step(str(kind), args, i))
    if not steps:
        raise ScriptError("a script has at least a 'create' step", vid="SIM-SCRIPT-ORDER")
    return Script(str(doc.get("name") or name), tuple(steps), str(doc.get("description", "") or ""))


def builtin_scripts() -> List[str]:
    """Names of the built-in scripts."""
    return sorted(p.stem for p in SCRIPTS_DIR.glob("*.yaml"))


def _from_python(path: Path, seed: Optional[int]) -> Any:
    ns = runpy.run_path(str(path), run_name="gbp_lab_sim_script")
    if "SCRIPT" in ns:
        return ns["SCRIPT"]
    build = ns.get("build")
    if callable(build):
        if len(inspect.signature(build).parameters) >= 1:
            return build(seed)
        return build()
    raise ScriptError(f"{path}: a Python script defines SCRIPT or build()", vid="SIM-SCRIPT-PY")


def load_script(source: Union[str, os.PathLike, Script, Mapping, list], *,
                seed: Optional[int] = None) -> Script:
    """Load a script: a built-in name (``demo``), a ``.yaml``/``.yml`` or ``.py`` path, YAML text,
    a parsed document or a :class:`Script`. *seed* is passed to a Python ``build(seed)``."""
    if isinstance(source, (Script, Mapping, list, tuple)):
        return parse_script(source)
    text: Optional[str] = None
    name = "script"
    src = os.fspath(source)
    path = Path(src)
    if "\n" not in src and not path.suffix and (SCRIPTS_DIR / f"{src}.yaml").exists():
        path = SCRIPTS_DIR / f"{src}.yaml"
    if "\n" not in src and path.exists():
        name = path.stem
        if path.suffix == ".py":
            return parse_script(_from_python(path, seed), name)
        text = path.read_text(encoding="utf-8")
    elif "\n" in src or ":" in src:
        text = src
    else:
        raise ScriptError(f"no script {src!r} (built-in: {', '.join(builtin_scripts())})",
                          vid="SIM-SCRIPT-NOTFOUND")
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScriptError(f"bad YAML: {exc}", vid="SIM-SCRIPT-YAML") from None
    return parse_script(doc, name)
