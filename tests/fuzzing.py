"""The budget of the property-based tests: a small one in CI, any size on demand.

`FUZZ_INPUTS=N` gives every property-based test N inputs (`bench/fuzz.py` sets it to spread
a long run over them and prints the counts)."""

from __future__ import annotations

import os


def budget(ci: int) -> int:
    """Inputs per test: `ci`, unless FUZZ_INPUTS says otherwise."""
    return int(os.environ.get("FUZZ_INPUTS") or ci)
