"""``imggate check REF…``: the gate. Exit 0 allowed, 1 denied, 2 usage/config, 3 undecided."""


import contextlib
import functools
import gc
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

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
from imggate.commands._signature_opts import (
    CheckAttestationsOpt,
    CheckCertificateChainOpt,
    CheckCertificateOpt,
    CheckIdentityOpt,
    CheckIdentityRegexpOpt,
    CheckIssuerOpt,
    CheckIssuerRegexpOpt,
    CheckThresholdOpt,
    CheckTypeOpt,
    IgnoreTlogOpt,
    SignatureRepositoryOpt,
    TrustedRootOpt,
)
from imggate.errors import UsageError
from imggate.keyrefs import key_path
from imggate.text import printable

if TYPE_CHECKING:
    from imggate.evidence.attest import AttestPlan
    from imggate.models import Verdict
    from imggate.policy.loader import Policy
    from imggate.registry.deadline import Deadline
    from imggate.registry.options import RegistryOptions

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
    The program (:mod:`imggate._cli`) does not turn the collector on for it
    first, and ends the process before turning it back on.
    """

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        with _gc_paused():
            return command(*args, **kwargs)

    setattr(run, PAUSES_COLLECTOR, True)
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
        "--skip-db-update",
        help="Passed to every trivy scan (without it, the first scan of the run updates "
             "Trivy's DB and the others skip the update).")] = False,
    offline_scan: Annotated[bool, typer.Option("--offline-scan", help="Passed to trivy.")] = False,
    cache_dir: Annotated[str | None, typer.Option("--cache-dir", help="Passed to trivy.")] = None,
    db_repository: Annotated[str | None, typer.Option(
        "--db-repository", help="Passed to trivy.")] = None,
    key: Annotated[list[str] | None, typer.Option(
        "--key", help="Require a signature verified by this PEM public key (repeatable).")
    ] = None,
    certificate: CheckCertificateOpt = None,
    certificate_chain: CheckCertificateChainOpt = None,
    certificate_identity: CheckIdentityOpt = None,
    certificate_identity_regexp: CheckIdentityRegexpOpt = None,
    certificate_oidc_issuer: CheckIssuerOpt = None,
    certificate_oidc_issuer_regexp: CheckIssuerRegexpOpt = None,
    type_: CheckTypeOpt = None,
    attestations: CheckAttestationsOpt = False,
    threshold: CheckThresholdOpt = None,
    insecure_ignore_tlog: IgnoreTlogOpt = False,
    trusted_root: TrustedRootOpt = None,
    signature_repository: SignatureRepositoryOpt = None,
    severity: Annotated[list[str] | None, typer.Option(
        "--severity", help="As Trivy's: fail on these severities (e.g. CRITICAL,HIGH); "
                           "overrides the rules' severity.fail_on.")] = None,
    ignore_unfixed: Annotated[bool, typer.Option(
        "--ignore-unfixed", help="As Trivy's: findings without a fixed version don't count "
                                 "(overrides severity.ignore_unfixed).")] = False,
    allowlist: Annotated[list[str] | None, typer.Option(
        "--allowlist", help="Extra exceptions: imggate YAML, .trivyignore(.yaml), GitLab "
                            "vulnerability-allowlist.yml or OpenVEX (repeatable).")] = None,
    output_dir: Annotated[str, typer.Option(
        "--output-dir", "-o", help="Where reports are written.")] = "reports",
    default_branch_image: Annotated[str | None, typer.Option(
        "--default-branch-image", help="For GitLab's report: the image on the default branch.")
    ] = None,
    html_template: Annotated[str | None, typer.Option(
        "--html-template", help="Render imggate-report.html from this Jinja2 template "
                                "(sandboxed; context: docs/outputs.md) instead of the "
                                "built-in page.")] = None,
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
    attest: Annotated[bool, typer.Option(
        "--attest", help="Push the findings and the verdict as signed cosign attestations "
                         "(vuln + https://imggate.dev/verdict/v1) to the image's registry.")
    ] = False,
    attest_key: Annotated[str | None, typer.Option(
        "--attest-key", help="Private key for --attest, as cosign's --key: a cosign key "
                             "(password from $COSIGN_PASSWORD) or PKCS#8 PEM.")] = None,
) -> int:
    """Gate images: resolve, gather evidence, apply the rules, write reports."""
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
    identity = None
    if certificate_identity or certificate_identity_regexp or certificate_oidc_issuer \
            or certificate_oidc_issuer_regexp:
        from imggate.policy.loader import identity_from_flags

        identity = identity_from_flags(certificate_identity, certificate_identity_regexp,
                                       certificate_oidc_issuer, certificate_oidc_issuer_regexp)
    out_dir = _output_dir(output_dir)
    dotenv_path = Path(dotenv) if dotenv else None
    from imggate.scanners import read_ahead

    # A large report is read by a child on the other CPU while this process imports and
    # loads the rules (see imggate.scanners.read_ahead): the one the program started
    # before parsing the command line, or one forked now, before those imports.
    named = read_ahead.named({"--trivy-report": trivy_report, "--grype-report": grype_report,
                              "--gitlab-report": gitlab_report, "--report": report})
    ahead = read_ahead.take(named)
    from imggate import values
    from imggate.formats import outputs
    from imggate.formats.written_ahead import Plan
    from imggate.gate import CheckRequest, run_check
    from imggate.models import Decision, SignatureOptions
    from imggate.policy.effective import command_line
    from imggate.policy.loader import load_policy, locate_rules
    from imggate.registry.options import RegistryOptions

    with ahead, outputs.stale_removed_on_error(out_dir, dotenv_path), \
            contextlib.ExitStack() as later:
        page = None
        # Compiled and checked now: a syntax error, an unknown name or a construct the
        # sandbox refuses is exit 2 before any network work.
        if html_template:
            from imggate.formats import html_template as user_html

            page = user_html.load(Path(html_template))
        cli = command_line(
            keys=[_existing(key_path(k, flag), flag) for flag, paths
                  in (("--key", key), ("--certificate", certificate)) for k in paths or ()],
            identities=[identity] if identity else [],
            certificate_chains=[_existing(c, "--certificate-chain")
                                for c in certificate_chain or ()],
            threshold=threshold, attestation_types=type_ or [], any_attestation=attestations,
            severities=severity or [], ignore_unfixed=ignore_unfixed)
        where = locate_rules(Path(rules) if rules else None)
        policy = load_policy(
            where.path, env, found_by=where.found_by, cli=cli,
            allowlists=[_existing(a, "--allowlist") for a in allowlist or ()],
            discover=Path.cwd(),
        )
        for line in cli.overrides():
            # A flag that loosens or tightens the rules must be visible in the job log.
            sys.stderr.write(f"imggate: rules overridden by a flag: {line}\n")
        plan = None
        if filename:
            from imggate.admission.manifest_gate import prepare

            plan = prepare(filename, policy.rules_file, policy.env, env_given=bool(env),
                           namespace=namespace)
            parsed = [p.ref for p in plan.images]
        sig_repo = signature_repository or os.environ.get("COSIGN_REPOSITORY") or None
        attest_plan = None
        if attest or attest_key:
            from imggate.evidence.attest import plan_attest
            from imggate.evidence.signing_keys import password_from_env

            if not attest:
                raise UsageError("--attest-key is only used with --attest")
            given = bool(trivy_report or grype_report or gitlab_report or report)
            attest_plan = plan_attest(attest_key, parsed, have_evidence=given or bool(scan),
                                      signature_repository=sig_repo,
                                      password=password_from_env())
        options = registry_options(parsed, insecure=insecure_registry, ca_file=ca_file,
                                   username=username, password_stdin=password_stdin,
                                   timeout=timeout)
        assert isinstance(options, RegistryOptions)
        trivy = None
        if scan == "trivy":
            from imggate.scanners.trivy_runner import TrivyOptions

            trivy = TrivyOptions(timeout=trivy_timeout, skip_db_update=skip_db_update,
                                 offline_scan=offline_scan, cache_dir=cache_dir,
                                 db_repository=db_repository, evidence_dir=str(out_dir))
        request = CheckRequest(
            references=tuple(refs), refs=tuple(parsed), policy=policy, now=started,
            registry=options, platform=plat, trivy=trivy,
            deadline=limit,
            signatures=SignatureOptions(
                ignore_tlog=insecure_ignore_tlog,
                trusted_root=Path(trusted_root) if trusted_root else None,
                signature_repository=sig_repo,
            ),
            read_attestations=attest_plan is None,
        )
        if ahead.busy():
            # Waiting for the child anyway: what the rest of the run imports is imported
            # now, not after it.
            from imggate.gate import import_ahead

            import_ahead(request)
            outputs.prepare(html_page=page is None)
        # Every report is read before any network traffic: one that is missing or does not
        # parse is the user's to fix (exit 2), never "could not decide".
        reports = ahead.result()
        if reports is None:
            reports = read_ahead.read_reports(named)
        request = values.replace(request, reports=reports)
        # The GitLab report is mostly these findings: the child that read them makes their
        # parts meanwhile and writes it (imggate.formats.written_ahead), told where to and,
        # when the command line pins it, for which image (the ids are the image's).
        writer = ahead.writer(Plan(
            out_dir, images=tuple(f"{r.name}@{r.digest}" for r in parsed if r.digest),
            default_branch_image=default_branch_image))
        if writer is not None:
            later.enter_context(writer)
        if plan is None:
            verdict = run_check(request)
        else:
            from imggate.admission.manifest_gate import describe_rows, run_plan

            policies = {policy.env.name: policy}

            def policy_for(name: str) -> "Policy":
                if name not in policies:
                    policies[name] = load_policy(
                        where.path, name, found_by=where.found_by, cli=cli,
                        allowlists=[Path(a) for a in allowlist or ()],
                        discover=Path.cwd())
                return policies[name]

            result = run_plan(plan, request, policy_for)
            verdict = result.verdict
            if not quiet:
                sys.stdout.write("".join(line + "\n" for line in describe_rows(result)))
        published = outputs.publish(verdict, out_dir, started=started,
                                    default_branch_image=default_branch_image,
                                    dotenv=dotenv_path, html_template=page, ahead=writer)
    code = published.exit_code(verdict)
    failure = published.failure
    if attest_plan is not None:
        attested = _attest(attest_plan, verdict, policy, options, started, limit, code)
        if attested != code:
            failure, code = "the attestations could not all be pushed", attested
    if not quiet:
        from imggate.formats import console

        # The Result line states the code this process ends with, and why it is not the
        # verdict's when something after the decision failed.
        console.print_summary(verdict, written=published.written, exit_code=code,
                              failure=failure)
    else:
        # Quiet still says why an image could not be decided (exit 3 must be explained),
        # and what a denied image left unchecked.
        for iv in verdict.images:
            if iv.error:
                said = ("denied; also not checked" if iv.decision is Decision.DENY
                        else "error")
                # The error may quote a registry: one line, controls shown, not obeyed.
                sys.stderr.write(f"imggate: {said}: {printable(iv.reference)}: "
                                 f"{printable(iv.error)}\n")
    if published.template_error is not None:
        sys.stderr.write(f"imggate: error: --html-template: {published.template_error}; "
                         "the other reports were written\n")
    if published.error is not None:
        sys.stderr.write(f"imggate: error: {published.error}; no reports were left in "
                         f"{out_dir}\n")
        for path in published.left_behind:
            sys.stderr.write(f"imggate: error: could not remove the stale report {path}\n")
    return code


def _attest(plan: "AttestPlan", verdict: "Verdict", policy: "Policy", options: "RegistryOptions",
            started: datetime, deadline: "Deadline | None", code: int) -> int:
    """Push the attestations and say what happened (a failure is said, never skipped)."""
    from imggate import __version__
    from imggate.evidence.attest import attest_exit_code, describe, rules_identity, run_attest

    rf = policy.rules_file
    rules = rules_identity(rf.source, rf.sha256, rf.document)
    results = run_attest(verdict, plan.key, rules=rules, version=__version__, now=started,
                         options=options, signature_repository=plan.signature_repository,
                         deadline=deadline)
    for ok, line in describe(results):
        (sys.stdout if ok else sys.stderr).write(("" if ok else "imggate: error: ") + line
                                                 + "\n")
    return attest_exit_code(code, results)


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
