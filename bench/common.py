"""What every benchmark sets up the same way: a local Synapse with the service's registration,
and a work directory (temporary, or kept with --keep) to run in."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from megolm_share import write_config  # type: ignore[import-not-found]  # bench/ is on sys.path

from communities_appservice.config import Config, generate_registration
from communities_appservice.dev.localhs import LocalSynapse


def local_synapse(workdir: Path) -> tuple[LocalSynapse, Config, Path]:
    """A Synapse (not started) on 127.0.0.1 with the service registered: it, the service's
    config and the config's path."""
    registration = workdir / "registration.yaml"
    synapse = LocalSynapse(workdir / "synapse", server_name="localhost", registration=registration)
    config_path = write_config(workdir, synapse)
    return synapse, generate_registration(config_path, registration), config_path


def in_workdir(
    keep: Path | None, prefix: str, run: Callable[[Path], Coroutine[Any, Any, None]]
) -> None:
    """`run(workdir)` in `keep` (kept) or a temporary directory (removed after)."""
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mau").setLevel(logging.ERROR)
    workdir = keep or Path(tempfile.mkdtemp(prefix=prefix))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(run(workdir))
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
