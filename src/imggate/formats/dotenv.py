"""``check --dotenv FILE``: the run's outcome as a GitLab dotenv report.

GitLab reads ``artifacts: reports: dotenv`` files as ``KEY=VALUE`` lines and
hands the variables to later jobs. Its rules: keys of letters, digits and
``_``; one line per variable (no multi-line values); no quoting of its own
(quotes would become part of the value); at most 20 variables and 5 KB by
default. Every value written here is ours (digests, decisions, paths) except
the reference, which a user typed: anything that could break a line or is
not printable is refused rather than written half.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from imggate.errors import UsageError
from imggate.formats.verdict_json import write_text
from imggate.models import Decision, Verdict

#: GitLab's default limit of variables in one dotenv report.
MAX_VARIABLES = 20

_KEY = re.compile(r"[A-Z][A-Z0-9_]*")
_UNSAFE_VALUE = re.compile(r"[\x00-\x1f\x7f]")

#: Report file name (as written by ``check``) -> dotenv variable.
REPORT_VARIABLES: Mapping[str, str] = {
    "gl-container-scanning-report.json": "IMGGATE_REPORT_GITLAB",
    "imggate-report.html": "IMGGATE_REPORT_HTML",
    "imggate-junit.xml": "IMGGATE_REPORT_JUNIT",
    "imggate-verdict.json": "IMGGATE_REPORT_VERDICT",
}


def _run_decision(verdict: Verdict) -> str:
    """The run's decision, in the same order as its exit code."""
    code = verdict.exit_code
    if code == 0:
        return Decision.ALLOW.value
    if code == 1:
        return Decision.DENY.value
    return Decision.ERROR.value


def variables(verdict: Verdict, written: Sequence[Path]) -> dict[str, str]:
    """The dotenv variables for ``verdict`` and the report files ``written``.

    ``IMGGATE_DIGEST`` is the first image's digest (the usual job checks one
    image); ``IMGGATE_DIGESTS`` lists every decided image's digest, space
    separated, in the order given; an image that could not be resolved has none.
    ``IMGGATE_PINNED`` (one image only) is the checked ``name@sha256:…`` for a
    deploy job. The names avoid the CI template's own inputs (``IMGGATE_IMAGE``,
    ``IMGGATE_ENV``): GitLab gives dotenv variables precedence over a job's
    ``variables:``, so reusing them would rewire a later imggate job.
    """
    digests = [iv.image.digest for iv in verdict.images if iv.image is not None]
    out: dict[str, str] = {
        "IMGGATE_DIGEST": str(digests[0]) if digests else "",
        "IMGGATE_DIGESTS": " ".join(str(d) for d in digests),
        "IMGGATE_VERDICT": _run_decision(verdict),
        "IMGGATE_EXIT_CODE": str(verdict.exit_code),
        "IMGGATE_CHECKED_ENV": verdict.env,
    }
    if len(verdict.images) == 1 and verdict.images[0].image is not None:
        out["IMGGATE_PINNED"] = verdict.images[0].image.pinned
    for path in written:
        name = REPORT_VARIABLES.get(path.name)
        if name:
            out[name] = str(path)
    return out


def render(values: Mapping[str, str]) -> str:
    """``KEY=VALUE`` lines in GitLab's dotenv rules, or a :class:`UsageError` saying which."""
    if len(values) > MAX_VARIABLES:
        raise UsageError(f"--dotenv: {len(values)} variables, GitLab accepts {MAX_VARIABLES}")
    lines = []
    for key, value in values.items():
        if not _KEY.fullmatch(key):
            raise UsageError(f"--dotenv: {key!r} is not a variable name GitLab accepts")
        if _UNSAFE_VALUE.search(value):
            raise UsageError(f"--dotenv: the value of {key} holds a line break or control "
                             "character, which a dotenv report cannot carry")
        lines.append(f"{key}={value}\n")
    return "".join(lines)


def write(path: Path, verdict: Verdict, written: Sequence[Path]) -> Path:
    """Write the dotenv report for ``verdict`` to ``path``."""
    write_text(path, render(variables(verdict, written)))
    return path
