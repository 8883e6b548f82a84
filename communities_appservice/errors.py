"""The failures a user can be told about, and the one place they are drawn.

    UserError                 something the person who asked can fix; replied in one line
    ├── NotFound              the community, room or user named does not exist here
    ├── Forbidden             the sender may not do this
    ├── Invalid               malformed arguments (the usage line goes with the reply)
    ├── Conflict              the state does not allow it (already an admin, not a member…)
    ├── LimitReached          a configured limit (max_admins, max_groups) would be exceeded
    ├── Pending               (operations.py) the homeserver stalled; finished and told later
    └── Undone                (operations.py) a step was refused; what was made is removed

    ConfigError               the operator's config is wrong; start-up stops with one line

Anything else that escapes a handler is a bug: the dispatcher logs it with a reference number
and tells the user only that number.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure the sender can understand and act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        # The command's usage line, when the syntax was wrong; the dispatcher fills it in.
        self.usage: str | None = None


class NotFound(UserError):
    pass


class Forbidden(UserError):
    pass


class Invalid(UserError):
    pass


class Conflict(UserError):
    pass


class LimitReached(UserError):
    pass


class ConfigError(Exception):
    """A wrong config value: `key: what is wrong`."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem
