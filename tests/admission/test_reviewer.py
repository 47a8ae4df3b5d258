"""The reviewer's helpers (the review itself is tested through the app: test_server.py)."""

from __future__ import annotations

import pytest

from imggate.admission import reviewer
from imggate.admission.reviewer import elapsed_ms


@pytest.mark.parametrize(("seconds", "ms"), [
    (0.0, 0.0), (0.0012345, 1.23), (0.0016789, 1.68), (0.25, 250.0), (7.654321, 7654.32),
    (0.000004, 0.0), (0.000006, 0.01)])
def test_elapsed_ms_is_milliseconds_to_two_decimals(monkeypatch: pytest.MonkeyPatch,
                                                    seconds: float, ms: float) -> None:
    monkeypatch.setattr(reviewer.time, "perf_counter", lambda: 1000.0)
    found = elapsed_ms(1000.0 - seconds)
    assert found == pytest.approx(ms, abs=1e-9)
    assert len(repr(found).partition(".")[2]) <= 2
