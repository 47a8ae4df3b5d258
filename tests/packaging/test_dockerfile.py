"""imggate's own image: what can be checked without a Docker engine or a reachable base image.

The Dockerfile is read with ``dockerfile`` (BuildKit's own parser, compiled): it must parse,
pin every base by digest, end as a non-root user with ``imggate`` as the entrypoint, carry no
build tools into the final stage, and offer Trivy as a build argument.
"""

from __future__ import annotations

import re
from pathlib import Path

import dockerfile
import pytest

ROOT = Path(__file__).resolve().parents[2]
DIGEST_PINNED = re.compile(r"[a-z0-9./-]+(:[\w.-]+)?@sha256:[0-9a-f]{64}")


def _commands() -> tuple[dockerfile.Command, ...]:
    return dockerfile.parse_file(str(ROOT / "Dockerfile"))


def _stages() -> list[list[dockerfile.Command]]:
    stages: list[list[dockerfile.Command]] = []
    for cmd in _commands():
        if cmd.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(cmd)
    return stages


def _global_args() -> dict[str, str]:
    out = {}
    for cmd in _commands():
        if cmd.cmd == "FROM":
            break
        if cmd.cmd == "ARG":
            name, _, default = cmd.value[0].partition("=")
            out[name] = default
    return out


def _base(cmd: dockerfile.Command, stage_names: set[str]) -> str:
    args = _global_args()
    image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], cmd.value[0])
    return image


def test_it_parses_into_several_stages() -> None:
    assert len(_stages()) >= 2  # a build stage and a final one
    with pytest.raises(dockerfile.GoParseError):
        dockerfile.parse_string("FROM a\nRUN <<EOF\n")  # the parser does reject bad input


def test_every_base_image_is_pinned_by_digest() -> None:
    names: set[str] = set()
    for stage in _stages():
        frm = stage[0]
        base = _base(frm, names)
        assert base in names or DIGEST_PINNED.fullmatch(base), base
        if len(frm.value) == 3 and frm.value[1].upper() == "AS":
            names.add(frm.value[2])
    assert DIGEST_PINNED.fullmatch(_global_args()["PYTHON_IMAGE"])
    assert _global_args()["PYTHON_IMAGE"].startswith("python:3.11-slim@")


def test_the_final_stage_runs_imggate_as_a_non_root_user() -> None:
    final = _stages()[-1]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users, "no USER in the final stage: it would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric: runAsNonRoot can verify it
    entry = [c for c in final if c.cmd == "ENTRYPOINT"][-1]
    assert entry.json and entry.value == ("imggate",)


def test_no_build_tools_reach_the_final_stage() -> None:
    final = _stages()[-1]
    text = "\n".join(c.original for c in final)
    assert not re.search(r"\b(gcc|build-essential|make|apt-get install)\b", text)
    copies = [c for c in final if c.cmd == "COPY"]
    assert all(any(f.startswith("--from=") for f in c.flags) for c in copies), \
        "the final stage copies only built results out of other stages"
    assert "pip uninstall" in text  # not even pip is left to install things at run time


def test_trivy_is_a_build_argument_checked_by_checksum() -> None:
    trivy = next(s for s in _stages() if s[0].value[-1] == "trivy")
    args = {c.value[0].partition("=")[0] for c in trivy if c.cmd == "ARG"}
    assert {"TRIVY_VERSION", "TRIVY_SHA256"} <= args
    assert "sha256sum -c" in "\n".join(c.original for c in trivy)
