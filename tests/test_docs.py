"""The README and docs/ cannot drift from the code: links resolve, imggate flags exist.

docs/rules-reference.md is generated (tests/policy/test_reference.py); the
prose pages are checked here: every relative link names a file that exists,
and every ``--flag`` written after ``imggate COMMAND`` on one line of a code
span or block is a flag of that command (a renamed or removed flag fails
this test, naming the page and line).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from imggate._app import app
from imggate._cli import register

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
#: Flags a page documents ahead of the code that is being built for them, each with the
#: page that may name it. Remove an entry when its flag lands (a test says when).
PENDING: dict[tuple[str, str], str] = {}


def _options() -> dict[str, set[str]]:
    register()  # every command (a run registers only its own)
    root = typer.main.get_command(app)
    out: dict[str, set[str]] = {}
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        for sub_name, sub in (subs.items() if subs else [(None, cmd)]):
            key = f"{name} {sub_name}" if sub_name else name
            out[key] = {o for p in sub.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    return out


OPTIONS = _options()
# "imggate check ... --flag" within one line of code: the command and what follows it. Built
# from the commands themselves, so a new command's flags are checked too.
INVOCATION = re.compile(r"\bimggate (" + "|".join(sorted(map(re.escape, OPTIONS), key=len,
                                                          reverse=True)) + r")\b([^`\n]*)")


def _code(text: str) -> list[tuple[int, str]]:
    """(line number, text) of every line inside code blocks and of every inline code span."""
    out = []
    in_block = False
    for n, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            out.append((n, line))
        else:
            out.extend((n, span) for span in re.findall(r"`([^`]+)`", line))
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (page.parent / target).exists(), f"{page.relative_to(ROOT)}: broken link {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_imggate_flags_in_the_docs_exist(page: Path):
    for n, code in _code(page.read_text(encoding="utf-8")):
        for command, rest in INVOCATION.findall(code):
            known = OPTIONS[command]
            for flag in FLAG.findall(rest.split("|")[0]):  # up to a shell pipe
                if PENDING.get((command, flag)) == page.name:
                    continue
                assert flag in known, (f"{page.relative_to(ROOT)}:{n}: imggate {command} has no "
                                       f"{flag} (its flags: {', '.join(sorted(known))})")


def test_pending_flags_are_still_pending():
    for (command, flag), page in PENDING.items():
        assert flag not in OPTIONS[command], (
            f"imggate {command} {flag} exists now: remove it from PENDING in tests/test_docs.py "
            f"(and check what {page} says about it)")


def test_the_checker_sees_invocations_and_flags():
    lines = _code("run `imggate check X --nope --env prod` then\n```\nimggate verify R --key k\n```")
    found = [(c, FLAG.findall(r)) for _, line in lines for c, r in INVOCATION.findall(line)]
    assert found == [("check", ["--nope", "--env"]), ("verify", ["--key"])]
    assert "--nope" not in OPTIONS["check"] and "--env" in OPTIONS["check"]
    assert "--check-files" in OPTIONS["rules validate"]


def test_the_tag_cache_window_of_validate_alone_is_documented():
    # A tag moved to another digest is judged by its cached digest for up to --tag-ttl
    # seconds through /validate alone; the admission guide says so and what closes it.
    text = (ROOT / "docs" / "admission.md").read_text(encoding="utf-8")
    section = text.split("## Tags: keep `/mutate` on", 1)[1].split("\n## ", 1)[0]
    for needed in ("`--tag-ttl`", "`/mutate` closes both windows", "`--tag-ttl=0`",
                   "require_digest: true"):
        assert needed in section, needed
    assert "--tag-ttl" in OPTIONS["serve"]
    from imggate.policy.rules import TagRules
    assert "require_digest" in TagRules.model_fields
