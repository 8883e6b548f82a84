"""The long property-based run: `--inputs` inputs (100,000 by default) spread over every
property-based test (the tokenizer, flags, message reading, command lookup, say(), the
dispatcher as a stranger and as a member, the appservice HTTP API); prints, per test, the
inputs tried and how many failed, and the totals. Exit status 1 when any input failed.

    .venv/bin/python bench/fuzz.py --inputs 100000

Hypothesis may stop a test early when it has tried every input its strategy can make; the
table says so (its count is then below the budget). Everything runs on 127.0.0.1 (the HTTP
tests start the service's own server on a loopback port)."""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = [
    "tests/unit/test_fuzz.py",
    "tests/unit/test_fuzz_http.py",
    "tests/unit/features/test_fuzz_commands.py",
]
# Hypothesis's statistics: "N passing, M failing, and K invalid test cases" (older versions:
# "N passing examples, M failing examples, K invalid examples").
COUNTS = re.compile(
    r"(\d+) passing(?: examples?)?, (\d+) failing(?: examples?)?,(?: and)? (\d+) invalid"
)


def collect() -> list[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *MODULES,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.strip() for line in out.splitlines() if "::" in line]


def statistics(output: str) -> dict[str, tuple[int, int, str]]:
    """Per test: inputs tried (passing + failing), failing, why it stopped."""
    found: dict[str, tuple[int, int, str]] = {}
    test = ""
    for line in output.splitlines():
        if line.rstrip().endswith(":") and "::" in line:
            test = line.strip().rstrip(":")
            found[test] = (0, 0, "")
        elif test and (match := COUNTS.search(line)):
            tried, failed, why = found[test]
            found[test] = (tried + int(match[1]) + int(match[2]), failed + int(match[2]), why)
        elif test and "Stopped because" in line:
            tried, failed, _ = found[test]
            found[test] = (tried, failed, line.split("Stopped because", 1)[1].strip())
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs over all tests")
    args = parser.parse_args()
    tests = collect()
    each = math.ceil(args.inputs / len(tests))
    print(f"{len(tests)} property-based tests, {each} inputs each", flush=True)
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--hypothesis-show-statistics",
            *MODULES,
        ],
        cwd=ROOT,
        env={**os.environ, "FUZZ_INPUTS": str(each)},
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - started
    stats = statistics(run.stdout)
    width = max(len(t.split("::")[-1]) for t in tests)
    print(f"{'test':<{width}}  {'inputs':>8}  {'failed':>6}  stopped because")
    total = failed = 0
    for test in tests:
        tried, bad, why = stats.get(test, (0, 0, "no statistics (did it run?)"))
        total, failed = total + tried, failed + bad
        print(f"{test.split('::')[-1]:<{width}}  {tried:>8}  {bad:>6}  {why}")
    print(f"{'total':<{width}}  {total:>8}  {failed:>6}  in {elapsed:.0f} s")
    if run.returncode != 0:
        print(run.stdout[-4000:], run.stderr[-2000:], sep="\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
