"""Readying the server process before it takes connections: what a cold review needs
imported, and the start-up heap moved out of the cyclic collector's way.

The command-line tools import lazily so that each command pays only for what it
uses; a server is the opposite case. A review's first sight of an image goes
through the policy engine, cosign verification, attestation and scanner code,
and the registry client's first connection through h11 and the OpenSSL backend
of ``cryptography``: imported lazily, all of that
landed on the first admission after every start or rollout (measured: the first
of 100 cold reviews took 84 ms against a p50 of 19 ms, and 0.3-0.6 s on a busy
machine with uncompiled modules). Imported during the lifespan start-up, before
uvicorn binds its port, it delays readiness instead of a pod.

``tests/admission/test_preload.py`` runs a first cold review in a fresh
interpreter and fails on any module it imports, so this list cannot go stale.

After start-up the process holds ~70,000 objects that live as long as it does
(modules, classes, the rules). Every full collection walked them all: 40-85 ms
on this project's 2-core machine, a pause that lands on whichever review is
running, and the largest part of the cold p99. :func:`freeze_startup_heap` moves
them to the collector's permanent generation (``gc.freeze``, as CPython
recommends for servers); a full collection then walks only what reviews made
(measured in the same process: under 0.01 ms right after start-up).
"""

from __future__ import annotations

import gc
import importlib

#: The modules a first cold review would otherwise import (the test above finds them).
COLD_PATH = (
    "imggate.policy.engine",
    "imggate.policy.provenance",
    "imggate.signatures.cosign",
    "imggate.evidence.attested",
    "imggate.evidence.vuln",
    "imggate.registry.memo",
    "imggate.registry.repository",
    "imggate.scanners.merge",
    # The registry client's first connection.
    "imggate.registry.http1",
    "cryptography.hazmat.backends.openssl",
)


async def import_cold_path() -> None:
    """Import :data:`COLD_PATH`, and what the codecs load on first use."""
    for name in COLD_PATH:
        importlib.import_module(name)
    # Host names are IDNA-encoded on the way out (the codec and its stringprep table).
    "localhost".encode("idna")


def freeze_startup_heap() -> None:
    """Collect once, then leave everything alive now out of later collections.

    What start-up built stays for the life of the process; what a reload of the rules
    replaces is freed by reference counting, as the rules hold no reference cycles of
    their own. Call it last, when the app is ready to serve.
    """
    gc.collect()
    gc.freeze()

