"""Format detection and reading report files: every failure is a ReportError naming the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imggate.errors import ReportError, UsageError
from imggate.scanners._doc import _FAST_DECODE_MIN as _DECODE_MIN
from imggate.scanners._doc import load_json
from imggate.scanners.detect import (
    _HUGE_READ_MIN,
    KINDS,
    detect_kind,
    load_report,
    parse_report,
    parser_for,
)
from scanners.report_fixtures import ALL_REPORTS, FIXTURES, GRYPE, TRIVY_JSON, fixture_id, load


@pytest.mark.parametrize(("path", "kind"), ALL_REPORTS, ids=[fixture_id(p) for p, _ in ALL_REPORTS])
def test_each_fixture_is_detected_as_its_kind(path: Path, kind: str) -> None:
    parser = detect_kind(load(path))
    assert parser is not None and parser.kind == kind
    # naming the kind gives the same result as detecting it
    assert load_report(path, kind=kind) == load_report(path)


def test_kind_aliases_and_unknown_kind() -> None:
    assert parser_for("gitlab-cs").kind == "gitlab"
    assert parser_for("SARIF").kind == "trivy-sarif"
    assert set(KINDS) == {"trivy", "grype", "gitlab", "trivy-sarif", "cyclonedx", "imggate"}
    with pytest.raises(UsageError, match="unknown report kind 'nessus'"):
        parser_for("nessus")


def test_wrong_kind_named_is_an_error_not_an_empty_report() -> None:
    with pytest.raises(ReportError, match=r"invalid Trivy JSON report at \$\.SchemaVersion"):
        load_report(GRYPE[0], kind="trivy")
    with pytest.raises(ReportError, match=r"invalid Grype JSON report at \$\.matches"):
        load_report(TRIVY_JSON[0], kind="grype")


@pytest.mark.parametrize(("content", "message"), [
    (b"", "report is empty"),
    (b"   \n", "report is empty"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"SchemaVersion": 2, "Results": [', "not valid JSON"),
    (b"{\"a\": NaN}", "NaN is not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b"{}", "not a scanner report imggate recognises"),
    (b"[]", "an empty array"),
    (b"42", "not a scanner report"),
    (b'"text"', "not a scanner report"),
    (b'{"matches": 1}', "not a scanner report"),
])
# A report of 1 MiB or more is decoded by msgspec first, a file of 4 MiB or more read into
# a mapping: the refusals are worded the same.
@pytest.mark.parametrize("pad", [0, _DECODE_MIN, _HUGE_READ_MIN], ids=["small", "large", "huge"])
def test_unreadable_documents(tmp_path: Path, content: bytes, message: str, pad: int) -> None:
    p = tmp_path / "report.json"
    p.write_bytes(content + b" " * pad)
    with pytest.raises(ReportError) as e:
        load_report(p)
    assert e.value.message.startswith(f"{p}: ")
    assert message in e.value.message


@pytest.mark.parametrize("path", [FIXTURES / "trivy" / "alpine-310.json", GRYPE[0]],
                         ids=["trivy", "grype"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
def test_a_large_report_file_is_read_as_its_bytes(tmp_path: Path, path: Path, bom: bytes,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Files of _HUGE_READ_MIN bytes or more are read into a mapping, not a bytes object.
    data = bom + b" " * _HUGE_READ_MIN + path.read_bytes()
    p = tmp_path / "report.json"
    p.write_bytes(data)
    expected = parse_report(data, source=str(p))
    assert expected.findings
    assert load_report(p) == expected
    # A file that grows while it is read is read to its end, as read_file does.
    real_fstat = os.fstat

    def smaller(fd: int) -> os.stat_result:
        st = list(real_fstat(fd))
        st[6] -= 100  # st_size
        return os.stat_result(st)

    monkeypatch.setattr(os, "fstat", smaller)
    assert load_report(p) == expected


def test_empty_array_is_a_legacy_trivy_report_only_when_named() -> None:
    report = parse_report(b"[]", source="x", kind="trivy")
    assert report.findings == ()


def test_truncated_real_report(tmp_path: Path) -> None:
    data = (FIXTURES / "trivy" / "alpine-310.json").read_bytes()
    p = tmp_path / "cut.json"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReportError, match=r"cut\.json: not valid JSON: .* line \d+ column \d+"):
        load_report(p)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"nope\.json: cannot read report"):
        load_report(tmp_path / "nope.json")
    with pytest.raises(ReportError, match="cannot read report"):
        load_report(tmp_path)


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "bom.json"
    p.write_bytes(b"\xef\xbb\xbf" + (FIXTURES / "trivy" / "alpine-310.json").read_bytes())
    assert len(load_report(p).findings) == 4


def test_huge_strings_are_cut_or_refused() -> None:
    doc = load(FIXTURES / "trivy" / "alpine-310.json")
    v = doc["Results"][0]["Vulnerabilities"][0]
    v["Description"] = "A" * 3_000_000
    report = parse_report(json.dumps(doc).encode(), source="big.json")
    assert report.findings[0].description is not None
    assert len(report.findings[0].description) == 1 << 20
    v["PkgName"] = "p" * 100_000
    with pytest.raises(ReportError, match=r"PkgName: string of 100000 characters is too long"):
        parse_report(json.dumps(doc).encode(), source="big.json")


def test_report_linked_to_a_device_is_refused_unread(tmp_path: Path) -> None:
    """A link to /dev/zero used to be read up to the 1 GiB cap before being refused."""
    import pytest

    from imggate.errors import ReportError
    from imggate.scanners.detect import load_report

    link = tmp_path / "trivy.json"
    link.symlink_to("/dev/zero")
    with pytest.raises(ReportError, match="a device: only regular files are read"):
        load_report(link)


def test_report_from_a_pipe_is_read(tmp_path: Path) -> None:
    """``--report <(cat trivy.json)``: the pipe a user names is read."""
    import os
    import threading

    from imggate.scanners.detect import load_report
    from scanners.report_fixtures import FIXTURES as F

    fifo = tmp_path / "report"
    os.mkfifo(fifo)
    data = (F / "trivy" / "alpine-310.json").read_bytes()

    def write() -> None:
        with open(fifo, "wb") as fh:
            fh.write(data)

    t = threading.Thread(target=write)
    t.start()
    report = load_report(fifo)
    t.join()
    assert report.findings


@pytest.mark.parametrize("pad", [0, _DECODE_MIN], ids=["small", "large"])
def test_large_and_small_documents_decode_to_the_same_values(pad: int) -> None:
    # What only the stdlib takes (a BOM, a lone surrogate) and what decoders disagree on
    # (integers past 64 bits, which orjson turns into floats): the same values either way.
    edges = ('{"big": 18446744073709551616, "neg": -9223372036854775809, "f": 1e-400, '
             '"z": -0.0, "u": "\\u00e9\\u0000\\t", "dup": 1, "dup": 2, "deep": [[[[1]]]], '
             '"exp": 1E2, "huge": 123456789012345678901234567890.5}')
    for text in (edges, '{"lone": "\\ud800"}', "\ufeff" + edges):
        data = text.encode("utf-8") + b" " * pad
        expected = json.loads(text.removeprefix("\ufeff"))
        decoded = load_json(data, "x.json")
        assert decoded == expected and repr(decoded) == repr(expected)
