"""Each command imports only what it uses (issue 22): what a run leaves in ``sys.modules``.

Start-up is most of a small ``check``'s time, so the rule is checked where it can
fail without a clock: each case runs the command in a fresh interpreter and lists
the modules it imported. A module named here that a change pulls back in (an import
moved to the top of a command module, a command registered eagerly) fails the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imggate._cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]

#: Prints, after the run, every module the run imported (stdout is imggate's until then;
#: a ``None`` entry is a module imggate's start-up keeps out, not one imported).
_PROBE = """\
import json, sys
from imggate._cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
held = sorted(name for name, module in sys.modules.items() if module is not None)
print("\\nMODULES " + json.dumps(held))
"""

#: Never needed by ``check`` of an image: other commands, the webhook, audits, the sync
#: HTTP stack, the web server.
NOT_FOR_CHECK = [
    *(f"imggate.commands.{m}" for m in set(COMMANDS.values()) - {"check"}),
    "imggate.admission", "imggate.audit", "starlette", "uvicorn", "redis",
    "prometheus_client", "sigstore",
]
#: Never needed to print the command list: anything beyond the command line itself.
NOT_FOR_HELP = [
    "imggate.models", "imggate.policy", "imggate.registry", "imggate.signatures",
    "imggate.scanners", "imggate.formats", "imggate.gate", "pydantic", "httpx", "httpcore",
    "cryptography", "jinja2", "yaml", "starlette", "uvicorn", "sigstore", "msgspec",
    "imggate.values",
]


def imported_by(args: list[str], cwd: Path) -> set[str]:
    """The modules a fresh interpreter holds after ``imggate ARGS``."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True,
                          text=True, cwd=cwd, check=False, timeout=120)
    marker = proc.stdout.rfind("\nMODULES ")
    assert marker >= 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return set(json.loads(proc.stdout[marker + len("\nMODULES "):]))


def _offending(modules: set[str], banned: list[str]) -> list[str]:
    return sorted(m for m in modules if any(m == b or m.startswith(b + ".") for b in banned))


def test_check_of_the_bundled_example_imports_only_what_check_uses(tmp_path: Path) -> None:
    modules = imported_by(["check", "oci:examples/app", "--key", "examples/cosign.pub",
                           "--trivy-report", "examples/trivy-report.json",
                           "--insecure-ignore-tlog", "-q", "-o", str(tmp_path)], ROOT)
    # The run did happen: a check that failed early would import little.
    assert (tmp_path / "gl-container-scanning-report.json").is_file()
    assert "imggate.commands.check" in modules and "imggate.gate" in modules
    assert _offending(modules, NOT_FOR_CHECK) == []
    # The example is key-signed: no certificate is read, so no X.509 stack (~20-30 ms).
    assert _offending(modules, ["cryptography.x509", "imggate.signatures.keyless"]) == []
    # Its report is small: read the checked way; the typed decode (its Structs are built
    # when imported) is only for a report past the fast-decode size.
    assert "imggate.scanners.trivy_typed" not in modules
    # Its image is an OCI layout: nothing goes over the network, so no HTTP stack either.
    assert _offending(modules, ["httpx", "httpcore", "h2", "h11",
                                "imggate.registry.client"]) == []
    # Its rules have no provenance rule: the provenance layer is not imported.
    assert "imggate.policy.provenance" not in modules


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["check", "--help"]],
                         ids=lambda a: " ".join(a))
def test_help_imports_only_the_command_line(args: list[str], tmp_path: Path) -> None:
    modules = imported_by(args, tmp_path)
    assert "typer" in modules and "imggate.commands" in modules
    # A command's own help converts its parameters: imggate's coercion does it
    # (imggate._options), not a pydantic TypeAdapter per parameter as typer 0.29's would.
    assert _offending(modules, NOT_FOR_HELP) == []


def test_resolve_of_a_layout_converts_its_parameters_without_pydantic() -> None:
    modules = imported_by(["resolve", "oci:examples/app", "--timeout", "5", "--deadline", "9",
                           "--insecure-registry", "a", "--insecure-registry", "b"], ROOT)
    assert "imggate.registry.resolve" in modules  # it ran
    assert _offending(modules, ["pydantic", "pydantic_core", "typer._adapters"]) == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_registers_only_its_own_module(name: str, tmp_path: Path) -> None:
    modules = imported_by([name, "--help"], tmp_path)
    commands = {m.rsplit(".", 1)[1] for m in modules
                if m.startswith("imggate.commands.") and m.rsplit(".", 1)[1][0] != "_"}
    assert commands == {COMMANDS[name]}


def test_the_command_list_has_every_command_and_the_table_names_them_all(
        tmp_path: Path) -> None:
    import typer

    from imggate._app import app
    from imggate._cli import register

    register()
    names = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert names == set(COMMANDS)
    out = subprocess.run([sys.executable, "-m", "imggate", "--help"], capture_output=True,
                         text=True, cwd=tmp_path, check=True).stdout
    listed = out.split("Commands:", 1)[1]
    assert all(f"\n  {n} " in listed for n in COMMANDS), out


def test_what_an_audit_lists_and_resolves_tags_with_holds_no_policy_layer() -> None:
    # An audit imports the policy layer (pydantic, the rules' models: ~0.5G instructions)
    # on a thread of its own while the tags are listed: the main thread's listing and
    # resolving must not import it first, or the registry waits for it again.
    probe = ("import json, sys\nimport imggate.commands.audit, imggate.audit.run, "
             "imggate.registry.client, imggate.models\n"
             "print(json.dumps(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    modules = set(json.loads(out))
    assert "imggate.audit.run" in modules
    assert _offending(modules, ["pydantic", "imggate.policy", "imggate.gate", "yaml"]) == []
