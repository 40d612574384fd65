"""Checks of numeric settings, shared by the model, its training plan and its candidate search."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def check_numbers(
    *,
    counts: dict[str, Any] | None = None,
    counts_or_zero: dict[str, Any] | None = None,
    positive: dict[str, Any] | None = None,
    non_negative: dict[str, Any] | None = None,
) -> None:
    """Raise a ValueError naming the first setting outside its range (integers >= 1 or >= 0, numbers > 0 or >= 0)."""
    for minimum, group in ((1, counts or {}), (0, counts_or_zero or {})):
        for name, value in group.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
                raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    for low, group in ((">", positive or {}), (">=", non_negative or {})):
        for name, value in group.items():
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
            if not ok or value < 0 or (low == ">" and value == 0):
                raise ValueError(f"`{name}` must be a number {low} 0, got {value!r}.")


def check_choice(name: str, value: Any, choices: tuple) -> None:
    """Raise a ValueError when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}; use one of {choices}.")
