"""Help text a person reads: ``--key FILE`` and ``REF...``, not ``<list[str]>`` and ``{refs}``.

typer shows each parameter's Python type as its placeholder; this walks the
command tree once, before it runs, and gives every parameter a name instead:
the table below, else the last word of the option (``--cache-dir`` -> ``DIR``).
"""

from __future__ import annotations

from typer import _click
from typer.core import TyperArgument, TyperGroup, TyperOption

#: Placeholders that the option's last word would not say well.
_METAVARS = {
    "--env": "ENV", "--rules": "PATH", "--timeout": "SECONDS", "--trivy-timeout": "SECONDS",
    "--threshold": "N", "--insecure-registry": "HOST", "--platform": "OS/ARCH[/VARIANT]",
    "--image": "REF", "--default-branch-image": "REF", "--signature-repository": "REPOSITORY",
    "--certificate-identity": "SAN", "--certificate-identity-regexp": "REGEXP",
    "--certificate-oidc-issuer": "URL", "--certificate-oidc-issuer-regexp": "REGEXP",
    "--annotations": "KEY=VALUE", "--severity": "SEVERITIES", "--output": "FILE",
    "--output-dir": "DIR", "--kind": "KIND", "--prefer": "SCANNER", "--scan": "SCANNER",
    "--type": "PREDICATE", "--username": "USER", "--db-repository": "REPOSITORY",
    "--trivy-report": "FILE", "--grype-report": "FILE", "--gitlab-report": "FILE",
    "--report": "FILE", "--key": "FILE", "--allowlist": "FILE", "--certificate": "FILE",
    "--certificate-chain": "FILE", "--trusted-root": "FILE", "--ca-file": "FILE",
}
_ARGUMENTS = {"refs": "REF", "reports": "REPORT", "path": "PATH"}


class _Argument(TyperArgument):
    """An argument shown as ``REF...`` / ``[PATH]`` rather than ``{refs}... <list[str]>``."""

    def _label(self) -> str:
        name = self.metavar or self.name.upper()
        return f"{name}..." if self.nargs != 1 else name

    def _usage_display_name(self) -> str:
        return self._label() if self.required else f"[{self._label()}]"

    def _rich_display_name(self) -> str:
        return self._label()

    def display_type_rich(self, ctx: _click.Context) -> str | None:
        return None


def _option_metavar(option: TyperOption) -> str:
    longest = max(option.opts, key=len)
    if longest in _METAVARS:
        return _METAVARS[longest]
    choices = option.type_descriptor.choices if option.type_descriptor.is_choice else None
    if choices:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in choices) + "]"
    return longest.lstrip("-").rsplit("-", 1)[-1].upper()


def tidy(command: _click.Command) -> _click.Command:
    """Give every parameter of ``command`` and its subcommands a readable placeholder."""
    for param in command.params:
        if isinstance(param, TyperArgument) and not isinstance(param, _Argument):
            if param.metavar is None:
                param.metavar = _ARGUMENTS.get(param.name or "", (param.name or "ARG").upper())
            param.__class__ = _Argument
        elif (isinstance(param, TyperOption) and param.metavar is None
              and not param.is_flag and not param.count):
            param.metavar = _option_metavar(param)
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            # The command list shows short_help whole (click would cut the docstring's
            # first sentence to fit and end it with "..."): the first paragraph, one line.
            if sub.short_help is None and sub.help:
                sub.short_help = " ".join(sub.help.split("\n\n", 1)[0].split())
            tidy(sub)
    return command
