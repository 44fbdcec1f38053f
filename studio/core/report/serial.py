"""One `to_dict`/`from_dict` for every typed result, driven by the dataclass fields and their
annotations: nested records, tuples of records and optional fields convert themselves, so a new
field is one line in the dataclass and the JSON follows."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

R = TypeVar("R", bound="Record")
OMIT_NONE = {"omit_none": True}  # field metadata: left out of the JSON while None (the files never had it)
NAN_AS_NONE = {"nan_as_none": True}  # field metadata: NaN ("not measured") is null in the JSON, which has no NaN


def _plain_field(record: Any, f: dataclasses.Field) -> Any:
    value = getattr(record, f.name)
    if f.metadata.get("nan_as_none") and isinstance(value, float) and math.isnan(value):
        return None
    return to_plain(value)


def to_plain(value: Any) -> Any:
    """Records become dicts, tuples lists, numpy scalars Python numbers: what `json.dumps` takes.
    Fields that `__init__` does not take (derived state such as an index) are not data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain_field(value, f) for f in dataclasses.fields(value)
                if f.init and not (f.metadata.get("omit_none") and getattr(value, f.name) is None)}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item) and type(value).__module__ == "numpy":
        return value.item()
    return value


def _convert(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        records = [k for k in options if isinstance(k, type) and dataclasses.is_dataclass(k)]
        return _convert(records[0], value) if records and isinstance(value, dict) else \
            _convert(options[0], value) if len(options) == 1 else value
    if isinstance(kind, type) and issubclass(kind, Record):
        return kind.from_dict(value)
    if origin is tuple:
        args = typing.get_args(kind)
        element = args[0] if args else Any
        return tuple(_convert(element, v) for v in value)
    if origin is dict:
        _, element = typing.get_args(kind) or (Any, Any)
        return {k: _convert(element, v) for k, v in value.items()}
    return value


def _field_value(f: dataclasses.Field, kind: Any, value: Any) -> Any:
    if value is None and f.metadata.get("nan_as_none"):
        return float("nan")
    return _convert(kind, value)


class Record:
    """Mixin for frozen dataclasses: the JSON form and back; unknown keys are ignored (files
    written by a newer studio still open), missing ones take the field's default."""

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        hints = _hints(cls)
        values = {f.name: _field_value(f, hints[f.name], data[f.name])
                  for f in dataclasses.fields(cls) if f.init and f.name in data}  # type: ignore[arg-type]
        return cls(**values)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]
