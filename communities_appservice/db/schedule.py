"""Table `scheduled_job`: timed jobs (scheduled posts, reminders), each with its next due time.

A job is claimed when it fires: in one database transaction with whatever the firing
records (the post it starts), its `due_at` moves to the next occurrence (recurring) or it
ends (`done`). So a crash before that commit fires it again at start-up, and one after it
finds the post recorded and resumes that instead: once, either way.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Database

from .member import _rowcount

_COLUMNS = (
    "id, space_id, kind, author, params, due_at, anchor, zone, every, fired, state, created_at"
)


class JobState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    CANCELLED = "cancelled"


@dataclass
class Job:
    id: int
    space_id: RoomID
    kind: str
    author: UserID
    params: dict[str, Any]
    due_at: int  # UTC ms of the next occurrence
    anchor: str  # the first occurrence, wall-clock ISO time in `zone` (recurring jobs)
    zone: str
    every: str  # '' (once) | day | week | month
    fired: int  # occurrences fired so far
    state: str
    created_at: int

    @classmethod
    def from_row(cls, row: Any) -> Job:
        values = dict(row)
        values["params"] = json.loads(values["params"])
        return cls(**values)


class ScheduleTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, job: Job) -> int:
        job_id = await self.db.fetchval(
            "INSERT INTO scheduled_job (space_id, kind, author, params, due_at, anchor, zone,"
            " every, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            job.space_id,
            job.kind,
            job.author,
            json.dumps(job.params, sort_keys=True),
            job.due_at,
            job.anchor,
            job.zone,
            job.every,
            job.created_at,
        )
        return int(job_id)

    async def get(self, job_id: int) -> Job | None:
        row = await self.db.fetchrow(f"SELECT {_COLUMNS} FROM scheduled_job WHERE id=$1", job_id)
        return Job.from_row(row) if row else None

    async def pending(self, space_id: RoomID, kind: str | None = None) -> list[Job]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM scheduled_job WHERE space_id=$1 AND state='pending'"
            " ORDER BY due_at, id",
            space_id,
        )
        jobs = [Job.from_row(r) for r in rows]
        return [j for j in jobs if kind is None or j.kind == kind]

    async def next_due(self) -> int | None:
        """The earliest due time of any pending job (UTC ms)."""
        value = await self.db.fetchval(
            "SELECT MIN(due_at) FROM scheduled_job WHERE state='pending'"
        )
        return None if value is None else int(value)

    async def due(self, now: int, limit: int = 100) -> list[Job]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM scheduled_job WHERE state='pending' AND due_at <= $1"
            " ORDER BY due_at, id LIMIT $2",
            now,
            limit,
        )
        return [Job.from_row(r) for r in rows]

    async def advance(self, job: Job, next_due: int | None) -> bool:
        """Claim the occurrence `job.due_at`: move to `next_due`, or end the job. False (and
        no change) when someone else claimed it or it was cancelled."""
        if next_due is None:
            status = await self.db.execute(
                "UPDATE scheduled_job SET state='done', fired=fired+1"
                " WHERE id=$1 AND due_at=$2 AND state='pending'",
                job.id,
                job.due_at,
            )
        else:
            status = await self.db.execute(
                "UPDATE scheduled_job SET due_at=$3, fired=fired+1"
                " WHERE id=$1 AND due_at=$2 AND state='pending'",
                job.id,
                job.due_at,
                next_due,
            )
        return _rowcount(status) > 0

    async def cancel(self, job_id: int) -> bool:
        status = await self.db.execute(
            "UPDATE scheduled_job SET state='cancelled' WHERE id=$1 AND state='pending'", job_id
        )
        return _rowcount(status) > 0

    async def cancel_all(self, space_id: RoomID) -> int:
        status = await self.db.execute(
            "UPDATE scheduled_job SET state='cancelled' WHERE space_id=$1 AND state='pending'",
            space_id,
        )
        return _rowcount(status)
