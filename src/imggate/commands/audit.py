"""``imggate audit REPOSITORY``: every tag through the gate, with GitLab's cleanup-policy view."""


import contextlib
import gc
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imggate._app import app
from imggate.commands._registry_opts import (
    CaFileOpt,
    InsecureOpt,
    PasswordStdinOpt,
    TimeoutOpt,
    UsernameOpt,
    parse_deadline,
    parse_refs,
    registry_options,
)
from imggate.commands._signature_opts import (
    IdentityOpt,
    IdentityRegexpOpt,
    IgnoreTlogOpt,
    IssuerOpt,
    IssuerRegexpOpt,
)
from imggate.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from imggate.audit.shared_cache import SharedCache
    from imggate.policy.loader import Policy

_DURATION = re.compile(r"([1-9][0-9]{0,4})([hdw])")


def parse_older_than(text: str | None) -> timedelta | None:
    """``--older-than`` as GitLab writes it (``7d``, ``90d``; also hours and weeks)."""
    if text is None:
        return None
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise UsageError(f"--older-than {text!r}: expected a number and h, d or w, e.g. 30d")
    n, unit = int(m.group(1)), m.group(2)
    return {"h": timedelta(hours=n), "d": timedelta(days=n), "w": timedelta(weeks=n)}[unit]


@app.command()
def audit(
    ctx: typer.Context,
    repository: Annotated[str | None, typer.Argument(
        help="A repository (registry/name, no tag), e.g. registry.example.com/team/app; "
             "none with --cluster.", show_default=False)] = None,
    cluster: Annotated[bool, typer.Option(
        "--cluster", help="Judge what every pod of the cluster runs now (the digest the "
                          "kubelet pulled) and write PolicyReports.")] = False,
    namespace: Annotated[list[str] | None, typer.Option(
        "--namespace", "-n", help="With --cluster: only this namespace (repeatable).")] = None,
    kubeconfig: Annotated[str | None, typer.Option(
        "--kubeconfig", help="With --cluster: the kubeconfig file (default: in-cluster "
                             "configuration, else $KUBECONFIG or ~/.kube/config).")] = None,
    context: Annotated[str | None, typer.Option(
        "--context", help="With --cluster: the kubeconfig context.")] = None,
    report_format: Annotated[str, typer.Option(
        "--report-format", help="With --cluster: policyreport (wgpolicyk8s.io/v1alpha2) or "
                                "openreports (openreports.io/v1alpha1).")] = "policyreport",
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="With --cluster: print the reports as YAML instead of applying "
                          "them.")] = False,
    total_deadline: Annotated[float, typer.Option(
        "--total-deadline", help="With --cluster: seconds the whole audit may take, listing "
                                 "pods included.")] = 3600.0,
    page_size: Annotated[int, typer.Option(
        "--page-size", min=1, max=5000, help="With --cluster: pods asked for per API "
                                             "request (limit/continue).")] = 500,
    cache: Annotated[str | None, typer.Option(
        "--cache", envvar="IMGGATE_CACHE_URL", show_envvar=True,
        help="With --cluster: the webhook's Redis verdict cache (redis://[:password@]host:"
             "port/db, rediss:// for TLS), read and written as imggate serve --cache does, "
             "sealed with --cache-key-file.")] = None,
    cache_key_file: Annotated[str | None, typer.Option(
        "--cache-key-file", help="With --cache: the webhook's cache keys (the same file as "
                                 "serve --cache-key-file).")] = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="With --cache: read no verdict from the cache, judge every image "
                        "again (e.g. after a key rotation) and write the results.")] = False,
    tags: Annotated[str | None, typer.Option(
        "--tags", help="Cleanup's name_regex: tags the cleanup policy may remove "
                       "(whole-name regex). Without it, cleanup keeps every tag.")] = None,
    keep_regex: Annotated[str | None, typer.Option(
        "--keep-regex", help="Cleanup's name_regex_keep: tags it always keeps.")] = None,
    keep_n: Annotated[int | None, typer.Option(
        "--keep-n", min=1, help="Cleanup's keep_n: the N most recent matching tags are kept.")
    ] = None,
    older_than: Annotated[str | None, typer.Option(
        "--older-than", help="Cleanup's older_than: only tags older than this are removed "
                             "(e.g. 30d).")] = None,
    only_kept: Annotated[bool, typer.Option(
        "--only-kept", help="Check only the tags the cleanup policy keeps.")] = False,
    env: Annotated[list[str] | None, typer.Option(
        "--env", help="Environment to judge every tag in (repeatable; default: as check).")
    ] = None,
    rules: Annotated[str | None, typer.Option(
        "--rules", help="Rules file or directory (default: ./rules/default.yaml, else "
                        "built-in).")] = None,
    key: Annotated[list[str] | None, typer.Option(
        "--key", help="Require a signature verified by this PEM public key (repeatable).")
    ] = None,
    certificate_identity: IdentityOpt = None,
    certificate_identity_regexp: IdentityRegexpOpt = None,
    certificate_oidc_issuer: IssuerOpt = None,
    certificate_oidc_issuer_regexp: IssuerRegexpOpt = None,
    insecure_ignore_tlog: IgnoreTlogOpt = False,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, max=128, help="Registry requests in flight.")] = 16,
    output_dir: Annotated[str, typer.Option(
        "--output-dir", "-o", help="Where reports are written (one folder per environment "
                                   "when several are given).")] = "reports",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No table, no progress.")] = False,
    insecure_registry: InsecureOpt = None,
    ca_file: CaFileOpt = None,
    username: UsernameOpt = None,
    password_stdin: PasswordStdinOpt = False,
    timeout: TimeoutOpt = 30.0,
    deadline: Annotated[float, typer.Option(
        "--deadline", help="Seconds the whole audit may spend on registries.",
        show_default=True)] = 900.0,
) -> int:
    """Check every tag of a repository; show which ones a GitLab cleanup policy keeps.
    With --cluster: judge what every pod runs and write PolicyReports."""
    if cluster:
        return _cluster(repository=repository, namespaces=namespace or [],
                        kubeconfig=kubeconfig, context=context, report_format=report_format,
                        dry_run=dry_run, total=total_deadline, page=page_size, env=env or [],
                        rules=rules, signer_flags=bool(key or certificate_identity
                                                       or certificate_identity_regexp
                                                       or certificate_oidc_issuer
                                                       or certificate_oidc_issuer_regexp),
                        cleanup_flags=bool(tags or keep_regex or keep_n or older_than
                                           or only_kept),
                        ignore_tlog=insecure_ignore_tlog, concurrency=concurrency,
                        output_dir=output_dir, quiet=quiet, insecure=insecure_registry,
                        ca_file=ca_file, username=username, password_stdin=password_stdin,
                        timeout=timeout, deadline=deadline, cache=cache,
                        cache_key_file=cache_key_file, fresh=fresh)
    if repository is None:
        raise UsageError("give a repository to audit, or --cluster")
    # IMGGATE_CACHE_URL set for the cluster audit does not stop a repository's audit.
    source = ctx.get_parameter_source("cache")
    cache_given = cache is not None and getattr(source, "name", None) != "ENVIRONMENT"
    for flag, given in (("--namespace", namespace), ("--kubeconfig", kubeconfig),
                        ("--context", context), ("--dry-run", dry_run), ("--cache", cache_given),
                        ("--cache-key-file", cache_key_file), ("--fresh", fresh)):
        if given:
            raise UsageError(f"{flag} only applies with --cluster")
    from imggate._ahead import ahead, failure
    from imggate.audit.cleanup import CleanupPolicy
    from imggate.audit.run import AuditRequest
    from imggate.models import SignatureOptions
    from imggate.registry.options import RegistryOptions

    now = datetime.now(UTC)
    limit = parse_deadline(deadline)
    (repo,) = parse_refs([repository])
    cleanup = CleanupPolicy(name_regex=tags, name_regex_keep=keep_regex, keep_n=keep_n,
                            older_than=parse_older_than(older_than))
    cwd = Path.cwd()

    def load() -> "Mapping[str, Policy]":
        """The environments' policies (every rules error as before: exit 2)."""
        from imggate.policy.loader import identity_from_flags, load_policy, locate_rules

        identity = identity_from_flags(certificate_identity, certificate_identity_regexp,
                                       certificate_oidc_issuer, certificate_oidc_issuer_regexp)
        where = locate_rules(Path(rules) if rules else None)
        keys = [Path(k) for k in key or ()]
        for k in keys:
            if not k.is_file():
                raise UsageError(f"--key {k}: no such file")
        policies = {}
        names: list[str | None] = list(env) if env else [None]
        for name in names:
            policy = load_policy(where.path, name, found_by=where.found_by, keys=keys,
                                 identities=[identity] if identity else [], discover=cwd)
            policies[policy.rules.env] = policy
        # What judging the tags imports, imported here too while the registry answers (the
        # judging is a phase of its own after the listing, one CPU used, the registry idle).
        import imggate.registry.memo  # noqa: F401
        from imggate.gate import import_deciding

        import_deciding()
        if not quiet:
            from imggate.audit.summary import prepare_console

            prepare_console()
        return policies

    # The policy layer is imported and the rules read on a thread of their own while the
    # tags are listed and resolved (~0.5G instructions that kept the registry idle). A
    # rules error is still the command's error, whatever else failed meanwhile: exit 2,
    # the same message, no report written (the registry was read, nothing judged).
    policies = ahead(load, "imggate-rules")
    out = Path(output_dir)
    made = [d for d in (out, *out.parents) if not d.exists()]  # what _run creates
    try:
        options = registry_options([repo], insecure=insecure_registry, ca_file=ca_file,
                                   username=username, password_stdin=password_stdin,
                                   timeout=timeout)
        assert isinstance(options, RegistryOptions)
        request = AuditRequest(repository=repo, policies=policies, now=now, registry=options,
                               cleanup=cleanup, only_kept=only_kept, concurrency=concurrency,
                               deadline=limit,
                               signatures=SignatureOptions(ignore_tlog=insecure_ignore_tlog))
        return _run(request, out, quiet=quiet)
    except Exception:
        rules_error = failure(policies)
        if rules_error is not None:
            for d in made:  # deepest first; rmdir removes only what stayed empty
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise rules_error from None
        raise


def _run(request: object, out: Path, *, quiet: bool) -> int:
    """Run the audit with progress, write the reports, print the table."""
    from imggate.audit.run import AuditRequest

    assert isinstance(request, AuditRequest)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--output-dir {out}: cannot create it ({e.strerror})") from None
    # Paused, as for check: an audit holds every tag's verdict until it exits and makes
    # almost no cycles (1,002 tags: ~250 collections, 0.1-0.2 s, freed ~860 objects, the
    # same peak memory without them), and the child that writes the HTML page copies no
    # page for a collection either. Reference counting still frees the rest.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _audited(request, out, quiet=quiet)
    finally:
        if collecting:
            gc.enable()


def _audited(request: object, out: Path, *, quiet: bool) -> int:
    """The audit and its reports (the collector paused by :func:`_run`)."""
    from imggate.audit import summary
    from imggate.audit.run import AuditRequest, run_audit
    from imggate.formats.outputs import write_outputs
    from imggate.logs import each_message_once

    assert isinstance(request, AuditRequest)
    with each_message_once():
        if quiet:
            result = run_audit(request)
        else:
            # rich (the progress, the table) only when something is shown: not with -q.
            from imggate.audit.progress import AuditProgress

            with AuditProgress() as progress:
                result = run_audit(request, progress)
    written = []
    several = len(result.verdicts) > 1
    last = len(result.verdicts) - 1
    for n, (env, verdict) in enumerate(result.verdicts.items()):
        # The summary with the last environment's reports, while its HTML page is written.
        written += write_outputs(verdict, out / env if several else out, started=request.now,
                                 meanwhile=(lambda: summary.write(result, out)) if n == last
                                 else None)
    if not result.verdicts:
        written.append(summary.write(result, out))
    if not quiet:
        from imggate.formats.console import make_console

        # Colour and wrapping only on a terminal: in a job log no line is cut.
        summary.print_summary(result, make_console(), written)
    return result.exit_code


def _cluster(*, repository: str | None, namespaces: list[str], kubeconfig: str | None,
             context: str | None, report_format: str, dry_run: bool, total: float, page: int,
             env: list[str], rules: str | None, signer_flags: bool, cleanup_flags: bool,
             ignore_tlog: bool, concurrency: int, output_dir: str, quiet: bool,
             insecure: list[str] | None, ca_file: str | None, username: str | None,
             password_stdin: bool, timeout: float, deadline: float, cache: str | None = None,
             cache_key_file: str | None = None, fresh: bool = False) -> int:
    """``audit --cluster``: the flags checked and turned into a request; the rest is in
    :mod:`imggate.audit.cluster_run`."""
    from imggate.admission.policies import load_policy_set
    from imggate.audit.cluster import ClusterRequest
    from imggate.audit.cluster_run import run_and_publish
    from imggate.audit.pods import KubeSource, check_namespace
    from imggate.audit.policyreport import ReportFormat
    from imggate.models import SignatureOptions
    from imggate.policy.loader import locate_rules
    from imggate.registry.options import RegistryOptions

    if repository is not None:
        raise UsageError("--cluster audits the cluster's pods: give no repository")
    if cleanup_flags:
        raise UsageError("--tags, --keep-regex, --keep-n, --older-than and --only-kept are "
                         "about a repository's tags, not --cluster")
    if signer_flags:
        raise UsageError("--cluster applies the rules as the webhook does: name keys and "
                         "identities in the rules, not with --key or --certificate-*")
    if username or password_stdin:
        raise UsageError("--cluster reads registries with the docker config's credentials "
                         "(and --ca-file, --insecure-registry): --username names one "
                         "repository's registry")
    if len(env) > 1:
        raise UsageError("--cluster takes one --env: the environment of namespaces the rules "
                         "do not map (as serve --env)")
    try:
        fmt = ReportFormat(report_format)
    except ValueError:
        raise UsageError(f"--report-format {report_format!r}: expected "
                         + " or ".join(f.value for f in ReportFormat)) from None
    for ns in namespaces:
        check_namespace(ns)
    if not total > 0:
        raise UsageError("--total-deadline must be a positive number of seconds")
    limit = parse_deadline(deadline)
    kube = Path(kubeconfig) if kubeconfig else None
    if kube is not None and not kube.is_file():
        raise UsageError(f"--kubeconfig {kubeconfig}: no such file")
    shared = _shared_cache(cache, cache_key_file, fresh)
    where = locate_rules(Path(rules) if rules else None)
    policies = load_policy_set(where.path, env[0] if env else None)
    options = registry_options([], insecure=insecure, ca_file=ca_file, username=username,
                               password_stdin=password_stdin, timeout=timeout)
    assert isinstance(options, RegistryOptions)
    request = ClusterRequest(
        policies=policies, now=datetime.now(UTC), registry=options,
        source=KubeSource(kubeconfig=kube, context=context, timeout=timeout),
        namespaces=tuple(dict.fromkeys(namespaces)), concurrency=concurrency, deadline=limit,
        total=total, signatures=SignatureOptions(ignore_tlog=ignore_tlog), page=page,
        cache=shared)
    return run_and_publish(request, Path(output_dir), fmt=fmt, dry_run=dry_run, quiet=quiet)


def _shared_cache(url: str | None, key_file: str | None, fresh: bool) -> "SharedCache | None":
    """``--cache``, ``--cache-key-file`` and ``--fresh`` checked as ``serve`` checks them."""
    from imggate.audit.shared_cache import SharedCache

    if url is None:
        if key_file is not None:
            raise UsageError("--cache-key-file is used with --cache only")
        if fresh:
            raise UsageError("--fresh bypasses the verdict cache: it is used with --cache "
                             "(without it every image is judged afresh anyway)")
        return None
    from imggate.admission.cache import check_url
    from imggate.admission.seal import load_cache_keys

    check_url(url)
    if key_file is None:
        raise UsageError("--cache needs --cache-key-file (the webhook's, serve "
                         "--cache-key-file): every entry in Redis is sealed with it")
    return SharedCache(url, load_cache_keys(key_file), fresh=fresh)
