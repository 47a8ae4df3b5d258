"""junit.render writes the text ElementTree wrote for the report it used to build.

The reference is tests/formats/junit_elementtree.py: the report as an ElementTree,
written by ElementTree, every suite anew. Hostile strings go everywhere a verdict puts
text (references, rule names and messages, errors, evidence, suppressions, the run's
provenance), and a big verdict of tags sharing images exercises the shared suites.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from formats import junit_elementtree
from formats.verdict_samples import (
    CONTROL,
    RTL,
    RUN,
    SURROGATE,
    XSS_TITLE,
    allow_image,
    deny_image,
    error_image,
    finding,
    unscanned_image,
)
from imggate.formats import junit
from imggate.models import Decision, Digest, ImageVerdict, Mode, RuleResult, Severity, Verdict
from imggate.values import replace

#: Pieces that break writers: markup, entities, CDATA's end, quotes, CR/LF/tab, control
#: and C1 characters, lone surrogates, noncharacters, non-BMP, RTL overrides.
HOSTILE = ["<", ">", "&", "&amp;", "]]>", "<![CDATA[", '"', "'", "\r", "\n", "\r\n", "\t",
           "\x00", "\x07", "\x0b", "\x1b[31m", "\x7f", "\x85", "\x9f", "\ud800", "\udcff",
           "\ufffe", "\uffff", "\U0001f4a5", "\U0010ffff", "\u202e", " ", "  ", "\u2028",
           XSS_TITLE, CONTROL, SURROGATE, RTL, "a", "line"]

hostile = st.lists(st.sampled_from(HOSTILE) | st.text(st.characters(exclude_categories=()),
                                                      max_size=4),
                   max_size=6).map("".join)


def _same(verdict: Verdict) -> None:
    assert junit.render(verdict) == junit_elementtree.render(verdict)


def _bases() -> list[ImageVerdict]:
    return [allow_image(), deny_image(3), error_image(), unscanned_image(),
            replace(deny_image(0), rules=(RuleResult("tags", False, Mode.WARN, ("latest",)),)),
            replace(deny_image(0), error="some reports unread"),
            replace(allow_image(), rules=(), suppressed=())]


@settings(max_examples=150, deadline=None)
@given(base=st.integers(0, 6), reference=hostile, env=hostile, rule=hostile,
       messages=st.lists(hostile, max_size=3), error=st.none() | hostile, problem=hostile,
       why=hostile, version=hostile, mode=st.sampled_from(list(Mode)), passed=st.booleans())
@example(base=1, reference="a]]>b\r\n\x00\udcff\ufffe\U0001f4a5\"'<&>", env="\t",
         rule="r\x85", messages=["", "\r", "x" * 2000 + "\n2"], error=" ", problem="\x1b",
         why="]]>", version="\ud800", mode=Mode.ENFORCE, passed=False)
def test_hostile_text_is_written_as_elementtree_wrote_it(
        base: int, reference: str, env: str, rule: str, messages: list[str],
        error: str | None, problem: str, why: str, version: str, mode: Mode,
        passed: bool) -> None:
    iv = _bases()[base]
    evidence = tuple(replace(e, location=reference, problems=(problem, why))
                     for e in iv.evidence)
    iv = replace(iv, reference=reference, env=env, error=error, evidence=evidence,
                 rules=(*iv.rules, RuleResult(rule, passed, mode, tuple(messages))),
                 suppressed=tuple((f, why) for f, _ in iv.suppressed))
    run = replace(RUN, rules_source=reference, rules_sha256=None, env_reason=why,
                  imggate_version=version)
    generated = datetime(2026, 11, 22, 7, 0, 0, 123456, tzinfo=UTC)
    # Twice, under two references: the second is the first's suite, shared.
    _same(Verdict(env=env, images=(iv, replace(iv, reference=reference + why)),
                  generated=generated, run=run))


def test_no_images_and_no_run_are_written_as_elementtree_wrote_them() -> None:
    _same(Verdict(env="dev<&>\r\n", images=(), generated=datetime(2026, 1, 1)))
    _same(Verdict(env="dev", images=(error_image(),), generated=datetime(2026, 1, 1)))


def test_an_audit_sized_verdict_is_written_as_elementtree_wrote_it() -> None:
    # 1,002 tags over 300 images, as an audit's: most tags of an image judged alike (a
    # shared suite), some not (a message naming the tag), hostile references throughout.
    rng = random.Random(22)
    bases = _bases()
    images = []
    for i in range(300):
        base = rng.choice(bases)
        if base.image is not None:
            digest = Digest.of(f"image-{i}".encode())
            base = replace(base, image=replace(base.image, digest=digest))
        images.append(base)
    tags = []
    for n in range(1002):
        iv = rng.choice(images)
        reference = f"reg.example/app:{n}{rng.choice(HOSTILE)}{rng.choice(HOSTILE)}"
        if rng.random() < 0.1:
            iv = replace(iv, rules=(*iv.rules, RuleResult(
                "tags", False, Mode.WARN, (f"tag {reference} is denied",))))
        if rng.random() < 0.05:
            iv = replace(iv, suppressed=((finding(n, Severity.HIGH), reference),),
                         decision=Decision.DENY)
        tags.append(replace(iv, reference=reference))
    verdict = Verdict(env="prod", images=tuple(tags), generated=datetime(2026, 1, 1, tzinfo=UTC),
                      run=RUN)
    _same(verdict)
