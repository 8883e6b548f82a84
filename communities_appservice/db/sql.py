"""Small helpers for writing queries that both SQLite and PostgreSQL take."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
CHUNK = 500  # values per `IN (...)` list (SQLite allows 32,766 parameters; old builds 999)


def marks(n: int, first: int = 1) -> str:
    """`$first, ..., $(first+n-1)`: the placeholders of an `IN (...)` list."""
    return ", ".join(f"${i}" for i in range(first, first + n))


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """`values` a query's worth at a time."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
