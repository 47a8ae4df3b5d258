"""The command line itself: --version, -h, -v anywhere, readable help, verbosity levels."""

from __future__ import annotations

import logging
import re

import pytest

from harness_images import PushedImage
from imggate import __version__, logs
from imggate._cli import split_verbosity
from registry_harness import run_imggate

COMMANDS = [[], ["check"], ["convert"], ["resolve"], ["verify"], ["rules"],
            ["rules", "validate"], ["rules", "explain"], ["audit"]]


def test_version() -> None:
    result = run_imggate(["--version"])
    assert result.code == 0
    assert result.stdout.strip() == f"imggate {__version__}"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "imggate")
def test_short_help_and_no_type_placeholders(command: list[str]) -> None:
    result = run_imggate([*command, "-h"])
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("Usage: imggate")
    # typer's defaults would show `{refs}...` and `--key <list[str]>`.
    assert not re.search(r"\{\w+\}|<(?:list\[)?(?:str|int|float|path)\b", result.stdout), \
        result.stdout


def test_placeholders_name_what_is_expected() -> None:
    out = run_imggate(["check", "--help"]).stdout
    assert "Usage: imggate check [OPTIONS] [REF...]" in out
    assert "--key FILE" in out and "--timeout SECONDS" in out and "--env ENV" in out
    assert "[gitlab|json|sarif]" in run_imggate(["convert", "--help"]).stdout


def test_verbose_after_the_subcommand_is_accepted() -> None:
    result = run_imggate(["rules", "explain", "--env", "prod", "-v"])
    assert result.code == 0, result.stderr
    assert "environment: prod" in result.stdout


def test_split_verbosity_leaves_arguments_after_double_dash() -> None:
    assert split_verbosity(["check", "-vv", "x", "--", "-v"]) == (2, ["check", "x", "--", "-v"])
    assert split_verbosity(["-v", "--verbose", "rules"]) == (2, ["rules"])


@pytest.mark.parametrize(("level", "ours", "libraries"), [(0, False, False), (1, True, False),
                                                          (2, True, True)])
def test_levels(level: int, ours: bool, libraries: bool) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure(level)
        assert logging.getLogger("imggate.registry.client").isEnabledFor(logging.DEBUG) is ours
        for name in ("httpx", "httpcore.connection", "h2"):
            assert logging.getLogger(name).isEnabledFor(logging.DEBUG) is libraries
    finally:
        root.handlers[:], root.level = saved
        logs.configure(0)
        root.handlers[:], root.level = saved


@pytest.mark.registry
@pytest.mark.usefixtures("isolated_auth_env")
def test_v_is_imggate_debug_only_and_vv_adds_library_debug(anon_image: PushedImage) -> None:
    one = run_imggate(["resolve", anon_image.ref, "-v"], subprocess_mode=True)
    assert one.code == 0, one.stderr
    assert "imggate: DEBUG: registry" in one.stderr
    assert "connect_tcp" not in one.stderr and "HTTP Request" not in one.stderr
    two = run_imggate(["resolve", anon_image.ref, "-vv"], subprocess_mode=True)
    assert two.code == 0, two.stderr
    assert "imggate: DEBUG: connect_tcp" in two.stderr  # httpcore's connection log
