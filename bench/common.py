"""What every benchmark sets up the same way: a local Synapse with the service's registration,
and a work directory (temporary, or kept with --keep) to run in."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
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


async def service_process(
    config: Config, config_path: Path, log: Path
) -> asyncio.subprocess.Process:
    """The service as a process of its own (its log in `log`), once it answers `ready`."""
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "communities_appservice", "-c", str(config_path),
        stdout=asyncio.subprocess.DEVNULL, stderr=log.open("wb"),
    )  # fmt: skip
    ready = f"http://127.0.0.1:{config.appservice.port}/_matrix/mau/ready"
    async with aiohttp.ClientSession() as http:
        while service.returncode is None:
            try:
                async with http.get(ready) as response:
                    if response.status == 200:
                        return service
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the service exited ({service.returncode}): see {log}")
