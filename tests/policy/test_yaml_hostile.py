"""Hostile YAML in rules and allowlists: exit 2 at file:line, bounded time and memory.

Each case failed before: control characters were a ``ReaderError`` (exit 3),
impossible dates a ``ValueError`` (exit 3), a billion-laughs condition made
``rules explain`` run for minutes, and a rules file linked to ``/dev/zero``
was read until memory ran out.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from imggate._cli import main
from imggate.errors import ConfigError
from imggate.policy._yaml import MAX_ALIAS_NODES, parse_yaml
from imggate.policy.allowlists import load_allowlist
from imggate.policy.loader import load_rules

BOMB = """\
version: 1
default_env: dev
environments:
  dev:
    attestations:
      required:
        - predicate_type: slsaprovenance
          conditions:
            - path: a
              equals:
                a: &a ["x","x","x","x","x","x","x","x","x","x"]
                b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
                c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
                d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
                e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
                f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
                g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    _, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 0), err


@pytest.mark.parametrize("command", [["validate"], ["explain", "--env", "dev", "--rules"]])
def test_alias_bomb_in_a_condition_is_refused_fast(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    rules = tmp_path / "bomb.yaml"
    rules.write_text(BOMB)
    start = time.monotonic()
    code, err = cli(["rules", *command, str(rules)], capsys)
    assert code == 2
    assert "alias bomb" in err and str(rules) in err
    assert time.monotonic() - start < 5


def test_aliases_within_the_bound_are_fine() -> None:
    doc = parse_yaml("base: &b {fail_on: High}\nprod: *b\nstaging: *b\n", "r.yaml")
    assert doc.data["prod"] == {"fail_on": "High"}
    many = "a: &a [" + ",".join(["1"] * 1000) + "]\nb: [" + ",".join(["*a"] * 90) + "]\n"
    assert len(parse_yaml(many, "r.yaml").data["b"]) == 90  # 90,000 extra nodes: allowed
    over = "a: &a [" + ",".join(["1"] * 1000) + "]\nb: [" + ",".join(["*a"] * 101) + "]\n"
    with pytest.raises(ConfigError, match=f"more than {MAX_ALIAS_NODES:,} extra"):
        parse_yaml(over, "r.yaml")


def test_alias_inside_its_own_anchor_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"r\.yaml:1: .*refers to the node that contains it"):
        parse_yaml("a: &a [1, *a]\n", "r.yaml")


@pytest.mark.parametrize("char", ["\x01", "\x1b", "\x7f", "\ufffe"])
def test_control_character_in_rules_is_exit_2_with_file_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], char: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"version: 1\ndefault_env: dev\nenvironments:\n  dev:\n"
                     f"    description: \"a{char}b\"\n")
    code, err = cli(["rules", "validate", str(rules)], capsys)
    assert code == 2
    assert f"{rules}:5: invalid YAML: character U+{ord(char):04X}" in err
    assert "internal error" not in err


def test_control_character_in_allowlist_is_a_config_error_with_line(tmp_path: Path) -> None:
    path = tmp_path / "exceptions.yaml"
    path.write_text("exceptions:\n  - id: CVE-2024-1\n    reason: \"x\x00\"\n")
    with pytest.raises(ConfigError, match=rf"{path}:3: invalid YAML: character U\+0000"):
        load_allowlist(path)


def test_impossible_expiry_date_is_a_config_error_with_line(tmp_path: Path) -> None:
    path = tmp_path / "exceptions.yaml"
    path.write_text("exceptions:\n  - id: CVE-2024-1\n    reason: x\n    expires: 2026-02-30\n")
    with pytest.raises(ConfigError, match=rf"{path}:4: .*'2026-02-30' is not a valid date"):
        load_allowlist(path)


def test_impossible_expired_at_in_trivyignore_yaml(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / ".trivyignore.yaml"
    path.write_text("vulnerabilities:\n  - id: CVE-2024-1\n    expired_at: 2025-13-01\n")
    with pytest.raises(ConfigError, match=rf"{path}:3: .*'2025-13-01' is not a valid date"):
        load_allowlist(path)


def test_impossible_date_in_rules_exceptions_exit_2(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\ndefault_env: dev\nenvironments:\n  dev: {}\nexceptions:\n"
                     "  - id: CVE-2024-1\n    reason: x\n    expires: 2026-02-30\n")
    code, err = cli(["rules", "validate", str(rules)], capsys)
    assert code == 2 and f"{rules}:8:" in err


def test_integer_too_long_to_construct_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"r\.yaml:2: .*not a valid int"):
        parse_yaml("a: 1\nb: " + "9" * 5000 + "\n", "r.yaml")


def test_rules_file_linked_to_dev_zero_is_refused(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    link = tmp_path / "rules.yaml"
    link.symlink_to("/dev/zero")
    code, err = cli(["rules", "validate", str(link)], capsys)
    assert code == 2
    assert "a device: only regular files are read" in err


def test_trivyignore_linked_to_dev_zero_is_refused(tmp_path: Path) -> None:
    link = tmp_path / ".trivyignore"
    link.symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match="a device"):
        load_allowlist(link)


def test_rules_from_a_pipe_are_read(tmp_path: Path) -> None:
    """``--rules <(generate)``: a pipe the user names is read, the writer waited for."""
    fifo = tmp_path / "rules.yaml"
    os.mkfifo(fifo)

    def writer() -> None:
        time.sleep(0.2)  # the reader opens first and must wait, not see an empty file
        with open(fifo, "w") as fh:
            fh.write("version: 1\ndefault_env: dev\nenvironments:\n  dev: {}\n")

    t = threading.Thread(target=writer)
    t.start()
    rules = load_rules(fifo)
    t.join()
    assert rules.default_env == "dev"


@pytest.mark.parametrize("command", [["rules", "validate"], ["rules", "explain", "--rules"]])
def test_rules_path_with_a_name_over_255_characters(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    code, err = cli([*command, str(tmp_path / ("r" * 300))], capsys)
    assert code == 2
    assert "File name too long" in err and "internal error" not in err


@pytest.mark.parametrize("opener", ["[", "{a: ", "- "])
def test_rules_nested_past_the_bound_are_exit_2_at_the_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], opener: str) -> None:
    # 100,000 levels: libyaml's composer would recurse that deep in C; PyYAML 6.0.4's
    # scanner refuses at 1,000 in its own words. The refusal is imggate's either way.
    rules = tmp_path / "deep.yaml"
    rules.write_text("version: 1\ndefault_env: dev\nextra:\n  " + opener * 100_000 + "x\n")
    code, err = cli(["rules", "validate", str(rules)], capsys)
    assert code == 2
    assert f"deep.yaml:4: invalid YAML: nested more than {256} deep" in err
