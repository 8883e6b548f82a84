"""Schema migrations, one module per revision, never edited once shipped."""

from mautrix.util.async_db import UpgradeTable

upgrade_table = UpgradeTable(version_table_name="communities_version", database_name="communities")

from . import v01_initial  # noqa: E402,F401  (registers itself)
