"""A frozen value copied with some fields changed, whichever kind of value it is.

The values that cross imggate's stages are frozen dataclasses or frozen msgspec
Structs. The ones a command imports are Structs (:mod:`imggate.models`, and those of
the policy, signature, gate and output modules a check imports): a frozen dataclass
writes and compiles its methods' source when its module is imported, ~4M
instructions a class, where a Struct is made in C, ~0.1M. Importing
``imggate.models`` went from 97M instructions above its own imports to 6M; the ~30
types of a check's other modules were ~120M.
``dataclasses.replace`` refuses a Struct (at run time only: type checkers take
Structs for dataclasses), and ``msgspec.structs.replace`` a dataclass, so the
code that copies values calls :func:`replace`, which takes either.

What one stage made of some values is used by a later one only for those very values
(:func:`same_objects`): they are frozen, so the same objects are the same values.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


def replace(value: T, /, **changes: Any) -> T:
    """``value`` with ``changes`` (a frozen dataclass or a frozen msgspec Struct)."""
    if isinstance(value, msgspec.Struct):
        return msgspec.structs.replace(value, **changes)
    return dataclasses.replace(value, **changes)  # type: ignore[type-var]


def same_objects(a: Sequence[object], b: Sequence[object]) -> bool:
    """Whether ``a`` and ``b`` hold the same objects in the same order (what was made of
    findings ahead is taken for the same findings only then)."""
    return a is b or (len(a) == len(b) and all(map(operator.is_, a, b)))
