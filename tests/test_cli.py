"""The command line itself: --version, -h, -v anywhere, readable help, verbosity levels."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize("group", [[], ["rules"]], ids=["imggate", "rules"])
def test_help_lists_each_commands_whole_purpose(group: list[str]) -> None:
    import typer

    from imggate._app import app
    from imggate._cli import register

    register()  # every command (a run registers only its own)
    out = run_imggate([*group, "--help"]).stdout
    command = typer.main.get_command(app)
    for name in group:
        command = command.commands[name]  # type: ignore[attr-defined]
    listed = " ".join(out.split("Commands:", 1)[1].split())
    for name, sub in command.commands.items():  # type: ignore[attr-defined]
        purpose = " ".join(sub.help.split("\n\n", 1)[0].split())
        assert f"{name} {purpose}" in listed, f"{name}: {purpose!r} not whole in:\n{out}"
    assert "..." not in out.split("Commands:", 1)[1]


def test_top_help_has_an_example_the_exit_codes_and_where_to_read_on() -> None:
    out = run_imggate(["--help"]).stdout
    example = re.search(r"^\s+(imggate check .*?)\\\n\s+(.*)$", out, re.MULTILINE)
    assert example, out
    flags = re.findall(r"--[a-z-]+", example[1] + example[2])
    check = run_imggate(["check", "--help"]).stdout
    assert flags and all(f in check for f in flags)
    assert "Exit codes: 0 allowed, 1 denied, 2 usage/config error, 3 could not decide." in out
    assert "docs/commands.md" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_check_flags_are_explained_for_check() -> None:
    check = " ".join(run_imggate(["check", "--help"]).stdout.split())
    verify = " ".join(run_imggate(["verify", "--help"]).stdout.split())
    # verify's words: about what verify checks, wrong for a gate.
    assert "verify then checks attestations instead of signatures" in verify
    assert "verify then" not in check and "whose key verifies" not in check
    assert ("--type PREDICATE Require a verified attestation of this predicate type (cosign "
            "short name or URI), besides the rules' attestations.required") in check
    assert ("--certificate FILE Require a signature verified by the public key of this PEM "
            "certificate, as --key does") in check


def test_verbose_after_the_subcommand_is_accepted() -> None:
    result = run_imggate(["rules", "explain", "--env", "prod", "-v"])
    assert result.code == 0, result.stderr
    assert "environment: prod" in result.stdout


def test_only_verbose_runs_show_where_an_error_was_raised() -> None:
    args = ["rules", "explain", "--env", "nope"]
    quiet = run_imggate(args, subprocess_mode=True)
    loud = run_imggate(["-v", *args], subprocess_mode=True)
    assert quiet.code == loud.code == 2
    for result in (quiet, loud):
        assert "imggate: error: unknown environment 'nope' (from --env)" in result.stderr
    # The frames of the failure, down to the module that raised it: with -v only.
    assert "imggate/policy/environments.py" in loud.stderr
    assert "imggate/policy/environments.py" not in quiet.stderr


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
        for name in ("httpx", "httpcore.connection", "h2", "imggate.registry.http"):
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
    assert "connecting to" not in one.stderr and "HTTP Request" not in one.stderr
    two = run_imggate(["resolve", anon_image.ref, "-vv"], subprocess_mode=True)
    assert two.code == 0, two.stderr
    assert "imggate: DEBUG: connecting to 127.0.0.1:" in two.stderr  # the connection log
    assert "HTTP Request: GET http://127.0.0.1:" in two.stderr  # each exchange, as httpx's


EXAMPLE_DIGEST = "sha256:f41e9a845abd009489a7f2ce16ff1294db80ee19b3cb805dfc7d45aad7bf64f5"
PIPED = {
    "resolve": ["resolve", "oci:{root}/examples/app"],
    "check": ["check", "oci:{root}/examples/app", "--trivy-report",
              "{root}/examples/trivy-report.json", "--key", "{root}/examples/cosign.pub",
              "--insecure-ignore-tlog"],
    "check-deny": ["check", "oci:{root}/examples/app", "--env", "prod"],
    "verify": ["verify", "--key", "{root}/examples/cosign.pub", "--insecure-ignore-tlog",
               "oci:{root}/examples/app"],
}


def assert_no_digest_split(text: str) -> None:
    """Every digest whole (64 hex), or shortened on purpose (12 hex and an ellipsis)."""
    for m in re.finditer(r"sha256[:-]([0-9a-f]+)(\.\.\.|…)?", text):
        assert len(m[1]) == 64 or (len(m[1]) == 12 and m[2]), \
            f"a digest cut in two: {m[0]!r} in:\n{text}"


@pytest.mark.parametrize("name", list(PIPED))
def test_no_digest_is_split_through_a_pipe_at_60_columns(name: str, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    args = [a.format(root=root) for a in PIPED[name]]
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI_ENVIRONMENT_TIER", "CI_ENVIRONMENT_NAME")}
    env.update({"COLUMNS": "60", "PYTHONPATH": str(root / "src")})
    done = subprocess.run([sys.executable, "-m", "imggate", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 1), done.stderr
    out = done.stdout + done.stderr
    assert_no_digest_split(out)
    if name in ("resolve", "verify"):
        assert EXAMPLE_DIGEST in done.stdout
    # A CI log is not a terminal: nothing is folded to the 60 columns.
    assert max(len(line) for line in done.stdout.splitlines()) > 60


def test_the_collector_is_paused_for_start_up_only(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    import gc

    from imggate.errors import UsageError
    from imggate.scanners import detect

    seen: list[bool] = []

    def parser_for(kind: str) -> None:  # the first thing convert --kind does
        seen.append(gc.isenabled())
        raise UsageError("stop here")

    monkeypatch.setattr(detect, "parser_for", parser_for)
    assert gc.isenabled()
    result = run_imggate(["convert", str(tmp_path / "r.json"), "--kind", "trivy"])
    # The command itself ran with the collector on (a long run needs it) ...
    assert result.code == 2 and "stop here" in result.stderr and seen == [True]
    # ... and a run that ends in start-up (a usage error) leaves it on for the caller.
    assert run_imggate(["convert", "--no-such-flag"]).code == 2
    assert gc.isenabled()


def test_check_keeps_the_collector_off_from_start_up_on(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    # check pauses the collector itself: start-up does not turn it on for it first (the
    # next allocation would collect, walking every object start-up built).
    import gc

    from imggate import _cli
    from imggate.commands import check
    from imggate.errors import UsageError

    turned_on: list[str] = []
    seen: list[tuple[bool, list[str]]] = []
    real_enable, real_register = gc.enable, _cli.register

    def enable() -> None:
        turned_on.append("on")
        real_enable()

    def register(args: list[str] | None = None) -> None:  # start-up, collector paused
        turned_on.clear()
        real_register(args)

    def output_dir(path: str) -> Path:  # the command's first file-system step
        seen.append((gc.isenabled(), list(turned_on)))
        raise UsageError("stop here")

    monkeypatch.setattr(gc, "enable", enable)
    monkeypatch.setattr(_cli, "register", register)
    monkeypatch.setattr(check, "_output_dir", output_dir)
    result = run_imggate(["check", "oci:" + str(tmp_path / "nothing")])
    assert result.code == 2 and "stop here" in result.stderr
    assert seen == [(False, [])]
    # A caller of main(argv) gets the collector back as it was.
    assert gc.isenabled()


def test_resolve_keeps_the_collector_off_from_start_up_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # As check: a resolve makes a few cycles an image, freed with the process, and each
    # collection walked what start-up built (issue 22).
    import gc

    from imggate.commands import resolve
    from imggate.errors import UsageError

    seen: list[bool] = []

    def parse_deadline(seconds: float) -> None:  # the command's first step
        seen.append(gc.isenabled())
        raise UsageError("stop here")

    monkeypatch.setattr(resolve, "parse_deadline", parse_deadline)
    result = run_imggate(["resolve", "registry.example/app:1"])
    assert result.code == 2 and "stop here" in result.stderr
    assert seen == [False]
    assert gc.isenabled()  # a caller of main(argv) gets it back


def test_the_program_ends_with_everything_written(tmp_path: Path) -> None:
    # `imggate` ends its process without the interpreter's teardown (issue 22): what it
    # wrote to a pipe, however large, is all there, and its exit code is the command's.
    import json

    doc = json.loads((Path(__file__).parent / "fixtures" / "trivy" / "alpine-310.json")
                     .read_text())
    vulns = doc["Results"][0]["Vulnerabilities"]
    doc["Results"][0]["Vulnerabilities"] = [
        {**v, "InstalledVersion": f"{v['InstalledVersion']}+b{i}"}
        for i in range(3000 // len(vulns) + 1) for v in vulns]
    report = tmp_path / "big.json"
    report.write_text(json.dumps(doc))
    big = subprocess.run([sys.executable, "-m", "imggate", "convert", str(report)],
                         capture_output=True, check=False)
    assert big.returncode == 0, big.stderr
    assert big.stdout.endswith(b"}\n") and len(big.stdout) > 1_000_000
    assert len(json.loads(big.stdout)["vulnerabilities"]) > 3000
    bad = subprocess.run([sys.executable, "-m", "imggate", "convert", str(tmp_path / "no")],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("imggate: ")


def test_command_list_lists_every_command_as_built_and_runs_none() -> None:
    """A run that names no command (``imggate --help``) lists the commands without
    building their parameters; the list is the real tree's, and a listed command that
    were reached anyway fails closed (exit 3), never runs as a no-op."""
    import typer

    from imggate._app import app
    from imggate._cli import command_list, command_named, register
    from imggate.errors import Error

    register()
    full = typer.main.get_command(app)
    listed = typer.main.get_command(command_list(app))

    def names_and_help(group: typer.core.TyperGroup) -> list[tuple[str, str | None]]:
        return [(name, sub.help) for name, sub in group.commands.items()]

    assert names_and_help(listed) == names_and_help(full)  # type: ignore[arg-type]
    rules = listed.commands["rules"]  # type: ignore[attr-defined]
    assert names_and_help(rules) == names_and_help(full.commands["rules"])  # type: ignore[attr-defined]
    check = listed.commands["check"]  # type: ignore[attr-defined]
    assert check.params == [] and full.commands["check"].params  # type: ignore[attr-defined]
    with pytest.raises(Error) as raised:
        check.callback()
    assert raised.value.exit_code == 3
    assert "listed, not loaded" in raised.value.message
    assert command_named(["-v", "--help"]) is None
    assert command_named(["chek"]) is None
    assert command_named(["--", "check", "x"]) == "check"


@pytest.mark.parametrize("args", [["--help"], ["resolve", "--help"]], ids=" ".join)
def test_a_terminal_that_is_not_utf8_gets_escapes_not_an_internal_error(
        args: list[str]) -> None:
    # resolve's help holds "…", which Latin-1 cannot encode.
    proc = subprocess.run([sys.executable, "-m", "imggate", *args], capture_output=True,
                          env={**os.environ, "PYTHONIOENCODING": "latin-1"}, check=False,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr.decode("latin-1")
    assert b"@sha256:\\u2026" in proc.stdout and b"internal error" not in proc.stderr
