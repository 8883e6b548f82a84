"""Command line: run the service, or generate its registration (`-g`), like mautrix bridges."""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.config
import signal
import sys
from pathlib import Path

from .app import App
from .config import Config, generate_registration, load
from .errors import ConfigError

log = logging.getLogger("communities")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="communities-appservice",
        description="WhatsApp-style Communities for any Matrix homeserver.",
    )
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path("config.yaml"),
        help="the config file (default: config.yaml)",
    )
    parser.add_argument(
        "-g",
        "--generate-registration",
        action="store_true",
        help="fill generated tokens into the config and write the registration",
    )
    parser.add_argument(
        "-r",
        "--registration",
        type=Path,
        default=Path("registration.yaml"),
        help="where -g writes the registration (default: registration.yaml)",
    )
    return parser.parse_args(argv)


def setup_logging(config: Config) -> None:
    if config.logging:
        logging.config.dictConfig(dict(config.logging))
        return
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("mau", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def run(config: Config) -> None:
    app = App(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.ensure_future(app.start())
    stopping = asyncio.ensure_future(stop.wait())
    failing = asyncio.ensure_future(app.failed.wait())
    try:
        await asyncio.wait([starting, stopping, failing], return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a failed start raises here
            await asyncio.wait([stopping, failing], return_when=asyncio.FIRST_COMPLETED)
    finally:
        log.info("stopping")
        for waiting in (starting, stopping, failing):
            waiting.cancel()
        await app.stop()
    if app.failed.is_set():
        raise SystemExit(1)  # lost the lease: let the supervisor start it again, as a standby


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.generate_registration:
            config = generate_registration(args.config, args.registration)
            print(
                f"Wrote {args.registration}; register it with the homeserver "
                "(app_service_config_files) and restart the homeserver."
            )
            return 0
        config = load(args.config)
        config.check_tokens()
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    setup_logging(config)
    asyncio.run(run(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
