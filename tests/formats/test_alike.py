"""A report's part made once per distinct image verdict (formats.alike)."""

from __future__ import annotations

import pytest

from formats.verdict_samples import allow_image, deny_image, sample_verdict
from imggate.formats import alike, html, junit, verdict_json
from imggate.values import replace


def test_verdicts_alike_but_for_the_reference_share_what_is_made_of_them() -> None:
    made: list[str] = []
    once = alike.OncePerVerdict(lambda iv: made.append(iv.reference) or iv.reference)
    a, b = allow_image(), deny_image(2)
    assert once(replace(a, reference="r:1")) == "r:1"
    assert once(replace(a, reference="r:2")) == "r:1"
    assert once(replace(b, reference="r:3")) == "r:3"
    assert once(replace(a, reference="r:4", notes=("other",))) == "r:4"
    assert made == ["r:1", "r:3", "r:4"]


def test_tags_of_one_image_each_judged_differently_cost_a_few_comparisons_each(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A rule whose message names the tag makes every tag's verdict its own: each is
    # compared with the latest few of its image, not with every earlier tag (quadratic).
    compared = []
    same = alike.alike
    monkeypatch.setattr(alike, "alike", lambda a, b: compared.append(1) or same(a, b))
    image = allow_image()
    tags = tuple(replace(image, reference=f"r:{n}", notes=(f"tag {n}",)) for n in range(200))
    verdict = replace(sample_verdict(1), images=tags)
    page, report, text = html.render(verdict), junit.render(verdict), verdict_json.render(verdict)
    assert len(compared) <= 3 * len(tags) * alike.KEPT_PER_IMAGE
    monkeypatch.setattr(alike, "alike", lambda a, b: False)
    assert (html.render(verdict), junit.render(verdict), verdict_json.render(verdict)) == (
        page, report, text)


def test_a_placeholder_is_fresh_and_left_alone_by_escaping() -> None:
    import json
    from html import escape

    a, b = alike.placeholder("reference"), alike.placeholder("reference")
    assert a != b
    assert escape(a, quote=True) == a == json.loads(json.dumps(a)) == junit._attrib(a)
