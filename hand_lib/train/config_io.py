"""Strict conversion between YAML (or plain dicts) and frozen config dataclasses.

Works for any tree of frozen dataclasses, not only the trainer's own:

- unknown keys are errors naming the full key path and the file;
- missing keys without a default are errors;
- types are checked, not coerced: ``amp: "False"`` is an error (a non-empty string is
  truthy, the trap of argparse booleans without a type), ``epochs: 2.0`` is an error, an int
  is accepted where a float is expected;
- YAML lists become tuples; free-form mappings (``Mapping[str, Any]``) become read-only;
- ``1e-3`` reads as a float (plain PyYAML follows YAML 1.1 and reads it as a string);
- duplicate keys in one YAML mapping are errors (PyYAML would silently keep the last).

Supported field types: bool, int, float, str, Path, None, ``X | None``, ``Literal[...]``,
``tuple[X, ...]``, ``tuple[X, Y]``, ``Mapping[str, X]``/``dict[str, X]``, ``Any``, nested
dataclasses.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hand_lib.train.errors import ConfigError
from hand_lib.train.frozen import FrozenDict, freeze, thaw

T = TypeVar("T")

_FLOAT_PATTERN = re.compile(
    r"""^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$""",
)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` as a float and rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise ConfigError(f"duplicate key {key!r} at line {line}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", _FLOAT_PATTERN, list("-+0123456789.")
)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping (an empty file gives ``{}``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from exc
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(source: str | Path | Mapping[str, Any], cls: type[T]) -> T:
    """Build the frozen dataclass ``cls`` from a YAML file or a (nested) mapping.

    Args:
        source: path of a YAML file, or a mapping as ``yaml.safe_load`` would return it.
        cls: a dataclass type (its nested dataclass fields are built recursively).

    Raises:
        ConfigError: naming the file and the key path, e.g.
            ``shape.yaml: train.epoch: unknown key (known keys in 'train': ...)``.
    """
    if isinstance(source, Mapping):
        data, origin = source, "<dict>"
    else:
        data, origin = read_yaml(source), str(source)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"cls must be a dataclass type, got {cls!r}")
    return _build(data, cls, "", origin)


def override(config: T, updates: Mapping[str, Any]) -> T:
    """Return a copy of ``config`` with dotted keys replaced, validated like a file.

    ``override(cfg, {"train.epochs": 2, "optim.lr": 1e-4})``. Meant for notebook
    (papermill) parameters and command lines. Unknown keys raise :class:`ConfigError`,
    except inside free-form mapping sections, which accept new keys.
    """
    tree = config_to_dict(config)
    for dotted, value in updates.items():
        parts = dotted.split(".")
        node = tree
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(f"<override>: {dotted}: {prefix} is a value, not a section")
            node = child
        node[parts[-1]] = thaw(value) if isinstance(value, (Mapping, tuple)) else value
    return _build(tree, type(config), "", "<override>")


def config_to_dict(config: Any) -> Any:
    """A config as plain dicts, lists, strings and numbers (for YAML and checkpoints)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {str(k): config_to_dict(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [config_to_dict(v) for v in config]
    if isinstance(config, Path):
        return str(config)
    return config


def dump_config(config: Any, path: str | Path | None = None) -> str:
    """Write ``config`` as YAML (to ``path`` if given) and return the text.

    ``load_config(dump_config(cfg) as a file, type(cfg)) == cfg`` holds for every config.
    """
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False)
    if path is not None:
        Path(path).write_text(text)
    return text


# --------------------------------------------------------------------------- building


def _where(origin: str, path: str) -> str:
    return f"{origin}: {path or '<top level>'}"


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _build(value: Any, tp: Any, path: str, origin: str) -> Any:
    """Convert ``value`` to type ``tp`` or raise ConfigError naming ``path`` in ``origin``."""
    if tp is Any:
        return freeze(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build_dataclass(value, tp, path, origin)

    origin_tp = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin_tp in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        if len(options) == 1:  # ``X | None``: report X's own, more precise, error
            return _build(value, options[0], path, origin)
        for arg in options:
            try:
                return _build(value, arg, path, origin)
            except ConfigError:
                continue
        raise ConfigError(
            f"{_where(origin, path)}: expected {_type_name(tp)}, got "
            f"{type(value).__name__} {value!r}"
        )
    if origin_tp is typing.Literal:
        for allowed in args:
            if type(value) is type(allowed) and value == allowed:
                return value
        raise ConfigError(f"{_where(origin, path)}: expected one of {list(args)}, got {value!r}")
    if origin_tp is tuple:
        return _build_tuple(value, args, path, origin)
    if origin_tp is list or tp is list:
        raise TypeError(f"{path}: annotate sequences in a frozen config as tuple[...], not list")
    if origin_tp in (dict, Mapping) or tp in (dict, Mapping):
        return _build_mapping(value, args, path, origin)
    if tp is type(None) or tp is None:
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    else:
        raise TypeError(f"{path}: unsupported config field type {tp!r}")
    raise ConfigError(
        f"{_where(origin, path)}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}"
    )


def _build_dataclass(value: Any, cls: type, path: str, origin: str) -> Any:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{_where(origin, path)}: expected a mapping for {cls.__name__}, "
            f"got {type(value).__name__} {value!r}"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    section = f"'{path}'" if path else "the top level"
    for key in value:
        if key not in fields:
            key_path = f"{path}.{key}" if path else str(key)
            raise ConfigError(
                f"{origin}: {key_path}: unknown key (known keys in {section}: "
                f"{', '.join(sorted(fields))})"
            )
    kwargs = {}
    for name, f in fields.items():
        key_path = f"{path}.{name}" if path else name
        if name in value:
            kwargs[name] = _build(value[name], hints[name], key_path, origin)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{origin}: {key_path}: missing required key")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def _build_tuple(value: Any, args: tuple[Any, ...], path: str, origin: str) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(
            f"{_where(origin, path)}: expected a list, got {type(value).__name__} {value!r}"
        )
    if len(args) == 2 and args[1] is Ellipsis:
        item_types = [args[0]] * len(value)
    elif not args:
        item_types = [Any] * len(value)
    else:
        if len(value) != len(args):
            raise ConfigError(
                f"{_where(origin, path)}: expected a list of {len(args)} items, got {len(value)}"
            )
        item_types = list(args)
    return tuple(
        _build(v, t, f"{path}[{i}]", origin)
        for i, (v, t) in enumerate(zip(value, item_types, strict=True))
    )


def _build_mapping(value: Any, args: tuple[Any, ...], path: str, origin: str) -> FrozenDict:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{_where(origin, path)}: expected a mapping, got {type(value).__name__} {value!r}"
        )
    value_type = args[1] if len(args) == 2 else Any
    out = {}
    for key, item in value.items():
        key_path = f"{path}.{key}" if path else str(key)
        if not isinstance(key, str):
            raise ConfigError(f"{_where(origin, key_path)}: keys must be strings, got {key!r}")
        out[key] = _build(item, value_type, key_path, origin)
    return FrozenDict(out)
