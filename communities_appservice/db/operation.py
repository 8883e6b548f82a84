"""Tables `operation` and `operation_step`: multi-step work, recorded before it starts.

A step's result is stored as JSON the moment the step is done, so a resumed operation gets the
same answers back (the same room ids) instead of doing the work again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mautrix.types import EventID, RoomID, UserID
from mautrix.util.async_db import Database

from .member import _rowcount

_COLUMNS = (
    "id, kind, space_id, actor, params, room_id, event_id, thread_root, state, attempts,"
    " outcome, created_at, updated_at"
)


@dataclass
class Operation:
    id: int
    kind: str
    space_id: RoomID  # '' until the operation has made or found its community's space
    actor: UserID
    params: dict[str, Any]
    room_id: RoomID  # where it was asked for ('' when nobody asked: a repair)
    event_id: EventID
    thread_root: EventID
    state: str  # running | undoing | done | undone | failed
    attempts: int
    outcome: str
    created_at: int
    updated_at: int

    @classmethod
    def from_row(cls, row: Any) -> Operation:
        values = dict(row)
        values["params"] = json.loads(values["params"])
        return cls(**values)


class OperationTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        kind: str,
        space_id: RoomID | str,
        actor: UserID,
        params: dict[str, Any],
        origin: tuple[str, str, str],
        ts: int,
    ) -> Operation:
        room_id, event_id, thread_root = origin
        op_id = await self.db.fetchval(
            "INSERT INTO operation (kind, space_id, actor, params, room_id, event_id,"
            " thread_root, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)"
            " RETURNING id",
            kind,
            space_id,
            actor,
            json.dumps(params, sort_keys=True),
            room_id,
            event_id,
            thread_root,
            ts,
        )
        op = await self.get(int(op_id))
        assert op is not None
        return op

    async def get(self, op_id: int) -> Operation | None:
        row = await self.db.fetchrow(f"SELECT {_COLUMNS} FROM operation WHERE id=$1", op_id)
        return Operation.from_row(row) if row else None

    async def for_event(self, event_id: EventID) -> Operation | None:
        """The operation a command started (its event id is the operation's origin)."""
        row = await self.db.fetchrow(
            f"SELECT {_COLUMNS} FROM operation WHERE event_id=$1 ORDER BY id LIMIT 1", event_id
        )
        return Operation.from_row(row) if row else None

    async def running(self) -> list[Operation]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM operation WHERE state IN ('running', 'undoing') ORDER BY id"
        )
        return [Operation.from_row(r) for r in rows]

    async def unfinished_of(self, space_id: RoomID) -> list[Operation]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM operation WHERE state IN ('running', 'undoing')"
            " AND space_id=$1 ORDER BY id",
            space_id,
        )
        return [Operation.from_row(r) for r in rows]

    async def running_in(self, space_id: RoomID) -> int:
        value = await self.db.fetchval(
            "SELECT COUNT(*) FROM operation WHERE state IN ('running', 'undoing') AND space_id=$1",
            space_id,
        )
        return int(value or 0)

    async def set_space(self, op_id: int, space_id: RoomID) -> None:
        await self.db.execute("UPDATE operation SET space_id=$2 WHERE id=$1", op_id, space_id)

    async def attempt(self, op_id: int, ts: int) -> None:
        await self.db.execute(
            "UPDATE operation SET attempts=attempts+1, updated_at=$2 WHERE id=$1", op_id, ts
        )

    async def finish(self, op_id: int, state: str, outcome: str, ts: int) -> None:
        await self.db.execute(
            "UPDATE operation SET state=$2, outcome=$3, updated_at=$4 WHERE id=$1",
            op_id,
            state,
            outcome,
            ts,
        )

    async def steps(self, op_id: int) -> dict[str, Any]:
        rows = await self.db.fetch("SELECT step, result FROM operation_step WHERE op_id=$1", op_id)
        return {r["step"]: json.loads(r["result"]) for r in rows}

    async def save_step(self, op_id: int, step: str, result: Any, ts: int) -> None:
        await self.db.execute(
            "INSERT INTO operation_step (op_id, step, result, done_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (op_id, step) DO NOTHING",
            op_id,
            step,
            json.dumps(result),
            ts,
        )

    async def prune(self, before: int) -> int:
        """Forget operations that ended before `before` (ms); returns how many."""
        status = await self.db.execute(
            "DELETE FROM operation WHERE state NOT IN ('running', 'undoing') AND updated_at < $1",
            before,
        )
        return _rowcount(status)
