"""``imggate resolve REF…``: pin references to verified digests."""


import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imggate._app import app
from imggate._cli import PAUSES_COLLECTOR
from imggate.commands._registry_opts import (
    DEFAULT_DEADLINE,
    CaFileOpt,
    DeadlineOpt,
    InsecureOpt,
    PasswordStdinOpt,
    PlatformOpt,
    TimeoutOpt,
    UsernameOpt,
    parse_deadline,
    parse_platform,
    parse_refs,
    registry_options,
)
from imggate.text import printable_lines

if TYPE_CHECKING:
    from imggate.models import ResolvedImage


@app.command()
def resolve(
    refs: Annotated[list[str],
                    typer.Argument(help="Image references (or oci:PATH[:TAG|@DIGEST]).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print details as JSON.")] = False,
    platform: PlatformOpt = None,
    insecure_registry: InsecureOpt = None,
    ca_file: CaFileOpt = None,
    username: UsernameOpt = None,
    password_stdin: PasswordStdinOpt = False,
    timeout: TimeoutOpt = 30.0,
    deadline: DeadlineOpt = DEFAULT_DEADLINE,
) -> int:
    """Pin each image to a verified digest: one `<registry>/<repository>@sha256:…` line each."""
    from imggate._aio import run
    from imggate.models import ResolvedImage
    from imggate.registry.options import RegistryOptions
    from imggate.registry.resolve import resolve_many

    limit = parse_deadline(deadline)
    parsed = parse_refs(refs)
    plat = parse_platform(platform)
    options = registry_options(parsed, insecure=insecure_registry, ca_file=ca_file,
                               username=username, password_stdin=password_stdin, timeout=timeout)
    assert isinstance(options, RegistryOptions)
    # The platform manifest and config are always fetched and verified, even when only
    # the digest is printed: resolve is also an integrity check of what it pins.
    results = run(resolve_many(parsed, options, plat, deadline=limit))
    code = 0
    docs = []
    for text, result in zip(refs, results, strict=True):
        if isinstance(result, ResolvedImage):
            if as_json:
                docs.append(resolved_json(text, result))
            else:
                sys.stdout.write(result.pinned + "\n")
        else:
            # The message may quote the registry: shown, never obeyed by the terminal.
            sys.stderr.write(printable_lines(result.diagnostics()) + "\n")
            code = max(code, result.exit_code)
    if as_json:
        sys.stdout.write(json.dumps(docs, indent=2) + "\n")
    return code


# The cyclic collector stays paused for the run, as it was for start-up (imggate._cli):
# a resolve makes a few cycles per image (~3 resolved, ~40 failed: an exception and its
# frames), freed with the process, and each collection walked what start-up and the
# requests in flight hold. 200 images: 800M -> 778M instructions (cachegrind).
setattr(resolve, PAUSES_COLLECTOR, True)


def resolved_json(text: str, image: "ResolvedImage") -> dict[str, Any]:
    """The ``--json`` form of one resolved image."""
    cfg = image.config
    return {
        "reference": text,
        "pinned": image.pinned,
        "digest": str(image.digest),
        "mediaType": image.media_type,
        "manifestDigest": str(image.manifest_digest),
        "platforms": [
            {"platform": str(c.platform) if c.platform else None, "digest": str(c.digest),
             "mediaType": c.media_type, "size": c.size}
            for c in image.platforms
        ],
        "config": None if cfg is None else {
            "digest": str(cfg.digest),
            "created": cfg.created.isoformat() if cfg.created else None,
            "os": cfg.os,
            "architecture": cfg.architecture,
            "variant": cfg.variant,
            "user": cfg.user,
            "labels": dict(cfg.labels),
            "layers": cfg.layer_count,
        },
    }
