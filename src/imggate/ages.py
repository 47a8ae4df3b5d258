"""Ages written for people (``3d 4h``), by the rules' checks and the reports alike.

Apart from :mod:`imggate.policy.evidence` so that a report writer can say how old a
scanner report is without importing the rules' models (pydantic): the forked child
that writes a check's HTML report (:mod:`imggate.formats.written_ahead`) has not.
"""

from __future__ import annotations

from datetime import timedelta


def format_age(age: timedelta) -> str:
    """``3d 4h``, ``5h 12m``, ``40m``: an age for people."""
    seconds = max(0, int(age.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"
