"""Every feature of the service, one line each.

A feature declares itself: its commands (`@command`), operation kinds (`@operation`), event
and membership listeners (`@on_event`, `@on_membership`), timed jobs (`@job`) and
reconciliation checks (`@check`). Importing its commands module imports the feature with it;
a feature without commands is imported from `features`. `app.py` imports this module and
nothing per feature; a test checks that no module of `features/` or `commands/` is missing.
"""

from __future__ import annotations

from .commands import announcements as announcements
from .commands import audit as audit
from .commands import events as events
from .commands import export as export
from .commands import help as help
from .commands import joining as joining
from .commands import language as language
from .commands import links as links
from .commands import moderation as moderation
from .commands import polls as polls
from .commands import roles as roles
from .commands import schedule as schedule
from .commands import stats as stats
from .commands import structure as structure
from .commands import suggestions as suggestions
from .commands import unfinished as unfinished
from .commands import welcome as welcome
from .features import history as history
from .features import membership as membership
