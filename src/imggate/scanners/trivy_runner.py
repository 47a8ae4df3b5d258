"""Run Trivy on a digest-pinned image (``--scan trivy``).

``trivy image --format json --quiet [offline flags] <registry>/<repo>@sha256:…``
with registry credentials in ``TRIVY_USERNAME``/``TRIVY_PASSWORD`` (never in
argv, where ``ps`` shows them). Trivy missing, failing, timing out or
printing something that is not a valid report is a
:class:`~imggate.errors.ScannerError` (exit 3) with the tail of its stderr,
the password scrubbed from it.

:class:`TrivyScans` runs every scan of one ``check``: one at a time, because
Trivy's cache directory (vulnerability DB and layer cache) is a database one
process holds locked, and with the DB updated by the first scan only (the
others get ``--skip-db-update``). Each scan's raw JSON can be kept as
evidence (``evidence_dir``).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from imggate.errors import ReportError, ScannerError, UsageError
from imggate.models import ResolvedImage, ScanReport
from imggate.scanners.detect import parse_report
from imggate.values import replace

_TAIL_LINES = 20
_TAIL_CHARS = 4000


@dataclass(frozen=True, slots=True)
class TrivyOptions:
    """How to run Trivy.

    ``skip_db_update``/``offline_scan``/``cache_dir``/``db_repository`` are
    passed through as Trivy's flags of the same names, for air-gapped CI.
    ``evidence_dir``: keep each scan's raw JSON there (``trivy-<image>-<digest>.json``).
    """

    executable: str = "trivy"
    timeout: float = 600.0
    skip_db_update: bool = False
    offline_scan: bool = False
    cache_dir: str | None = None
    db_repository: str | None = None
    evidence_dir: str | None = None

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
        report = parse_report(proc.stdout, source=source, kind="trivy")
    except ReportError as e:
        raise ScannerError(f"trivy printed no valid report: {e.message}\n"
                           f"{_tail(proc.stderr, secret)}") from None
    if options.evidence_dir:
        keep_report(Path(options.evidence_dir), reference, proc.stdout)
    return report


def evidence_name(reference: str) -> str:
    """``trivy-<repository>-<first 12 of the digest>.json`` for ``name@sha256:…``."""
    name, _, digest = reference.partition("@")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name.split("/", 1)[-1])[:100].strip("._") or "image"
    return f"trivy-{safe}-{digest.partition(':')[2][:12]}.json"


def keep_report(directory: Path, reference: str, raw: bytes) -> Path:
    """Write Trivy's JSON for ``reference`` into ``directory`` as it was printed.

    Written under a temporary name, then renamed: a reader never sees half a
    report. The file mode follows the umask, like the other reports.
    """
    path = directory / evidence_name(reference)
    tmp = path.with_name(path.name + ".tmp")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except OSError as e:
        raise ScannerError(f"cannot keep trivy's report for {reference} in {directory}: "
                           f"{e.strerror or e}") from None
    return path


class TrivyScans:
    """Every Trivy scan of one run: one at a time, the vulnerability DB updated once.

    Scans are serialised because concurrent Trivy processes sharing a cache
    directory wait on (or time out on) its lock; the first successful scan
    updates the DB and every later one runs with ``--skip-db-update``.
    Safe to call from several threads.
    """

    def __init__(self, options: TrivyOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._db_fresh = options.skip_db_update

    def scan(self, image: ResolvedImage | str, *, username: str | None = None,
             password: str | None = None, env: Mapping[str, str] | None = None) -> ScanReport:
        """:func:`run_trivy` for ``image``, after any scan already running."""
        with self._lock:
            opts = replace(self.options, skip_db_update=True) if self._db_fresh else self.options
            report = run_trivy(image, username=username, password=password, options=opts,
                               env=env)
            # Only a scan that worked proves the DB is there: after a failure, try again.
            self._db_fresh = True
            return report
