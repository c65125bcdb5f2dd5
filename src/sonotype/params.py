"""Parameters defined once: a config dataclass field carries its name, default, help, allowed values and
check, and the command line (:mod:`sonotype.cli`), ``--config FILE.toml`` files and the library all read it::

    epochs: int = param(10, check=COUNT, help="passes over the training windows")

A field without metadata still works: its option comes from its name and type alone (``--field-name``,
an integer, a number, a word, a switch), so a field added to a config shows up on the command line, in
TOML files and in :func:`make` at once. A nested dataclass field is a group of options (a TOML table).

Values reach a config three ways, all checked by the same rule (:func:`check_value`): as command-line
strings, as TOML values (:func:`load_toml`), and as Python keywords (:func:`make`). :func:`to_toml`
writes a config back so that a run can be repeated with ``--config``.

(Over 400 lines because it is the whole field machinery in one place: metadata, checks, argparse, TOML.)
"""

from __future__ import annotations

import json
import math
import os
import sys
import types
import typing
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library (pyproject: tomli on 3.10)
    import tomli as tomllib

#: field-metadata key of a :class:`Param`
KEY = "sonotype"


@dataclass(frozen=True)
class Param:
    """How one config field is offered to users (all optional)."""

    help: str = ""
    check: Callable[[Any], Any] | None = None  # str or value -> value; raises ConfigError "got .., expected .."
    choices: tuple | None = None
    flag: str | None = None            # command-line spelling (default: --field-name)
    aliases: tuple[str, ...] = ()      # deprecated spellings, still accepted with a warning
    metavar: str | None = None
    positional: bool = False
    negate: bool = False               # a True-by-default switch whose flag turns it off (--quiet for progress)
    repeat: bool = False               # a tuple given by repeating the flag
    nargs: str | None = None           # a tuple given as several words after one flag ("+")
    none_as: Any = None                # the value that stands for None on the command line and in TOML
    cli: bool = True                   # False: not a command-line option (still in TOML and make())


def param(default: Any = MISSING, *, default_factory: Any = MISSING, **spec) -> Any:
    """A dataclass field with its :class:`Param` (``spec``: Param's fields)."""
    return field(default=default, default_factory=default_factory, metadata={KEY: Param(**spec)})


def same_as(owner: type, name: str, **changes) -> Any:
    """A field with the default and :class:`Param` of ``owner.name`` (``changes``: Param fields to change),
    so that a parameter shared by two configs is still written once."""
    f = owner.__dataclass_fields__[name]
    return field(default=f.default, default_factory=f.default_factory,
                 metadata={KEY: replace(spec_of(owner, f), **changes)})


_DESCRIBED: dict[type, dict[str, Param]] = {}


def describe(owner: type, **params: Param) -> None:
    """Give the fields of a config that lives elsewhere (and carries no metadata) their :class:`Param`."""
    _DESCRIBED.setdefault(owner, {}).update(params)


def spec_of(owner: type, f: Field) -> Param:
    return f.metadata.get(KEY) or _DESCRIBED.get(owner, {}).get(f.name) or Param()


# ---------------------------------------------------------------------------- checks


class Number:
    """A finite ``kind`` (float or int) within the bounds; from a string or a value."""

    def __init__(self, kind: type = float, *, lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False, hi_open: bool = False, what: str = ""):
        self.kind, self.lo, self.hi, self.lo_open, self.hi_open = kind, lo, hi, lo_open, hi_open
        lo_s = "" if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
        hi_s = "" if hi is None else f"{'<' if hi_open else '<='} {hi:g}"
        rng = " and ".join(x for x in (lo_s, hi_s) if x)
        self.want = (f"{'an integer' if kind is int else 'a number'}{' ' + rng if rng else ''}"
                     f"{' (' + what + ')' if what else ''}")

    def __call__(self, v: Any):
        x = None
        if isinstance(v, str):
            try:
                x = self.kind(v)
            except (TypeError, ValueError):
                pass
        elif isinstance(v, bool):
            pass
        elif self.kind is int:
            x = v if isinstance(v, int) else int(v) if isinstance(v, float) and v.is_integer() else None
        elif isinstance(v, (int, float)):
            x = float(v)
        lo, hi = self.lo, self.hi
        if x is None or not math.isfinite(x) or (lo is not None and (x <= lo if self.lo_open else x < lo)) or \
                (hi is not None and (x >= hi if self.hi_open else x > hi)):
            raise ConfigError(f"got {v!r}, expected {self.want}")
        return x


PROBABILITY = Number(lo=0, hi=1, what="a score between 0 and 1")
SECONDS = Number(lo=0, what="seconds")
COUNT = Number(int, lo=1)
SIZE = Number(int, lo=0)
RATE = Number(lo=0, lo_open=True)
RUN = Number(int, lo=1, what="a detection run id")
FRACTION = Number(lo=0, hi=1, hi_open=True, what="a fraction")
SHARE = Number(lo=0, hi=1, lo_open=True, what="a share")


def channel(v: Any) -> int | None:
    """'auto' (None: the louder channel) or a channel index >= 0."""
    if v is None or v == "auto":
        return None
    c = v if isinstance(v, int) and not isinstance(v, bool) else -1
    if isinstance(v, str):
        try:
            c = int(v)
        except ValueError:
            pass
    if c < 0:
        raise ConfigError(f"got {v!r}, expected a channel index (0, 1, ...) or 'auto'")
    return c


def key_value(v: Any) -> tuple[str, str]:
    """'key=value' -> (key, value)."""
    if isinstance(v, (tuple, list)) and len(v) == 2:
        return str(v[0]), str(v[1])
    if not isinstance(v, str) or "=" not in v:
        raise ConfigError(f"got {v!r}, expected key=value")
    k, _, val = v.partition("=")
    return k.strip(), val.strip()


# ---------------------------------------------------------------------------- the fields of a config


@dataclass(frozen=True)
class Option:
    """One leaf field of a (nested) config: where it is, its type and its :class:`Param`."""

    path: tuple[str, ...]   # field names from the top config down, e.g. ("training", "epochs")
    owner: type             # the dataclass that declares the field
    spec: Param
    kind: Any               # the field's type without None: bool, int, float, str, tuple, dict, ...
    optional: bool          # None is allowed
    default: Any            # MISSING: required
    group: str | None       # the help of the nested field it sits in (an option group)
    item: Any = None        # a tuple's element type

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def flag(self) -> str:
        return self.spec.flag or "--" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return ".".join(self.path)

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def check(self) -> Callable[[Any], Any] | None:
        if self.spec.check is not None:
            return self.spec.check
        kind = self.item if self.kind in (tuple, list) else self.kind
        return Number(kind) if kind in (int, float) else None


def _strip_none(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def nested(owner: type, f: Field) -> type | None:
    """The dataclass type of a nested-config field, else None."""
    tp, _ = _strip_none(typing.get_type_hints(owner)[f.name])
    return tp if isinstance(tp, type) and is_dataclass(tp) else None


def _default(f: Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def options(cls: type, *, cli: bool = False, _prefix: tuple = (), _group: str | None = None) -> list[Option]:
    """The leaf fields of config ``cls`` in order, nested configs flattened (``cli``: command-line ones only)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        spec = spec_of(cls, f)
        if cli and not spec.cli:
            continue
        sub = nested(cls, f)
        if sub is not None:
            out += options(sub, cli=cli, _prefix=_prefix + (f.name,), _group=spec.help or f.name)
            continue
        kind, optional = _strip_none(hints[f.name])
        item = (typing.get_args(kind) or (None,))[0]
        out.append(Option(_prefix + (f.name,), cls, spec, typing.get_origin(kind) or kind, optional,
                          _default(f), _group, item))
    return out


def check_value(o: Option, v: Any) -> Any:
    """``v`` (a command-line string, a TOML value or a Python value) as field ``o`` holds it, or a
    ConfigError naming the field, the value and what was expected."""
    try:
        return _check(o, v)
    except ConfigError as e:
        raise ConfigError(f"{o.dest}: {e}") from None


def _check(o: Option, v: Any) -> Any:
    if v is None:
        if o.optional or o.default is None:
            return None
        raise ConfigError(f"got None, expected a value (default {o.default!r})")
    if o.kind is dict:
        pairs = v.items() if isinstance(v, dict) else v if isinstance(v, (list, tuple)) else None
        if pairs is None:
            raise ConfigError(f"got {v!r}, expected a table of key = value")
        return dict(key_value(p) for p in pairs)
    if o.kind in (tuple, list):
        if isinstance(v, str) or not isinstance(v, (list, tuple)):
            raise ConfigError(f"got {v!r}, expected a list")
        return tuple(_one(o, x) for x in v)
    x = _one(o, v)
    return None if o.spec.none_as is not None and x == o.spec.none_as else x


def _one(o: Option, v: Any) -> Any:
    if o.kind is bool and o.spec.check is None:
        if not isinstance(v, bool):
            raise ConfigError(f"got {v!r}, expected true or false")
        return v
    if o.kind is str and isinstance(v, os.PathLike):
        v = os.fspath(v)  # a path field given a Path
    x = o.check(v) if o.check is not None else v
    if o.spec.choices is not None and x not in o.spec.choices:
        raise ConfigError(f"got {v!r}, expected one of {', '.join(map(str, o.spec.choices))}")
    if o.check is None and o.kind is str and not isinstance(x, str):
        raise ConfigError(f"got {v!r}, expected a string")
    return x


# ---------------------------------------------------------------------------- building configs


def build(cls: type, values: dict[tuple[str, ...], Any], *, base: Any = None) -> Any:
    """A ``cls`` from ``values`` keyed by field path (checked), on top of ``base`` (default: the defaults)."""
    by_path = {o.path: o for o in options(cls)}
    kw = {}
    for f in fields(cls):
        sub = nested(cls, f)
        mine = {p[1:]: v for p, v in values.items() if p[0] == f.name and len(p) > 1}
        if (f.name,) in values:
            v = values[(f.name,)]
            kw[f.name] = v if sub is not None and isinstance(v, sub) else \
                _whole(sub, v) if sub is not None else check_value(by_path[(f.name,)], v)
        if sub is not None and mine:
            start = kw.get(f.name, getattr(base, f.name) if base is not None else None)
            try:
                kw[f.name] = build(sub, mine, base=start)
            except ConfigError as e:
                raise ConfigError(f"{f.name}.{e}") from None
    if base is not None:
        return replace(base, **kw)
    missing = [by_path[(f.name,)].flag for f in fields(cls)
               if f.name not in kw and (f.name,) in by_path and by_path[(f.name,)].required]
    if missing:
        raise ConfigError(f"missing {', '.join(missing)}; give {'it' if len(missing) == 1 else 'them'}")
    return cls(**kw)


def _whole(sub: type, v: Any) -> Any:
    if not isinstance(v, dict):
        raise ConfigError(f"got {v!r}, expected a {sub.__name__} or a table of its fields")
    return build(sub, {(k,): x for k, x in v.items()})


def index(cls: type) -> dict[str, tuple[str, ...]]:
    """Every field name of config ``cls`` (leaves and nested configs) -> its path. Names are unique
    within a command's config (tests/test_config.py checks it), so a flat keyword finds its field."""
    out: dict[str, tuple[str, ...]] = {}

    def walk(c, prefix):
        for f in fields(c):
            out[f.name] = prefix + (f.name,)
            sub = nested(c, f)
            if sub is not None:
                walk(sub, prefix + (f.name,))
    walk(cls, ())
    return out


def make(cls: type, base: Any = None, /, **flat: Any) -> Any:
    """``base`` (a ``cls``; None: the defaults) with fields replaced by keyword, at any depth:
    ``make(TrainRun, out="e.pt", epochs=3)`` sets ``training.epochs``. Unknown names are an error."""
    idx = index(cls)
    bad = sorted(k for k in flat if k not in idx)
    if bad:
        raise ConfigError(f"unknown {cls.__name__} option(s) {', '.join(bad)}; expected some of "
                          f"{', '.join(sorted(idx))}")
    return build(cls, {idx[k]: v for k, v in flat.items()}, base=base)


# ---------------------------------------------------------------------------- TOML


def load_toml(cls: type, path: str | Path) -> dict[tuple[str, ...], Any]:
    """The values of a TOML file for config ``cls``, keyed by field path and checked; an unknown key is
    an error that names it and the valid keys."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist; give a TOML file written beside a run's "
                          "outputs (<out>.config.toml) or by hand") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {e}") from None
    by_path = {o.path: o for o in options(cls)}
    out: dict[tuple[str, ...], Any] = {}

    def walk(c: type, d: dict, prefix: tuple) -> None:
        known = {f.name: f for f in fields(c)}
        for k, v in d.items():
            where = ".".join(prefix + (k,))
            if k not in known:
                table = f" in [{'.'.join(prefix)}]" if prefix else ""
                raise ConfigError(f"{path}: unknown key {where!r}; valid keys{table}: {', '.join(known)}")
            sub = nested(c, known[k])
            if sub is not None:
                if not isinstance(v, dict):
                    raise ConfigError(f"{path}: {where} must be a table ([{where}]), got {v!r}")
                walk(sub, v, prefix + (k,))
            elif isinstance(v, dict) and by_path[prefix + (k,)].kind is not dict:
                raise ConfigError(f"{path}: {where} is a table, expected a value")
            else:
                try:
                    out[prefix + (k,)] = check_value(by_path[prefix + (k,)], v)
                except ConfigError as e:
                    raise ConfigError(f"{path}: {e}") from None
    walk(cls, data, ())
    return out


def to_toml(obj: Any, *, header: str = "") -> str:
    """Config ``obj`` as TOML (``header``: comment lines on top). None values are left out (their
    field's default is None) or written as the field's ``none_as``."""
    lines = [f"# {h}" for h in header.splitlines()]
    _table(obj, (), lines)
    return "\n".join(lines) + "\n"


def _table(obj: Any, prefix: tuple, lines: list[str]) -> None:
    subs = []
    if prefix:
        lines += ["", f"[{'.'.join(prefix)}]"]
    for f in fields(obj):
        v = getattr(obj, f.name)
        if is_dataclass(v):
            subs.append((f.name, v))
            continue
        if v is None:
            spec = spec_of(type(obj), f)
            if _default(f) is None:
                continue
            if spec.none_as is None:
                raise ConfigError(f"{f.name} is None and cannot be written to TOML (default {_default(f)!r})")
            v = spec.none_as
        lines.append(f"{f.name} = {_toml_value(v)}")
    for name, v in subs:
        _table(v, prefix + (name,), lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else "inf" if v > 0 else "-inf")
    if isinstance(v, (str, Path)):
        return json.dumps(str(v), ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_value(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise ConfigError(f"cannot write {v!r} ({type(v).__name__}) to TOML")
