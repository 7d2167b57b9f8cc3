"""Typed dataclass configuration from plain dicts (YAML), with validation that names the source
file and the dotted key of every problem: unknown keys, wrong types and out-of-range values are
errors, never silent defaults.

Range and choice constraints are declared in field metadata::

    @dataclass
    class S:
        fps: float = field(default=25.0, metadata={"range": (1, 240)})
        mode: str = field(default="wb", metadata={"choices": ("wb", "nb")})

        def __post_init__(self) -> None:
            check_fields(self)  # the same checks for direct constructions (S(fps=0) raises)

:func:`from_dict` enforces them (with the source file and the dotted key in the message) while
it builds the dataclass; :func:`check_fields` enforces them on an instance, for config classes
that are also built directly from Python (the algorithm and model configs). A cross-field rule
in ``__post_init__`` raises :class:`FieldError` naming the field, so that :func:`from_dict` can
report it under its full key path.
"""
from __future__ import annotations

import dataclasses
import difflib
import numbers
import re
import types
import typing
from typing import Any, Literal, Optional, Union, get_args, get_origin


class ConfigError(ValueError):
    """A configuration problem; the message names the source and the dotted key."""


class FieldError(ConfigError):
    """A problem with one field of a config dataclass, raised while it is built (``__post_init__``).

    ``field`` is the field name; :func:`from_dict` re-raises it as a :class:`ConfigError` under
    the full dotted key (``<source>: key 'enhance.algorithm_params.mcem.burn_in': ...``)."""

    def __init__(self, cls_name: str, field: str, message: str) -> None:
        super().__init__(f"{cls_name}.{field}: {message}")
        self.field = field
        self.message = message


def did_you_mean(name: str, known: typing.Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``known`` to ``name``, or ``""``."""
    close = difflib.get_close_matches(str(name), sorted(map(str, known)), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


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


def _constraint_problem(f: dataclasses.Field, value: Any) -> Optional[str]:
    """What breaks the ``range``/``choices`` metadata of field ``f`` in ``value`` (each item of a
    list), or None."""
    rng = f.metadata.get("range")
    choices = f.metadata.get("choices")
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if v is None:
            continue
        if rng is not None and isinstance(v, numbers.Real) and not isinstance(v, bool):
            lo, hi = rng
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                return f"value {v!r} out of range [{lo}, {hi}]"
        if choices is not None and v not in choices:
            return f"must be one of {list(choices)}, got {v!r}"
    return None


def _check_constraints(f: dataclasses.Field, value: Any, key: str, source: str) -> None:
    problem = _constraint_problem(f, value)
    if problem:
        raise ConfigError(f"{source}: key '{key}': {problem}")


def from_dict(cls: type, data: dict[str, Any], *, source: str = "<config>", prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, validating keys (unknown ones with a did-you-mean),
    types, ranges and choices, and the class's own ``__post_init__`` rules; every error is a
    :class:`ConfigError` naming ``source`` and the dotted key under ``prefix``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: key '{prefix or '<root>'}': expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        k = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise ConfigError(
            f"{source}: unknown key '{k}'{did_you_mean(unknown[0], fields)} "
            f"(known keys of '{prefix or cls.__name__}': {', '.join(sorted(fields)) or '(none)'})"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        conv = _convert(value, hints[name], key, source)
        _check_constraints(fields[name], conv, key, source)
        kwargs[name] = conv
    try:
        obj = cls(**kwargs)
    except FieldError as exc:
        key = f"{prefix}.{exc.field}" if prefix else exc.field
        raise ConfigError(f"{source}: key '{key}': {exc.message}") from exc
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: section '{prefix or cls.__name__}': {exc}") from exc
    return obj


def _type_ok(value: Any, tp: Any) -> bool:
    """Lenient runtime type check of a directly built config value (NumPy scalars count as numbers;
    containers and other types are not inspected)."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return any(_type_ok(value, a) for a in args)
    if tp is type(None):
        return value is None
    if origin is Literal:
        return value in args
    if tp is bool:
        return isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b"
    if tp is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    return True


def check_fields(obj: Any) -> None:
    """Check a built config dataclass against its field types (leniently: see :func:`_type_ok`)
    and the ``range``/``choices`` of its field metadata; raise :class:`FieldError` naming the
    class and the field. Call it from ``__post_init__`` so direct constructions are checked too."""
    cls = type(obj)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        value = getattr(obj, f.name)
        tp = hints.get(f.name, Any)
        if not _type_ok(value, tp):
            raise FieldError(cls.__name__, f.name, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
        problem = _constraint_problem(f, value)
        if problem:
            raise FieldError(cls.__name__, f.name, problem)


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
