"""Run Trivy on a digest-pinned image (``--scan trivy``).

``trivy image --format json --quiet [offline flags] <registry>/<repo>@sha256:…``
with registry credentials in ``TRIVY_USERNAME``/``TRIVY_PASSWORD`` (never in
argv, where ``ps`` shows them). Trivy missing, failing, timing out or
printing something that is not a valid report is a
:class:`~imggate.errors.ScannerError` (exit 3) with the tail of its stderr,
the password scrubbed from it.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from imggate.errors import ReportError, ScannerError, UsageError
from imggate.models import ResolvedImage, ScanReport
from imggate.scanners.detect import parse_report

_TAIL_LINES = 20
_TAIL_CHARS = 4000


@dataclass(frozen=True, slots=True)
class TrivyOptions:
    """How to run Trivy.

    ``skip_db_update``/``offline_scan``/``cache_dir``/``db_repository`` are
    passed through as Trivy's flags of the same names, for air-gapped CI.
    """

    executable: str = "trivy"
    timeout: float = 600.0
    skip_db_update: bool = False
    offline_scan: bool = False
    cache_dir: str | None = None
    db_repository: str | None = None

    def __post_init__(self) -> None:
        # NaN compares false with everything: "<= 0" alone lets it through.
        if not math.isfinite(self.timeout) or self.timeout <= 0:
            raise UsageError(f"--trivy-timeout must be a positive number of seconds, "
                             f"not {self.timeout}")


def trivy_command(reference: str, options: TrivyOptions, executable: str) -> list[str]:
    """The argv for scanning ``reference`` (no credentials: those go in the environment)."""
    argv = [executable, "image", "--format", "json", "--quiet"]
    if options.skip_db_update:
        argv.append("--skip-db-update")
    if options.offline_scan:
        argv.append("--offline-scan")
    if options.cache_dir:
        argv += ["--cache-dir", options.cache_dir]
    if options.db_repository:
        argv += ["--db-repository", options.db_repository]
    argv.append(reference)
    return argv


def _tail(stderr: bytes, secret: str | None) -> str:
    text = stderr.decode("utf-8", "replace")
    if secret:
        text = text.replace(secret, "***")
    lines = text.strip().splitlines()[-_TAIL_LINES:]
    return "\n".join(lines)[-_TAIL_CHARS:] or "(no output on stderr)"


def run_trivy(
    image: ResolvedImage | str,
    *,
    username: str | None = None,
    password: str | None = None,
    options: TrivyOptions = TrivyOptions(),
    env: Mapping[str, str] | None = None,
) -> ScanReport:
    """Scan ``image`` (a :class:`ResolvedImage`, or a ``name@sha256:…`` string) with Trivy.

    ``env`` is the base environment (default: this process's); ``username``
    and ``password``, when given, replace any ``TRIVY_USERNAME``/``TRIVY_PASSWORD``
    in it. Raises :class:`ScannerError` when Trivy cannot produce a valid
    report, :class:`UsageError` for a reference not pinned by digest.
    """
    reference = image.pinned if isinstance(image, ResolvedImage) else image
    if "@sha256:" not in reference:
        raise UsageError(f"trivy must scan a digest-pinned reference, not {reference[:200]!r}")
    executable = shutil.which(options.executable)
    if executable is None:
        raise ScannerError(f"trivy not found (looked for {options.executable!r} on PATH)",
                           hint="install trivy or drop --scan trivy and pass reports instead")
    child_env = dict(os.environ if env is None else env)
    if username is not None:
        child_env["TRIVY_USERNAME"] = username
    if password is not None:
        child_env["TRIVY_PASSWORD"] = password
    secret = password or child_env.get("TRIVY_PASSWORD")
    argv = trivy_command(reference, options, executable)
    try:
        proc = subprocess.run(argv, env=child_env, capture_output=True,
                              timeout=options.timeout, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise ScannerError(f"trivy timed out after {options.timeout:g}s scanning {reference}:\n"
                           f"{_tail(e.stderr or b'', secret)}") from None
    except OSError as e:
        raise ScannerError(f"trivy could not be started: {e.strerror or e}") from None
    if proc.returncode != 0:
        raise ScannerError(f"trivy failed (exit {proc.returncode}) scanning {reference}:\n"
                           f"{_tail(proc.stderr, secret)}")
    source = f"trivy image {reference}"
    try:
        return parse_report(proc.stdout, source=source, kind="trivy")
    except ReportError as e:
        raise ScannerError(f"trivy printed no valid report: {e.message}\n"
                           f"{_tail(proc.stderr, secret)}") from None
