"""Parsing helpers shared by the config dataclasses' string flags (NumPy/torch free)."""
from __future__ import annotations


def parse_int_list(text: str, flag: str, minimum: int = 1) -> tuple[int, ...]:
    """``"256,1024"`` -> ``(256, 1024)``; a ValueError naming ``--flag`` for anything else."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--{flag}: expected a comma list of integers, got {text!r}") from None
    if not values or min(values) < minimum:
        raise ValueError(f"--{flag}: expected integers >= {minimum}, got {text!r}")
    return values
