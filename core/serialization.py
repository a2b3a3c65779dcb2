"""The one JSON round-trip of result objects (evaluations, explanations, analyses).

A result is a dataclass inheriting :class:`JsonMixin`: ``to_json()`` returns a dict that
``json.dumps`` accepts as it is (numpy values become Python numbers and lists, NaN and
infinities become ``None``, paths become strings), and ``from_json()`` rebuilds the
object from that dict or its JSON text, guided by the dataclass's type hints.
"""

from __future__ import annotations

import functools
import json
import math
import types
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

_PLAIN = (str, int, bool, type(None))


def to_plain(value: Any) -> Any:
    """Dataclasses, numpy values, paths and non-finite floats -> JSON-safe values."""
    kind = type(value)
    if kind in _PLAIN:  # the common leaves first: an evaluation holds a million of them
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is list or kind is tuple:
        return [to_plain(v) for v in value]
    if kind is dict:
        return {str(k): to_plain(v) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return to_plain(value.astype(object).tolist())
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


@functools.cache
def _field_hints(cls: type) -> tuple[tuple[str, Any], ...]:
    """``(name, type)`` of a dataclass's fields (resolving the hints once per class, not per value)."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in fields(cls))


_SCALARS = (str, int, bool)


def from_plain(annotation: Any, data: Any) -> Any:
    """Rebuild a value of type ``annotation`` (dataclass, list, dict, tuple, optional, array) from JSON."""
    if data is None:
        return None
    if annotation in _SCALARS:
        return data
    if annotation is float:
        return float(data) if isinstance(data, int) else data
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return from_plain(inner[0], data) if len(inner) == 1 else data
    if annotation is np.ndarray:
        return np.array(data, dtype=np.float64)  # None (a NaN written as null) becomes NaN again
    if is_dataclass(annotation):
        return annotation(**{name: from_plain(hint, data[name]) for name, hint in _field_hints(annotation) if name in data})
    if origin is list:
        if args[0] in _SCALARS:
            return list(data)
        if args[0] is float:
            return [float(v) if type(v) is int else v for v in data]
        return [from_plain(args[0], v) for v in data]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_plain(args[0], v) for v in data)
        return tuple(from_plain(a, v) for a, v in zip(args, data, strict=True))
    if origin is dict:
        return {k: from_plain(args[1], v) for k, v in data.items()}
    if annotation is Path:
        return Path(data)
    return data


class JsonMixin:
    """``to_json()`` / ``from_json()`` for a result dataclass."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``json.dumps`` it as is); undefined numbers are ``None``."""
        return to_plain(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | str):
        """Inverse of :meth:`to_json`; also accepts the JSON text."""
        return from_plain(cls, json.loads(data) if isinstance(data, str) else data)


def read_cached(cls, path: Path):
    """``cls.from_json`` of a cached JSON file, or ``None`` when it is missing or unreadable
    (a corrupt file is removed, so the next run rewrites it)."""
    try:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        Path(path).unlink(missing_ok=True)
        return None
