"""Registry flags shared by every command that talks to registries."""


import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from imggate.errors import UsageError

if TYPE_CHECKING:
    from imggate.models import ImageRef, Platform
    from imggate.registry.deadline import Deadline

InsecureOpt = Annotated[
    list[str] | None,
    typer.Option("--insecure-registry",
                 help="Allow plain HTTP to this registry host (repeatable)."),
]
CaFileOpt = Annotated[
    str | None, typer.Option("--ca-file", help="PEM bundle of CAs for private registries.")
]
UsernameOpt = Annotated[
    str | None, typer.Option("--username", help="Registry user (password from --password-stdin).")
]
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the registry password from standard input.")
]
PlatformOpt = Annotated[
    str | None, typer.Option("--platform", help="Pick os/arch[/variant] from multi-arch images.")
]
TimeoutOpt = Annotated[float, typer.Option(
    "--timeout", help="Seconds a registry request may wait for an answer; after that its "
                      "body must keep arriving (at 32 KiB/s or more).")]
DeadlineOpt = Annotated[float, typer.Option(
    "--deadline", help="Seconds the whole command may spend on registries, retries and "
                       "Retry-After waits included; past it, what is unfinished is an error "
                       "(exit 3).", show_default=True)]
#: ``--deadline`` when not given.
DEFAULT_DEADLINE = 120.0


def _seconds(flag: str, value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{flag} must be a positive number of seconds, not {value}")
    return value


def parse_deadline(seconds: float) -> "Deadline":
    """``--deadline`` as a :class:`Deadline` that starts now (usage error when not positive)."""
    from imggate.registry.deadline import Deadline

    return Deadline.after(_seconds("--deadline", seconds))


def parse_platform(text: str | None) -> "Platform | None":
    """``--platform`` as a :class:`Platform` (usage error when malformed)."""
    if text is None:
        return None
    from imggate.models import Platform

    try:
        return Platform.parse(text)
    except ValueError as e:
        raise UsageError(f"--platform: {e}") from None


def parse_refs(texts: Sequence[str]) -> "list[ImageRef]":
    """Parse every reference before any network traffic (all-or-nothing)."""
    from imggate.registry.reference import parse_reference

    return [parse_reference(t) for t in texts]


def registry_options(
    refs: "Sequence[ImageRef]",
    *,
    insecure: Sequence[str] | None,
    ca_file: str | None,
    username: str | None,
    password_stdin: bool,
    timeout: float,
) -> object:
    """Build ``RegistryOptions`` from the flags (typed ``object`` to keep httpx out of --help)."""
    from imggate.registry.credentials import Credentials, CredentialStore, normalise_host
    from imggate.registry.options import RegistryOptions

    explicit = None
    if password_stdin and not username:
        raise UsageError("--password-stdin needs --username")
    if username:
        if not password_stdin:
            raise UsageError("--username needs --password-stdin (passwords never go in argv)")
        secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            raise UsageError("--password-stdin: standard input was empty")
        explicit = Credentials(username, secret, False, "--username/--password-stdin")
    hosts = frozenset(r.registry for r in refs if r.source == "registry")
    _seconds("--timeout", timeout)
    return RegistryOptions(
        credentials=CredentialStore(explicit=explicit, explicit_hosts=hosts),
        insecure_registries=frozenset(normalise_host(h) for h in insecure or ()),
        ca_file=ca_file,
        timeout=timeout,
    )
