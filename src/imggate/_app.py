"""The typer application that every command module registers on.

Kept separate from ``_cli`` so command modules can import it without a cycle.
Command modules must import heavy stacks (sigstore, cryptography, httpx, jinja2) inside
their functions: ``imggate --help`` imports every command module.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="imggate",
    help="A supply-chain security gate for container images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

rules_app = typer.Typer(help="Validate and explain rules files.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")

state: dict[str, bool] = {"verbose": False}


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Show tracebacks and debug logs."),
) -> None:
    """A supply-chain security gate for container images."""
    state["verbose"] = verbose
