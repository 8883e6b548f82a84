"""The migration table every revision registers with (mautrix `UpgradeTable`)."""

from __future__ import annotations

from mautrix.util.async_db import UpgradeTable

upgrade_table = UpgradeTable(version_table_name="communities_version", database_name="communities")
