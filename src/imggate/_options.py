"""Command-line values turned into ``str``, ``bool``, ``int``, ``float`` and ``list[str]``
by imggate, not by a pydantic ``TypeAdapter`` per parameter.

typer 0.29 coerces every parameter of the command being run, given or not, through a
pydantic ``TypeAdapter`` that it builds on first use; its module imports pydantic whole.
For ``resolve`` that was ~40% of a one-image run (0.147 s of 0.379 s under cProfile;
instruction counts in bench/RESULTS.md), and every command paid it, although the
values imggate takes are strings, numbers and flags that need no schema.

This is a trick, kept because of that measured win: typer has no public hook for a
parameter's coercion, so :func:`install` sets each parameter's cached coercion
(``_TyperParameter._runtime_param``, which typer fills lazily on first use) to an
:class:`_Plain` of imggate's before the command runs. Parameters of any other type (an
enum, a ``Path``) and a typer that no longer has that attribute are left to typer's own
coercion: then only speed changes, never what a value means.
``tests/test_options.py`` holds the two in step: it runs every parameter of every
command through both, and asserts that the attribute still exists in the typer installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, get_args, get_origin

from typer import _click
from typer._click.exceptions import BadParameter
from typer.core import _TyperParameter

from imggate.text import printable

#: The spellings typer (through pydantic) takes for true and false, lower-cased.
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"", "0", "off", "f", "false", "n", "no"})


def _to_str(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{printable(repr(value))} is not true or false")


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip(), 10)
    except ValueError:
        raise ValueError(f"{printable(repr(value))} is not a whole number") from None


def _to_float(value: Any) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        raise ValueError(f"{printable(repr(value))} is not a number") from None


#: imggate's coercion for each type it takes, by the annotation typer reports.
_LEAVES: dict[Any, Callable[[Any], Any]] = {
    str: _to_str, bool: _to_bool, int: _to_int, float: _to_float,
}


class _Plain:
    """One parameter's coercion, in the shape typer calls (``coerce(value, param, ctx)``).

    Missing values become ``None`` (or ``()`` for a repeatable parameter), as typer's do.
    """

    def __init__(self, leaf: Callable[[Any], Any], many: bool,
                 low: float | None, high: float | None) -> None:
        self.leaf = leaf
        self.many = many
        self.low = low
        self.high = high

    def coerce(self, value: Any, param: _TyperParameter, ctx: _click.Context) -> Any:
        """``value`` as the parameter's type; a usage error (exit 2) naming it when it is not."""
        if value is None:
            return () if param.multiple or param.nargs == -1 else None
        try:
            if self.many:
                items = value if isinstance(value, (list, tuple)) else [value]
                return [self._one(item) for item in items]
            return self._one(value)
        except ValueError as e:
            raise BadParameter(str(e), ctx=ctx, param=param) from None

    def _one(self, value: Any) -> Any:
        out = self.leaf(value)
        if self.low is not None and out < self.low:
            raise ValueError(f"{out} is less than {self.low}")
        if self.high is not None and out > self.high:
            raise ValueError(f"{out} is more than {self.high}")
        return out


def plain_coercion(param: _click.Parameter) -> _Plain | None:
    """imggate's coercion for ``param``, or ``None`` when typer's must stay (a type
    imggate does not coerce, a custom parser, a typer without type descriptors)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None:
        return None
    info = descriptor.parameter_info
    if getattr(info, "parser", None) is not None or getattr(info, "clamp", False):
        return None
    annotation = descriptor.annotation
    many = get_origin(annotation) is list
    if many:
        (annotation,) = get_args(annotation)
    leaf = _LEAVES.get(annotation)
    if leaf is None or descriptor.is_file or descriptor.is_path or descriptor.is_choice:
        return None
    low, high = getattr(info, "min", None), getattr(info, "max", None)
    if (low is not None or high is not None) and annotation not in (int, float):
        return None
    return _Plain(leaf, many, low, high)


def install(command: _click.Command, args: Sequence[str] | None = None,
            parent: _click.Context | None = None) -> _click.Command:
    """Give every parameter of ``command`` and its subcommands imggate's coercion where it
    has one (see the module's docstring for why, and for what is left to typer); with
    ``args``, only of the subcommands they name (the ones that can run).

    The help option is made here too (click makes it once per command, on first use,
    from the context's option names): a context chain like the one a run builds.
    """
    ctx = _click.Context(command, parent=parent, **command.context_settings)
    helper = command.get_help_option(ctx)
    for param in [*command.params, *([helper] if helper is not None else [])]:
        if isinstance(param, _TyperParameter) and hasattr(param, "_runtime_param"):
            plain = plain_coercion(param)
            if plain is not None:
                param._runtime_param = plain  # type: ignore[assignment]
    for name, sub in getattr(command, "commands", {}).items():
        if args is None or name in args:
            install(sub, args, ctx)
    return command
