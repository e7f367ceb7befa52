"""What every command shares: the consoles, `say` (progress and messages on stderr), small formatters."""
from __future__ import annotations

import json
import math

import click

from rich.console import Console

console = Console(highlight=False, emoji=False, width=max(160, Console().width))
err_console = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


def say(msg: str) -> None:
    err_console.print(msg, markup=False)


def yes_no(b: bool) -> str:
    return "yes" if b else "NO"


def num(x: float, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return "inf" if math.isinf(x) else f"{x:,.{digits}f}"


def pct(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.0%}"


class FiniteFloat(click.ParamType):
    """A finite number (NaN and ±inf refused), above `minimum` (or at it, with `inclusive`)."""

    name = "number"

    def __init__(self, minimum: float = 0.0, inclusive: bool = False):
        self.minimum, self.inclusive = minimum, inclusive

    def convert(self, value, param, ctx):
        try:
            x = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(x) or x < self.minimum or (x == self.minimum and not self.inclusive):
            self.fail(f"{value!r} must be a finite number {'>=' if self.inclusive else '>'} {self.minimum:g}",
                      param, ctx)
        return x


POSITIVE = FiniteFloat()
NON_NEGATIVE = FiniteFloat(inclusive=True)


def dumps(data: object) -> str:
    """JSON for output: non-finite numbers are a bug here, never `Infinity` in a file or on stdout."""
    return json.dumps(data, indent=2, allow_nan=False)
