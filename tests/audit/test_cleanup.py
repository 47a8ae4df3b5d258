"""GitLab's cleanup-policy steps, each on a small hand-worked example."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from imggate.audit.cleanup import CleanupPolicy, TagDate, plan
from imggate.errors import UsageError

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _tags(*spec: tuple[str, int | None]) -> list[TagDate]:
    """``(tag, age in days)``; ``None``: no manifest."""
    return [TagDate(t, NOW - timedelta(days=d) if d is not None else None, d is not None)
            for t, d in spec]


def _kept(tags: list[TagDate], policy: CleanupPolicy) -> set[str]:
    return {t for t, o in plan(tags, policy, NOW).items() if o.kept}


TAGS = _tags(("v1", 100), ("v2", 60), ("v3", 20), ("v4", 5), ("latest", 200), ("main", 300),
             ("v0", None))


def test_without_a_removal_pattern_nothing_is_removed() -> None:
    assert _kept(TAGS, CleanupPolicy(keep_n=1, older_than=timedelta(days=1))) == \
        {t.tag for t in TAGS}


def test_latest_and_non_matching_tags_are_kept() -> None:
    out = plan(TAGS, CleanupPolicy(name_regex="v.*|latest|main"), NOW)
    assert out["latest"].kept and out["latest"].reason == "latest is never removed"
    assert not out["main"].kept  # matched the pattern, nothing else keeps it
    out = plan(TAGS, CleanupPolicy(name_regex="v.*"), NOW)
    assert out["main"].kept and out["main"].reason == "does not match the removal pattern"


def test_the_pattern_matches_the_whole_tag_name() -> None:
    assert "v1" in _kept(TAGS, CleanupPolicy(name_regex="v"))


def test_a_tag_without_a_manifest_is_not_removed() -> None:
    assert plan(TAGS, CleanupPolicy(name_regex=".*"), NOW)["v0"].reason == "no manifest"


def test_keep_n_keeps_the_most_recent() -> None:
    kept = _kept(TAGS, CleanupPolicy(name_regex="v[0-9]", keep_n=2))
    assert {"v3", "v4"} <= kept and not {"v1", "v2"} & kept


def test_older_than_keeps_what_is_newer() -> None:
    kept = _kept(TAGS, CleanupPolicy(name_regex="v[0-9]", older_than=timedelta(days=30)))
    assert {"v3", "v4"} <= kept and not {"v1", "v2"} & kept
    kept = _kept(TAGS, CleanupPolicy(name_regex="v[0-9]", older_than=timedelta(days=90)))
    assert "v2" in kept and "v1" not in kept


def test_the_keep_pattern_wins_over_removal() -> None:
    out = plan(TAGS, CleanupPolicy(name_regex="v[0-9]", name_regex_keep="v1"), NOW)
    assert out["v1"].kept and out["v1"].reason == "matches the keep pattern"
    assert not out["v2"].kept


def test_steps_combine_in_gitlabs_order() -> None:
    # keep_n is applied before older_than: the 1 newest (v4) is kept by count, v3 by age,
    # v1 by the keep pattern; only v2 is left to remove.
    out = plan(TAGS, CleanupPolicy(name_regex="v[0-9]", keep_n=1, older_than=timedelta(days=30),
                                   name_regex_keep="v1"), NOW)
    assert out["v4"].reason == "among the 1 most recent"
    assert out["v3"].reason == "newer than the age limit"
    assert [t for t, o in out.items() if not o.kept] == ["v2"]


def test_a_bad_pattern_names_its_flag() -> None:
    with pytest.raises(UsageError, match="--keep-regex"):
        plan(TAGS, CleanupPolicy(name_regex=".*", name_regex_keep="("), NOW)
