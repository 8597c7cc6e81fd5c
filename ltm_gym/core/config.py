"""Configs as dataclasses, loaded from YAML presets and validated on load.

Every config class is a plain ``@dataclass``. :func:`from_dict` builds one from a mapping and
rejects unknown keys and values of the wrong type, naming the key, the value and what is allowed;
range checks live in each class's ``validate()`` and use :func:`check`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, Union

import yaml
from .errors import UserError

T = TypeVar("T")


class ConfigError(UserError):
    """A config key is unknown or its value is not allowed."""


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise :class:`ConfigError` naming ``key``, ``value`` and the allowed values unless ``ok``."""
    if not ok:
        raise ConfigError(f"config key {key!r} has value {value!r}; allowed: {allowed}")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Return ``value`` as type ``tp`` or raise a ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        check(value in typing.get_args(tp), key, value, _type_name(tp))
        return value
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(arg, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key {key!r} has value {value!r}; allowed: {_type_name(tp)}")
    if tp is type(None):
        check(value is None, key, value, "null")
        return None
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        check(isinstance(value, Mapping), key, value, f"a mapping of {tp.__name__} fields")
        return from_dict(tp, value, prefix=key + ".")
    if origin in (list, tuple):
        check(isinstance(value, (list, tuple)), key, value, f"a list ({_type_name(tp)})")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            check(len(value) == len(args), key, value, f"a list of {len(args)} items")
            return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        check(isinstance(value, Mapping), key, value, "a mapping")
        return dict(value)
    if tp is bool:
        check(isinstance(value, bool), key, value, "true or false")
        return value
    if tp is int:
        check(isinstance(value, int) and not isinstance(value, bool), key, value, "an integer")
        return value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        check(ok, key, value, "a number")
        return float(value)
    if tp is str:
        check(isinstance(value, str), key, value, "a string")
        return value
    if tp is Path:
        check(isinstance(value, (str, Path)), key, value, "a path")
        return Path(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config {prefix or cls.__name__!r} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        near = difflib.get_close_matches(unknown[0], list(fields), n=1)
        raise ConfigError(f"unknown config key {prefix + unknown[0]!r} in {cls.__name__}; "
                          + (f"did you mean {prefix + near[0]!r}? " if near else "")
                          + "known keys: " + ", ".join(sorted(fields)))
    kwargs = {name: _coerce(hints[name], value, prefix + name) for name, value in data.items()}
    obj = cls(**kwargs)
    validate(obj)
    return obj


def validate(obj: Any) -> None:
    """Run ``validate()`` on ``obj`` and on every nested dataclass it holds."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate(value)
    if hasattr(obj, "validate"):
        obj.validate()


def config_changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every leaf where two config dicts differ."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def to_dict(obj: Any) -> dict[str, Any]:
    """A YAML-safe dict of a dataclass (paths become strings, tuples lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(obj).items()}


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ``["train.lr=3e-4", "model.n_layer=2"]`` into a nested dict (values parsed as YAML).
    A key given both a value and sub-keys keeps the value as ``name``: ``task=recall-d4
    task.distance=3`` is ``{"task": {"name": "recall-d4", "distance": 3}}``."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} is not of the form key=value")
        key, raw = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if part in node and not isinstance(node[part], dict):
                node[part] = {"name": node[part]}
            node = node.setdefault(part, {})
        value = _parse_value(raw)
        if isinstance(node.get(parts[-1]), dict) and not isinstance(value, dict):
            node[parts[-1]]["name"] = value
        else:
            node[parts[-1]] = value
    return out


def _parse_value(raw: str) -> Any:
    """YAML scalar, except that ``1e-3`` is a number (YAML 1.1 would read it as a string)."""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value) if any(c in value.lower() for c in "e.") or value.lower() in ("inf", "nan") else value
        except ValueError:
            return value
    return value


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``update`` wins. Sub-keys given for a named value keep the name: a
    preset's ``task: recall-d4`` with ``task.distance=3`` is ``{"name": "recall-d4", "distance": 3}``."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), str) and "name" not in v:
            out[k] = {"name": out[k], **v}
        elif isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def preset_dir() -> Path:
    """The YAML presets shipped inside the package (``ltm_gym/presets``, carried by the wheel)."""
    from importlib.resources import files

    return Path(str(files("ltm_gym") / "presets"))


def preset_names() -> list[str]:
    """Every preset by the name it loads with (``tiny``, ``looped-cpu``, ``agents/ppo``, ...)."""
    root = preset_dir()
    return sorted(str(q.relative_to(root).with_suffix("")) for q in root.rglob("*.yaml"))


def resolve_preset(name_or_path: str | Path) -> Path:
    """A YAML path, or the name of a shipped preset (``tiny``, ``agents/ppo``), from any directory."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    if p.name == "config.yaml" and not p.is_file():      # a run's stored config
        where = "no such directory" if not p.parent.exists() else "it holds no config.yaml"
        raise ConfigError(f"{p.parent} is not a run directory ({where})")
    root = preset_dir()
    for candidate in (root / f"{name_or_path}.yaml", root / str(name_or_path)):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"config {str(name_or_path)!r} is neither a YAML file nor a preset; presets: {preset_names()}")


def load_preset_dict(name_or_path: str | Path) -> dict[str, Any]:
    """The mapping a preset or YAML file holds (empty file: empty mapping)."""
    path = resolve_preset(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    return dict(data)


def load_config(cls: type[T], source: str | Path | Mapping[str, Any] | None = None,
                overrides: list[str] | Mapping[str, Any] | None = None) -> T:
    """Load ``cls`` from a preset name, a YAML path or a mapping, then apply ``key=value`` overrides."""
    data: Mapping[str, Any]
    if source is None:
        data = {}
    elif isinstance(source, Mapping):
        data = source
    else:
        data = load_preset_dict(source)
    if overrides:
        extra = overrides if isinstance(overrides, Mapping) else parse_overrides(list(overrides))
        data = merge(data, extra)
    return from_dict(cls, data)


def save_config(obj: Any, path: str | Path) -> None:
    """Write a dataclass config as YAML (the run's resolved config)."""
    Path(path).write_text(yaml.safe_dump(to_dict(obj), sort_keys=False))


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` (a string statement right after it), by
    name: what generated command-line options show as their help."""
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr) \
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def add_dataclass_arguments(parser: Any, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One ``--field-name`` option per field of dataclass ``cls`` (but ``skip``): the value is read
    as YAML and type-checked by :func:`from_dict` (``null`` for None; a list field takes several
    values), the default is the field's and the help its docstring. No option is declared twice:
    :func:`dataclass_from_args` builds the dataclass back from the parsed arguments."""
    docs, defaults = field_docs(cls), cls()
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        default = getattr(defaults, f.name)
        listed = isinstance(default, (list, tuple))
        shown = " ".join(map(str, default)) if listed else ("null" if default is None else default)
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, nargs="*" if listed else None,
                            default=None, metavar=f.name.upper(),
                            help=f"{docs.get(f.name, '')} (default: {shown})".replace("%", "%%"))


def dataclass_from_args(cls: type[T], args: Any) -> T:
    """The dataclass ``cls`` of the options :func:`add_dataclass_arguments` declared (the ones not
    given keep their defaults), validated by :func:`from_dict`."""
    given = {}
    for f in dataclasses.fields(cls):
        raw = getattr(args, f.name, None)
        if raw is None:
            continue
        given[f.name] = [_parse_value(v) for v in raw] if isinstance(raw, list) else _parse_value(raw)
    return from_dict(cls, given)
