"""Shared machinery: lookups and audit, the operation engine, listeners, notices, reconciliation."""
