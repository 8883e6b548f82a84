"""Tables `stat_*`: the engagement stats, counts per community, room, day and kind.

Nothing here says who wrote what: active members and readers are keyed hashes (HMAC-SHA256
with a key made once per installation, `stat_key`), good for counting distinct people and
nothing else; a post is its event id, time and reader count, never its content.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from mautrix.util.async_db import Database

from .member import _rowcount
from .sql import marks

Count = tuple[str, str, int, str]  # space, room, day, kind


@dataclass
class RoomCount:
    room_id: str
    kind: str
    n: int


@dataclass
class Post:
    event_id: str
    ts: int
    readers: int


class StatsTable:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._key: bytes | None = None
        self.pruned_day = 0  # the last day `prune` ran (once a day is enough)

    async def who(self, user_id: str) -> str:
        """The keyed hash that stands for `user_id` in the stats."""
        if self._key is None:
            secret = await self.db.fetchval("SELECT secret FROM stat_key WHERE id=1")
            if secret is None:
                await self.db.execute(
                    "INSERT INTO stat_key (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                    secrets.token_hex(32),
                )
                secret = await self.db.fetchval("SELECT secret FROM stat_key WHERE id=1")
            self._key = bytes.fromhex(str(secret))
        return hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()[:32]

    async def add(self, counts: dict[Count, int]) -> None:
        if counts:
            await self.db.executemany(
                "INSERT INTO stat_day (space_id, room_id, day, kind, n) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (space_id, day, room_id, kind)"
                " DO UPDATE SET n = stat_day.n + excluded.n",
                [(*key, n) for key, n in counts.items()],
            )

    async def active(self, rows: Iterable[tuple[str, int, str]]) -> None:
        """(space, day, who) rows: these members were active on these days."""
        batch = list(rows)
        if batch:
            await self.db.executemany(
                "INSERT INTO stat_active (space_id, day, who) VALUES ($1, $2, $3)"
                " ON CONFLICT (space_id, day, who) DO NOTHING",
                batch,
            )

    async def post(self, event_id: str, room_id: str, space_id: str, ts: int) -> None:
        await self.db.execute(
            "INSERT INTO stat_post (event_id, room_id, space_id, ts) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (event_id) DO NOTHING",
            event_id,
            room_id,
            space_id,
            ts,
        )

    async def read(self, room_id: str, receipts: list[tuple[str, str]]) -> int:
        """Receipts (who, event id) in an announcement room: each counts its reader once
        for every post of the room up to the one it is on that they had not reached yet.
        Returns how many (post, reader) counts were added. A few queries for any number."""
        event_ids = sorted({e for _, e in receipts})
        rows = await self.db.fetch(
            f"SELECT event_id, seq FROM stat_post WHERE room_id=$1 AND event_id IN"
            f" ({marks(len(event_ids), 2)})",
            room_id,
            *event_ids,
        )
        seq_of = {str(r["event_id"]): int(r["seq"]) for r in rows}
        reached: dict[str, int] = {}  # who -> the furthest post of these receipts
        for who, event_id in receipts:
            if event_id in seq_of:  # else not a post (a reaction, an edit)
                reached[who] = max(reached.get(who, 0), seq_of[event_id])
        if not reached:
            return 0
        whos = sorted(reached)
        rows = await self.db.fetch(
            f"SELECT who, upto FROM stat_reader WHERE room_id=$1 AND who IN"
            f" ({marks(len(whos), 2)})",
            room_id,
            *whos,
        )
        before = {str(r["who"]): int(r["upto"]) for r in rows}
        moved = {
            w: (before.get(w, 0), upto) for w, upto in reached.items() if upto > before.get(w, 0)
        }
        if not moved:
            return 0
        await self.db.executemany(
            "INSERT INTO stat_reader (room_id, who, upto) VALUES ($1, $2, $3)"
            " ON CONFLICT (room_id, who) DO UPDATE SET upto=excluded.upto",
            [(room_id, w, upto) for w, (_, upto) in moved.items()],
        )
        added = 0
        for (low, high), n in Counter(moved.values()).items():
            status = await self.db.execute(
                "UPDATE stat_post SET readers = readers + $4"
                " WHERE room_id=$1 AND seq > $2 AND seq <= $3",
                room_id,
                low,
                high,
                n,
            )
            added += _rowcount(status) * n
        return added

    async def per_room(self, space_id: str, since_day: int) -> list[RoomCount]:
        rows = await self.db.fetch(
            "SELECT room_id, kind, SUM(n) AS n FROM stat_day WHERE space_id=$1 AND day >= $2"
            " GROUP BY room_id, kind ORDER BY room_id, kind",
            space_id,
            since_day,
        )
        return [RoomCount(str(r["room_id"]), str(r["kind"]), int(r["n"])) for r in rows]

    async def per_day(
        self, space_id: str, since_day: int, kinds: list[str]
    ) -> dict[str, dict[int, int]]:
        """Room id -> day -> the counts of `kinds` added up, from `since_day` on (one query)."""
        rows = await self.db.fetch(
            "SELECT room_id, day, SUM(n) AS n FROM stat_day WHERE space_id=$1 AND day >= $2"
            f" AND kind IN ({marks(len(kinds), 3)}) GROUP BY room_id, day",
            space_id,
            since_day,
            *kinds,
        )
        found: dict[str, dict[int, int]] = {}
        for r in rows:
            found.setdefault(str(r["room_id"]), {})[int(r["day"])] = int(r["n"])
        return found

    async def active_members(self, space_id: str, since_day: int) -> int:
        value = await self.db.fetchval(
            "SELECT COUNT(DISTINCT who) FROM stat_active WHERE space_id=$1 AND day >= $2",
            space_id,
            since_day,
        )
        return int(value or 0)

    async def posts(self, space_id: str, since_ts: int, limit: int) -> list[Post]:
        """The community's latest announcement posts since `since_ts`, newest first."""
        rows = await self.db.fetch(
            "SELECT event_id, ts, readers FROM stat_post WHERE space_id=$1 AND ts >= $2"
            " ORDER BY seq DESC LIMIT $3",
            space_id,
            since_ts,
            limit,
        )
        return [Post(str(r["event_id"]), int(r["ts"]), int(r["readers"])) for r in rows]

    async def votes(self, space_id: str, since_ts: int) -> dict[str, int]:
        """Poll votes (responses, changed ones included) since `since_ts`, by room."""
        rows = await self.db.fetch(
            "SELECT v.room_id, COUNT(*) AS n FROM poll_vote v JOIN poll p ON p.id = v.poll_id"
            " WHERE p.space_id=$1 AND v.ts >= $2 GROUP BY v.room_id",
            space_id,
            since_ts,
        )
        return {str(r["room_id"]): int(r["n"]) for r in rows}

    async def rsvps(self, space_id: str, since_ts: int) -> int:
        """Members' current answers to the community's events, given since `since_ts`."""
        value = await self.db.fetchval(
            "SELECT COUNT(*) FROM event_rsvp r JOIN community_event e ON e.id = r.event_id"
            " WHERE e.space_id=$1 AND r.ts >= $2",
            space_id,
            since_ts,
        )
        return int(value or 0)

    async def prune(self, before_day: int) -> int:
        """Forget everything from before `before_day` (the retention setting)."""
        before_ts = before_day * 24 * 3600 * 1000
        total = 0
        for query, value in (
            ("DELETE FROM stat_day WHERE day < $1", before_day),
            ("DELETE FROM stat_active WHERE day < $1", before_day),
            ("DELETE FROM stat_post WHERE ts < $1", before_ts),
        ):
            total += _rowcount(await self.db.execute(query, value))
        # A reader who has not reached any post still kept is of no more use.
        status = await self.db.execute(
            "DELETE FROM stat_reader WHERE upto < (SELECT COALESCE(MIN(p.seq), 0) FROM stat_post p"
            " WHERE p.room_id = stat_reader.room_id)"
        )
        total += _rowcount(status)
        return total
