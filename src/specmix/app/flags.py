"""Command-line flags generated from config dataclasses (pure Python: no torch, no NumPy).

One ``--flag-name`` per field; the field's type decides how its text is read:
``Literal[...]`` -> choices, ``tuple[int, ...]`` -> a comma list (``256,1024``), ``bool`` ->
``--flag`` / ``--flag false``, ``X | None`` -> also ``none``. Field metadata may add ``help``,
``aliases`` (more flag names), ``flag`` (another flag name) and ``nargs`` (``"+"``: one value
per word). Values are checked by the dataclass' own ``__post_init__``; argparse's errors
become a :class:`UsageError` too, so every bad flag ends as one line.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing

from ..validation import UsageError, literal_choices

__all__ = ["Parser", "add_config_args", "config_from_args", "parse_bool"]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`UsageError` (printed once, as one line)."""

    def error(self, message: str):
        raise UsageError(message)


def parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _scalar(tp):
    return {bool: parse_bool, int: int, float: float, str: str}[tp]


def _comma_list(elem):
    read = _scalar(elem)

    def parse(text: str) -> tuple:
        try:
            return tuple(read(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma list of {elem.__name__}, got {text!r}") from None
    return parse


def _reader(tp, nargs: str | None):
    """The ``type=`` callable for a field annotation (None allowed as ``none`` when optional)."""
    args = typing.get_args(tp)
    optional = type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else tp
    if literal_choices(base) is not None:
        read = type(literal_choices(base)[0])
    elif typing.get_origin(base) is tuple:
        elem = typing.get_args(base)[0]
        read = _scalar(elem) if nargs else _comma_list(elem)
    else:
        read = _scalar(base)
    if not optional:
        return read

    def read_optional(text: str):
        return None if text.lower() == "none" else read(text)
    read_optional.__name__ = getattr(read, "__name__", "value")
    return read_optional


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory()


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def add_config_args(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = (),
                    defaults: dict | None = None) -> None:
    """Add one flag per field of the dataclass ``cls`` (``skip``: fields left out;
    ``defaults``: other defaults for this command)."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(cls.__name__)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        meta, tp = field.metadata, hints[field.name]
        default = (defaults or {}).get(field.name, _default(field))
        kwargs = dict(type=_reader(tp, meta.get("nargs")), default=default, dest=field.name,
                      help=f"{meta.get('help', '')} (default: {_show(default)})".replace("%", "%%"))
        choices = literal_choices(tp)
        if choices is not None:
            kwargs["choices"] = choices + ((None,) if type(None) in typing.get_args(tp) else ())
        if "nargs" in meta:
            kwargs["nargs"] = meta["nargs"]
        if tp is bool:                    # `--flag` alone means true; `--flag false` works too
            kwargs.update(nargs="?", const=True, metavar="BOOL")
        names = [meta.get("flag", "--" + field.name.replace("_", "-")), *meta.get("aliases", ())]
        group.add_argument(*names, **kwargs)


def config_from_args(cls, ns: argparse.Namespace, **overrides):
    """Build ``cls`` from the parsed flags (its ``__post_init__`` validates them)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(ns).items() if k in names}
    return cls(**(values | overrides))
