"""What never reaches the logs: request bodies and query parameters carrying user text.

Three libraries log what passes through them at DEBUG: mautrix every request and response
body, aiosqlite every SQL statement with its parameters. Those carry community names,
descriptions and whatever a decrypted command said, so their DEBUG records are dropped at
the logger, whatever level or handlers the operator's `logging` config sets. Tokens never
appear in them (they travel in headers); decrypted text is never logged by the service itself.
"""

from __future__ import annotations

import logging

CHATTY = ("communities.gateway.http", "aiosqlite", "mau.db", "communities.crypto.db")


class DropDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


def silence_bodies() -> None:
    """Idempotent: each chatty logger gets the filter once."""
    for name in CHATTY:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropDebug) for f in logger.filters):
            logger.addFilter(DropDebug())
