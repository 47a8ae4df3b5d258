"""docs/admission.md "Try it on your laptop": its commands, run as written, give its answer.

The section's shell block runs under bash in a directory holding a copy of ``rules/`` (as a
checkout does), with real ``openssl``, ``curl`` and ``imggate serve`` on port 8443; what it
prints must be the JSON the page shows; when ``imggate serve`` cannot have the port, the
block must end (not wait forever) with ``serve.log`` saying why.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
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
    section = _section()
    with _port_8443():
        assert not _listening(), "port 8443 is in use: the page uses it"
        with _run_block(section, tmp_path) as done:
            assert done.returncode == 0, done.stderr + _serve_log(tmp_path)
            assert json.loads(done.stdout) == json.loads(_block(section, "json"))
            # The server was stopped by the block's last line, and logged the review.
            log = _serve_log(tmp_path)
            assert '"uid":"laptop-1"' in log and '"env_by":"namespaces.map[2] \'*-prod\'"' in log
            # Stopping takes uvicorn a moment after the shell has gone.
            deadline = time.monotonic() + 15
            while _listening() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _listening(), "the page's `kill %1` left imggate serve running"


def test_the_laptop_commands_stop_when_the_port_is_taken(tmp_path: Path) -> None:
    """Another server on 8443 (CI's two dependency runs once raced for it): the block ends.

    The page's wait for ``/readyz`` used to loop forever when ``imggate serve`` could not
    bind, since its curl kept failing on the other server's certificate.
    """
    with _port_8443(), socket.socket() as taker:
        # As uvicorn does: connections of a server just stopped may linger in TIME_WAIT.
        taker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taker.bind(("127.0.0.1", 8443))
        taker.listen()
        refuser = threading.Thread(target=_refuse_all, args=(taker,), daemon=True)
        refuser.start()
        try:
            began = time.monotonic()
            with _run_block(_section(), tmp_path) as done:
                assert done.returncode != 0
                assert time.monotonic() - began < 60
                assert "could not serve on 127.0.0.1:8443" in _serve_log(tmp_path)
        finally:
            # Closing alone would leave the port listening while accept() holds it.
            taker.shutdown(socket.SHUT_RDWR)
            refuser.join(10)


def _refuse_all(taker: socket.socket) -> None:
    """Accepts each connection and closes it at once, until the socket is shut down."""
    while True:
        try:
            conn, _ = taker.accept()
        except OSError:
            return
        conn.close()


@contextlib.contextmanager
def _port_8443() -> Iterator[None]:
    """Port 8443 for one test at a time on this machine, across pytest runs.

    CI runs the unit tests on the newest and on the lowest dependency releases at the same
    time, in two pytest runs: both reach for the page's port.
    """
    with (Path(tempfile.gettempdir()) / "imggate-laptop-8443.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def _run_block(section: str, tmp_path: Path) -> Iterator[subprocess.CompletedProcess[str]]:
    """The section's shell block, run as the page says, in a session of its own.

    Whatever it left running (a server the block failed before stopping) is killed when
    the ``with`` ends, and a block that outlives two minutes fails the test with the
    server's log.
    """
    for tool in ("openssl", "curl", "bash"):
        require_tool(tool, "docs/admission.md's laptop section runs it")
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"),
           # imggate and python3 of this interpreter (a venv's, in CI's dependency runs).
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env = {k: v for k, v in env.items() if not k.startswith("KUBERNETES_")}
    script = _block(section, "sh")
    with subprocess.Popen(["bash", "-e", "-c", script], cwd=tmp_path, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, start_new_session=True) as shell:
        try:
            out, err = shell.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            _kill_group(shell.pid)
            shell.communicate()
            raise AssertionError("the block ran 120 s: " + _serve_log(tmp_path)) from None
    try:
        yield subprocess.CompletedProcess(shell.args, shell.returncode, out, err)
    finally:
        _kill_group(shell.pid)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _serve_log(tmp_path: Path) -> str:
    log = tmp_path / "serve.log"
    return log.read_text() if log.exists() else "(no serve.log)"


def _listening() -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", 8443)) == 0
