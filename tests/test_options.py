"""imggate's own coercion of command-line values (``imggate._options``) against typer's.

Every parameter of every command is run through both on the same inputs: what typer
accepts, imggate accepts as the same value; what typer refuses, imggate refuses with a
usage error (exit 2) in its own words.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

import pytest
import typer
from typer import _click
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param
from typer.core import _TyperParameter

from imggate import _app, _cli, _help, _options
from registry_harness import run_imggate


def _every_parameter() -> list[tuple[str, _TyperParameter, _click.Context]]:
    _cli.register(None)
    root = _help.tidy(typer.main.get_command(_app.app))
    found: list[tuple[str, _TyperParameter, _click.Context]] = []

    def walk(command: _click.Command, parent: _click.Context | None, path: str) -> None:
        ctx = _click.Context(command, parent=parent, **command.context_settings)
        helper = command.get_help_option(ctx)
        for param in [*command.params, *([helper] if helper else [])]:
            assert isinstance(param, _TyperParameter)
            found.append((f"{path} {param.name}", param, ctx))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, ctx, f"{path} {name}")

    walk(root, None, "imggate")
    return found


PARAMETERS = _every_parameter()

#: Inputs each kind of parameter is given, valid and not.
_SAMPLES: dict[Any, list[Any]] = {
    str: ["abc", "", " spaced ", "10", "é"],
    bool: [True, False, "true", "False", "1", "0", "yes", "no", "on", "off", "maybe", ""],
    int: [0, 1, 5, "5", " 7 ", "-3", "128", "129", "5000", "5001", "1.5", "x", ""],
    float: [30.0, 1, "2.5", " 3 ", "1e3", "-1", "x", "", "inf", "nan"],
}


def _outcome(coercion: Any, value: Any, param: _TyperParameter, ctx: _click.Context) -> Any:
    try:
        return ("ok", coercion.coerce(value, param=param, ctx=ctx))
    except BadParameter:
        return ("refused", None)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # nan
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(("where", "param", "ctx"), PARAMETERS, ids=[p[0] for p in PARAMETERS])
def test_each_parameter_means_what_typer_makes_of_it(where: str, param: _TyperParameter,
                                                     ctx: _click.Context) -> None:
    ours = _options.plain_coercion(param)
    descriptor = param.type_descriptor
    annotation: Any = descriptor.annotation
    many = get_origin(annotation) is list
    leaf = get_args(annotation)[0] if many else annotation
    if ours is None:
        # Left to typer: only what imggate does not coerce itself.
        assert leaf not in _SAMPLES or descriptor.is_path or descriptor.is_choice, where
        return
    theirs = build_runtime_param(descriptor)
    samples = _SAMPLES[leaf]
    values: list[Any] = [(s,) if many else s for s in samples] if many else list(samples)
    if many:
        values += [tuple(str(s) for s in samples[:3]), ()]
    values.append(None)
    for value in values:
        a = _outcome(ours, value, param, ctx)
        b = _outcome(theirs, value, param, ctx)
        assert a[0] == b[0], (where, value, a, b)
        if a[0] == "ok":
            if many:
                assert list(a[1]) == list(b[1]), (where, value, a, b)
            else:
                assert _same(a[1], b[1]), (where, value, a, b)


def test_the_types_imggate_takes_are_all_coerced_by_imggate() -> None:
    left = [where for where, param, _ in PARAMETERS if _options.plain_coercion(param) is None]
    # The enum of convert --to and the rules files' paths stay typer's.
    assert sorted(left) == ["imggate convert to", "imggate rules explain rules_path",
                            "imggate rules validate path", "imggate rules validate rules_path"]


def test_install_replaces_what_typer_would_build() -> None:
    _cli.register(None)
    root = _options.install(_help.tidy(typer.main.get_command(_app.app)))
    resolve = root.commands["resolve"]  # type: ignore[attr-defined]
    timeout = next(p for p in resolve.params if p.name == "timeout")
    # The attribute typer caches its coercion in still exists: were it renamed, typer would
    # coerce (correctly, slowly) and this says so.
    assert isinstance(timeout._runtime_param, _options._Plain)


@pytest.mark.parametrize(("args", "said"), [
    (["resolve", "oci:x", "--timeout", "soon"], "Invalid value for '--timeout': 'soon' is not a number"),
    (["audit", "r", "--concurrency", "0"], "Invalid value for '--concurrency': 0 is less than 1"),
    (["audit", "r", "--concurrency", "129"], "Invalid value for '--concurrency': 129 is more than 128"),
    (["verify", "oci:x", "--threshold", "two"], "'two' is not a whole number"),
    (["resolve", "oci:x", "--timeout", "\x1b[31mred"], r"'\x1b[31mred' is not a number"),
])
def test_a_bad_value_is_a_usage_error_in_imggates_words(args: list[str], said: str) -> None:
    result = run_imggate(args)
    assert result.code == 2
    assert said in result.stderr, result.stderr
    assert "\x1b" not in result.stderr
