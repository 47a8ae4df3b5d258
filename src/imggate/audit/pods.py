"""The pods of a cluster as ``imggate audit --cluster`` reads them: one row per container.

Pods are listed through the Kubernetes API with lightkube, a page at a time
(``limit``/``continue``), so a cluster's pods never sit in memory at once:
each page is reduced to frozen :class:`ContainerRow` values (namespace, pod,
container, the spec's reference and the digest the kubelet reports in
``status.containerStatuses[].imageID``) and dropped.

Where the API is: in-cluster configuration (the service account the kubelet
mounts) when running in a pod, else ``--kubeconfig`` (default: ``$KUBECONFIG``,
``~/.kube/config``) and ``--context``. The bearer token is registered for
redaction as soon as it is read.

Everything read is hostile input, bounded here: names must be object names,
an image reference at most :data:`MAX_IMAGE` characters, a pod at most
:data:`MAX_CONTAINERS` containers. A listing that fails part-way is an
:class:`ApiServerError` (exit 3): pods that were not read cannot be judged,
and reports written from part of a cluster would drop the others' results.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from sys import intern
from typing import Any

from imggate.errors import ConfigError, Error
from imggate.redact import register

#: The most containers (of all kinds) one pod is read with.
MAX_CONTAINERS = 256
#: The longest image reference or imageID taken from the API.
MAX_IMAGE = 1024
#: The most pull secrets read for one pod (as the webhook).
MAX_PULL_SECRETS = 64
#: Pods per page (``limit``) unless asked otherwise.
DEFAULT_PAGE = 500
# Object names (DNS subdomains); the API server never sends others, a stand-in might.
_NAME = re.compile(r"[a-z0-9A-Z](?:[a-z0-9A-Z._-]{0,251}[a-z0-9A-Z])?")
# What container runtimes put before a repo digest in imageID.
_RUNTIME_PREFIX = re.compile(r"^[a-z-]+://")
_REPO_DIGEST = re.compile(r"[^@\s]+@sha256:[0-9a-f]{64}")

#: The container kinds of a pod spec and the status list that reports each.
KINDS = (("initContainers", "initContainerStatuses", "init"),
         ("containers", "containerStatuses", "container"),
         ("ephemeralContainers", "ephemeralContainerStatuses", "ephemeral"))


class ApiServerError(Error):
    """The Kubernetes API could not be read: the cluster cannot be judged (exit 3)."""


@dataclass(frozen=True, slots=True)
class KubeSource:
    """Where the API server is: ``kubeconfig``/``context``, else in-cluster, else
    ``$KUBECONFIG`` / ``~/.kube/config`` (lightkube's ``from_env``)."""

    kubeconfig: Path | None = None
    context: str | None = None
    #: Seconds for each API request.
    timeout: float = 30.0
    #: Where the kubelet mounts the service account (tests point it elsewhere).
    service_account_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class ContainerRow:
    """One container of one pod: what its spec names and what the kubelet runs.

    ``running`` is the repo digest from the container's status
    (``registry/repo@sha256:...``), ``None`` when the container has not
    started or its runtime reported no registry digest (a locally built
    image's config ID): then the spec's reference is what is judged.
    """

    namespace: str
    pod: str
    uid: str
    container: str
    kind: str
    image: str
    running: str | None
    #: Why ``running`` is ``None`` although a status names an image (said in reports).
    note: str | None = None
    #: The pod's ``imagePullSecrets`` names and service account, for its pull credentials.
    pull_secrets: tuple[str, ...] = ()
    account: str = "default"

    @property
    def where(self) -> str:
        """``namespace/pod/container`` for messages."""
        return f"{self.namespace}/{self.pod}/{self.container}"


def open_client(source: KubeSource) -> Any:
    """A lightkube ``AsyncClient`` for ``source``; :class:`ConfigError` (exit 2) when there
    is no configuration to reach a cluster with."""
    import httpx2
    from lightkube import AsyncClient, KubeConfig
    from lightkube import ConfigError as KubeConfigError

    try:
        if source.kubeconfig is not None:
            config = KubeConfig.from_file(source.kubeconfig)
        elif source.service_account_dir is not None:
            config = KubeConfig.from_service_account(source.service_account_dir)
        else:
            config = KubeConfig.from_env()
        single = config.get(context_name=source.context)
    except (KubeConfigError, KeyError, OSError, ValueError) as e:
        where = (f"--kubeconfig {source.kubeconfig}" if source.kubeconfig is not None
                 else "in-cluster configuration, $KUBECONFIG or ~/.kube/config")
        what = f"{e.args[0]} is not set" if isinstance(e, KeyError) else f"{e!s:.200}"
        raise ConfigError(f"audit --cluster: no usable Kubernetes configuration from {where} "
                          f"({what})", hint="run in a pod with a service account, or pass "
                                            "--kubeconfig and --context") from None
    if single is None:
        raise ConfigError(f"audit --cluster: --context {source.context!r} is not in the "
                          "Kubernetes configuration")
    user = single.user
    if user is not None and user.token:
        # The API token is a secret of this run: redacted wherever it could surface.
        register(user.token.strip())
    return AsyncClient(single, timeout=httpx2.Timeout(source.timeout), field_manager="imggate")


def api_failure(e: BaseException, doing: str) -> ApiServerError:
    """An imggate error for a lightkube/httpx failure while ``doing`` something (never the
    response body or a header: a 401 body could quote what was sent)."""
    from lightkube import ApiError

    if isinstance(e, ApiError):
        code = e.status.code if e.status is not None else None
        hint = ("imggate's RBAC needs list on pods, get on secrets and serviceaccounts, and "
                "get/list/create/patch on policyreports" if code in (401, 403) else
                "is the report's CustomResourceDefinition installed (Kyverno or the Policy "
                "WG's policyreports.wgpolicyk8s.io; openreports.io for --report-format "
                "openreports)?" if code == 404 and "apply" in doing else None)
        return ApiServerError(f"Kubernetes API refused {doing}: HTTP {code}", hint=hint)
    return ApiServerError(f"Kubernetes API unreachable {doing} ({type(e).__name__})")


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ApiServerError(f"the API server sent a pod with an invalid {what} "
                             f"{str(value)[:80]!r}")
    return value


def check_namespace(name: str) -> str:
    """``--namespace`` must be a namespace name (it goes into an API path)."""
    from imggate.errors import UsageError

    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name):
        raise UsageError(f"--namespace {name[:80]!r} is not a namespace name")
    return name


def running_digest(image_id: object) -> str | None:
    """The repo digest in a status's ``imageID`` (``docker-pullable://`` and such removed),
    ``None`` when it names none (empty, or an image ID without a repository)."""
    if not isinstance(image_id, str) or not image_id or len(image_id) > MAX_IMAGE:
        return None
    text = _RUNTIME_PREFIX.sub("", image_id)
    return text if _REPO_DIGEST.fullmatch(text) else None


def pod_rows(pod: Mapping[str, Any]) -> list[ContainerRow]:
    """The containers of one Pod object (API JSON), init and ephemeral ones included."""
    meta = pod.get("metadata") if isinstance(pod.get("metadata"), dict) else {}
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    status = pod.get("status") if isinstance(pod.get("status"), dict) else {}
    assert isinstance(meta, dict)
    assert isinstance(spec, dict)
    assert isinstance(status, dict)
    namespace = _name(meta.get("namespace"), "namespace")
    name = _name(meta.get("name"), "pod name")
    uid = str(meta.get("uid") or "")[:64]
    refs = spec.get("imagePullSecrets")
    pull = tuple(dict.fromkeys(
        _name(r.get("name"), "pull secret name") for r in (refs if isinstance(refs, list)
                                                           else [])[:MAX_PULL_SECRETS]
        if isinstance(r, dict) and r.get("name")))
    account = spec.get("serviceAccountName") or "default"
    account = _name(account, "service account name")
    rows: list[ContainerRow] = []
    for spec_key, status_key, kind in KINDS:
        containers = spec.get(spec_key) or []
        statuses = status.get(status_key) or []
        if not isinstance(containers, list) or not isinstance(statuses, list):
            raise ApiServerError(f"pod {namespace}/{name}: {spec_key} is not a list")
        by_name = {s.get("name"): s for s in statuses[:MAX_CONTAINERS] if isinstance(s, dict)}
        for c in containers:
            if len(rows) >= MAX_CONTAINERS:
                raise ApiServerError(f"pod {namespace}/{name} has more than {MAX_CONTAINERS} "
                                     "containers")
            if not isinstance(c, dict):
                raise ApiServerError(f"pod {namespace}/{name}: a container is not an object")
            cname = _name(c.get("name"), "container name")
            image = c.get("image")
            if not isinstance(image, str) or not image or len(image) > MAX_IMAGE:
                image = str(image)[:MAX_IMAGE] if image else ""
            st = by_name.get(cname) or {}
            image_id = st.get("imageID")
            running = running_digest(image_id)
            note = None
            if running is None and isinstance(image_id, str) and image_id:
                note = ("the runtime reports no registry digest for the running image "
                        f"({image_id[:80]!r}): judged by the spec's reference")
            # Many pods run the same few images in the same namespaces: one copy of each
            # string is kept for the whole audit, however many pods name it.
            rows.append(ContainerRow(intern(namespace), name, uid, intern(cname), kind,
                                     intern(image), intern(running) if running else None,
                                     note, pull, intern(account)))
    return rows


async def list_pods(client: Any, namespaces: Sequence[str], *,
                    page: int = DEFAULT_PAGE) -> AsyncIterator[list[ContainerRow]]:
    """Each page of pods (every namespace, or each of ``namespaces``) as container rows."""
    import httpx2
    from lightkube import ApiError
    from lightkube.resources.core_v1 import Pod

    for ns in namespaces or ("*",):
        doing = f"listing pods in namespace {ns}" if ns != "*" else "listing pods"
        batch: list[ContainerRow] = []
        try:
            # lightkube asks for ``limit`` pods at a time and follows ``continue``; each
            # object is reduced to rows as it comes, so one page at most is held.
            async for obj in client.list(Pod, namespace=ns, chunk_size=page):
                batch += pod_rows(obj.to_dict())
                if len(batch) >= page:
                    yield batch
                    batch = []
        except (ApiError, httpx2.HTTPError) as e:
            raise api_failure(e, doing) from None
        if batch:
            yield batch
