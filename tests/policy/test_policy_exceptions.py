"""Exceptions from every source: matching, scope, expiry, staleness; files never rewritten."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imggate.errors import ConfigError
from imggate.models import Finding
from imggate.policy import _yaml
from imggate.policy.allowlists import (
    discover_allowlists,
    load_allowlist,
    parse_gitlab_allowlist,
    parse_trivyignore,
)
from imggate.policy.exceptions import AllowEntry, ExceptionSet
from imggate.policy.kev import load_kev, parse_kev
from imggate.policy.loader import load_exceptions, load_rules
from imggate.policy.vex import parse_openvex
from policy.policy_builders import DIGEST, OTHER_DIGEST, finding, ref, rules

TODAY = date(2026, 11, 22)


def _apply(entries: ExceptionSet, *findings: Finding,
           env: str = "prod") -> tuple[list[str], list[tuple[str, str]]]:
    applied = entries.apply(findings, ref=ref(digest=DIGEST), digests=(DIGEST,), env=env,
                            today=TODAY)
    return ([f.id for f in applied.active],
            [(u.vulnerability, u.status) for u in applied.uses])


def entry(vid: str = "CVE-2024-0001", *, expires: date | None = None,
          package: str | None = None, images: tuple[str, ...] = (),
          environments: tuple[str, ...] = ()) -> ExceptionSet:
    return ExceptionSet((AllowEntry(ids=(vid,), reason="accepted", source="x:1", kind="imggate",
                                    expires=expires, package=package, images=images,
                                    environments=environments),))


def test_used_expired_and_stale() -> None:
    s = entry(expires=date(2026, 12, 1)) + entry("CVE-2000-1", expires=date(2026, 12, 1)) \
        + entry("CVE-2024-0002", expires=date(2026, 11, 21))
    active, uses = _apply(s, finding("CVE-2024-0001"), finding("CVE-2024-0002"))
    assert active == ["CVE-2024-0002"]  # the expired one counts again
    assert uses == [("CVE-2024-0001", "used"), ("CVE-2000-1", "stale"),
                    ("CVE-2024-0002", "expired")]


def test_expiry_day_itself_still_applies() -> None:
    active, uses = _apply(entry(expires=TODAY), finding())
    assert active == [] and uses == [("CVE-2024-0001", "used")]


def test_alias_and_package_scope() -> None:
    f = finding("GHSA-aaaa-bbbb-cccc", aliases=("CVE-2024-0001",), package="golang.org/x/net",
                purl="pkg:golang/golang.org/x/net@0.1.0")
    assert _apply(entry(package="golang.org/x/*"), f)[0] == []
    assert _apply(entry(package="openssl"), f)[0] == ["GHSA-aaaa-bbbb-cccc"]
    assert _apply(entry(package="pkg:golang/golang.org/x/net"), f)[0] == []
    assert _apply(entry(package="pkg:golang/golang.org/x/net@0.2.0"), f)[0] != []


def test_image_and_environment_scope() -> None:
    f = finding()
    in_team = entry(images=("registry.example.com/team/*",))
    assert _apply(in_team, f)[0] == []
    elsewhere = entry(images=("ghcr.io/*",))
    active, uses = _apply(elsewhere, f)
    assert active == ["CVE-2024-0001"] and uses == []  # out of scope: not reported as stale
    assert _apply(entry(images=(f"registry.example.com/team/app@{DIGEST}",)), f)[0] == []
    assert _apply(entry(images=(f"registry.example.com/team/app@{OTHER_DIGEST}",)), f)[0] \
        == ["CVE-2024-0001"]
    assert _apply(entry(images=("registry.example.com/team/app:1.2.3",)), f)[0] == []
    assert _apply(entry(images=("registry.example.com/team/app:2.0",)), f)[0] != []
    assert _apply(entry(environments=("dev",)), f, env="prod")[0] == ["CVE-2024-0001"]


def test_imggate_entries_in_rules_file_name_their_line() -> None:
    r = rules("environments:\n  prod: {}\nexceptions:\n  - id: CVE-2024-0001\n"
              "    expires: 2026-12-31\n    reason: tracked in APP-1\n")
    (e,) = r.exceptions.entries
    assert (e.source, e.expires, e.reason) == ("rules.yaml:4", date(2026, 12, 31),
                                               "tracked in APP-1")


def test_reason_and_expiry_are_required() -> None:
    with pytest.raises(ConfigError, match=r"exceptions\.0\.reason") as info:
        rules("environments:\n  prod: {}\nexceptions:\n  - id: CVE-1\n    expires: 2026-01-01\n")
    assert info.value.location == "rules.yaml:4"
    with pytest.raises(ConfigError, match="expires"):
        rules("environments:\n  prod: {}\nexceptions:\n  - id: CVE-1\n    reason: x\n")


def test_trivyignore_text() -> None:
    s = parse_trivyignore("# openssl is not reachable\nCVE-2024-0001\n\n"
                          "CVE-2024-0002 exp:2026-01-01\nCVE-2024-0003 # inline\n", ".trivyignore")
    ids = [(e.vulnerability, e.expires, e.reason, e.source) for e in s.entries]
    assert ids == [("CVE-2024-0001", None, "openssl is not reachable", ".trivyignore:2"),
                   ("CVE-2024-0002", date(2026, 1, 1), "listed in .trivyignore",
                    ".trivyignore:4"),
                   ("CVE-2024-0003", None, "listed in .trivyignore", ".trivyignore:5")]
    with pytest.raises(ConfigError) as info:
        parse_trivyignore("CVE-1 exp:tomorrow\n", ".trivyignore")
    assert info.value.location == ".trivyignore:1"


def test_trivyignore_yaml(tmp_path: Path) -> None:
    p = tmp_path / ".trivyignore.yaml"
    p.write_text("vulnerabilities:\n  - id: CVE-2024-0001\n    statement: Accept the risk\n"
                 "    purls: ['pkg:deb/debian/openssl']\n  - id: CVE-2024-0002\n"
                 "    expired_at: 2026-01-01\nmisconfigurations:\n  - id: AVD-DS-0002\n")
    s = load_allowlist(p)
    first, second = s.entries
    assert (first.reason, first.purls, first.source) == (
        "Accept the risk", ("pkg:deb/debian/openssl",), f"{p}:2")
    assert second.expires == date(2026, 1, 1)
    deb = finding(purl="pkg:deb/debian/openssl@3.0.1?arch=amd64")
    apk = finding(purl="pkg:apk/alpine/openssl@3.0.1")
    assert _apply(s, deb)[0] == [] and _apply(s, apk)[0] == ["CVE-2024-0001"]


def test_gitlab_allowlist() -> None:
    doc = _yaml.parse_yaml(
        "generalallowlist:\n  CVE-2024-0001:\n  CVE-2024-0002: cups\n"
        "images:\n  registry.example.com/team/app:\n    CVE-2024-0003: libxml2\n"
        "  ghcr.io/other:\n    CVE-2024-0004:\n", "vulnerability-allowlist.yml")
    s = parse_gitlab_allowlist(doc)
    assert [(e.vulnerability, e.images, e.source) for e in s.entries] == [
        ("CVE-2024-0001", (), "vulnerability-allowlist.yml:2"),
        ("CVE-2024-0002", (), "vulnerability-allowlist.yml:3"),
        ("CVE-2024-0003", ("registry.example.com/team/app",), "vulnerability-allowlist.yml:6"),
        ("CVE-2024-0004", ("ghcr.io/other",), "vulnerability-allowlist.yml:8")]
    assert s.entries[1].reason == "cups"
    active, uses = _apply(s, finding("CVE-2024-0001"), finding("CVE-2024-0003"),
                          finding("CVE-2024-0004"))
    assert active == ["CVE-2024-0004"]
    assert ("CVE-2024-0004", "stale") not in uses  # scoped to another image
    with pytest.raises(ConfigError) as info:
        parse_gitlab_allowlist(_yaml.parse_yaml("generalallowlist: {}\nother: 1\n", "v.yml"))
    assert info.value.location == "v.yml:2"


VEX = {
    "@context": "https://openvex.dev/ns/v0.2.0",
    "@id": "https://example.com/vex/1",
    "author": "security@example.com",
    "timestamp": "2026-10-01T00:00:00Z",
    "version": 1,
    "statements": [
        {"vulnerability": {"name": "CVE-2024-0001"},
         "products": [{"@id": f"pkg:oci/app@{str(DIGEST).replace(':', '%3A')}"
                             "?repository_url=registry.example.com/team/app",
                       "subcomponents": [{"@id": "pkg:deb/debian/openssl"}]}],
         "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path",
         "impact_statement": "TLS is terminated by the proxy"},
        {"vulnerability": {"name": "CVE-2024-0002"}, "products": [{"@id": "pkg:oci/other"}],
         "status": "fixed"},
        {"vulnerability": {"name": "CVE-2024-0003"},
         "products": [{"@id": "pkg:oci/app?repository_url=registry.example.com/team/app"}],
         "status": "not_affected", "justification": "component_not_present",
         "timestamp": "2026-10-01T00:00:00Z"},
        {"vulnerability": {"name": "CVE-2024-0003"},
         "products": [{"@id": "pkg:oci/app?repository_url=registry.example.com/team/app"}],
         "status": "affected", "timestamp": "2026-10-05T00:00:00Z"},
        {"vulnerability": "CVE-2024-0005", "products": ["pkg:oci/app"],
         "status": "under_investigation"},
    ],
}


def test_openvex_suppresses_with_justification() -> None:
    s = parse_openvex(json.dumps(VEX).encode(), "app.vex.json")
    assert [e.vulnerability for e in s.entries] == ["CVE-2024-0001", "CVE-2024-0002"]
    used = s.entries[0]
    assert used.reason == ("not_affected (vulnerable_code_not_in_execute_path): "
                           "TLS is terminated by the proxy")
    assert used.source == "app.vex.json statements[0]"
    f = finding(purl="pkg:deb/debian/openssl@3.0.1")
    active, uses = _apply(s, f, finding("CVE-2024-0003"), finding("CVE-2024-0005"))
    # CVE-2024-0003: a later `affected` withdrew the `not_affected`.
    assert active == ["CVE-2024-0003", "CVE-2024-0005"]
    assert uses == [("CVE-2024-0001", "used")]  # CVE-2024-0002 is about another product
    other_digest = ref(digest=OTHER_DIGEST)
    applied = s.apply([f], ref=other_digest, digests=(OTHER_DIGEST,), env="prod", today=TODAY)
    assert [x.id for x in applied.active] == ["CVE-2024-0001"]


def test_openvex_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not an OpenVEX document"):
        parse_openvex(b'{"statements": []}', "x.json")
    with pytest.raises(ConfigError, match=r"x\.json: not valid JSON"):
        parse_openvex(b"{", "x.json")
    bad = {**VEX, "statements": [{"vulnerability": {"name": "CVE-1"}, "status": "maybe"}]}
    with pytest.raises(ConfigError, match=r"statements\.0\.status"):
        parse_openvex(json.dumps(bad).encode(), "x.json")


def test_load_exceptions_combines_sources_and_never_writes(tmp_path: Path) -> None:
    (tmp_path / "vex").mkdir()
    (tmp_path / "vex" / "app.json").write_text(json.dumps(VEX))
    (tmp_path / "rules.yaml").write_text(
        "environments:\n  prod: {}\nallowlists: [vex/app.json]\nexceptions:\n"
        "  - {id: CVE-9, expires: 2027-01-01, reason: r}\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / ".trivyignore").write_text("CVE-2024-0007\n")
    (work / "vulnerability-allowlist.yml").write_text("generalallowlist:\n  CVE-2024-0008:\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert discover_allowlists(work) == (work / ".trivyignore",
                                         work / "vulnerability-allowlist.yml")
    s = load_exceptions(load_rules(tmp_path / "rules.yaml"), discover=work)
    ids = [e.vulnerability for e in s.entries]
    assert ids == ["CVE-9", "CVE-2024-0001", "CVE-2024-0002", "CVE-2024-0007", "CVE-2024-0008"]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_unknown_allowlist_format(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("CVE-1\n")
    with pytest.raises(ConfigError, match="unknown allowlist format"):
        load_allowlist(tmp_path / "list.txt")
    with pytest.raises(ConfigError, match="not found"):
        load_allowlist(tmp_path / "missing.json")


def test_kev_catalog(tmp_path: Path) -> None:
    doc = {"title": "CISA Catalog of Known Exploited Vulnerabilities",
           "catalogVersion": "2026.11.20", "count": 2,
           "vulnerabilities": [{"cveID": "CVE-2021-44228", "vendorProject": "Apache"},
                               {"cveID": "cve-2023-4863"}]}
    p = tmp_path / "kev.json"
    p.write_text(json.dumps(doc))
    kev = load_kev(p)
    assert "CVE-2021-44228" in kev and "CVE-2023-4863" in kev and "CVE-1" not in kev
    assert kev.sources == (f"{p} (catalog 2026.11.20)",)
    with pytest.raises(ConfigError, match="no 'vulnerabilities' list"):
        parse_kev(b"[]", "k.json")
    with pytest.raises(ConfigError, match=r"vulnerabilities\[0\]\.cveID"):
        parse_kev(b'{"vulnerabilities": [{}]}', "k.json")
    with pytest.raises(ConfigError, match="cannot read KEV"):
        load_kev(tmp_path / "none.json")



@st.composite
def _case(draw: st.DrawFn) -> tuple[list[Finding], ExceptionSet]:
    ids = [f"CVE-2024-{i:04d}" for i in range(6)]
    fs = [finding(draw(st.sampled_from(ids)), package=draw(st.sampled_from(["a", "b"])),
                  version=str(n)) for n in range(draw(st.integers(0, 8)))]
    entries = tuple(
        AllowEntry(ids=(draw(st.sampled_from(ids)),), reason="r", source=f"x:{n}",
                   kind="imggate", package=draw(st.sampled_from([None, "a", "b", "*"])),
                   expires=draw(st.sampled_from([None, date(2026, 1, 1), date(2027, 1, 1)])))
        for n in range(draw(st.integers(0, 5))))
    return fs, ExceptionSet(entries)


@given(_case())
@settings(max_examples=200, deadline=None)
def test_apply_partitions_findings_and_accounts_for_every_entry(
        case: tuple[list[Finding], ExceptionSet]) -> None:
    fs, s = case
    applied = s.apply(fs, ref=ref(), digests=(DIGEST,), env="prod", today=TODAY)
    # Every finding is either active or suppressed, never both, never lost.
    assert sorted(map(id, [*applied.active, *(f for f, _ in applied.suppressed)])) \
        == sorted(map(id, fs))
    assert len(applied.uses) == len(s)
    for e, use in zip(s.entries, applied.uses, strict=True):
        matching = [f for f in fs if e.matches(f)]
        if e.expired(TODAY):
            assert use.status == "expired"
        else:
            assert use.status == ("used" if matching else "stale")
            assert not any(f is g for f in matching for g in applied.active)


def test_summarize_over_images() -> None:
    from imggate.models import ExceptionUse
    from imggate.policy.exceptions import summarize

    a = ExceptionUse("CVE-1", "stale", "r", "x:1")
    b = ExceptionUse("CVE-1", "used", "r", "x:1", matched=("CVE-1 in a 1",))
    c = ExceptionUse("CVE-2", "stale", "r", "x:2")
    assert summarize([a, b, c]) == (b, c)


def test_deeply_nested_json_is_a_config_error() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_openvex(deep, "x.json")
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_kev(deep, "k.json")


@pytest.mark.parametrize(("change", "said"), [
    ({"statements": []}, "x.json: statements: needs at least 1 entry"),
    ({"timestamp": "yesterday"}, "x.json: timestamp: must be an RFC 3339 timestamp "
                                 "(e.g. 2026-01-31T12:00:00Z), not 'yesterday'"),
    ({"statements": [{"status": "fixed"}]}, "x.json: statements.0.vulnerability: is required"),
    ({"statements": [{"vulnerability": {"name": ""}, "status": "fixed"}]},
     "x.json: statements.0.vulnerability.name: must not be empty"),
    ({"statements": ["CVE-1"]},
     "x.json: statements.0: must be a mapping of keys to values, not 'CVE-1'"),
    ({"statements": [{"vulnerability": {"name": "CVE-1"}, "status": "fixed",
                      "products": [{"identifiers": [1]}]}]},
     "x.json: statements.0.products.0.identifiers: must be a mapping of keys to values, "
     "not '[1]'"),
])
def test_malformed_openvex_is_named_in_imggates_words(change: dict[str, object],
                                                      said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_openvex(json.dumps({**VEX, **change}).encode(), "x.json")
    assert caught.value.message == said
    for pydantics in ("Input should", "Field required", "validation error", "Value error",
                      "pydantic"):
        assert pydantics not in caught.value.message


def test_openvex_that_is_not_json_says_where() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_openvex(b'{"@context": "https://openvex.dev/ns",\n "statements": }', "x.json")
    assert caught.value.message == "x.json: not valid JSON (line 2, column 16)"
