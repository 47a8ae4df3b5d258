"""``imggate audit`` over a real Distribution registry: 200+ tags, shared digests, a multi-arch
index (built with umoci, pushed with skopeo), key signatures, and GitLab's cleanup view."""

from __future__ import annotations

import json
import re
import secrets
import urllib.request
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from audit.audit_repository import build
from harness_images import MULTI_PLATFORMS, MULTI_TAG, LayoutBuilder, Skopeo
from registry_harness import Registry, run_imggate

pytestmark = pytest.mark.registry

RULES = """\
version: 1
default_env: dev
environments:
  dev:
    severity: {fail_on: Critical}
  prod:
    extends: dev
    tags: {deny: [latest]}
    signatures: {keys: [cosign.pub]}
  prod-eu:
    extends: prod
"""


@pytest.fixture(scope="module")
def audited(anon_registry: Registry, skopeo: Skopeo, image_layout: LayoutBuilder,
            tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], object, Path,
                                                               object]:
    repository = f"audit/{secrets.token_hex(4)}"
    pushed = build(anon_registry.url, repository)
    skopeo.push(image_layout.path, MULTI_TAG, anon_registry, repository, "multi",
                all_platforms=True)
    work = tmp_path_factory.mktemp("audit")
    (work / "cosign.pub").write_bytes(pushed.signer.public_pem)
    (work / "rules.yaml").write_text(RULES)
    result = run_imggate([
        "audit", f"{anon_registry.host}/{repository}", "--rules", str(work / "rules.yaml"),
        "--env", "dev", "--env", "prod", "--tags", r"v1\.0\..*", "--keep-n", "7",
        "--older-than", "50d", "--keep-regex", r"v1\.0\.1[0-9]", "--insecure-ignore-tlog",
        "-o", str(work / "out")])
    doc = json.loads((work / "out" / "imggate-audit.json").read_text())
    return doc, pushed, work, result


def _rows(doc: dict[str, object]) -> dict[str, dict[str, object]]:
    rows = doc["rows"]
    assert isinstance(rows, list)
    return {r["tag"]: r for r in rows}


def test_every_tag_is_listed_and_cosign_tags_are_not_images(audited: tuple) -> None:
    doc, pushed, _, result = audited
    rows = _rows(doc)
    assert set(rows) == {*pushed.tags, "multi"}  # 200 + latest + stable + multi
    assert len(rows) == 203
    assert not [t for t in rows if t.startswith("sha256-")]  # the 10 .sig tags
    assert doc["distinct_digests"] == 61
    assert result.code == 1, result.output  # prod denies some tags


def test_tags_sharing_a_digest_are_shown_together(audited: tuple,
                                                  anon_registry: Registry) -> None:
    doc, pushed, work, _ = audited
    rows = _rows(doc)
    # In the order the registry lists the tags, whatever order their answers came in: the
    # reports are the same run after run.
    repository = str(doc["repository"]).removeprefix(f"{anon_registry.host}/")
    with urllib.request.urlopen(f"{anon_registry.url}/v2/{repository}/tags/list") as r:
        listed = json.load(r)["tags"]
    same = ["v1.0.60", "v1.0.120", "v1.0.180", "stable"]
    assert rows["v1.0.0"]["same_digest_as"] == sorted(same, key=listed.index)
    verdict = json.loads((work / "out" / "dev" / "imggate-verdict.json").read_text())
    # Each image's tags together, the images in the order their first tag is listed.
    groups: dict[str, list[str]] = {}
    for tag in listed:
        if tag in rows:
            groups.setdefault(rows[tag]["digest"], []).append(tag)
    assert [i["reference"].split("@")[0].rsplit(":", 1)[1] for i in verdict["images"]] == [
        t for tags in groups.values() for t in tags]
    assert rows["v1.0.0"]["digest"] == str(pushed.tags["v1.0.0"])
    assert rows["latest"]["digest"] == rows["v1.0.59"]["digest"]
    assert rows["multi"]["digest"].startswith("sha256:")  # the index, resolved like any tag


def test_the_cleanup_view_follows_gitlabs_policy(audited: tuple) -> None:
    doc, _, _, _ = audited
    rows = _rows(doc)
    removed = {t for t, r in rows.items() if not r["kept_by_cleanup"]}
    by_count = {"v1.0.59", "v1.0.119", "v1.0.179", "v1.0.58", "v1.0.118", "v1.0.178", "v1.0.57"}
    by_pattern = {f"v1.0.1{i}" for i in range(10)}
    assert len(removed) == 200 - len(by_count) - len(by_pattern)
    for t in by_count:
        assert rows[t]["cleanup_reason"] == "among the 7 most recent"
    for t in by_pattern:
        assert rows[t]["cleanup_reason"] == "matches the keep pattern"
    assert rows["latest"]["kept_by_cleanup"] and rows["stable"]["kept_by_cleanup"]
    assert rows["v1.0.0"]["cleanup_reason"] == "removed by the cleanup policy"


def test_each_environment_decides_each_tag(audited: tuple) -> None:
    doc, pushed, work, _ = audited
    rows = _rows(doc)
    assert all(r["decisions"]["dev"] == "allow" for r in rows.values())
    for tag, digest in pushed.tags.items():
        signed = digest in pushed.signed
        assert rows[tag]["signed"] is signed
        want = "allow" if signed and tag != "latest" else "deny"
        assert rows[tag]["decisions"]["prod"] == want, tag
    assert rows["multi"]["decisions"]["prod"] == "deny"
    for env in ("dev", "prod"):
        verdict = json.loads((work / "out" / env / "imggate-verdict.json").read_text())
        assert len(verdict["images"]) == 203
        assert (work / "out" / env / "gl-container-scanning-report.json").is_file()


def test_progress_is_plain_lines_off_a_terminal_and_the_table_is_printed(audited: tuple) -> None:
    _, _, _, result = audited
    assert "imggate: audit: resolve: 203/203" in result.stderr
    assert "imggate: audit: check prod: 61/61" in result.stderr
    assert "\r" not in result.stderr
    assert "distinct images" in result.stdout and "v1.0.199" in result.stdout
    assert "cleanup keeps 20 of 203 tags" in result.stdout


def test_each_deny_says_why_in_the_json_and_on_the_console(audited: tuple) -> None:
    doc, pushed, _, result = audited
    rows = _rows(doc)
    latest = rows["latest"]["reasons"]
    assert list(latest) == ["prod"]  # dev allows it: no reasons there
    assert any(r.startswith("tags.denied: tag 'latest' is denied") for r in latest["prod"])
    unsigned = next(t for t, d in pushed.tags.items() if d not in pushed.signed and t != "latest")
    assert any(r.startswith("signatures: ") for r in rows[unsigned]["reasons"]["prod"])
    assert all(not r["reasons"] for r in rows.values() if r["decisions"]["prod"] == "allow")
    # The console: a line per denied tag (kept ones first) with its top reasons, then a count.
    lines = [line for line in result.stdout.splitlines() if line.startswith("DENY ")]
    assert len(lines) == 20
    assert any(line.startswith("DENY latest (prod): ") and "tags.denied: tag 'latest' is denied" in line
               for line in lines)
    assert "every reason is in imggate-audit.json" in result.stdout


def test_each_unsafe_acceptance_is_said_once_for_all_environments(audited: tuple) -> None:
    doc, _, work, _ = audited
    result = run_imggate([
        "audit", str(doc["repository"]), "--rules", str(work / "rules.yaml"), "--env", "prod",
        "--env", "prod-eu", "--only-kept", "--insecure-ignore-tlog", "-q",
        "-o", str(work / "out-unsafe")], subprocess_mode=True)
    unsafe = [line for line in result.stderr.splitlines() if "UNSAFE" in line]
    assert unsafe, result.stderr
    # Both environments verify every signature with the key: each said once, not twice.
    assert len(unsafe) == len(set(unsafe)), "\n".join(unsafe)


def test_no_tag_or_digest_is_cut_through_a_pipe_at_60_columns(audited: tuple) -> None:
    doc, _, work, _ = audited
    result = run_imggate([
        "audit", str(doc["repository"]), "--rules", str(work / "rules.yaml"), "--env", "prod",
        "--tags", r"v1\.0\.1[0-9]", "--insecure-ignore-tlog", "-o", str(work / "out60")],
        subprocess_mode=True, env={"COLUMNS": "60"})
    assert result.code == 1, result.output
    piped = json.loads((work / "out60" / "imggate-audit.json").read_text())
    assert len(piped["rows"]) == 203
    for row in piped["rows"]:
        digest = row["digest"].removeprefix("sha256:")[:12]
        pattern = re.compile(rf"(^|\s){re.escape(row['tag'])}\s.*\s{digest}\s")
        assert any(pattern.search(line) for line in result.stdout.splitlines()), \
            f"{row['tag']} {digest} not whole on one line:\n{result.stdout}"


def test_only_kept_checks_just_what_cleanup_keeps(anon_registry: Registry, tmp_path: Path) -> None:
    repository = f"audit/{secrets.token_hex(4)}"
    build(anon_registry.url, repository, n_tags=20, n_digests=5, signed=0)
    result = run_imggate(["audit", f"{anon_registry.host}/{repository}", "--tags", r"v.*",
                          "--keep-n", "3", "--only-kept", "-q", "-o", str(tmp_path)])
    assert result.code == 0, result.output
    doc = json.loads((tmp_path / "imggate-audit.json").read_text())
    checked = {r["tag"] for r in doc["rows"] if r["checked"]}
    assert checked == {r["tag"] for r in doc["rows"] if r["kept_by_cleanup"]}
    assert len(checked) == 5  # 3 by count, latest, stable
    assert all(not r["decisions"] for r in doc["rows"] if not r["checked"])


@pytest.mark.parametrize(("args", "message"), [
    (["--tags", "("], "--tags '(': not a regular expression (it does not compile at "
                      "position 0)"),
    (["--older-than", "soon"], "--older-than 'soon'"),
])
def test_bad_flags_are_usage_errors(anon_registry: Registry, args: list[str],
                                    message: str) -> None:
    result = run_imggate(["audit", f"{anon_registry.host}/audit/none", *args])
    assert result.code == 2 and message in result.stderr


def test_a_tagged_reference_is_not_a_repository(anon_registry: Registry) -> None:
    result = run_imggate(["audit", f"{anon_registry.host}/audit/none:v1"])
    assert result.code == 2 and "takes a repository" in result.stderr


#: A rules file the loader refuses (an unknown severity).
BROKEN_RULES = "version: 1\nenvironments:\n  dev:\n    severity: {fail_on: Sometimes}\n"


def _refused(rules: Path) -> str:
    """The loader's own message for ``rules``."""
    from imggate.errors import Error
    from imggate.policy.loader import load_policy

    with pytest.raises(Error) as refused:
        load_policy(rules)
    return str(refused.value)


@pytest.mark.parametrize("extra", [[], ["--tags", "("]], ids=["alone", "and-a-bad-flag"])
def test_a_broken_rules_file_fails_the_audit_before_any_other_error_and_writes_nothing(
        anon_registry: Registry, tmp_path: Path, extra: list[str]) -> None:
    # The rules are read while the tags are listed: their error is still the audit's
    # (exit 2, the loader's message), ahead of a flag that fails before any request, and
    # no report is written.
    repository = f"audit/{secrets.token_hex(4)}"
    build(anon_registry.url, repository, n_tags=20, n_digests=4, signed=0)
    rules = tmp_path / "rules.yaml"
    rules.write_text(BROKEN_RULES)
    out = tmp_path / "out" / "reports"
    result = run_imggate(["audit", f"{anon_registry.host}/{repository}", "--rules", str(rules),
                          "-q", "-o", str(out), *extra])
    assert result.code == 2, result.output
    assert f"imggate: error: {_refused(rules)}\n" in result.stderr
    assert "--tags" not in result.stderr
    assert not (tmp_path / "out").exists()  # not even the directories for the reports


def test_a_broken_rules_file_is_the_error_even_when_the_registry_fails_too(
        tmp_path: Path) -> None:
    # Nothing listens on the port: the listing fails too, and the rules' error still wins
    # (as when they were read before the first request).
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rules = tmp_path / "rules.yaml"
    rules.write_text(BROKEN_RULES)
    result = run_imggate(["audit", f"127.0.0.1:{port}/audit/none", "--rules", str(rules),
                          "--deadline", "10", "-q", "-o", str(tmp_path / "out")])
    assert result.code == 2, result.output
    assert f"imggate: error: {_refused(rules)}\n" in result.stderr
    assert "registry" not in result.stderr


def test_a_missing_key_is_a_usage_error(anon_registry: Registry, tmp_path: Path) -> None:
    result = run_imggate(["audit", f"{anon_registry.host}/audit/none", "--key",
                          str(tmp_path / "none.pub"), "-q", "-o", str(tmp_path / "out")])
    assert result.code == 2
    assert f"--key {tmp_path / 'none.pub'}: no such file" in result.stderr


def test_the_multi_arch_platforms_come_from_the_layout() -> None:
    assert {p for _, p in MULTI_PLATFORMS} == {"linux/amd64", "linux/arm64"}


@pytest.fixture
def registry_requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every request imggate sends in this process, as (method, path): a counting wrapper
    around the registry client's sender, through which every registry request goes."""
    import httpx

    from imggate.registry.auth import RegistryAuth
    from imggate.registry.sending import Sender

    seen: list[tuple[str, str]] = []
    send = Sender.send

    async def counting(self: Sender, request: httpx.Request,
                       auth: RegistryAuth | None) -> httpx.Response:
        seen.append((request.method, request.url.path))
        return await send(self, request, auth)

    monkeypatch.setattr(Sender, "send", counting)
    return seen


@pytest.mark.parametrize("envs", [["prod"], ["prod", "prod-eu"]], ids=["one-env", "two-envs"])
def test_audit_fetches_each_manifest_and_config_once(
        anon_registry: Registry, skopeo: Skopeo, image_layout: LayoutBuilder,
        registry_requests: list[tuple[str, str]], tmp_path: Path, envs: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # 20 tags + latest + stable over 5 images, 2 of them signed, and a multi-arch index
    # under two tags, checked against a key rule: every tag's manifest is fetched once by
    # tag, each image's config (and the index's platform manifest) once, signatures are
    # looked up per image, never per tag (nor per environment: two environments that
    # both need the key ask exactly what one asks), and no image is fetched again.
    repository = f"audit/{secrets.token_hex(4)}"
    pushed = build(anon_registry.url, repository, n_tags=20, n_digests=5, signed=2)
    for tag in ("multi", "multi-again"):
        skopeo.push(image_layout.path, MULTI_TAG, anon_registry, repository, tag,
                    all_platforms=True)
    (tmp_path / "cosign.pub").write_bytes(pushed.signer.public_pem)
    (tmp_path / "rules.yaml").write_text(RULES)
    registry_requests.clear()
    opened = _count_clients(monkeypatch)
    result = run_imggate(["audit", f"{anon_registry.host}/{repository}", "--rules",
                          str(tmp_path / "rules.yaml"),
                          *(arg for env in envs for arg in ("--env", env)),
                          "--insecure-ignore-tlog", "-q", "-o", str(tmp_path / "out")])
    assert result.code == 1, result.output  # prod denies the unsigned images
    doc = json.loads((tmp_path / "out" / "imggate-audit.json").read_text())
    assert doc["environments"] == envs
    assert sum(r["signed"] is True for r in doc["rows"]) == 2 * 4 + 1  # 2 images, 9 tags
    base = f"/v2/{repository}"
    tags = [*pushed.tags, "multi", "multi-again"]
    images = {r["digest"].removeprefix("sha256:") for r in doc["rows"]}
    assert len(images) == 6
    count: dict[str, int] = {}
    for method, path in registry_requests:
        assert method == "GET" and path.startswith(f"{base}/"), (method, path)
        count[path.removeprefix(base)] = count.get(path.removeprefix(base), 0) + 1
    assert count.pop("/tags/list") == 1
    for tag in tags:
        assert count.pop(f"/manifests/{tag}") == 1, tag
    # What each image's signature check asks for names the image: per image, not per tag,
    # and once though signatures and signed vuln attestations both look.
    for image in images:
        for suffix in (".sig", ".att"):
            assert count.pop(f"/manifests/sha256-{image}{suffix}") == 1
        assert count.pop(f"/referrers/sha256:{image}") == 1  # bundles
        assert count.pop(f"/manifests/sha256-{image}") == 1  # the referrers' tag fallback
    # Left, each fetched once: one config per image, the two signature payloads and the
    # index's amd64 manifest.
    assert sorted(p.split(":")[0] for p in count) == ["/blobs/sha256"] * (6 + 2) + [
        "/manifests/sha256"], count
    assert set(count.values()) == {1}, count
    # One registry client for the whole audit: the signature checks go over the listing's
    # connections (a client of their own opened as many again).
    assert opened == [1]


def _count_clients(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many registry clients are opened from now on (one number in a list)."""
    from imggate.registry.client import RegistryClient

    opened = [0]
    enter = RegistryClient.__aenter__

    async def counting(self: RegistryClient) -> RegistryClient:
        opened[0] += 1
        return await enter(self)

    monkeypatch.setattr(RegistryClient, "__aenter__", counting)
    return opened


def test_a_quiet_audit_imports_no_console(anon_registry: Registry, tmp_path: Path) -> None:
    # -q shows nothing: rich (the progress, the table: ~25 ms of import) stays out.
    import subprocess
    import sys

    repository = f"audit/{secrets.token_hex(4)}"
    build(anon_registry.url, repository, n_tags=3, n_digests=2, signed=1)
    probe = ("import sys\nfrom imggate._cli import main\ntry:\n    main(sys.argv[1:])\n"
             "except SystemExit:\n    pass\n"
             "print('\\nRICH', sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))\n")
    proc = subprocess.run([sys.executable, "-c", probe, "audit",
                           f"{anon_registry.host}/{repository}", "-q", "-o", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert (tmp_path / "imggate-audit.json").is_file(), proc.stderr[-2000:]
    assert proc.stdout.rsplit("\nRICH ", 1)[1].strip() == "[]"


def test_an_audit_runs_with_the_collector_paused_and_resumes_it(
        anon_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its verdicts live until it exits and it makes almost no cycles: no collection walks
    # them (nor copies the HTML child's pages); the collector is back on after.
    import gc

    import imggate.audit.run

    repository = f"audit/{secrets.token_hex(4)}"
    build(anon_registry.url, repository, n_tags=3, n_digests=2, signed=1)
    seen: list[bool] = []
    run_audit = imggate.audit.run.run_audit

    def watched(*args: object, **kwargs: object) -> object:
        seen.append(gc.isenabled())
        return run_audit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(imggate.audit.run, "run_audit", watched)
    assert gc.isenabled()
    result = run_imggate(["audit", f"{anon_registry.host}/{repository}", "-q", "-o",
                          str(tmp_path)])
    assert result.code == 0, result.output
    assert seen == [False]
    assert gc.isenabled()



def _paged(monkeypatch: pytest.MonkeyPatch, size: int, *, fail_after: int | None = None) -> None:
    """The registry's tag list in pages of ``size`` tags, each after a pause; with
    ``fail_after``, the page after that many fails. Distribution 2.8 (the test registry)
    always answers with one page (``n`` on ``tags/list`` is Distribution 3's): the real
    list is cut into pages here, the way Docker Hub or GHCR hand it out."""
    import asyncio

    from imggate.errors import RegistryError
    from imggate.registry.repository import RegistryRepository

    listed = RegistryRepository.tag_pages

    async def pages(self: RegistryRepository, page_size: int | None = None
                    ) -> AsyncGenerator[tuple[str, ...], None]:
        tags = [t async for page in listed(self) for t in page]
        for n, start in enumerate(range(0, len(tags), size)):
            if n == fail_after:
                raise RegistryError("tags/list page failed", registry="r", repository="x")
            await asyncio.sleep(0.02)  # a round trip: the resolves go on meanwhile
            yield tuple(tags[start:start + size])

    monkeypatch.setattr(RegistryRepository, "tag_pages", pages)


def test_a_paginated_list_is_resolved_as_its_pages_come_and_reported_in_listed_order(
        anon_registry: Registry, registry_requests: list[tuple[str, str]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    repository = f"audit/{secrets.token_hex(4)}"
    build(anon_registry.url, repository, n_tags=40, n_digests=6, signed=0)
    args = ["audit", f"{anon_registry.host}/{repository}", "-q"]
    whole = run_imggate([*args, "-o", str(tmp_path / "whole")])
    assert whole.code == 0, whole.output
    _paged(monkeypatch, 7)
    resolved_before_the_last_page = []
    from imggate.registry.repository import RegistryRepository

    paged_list = RegistryRepository.tag_pages

    async def watched(self: RegistryRepository, page_size: int | None = None
                      ) -> AsyncGenerator[tuple[str, ...], None]:
        async for page in paged_list(self, page_size):
            yield page
        resolved_before_the_last_page.append(
            sum("/manifests/" in path for _, path in registry_requests))

    monkeypatch.setattr(RegistryRepository, "tag_pages", watched)
    registry_requests.clear()
    paged = run_imggate([*args, "-o", str(tmp_path / "paged")])
    assert paged.code == 0, paged.output
    # The first pages' tags were resolving while the last page was awaited.
    assert resolved_before_the_last_page[0] > 0
    # The same reports, the rows in the listed order (the timestamps aside).
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")
    for name in ("imggate-audit.json", "imggate-verdict.json", "imggate-junit.xml",
                 "imggate-report.html"):
        a, b = ((tmp_path / d / name).read_text() for d in ("whole", "paged"))
        if name == "imggate-audit.json":
            assert json.loads(a)["rows"] == json.loads(b)["rows"]
        elif name == "imggate-report.html":
            assert len(a) == len(b)
        else:
            assert stamp.sub("T", a) == stamp.sub("T", b), name


def test_a_page_of_the_list_that_fails_fails_the_audit(
        anon_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never a partial audit: the third page fails after the first pages' tags have started
    # resolving; they are cancelled and no report is written.
    repository = f"audit/{secrets.token_hex(4)}"
    build(anon_registry.url, repository, n_tags=20, n_digests=4, signed=0)
    _paged(monkeypatch, 5, fail_after=2)
    result = run_imggate(["audit", f"{anon_registry.host}/{repository}", "-q",
                          "-o", str(tmp_path)])
    assert result.code == 3, result.output
    assert "tags/list page failed" in result.stderr
    assert not list(tmp_path.iterdir())
