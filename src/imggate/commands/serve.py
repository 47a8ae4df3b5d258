"""``imggate serve``: the Kubernetes admission webhooks (validate, and mutate to pin digests)."""


import os
from pathlib import Path
from typing import Annotated

import typer

from imggate._app import app
from imggate.commands._registry_opts import CaFileOpt, InsecureOpt, PlatformOpt, parse_platform
from imggate.commands._signature_opts import (
    IgnoreTlogOpt,
    SignatureRepositoryOpt,
    TrustedRootOpt,
)
from imggate.errors import UsageError

#: The longest --deadline: the API server's 10 s webhook timeout less a margin for the answer.
MAX_DEADLINE = 9.5


@app.command()
def serve(
    tls_cert: Annotated[str, typer.Option(
        "--tls-cert", help="PEM certificate (chain) to serve; re-read when it changes.")],
    tls_key: Annotated[str, typer.Option(
        "--tls-key", help="PEM private key of --tls-cert; re-read when it changes.")],
    rules: Annotated[str | None, typer.Option(
        "--rules", help="Rules file (or a directory holding default.yaml); reloaded on "
                        "SIGHUP or when it changes (default: ./rules/default.yaml, else "
                        "the built-in rules).")] = None,
    env: Annotated[str | None, typer.Option(
        "--env", help="Environment for namespaces that match no environment or alias "
                      "(default: such namespaces are denied).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "0.0.0.0",  # noqa: S104
    port: Annotated[int, typer.Option("--port", help="TCP port to listen on.")] = 8443,
    deadline: Annotated[float, typer.Option(
        "--deadline", help="Seconds within which every review is answered (a review still "
                           "gathering evidence then is denied); at most 9.5, the API "
                           "server's 10 s webhook timeout less a margin.")] = 8.0,
    cache: Annotated[str | None, typer.Option(
        "--cache", help="redis://[:password@]host:port/db (rediss:// for TLS): a verdict "
                        "cache shared by replicas, sealed with --cache-key-file (default: "
                        "in-process only).")] = None,
    cache_key_file: Annotated[str | None, typer.Option(
        "--cache-key-file", help="Keys sealing the Redis entries (HMAC), one per line, "
                                 "32+ characters each: the first seals, every line is "
                                 "accepted (rotation). Required with --cache.")] = None,
    cache_ttl: Annotated[float, typer.Option(
        "--cache-ttl", help="Seconds an allow verdict is kept.")] = 300.0,
    deny_ttl: Annotated[float, typer.Option(
        "--deny-ttl", help="Seconds a denial is kept (0: never cached).")] = 30.0,
    tag_ttl: Annotated[float, typer.Option(
        "--tag-ttl", help="Seconds a tag's digest is kept (tags move).")] = 30.0,
    reports_dir: Annotated[str | None, typer.Option(
        "--reports-dir", help="Directory of scanner reports named by image digest "
                              "(sha256-<hex>*.json, or sha256-<hex>/).")] = None,
    registry_auth_file: Annotated[str | None, typer.Option(
        "--registry-auth-file", help="Registry credentials: a docker config.json (the "
                                     "kubernetes.io/dockerconfigjson Secret's file), used "
                                     "for registries the pod's pull secrets do not cover.")
    ] = None,
    pull_secrets: Annotated[bool | None, typer.Option(
        "--pull-secrets/--no-pull-secrets",
        help="Read each pod's imagePullSecrets and its service account's through the "
             "Kubernetes API (get on secrets and serviceaccounts) and read its images with "
             "them, as the kubelet pulls (default: on when running in a pod with a service "
             "account token, i.e. KUBERNETES_SERVICE_HOST and the token file are there).")
    ] = None,
    service_account_dir: Annotated[str | None, typer.Option(
        "--service-account-dir",
        help="The service account token, ca.crt and namespace used to read pull secrets "
             "(default: /var/run/secrets/kubernetes.io/serviceaccount).")] = None,
    client_ca: Annotated[str | None, typer.Option(
        "--client-ca", help="PEM CA bundle: require every caller's TLS client certificate "
                            "to be issued by it (the API server's, configured in its "
                            "AdmissionConfiguration kubeconfig); others are refused before "
                            "their request is read (default: callers are not "
                            "authenticated).")] = None,
    insecure_registry: InsecureOpt = None,
    ca_file: CaFileOpt = None,
    platform: PlatformOpt = None,
    insecure_ignore_tlog: IgnoreTlogOpt = False,
    trusted_root: TrustedRootOpt = None,
    signature_repository: SignatureRepositoryOpt = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Per-request registry timeout in seconds.")] = 5.0,
    audit_every: Annotated[str | None, typer.Option(
        "--audit-every", help="Also run imggate audit --cluster this often (e.g. 1h; and "
                              "after each rules reload) in one replica (a Redis lock with "
                              "--cache), exporting imggate_running_images and "
                              "imggate_running_violations on /metrics.")] = None,
    audit_lease: Annotated[str | None, typer.Option(
        "--audit-lease", help="With --audit-every: elect the replica that audits with this "
                              "coordination.k8s.io Lease, NAMESPACE/NAME (get, create and "
                              "update on leases; default: a Redis lock with --cache, else "
                              "every replica audits).")] = None,
) -> int:
    """Serve the admission webhooks over TLS: /validate, /mutate, /healthz, /readyz, /metrics."""
    from imggate.admission.cache import CacheTimes
    from imggate.admission.runner import Listen
    from imggate.admission.runner import serve as run_server
    from imggate.admission.server import ServeOptions
    from imggate.models import SignatureOptions
    from imggate.policy.loader import locate_rules
    from imggate.registry.credentials import CredentialStore, normalise_host
    from imggate.registry.limits import RequestLimits
    from imggate.registry.options import RegistryOptions
    from imggate.registry.pull_secrets import wanted

    for name, value in (("--deadline", deadline), ("--timeout", timeout)):
        if not value > 0:
            raise UsageError(f"{name} must be positive")
    if deadline > MAX_DEADLINE:
        raise UsageError(f"--deadline {deadline:g}: at most {MAX_DEADLINE:g} s (the API "
                         "server waits 10 s at most for a webhook, and the answer must "
                         "reach it before that)")
    if min(cache_ttl, deny_ttl, tag_ttl) < 0:
        raise UsageError("cache TTLs must not be negative")
    if not 0 < port < 65536:
        raise UsageError(f"--port {port}: not a TCP port")
    cache_keys = None
    if cache is not None:
        from imggate.admission.cache import check_url
        from imggate.admission.seal import load_cache_keys

        check_url(cache)
        if cache_key_file is None:
            raise UsageError("--cache needs --cache-key-file: every entry in Redis is sealed "
                             "with it (generate one with: openssl rand -hex 32)")
        cache_keys = load_cache_keys(cache_key_file)
    elif cache_key_file is not None:
        raise UsageError("--cache-key-file is used with --cache only")
    for flag, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key),
                       ("--registry-auth-file", registry_auth_file),
                       ("--client-ca", client_ca)):
        if path is not None and not Path(path).is_file():
            raise UsageError(f"{flag} {path}: no such file")
    if reports_dir is not None and not Path(reports_dir).is_dir():
        raise UsageError(f"--reports-dir {reports_dir}: no such directory")
    # Only the mounted file, read as the kubelet reads a pull secret (``auths`` only: no
    # credential helper runs in a cluster); a broken one is exit 2 now. A webhook must not
    # pick up whatever docker config its image carries.
    credentials: CredentialStore = CredentialStore(environ={})
    if registry_auth_file:
        from imggate.registry.pull_secrets import PullSecretCredentials, load_auth_file

        credentials = PullSecretCredentials(load_auth_file(registry_auth_file))
    root = None
    if trusted_root:
        from imggate.signatures.trustroot import load_trusted_roots

        root = load_trusted_roots(Path(trusted_root))
    location = locate_rules(Path(rules) if rules else None)
    account_dir = Path(service_account_dir) if service_account_dir else None
    options = ServeOptions(
        rules=location.path, env=env, deadline=deadline, cache_url=cache, cache_keys=cache_keys,
        cache_times=CacheTimes(allow=cache_ttl, deny=deny_ttl, tag=tag_ttl),
        reports_dir=Path(reports_dir) if reports_dir else None,
        registry=RegistryOptions(
            credentials=credentials,
            insecure_registries=frozenset(normalise_host(h) for h in insecure_registry or ()),
            ca_file=ca_file, timeout=min(timeout, deadline), retries=1,
            # One registry that never answers may hold a quarter of the requests.
            limits=RequestLimits(total=32, per_host=8)),
        signatures=SignatureOptions(
            ignore_tlog=insecure_ignore_tlog,
            trusted_root=Path(trusted_root) if trusted_root else None,
            signature_repository=signature_repository or os.environ.get("COSIGN_REPOSITORY")
            or None),
        platform=parse_platform(platform), trusted_root=root,
        pull_secrets=wanted(pull_secrets, service_account_dir=account_dir),
        service_account_dir=account_dir)
    schedule = None
    if audit_lease is not None and audit_every is None:
        raise UsageError("--audit-lease elects the replica that runs --audit-every: give both")
    if audit_every is not None:
        from imggate.admission.background_audit import AuditSchedule, parse_every, parse_lease

        every = parse_every(audit_every)
        schedule = AuditSchedule(every, rules=location.path, env=env,
                                 registry_auth_file=registry_auth_file,
                                 poll=min(5.0, every / 2), cache_url=cache,
                                 cache_key_file=str(Path(cache_key_file).resolve())
                                 if cache_key_file else None,
                                 lease=parse_lease(audit_lease) if audit_lease else None)
    run_server(options, Listen(host, port, Path(tls_cert), Path(tls_key),
                               client_ca=Path(client_ca) if client_ca else None), schedule)
    return 0
