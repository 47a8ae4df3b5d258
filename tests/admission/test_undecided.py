"""``on_undecided``: what the webhook answers for an image it could not decide.

``deny`` (the default) denies it saying what could not be checked; ``warn`` admits it
with a warning naming what failed, logged and counted as ``undecided``. A certain
violation is denied in both. ``imggate serve`` over real TLS; the undecided image lives
on a loopback port nothing listens on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from admission.serve_harness import ServeProcess, review, start_serve
from registry_harness import free_port, run_imggate

RULES = """\
version: 1
environments:
  strict:
    tags: {deny: [latest]}
  lenient:
    on_undecided: warn
    tags: {deny: [latest]}
    images:
      - {match: "127.0.0.1:*/pinned-strict", on_undecided: deny}
namespaces:
  map:
    - {match: "strict-*", env: strict}
    - {match: "lenient-*", env: lenient}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    work = tmp_path_factory.mktemp("undecided")
    rules = work / "rules.yaml"
    rules.write_text(RULES)
    proc = start_serve(work, ["--rules", str(rules), "--deadline", "2"])
    yield proc
    proc.stop()


def _pod(*images: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": f"c{n}", "image": i}
                                    for n, i in enumerate(images)]}}


def _ask(server: ServeProcess, namespace: str, *images: str) -> dict[str, Any]:
    with server.client() as c:
        r = c.post("/validate", json=review(_pod(*images), namespace=namespace))
    assert r.status_code == 200, r.text
    response: dict[str, Any] = r.json()["response"]
    return response


def test_deny_is_the_default_and_says_what_could_not_be_checked(server: ServeProcess) -> None:
    down = f"127.0.0.1:{free_port()}/app:1.0"
    r = _ask(server, "strict-a", down)
    assert r["allowed"] is False
    assert f"{down}: could not be checked: " in r["status"]["message"]


def test_warn_admits_an_undecided_image_with_a_warning_logged_and_counted(
        server: ServeProcess) -> None:
    down = f"127.0.0.1:{free_port()}/app:1.0"
    r = _ask(server, "lenient-a", down)
    assert r["allowed"] is True
    warnings = r.get("warnings") or []
    assert any(w.startswith(f"{down}: not checked, admitted by on_undecided: warn: ")
               for w in warnings), warnings
    assert "patch" not in r  # nothing checked, nothing pinned
    with server.client() as c:
        metrics = c.get("/metrics").text
    assert 'decision="undecided"' in metrics
    assert any(line["decision"] == "undecided" and line.get("namespace") == "lenient-a"
               for line in server.reviews())


def test_warn_never_admits_a_certain_violation(server: ServeProcess) -> None:
    registry = f"127.0.0.1:{free_port()}"
    latest = f"{registry}/app:latest"
    r = _ask(server, "lenient-a", latest, f"{registry}/other:1.0")
    assert r["allowed"] is False
    assert f"{latest}: tags.denied: " in r["status"]["message"]
    # An invalid reference is certain too: no retry makes it valid.
    r = _ask(server, "lenient-a", "127.0.0.1:1/UPPER:1")
    assert r["allowed"] is False and "invalid image reference" in r["status"]["message"]


def test_an_image_override_can_deny_undecided_where_the_environment_warns(
        server: ServeProcess) -> None:
    down = f"127.0.0.1:{free_port()}/pinned-strict:1.0"
    r = _ask(server, "lenient-a", down)
    assert r["allowed"] is False and "could not be checked" in r["status"]["message"]


def test_the_cli_stays_exit_3_and_rules_validate_warns(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    down = f"127.0.0.1:{free_port()}/app:1.0"
    res = run_imggate(["check", down, "--rules", str(rules), "--env", "lenient",
                       "-o", str(tmp_path / "o"), "-q"])
    assert res.code == 3, res.output
    res = run_imggate(["rules", "validate", str(rules)])
    assert res.code == 0
    assert ("imggate: warning: environment lenient: on_undecided: warn admits at admission "
            "any image imggate could not check") in res.stderr
    assert "environment strict:" not in res.stderr
    assert "pinned-strict" not in res.stderr  # that override denies
