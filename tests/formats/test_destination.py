"""Where a report goes: files replaced atomically, everything else written through or refused.

Each failed before: ``convert -o`` renamed a regular 0600 file over FIFOs,
symlinks (``/proc/self/fd/1`` included) and device nodes, wrote ``-o -`` to a
file named ``-``, and ``-o DIR`` was an ``IsADirectoryError`` with exit 3.
Device cases use symlinks to ``/dev/null`` and ``/dev/full`` so that a
regression replaces a link in a temporary directory, never a real device.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from imggate._cli import main
from scanners.report_fixtures import FIXTURES

TRIVY = FIXTURES / "trivy" / "alpine-310.json"


def convert(*args: str) -> int:
    with pytest.raises(SystemExit) as e:
        main(["convert", str(TRIVY), *args])
    assert isinstance(e.value.code, int)
    return e.value.code


def convert_child(*args: str, umask: int | None = None, cwd: Path | None = None
                  ) -> subprocess.CompletedProcess[bytes]:
    def child() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run([sys.executable, "-m", "imggate", "convert", str(TRIVY), *args],
                          capture_output=True, timeout=60, preexec_fn=child, cwd=cwd,
                          check=False)


def test_new_file_honours_the_umask(tmp_path: Path) -> None:
    out = tmp_path / "new" / "gl.json"
    proc = convert_child("-o", str(out), umask=0o027)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert json.loads(out.read_bytes())["vulnerabilities"]
    proc = convert_child("-o", str(tmp_path / "b.json"), umask=0o002)
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o664


def test_existing_file_is_replaced_keeping_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "gl.json"
    out.write_text("old")
    out.chmod(0o600)
    assert convert("-o", str(out)) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_bytes())["vulnerabilities"]
    assert [p.name for p in tmp_path.iterdir()] == ["gl.json"]  # no temporary file left


def test_symlink_to_a_file_writes_the_file_and_keeps_the_link(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert convert("-o", str(link)) == 0
    assert link.is_symlink() and link.resolve() == target
    assert json.loads(target.read_bytes())["vulnerabilities"]


def test_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "later.json")
    assert convert("-o", str(link)) == 0
    assert link.is_symlink() and json.loads((tmp_path / "later.json").read_bytes())


def test_fifo_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    assert convert("-o", str(fifo)) == 0
    reader.join(timeout=30)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert json.loads(got[0])["vulnerabilities"]


def test_link_to_dev_null_is_written_through(tmp_path: Path) -> None:
    link = tmp_path / "null"
    link.symlink_to("/dev/null")
    assert convert("-o", str(link)) == 0
    assert link.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_dev_full_is_exit_3_and_left_alone(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    link = tmp_path / "full"
    link.symlink_to("/dev/full")
    assert convert("-o", str(link)) == 3
    assert f"cannot write report {link}: No space left on device" in capsys.readouterr().err
    assert link.is_symlink()


@pytest.mark.parametrize("target", ["-", "/dev/stdout"])
def test_dash_and_dev_stdout_write_standard_output(tmp_path: Path, target: str) -> None:
    proc = convert_child("-o", target, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["vulnerabilities"]
    assert list(tmp_path.iterdir()) == []  # no file named "-"


def test_link_to_proc_self_fd_1_writes_standard_output(tmp_path: Path) -> None:
    link = tmp_path / "out"
    link.symlink_to("/proc/self/fd/1")
    proc = convert_child("-o", str(link))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["vulnerabilities"]
    assert link.is_symlink()


def test_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert convert("-o", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert f"cannot write report to {tmp_path}: it is a directory" in err
    assert "internal error" not in err


def test_socket_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        assert convert("-o", str(path)) == 2
    assert "it is a socket" in capsys.readouterr().err
    assert stat.S_ISSOCK(path.lstat().st_mode)


def test_parts_are_written_in_order_and_a_failure_leaves_the_target_as_it_was(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from imggate.formats.destination import write_parts

    def failing() -> Iterator[bytes]:
        yield b"half a report"
        raise TypeError("cannot encode")

    out = tmp_path / "report.json"
    write_parts(out, [b"a", memoryview(b"xbcx")[1:3], b""])
    assert out.read_bytes() == b"abc"
    with pytest.raises(TypeError):
        write_parts(out, failing())
    assert out.read_bytes() == b"abc" and list(tmp_path.iterdir()) == [out]
    capfd.readouterr()
    with pytest.raises(TypeError):
        write_parts("-", failing())  # written through: nothing until every part is made
    assert capfd.readouterr().out == ""
