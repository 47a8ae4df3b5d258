"""The webhook's rules hash (its verdict cache key) covers the trust roots and VEX keys the
rules name: a verdict cached under one set of roots is never served under another."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fixture_paths import FIXTURES
from imggate.admission.policies import load_policy_set

ROOTS = FIXTURES / "sigstore-roots"


def _rules(tmp: Path) -> Path:
    doc = {"version": 1,
           "environments": {"prod": {"signatures": {"trusted_roots": ["root.json"]}}},
           "exceptions": {"vex_attestations": {"keys": ["vex.pub"]}}}
    path = tmp / "rules.yaml"
    path.write_text(json.dumps(doc))
    return path


def test_rules_hash_covers_trusted_roots_and_vex_keys(tmp_path: Path) -> None:
    shutil.copy(ROOTS / "production-trusted-root.json", tmp_path / "root.json")
    shutil.copy(FIXTURES / "cosign" / "key-cimage-single-sample" / "keys" / "cosign.pub",
                tmp_path / "vex.pub")
    rules = _rules(tmp_path)
    first = load_policy_set(rules).hash
    assert load_policy_set(rules).hash == first
    shutil.copy(ROOTS / "staging-trusted-root.json", tmp_path / "root.json")
    second = load_policy_set(rules).hash
    assert second != first
    shutil.copy(FIXTURES / "cosign" / "key-cimage-single-sample" / "keys" / "cosign2.pub",
                tmp_path / "vex.pub")
    assert load_policy_set(rules).hash != second
