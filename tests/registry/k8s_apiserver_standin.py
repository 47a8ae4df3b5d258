"""A STAND-IN for kube-apiserver (no apiserver binary runs here): real objects, real TLS, a token.

It answers what imggate's webhook asks the API server for pull secrets:
``GET /api/v1/namespaces/{ns}/secrets/{name}`` and
``GET /api/v1/namespaces/{ns}/serviceaccounts/{name}``, with the objects it was
given (real Secret / ServiceAccount JSON from tests/fixtures/k8s), over HTTPS
with a certificate from its own CA, and only for ``Authorization: Bearer
<token>`` (401 otherwise), as an in-cluster client expects. Errors are
``v1.Status`` objects, as the API server sends them. ``forbidden`` names
objects it answers 403 for (RBAC missing), ``slow`` those it answers only after
that many seconds (an overloaded API server). :meth:`service_account_dir`
writes what the kubelet mounts into a pod (token, namespace, ca.crt).

For ``imggate audit --cluster`` it also answers, as kube-apiserver does:

* ``GET /api/v1/pods`` and ``/api/v1/namespaces/{ns}/pods`` as ``PodList`` pages:
  ``limit`` pods at most, ``metadata.continue`` an opaque token for the next
  page (items carry no kind, as in a real list); ``page_sizes`` records each
  page's size, ``refuse_lists`` makes listing fail (403);
* server-side apply of ``PolicyReport`` (``wgpolicyk8s.io/v1alpha2``) and
  ``Report`` (``openreports.io/v1alpha1``): ``PATCH`` with
  ``Content-Type: application/apply-patch+yaml`` and a ``fieldManager``
  (400/415 otherwise, 409 for another manager's object without ``force``);
  the applied fields replace what that manager set before (the results are an
  atomic list), ``uid`` and ``creationTimestamp`` stay, ``resourceVersion``
  and ``generation`` move on, ``managedFields`` names the manager; ``GET`` of
  one report and lists filtered by ``labelSelector``. An applied ``PolicyReport`` is
  checked against the CRD's schema (Kyverno's ``v1alpha2`` CRD,
  tests/fixtures/k8s/kyverno-policyreport-v1alpha2.schema.json): 422 when it does not
  validate, and a field the CRD does not define is refused too (the API server would
  prune it silently: a report that loses fields must fail here).

For ``imggate serve --audit-lease`` it keeps ``coordination.k8s.io/v1`` Leases: ``GET``
(404 when absent), ``POST`` to create (409 when it exists), ``PUT`` to replace, refused
with 409 unless ``metadata.resourceVersion`` is the stored one (optimistic concurrency,
as the API server does); every Lease written is checked against Kubernetes' OpenAPI schema
with kubernetes-validate (422 otherwise); ``leases`` holds them, ``lease_writes`` counts
the writes.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import itertools
import json
import secrets
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_KINDS = {"secrets": "Secret", "serviceaccounts": "ServiceAccount"}
#: The report kinds that can be applied: path group/version -> (kind, plural).
REPORT_APIS = {"wgpolicyk8s.io/v1alpha2": ("PolicyReport", "policyreports"),
               "openreports.io/v1alpha1": ("Report", "reports")}


def _cert(subject: str, issuer_key: ec.EllipticCurvePrivateKey | None,
          issuer: x509.Name | None, *, ca: bool) -> tuple[ec.EllipticCurvePrivateKey,
                                                          x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(hours=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return key, builder.sign(issuer_key or key, hashes.SHA256())


def _lease_path(parts: list[str]) -> tuple[str, str | None] | None:
    """``(namespace, name|None)`` of a ``/apis/coordination.k8s.io/v1/.../leases`` path."""
    if len(parts) in (6, 7) and parts[:4] == ["apis", "coordination.k8s.io", "v1",
                                              "namespaces"] and parts[5] == "leases":
        return parts[4], parts[6] if len(parts) == 7 else None
    return None


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class KubeApiStandIn:
    """The stand-in API server on 127.0.0.1 (see the module docstring)."""

    def __init__(self, workdir: Path, objects: list[dict[str, Any]]) -> None:
        self.token = secrets.token_urlsafe(32)
        self.objects = {(_plural(o), o["metadata"].get("namespace", "default"),
                         o["metadata"]["name"]): o for o in objects}
        self.forbidden: set[tuple[str, str, str]] = set()
        self.slow: dict[tuple[str, str, str], float] = {}
        self.requests: list[str] = []
        self.pods: list[dict[str, Any]] = []
        self.page_sizes: list[int] = []
        #: Items per page of each report list answered (``limit``/``continue`` as for pods).
        self.report_page_sizes: list[int] = []
        self.refuse_lists = False
        self.reports: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.applies: list[tuple[str, str, str]] = []
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.lease_writes: list[tuple[str, str, str]] = []
        self._version = itertools.count(1000)
        self._lock = threading.Lock()
        workdir.mkdir(parents=True, exist_ok=True)
        ca_key, ca = _cert("standin-ca", None, None, ca=True)
        key, cert = _cert("kube-apiserver-standin", ca_key, ca.subject, ca=False)
        self.ca_pem = ca.public_bytes(serialization.Encoding.PEM)
        (workdir / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (workdir / "server.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(workdir / "server.pem", workdir / "server.key")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                standin.requests.append(self.path)
                self._reply(*standin.answer(self.path, self.headers.get("Authorization")))

            def do_POST(self) -> None:
                self._write("POST")

            def do_PUT(self) -> None:
                self._write("PUT")

            def _write(self, method: str) -> None:
                standin.requests.append(f"{method} {self.path}")
                self._reply(*standin.write_lease(method, self.path,
                                                 self.headers.get("Authorization"),
                                                 self._body()))

            def do_PATCH(self) -> None:
                standin.requests.append(f"PATCH {self.path}")
                self._reply(*standin.apply(self.path, self.headers.get("Authorization"),
                                           self.headers.get("Content-Type"), self._body()))

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, code: int, answer: object) -> None:
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    # -- pods ------------------------------------------------------------------------------

    def add_pod(self, pod: dict[str, Any]) -> None:
        """Serve ``pod`` (a Pod object as the API returns it) in lists."""
        meta = pod.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("resourceVersion", str(next(self._version)))
        self.pods.append(pod)

    def _list_pods(self, namespace: str | None, query: dict[str, list[str]]
                   ) -> tuple[int, dict[str, Any]]:
        if self.refuse_lists:
            return 403, _status(403, "Forbidden", 'pods is forbidden: User '
                                                  '"system:serviceaccount:imggate:imggate" '
                                                  'cannot list resource "pods"')
        chosen = [p for p in self.pods
                  if namespace is None or p["metadata"].get("namespace") == namespace]
        paged = self._page(chosen, query)
        if isinstance(paged, str):
            return 400, _status(400, "BadRequest", paged)
        page, meta = paged
        self.page_sizes.append(len(page))
        items = [{k: v for k, v in p.items() if k not in ("kind", "apiVersion")}
                 for p in page]
        return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": items}

    def _page(self, chosen: list[dict[str, Any]], query: dict[str, list[str]]
              ) -> tuple[list[dict[str, Any]], dict[str, Any]] | str:
        """The page of ``chosen`` that ``limit``/``continue`` ask for and the list's metadata,
        or why the query is refused."""
        start = 0
        if "continue" in query:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(query["continue"][0]))["o"])
            except (ValueError, KeyError, TypeError):
                return "continue key is not valid"
        limit = int(query.get("limit", ["0"])[0]) or len(chosen) or 1
        meta: dict[str, Any] = {"resourceVersion": str(next(self._version))}
        if start + limit < len(chosen):
            token = json.dumps({"v": "meta.k8s.io/v1", "o": start + limit}).encode()
            meta["continue"] = base64.urlsafe_b64encode(token).decode()
            meta["remainingItemCount"] = len(chosen) - start - limit
        return chosen[start:start + limit], meta

    # -- reports -------------------------------------------------------------------------

    def _report_path(self, parts: list[str]) -> tuple[str, str, str | None, str | None] | None:
        """``(group/version, plural, namespace|None, name|None)`` of a report path."""
        if len(parts) < 4 or parts[0] != "apis":
            return None
        api = f"{parts[1]}/{parts[2]}"
        if api not in REPORT_APIS:
            return None
        rest = parts[3:]
        plural = REPORT_APIS[api][1]
        if rest == [plural]:
            return api, plural, None, None
        if len(rest) in (3, 4) and rest[0] == "namespaces" and rest[2] == plural:
            return api, plural, rest[1], rest[3] if len(rest) == 4 else None
        return None

    def _get_reports(self, where: tuple[str, str, str | None, str | None],
                     query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        api, plural, ns, name = where
        kind = REPORT_APIS[api][0]
        if name is not None:
            found = self.reports.get((plural, ns or "", name))
            if found is None:
                return 404, _status(404, "NotFound", f'{plural}.{api.split("/")[0]} "{name}" '
                                                     "not found")
            return 200, found
        selector = dict(s.split("=", 1) for s in query.get("labelSelector", [""])[0].split(",")
                        if "=" in s)
        items = [o for (p, n, _), o in sorted(self.reports.items())
                 if p == plural and (ns is None or n == ns)
                 and all(o["metadata"].get("labels", {}).get(k) == v
                         for k, v in selector.items())]
        paged = self._page(items, query)
        if isinstance(paged, str):
            return 400, _status(400, "BadRequest", paged)
        page, meta = paged
        self.report_page_sizes.append(len(page))
        return 200, {"kind": f"{kind}List", "apiVersion": api, "metadata": meta,
                     "items": page}

    def apply(self, path: str, authorization: str | None, content_type: str | None,
              body: bytes) -> tuple[int, dict[str, Any]]:
        """What kube-apiserver answers for a server-side apply ``PATCH path``."""
        import urllib.parse

        import yaml

        if authorization != f"Bearer {self.token}":
            return 401, _status(401, "Unauthorized", "Unauthorized")
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query)
        where = self._report_path(url.path.strip("/").split("/"))
        if where is None or where[2] is None or where[3] is None:
            return 404, _status(404, "NotFound", "the server could not find the requested "
                                                 "resource")
        if (content_type or "").split(";")[0].strip() != "application/apply-patch+yaml":
            return 415, _status(415, "UnsupportedMediaType",
                                "the body of the request was in an unknown format - "
                                "accepted media types include: application/json-patch+json, "
                                "application/merge-patch+json, application/apply-patch+yaml")
        manager = query.get("fieldManager", [""])[0]
        if not manager:
            return 400, _status(400, "BadRequest", "PATCH, application/apply-patch+yaml: "
                                                   "fieldManager is required")
        api, plural, ns, name = where
        try:
            obj = yaml.safe_load(body)
        except yaml.YAMLError:
            return 400, _status(400, "BadRequest", "error decoding YAML")
        kind = REPORT_APIS[api][0]
        invalid = report_problem(obj) if kind == "PolicyReport" else None
        if invalid is not None:
            return 422, _status(422, "Invalid", f"PolicyReport.wgpolicyk8s.io {name!r} is "
                                                f"invalid: {invalid}")
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if not isinstance(meta, dict) or obj.get("apiVersion") != api or obj.get("kind") != kind \
                or meta.get("name") != name or meta.get("namespace", ns) != ns:
            return 400, _status(400, "BadRequest", "the object does not match the request path")
        key = (plural, ns, name)
        with self._lock:
            old = self.reports.get(key)
            if old is not None and query.get("force") != ["true"]:
                owners = {m["manager"] for m in old["metadata"].get("managedFields", [])}
                if owners - {manager}:
                    return 409, _status(409, "Conflict", "Apply failed with 1 conflict")
            new = json.loads(json.dumps(obj))
            m = new["metadata"]
            m["namespace"] = ns
            m["uid"] = old["metadata"]["uid"] if old else str(uuid.uuid4())
            m["creationTimestamp"] = (old["metadata"]["creationTimestamp"] if old else
                                      time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            m["generation"] = (old["metadata"].get("generation", 1) + 1) if old else 1
            m["resourceVersion"] = str(next(self._version))
            m["managedFields"] = [{"manager": manager, "operation": "Apply",
                                   "apiVersion": api, "fieldsType": "FieldsV1",
                                   "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]
            self.reports[key] = new
            self.applies.append(key)
        return (200 if old else 201), new

    def kubeconfig(self, path: Path, context: str = "standin") -> Path:
        """A kubeconfig file naming this server, its CA and the token, as ``kubectl`` has."""
        import yaml

        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "standin", "cluster": {
                "server": f"https://127.0.0.1:{self.port}",
                "certificate-authority-data": base64.b64encode(self.ca_pem).decode()}}],
            "users": [{"name": "auditor", "user": {"token": self.token}}],
            "contexts": [{"name": context, "context": {"cluster": "standin",
                                                       "user": "auditor"}}],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config))
        return path

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        """What kube-apiserver answers for ``GET path``."""
        import urllib.parse

        if authorization != f"Bearer {self.token}":
            return 401, _status(401, "Unauthorized", "Unauthorized")
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        if parts == ["api", "v1", "pods"]:
            return self._list_pods(None, query)
        if len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
            return self._list_pods(parts[3], query)
        where = self._report_path(parts)
        if where is not None:
            return self._get_reports(where, query)
        lease = _lease_path(parts)
        if lease is not None and lease[1] is not None:
            with self._lock:
                found = self.leases.get((lease[0], lease[1]))
            if found is None:
                return 404, _status(404, "NotFound", f'leases.coordination.k8s.io "{lease[1]}" '
                                                     "not found")
            return 200, found
        if len(parts) != 6 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] not in _KINDS:
            return 404, _status(404, "NotFound", "the server could not find the requested "
                                                 "resource")
        key = (parts[4], parts[3], parts[5])
        if key in self.slow:
            time.sleep(self.slow[key])
        if key in self.forbidden:
            return 403, _status(403, "Forbidden", f'{parts[4]} "{parts[5]}" is forbidden: '
                                                  "User \"system:serviceaccount:imggate:"
                                                  f"imggate\" cannot get resource \"{parts[4]}\"")
        if key not in self.objects:
            return 404, _status(404, "NotFound", f'{parts[4]} "{parts[5]}" not found')
        return 200, self.objects[key]

    def write_lease(self, method: str, path: str, authorization: str | None, body: bytes
                    ) -> tuple[int, dict[str, Any]]:
        """``POST`` (create) or ``PUT`` (replace) of a Lease, as kube-apiserver answers."""
        import urllib.parse

        if authorization != f"Bearer {self.token}":
            return 401, _status(401, "Unauthorized", "Unauthorized")
        where = _lease_path(urllib.parse.urlsplit(path).path.strip("/").split("/"))
        if where is None or (method == "PUT") != (where[1] is not None):
            return 404, _status(404, "NotFound", "the server could not find the requested "
                                                 "resource")
        try:
            obj = json.loads(body)
            name = obj["metadata"]["name"]
        except (ValueError, KeyError, TypeError):
            return 400, _status(400, "BadRequest", "the body is not a Lease")
        if obj.get("kind") != "Lease" or obj.get("apiVersion") != "coordination.k8s.io/v1" \
                or (where[1] is not None and name != where[1]):
            return 400, _status(400, "BadRequest", "the body is not this Lease")
        problem = lease_problem(obj)
        if problem is not None:
            return 422, _status(422, "Invalid", f"Lease.coordination.k8s.io {name!r} is "
                                                f"invalid: {problem}")
        key = (where[0], name)
        with self._lock:
            stored = self.leases.get(key)
            if method == "POST" and stored is not None:
                return 409, _status(409, "AlreadyExists",
                                    f'leases.coordination.k8s.io "{name}" already exists')
            if method == "PUT":
                if stored is None:
                    return 404, _status(404, "NotFound",
                                        f'leases.coordination.k8s.io "{name}" not found')
                if obj["metadata"].get("resourceVersion") != \
                        stored["metadata"]["resourceVersion"]:
                    return 409, _status(409, "Conflict", "Operation cannot be fulfilled on "
                                        f'leases.coordination.k8s.io "{name}": the object has '
                                        "been modified; please apply your changes to the "
                                        "latest version and try again")
            obj["metadata"]["namespace"] = where[0]
            obj["metadata"]["resourceVersion"] = str(next(self._version))
            obj["metadata"].setdefault("uid", (stored or {}).get("metadata", {}).get(
                "uid", str(uuid.uuid4())))
            self.leases[key] = obj
            self.lease_writes.append((method, where[0], name))
        return (201 if method == "POST" else 200), obj

    def service_account_dir(self, path: Path, namespace: str = "imggate") -> Path:
        """What the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount."""
        path.mkdir(parents=True, exist_ok=True)
        (path / "token").write_text(self.token)
        (path / "namespace").write_text(namespace)
        (path / "ca.crt").write_bytes(self.ca_pem)
        return path

    def stop(self) -> None:
        """Shut the server down."""
        self._server.shutdown()
        self._server.server_close()


def lease_problem(obj: dict[str, Any]) -> str | None:
    """Why ``obj`` is not a Lease the API server's OpenAPI schema accepts (``None``: it is),
    checked with kubernetes-validate, strictly (no field the schema does not name)."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as e:
        return str(e).splitlines()[0][:300]
    return None


def report_problem(obj: object) -> str | None:
    """Why ``obj`` is not a PolicyReport the CRD accepts whole (``None``: it is)."""
    import jsonschema

    from fixture_paths import FIXTURES

    schema = json.loads((FIXTURES / "k8s" / "kyverno-policyreport-v1alpha2.schema.json")
                        .read_text())
    try:
        jsonschema.validate(obj, schema)
    except jsonschema.ValidationError as e:
        return f"{'.'.join(map(str, e.absolute_path))}: {e.message}"

    def unknown(value: object, sub: dict[str, Any], where: str) -> str | None:
        known = sub.get("properties")
        if isinstance(value, dict) and isinstance(known, dict):
            for k, v in value.items():
                if k not in known:
                    return f"{where}{k}: unknown field"
                found = unknown(v, known[k], f"{where}{k}.")
                if found:
                    return found
        if isinstance(value, list) and isinstance(sub.get("items"), dict):
            for n, item in enumerate(value):
                found = unknown(item, sub["items"], f"{where}[{n}].")
                if found:
                    return found
        return None

    assert isinstance(obj, dict)
    return unknown({k: v for k, v in obj.items() if k != "metadata"}, schema, "")


def _plural(obj: dict[str, Any]) -> str:
    return {"Secret": "secrets", "ServiceAccount": "serviceaccounts"}[obj["kind"]]
