"""What every command shares: the consoles, `say` (progress and messages on stderr), small formatters."""
from __future__ import annotations

import math

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
