"""An audit's progress (``imggate.audit.progress``): plain lines off a terminal, without
importing rich (~100M instructions before the audit's first request)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from imggate.audit.progress import AuditProgress

_PROBE = """\
import io, json, sys
from imggate.audit.progress import AuditProgress
out = io.StringIO()
with AuditProgress(out, interval=0.0) as progress:
    progress("resolve", 1, 2)
    progress("resolve", 2, 2)
print(json.dumps([out.getvalue(), sorted(m for m in sys.modules if m.split(".")[0] == "rich")]))
"""


def _probe(env: dict[str, str]) -> tuple[str, list[str]]:
    clean = {k: v for k, v in os.environ.items() if k not in ("TTY_COMPATIBLE", "FORCE_COLOR")}
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          check=True, timeout=120, env={**clean, **env})
    lines, rich = json.loads(proc.stdout)
    return lines, rich


def test_off_a_terminal_the_progress_is_plain_lines_without_rich() -> None:
    lines, rich = _probe({})
    assert lines == "imggate: audit: resolve: 1/2\nimggate: audit: resolve: 2/2\n"
    assert rich == []


@pytest.mark.parametrize("env", [{"FORCE_COLOR": "1"}, {"TTY_COMPATIBLE": "1"}])
def test_what_makes_rich_take_a_file_for_a_terminal_still_draws_its_bar(
        env: dict[str, str]) -> None:
    lines, rich = _probe(env)
    assert "rich.progress" in rich
    assert "imggate: audit:" not in lines  # the bar, not the plain lines


def test_a_forced_terminal_draws_the_bar_and_a_refused_one_writes_lines() -> None:
    bar = io.StringIO()
    with AuditProgress(bar, terminal=True) as progress:
        progress("resolve", 1, 2)
    assert "imggate: audit:" not in bar.getvalue()
    plain = io.StringIO()
    with AuditProgress(plain, terminal=False) as progress:
        progress("resolve", 2, 2)
    assert plain.getvalue() == "imggate: audit: resolve: 2/2\n"
