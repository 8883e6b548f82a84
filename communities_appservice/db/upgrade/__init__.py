"""Schema migrations, one module per revision, never edited once shipped."""

from mautrix.util.async_db import UpgradeTable

upgrade_table = UpgradeTable(version_table_name="communities_version", database_name="communities")

# Each revision registers itself on import, in order.
from . import (  # noqa: E402,F401
    v01_initial,
    v02_invite_links,
    v03_join_requests,
    v04_welcome,
    v05_suggestions,
    v06_operations,
    v07_problems,
)
