"""Registry flags shared by resolve, verify and check: bad numbers are usage errors (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixture_paths import FIXTURES
from imggate._cli import main, verbosity_of
from imggate.errors import UsageError
from imggate.scanners.trivy_runner import TrivyOptions
from registry_harness import run_imggate

LAYOUT = FIXTURES / "cosign" / "att-slsa-generator-v1.9.0-intoto" / "oci-layout"


@pytest.mark.parametrize("command", ["resolve", "verify", "check"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_timeout_that_is_not_a_positive_number_is_exit_2(
        command: str, value: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``--timeout nan`` used to pass ``<= 0`` and fail later with exit 3 (or not at all)."""
    extra = ["-o", str(tmp_path)] if command == "check" else []
    if command == "verify":
        extra = ["--key", str(FIXTURES / "cosign" / "key-connaisseur-multi-signer" / "keys"
                              / "bob.pub")]
    with pytest.raises(SystemExit) as info:
        main([command, f"oci:{LAYOUT}", "--timeout", value, *extra])
    assert info.value.code == 2
    assert "--timeout must be a positive number of seconds" in capsys.readouterr().err


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0])
def test_trivy_timeout_must_be_a_positive_number(value: float) -> None:
    with pytest.raises(UsageError, match="--trivy-timeout"):
        TrivyOptions(timeout=value)


@pytest.mark.parametrize("command", ["check", "resolve", "verify"])
def test_deadline_is_in_help_with_its_default(command: str) -> None:
    res = run_imggate([command, "--help"])
    assert res.code == 0
    text = " ".join(res.stdout.split())
    assert "--deadline" in text and "[default: 120.0]" in text


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_deadline_must_be_positive_finite_seconds(value: str) -> None:
    res = run_imggate(["resolve", "--deadline", value, "127.0.0.1:1/a/b:v1"])
    assert res.code == 2, res.output
    assert "--deadline must be a positive number of seconds" in res.stderr
    assert "internal error" not in res.output


def test_verbosity_counts_every_v() -> None:
    assert verbosity_of(["resolve", "x"]) == 0
    assert verbosity_of(["-v", "resolve"]) == 1
    assert verbosity_of(["-vv", "resolve"]) == 2
    assert verbosity_of(["--verbose", "-v", "check"]) == 2
    assert verbosity_of(["check", "--", "-vv"]) == 0
    assert verbosity_of(["check", "--env", "-x"]) == 0
