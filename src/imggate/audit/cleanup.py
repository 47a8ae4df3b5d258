"""Which tags a GitLab container-registry cleanup policy would keep.

GitLab documents its cleanup policy as these steps, per repository:

1. collect the repository's tags;
2. exclude the tag named ``latest``;
3. keep only the tags whose name matches ``name_regex`` (tags to remove);
4. exclude tags that have no manifest;
5. order the rest by creation date;
6. exclude the ``keep_n`` most recent;
7. exclude the tags more recent than ``older_than``;
8. exclude the tags matching ``name_regex_keep`` (tags to keep);
9. delete what remains.

Every tag not deleted is kept. GitLab's regular expressions are RE2 and must
match the whole tag name; Python's ``re.fullmatch`` agrees on the syntax a
cleanup policy uses (alternation, classes, repetition).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from msgspec import Struct

from imggate.errors import UsageError
from imggate.userregex import why_not_compiled


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class CleanupPolicy(Struct, frozen=True):
    """GitLab's cleanup policy settings (``None``: the setting is off)."""

    name_regex: str | None = None
    name_regex_keep: str | None = None
    keep_n: int | None = None
    older_than: timedelta | None = None

    @property
    def active(self) -> bool:
        """Whether any setting was given: without one, nothing is ever removed."""
        return self.name_regex is not None


class TagDate(Struct, frozen=True):
    """A tag and when its image was created (``None``: no manifest or no date)."""

    tag: str
    created: datetime | None
    has_manifest: bool = True


class CleanupOutcome(Struct, frozen=True):
    """What the cleanup policy does with one tag, and the step that decided it."""

    kept: bool
    reason: str


def compile_regex(pattern: str | None, flag: str) -> re.Pattern[str] | None:
    """Compile a tag regular expression, or name the flag it came from."""
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as e:
        raise UsageError(f"{flag} {pattern!r}: not a regular expression "
                         f"({why_not_compiled(e)})") from None


def plan(tags: Sequence[TagDate], policy: CleanupPolicy,
         now: datetime) -> dict[str, CleanupOutcome]:
    """Apply ``policy`` to ``tags`` as GitLab would; every tag gets an outcome."""
    out: dict[str, CleanupOutcome] = {}
    remove = compile_regex(policy.name_regex, "--tags")
    keep = compile_regex(policy.name_regex_keep, "--keep-regex")
    candidates: list[TagDate] = []
    for t in tags:
        if not policy.active or remove is None:
            out[t.tag] = CleanupOutcome(True, "no cleanup policy")
        elif t.tag == "latest":
            out[t.tag] = CleanupOutcome(True, "latest is never removed")
        elif not remove.fullmatch(t.tag):
            out[t.tag] = CleanupOutcome(True, "does not match the removal pattern")
        elif not t.has_manifest:
            out[t.tag] = CleanupOutcome(True, "no manifest")
        else:
            candidates.append(t)
    # Newest first; an image without a creation date sorts as the oldest (GitLab orders by
    # the date it has, and an undated image is the least recent it can know of).
    floor = datetime.min.replace(tzinfo=now.tzinfo)
    candidates.sort(key=lambda t: (t.created or floor, t.tag), reverse=True)
    if policy.keep_n:
        for t in candidates[:policy.keep_n]:
            out[t.tag] = CleanupOutcome(True, f"among the {policy.keep_n} most recent")
        candidates = candidates[policy.keep_n:]
    for t in candidates:
        if (policy.older_than is not None and t.created is not None
                and now - t.created < policy.older_than):
            out[t.tag] = CleanupOutcome(True, "newer than the age limit")
        elif keep is not None and keep.fullmatch(t.tag):
            out[t.tag] = CleanupOutcome(True, "matches the keep pattern")
        else:
            out[t.tag] = CleanupOutcome(False, "removed by the cleanup policy")
    return out
