"""The community's own data, as an archive its admins can take elsewhere.

`export` builds a ZIP (format in docs/export.md): `manifest.json`, one JSON file per record
kind (the rows of `db/export.py`), `polls.json` with each poll's tally, one `.ics` per
event under `events/`, and `stats.csv` (the daily counts). Records only, never message
content. `read` parses an archive back: the round trip the tests check, and what a tool
importing the archive elsewhere would do.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime
from typing import Any

from ..core.service import Service
from ..db import now_ms
from ..db.community import Community
from ..db.event import EventState
from ..db.export import QUERIES
from ..rules import events as event_rules
from ..rules import polls as poll_rules
from ..rules.model import Role
from ..rules.when import zone

FORMAT = "communities-appservice export"
VERSION = 1
STATS_COLUMNS = ["day", "date", "room_id", "kind", "n"]


async def build(svc: Service, space: Community) -> tuple[bytes, dict[str, int]]:
    """The archive and how many records of each kind it holds."""
    records = await svc.db.export.records(space.space_id)
    counts = {kind: len(rows) for kind, rows in records.items()}
    counts["groups"] = sum(1 for r in records["rooms"] if r["role"] == Role.GROUP)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "community": space.space_id,
        "name": space.name,
        "server": svc.server_name,
        "exported_at": now_ms(),
        "records": counts,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", _json(manifest))
        for kind, rows in records.items():
            if kind != "stats":
                archive.writestr(f"{kind}.json", _json(rows))
        archive.writestr("tallies.json", _json(_tallies(records)))
        for e in records["events"]:
            archive.writestr(f"events/event-{e['id']}.ics", _ics(svc, e))
        archive.writestr("stats.csv", _csv(records["stats"]))
    return buffer.getvalue(), counts


def file_name(space: Community, now: int | None = None) -> str:
    """The archive's name: the community's name (what a file name cannot hold taken out)
    and the day."""
    day = datetime.fromtimestamp((now or now_ms()) / 1000, UTC).date().isoformat()
    kept = "".join(c if c.isprintable() and c not in '/\\:*?"<>|' else "-" for c in space.name)
    return f"{kept.strip(' .-') or 'community'}-{day}"


def read(data: bytes) -> dict[str, Any]:
    """An archive back into its parts: `manifest`, each record kind's rows, `tallies`,
    `ics` (file name -> text) and `stats` (rows, numbers as numbers). ValueError when it is
    not such an archive."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        manifest = json.loads(archive.read("manifest.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"not an export archive: {e}") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError("not an export archive of this format and version")
    parts: dict[str, Any] = {"manifest": manifest}
    for kind in QUERIES:
        if kind != "stats":
            parts[kind] = json.loads(archive.read(f"{kind}.json"))
    parts["tallies"] = json.loads(archive.read("tallies.json"))
    parts["ics"] = {
        name: archive.read(name).decode()
        for name in archive.namelist()
        if name.startswith("events/") and name.endswith(".ics")
    }
    rows = list(csv.DictReader(io.StringIO(archive.read("stats.csv").decode())))
    parts["stats"] = [
        {"day": int(r["day"]), "room_id": r["room_id"], "kind": r["kind"], "n": int(r["n"])}
        for r in rows
    ]
    return parts


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True)


def _tallies(records: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each poll's result as its room shows it: votes per option, voters, spoiled."""
    votes: dict[int, list[poll_rules.Vote]] = {}
    for v in records["poll_votes"]:
        answers = None if v["answers"] is None else tuple(json.loads(v["answers"]))
        vote = poll_rules.Vote(v["sender"], int(v["ts"]), v["event_id"], answers)
        votes.setdefault(int(v["poll_id"]), []).append(vote)
    found = []
    for p in records["polls"]:
        options = json.loads(p["options"])
        ids = poll_rules.answer_ids(len(options))
        end = int(p["ended_at"]) or None
        tally = poll_rules.tally(ids, int(p["max_selections"]), votes.get(int(p["id"]), []), end)
        found.append(
            {
                "poll_id": p["id"],
                "question": p["question"],
                "state": p["state"],
                "options": [
                    {"option": text, "votes": tally.counts[i]}
                    for i, text in zip(ids, options, strict=True)
                ],
                "voters": tally.voters,
                "spoiled": tally.spoiled,
            }
        )
    return found


def _ics(svc: Service, e: dict[str, Any]) -> bytes:
    tz = zone(e["zone"])
    return event_rules.ics(
        f"event-{e['id']}@{svc.server_name}",  # the uid of the card's own .ics: one event
        e["title"],
        datetime.fromtimestamp(int(e["starts_at"]) / 1000, tz),
        datetime.fromtimestamp(int(e["ends_at"]) / 1000, tz),
        e["place"],
        "",
        cancelled=e["state"] == EventState.CANCELLED,
        stamp=datetime.fromtimestamp(int(e["created_at"]) / 1000, UTC),
    )


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(STATS_COLUMNS)
    for r in rows:
        date = datetime.fromtimestamp(int(r["day"]) * 86400, UTC).date().isoformat()
        writer.writerow([r["day"], date, r["room_id"], r["kind"], r["n"]])
    return out.getvalue()
