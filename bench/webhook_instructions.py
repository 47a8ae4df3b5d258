"""Benchmark: what one warm webhook review costs, counted in instructions.

Timings on a shared machine cannot resolve a few per cent; valgrind's cachegrind
counts the instructions a process runs, whatever else the machine does (the same
figure to within ~1% from run to run). A warm review's cost is the difference
between two runs that answer 40 and 1,040 reviews, over 1,000: everything that
happens once (start-up, imports, rules, TLS set-up) cancels out.

Two levels, each beside the bare Starlette app (``bare_admission_app.py``), the floor:

- in process (the default, a few minutes): the ASGI app called directly with a warm
  AdmissionReview, as uvicorn calls it, and the review log written through the same
  redacting stream as ``imggate serve``'s (to ``/dev/null``). The cache is seeded with
  the image's tag and an allow for its digest, so no registry is needed: the decision,
  both cache layers, the answer, the log line and the metrics are all the warm path's own.
- ``--server`` (~5 minutes): ``imggate serve`` (the rules, signed image and TLS of
  ``admission_bench.py``) and the bare app each run under cachegrind while four
  threads send warm reviews over kept-alive TLS connections: TLS, HTTP, the event
  loop and the app together.

    python bench/webhook_instructions.py [--server] [--only imggate|bare] [--src OTHER/src]

Needs ``valgrind``; ``--server`` also ``docker-registry``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
#: The two loop sizes; their difference over 1,000 is one review.
SMALL, LARGE = 40, 1040
#: Distinct uids cycled through (the API server sends a new one with every review).
UIDS = 8
HOST = "registry.bench.invalid:5000"
IMAGE = f"{HOST}/bench/img0:v1"
DIGEST = "sha256:" + "5e" * 32

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
               Awaitable[None]]


def python_binary() -> str:
    """The real interpreter (``python3`` may be a pyenv shim: valgrind would count it)."""
    return os.path.realpath(sys.executable)


def warm_bodies() -> list[bytes]:
    """Reviews of one pod running the warm image, each with its own uid (the shape of
    the tests' ``review(pod(...))``, as ``admission_bench.py`` sends it)."""
    out = []
    for i in range(UIDS):
        obj = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "app", "namespace": "prod-bench"},
               "spec": {"containers": [{"name": "c0", "image": IMAGE}]}}
        request = {"uid": f"00000000-0000-4000-8000-{i:012d}",
                   "kind": {"group": "", "version": "v1", "kind": "Pod"},
                   "resource": {"group": "", "version": "v1", "resource": "pods"},
                   "namespace": "prod-bench", "name": "app", "operation": "CREATE",
                   "userInfo": {"username": "tester"}, "object": obj, "oldObject": None,
                   "dryRun": False}
        out.append(json.dumps({"apiVersion": "admission.k8s.io/v1",
                               "kind": "AdmissionReview", "request": request}).encode())
    return out


def write_rules(work: Path) -> Path:
    """``admission_bench.py``'s rules (deny ``latest``, one allowed registry, a key
    required), for ``HOST``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = work / "release.pub"
    key.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    rules = work / "rules.yaml"
    rules.write_text(json.dumps({"version": 1, "environments": {"prod": {
        "aliases": ["prod-*"], "tags": {"deny": ["latest"]},
        "registries": {"allowed": [HOST]}, "signatures": {"keys": [str(key)]}}}}))
    return rules


async def lifespan(app: App) -> Callable[[], Awaitable[None]]:
    """Start ``app``'s lifespan; returns what ends it."""
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                     inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")

    async def stop() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task

    return stop


async def imggate_app(work: Path) -> tuple[App, Callable[[], Awaitable[None]]]:
    """``imggate serve``'s ASGI app with the warm image's tag and verdict cached."""
    from imggate.admission.cache import CachedVerdict, tag_key, verdict_key
    from imggate.admission.reviewlog import ReviewLog
    from imggate.admission.server import AdmissionApp, ServeOptions
    from imggate.models import SignatureOptions
    from imggate.redact import RedactingStream
    from imggate.registry.reference import parse_reference

    app = AdmissionApp(ServeOptions(rules=write_rules(work),
                                    signatures=SignatureOptions(ignore_tlog=True)))
    app.review_log = ReviewLog(RedactingStream(open(os.devnull, "w")))  # noqa: SIM115
    stop = await lifespan(app.app)
    assert app.reviewer is not None
    assert app.store.current is not None
    ref = parse_reference(IMAGE)
    await app.cache.put_tag(tag_key(ref.name, "v1"), DIGEST)
    await app.cache.put_verdict(
        verdict_key(DIGEST, ref.name, app.store.current.hash, "prod", app.reviewer.judge.trust),
        CachedVerdict("allow", DIGEST))
    return app.app, stop


async def bare_app() -> tuple[App, Callable[[], Awaitable[None]]]:
    """``bare_admission_app.py``'s app."""
    sys.path.insert(0, str(HERE))
    from bare_admission_app import app

    return app, await lifespan(app)


async def loop(which: str, count: int) -> None:
    """Answer ``count`` warm reviews with ``which`` app (no warm-up: the difference of two
    counts removes what happens once)."""
    work = Path(tempfile.mkdtemp(prefix="imggate-instructions-"))
    try:
        app, stop = await (imggate_app(work) if which == "imggate" else bare_app())
        bodies = warm_bodies()
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        for i in range(count):
            body = bodies[i % UIDS]

            async def receive(body: bytes = body) -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            sent.clear()
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                     "method": "POST", "scheme": "https", "path": "/validate",
                     "raw_path": b"/validate", "query_string": b"", "root_path": "",
                     "headers": [(b"host", b"127.0.0.1"),
                                 (b"content-type", b"application/json"),
                                 (b"content-length", str(len(body)).encode())],
                     "imggate.received": time.monotonic()}
            await app(scope, receive, send)
            # The loop runs between reviews, as in a server (the review log's flush).
            await asyncio.sleep(0)
            if i == 0 and b'"allowed":true' not in sent[-1]["body"]:
                raise RuntimeError(f"{which}: the warm review was not allowed: {sent[-1]}")
        await stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cachegrind(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Instructions ``argv`` ran, counted by cachegrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                        f"--cachegrind-out-file={out}", *argv], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, **(env or {})})
        return summary(out)


def summary(path: Path) -> int:
    """The total of a cachegrind output file."""
    found = re.search(r"^summary:\s+(\d+)", path.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"{path}: no summary line")
    return int(found.group(1))


def in_process(which: str, src: Path = SRC) -> float:
    """Instructions of one warm review in process, for ``which`` app (imggate from
    ``src``)."""
    # A fixed hash seed: start-up work that depends on it would not cancel out.
    env = {"PYTHONPATH": str(src), "PYTHONHASHSEED": "0"}
    counts = [cachegrind([python_binary(), __file__, "--loop", which, str(n)], env)
              for n in (SMALL, LARGE)]
    return (counts[1] - counts[0]) / (LARGE - SMALL)


# ---------------------------------------------------------------------------- server


def server_level(which: str, src: Path = SRC) -> float:
    """Instructions of one warm review in a server under cachegrind (``which`` app, imggate
    from ``src``), sent by four threads over kept-alive TLS connections."""
    sys.path[:0] = [str(SRC), str(HERE.parent / "tests"), str(HERE)]
    from admission_bench import wait_listening, webhook_world

    from registry_harness import free_port, require_binaries, start_registry

    require_binaries("docker-registry")
    work = Path(tempfile.mkdtemp(prefix="imggate-instructions-server-"))
    reg = start_registry(work / "registry")
    try:
        world = webhook_world(work, reg, 1)
        body = world.warm_body.read_bytes()
        counts = []
        for n in (SMALL, LARGE):
            port = free_port()
            out = work / f"cg-{which}-{n}.out"
            if which == "imggate":
                app = [
                    "-m", "imggate", "serve", "--rules", str(world.rules),
                    "--insecure-ignore-tlog", "--cache-ttl", "3600", "--tag-ttl", "3600",
                    "--tls-cert", str(world.tls.cert), "--tls-key", str(world.tls.key),
                    "--host", "127.0.0.1", "--port", str(port)]
            else:
                app = [str(HERE / "bare_admission_app.py"), str(port), str(world.tls.cert),
                       str(world.tls.key)]
            proc = subprocess.Popen(
                ["valgrind", "--tool=cachegrind", "--cache-sim=no",
                 f"--cachegrind-out-file={out}", python_binary(), *app],
                env={**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0"},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_listening(port, timeout=300)
                send_reviews(port, world.tls.ca, body, n)
            finally:
                proc.terminate()  # SIGTERM: a clean shutdown, and cachegrind writes its file
                proc.wait(300)
            counts.append(summary(out))
        return (counts[1] - counts[0]) / (LARGE - SMALL)
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


def send_reviews(port: int, ca: Path, body: bytes, count: int, clients: int = 4) -> None:
    """``count`` reviews of ``body``, from ``clients`` threads each on one kept-alive TLS
    connection; every answer must be an allow."""
    import socket
    import ssl

    sys.path.insert(0, str(HERE))
    from admission_bench import http_request, read_response

    context = ssl.create_default_context(cafile=str(ca))
    request = http_request(body)
    failures: list[str] = []

    def client(share: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as s:
            for _ in range(share):
                s.sendall(request)
                answer = read_response(s)
                if b'"allowed":true' not in answer:
                    failures.append(answer[:300].decode(errors="replace"))
                    return

    threads = [threading.Thread(target=client, args=(count // clients,))
               for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"a warm review was not allowed: {failures[0]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", action="store_true",
                    help="count whole servers over TLS, not the ASGI app in process")
    ap.add_argument("--only", choices=("imggate", "bare"), help="count one app only")
    ap.add_argument("--src", type=Path, default=SRC,
                    help="the src/ folder of the imggate to count (default: this tree's), "
                         "e.g. of a worktree of the code before a change")
    ap.add_argument("--loop", nargs=2, metavar=("APP", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.loop:
        import uvloop  # the server's loop (runner.py)

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(loop(args.loop[0], int(args.loop[1])))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed: apt-get install -y valgrind")
    measure = server_level if args.server else in_process
    found = {which: measure(which, args.src.resolve()) for which in ("imggate", "bare")
             if args.only in (None, which)}
    level = "server over TLS" if args.server else "in process (the ASGI app alone)"
    for which, count in found.items():
        print(f"{which}: {count / 1000:.1f}k instructions per warm review, {level}")
    if len(found) == 2:
        print(f"ratio to bare: {found['imggate'] / found['bare']:.2f}")


if __name__ == "__main__":
    main()
