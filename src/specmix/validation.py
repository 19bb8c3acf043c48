"""``UsageError`` and the small checks that config dataclasses run in ``__post_init__``.

Pure Python (no torch, no NumPy), so every config, the CLI and the NumPy reference can use it.
A ``UsageError`` is a mistake in what the user asked for (a flag, a config field, a file or
checkpoint they named); its message names the argument and what was expected. It is the only
exception that the command line prints as a one-line error: anything else keeps its traceback.
"""
from __future__ import annotations

import dataclasses
import math
import typing

__all__ = ["UsageError", "Diverged", "check_fields", "literal_choices"]


class UsageError(ValueError):
    """A mistake in what the user asked for; printed by the CLI as one line (exit status 2)."""


class Diverged(RuntimeError):
    """Training produced a non-finite loss or weights and stopped without saving them;
    printed by the CLI as one line (exit status 1)."""


def flag(name: str) -> str:
    """``"batch_size"`` -> ``"--batch-size"``: how errors name a config field."""
    return "--" + name.replace("_", "-")


def literal_choices(tp) -> tuple | None:
    """The allowed values of ``Literal[...]`` or ``Literal[...] | None``; None for other types."""
    if typing.get_origin(tp) is typing.Literal:
        return typing.get_args(tp)
    inner = [a for a in typing.get_args(tp) if a is not type(None)]
    if len(inner) == 1 and typing.get_origin(inner[0]) is typing.Literal:
        return typing.get_args(inner[0])
    return None


def _optional(tp) -> bool:
    return type(None) in typing.get_args(tp)


def _base(tp):
    """``int | None`` -> ``int``; other types unchanged."""
    inner = [a for a in typing.get_args(tp) if a is not type(None)] if _optional(tp) else [tp]
    return inner[0] if len(inner) == 1 else tp


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _is(value, tp) -> bool:
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, tp)


def _check_one(name: str, value, tp) -> None:
    if value is None:
        if not _optional(tp):
            raise UsageError(f"{flag(name)}: a value is required, got None")
        return
    choices = literal_choices(tp)
    if choices is not None:
        if value not in choices:
            raise UsageError(f"{flag(name)}: expected one of {', '.join(map(str, choices))}; got {value!r}")
        return
    base = _base(tp)
    if typing.get_origin(base) is tuple:
        elem = typing.get_args(base)[0]
        if not isinstance(value, tuple) or not all(_is(v, elem) for v in value):
            raise UsageError(f"{flag(name)}: expected a tuple of {elem.__name__}, got {value!r}")
    elif base in _TYPE_WORDS and not _is(value, base):
        raise UsageError(f"{flag(name)}: expected {_TYPE_WORDS[base]}, got {value!r}")


def check_fields(obj, minimum: dict[str, float] | None = None) -> None:
    """Check every field of a config dataclass against its annotation (``Literal`` choices,
    int / float / bool / str / tuple types, None only where the type allows it) and the
    lower bounds in ``minimum`` (field name -> smallest allowed value)."""
    hints = typing.get_type_hints(type(obj))
    for field in dataclasses.fields(obj):
        _check_one(field.name, getattr(obj, field.name), hints[field.name])
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{flag(field.name)} must be a finite number, got {value}")
    for name, low in (minimum or {}).items():
        value = getattr(obj, name)
        if value is not None and value < low:
            raise UsageError(f"{flag(name)} must be >= {low}, got {value}")
