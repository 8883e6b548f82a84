"""`!community …` commands: the framework and one module per command group."""

from . import admins, audit, general, groups, joining, links, moderation, suggestions, welcome  # noqa: F401  (register their commands)
from .framework import REGISTRY, Dispatcher

__all__ = ["REGISTRY", "Dispatcher"]
