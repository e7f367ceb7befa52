"""How long-running steps report progress: a callable taking one line of text."""
from __future__ import annotations

from typing import Callable

Say = Callable[[str], None]


def quiet(_msg: str) -> None:
    """A Say that says nothing."""
