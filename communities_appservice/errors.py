"""The failures a user can be told about, drawn in one place, and the one error boundary.

    UserError                 something the person who asked can fix; replied in one line
    ├── NotFound              the community, room or user named does not exist here
    ├── Forbidden             the sender may not do this
    ├── Invalid               malformed arguments (the usage line goes with the reply)
    ├── Conflict              the state does not allow it (already an admin, not a member…)
    ├── LimitReached          a configured limit (max_admins, max_groups) would be exceeded
    ├── Pending               the homeserver stalled; the operation is finished and told later
    └── Undone                a step was refused; what the operation made is removed again

    ConfigError               the operator's config is wrong; start-up stops with one line

A `UserError` is built like every other user-facing string: a template with `{}` slots and
its arguments (see `core.notices.say`), so that it can be translated and its arguments are
escaped in the HTML reply. Anything else that escapes a handler, a listener or a background
task is a bug: `isolated` logs it with a reference number, and the user sees only that number.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from . import language


class UserError(Exception):
    """A failure the sender can understand and act on: `template` with `{}` slots."""

    def __init__(self, template: str, *args: object) -> None:
        self.template = template
        self.args_ = args
        super().__init__(template.format(*args) if args else template)
        # The command's usage line, when the syntax was wrong; the dispatcher fills it in.
        self.usage: str | None = None

    @property
    def message(self) -> str:
        """The one line, plain, in the language being spoken."""
        template = language.translate(self.template)
        return template.format(*self.args_) if self.args_ else template


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


class Pending(UserError):
    """The homeserver is not answering; the operation will be finished later."""


class Undone(UserError):
    """A step was refused; what the operation had made is removed again."""


class ConfigError(Exception):
    """A wrong config value: `key: what is wrong`."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def reference() -> str:
    """A short random reference that a log line and a user's notice share."""
    return secrets.token_hex(4)


class Failure:
    """What `isolated` caught: `ref` is set when something failed."""

    ref: str | None = None


@contextmanager
def isolated(log: logging.Logger, what: str, *args: object) -> Iterator[Failure]:
    """The error boundary: an exception inside is logged with a reference (`what` with lazy
    `%` arguments says where) and goes no further; cancellation passes through."""
    failure = Failure()
    try:
        yield failure
    except Exception:
        failure.ref = reference()
        log.exception(what + " (ref %s)", *args, failure.ref)
