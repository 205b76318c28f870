"""The one configuration layer: dataclasses hold every default and its help; YAML, `--set` and flags come from them.

- `read_yaml(path, base_root)`: a YAML preset as a dict, `base: other.yaml` loaded first and overlaid (confined
  to `base_root` when one is given: the admin tab's launches); errors name the file and the line, never its text.
- `apply_overrides(data, ["a.b=v", ...])`: dotted `--set` overrides, values read as YAML scalars.
- `build(cls, data)`: a (nested) dataclass from a dict; unknown keys are errors naming the key; float fields
  take YAML 1.1's string spellings of numbers (`1e-6`, `2e0`) as the numbers they are.
- `load(cls, source, overrides, base_root)`: all three, for a YAML path or a dict.
- `field_help(cls)`: each field's attribute docstring (the string under it), and `add_flags(parser, cls, ...)`:
  argparse flags generated from a dataclass's fields, with the dataclass's defaults and docstrings, so a flag
  can never carry a default of its own.

Why not a library (docs/architecture.md has the longer note): PyYAML and argparse carry the parsing; the CLI
flag names are a contract (DESIGN: `--num-beams`, `--rejected`), help lives in attribute docstrings (which
HfArgumentParser does not read), and the loader must confine `base:` for the admin tab. No torch here.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import os
import textwrap
import types
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

#: Largest config file read: a preset is ~2 KB.
MAX_CONFIG_BYTES = 256 * 1024
MAX_BASE_DEPTH = 8


class ConfigError(ValueError):
    """A config value is wrong; the message names the key (and never quotes a file's contents)."""


# --------------------------------------------------------------------------- YAML with base: and --set


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_yaml(path: str | Path, base_root: Path | None = None, _depth: int = 0) -> dict[str, Any]:
    """A YAML preset as a dict; `base: other.yaml` is loaded first and overlaid.

    base_root None (the CLIs): `base:` is relative to the file. With a base_root (the admin tab's launches), `base:`
    resolves against the file's folder when that lies inside base_root, else against base_root, and must name a
    file inside base_root; anything else is refused with the same line whether or not the file exists.
    """
    path = Path(path)
    data = _parse_yaml(path)
    base = data.pop("base", None)
    if base is not None:
        if _depth > MAX_BASE_DEPTH:
            raise ConfigError(f"{path.name}: base chain too deep")
        data = _merge(read_yaml(_base_path(path, base, base_root), base_root, _depth + 1), data)
    return data


def _parse_yaml(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path.name} is over {MAX_CONFIG_BYTES // 1024} KB")
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise ConfigError(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path.name} cannot be read ({type(exc).__name__})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:  # its message quotes the offending lines: say where, not what
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path.name} is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name}: expected a mapping at the top level")
    return data


def _base_path(path: Path, base: Any, base_root: Path | None) -> Path:
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path.name}: base: expected a config file name, e.g. hdpo.yaml")
    if base_root is None:
        return path.parent / base
    root = Path(os.path.realpath(base_root))
    here = Path(os.path.realpath(path.parent))
    start = here if here == root or root in here.parents else root
    target = Path(os.path.realpath(start / base))
    if root not in target.parents or target.suffix not in (".yaml", ".yml") or not target.is_file():
        raise ConfigError(f"base: {base!r} is not a config in the configs folder; use a preset name such as hdpo.yaml")
    return target


def parse_value(text: str) -> Any:
    """`--set` values are YAML scalars / lists: 1e-6, true, null, [1, 3]."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"--set value {text[:40]!r} is not a YAML scalar or list") from None


def _split(override: str) -> tuple[str, Any]:
    if "=" not in override:
        raise ConfigError(f"--set {override!r}: expected key=value")
    key, text = override.split("=", 1)
    return key.strip(), parse_value(text)


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """Dotted `key=value` overrides (strings from `--set`, or a mapping) applied to a copy of a nested dict."""
    out: dict[str, Any] = json.loads(json.dumps(dict(data)))
    if overrides is None:
        items: Iterable[tuple[str, Any]] = ()
    elif isinstance(overrides, Mapping):
        items = overrides.items()
    else:
        items = [_split(o) for o in overrides]
    for key, value in items:
        node = out
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is not a section")
        node[last] = value
    return out


# --------------------------------------------------------------------------- dict -> dataclass


def _number(value: Any) -> Any:
    """YAML 1.1 reads `1e-6` and `2e0` (no dot) as strings; take them as the numbers they are."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass a field's type names (itself, or inside `X | None`), else None."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint
    if get_origin(hint) in (Union, types.UnionType):
        found = [a for a in get_args(hint) if isinstance(a, type) and dataclasses.is_dataclass(a)]
        return found[0] if len(found) == 1 else None
    return None


def build(cls: type, data: Any, prefix: str = "") -> Any:
    """A dataclass from a nested mapping; unknown keys are errors naming the key (a typo must not train the
    wrong thing); nested dataclass fields take nested mappings; float fields take numbers spelled as strings."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: expected a mapping")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(prefix + str(k) for k in unknown)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        nested = _dataclass_in(hint)
        if nested is not None and isinstance(value, Mapping):
            value = build(nested, value, f"{prefix}{name}.")
        elif hint is float or float in get_args(hint):
            value = _number(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{prefix or 'config'}: {exc}") from None


def load(
    cls: type,
    source: str | Path | Mapping[str, Any] | None,
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
    base_root: Path | None = None,
) -> Any:
    """A `cls` from a YAML path (with `base:`) or a mapping (or the defaults), overrides applied, validated."""
    data = read_yaml(source, base_root) if isinstance(source, str | Path) else dict(source or {})
    return build(cls, apply_overrides(data, overrides))


# --------------------------------------------------------------------------- flags from dataclasses


@cache
def field_help(cls: type) -> dict[str, str]:
    """Each field's attribute docstring (the string literal right under it), whitespace folded; for the
    dataclass and its dataclass bases."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                out[node.target.id] = " ".join(after.value.value.split())
    return out


def default_of(cls: type, name: str) -> Any:
    """A field's default (its default_factory called); dataclasses.MISSING for a required field."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _scalar(hint: Any) -> tuple[type | None, bool]:
    """(the argparse type of a field, whether it is a list/tuple of them)."""
    args = [a for a in get_args(hint) if a is not type(None)]
    origin = get_origin(hint)
    if origin in (list, tuple):
        inner = [a for a in get_args(hint) if a is not Ellipsis]
        return (inner[0] if inner and inner[0] in (int, float, str) else str), True
    if origin in (Union, types.UnionType) and len(args) == 1:
        return _scalar(args[0])
    return (hint if hint in (int, float, str) else None), False


def _shown(default: Any) -> str:
    """A default as help text: tuples as space-separated values, as they are typed."""
    if isinstance(default, (tuple, list)):
        return " ".join(str(x) for x in default) or "none"
    return repr(default)


def add_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    name: str,
    flag: str | None = None,
    note: str = "",
    **kwargs: Any,
) -> None:
    """One flag for field `name` of `cls`: `--num-beams` for num_beams (or `flag`), the dataclass's default and
    its attribute docstring as the help (`note` adds a CLI-only remark), dest = the field name. bool fields
    become --x / --no-x; list and tuple fields take several values. `kwargs` (type, choices, action...) win,
    except `default`, which only the dataclass gives: a flag can never carry a default of its own."""
    if "default" in kwargs:
        raise TypeError(f"the default of --{name} comes from {cls.__name__}, not from the flag")
    hint = get_type_hints(cls)[name]
    flag = flag or "--" + name.replace("_", "-")
    default = default_of(cls, name)
    # argparse %-formats help strings: a docstring's "95 %" crashed `--help` (escape it).
    text = " ".join(x for x in (field_help(cls).get(name, ""), note) if x).replace("%", "%%")
    if hint is bool:
        kwargs.setdefault("action", argparse.BooleanOptionalAction)
        parser.add_argument(flag, dest=name, default=default, help=text or None, **kwargs)
        return
    kind, many = _scalar(hint)
    shown = _shown(default).replace("%", "%%")
    kwargs.setdefault("help", f"{text} (default: {shown})" if text else None)
    if default is dataclasses.MISSING:
        kwargs.setdefault("required", True)
    elif kwargs.get("action") == "append":
        kwargs["default"] = None  # argparse appends to a default list; the caller falls back to the dataclass's
    else:
        kwargs["default"] = list(default) if many and default is not None else default
    if "choices" not in kwargs:
        kwargs.setdefault("metavar", flag.lstrip("-").replace("-", "_").upper())  # --rejected N, not NUM_REJECTED
    if many and "action" not in kwargs:
        kwargs.setdefault("nargs", "+")
    if kind is not None and kwargs.get("action") not in ("store_true", "store_false"):
        kwargs.setdefault("type", kind)
    parser.add_argument(flag, dest=name, **kwargs)


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    names: Iterable[str],
    renames: Mapping[str, str] | None = None,
    helps: Mapping[str, str] | None = None,
) -> None:
    """add_flag for each field of `cls` in `names` (renames: field -> flag; helps: field -> CLI-only note)."""
    for name in names:
        add_flag(parser, cls, name, (renames or {}).get(name), (helps or {}).get(name, ""))


def from_args(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    """`cls` from the parsed flags add_flags made (fields missing from `args` keep their defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    return cls(**{**values, **extra})
