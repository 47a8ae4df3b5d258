"""The command modules keep their annotations evaluated (see ``imggate.commands``)."""

from __future__ import annotations

from pathlib import Path

import imggate.commands

COMMANDS = Path(imggate.commands.__file__).parent


def test_no_command_module_defers_its_annotations() -> None:
    # Deferred (string) annotations are eval'd by typer for every command on every start.
    deferring = [p.name for p in sorted(COMMANDS.glob("*.py"))
                 if "from __future__ import annotations" in p.read_text().splitlines()]
    assert deferring == []


def test_the_command_list_builds_without_evaluating_strings() -> None:
    import typing

    import typer

    from imggate import _app, _cli

    _cli.register(None)
    strings = []
    for command in _app.app.registered_commands:
        callback = command.callback
        assert callback is not None
        strings += [name for name, hint in callback.__annotations__.items()
                    if isinstance(hint, str)]
        typing.get_type_hints(callback, include_extras=True)  # resolvable as they are
    assert strings == []
    assert typer.main.get_command(_app.app).name is not None
