"""``imggate check REF…``: the gate. Exit 0 allowed, 1 denied, 2 usage/config, 3 undecided."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer

from imggate._app import app
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
from imggate.commands._signature_opts import (
    IdentityOpt,
    IdentityRegexpOpt,
    IgnoreTlogOpt,
    IssuerOpt,
    IssuerRegexpOpt,
    SignatureRepositoryOpt,
    TrustedRootOpt,
)
from imggate.errors import Error, UsageError

if TYPE_CHECKING:
    from imggate.models import ScanReport, Verdict
    from imggate.policy.loader import Policy

T = TypeVar("T")
P = ParamSpec("P")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic collector (and resume it after, if it was running)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _collector_paused(command: Callable[P, T]) -> Callable[P, T]:
    """Run ``command`` with the cyclic collector paused.

    A check holds every finding (hundreds of thousands of containers at
    10,000 findings) until it exits, and each collection walks the ones not
    yet promoted again: ~0.1 s of a run. What a check builds is acyclic or
    freed with the process; reference counting still frees everything else.
    """

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        with _gc_paused():
            return command(*args, **kwargs)

    return run


@app.command()
@_collector_paused
def check(
    refs: Annotated[list[str] | None, typer.Argument(
        help="Image references (or oci:PATH[:TAG|@DIGEST]).", show_default=False)] = None,
    filename: Annotated[list[str] | None, typer.Option(
        "--filename", "-f", help="Rendered Kubernetes manifests (YAML or JSON; '-': stdin): "
                                 "gate every container image in them, each under its "
                                 "namespace's environment (repeatable).")] = None,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", help="With -f: the namespace of objects that name none "
                                  "(as kubectl apply -n).")] = None,
    env: Annotated[str | None, typer.Option(
        "--env", help="Environment (default: $CI_ENVIRONMENT_TIER, $CI_ENVIRONMENT_NAME, "
                      "else the rules' default).")] = None,
    rules: Annotated[str | None, typer.Option(
        "--rules", help="Rules file, or a directory holding default.yaml "
                        "(default: ./rules/default.yaml, else the built-in rules).")] = None,
    trivy_report: Annotated[list[str] | None, typer.Option(
        "--trivy-report", help="Trivy JSON/SARIF/CycloneDX report (repeatable).")] = None,
    grype_report: Annotated[list[str] | None, typer.Option(
        "--grype-report", help="Grype JSON report (repeatable).")] = None,
    gitlab_report: Annotated[list[str] | None, typer.Option(
        "--gitlab-report", help="GitLab container-scanning report (repeatable).")] = None,
    report: Annotated[list[str] | None, typer.Option(
        "--report", help="A scanner report of any supported kind, detected (repeatable).")
    ] = None,
    scan: Annotated[str | None, typer.Option(
        "--scan", help="Run a scanner on the pinned image: 'trivy'.")] = None,
    trivy_timeout: Annotated[float, typer.Option(
        "--trivy-timeout", help="Seconds before a Trivy scan is abandoned.")] = 600.0,
    skip_db_update: Annotated[bool, typer.Option(
        "--skip-db-update", help="Passed to trivy.")] = False,
    offline_scan: Annotated[bool, typer.Option("--offline-scan", help="Passed to trivy.")] = False,
    cache_dir: Annotated[str | None, typer.Option("--cache-dir", help="Passed to trivy.")] = None,
    db_repository: Annotated[str | None, typer.Option(
        "--db-repository", help="Passed to trivy.")] = None,
    key: Annotated[list[str] | None, typer.Option(
        "--key", help="Require a signature verified by this PEM public key (repeatable).")
    ] = None,
    certificate_identity: IdentityOpt = None,
    certificate_identity_regexp: IdentityRegexpOpt = None,
    certificate_oidc_issuer: IssuerOpt = None,
    certificate_oidc_issuer_regexp: IssuerRegexpOpt = None,
    insecure_ignore_tlog: IgnoreTlogOpt = False,
    trusted_root: TrustedRootOpt = None,
    signature_repository: SignatureRepositoryOpt = None,
    allowlist: Annotated[list[str] | None, typer.Option(
        "--allowlist", help="Extra exceptions: imggate YAML, .trivyignore(.yaml), GitLab "
                            "vulnerability-allowlist.yml or OpenVEX (repeatable).")] = None,
    output_dir: Annotated[str, typer.Option(
        "--output-dir", "-o", help="Where reports are written.")] = "reports",
    default_branch_image: Annotated[str | None, typer.Option(
        "--default-branch-image", help="For GitLab's report: the image on the default branch.")
    ] = None,
    dotenv: Annotated[str | None, typer.Option(
        "--dotenv", help="Also write the outcome (IMGGATE_DIGEST, IMGGATE_VERDICT, "
                         "IMGGATE_EXIT_CODE, report paths) as a GitLab dotenv report.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No console summary.")] = False,
    platform: PlatformOpt = None,
    insecure_registry: InsecureOpt = None,
    ca_file: CaFileOpt = None,
    username: UsernameOpt = None,
    password_stdin: PasswordStdinOpt = False,
    timeout: TimeoutOpt = 30.0,
    deadline: DeadlineOpt = DEFAULT_DEADLINE,
) -> int:
    """Gate images: resolve, gather evidence, apply the rules, write reports."""
    from imggate.gate import CheckRequest, SignatureOptions, run_check
    from imggate.policy.loader import identity_from_flags, load_policy, locate_rules
    from imggate.registry.client import RegistryOptions

    started = datetime.now(UTC)
    limit = parse_deadline(deadline)
    if bool(refs) == bool(filename):
        raise UsageError("give image references or -f FILE (not both)" if refs else
                         "give image references to check, or -f FILE with manifests")
    if namespace is not None and not filename:
        raise UsageError("--namespace only applies to -f manifests")
    refs = list(refs or ())
    parsed = parse_refs(refs)
    plat = parse_platform(platform)
    if scan not in (None, "trivy"):
        raise UsageError(f"--scan {scan!r}: the only scanner imggate runs itself is 'trivy'")
    identity = identity_from_flags(certificate_identity, certificate_identity_regexp,
                                   certificate_oidc_issuer, certificate_oidc_issuer_regexp)
    where = locate_rules(Path(rules) if rules else None)
    policy = load_policy(
        where.path, env, found_by=where.found_by,
        keys=[_existing(k, "--key") for k in key or ()],
        identities=[identity] if identity else [],
        allowlists=[_existing(a, "--allowlist") for a in allowlist or ()],
        discover=Path.cwd(),
    )
    plan = None
    if filename:
        from imggate.admission.manifest_gate import prepare

        plan = prepare(filename, policy.rules_file, policy.env, env_given=bool(env),
                       namespace=namespace)
        parsed = [p.ref for p in plan.images]
    reports = _load_reports(trivy_report, grype_report, gitlab_report, report)
    out_dir = _output_dir(output_dir)
    options = registry_options(parsed, insecure=insecure_registry, ca_file=ca_file,
                               username=username, password_stdin=password_stdin, timeout=timeout)
    assert isinstance(options, RegistryOptions)
    trivy = None
    if scan == "trivy":
        from imggate.scanners.trivy_runner import TrivyOptions

        trivy = TrivyOptions(timeout=trivy_timeout, skip_db_update=skip_db_update,
                             offline_scan=offline_scan, cache_dir=cache_dir,
                             db_repository=db_repository)
    request = CheckRequest(
        references=tuple(refs), refs=tuple(parsed), policy=policy, now=started,
        reports=reports, registry=options, platform=plat, trivy=trivy, deadline=limit,
        signatures=SignatureOptions(
            ignore_tlog=insecure_ignore_tlog,
            trusted_root=Path(trusted_root) if trusted_root else None,
            signature_repository=signature_repository or os.environ.get("COSIGN_REPOSITORY")
            or None,
        ),
    )
    if plan is None:
        verdict = run_check(request)
    else:
        from imggate.admission.manifest_gate import describe_rows, run_plan

        policies = {policy.env.name: policy}

        def policy_for(name: str) -> Policy:
            if name not in policies:
                policies[name] = load_policy(
                    where.path, name, found_by=where.found_by,
                    keys=[Path(k) for k in key or ()],
                    identities=[identity] if identity else [],
                    allowlists=[Path(a) for a in allowlist or ()], discover=Path.cwd())
            return policies[name]

        result = run_plan(plan, request, policy_for)
        verdict = result.verdict
        if not quiet:
            sys.stdout.write("".join(line + "\n" for line in describe_rows(result)))
    written = write_outputs(verdict, out_dir, started=started,
                            default_branch_image=default_branch_image)
    if dotenv:
        from imggate.formats import dotenv as dotenv_report

        written.append(dotenv_report.write(Path(dotenv), verdict, written))
    if not quiet:
        from imggate.formats import console

        console.print_summary(verdict, written=tuple(written))
    else:
        # Quiet still says why an image could not be decided: exit 3 must be explained.
        for iv in verdict.images:
            if iv.error:
                sys.stderr.write(f"imggate: error: {iv.reference}: {iv.error}\n")
    return verdict.exit_code


def _output_dir(path: str) -> Path:
    """Create ``--output-dir`` up front: a bad one is a usage error before any work."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--output-dir {path}: cannot create it ({e.strerror})") from None
    if not os.access(p, os.W_OK):
        raise UsageError(f"--output-dir {path}: not writable")
    return p


def _existing(path: str, flag: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{flag} {path}: no such file")
    return p


def _load_reports(trivy: list[str] | None, grype: list[str] | None, gitlab: list[str] | None,
                  auto: list[str] | None) -> tuple[ScanReport, ...]:
    """Read every report before any network traffic: an unreadable one is exit 3 up front."""
    from imggate.scanners.detect import load_report

    out = []
    for kind, paths in (("trivy", trivy), ("grype", grype), ("gitlab", gitlab), (None, auto)):
        for p in paths or ():
            out.append(load_report(p, kind))
    return tuple(out)


def write_outputs(verdict: Verdict, directory: Path, *, started: datetime,
                  default_branch_image: str | None = None) -> list[Path]:
    """Write the GitLab report, HTML, JUnit and verdict JSON into ``directory``."""
    from imggate.formats import gitlab, html, junit, verdict_json

    directory.mkdir(parents=True, exist_ok=True)
    gl_path = directory / "gl-container-scanning-report.json"

    def write_gitlab() -> None:
        gitlab.write(gl_path, gitlab_document(verdict, started=started,
                                              default_branch_image=default_branch_image))

    def write_others() -> list[Path]:
        return [html.write(verdict, directory), junit.write(verdict, directory),
                verdict_json.write(verdict, directory)]

    findings = sum(len(iv.findings) + len(iv.suppressed) for iv in verdict.images)
    return [gl_path, *_alongside(write_gitlab, write_others,
                                 fork=findings >= _FORK_MIN_FINDINGS and _can_fork())]


#: Below this many findings the reports take a few ms; a second process is not worth it.
_FORK_MIN_FINDINGS = 2000


def _can_fork() -> bool:
    """A second CPU to use, and a process that can be forked safely (one thread)."""
    if not hasattr(os, "fork") or threading.active_count() != 1:
        return False
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cpus or 1) > 1


def _alongside(job: Callable[[], None], main: Callable[[], T], *, fork: bool) -> T:
    """Run ``job`` and ``main``; with ``fork``, ``job`` runs in a child process meanwhile.

    The reports are independent files written atomically: the GitLab report
    (the largest) is built and written by a forked child (copy-on-write: the
    verdict is not copied) while this process writes the others, which halves
    the report time on two CPUs. Whatever happens here, the child is waited
    for; its failure is raised here as an :class:`~imggate.errors.Error`.
    """
    if not fork:
        job()
        return main()
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: run the job, say what went wrong, never return
        code = 1
        try:
            os.close(read_end)
            job()
            code = 0
        except BaseException as e:  # the parent reports it and fails
            text = e.message if isinstance(e, Error) else f"{type(e).__name__}: {e}"
            with contextlib.suppress(OSError):
                os.write(write_end, text.encode("utf-8", "replace")[:4096])
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        result = main()
    finally:
        with os.fdopen(read_end, "rb") as pipe:
            message = pipe.read().decode("utf-8", "replace")
        _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise Error(message or f"writing the GitLab report failed (exit status {code})")
    return result


def gitlab_document(verdict: Verdict, *, started: datetime,
                    default_branch_image: str | None = None) -> dict[str, object]:
    """One GitLab container-scanning document for every image of the run.

    Suppressed findings are left out (as Trivy leaves out ignored ones); an
    image that could not be decided makes the scan status ``failure``.
    """
    from imggate.formats import gitlab

    ended = datetime.now(UTC)
    docs = []
    for iv in verdict.images:
        if iv.image is None:
            continue
        scanners = tuple(dict.fromkeys(r.scanner for r in iv.reports))
        os_name = next((r.operating_system for r in iv.reports if r.operating_system), None)
        docs.append(gitlab.render(iv.findings, image=iv.image.pinned, operating_system=os_name,
                                  scanners=scanners, start=started, end=ended,
                                  default_branch_image=default_branch_image))
    failed = verdict.exit_code == 3
    if not docs:
        return gitlab.render((), image="unknown", operating_system=None, scanners=(),
                             start=started, end=ended, status="failure")
    doc = docs[0]
    for extra in docs[1:]:
        doc["vulnerabilities"].extend(extra["vulnerabilities"])
    if failed:
        doc["scan"]["status"] = "failure"
    return doc
