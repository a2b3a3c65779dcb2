"""The one JSON round-trip of result objects (evaluations, explanations, analyses).

A result is a dataclass inheriting :class:`JsonMixin`: ``to_json()`` returns a dict that
``json.dumps`` accepts as it is (numpy values become Python numbers and lists, NaN and
infinities become ``None``, paths become strings), and ``from_json()`` rebuilds the
object from that dict or its JSON text, guided by the dataclass's type hints.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np


def to_plain(value: Any) -> Any:
    """Dataclasses, numpy values, paths and non-finite floats -> JSON-safe values."""
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


def from_plain(annotation: Any, data: Any) -> Any:
    """Rebuild a value of type ``annotation`` (dataclass, list, dict, tuple, optional, array) from JSON."""
    if data is None:
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return from_plain(inner[0], data) if len(inner) == 1 else data
    if annotation is np.ndarray:
        return np.array(data, dtype=np.float64)  # None (a NaN written as null) becomes NaN again
    if is_dataclass(annotation):
        hints = typing.get_type_hints(annotation)
        return annotation(**{f.name: from_plain(hints[f.name], data[f.name]) for f in fields(annotation) if f.name in data})
    if origin is list:
        return [from_plain(args[0], v) for v in data]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_plain(args[0], v) for v in data)
        return tuple(from_plain(a, v) for a, v in zip(args, data, strict=True))
    if origin is dict:
        return {k: from_plain(args[1], v) for k, v in data.items()}
    if annotation is Path:
        return Path(data)
    if annotation is float and isinstance(data, int):
        return float(data)
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
