"""Validated configuration dataclasses.

Every algorithm keeps its hyper-parameters in one dataclass built from :func:`option`
fields. Construction checks every field, so a bad value fails at once with one message
that names the field and what it accepts, instead of deep inside a training loop::

    @dataclass
    class MyConfig(Config):
        gamma: float = option(0.99, "discount factor γ", low=0.0, high=1.0)
        optimizer: str = option("adam", "optimiser", choices=("adam", "sgd"))

    MyConfig(gamma=1.5)   # ConfigError: MyConfig.gamma = 1.5 is out of range; accepted: 0.0 <= gamma <= 1.0
    MyConfig.from_dict({"gama": 0.9})  # ConfigError: unknown field 'gama' for MyConfig; accepted: gamma, optimizer

The same metadata drives the command line (``--gamma 0.97``) and its help text.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, ClassVar, Mapping


class ConfigError(ValueError):
    """A configuration value or name that is not accepted. The message says what is."""


def option(
    default: Any,
    help: str,
    *,
    choices: tuple | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Any:
    """A config field with a one-line description and the values it accepts.

    ``low``/``high`` bound numbers (inclusive unless ``low_open``/``high_open``);
    ``choices`` lists the accepted values of a string field.
    """
    meta = dict(help=help, choices=choices, low=low, high=high, low_open=low_open, high_open=high_open)
    return dataclasses.field(default=default, metadata=meta)


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(type, optional) for annotations like ``int``, ``float | None``, ``Optional[str]``,
    ``tuple[float, ...]``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported config annotation {annotation!r}")
        return args[0], True
    return annotation, False


def _tuple_item(typ: Any) -> type | None:
    """The item type of ``tuple[T, ...]`` (list-valued options), else None."""
    if typing.get_origin(typ) is tuple:
        args = typing.get_args(typ)
        if len(args) != 2 or args[1] is not Ellipsis or args[0] not in (int, float, str):
            raise TypeError(f"unsupported config annotation {typ!r}; list options are tuple[int|float|str, ...]")
        return args[0]
    return None


def _describe(f: dataclasses.Field, typ: type, optional: bool) -> str:
    """What a field accepts, in words, for error messages and --help."""
    meta = f.metadata
    item = _tuple_item(typ)
    if item is not None:
        inner = _describe(f, item, False)
        return f"comma-separated values, each {inner}" + (" or none" if optional else "")
    if meta.get("choices"):
        text = "one of " + ", ".join(str(c) for c in meta["choices"])
    elif typ is bool:
        text = "true or false"
    else:
        lo, hi = meta.get("low"), meta.get("high")
        name = {int: "an integer", float: "a number", str: "a string"}.get(typ, typ.__name__)
        if lo is not None and hi is not None:
            text = f"{lo} {'<' if meta['low_open'] else '<='} {f.name} {'<' if meta['high_open'] else '<='} {hi}"
        elif lo is not None:
            text = f"{f.name} {'>' if meta['low_open'] else '>='} {lo}"
        elif hi is not None:
            text = f"{f.name} {'<' if meta['high_open'] else '<='} {hi}"
        else:
            text = name
    return text + (" or none" if optional else "")


@dataclasses.dataclass
class Config:
    """Base class: validates every field on construction (see the module docstring)."""

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    # Old field names -> current ones, so that checkpoints and exported networks saved before
    # a rename still load (:meth:`from_stored`); never accepted from the command line.
    renamed: ClassVar[Mapping[str, str]] = {}

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            typ, optional = _base_type(hints[f.name])
            value = getattr(self, f.name)
            setattr(self, f.name, self._check_field(f, typ, optional, value))
        self.validate()

    def validate(self) -> None:
        """Checks that involve several fields; subclasses raise :class:`ConfigError`."""

    def _check_field(self, f: dataclasses.Field, typ: type, optional: bool, value: Any) -> Any:
        cls = type(self).__name__
        accepted = _describe(f, typ, optional)
        bad = ConfigError(f"{cls}.{f.name} = {value!r} is not accepted; accepted: {accepted}")
        if value is None:
            if optional:
                return None
            raise bad
        item = _tuple_item(typ)
        if item is not None:
            if isinstance(value, str):
                raise bad
            try:
                values = tuple(value)
            except TypeError:
                raise bad from None
            if not values:
                raise ConfigError(f"{cls}.{f.name} = {value!r} is empty; accepted: {accepted}")
            return tuple(self._check_field(f, item, False, v) for v in values)
        if typ is bool:
            if not isinstance(value, bool):
                raise bad
        elif typ is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise bad
        elif typ is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad
            value = float(value)
        elif typ is str:
            if not isinstance(value, str):
                raise bad
        meta = f.metadata
        if meta.get("choices") and value not in meta["choices"]:
            raise bad
        lo, hi = meta.get("low"), meta.get("high")
        if lo is not None and (value < lo or (meta.get("low_open") and value == lo)):
            raise ConfigError(f"{cls}.{f.name} = {value!r} is out of range; accepted: {accepted}")
        if hi is not None and (value > hi or (meta.get("high_open") and value == hi)):
            raise ConfigError(f"{cls}.{f.name} = {value!r} is out of range; accepted: {accepted}")
        return value

    # ----------------------------------------------------------------- building
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], preset: str | None = None):
        """Build from a preset (if named) overridden by ``values``; unknown names raise."""
        merged: dict[str, Any] = {}
        if preset is not None:
            if preset not in cls.presets:
                accepted = ", ".join(sorted(cls.presets)) or "(none)"
                raise ConfigError(f"unknown preset {preset!r} for {cls.__name__}; accepted: {accepted}")
            merged.update(cls.presets[preset])
        merged.update(values)
        names = cls.field_names()
        for key in merged:
            if key not in names:
                raise ConfigError(f"unknown field {key!r} for {cls.__name__}; accepted: {', '.join(names)}")
        return cls(**merged)

    @classmethod
    def from_stored(cls, values: Mapping[str, Any]):
        """Build from a config dict saved with a checkpoint or export, under old names too (:attr:`renamed`),
        and with list options saved as comma-separated strings by earlier versions."""
        hints = typing.get_type_hints(cls)
        out = {}
        for key, value in values.items():
            key = cls.renamed.get(key, key)
            if key in hints and isinstance(value, str) and _tuple_item(_base_type(hints[key])[0]) is not None:
                value = cls.parse_value(key, value)
            out[key] = value
        return cls.from_dict(out)

    def replace(self, **changes: Any):
        """A validated copy with some fields changed."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ------------------------------------------------------------ command line
    @classmethod
    def parse_value(cls, name: str, text: str) -> Any:
        """Convert a command-line string for field ``name`` to the field's type."""
        f = {f.name: f for f in dataclasses.fields(cls)}[name]
        typ, optional = _base_type(typing.get_type_hints(cls)[name])
        low = text.strip().lower()
        if optional and low in ("none", "null", ""):
            return None
        item = _tuple_item(typ)
        if item is not None:
            parts = [p.strip() for p in text.split(",") if p.strip()]
            try:
                return tuple(item(p) for p in parts)
            except ValueError:
                raise ConfigError(f"--{name.replace('_', '-')} {text!r} is not accepted; accepted: "
                                  f"{_describe(f, typ, optional)}") from None
        try:
            if typ is bool:
                if low in ("true", "1", "yes", "on"):
                    return True
                if low in ("false", "0", "no", "off"):
                    return False
                raise ValueError(text)
            if typ is int:
                return int(float(text)) if "e" in low and float(text).is_integer() else int(text)
            if typ is float:
                return float(text)
        except ValueError:
            raise ConfigError(
                f"--{name.replace('_', '-')} {text!r} is not accepted; accepted: {_describe(f, typ, optional)}"
            ) from None
        return text

    @classmethod
    def help_lines(cls) -> list[tuple[str, str]]:
        """(flag, description with default and accepted values) for each field."""
        hints = typing.get_type_hints(cls)
        rows = []
        for f in dataclasses.fields(cls):
            typ, optional = _base_type(hints[f.name])
            rows.append((
                "--" + f.name.replace("_", "-"),
                f"{f.metadata.get('help', '')} (default {f.default!r}; {_describe(f, typ, optional)})",
            ))
        return rows

    @classmethod
    def is_bool(cls, name: str) -> bool:
        return _base_type(typing.get_type_hints(cls)[name])[0] is bool


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclasses.dataclass
class TrainConfig(Config):
    """What every training run has, with or without an environment (supervised and offline
    models have none): its seed, device and determinism. Agents that act in an environment
    start from :class:`course_lib.agents.base.EnvConfig`."""

    seed: int = option(0, "random seed (environments i use seed + i)", low=0)
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    deterministic: bool = option(False, "deterministic torch kernels: same seed, same numbers (on one machine)")

    def validate(self) -> None:
        if not _DEVICE_RE.match(self.device):
            raise ConfigError(f"{type(self).__name__}.device = {self.device!r} is not accepted; accepted: auto, cpu, "
                              "cuda, cuda:N, mps")
