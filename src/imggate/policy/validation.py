"""``imggate rules validate``: every problem of a rules file, in one pass.

Loading (:func:`~imggate.policy.loader.load_rules`) stops at the first problem, as a
command about to gate must. Validating goes on: the schema's problems; every name that
refers to another name (``default_env``, ``fallback_env``, ``extends``, ``namespaces.map``
targets, aliases) with "did you mean"; the rules' own consistency (inheritance cycles,
thresholds); and every file the rules name (keys, certificate chains, KEV catalogs,
allowlists and OpenVEX documents) opened and parsed by the reader a run would use. Each
problem is placed at the ``file:line`` of the key that holds it; a problem found twice
(by the names pass and again while loading) is said once.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from imggate.errors import ConfigError
from imggate.policy import _yaml

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem: ``file:line``, ``key: what is wrong``, and what to do (optional)."""

    location: str
    message: str
    hint: str | None = None

    def render(self) -> str:
        """``file:line: key: message`` and, on the next line, the hint."""
        text = f"{self.location}: {self.message}"
        return text + (f"\n  hint: {self.hint}" if self.hint else "")


@dataclass(frozen=True, slots=True)
class Validation:
    """What validating one rules file found: its environments when it loads, and problems."""

    source: str
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """Whether the file has no problem at all."""
        return not self.problems


def validate_rules_file(path: Path, *, check_files: bool = True) -> Validation:
    """Every problem of the rules file ``path`` (nothing raised for what the file holds);
    ``check_files``: also open and parse the files it names."""
    source = str(path)
    try:
        text = _yaml.read_text(path, _yaml.MAX_YAML_BYTES, what="rules file")
        ydoc = _yaml.parse_yaml(text, source)
    except ConfigError as e:
        return Validation(source, (_from_error(e, source),))
    if not isinstance(ydoc.data, dict):
        return Validation(source, (Problem(f"{source}:1", "a rules file must be a mapping "
                                                          "with an 'environments' key"),))
    found = _Found()
    for problem in _references(ydoc):
        found.add(problem)
    base_dir = path.resolve().parent
    document = _schema(ydoc, base_dir, found) or _sound_part(ydoc, base_dir)
    if document is not None:
        _consistency(ydoc, document, found)
    if check_files:
        _named_files(ydoc, base_dir, found)
    return Validation(source, tuple(sorted(found.problems, key=_line)))


class _Found:
    """Problems so far, each location said once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, problem: Problem) -> None:
        key = problem.message.split(":", 1)[0]
        if (problem.location, key) not in self._seen:
            self._seen.add((problem.location, key))
            self.problems.append(problem)


def _line(problem: Problem) -> int:
    tail = problem.location.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _from_error(e: ConfigError, source: str) -> Problem:
    """A loader's :class:`ConfigError` as a problem (its location, else the file's)."""
    location = e.location or source
    message = e.message.removeprefix(f"{location}: ")
    return Problem(location, message, e.hint)


# -- names that refer to other names ------------------------------------------------------

def _references(ydoc: _yaml.YamlDoc) -> Iterator[Problem]:
    """Problems of the names a rules file uses to point at its environments, read from the
    raw document so that they show even while the schema has problems of its own."""
    data: dict[str, Any] = ydoc.data
    envs = data.get("environments")
    if not isinstance(envs, dict) or not envs:
        return  # the schema says so
    names = [str(name) for name in envs]
    aliases = {str(name): _aliases(spec) for name, spec in envs.items()}

    def check(loc: Loc, value: object) -> Iterator[Problem]:
        if isinstance(value, str) and value not in names:
            yield _unknown(ydoc, loc, value, names, aliases)

    for key in ("default_env", "fallback_env"):
        yield from check((key,), data.get(key))
    for name, spec in envs.items():
        if isinstance(spec, dict):
            yield from check(("environments", name, "extends"), spec.get("extends"))
    yield from _cycles(ydoc, envs)
    spaces = data.get("namespaces")
    entries = spaces.get("map") if isinstance(spaces, dict) else None
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        if isinstance(entry, dict):
            yield from check(("namespaces", "map", i, "env"), entry.get("env"))
    yield from _alias_conflicts(ydoc, names, aliases)


def _aliases(spec: object) -> list[str]:
    found = spec.get("aliases") if isinstance(spec, dict) else None
    return [a for a in found if isinstance(a, str)] if isinstance(found, list) else []


def _unknown(ydoc: _yaml.YamlDoc, loc: Loc, value: str, names: list[str],
             aliases: dict[str, list[str]]) -> Problem:
    key = ".".join(str(p) for p in loc)
    known = f"known environments: {', '.join(names)}"
    for name, globs in aliases.items():
        for alias in globs:
            if fnmatchcase(value.lower(), alias.lower()):
                return Problem(ydoc.where(loc), f"{key}: names {value!r}, an alias of "
                               f"{name!r}: write the environment's name, {name!r}", known)
    close = difflib.get_close_matches(value, names, n=1, cutoff=0.5)
    guess = f": did you mean {close[0]!r}?" if close else ""
    return Problem(ydoc.where(loc), f"{key}: names unknown environment {value!r}{guess}", known)


def _cycles(ydoc: _yaml.YamlDoc, envs: dict[Any, Any]) -> Iterator[Problem]:
    parents = {str(name): spec.get("extends") for name, spec in envs.items()
               if isinstance(spec, dict) and isinstance(spec.get("extends"), str)}
    reported: set[str] = set()
    for start in parents:
        chain = [start]
        while (parent := parents.get(chain[-1])) is not None and parent not in chain:
            chain.append(parent)
        if parent is not None and parent in chain and parent not in reported:
            cycle = chain[chain.index(parent):]
            reported.update(cycle)
            loc = ("environments", cycle[-1], "extends")
            yield Problem(ydoc.where(loc), f"{'.'.join(loc)}: inheritance cycle: "
                          + " -> ".join([*cycle, parent]))


def _alias_conflicts(ydoc: _yaml.YamlDoc, names: list[str],
                     aliases: dict[str, list[str]]) -> Iterator[Problem]:
    """An alias no value can reach: another environment's name (names win), or one an
    earlier environment already answers to (the first in file order wins)."""
    earlier: dict[str, str] = {}
    for env, globs in aliases.items():
        for i, alias in enumerate(globs):
            loc = ("environments", env, "aliases", i)
            key = ".".join(str(p) for p in loc)
            shadowed = [n for n in names if n != env and fnmatchcase(n.lower(), alias.lower())]
            if shadowed and alias.lower() == shadowed[0].lower():
                yield Problem(ydoc.where(loc), f"{key}: {alias!r} is the name of environment "
                              f"{shadowed[0]!r}, which that name selects: it never selects "
                              f"{env!r}")
            elif alias.lower() in earlier and earlier[alias.lower()] != env:
                yield Problem(ydoc.where(loc), f"{key}: {alias!r} is already an alias of "
                              f"{earlier[alias.lower()]!r}, which comes first: it never "
                              f"selects {env!r}")
            earlier.setdefault(alias.lower(), env)


# -- the schema and the loader's own checks -----------------------------------------------

def _schema(ydoc: _yaml.YamlDoc, base_dir: Path, found: _Found) -> Any:
    """The validated document, or ``None`` after adding each schema problem."""
    from imggate.policy.rules import RulesDocument

    try:
        return RulesDocument.model_validate(ydoc.data, context={"base_dir": base_dir})
    except ValidationError as e:
        for line, text, _loc in _yaml.validation_problems(e, ydoc, (), RulesDocument):
            found.add(Problem(f"{ydoc.source}:{line}", text))
        return None


def _sound_part(ydoc: _yaml.YamlDoc, base_dir: Path) -> Any:
    """The environments whose whole ``extends`` chain passes the schema, as a document of
    their own: their consistency is checked while other sections have schema problems."""
    from imggate.policy.rules import EnvironmentSpec, RulesDocument

    envs = ydoc.data.get("environments")
    if not isinstance(envs, dict):
        return None
    context = {"base_dir": base_dir}
    sound: dict[Any, Any] = {}
    for name, spec in envs.items():
        try:
            EnvironmentSpec.model_validate(spec, context=context)
        except ValidationError:
            continue
        sound[name] = spec

    def whole(name: Any) -> bool:
        seen = set()
        while name is not None and name not in seen:
            if name not in sound:
                return False
            seen.add(name)
            name = sound[name].get("extends") if isinstance(sound[name], dict) else None
        return name is None

    part = {name: spec for name, spec in sound.items() if whole(name)}
    if not part:
        return None
    try:
        return RulesDocument.model_validate({"environments": part}, context=context)
    except ValidationError:
        return None


def _consistency(ydoc: _yaml.YamlDoc, document: Any, found: _Found) -> None:
    """What loading checks once the names are right: each environment resolved on its own."""
    from imggate.policy.loader import resolve_environment

    for name in document.environments:
        try:
            resolve_environment(document, ydoc, name)
        except ConfigError as e:
            found.add(_from_error(e, ydoc.source))


# -- files the rules name -----------------------------------------------------------------

def _named_files(ydoc: _yaml.YamlDoc, base_dir: Path, found: _Found) -> None:
    """Open and parse every file the rules name, with the reader a run would use: read
    from the raw document, so that a file is checked even when its section has other
    problems."""
    results: dict[tuple[str, Path], ConfigError | None] = {}
    for loc, path, kind in _files_of(ydoc.data, base_dir):
        if (kind, path) not in results:
            results[kind, path] = _read(kind, path)
        error = results[kind, path]
        if error is not None:
            key = ".".join(str(p) for p in loc)
            found.add(Problem(ydoc.where(loc), f"{key}: {error.message}", error.hint))


def _files_of(data: dict[str, Any], base_dir: Path) -> Iterator[tuple[Loc, Path, str]]:
    """``(location, path, kind)`` of each file named, as the schema resolves its path."""
    for i, value in enumerate(_list(data.get("allowlists"))):
        yield from _path(("allowlists", i), value, "allowlist", base_dir)
    envs = data.get("environments")
    for name, spec in (envs.items() if isinstance(envs, dict) else ()):
        yield from _section_files(("environments", name), spec, base_dir)
        for i, override in enumerate(_list(_get(spec, "images"))):
            yield from _section_files(("environments", name, "images", i), override, base_dir)


def _section_files(loc: Loc, spec: object, base_dir: Path) -> Iterator[tuple[Loc, Path, str]]:
    signatures = _get(spec, "signatures")
    for i, value in enumerate(_list(_get(signatures, "keys"))):
        yield from _path((*loc, "signatures", "keys", i), value, "key", base_dir)
    for i, value in enumerate(_list(_get(signatures, "certificate_chains"))):
        yield from _path((*loc, "signatures", "certificate_chains", i), value, "chain",
                         base_dir)
    kev = _get(_get(spec, "severity"), "kev")
    if kev is not None:
        yield from _path((*loc, "severity", "kev"), kev, "kev", base_dir)


def _get(value: object, key: str) -> object:
    return value.get(key) if isinstance(value, dict) else None


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _path(loc: Loc, value: object, kind: str, base_dir: Path
          ) -> Iterator[tuple[Loc, Path, str]]:
    """The path the schema makes of ``value`` (nothing when the schema refuses it: the
    schema's problem says why)."""
    from pydantic import TypeAdapter

    from imggate.policy.rules import FilePath, KeyFile

    adapter: TypeAdapter[Path] = TypeAdapter(KeyFile if kind == "key" else FilePath)
    try:
        yield loc, adapter.validate_python(value, context={"base_dir": base_dir}), kind
    except ValidationError:
        return


def _readers() -> dict[str, Callable[[Path], object]]:
    from imggate.policy.allowlists import load_allowlist
    from imggate.policy.kev import load_kev
    from imggate.signatures.interface import load_certificate_authority
    from imggate.signatures.keys import load_public_key

    return {"allowlist": load_allowlist, "kev": load_kev, "key": load_public_key,
            "chain": load_certificate_authority}


def _read(kind: str, path: Path) -> ConfigError | None:
    try:
        _readers()[kind](path)
    except ConfigError as e:
        return e
    return None
