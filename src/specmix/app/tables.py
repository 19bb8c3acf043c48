"""Markdown tables: the one helper that every report of the command line and README uses."""
from __future__ import annotations

import math

__all__ = ["markdown_table", "fmt", "ratio"]


def fmt(value, spec: str = ".2f") -> str:
    """A number as text; ``-`` for a missing one (None or NaN)."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    """Lines of a GitHub-flavoured markdown table; cells are written with ``str``."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return lines
