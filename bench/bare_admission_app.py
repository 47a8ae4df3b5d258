"""The ceiling for ``admission_bench.py``: a bare Starlette app on imggate's server stack.

Same uvicorn, uvloop, httptools, TLS and TCP_NODELAY protocol as ``imggate
serve``, answering every POST with one fixed AdmissionReview response
(reading the body as a webhook must). Whatever imggate does beyond this is
its own cost.

    python bench/bare_admission_app.py PORT CERT KEY
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from imggate.admission.runner import protocol_class  # noqa: E402

ANSWER = (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":'
          b'{"uid":"00000000-0000-0000-0000-000000000000","allowed":true,'
          b'"auditAnnotations":{"environment":"prod"}}}')


async def review(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")


async def healthz(_request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(routes=[Route("/validate", review, methods=["POST"]),
                        Route("/healthz", healthz)])


def main() -> None:
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, ssl_certfile=cert,
                            ssl_keyfile=key, http=protocol_class(), loop="none",
                            access_log=False, server_header=False, date_header=False,
                            log_level="warning")
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
