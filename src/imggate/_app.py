"""The typer application that every command module registers on.

Kept separate from ``_cli`` so command modules can import it without a cycle.
Command modules must import heavy stacks (sigstore, cryptography, httpx, jinja2) inside
their functions: ``imggate --help`` imports every command module.
"""


import typer

from imggate import __version__

#: ``-h`` as well as ``--help`` everywhere (subcommands inherit the context setting).
CONTEXT = {"help_option_names": ["-h", "--help"]}

#: Under the command list of ``imggate --help``: an example, the exit codes, where to read on.
#: ("\b" keeps click from re-wrapping a paragraph.)
EPILOG = """\b
Example: gate the bundled example image (reports land in reports/):
  imggate check oci:examples/app --key examples/cosign.pub \\
      --trivy-report examples/trivy-report.json --insecure-ignore-tlog

\b
Exit codes: 0 allowed, 1 denied, 2 usage/config error, 3 could not decide.
More: imggate COMMAND --help; README.md and docs/ in imggate's repository
(docs/commands.md: every command, docs/ci.md: GitLab CI, docs/exit-codes.md)."""

app = typer.Typer(
    name="imggate",
    help="A supply-chain security gate for container images.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=CONTEXT,
)

rules_app = typer.Typer(help="Validate and explain rules files.", no_args_is_help=True,
                        context_settings=CONTEXT)
app.add_typer(rules_app, name="rules")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"imggate {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    verbose: int = typer.Option(
        0, "-v", "--verbose", count=True, show_default=False,
        help="-v: imggate's debug output and tracebacks; -vv: libraries' debug output too. "
             "Accepted anywhere on the line, also after the command."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True,
        help="Print imggate's version and exit."),
) -> None:
    """A supply-chain security gate for container images."""
