"""Revision 17: each community's language."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Community language")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v17(conn: Connection, scheme: Scheme) -> None:
    # A code of language.LANGUAGES; '' means the service's default (communities.default_language).
    await conn.execute("ALTER TABLE community ADD COLUMN language TEXT NOT NULL DEFAULT ''")
