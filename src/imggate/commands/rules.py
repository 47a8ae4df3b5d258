"""``imggate rules validate [PATH]`` and ``imggate rules explain --env E``."""


import sys
from pathlib import Path
from typing import Annotated

import typer

from imggate._app import rules_app
from imggate.errors import UsageError


def _rule_files(path: Path) -> list[Path]:
    try:
        path.lstat()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file or directory") from None
    except OSError as e:  # a name no file can have (ENAMETOOLONG), a loop of links
        raise UsageError(f"{path}: {e.strerror or 'unusable path'}") from None
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        if not found:
            raise UsageError(f"{path}: no *.yaml rules files in this directory")
        return found
    return [path]


@rules_app.command("validate")
def validate(
    path: Annotated[Path | None, typer.Argument(
        help="A rules file, or a directory whose *.yaml files are all checked "
             "(default: ./rules/, else the built-in rules).")] = None,
    rules_path: Annotated[Path | None, typer.Option(
        "--rules", help="Same as PATH.")] = None,
    check_files: Annotated[bool, typer.Option(
        "--check-files/--no-check-files",
        help="Open and parse the keys, certificate chains, KEV catalogs and allowlists a "
             "file names (--no-check-files: where they are mounted elsewhere, e.g. in a "
             "pod).")] = True,
) -> int:
    """Check rules files: every problem of each at once, with file:line, key and "did you
    mean"; exit 2 if any file has one.

    Names that point at environments (default_env, fallback_env, extends, namespaces.map,
    aliases) are checked, and the files the rules name are opened and parsed. Exceptions
    already expired, or expiring beyond an environment's exception_policy.max_days, are
    warned about (exit 0).
    """
    from datetime import date

    from imggate.policy.loader import load_exceptions, load_rules
    from imggate.policy.review import exception_warnings, undecided_warnings
    from imggate.policy.validation import validate_rules_file

    given = path or rules_path
    if given is None and Path("rules").is_dir():
        given = Path("rules")
        sys.stdout.write("rules: ./rules/ (found in the working directory)\n")
    if given is None:
        load_rules(None)
        sys.stdout.write("ok <built-in defaults> (no --rules and no ./rules/)\n")
        return 0
    bad = 0
    for f in _rule_files(given):
        found = validate_rules_file(f, check_files=check_files)
        if not found.ok:
            bad += 1
            for problem in found.problems:
                sys.stderr.write(f"imggate: error: {problem.render()}\n")
            count = len(found.problems)
            sys.stderr.write(f"imggate: {f}: {count} problem{'s' if count > 1 else ''}\n")
            continue
        rules = load_rules(f)
        exceptions = load_exceptions(rules) if check_files else rules.exceptions
        envs = ", ".join(f"{n}*" if n == rules.default_env else n for n in rules.names)
        extra = f", {len(rules.exceptions)} exception(s)" if len(rules.exceptions) else ""
        sys.stdout.write(f"ok {f} (environments: {envs}{extra})\n")
        for warning in (*exception_warnings(rules, exceptions, date.today()),
                        *undecided_warnings(rules)):
            sys.stderr.write(f"imggate: warning: {warning}\n")
    return 2 if bad else 0


@rules_app.command("explain")
def explain(
    env: Annotated[str | None, typer.Option(
        "--env", help="Environment (default: CI_ENVIRONMENT_TIER, CI_ENVIRONMENT_NAME, "
                      "then the file's default).")] = None,
    rules_path: Annotated[Path | None, typer.Option(
        "--rules", help="Rules file, or a directory holding default.yaml "
                        "(default: ./rules/default.yaml, else the built-in rules).")] = None,
    image: Annotated[str | None, typer.Option(
        "--image", help="Show the rules for this image reference (after images: overrides).")
    ] = None,
) -> int:
    """Print the effective rules of an environment after inheritance, and the exceptions
    in effect there today, as YAML."""
    from datetime import date

    from imggate._pyyaml import yaml
    from imggate.policy.effective import describe
    from imggate.policy.loader import load_exceptions, load_rules, locate_rules, select_env
    from imggate.policy.namespaces import explain_namespaces
    from imggate.policy.review import exceptions_in_effect

    where = locate_rules(rules_path)
    rules = load_rules(where.path, found_by=where.found_by)
    choice = select_env(rules, env)
    effective = rules.effective(choice.name)
    data = effective.explain()
    data["rules_found_by"] = rules.found_by
    data["rules_sha256"] = rules.sha256
    data["selected_by"] = choice.source
    data["namespaces"] = explain_namespaces(rules, choice.name)
    ref = None
    if image is not None:
        from imggate.registry.reference import parse_reference

        ref = parse_reference(image)
        chosen = effective.for_image(ref)
        data = {**data, "image": str(ref), "image_match": chosen.pattern,
                "image_rules": describe(chosen.rules)}
    # The exceptions that apply today in this environment (to --image, when given).
    data["exceptions"] = exceptions_in_effect(load_exceptions(rules), choice.name,
                                              date.today(), ref)
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return 0
