"""Reading untrusted JSON scanner reports.

Every report is hostile until proven otherwise: :func:`load_json` bounds the
size, rejects non-UTF-8, NaN/Infinity and absurd nesting; the typed
accessors below raise :class:`Invalid` carrying the JSON path of the bad
value. Adapters raise :class:`Invalid` deep inside and add the outer path on
the way up (:meth:`Invalid.at`), so the success path builds no path strings;
:func:`report_error` turns it into the user-facing
:class:`~imggate.errors.ReportError` naming the file and the place.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn

from imggate.errors import ReportError

#: Reports larger than this are refused rather than read into memory.
MAX_REPORT_BYTES = 1 << 30
#: Reports at least this large are decoded by msgspec first (see :func:`load_json`).
_FAST_DECODE_MIN = 1 << 20
#: Identifiers, package names and versions longer than this are not real.
MAX_ID_LEN = 1024
#: Free text (descriptions) is cut to this many characters.
MAX_TEXT_LEN = 1 << 20

PathPart = str | int


class Invalid(Exception):
    """A value in a report is missing or of the wrong shape; ``path`` says where."""

    def __init__(self, message: str, path: tuple[PathPart, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def at(self, *prefix: PathPart) -> Invalid:
        """Prepend ``prefix`` to the path (used while the error travels outward)."""
        self.path = prefix + self.path
        return self


def render_path(path: tuple[PathPart, ...]) -> str:
    """``$.Results[0].Vulnerabilities[3].Severity``."""
    out = ["$"]
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part.isidentifier():
            out.append(f".{part}")
        else:
            out.append(f"[{json.dumps(part[:80])}]")
    return "".join(out)


def report_error(source: str, err: Invalid, kind: str) -> ReportError:
    """The :class:`ReportError` for ``err`` found in a ``kind`` report read from ``source``."""
    return ReportError(
        f"{source}: invalid {kind} report at {render_path(err.path)}: {err.message}",
        hint="the file may be truncated, hand-edited or not the report you meant",
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large acyclic structures.

    Decoding a 100 MB report allocates millions of containers; each gen-2
    collection walks all of them, which makes parsing superlinear. Nothing
    here creates cycles, so pausing is safe; it resumes on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def load_json(data: bytes | memoryview, source: str) -> Any:
    """Decode ``data`` as one JSON document, or raise :class:`ReportError` naming ``source``."""
    if len(data) > MAX_REPORT_BYTES:
        raise ReportError(f"{source}: report is larger than {MAX_REPORT_BYTES} bytes; refusing it")
    if len(data) >= _FAST_DECODE_MIN:
        # msgspec decodes a large report in ~80% of the stdlib's time. What it accepts,
        # the stdlib accepts and decodes to the same values (integers past 64 bits
        # included, unlike orjson); what it refuses (a BOM, NaN, a lone surrogate,
        # deep nesting) takes the stdlib's path below, which alone accepts or words the
        # refusal as before. Below the threshold its import would cost more than it saves.
        import msgspec

        try:
            return msgspec.json.decode(data)
        except (msgspec.DecodeError, RecursionError):
            pass
    try:
        text = str(data, "utf-8-sig")
    except UnicodeDecodeError as e:
        raise ReportError(f"{source}: not UTF-8 text (bad byte at offset {e.start})") from e
    if not text.strip():
        raise ReportError(f"{source}: report is empty", hint="did the scanner fail?")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        tail = " (the file ends early: truncated?)" if e.pos >= len(text.rstrip()) else ""
        raise ReportError(
            f"{source}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}{tail}"
        ) from e
    except ValueError as e:
        raise ReportError(f"{source}: not valid JSON: {e}") from e
    except RecursionError as e:
        raise ReportError(f"{source}: JSON is nested too deeply to be a scanner report") from e


def type_name(value: object) -> str:
    """JSON's name for the type of ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def obj(value: object) -> dict[str, Any]:
    """``value`` as an object, else :class:`Invalid` (path filled in by the caller)."""
    if type(value) is not dict:
        raise Invalid(f"expected an object, got {type_name(value)}")
    return value


def opt_obj(d: dict[str, Any], key: str) -> dict[str, Any] | None:
    """``d[key]`` as an object; missing or null is ``None``."""
    v = d.get(key)
    if v is None:
        return None
    if type(v) is not dict:
        raise Invalid(f"expected an object, got {type_name(v)}", (key,))
    return v


def opt_list(d: dict[str, Any], key: str) -> list[Any]:
    """``d[key]`` as an array; missing or null is empty."""
    v = d.get(key)
    if v is None:
        return []
    if type(v) is not list:
        raise Invalid(f"expected an array, got {type_name(v)}", (key,))
    return v


def req_list(d: dict[str, Any], key: str) -> list[Any]:
    """``d[key]`` as an array; missing or null is an error, never "nothing found"."""
    v = d.get(key)
    if type(v) is not list:
        if v is None and key not in d:
            raise Invalid("required array is missing", (key,))
        raise Invalid(f"expected an array, got {type_name(v)}", (key,))
    return v


def req_str(d: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    """``d[key]`` as a short identifier-like string (id, package, version)."""
    v = d.get(key)
    if type(v) is not str:
        if v is None and key not in d:
            raise Invalid("required string is missing", (key,))
        raise Invalid(f"expected a string, got {type_name(v)}", (key,))
    if len(v) > MAX_ID_LEN:
        raise Invalid(f"string of {len(v)} characters is too long (limit {MAX_ID_LEN})", (key,))
    if not allow_empty and not v.strip():
        raise Invalid("must not be empty", (key,))
    return v


def opt_str(d: dict[str, Any], key: str, *, limit: int = MAX_ID_LEN) -> str | None:
    """``d[key]`` as a string; missing, null or empty is ``None``.

    Strings longer than ``limit`` are an error for identifiers (the default
    limit) and cut to size for free text (pass ``limit=MAX_TEXT_LEN``).
    """
    v = d.get(key)
    if v is None:
        return None
    if type(v) is not str:
        raise Invalid(f"expected a string, got {type_name(v)}", (key,))
    if len(v) > limit:
        if limit < MAX_TEXT_LEN:
            raise Invalid(f"string of {len(v)} characters is too long (limit {limit})", (key,))
        v = v[:limit]
    return v or None


def str_items(values: list[Any], key: str, *, limit: int = 8192) -> list[str]:
    """Every item of ``values`` (the array at ``key``) as a string."""
    # C-speed check first: reports carry millions of reference URLs.
    if not values or (set(map(type, values)) == {str} and max(map(len, values)) <= limit):
        return values
    for i, v in enumerate(values):
        if type(v) is not str:
            raise Invalid(f"expected a string, got {type_name(v)}", (key, i))
        if len(v) > limit:
            raise Invalid(f"string of {len(v)} characters is too long (limit {limit})", (key, i))
    return values


def opt_num(d: dict[str, Any], key: str, *, low: float = 0.0, high: float = 10.0) -> float | None:
    """``d[key]`` as a finite number within [low, high]; missing or null is ``None``."""
    v = d.get(key)
    if v is None:
        return None
    if type(v) not in (int, float):
        raise Invalid(f"expected a number, got {type_name(v)}", (key,))
    try:
        f = float(v)
    except OverflowError:  # an integer beyond any float: outside every range (never printed)
        raise Invalid(f"number of {v.bit_length()} bits is outside {low}..{high}",
                      (key,)) from None
    if not math.isfinite(f) or not low <= f <= high:
        raise Invalid(f"number {f!r} is outside {low}..{high}", (key,))
    return f


def opt_time(d: dict[str, Any], key: str) -> datetime | None:
    """``d[key]`` as an ISO 8601 time (UTC when it names no zone); empty is ``None``."""
    text = opt_str(d, key, limit=100)
    if text is None or text.startswith("0001-01-01"):
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError as e:
        raise Invalid(f"not an ISO 8601 time: {text[:40]!r}", (key,)) from e
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def unique(items: list[str]) -> tuple[str, ...]:
    """``items`` without repeats, first occurrence kept."""
    # Most lists here (a finding's aliases and links) hold none or one.
    return tuple(items) if len(items) < 2 else tuple(dict.fromkeys(items))
