"""Schema migrations, one module per revision, never edited once shipped."""

from .table import upgrade_table

# Each revision registers itself with the table on import, in order.
from . import (  # isort: skip
    v01_initial,
    v02_invite_links,
    v03_join_requests,
    v04_welcome,
    v05_suggestions,
    v06_operations,
    v07_problems,
    v08_bans,
    v09_retries,
    v10_parked,
    v11_inbox_rooms,
    v12_schedule,
    v13_shared_history,
    v14_polls,
    v15_events,
    v16_stats,
    v17_language,
)

__all__ = ["upgrade_table"]
