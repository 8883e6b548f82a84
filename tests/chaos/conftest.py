"""The chaos run uses the integration tests' Synapse and service."""

from ..integration.conftest import stack

__all__ = ["stack"]
