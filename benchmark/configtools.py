"""Typed dataclass configuration from plain dicts (YAML), with validation that names the source
file and the dotted key of every problem: unknown keys, wrong types and out-of-range values are
errors, never silent defaults.

Range and choice constraints are declared in field metadata::

    @dataclass
    class S:
        fps: float = field(default=25.0, metadata={"range": (1, 240)})
        mode: str = field(default="wb", metadata={"choices": ("wb", "nb")})
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin


class ConfigError(ValueError):
    """A configuration problem; the message names the source and the dotted key."""


def _yaml_loader():
    """A SafeLoader that reads ``1e-3`` as a float (YAML 1.1 requires a dot, YAML 1.2 does not)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |\.[0-9_]+(?:[eE][-+][0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        list("-+0123456789."),
    )
    return Loader


def load_yaml(text: str):
    """Parse YAML text with :func:`_yaml_loader` (floats such as ``1e-3`` are numbers)."""
    import yaml

    return yaml.load(text, Loader=_yaml_loader())


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str, source: str) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    where = f"{source}: key '{key}'"
    if tp is Any or tp is object:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for alt in args:
            if alt is type(None):
                continue
            try:
                return _convert(value, alt, key, source)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: must be one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return from_dict(tp, value, source=source, prefix=key)
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
        item_t = args[0] if args else Any
        out = [_convert(v, item_t, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(out) if (origin is tuple or tp is tuple) else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        kt, vt = (args + (Any, Any))[:2] if args else (Any, Any)
        return {
            _convert(k, kt, f"{key}.<key>", source): _convert(v, vt, f"{key}.{k}", source)
            for k, v in value.items()
        }
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {type(value).__name__} {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
        return value
    return value


def _check_constraints(f: dataclasses.Field, value: Any, key: str, source: str) -> None:
    rng = f.metadata.get("range")
    choices = f.metadata.get("choices")
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if v is None:
            continue
        if rng is not None and isinstance(v, (int, float)) and not isinstance(v, bool):
            lo, hi = rng
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise ConfigError(f"{source}: key '{key}': value {v!r} out of range [{lo}, {hi}]")
        if choices is not None and v not in choices:
            raise ConfigError(f"{source}: key '{key}': must be one of {list(choices)}, got {v!r}")


def from_dict(cls: type, data: dict[str, Any], *, source: str = "<config>", prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, validating keys, types and ranges."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: key '{prefix or '<root>'}': expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        k = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(
            f"{source}: unknown key '{k}' (known keys of '{prefix or cls.__name__}': {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        conv = _convert(value, hints[name], key, source)
        _check_constraints(fields[name], conv, key, source)
        kwargs[name] = conv
    try:
        obj = cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: section '{prefix or cls.__name__}': {exc}") from exc
    return obj


def to_dict(obj: Any) -> Any:
    """Plain-data (YAML/JSON-ready) form of a dataclass tree."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: mappings merge key by key, everything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c = value`` inside nested dicts (creating mappings as needed)."""
    parts = dotted.split(".")
    cur = data
    for p in parts[:-1]:
        nxt = cur.get(p)
        if nxt is None:
            nxt = cur[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {dotted}: '{p}' is not a section")
        cur = nxt
    cur[parts[-1]] = value
