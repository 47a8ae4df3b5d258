"""The verdict as the GitLab report's child gets it (:mod:`imggate.formats.written_ahead`):
without its findings and reports, which go as their places among those the child holds."""

from __future__ import annotations

import pickle

from formats.verdict_samples import sample_verdict
from imggate.formats import written_ahead
from imggate.values import replace


def test_an_image_of_all_the_childs_findings_in_order_goes_without_their_places() -> None:
    verdict = sample_verdict(2000)
    deny = verdict.images[1]
    held = written_ahead._Held(tuple(list(deny.findings)), deny.reports)  # (another tuple)
    shell = written_ahead._shell(replace(verdict, images=(deny,)), held)
    assert shell is not None
    assert shell[1][0][0] is None  # all of them, in order: nothing per finding
    assert len(pickle.dumps(shell)) < 8000
    whole = written_ahead._whole(*shell, held)
    assert whole == replace(verdict, images=(deny,))
    assert whole.images[0].findings is held.findings  # the objects the child made parts for
    # Some of them, or in another order: their places, and the same verdict put together.
    for findings in (deny.findings[1:], tuple(reversed(deny.findings))):
        some = replace(verdict, images=(replace(deny, findings=findings),))
        shell = written_ahead._shell(some, held)
        assert shell is not None and shell[1][0][0] is not None
        assert written_ahead._whole(*shell, held) == some
