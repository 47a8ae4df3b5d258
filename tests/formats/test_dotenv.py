"""``check --dotenv``: GitLab's dotenv report of the run's outcome."""

from __future__ import annotations

from pathlib import Path

import pytest

from formats.verdict_samples import allow_image, deny_image, error_image, sample_verdict, single
from imggate.errors import UsageError
from imggate.formats import dotenv
from imggate.models import Verdict

WRITTEN = [Path("reports/gl-container-scanning-report.json"), Path("reports/imggate-report.html"),
           Path("reports/imggate-junit.xml"), Path("reports/imggate-verdict.json")]


def _parse(text: str) -> dict[str, str]:
    """Read a dotenv file as GitLab does: one KEY=VALUE per line, the value verbatim."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        assert sep, line
        out[key] = value
    return out


def test_an_allowed_image_gives_its_digest_verdict_exit_code_and_report_paths() -> None:
    iv = allow_image()
    values = _parse(dotenv.render(dotenv.variables(single(iv), WRITTEN)))
    assert iv.image is not None
    assert values["IMGGATE_DIGEST"] == str(iv.image.digest)
    assert values["IMGGATE_PINNED"] == iv.image.pinned
    assert values["IMGGATE_VERDICT"] == "allow"
    assert values["IMGGATE_EXIT_CODE"] == "0"
    assert values["IMGGATE_REPORT_GITLAB"] == "reports/gl-container-scanning-report.json"
    assert values["IMGGATE_REPORT_JUNIT"] == "reports/imggate-junit.xml"
    assert values["IMGGATE_REPORT_HTML"] == "reports/imggate-report.html"
    assert values["IMGGATE_REPORT_VERDICT"] == "reports/imggate-verdict.json"


@pytest.mark.parametrize(("verdict", "decision", "code"), [
    (single(deny_image()), "deny", "1"),
    (single(error_image()), "error", "3"),
])
def test_the_run_decision_follows_the_exit_code(verdict: Verdict, decision: str, code: str) -> None:
    values = dotenv.variables(verdict, WRITTEN)
    assert (values["IMGGATE_VERDICT"], values["IMGGATE_EXIT_CODE"]) == (decision, code)


def test_every_decided_digest_is_listed_and_the_unresolved_image_has_none() -> None:
    verdict = sample_verdict()
    values = dotenv.variables(verdict, ())
    digests = [str(iv.image.digest) for iv in verdict.images if iv.image is not None]
    assert values["IMGGATE_DIGESTS"].split(" ") == digests
    assert values["IMGGATE_DIGEST"] == digests[0]
    assert "IMGGATE_PINNED" not in values  # ambiguous for a run of several images
    nothing = dotenv.variables(single(error_image()), ())
    assert nothing["IMGGATE_DIGEST"] == "" and nothing["IMGGATE_DIGESTS"] == ""


@pytest.mark.parametrize("value", ["a\nIMGGATE_VERDICT=allow", "cr\r", "esc\x1b[31m", "nul\x00"])
def test_a_value_that_would_break_a_line_is_refused_not_written(value: str) -> None:
    with pytest.raises(UsageError, match="line break or control"):
        dotenv.render({"IMGGATE_CHECKED_ENV": value})


def test_keys_and_the_variable_count_follow_gitlab() -> None:
    with pytest.raises(UsageError, match="not a variable name"):
        dotenv.render({"IMGGATE-X": "1"})
    with pytest.raises(UsageError, match="GitLab accepts 20"):
        dotenv.render({f"V{i}": "x" for i in range(21)})


def test_write_creates_the_file_atomically(tmp_path: Path) -> None:
    target = tmp_path / "out" / "imggate.env"
    dotenv.write(target, single(allow_image()), WRITTEN)
    values = _parse(target.read_text())
    assert values["IMGGATE_VERDICT"] == "allow"
    assert target.read_text().endswith("\n")
    assert [p.name for p in target.parent.iterdir()] == ["imggate.env"]  # no temp file left
