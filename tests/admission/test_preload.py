"""The first review after a start imports nothing: what a cold review needs is imported
before the server takes connections (admission/preload.py).

A fresh interpreter (a subprocess) builds the app with the webhook tests' rules, runs
its lifespan start-up as uvicorn does, then reviews a signed image from the real
registry for the first time; the modules that review imported are what a new replica's
first admission would wait for.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from admission.conftest import Images, rules_text
from admission.serve_harness import SRC, pod, review
from signatures.cosign_format_signer import CosignFormatSigner

_FIRST_REVIEW = r"""
import asyncio, gc, io, json, sys
from pathlib import Path

from imggate.admission.reviewlog import ReviewLog
from imggate.admission.server import AdmissionApp, ServeOptions
from imggate.models import SignatureOptions

app = AdmissionApp(ServeOptions(rules=Path(sys.argv[1]),
                                signatures=SignatureOptions(ignore_tlog=True)))
app.review_log = ReviewLog(io.StringIO())


async def main() -> None:
    async with app.starlette.router.lifespan_context(app.starlette):
        heap = {"frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}
        before = set(sys.modules)
        sent = []

        async def receive():
            return {"type": "http.request", "body": sys.argv[2].encode(), "more_body": False}

        async def send(message):
            sent.append(message)

        await app.app({"type": "http", "method": "POST", "path": "/validate",
                       "headers": [], "query_string": b""}, receive, send)
        new = sorted(set(sys.modules) - before)
    answer = json.loads(sent[1]["body"])["response"]
    print(json.dumps({"allowed": answer["allowed"], "imported": new, **heap}))


asyncio.run(main())
"""


def _first_review(tmp_path: Path, images: Images, key: Path, image: str) -> dict[str, object]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_text(images.registry.host, key))
    doc = json.dumps(review(pod([images.ref(image)]), namespace="prod-first"))
    done = subprocess.run([sys.executable, "-c", _FIRST_REVIEW, str(rules), doc],
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_the_first_cold_review_imports_nothing(
        tmp_path: Path, images: Images, webhook_key: tuple[CosignFormatSigner, Path]) -> None:
    first = _first_review(tmp_path, images, webhook_key[1], "adm/signed")
    assert first["allowed"] is True  # the signature was fetched and verified: a full review
    assert first["imported"] == []


def test_the_start_up_heap_is_out_of_the_collectors_way(
        tmp_path: Path, images: Images, webhook_key: tuple[CosignFormatSigner, Path]) -> None:
    # A full collection walks what the collector tracks; right after start-up that is
    # what the lifespan made after the freeze, not the tens of thousands of objects the
    # imports and the rules left (each walk of those was a 40-85 ms pause of a review).
    first = _first_review(tmp_path, images, webhook_key[1], "adm/signed")
    assert isinstance(first["frozen"], int) and isinstance(first["tracked"], int)
    assert first["frozen"] > 30_000
    assert first["tracked"] < first["frozen"] // 20

