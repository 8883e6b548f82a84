"""The chaos run: a scripted workload against a local Synapse while the service is killed
with SIGKILL at random moments (100 kills by default); after each restart the invariants are
checked, and the run prints a table: kills, operations, actions, violations (which must be
0). See tests/chaos/test_chaos.py for the workload and the invariants.

    .venv/bin/python bench/chaos.py --kills 100 [--seed N] [--postgres]

Everything runs on 127.0.0.1; `--postgres` uses PostgreSQL at 127.0.0.1:5432 (database
`test`, or COMMUNITIES_TEST_POSTGRES_URL) instead of SQLite."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None, help="repeat a run's random choices")
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "CHAOS_KILLS": str(args.kills)}
    if args.seed is not None:
        env["CHAOS_SEED"] = str(args.seed)
    if args.postgres:
        env["COMMUNITIES_TEST_DB"] = "postgres"
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/chaos"]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
