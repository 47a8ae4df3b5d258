"""docs/admission.md "Try it on your laptop": its commands, run as written, give its answer.

The section's shell block runs under bash in a directory holding a copy of ``rules/`` (as a
checkout does), with real ``openssl``, ``curl`` and ``imggate serve`` on port 8443; what it
prints must be the JSON the page shows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from registry_harness import require_tool

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "admission.md"


def _section() -> str:
    text = PAGE.read_text()
    start = text.index("## Try it on your laptop")
    return text[start:text.index("\n## ", start + 1)]


def _block(section: str, language: str) -> str:
    found = re.search(rf"^```{language}\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert found, f"no {language} block in the section"
    return found[1]


def test_the_laptop_commands_give_the_answer_the_page_shows(tmp_path: Path) -> None:
    for tool in ("openssl", "curl", "bash"):
        require_tool(tool, "docs/admission.md's laptop section runs it")
    assert not _listening(), "port 8443 is in use: the page uses it"
    section = _section()
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"),
           # imggate and python3 of this interpreter (a venv's, in CI's dependency runs).
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env = {k: v for k, v in env.items() if not k.startswith("KUBERNETES_")}
    done = subprocess.run(["bash", "-e", "-c", _block(section, "sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr + (tmp_path / "serve.log").read_text()
    assert json.loads(done.stdout) == json.loads(_block(section, "json"))
    # The server was stopped by the block's last line, and logged the review.
    log = (tmp_path / "serve.log").read_text()
    assert '"uid":"laptop-1"' in log and '"env_by":"namespaces.map[2] \'*-prod\'"' in log
    # Stopping takes uvicorn a moment after the shell has gone.
    deadline = time.monotonic() + 15
    while _listening() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _listening(), "the page's `kill %1` left imggate serve running"


def _listening() -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", 8443)) == 0
