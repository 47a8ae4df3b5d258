"""Every dependency has a tested range: a lower bound .ci/run installs, below the next major."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
REQUIREMENTS = [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["test"]]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("lower_bounds", ROOT / ".ci" / "lower_bounds.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lower_bounds() -> list[str]:
    return list(_module().lower_bounds(ROOT / "pyproject.toml"))


def test_every_dependency_stops_before_its_next_major() -> None:
    for requirement in REQUIREMENTS:
        found = re.fullmatch(r"[\w.-]+(\[[\w,]+\])?>=([\d.]+),<([\d.]+)", requirement)
        assert found, f"{requirement}: not written >=lower,<upper"
        lower, upper = _version(found[2]), _version(found[3])
        assert lower < upper, requirement
        if lower[0] == 0:
            # 0.x releases break at the minor: the bound is the next minor, 0.M.
            assert len(upper) == 2 and upper[0] == 0 and upper[1] == lower[1] + 1, requirement
        else:
            # A bare major: no release of the next major can be installed.
            assert len(upper) == 1 and upper[0] > lower[0], requirement


def test_lower_bounds_pin_every_dependency_at_its_lower_bound() -> None:
    pins = _lower_bounds()
    assert len(pins) == len(REQUIREMENTS)
    for requirement, pin in zip(REQUIREMENTS, pins, strict=True):
        name, version = pin.split("==")
        assert requirement.startswith(name) and f">={version}," in requirement


def test_is_lowest_tells_the_lower_bounds_from_other_releases(tmp_path: Path) -> None:
    import subprocess
    import sys

    # This interpreter has some set of releases; a venv pinned to other versions would be
    # slow to build here, so the check is run against this one and a doctored pyproject.
    module = _module()
    assert module.is_lowest() == all(
        _installed(pin) for pin in module.lower_bounds(ROOT / "pyproject.toml"))
    done = subprocess.run([sys.executable, str(ROOT / ".ci" / "lower_bounds.py"), "--is-lowest"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == (0 if module.is_lowest() else 1)


def _installed(pin: str) -> bool:
    from importlib import metadata

    name, version = pin.split("==")
    try:
        return metadata.version(name) == version
    except metadata.PackageNotFoundError:
        return False


def test_ci_runs_the_unit_tests_on_the_newest_and_the_lowest_releases() -> None:
    run = (ROOT / ".ci" / "run").read_text()
    # The venvs are built while the main tests run; their tests run after them.
    order = [run.index(". .ci/dependency_releases.sh"), run.index("deps_start"),
             run.index("( python3 -m pytest -q -p no:cacheprovider -n 2 -m 'not alone' && "
                       "python3 -m pytest -q -p no:cacheprovider -m alone )\n"), run.index("deps_finish")]
    assert order == sorted(order)
    script = (ROOT / ".ci" / "dependency_releases.sh").read_text()
    assert 'how=(--upgrade --upgrade-strategy eager)' in script
    assert 'how=(-c "$deps_dir/lower-bounds.txt")' in script
    assert "-e '.[test]'" in script
    assert "python3 .ci/lower_bounds.py > \"$deps_dir/lower-bounds.txt\"" in script
    # A set the main run already tested is not run twice; any failure fails the run.
    assert "python3 .ci/lower_bounds.py --is-newest" in script
    assert "python3 .ci/lower_bounds.py --is-lowest" in script
    assert 'failed="$failed ${run%%:*}"' in script and "return 1" in script
    assert ('-m pytest -q -p no:cacheprovider -n 2 -m "not registry" \\\n'
            '    --ignore=tests/faults --ignore=tests/siege') in script


def test_httpcore_finds_its_async_library_without_a_failed_import() -> None:
    # httpcore's current_async_library() imports sniffio on every pooled request: installed,
    # that is a sys.modules lookup; missing, a failed import that walks sys.path each time.
    import sniffio
    from httpcore._synchronization import current_async_library  # the call it makes

    assert "sniffio" in {r.split(">=")[0] for r in PROJECT["dependencies"]}
    assert sniffio.__name__ == "sniffio" and callable(current_async_library)
