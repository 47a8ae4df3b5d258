"""Shared pytest fixtures: real registries, images and an isolated credential environment.

Registries are session-scoped (one process each for the whole run); tests that
damage registry storage use :func:`registry_harness.tampered`, which restores
the bytes, or the function-scoped ``fresh_image`` whose blobs nobody else uses.
A missing binary fails the run (in CI always; locally too unless
``IMGGATE_SKIP_MISSING=1`` is set outside CI).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness_images import (
    APP_SPEC,
    ARM_SPEC,
    MULTI_PLATFORMS,
    MULTI_TAG,
    ImageSpec,
    LayoutBuilder,
    PushedImage,
    Skopeo,
)
from registry_harness import (
    MissingComponentError,
    Registry,
    missing_component,
    require_binaries,
    start_registry,
)

# Credential sources imggate reads; tests start from none of them.
_AUTH_VARS = ("REGISTRY_AUTH_FILE", "DOCKER_AUTH_CONFIG", "CI_REGISTRY", "CI_REGISTRY_USER",
              "CI_REGISTRY_PASSWORD", "CI_REGISTRY_IMAGE", "CI_JOB_TOKEN")




@pytest.fixture(scope="session")
def harness_binaries() -> dict[str, str]:
    """Paths of docker-registry, skopeo, umoci and htpasswd; fails when one is missing."""
    try:
        return require_binaries()
    except MissingComponentError as e:
        missing_component(f"real-component tests need: {e}")


@pytest.fixture(scope="session")
def harness_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session temp dir for registries, layouts and auth files."""
    return tmp_path_factory.mktemp("registry-harness")


def _registry(harness_dir: Path, name: str, auth: str) -> Iterator[Registry]:
    reg = start_registry(harness_dir / name, auth=auth)
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def anon_registry(harness_binaries: dict[str, str], harness_dir: Path) -> Iterator[Registry]:
    """A registry without auth on ``127.0.0.1:<port>``."""
    yield from _registry(harness_dir, "anon", "none")


@pytest.fixture(scope="session")
def basic_registry(harness_binaries: dict[str, str], harness_dir: Path) -> Iterator[Registry]:
    """A registry with htpasswd (bcrypt) Basic auth; ``.username``/``.password`` are valid."""
    yield from _registry(harness_dir, "basic", "htpasswd")


@pytest.fixture(scope="session")
def token_registry(harness_binaries: dict[str, str], harness_dir: Path) -> Iterator[Registry]:
    """A registry with token auth backed by ``.token_server`` (ES256 JWTs, Basic to the realm)."""
    yield from _registry(harness_dir, "token", "token")


@pytest.fixture(scope="session")
def skopeo(harness_binaries: dict[str, str], harness_dir: Path) -> Skopeo:
    """skopeo with an empty auth file; creds come from the Registry passed to each call."""
    return Skopeo(harness_dir / "skopeo")


@pytest.fixture(scope="session")
def image_layout(harness_binaries: dict[str, str], harness_dir: Path) -> LayoutBuilder:
    """An OCI layout with ``app`` (amd64), ``app-arm64`` and the ``multi`` index over both."""
    layout = LayoutBuilder(harness_dir / "layout")
    layout.build(APP_SPEC)
    layout.build(ARM_SPEC)
    layout.build_index(MULTI_TAG, MULTI_PLATFORMS)
    return layout


def _push(skopeo: Skopeo, layout: LayoutBuilder, registry: Registry, tag: str,
          repository: str, dest_tag: str, platforms: tuple[str, ...] = (), *,
          docker_format: bool = False) -> PushedImage:
    digest = skopeo.push(layout.path, tag, registry, repository, dest_tag,
                         all_platforms=bool(platforms), docker_format=docker_format)
    return PushedImage(registry, repository, dest_tag, digest, platforms)


@pytest.fixture(scope="session")
def anon_image(skopeo: Skopeo, image_layout: LayoutBuilder, anon_registry: Registry
               ) -> PushedImage:
    """``APP_SPEC`` pushed to the anonymous registry as ``team/app:v1``."""
    return _push(skopeo, image_layout, anon_registry, "app", "team/app", "v1")


@pytest.fixture(scope="session")
def anon_multiarch(skopeo: Skopeo, image_layout: LayoutBuilder, anon_registry: Registry
                   ) -> PushedImage:
    """The two-platform OCI index pushed (``--all``) to the anonymous registry: ``team/multi``."""
    return _push(skopeo, image_layout, anon_registry, MULTI_TAG, "team/multi", "v1",
                 tuple(p for _, p in MULTI_PLATFORMS))


@pytest.fixture(scope="session")
def anon_docker_image(skopeo: Skopeo, image_layout: LayoutBuilder, anon_registry: Registry
                      ) -> PushedImage:
    """``APP_SPEC`` converted to Docker schema 2 on push: ``team/docker-app:v1``."""
    return _push(skopeo, image_layout, anon_registry, "app", "team/docker-app", "v1",
                 docker_format=True)


@pytest.fixture(scope="session")
def anon_docker_list(skopeo: Skopeo, image_layout: LayoutBuilder, anon_registry: Registry
                     ) -> PushedImage:
    """The two-platform index as a Docker manifest list: ``team/docker-multi:v1``."""
    return _push(skopeo, image_layout, anon_registry, MULTI_TAG, "team/docker-multi", "v1",
                 tuple(p for _, p in MULTI_PLATFORMS), docker_format=True)


@pytest.fixture(scope="session")
def basic_image(skopeo: Skopeo, image_layout: LayoutBuilder, basic_registry: Registry
                ) -> PushedImage:
    """``APP_SPEC`` pushed to the Basic-auth registry as ``team/app:v1``."""
    return _push(skopeo, image_layout, basic_registry, "app", "team/app", "v1")


@pytest.fixture(scope="session")
def token_image(skopeo: Skopeo, image_layout: LayoutBuilder, token_registry: Registry
                ) -> PushedImage:
    """``APP_SPEC`` pushed to the token-auth registry as ``group/project/app:v1``."""
    return _push(skopeo, image_layout, token_registry, "app", "group/project/app", "v1")


@pytest.fixture(scope="session")
def token_multiarch(skopeo: Skopeo, image_layout: LayoutBuilder, token_registry: Registry
                    ) -> PushedImage:
    """The two-platform index on the token-auth registry as ``group/project/multi:v1``."""
    return _push(skopeo, image_layout, token_registry, MULTI_TAG, "group/project/multi", "v1",
                 tuple(p for _, p in MULTI_PLATFORMS))


@pytest.fixture
def fresh_image(skopeo: Skopeo, harness_dir: Path, anon_registry: Registry) -> PushedImage:
    """A unique image (own layer and config blobs) in its own repo: safe to tamper with."""
    name = secrets.token_hex(4)
    layout = LayoutBuilder(harness_dir / f"fresh-{name}")
    layout.build(ImageSpec(tag="t", labels={"fresh": name}, content=f"fresh {name}\n".encode()))
    return _push(skopeo, layout, anon_registry, "t", f"fresh/{name}", "v1")


@pytest.fixture
def isolated_auth_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ambient credentials: empty ``DOCKER_CONFIG`` dir, CI/registry auth variables unset.

    Returns the ``DOCKER_CONFIG`` directory (write ``config.json`` there).
    """
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg-runtime"))
    for var in _AUTH_VARS:
        monkeypatch.delenv(var, raising=False)
    return docker_config


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Under pytest-xdist, a test marked ``alone`` runs while no other worker runs one.

    Siege tests judge time and memory under a load they make themselves (thousands of TLS
    handshakes, deadlines to the second); a test on the other core would skew what they
    measure. Every worker holds a shared lock on one file per run for each test, an
    ``alone`` test an exclusive one: it waits for the running tests to end, and the
    others wait for it. Taken outside pytest-timeout's timer (``tryfirst``), so waiting
    for the lock never counts against a test's timeout. Without xdist, nothing to do.
    (The README's command runs the ``alone`` tests in a run of their own; this keeps a
    plain ``pytest -n 2`` from running them beside another test.)
    """
    workerinput = getattr(item.config, "workerinput", None)
    if workerinput is None:
        return (yield)
    import fcntl

    # Each worker's basetemp is the controller's basetemp/<worker id>: one dir per run.
    lock = Path(item.config.option.basetemp).parent / "alone.lock"
    mode = fcntl.LOCK_EX if item.get_closest_marker("alone") else fcntl.LOCK_SH
    with lock.open("a") as f:
        fcntl.flock(f, mode)
        try:
            return (yield)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Counts the fault matrix's rows (tests/faults) from the reports that carry one.

    In a plain run that is every report; under pytest-xdist this hook runs in the
    controller for every worker's report as well, so the controller has all the rows.
    """
    if report.when != "call":
        return
    for name, value in report.user_properties:
        if name == "fault_matrix_row":
            from faults import matrix

            matrix.add(value)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault matrix's table (tests/faults), when it ran: printed whatever ``-s`` says.

    Also written to ``fault-matrix.txt`` in the run's temporary directory.
    """
    import sys

    tally = sys.modules.get("faults.matrix")
    if tally is None or not getattr(tally, "ROWS", None):
        return
    if hasattr(terminalreporter.config, "workerinput"):
        return  # an xdist worker: the controller prints the rows of all workers
    table = tally.table()
    terminalreporter.write_sep("=", "fault matrix")
    terminalreporter.write_line(table)
    # The factory behind tmp_path; pytest-xdist's controller reads it the same way.
    path = terminalreporter.config._tmp_path_factory.getbasetemp() / "fault-matrix.txt"
    path.write_text(table + "\n")
    terminalreporter.write_line(f"  (also in {path})")
