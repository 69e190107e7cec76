"""The one check of every typed config (dataprep, blending, trainer): a YAML or JSON mapping is turned
into a config dataclass by walking its fields and type hints, before any Spark or torch work starts.

An unknown key or a value of the wrong type is a ConfigError naming the file, the key's dotted path,
what was expected and what was given: `pipeline.yaml: dedup.bands: expected an integer, got 'twenty'`.
Understood hints: int, float (an integer is fine), str, bool, list[X], tuple[X, ...] (a lone X is a
one-item list), dict[str, X], Any, `X | None`, and nested dataclasses (a null section keeps its defaults).
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ConfigError(ValueError):
    """A config file or value is missing, malformed or of the wrong type; the message names it."""


def check_safe_name(name: object, what: str) -> str:
    """A name that becomes a folder or file name: letters, digits, '.', '_', '-', never a path or '..'."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(f"{what}: expected a name of letters, digits, '.', '_', '-' (no '/', no '..'), "
                          f"got {name!r}")
    return name


class _Loader(yaml.SafeLoader):
    """YAML with 1e-5 read as a number, as YAML 1.2 and JSON read it (YAML 1.1 wants a dot: 1.0e-5)."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


def read_mapping(path: str | Path) -> dict:
    """The top-level mapping of a YAML file, or of a JSON file (`.json`); an empty file is an empty one."""
    try:
        text = Path(path).read_text()
        raw = json.loads(text) if str(path).endswith(".json") else yaml.load(text, Loader=_Loader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read it ({error})") from None
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not valid {'JSON' if str(path).endswith('.json') else 'YAML'} "
                          f"({' '.join(str(error).split())})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of config sections, got {_shown(raw)}")
    return raw


def load_dataclass(cls: type, raw: Any, where: str, key: str = ""):
    """An instance of the dataclass `cls` from `raw`; every error, the class's own checks' included,
    is a ConfigError that starts with `where` (the file, or the option that gave the values). `key` is
    where `raw` sits in the file ("sources[2]"), when not at its top."""
    try:
        return _build(cls, raw, key)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _build(cls: type, raw: Any, key: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{key or 'the file'}: expected a mapping of {_fields_line(cls)}, got {_shown(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    within = f"{key}." if key else ""
    for name in raw:
        if name not in fields:
            raise ConfigError(f"{within}{name}: unknown key (known: {', '.join(fields)})")
    for name, f in fields.items():
        if name not in raw and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{within}{name}: missing, expected {describe_type(hints[name])}")
    values = {name: _convert(hints[name], value, f"{within}{name}") for name, value in raw.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    options = _union_options(hint)
    if options is not None:
        if value is None and type(None) in options:
            return None
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(option, value, key)
            except ConfigError:
                continue
        raise _mismatch(hint, value, key)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, tuple):
        converted = _items(args[0], value, key) if isinstance(value, list | tuple) else [_lone_item(hint, value, key)]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if not isinstance(value, dict):
            raise _mismatch(hint, value, key)
        return {k: _convert(args[1], v, f"{key}.{k}") for k, v in value.items()}
    return _scalar(hint, value, key)


def _items(hint: Any, values: list | tuple, key: str) -> list:
    return [_convert(hint, item, f"{key}[{i}]") for i, item in enumerate(values)]


def _lone_item(hint: Any, value: Any, key: str) -> Any:
    """A lone value where a list is expected: the list's one item, if it is of the item type."""
    try:
        return _convert(typing.get_args(hint)[0], value, key)
    except ConfigError:
        raise _mismatch(hint, value, key) from None


def check_value(hint: Any, value: Any, key: str) -> Any:
    """`value` converted to the type hint `hint`, or a ConfigError naming `key`."""
    return _convert(hint, value, key)


def _scalar(hint: Any, value: Any, key: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:  # 1e9 in JSON is a float: an integral one is the integer it names
        ok = isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
        value = int(value) if ok else value
    elif hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    else:
        raise TypeError(f"typed_config cannot check a field of type {hint!r} ({key})")
    if not ok:
        raise _mismatch(hint, value, key)
    return value


def _union_options(hint: Any) -> tuple | None:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return None


def _mismatch(hint: Any, value: Any, key: str) -> ConfigError:
    return ConfigError(f"{key}: expected {describe_type(hint)}, got {_shown(value)}")


_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", Any: "any value"}


def describe_type(hint: Any) -> str:
    """What a value of this type hint looks like, in words: 'a list of strings', 'a number or null'."""
    if dataclasses.is_dataclass(hint):
        return f"a mapping of {_fields_line(hint)}"
    options = _union_options(hint)
    if options is not None:
        words = [describe_type(o) for o in options if o is not type(None)]
        return " or ".join(words + (["null"] if type(None) in options else []))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, tuple):
        return f"a list of {_plural(args[0])}"
    if origin is dict:
        return f"a mapping to {_plural(args[1])}"
    return _NAMES.get(hint, repr(hint))


def _plural(hint: Any) -> str:
    words = describe_type(hint)
    return {"an integer": "integers", "a number": "numbers", "a string": "strings"}.get(words, words)


def _fields_line(cls: type) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls) if f.init)


def _shown(value: Any) -> str:
    """The given value as the user wrote it, shortened so the message stays one line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
