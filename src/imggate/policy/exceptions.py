"""Exceptions: findings a person decided to accept, until a date, for a reason.

Every source (imggate's own ``exceptions:`` entries, ``.trivyignore``,
``.trivyignore.yaml``, GitLab's ``vulnerability-allowlist.yml``, OpenVEX)
becomes :class:`AllowEntry` values; :meth:`ExceptionSet.apply` splits an
image's findings into active and suppressed and says, for every entry that is
in scope for the image, whether it was ``used``, ``expired`` (it stopped
applying: the finding counts again) or ``stale`` (it matched nothing).
Nothing here writes to a user's file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from fnmatch import fnmatchcase
from typing import Annotated

from msgspec import Struct
from pydantic import BaseModel, ConfigDict, Field

from imggate.models import Digest, ExceptionUse, Finding, ImageRef
from imggate.policy.patterns import image_names

NonEmpty = Annotated[str, Field(min_length=1)]

USED = "used"
EXPIRED = "expired"
STALE = "stale"
#: Refused by the environment's ``exception_policy`` (no expiry, too far away): not applied.
REFUSED = "refused"
#: Matched nothing in this image but was used by another image of the run.
UNMATCHED = "unmatched-here"
#: In scope, but this image's findings were never gathered (NOT SCANNED): not judged.
UNCHECKED = "unchecked"


class ExceptionEntry(BaseModel):
    """imggate's allowlist entry, as written in a rules or exceptions file."""

    # Built when first used: rules without exceptions never pay for it.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: NonEmpty = Field(description="vulnerability id (CVE, GHSA...); aliases match too")
    package: NonEmpty | None = Field(default=None, description="package name (glob) or purl prefix")
    images: tuple[NonEmpty, ...] = Field(
        (), description="image globs, optionally with :tag or @digest; empty = every image")
    environments: tuple[NonEmpty, ...] = Field(default=(), description="empty = every environment")
    expires: date = Field(description="last day the exception applies")
    reason: NonEmpty = Field(description="why the risk is accepted")


class ExceptionsDocument(BaseModel):
    """A standalone imggate exceptions file: ``exceptions: [...]``."""

    # Built when first used: a run that reads no exceptions file never pays for it.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    exceptions: tuple[ExceptionEntry, ...] = ()


def _split_image_pattern(pattern: str) -> tuple[str, str | None, str | None]:
    """``name[:tag][@digest]`` -> (name, tag, digest); a registry port is not a tag."""
    digest = None
    if "@" in pattern:
        pattern, digest = pattern.split("@", 1)
    tag = None
    slash = pattern.rfind("/")
    colon = pattern.rfind(":")
    if colon > slash:
        pattern, tag = pattern[:colon], pattern[colon + 1:]
    return pattern, tag, digest


def image_scope_matches(pattern: str, ref: ImageRef, digests: Sequence[Digest]) -> bool:
    """Whether an image scope pattern (``name-glob[:tag][@digest]``) covers this image."""
    name, tag, digest = _split_image_pattern(pattern)
    if name and not any(fnmatchcase(n, name) for n in image_names(ref)):
        return False
    if tag is not None and tag != (ref.tag or ""):
        return False
    if digest is not None:
        known = {str(d) for d in digests}
        if ref.digest is not None:
            known.add(str(ref.digest))
        return digest in known or any(d.hex == digest for d in digests)
    return True


def _purl_base(purl: str) -> tuple[str, str | None]:
    """``pkg:type/ns/name@version?q#s`` -> (``pkg:type/ns/name`` lower-cased, version)."""
    text = purl.split("#", 1)[0].split("?", 1)[0]
    version = None
    if "@" in text:
        text, version = text.rsplit("@", 1)
    return text.lower(), version


def purl_matches(pattern: str, purl: str | None) -> bool:
    """A purl without a version matches every version; with one, only that version."""
    if purl is None:
        return False
    base, version = _purl_base(pattern)
    fbase, fversion = _purl_base(purl)
    return base == fbase and (version is None or version == fversion)


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class AllowEntry(Struct, frozen=True):
    """One exception from any source, normalised.

    ``ids`` are the vulnerability id and aliases it names; ``source`` is
    ``file:line`` (or the file); ``kind`` is ``imggate``, ``trivyignore``,
    ``gitlab-allowlist`` or ``openvex``.
    """

    ids: tuple[str, ...]
    reason: str
    source: str
    kind: str
    expires: date | None = None
    package: str | None = None
    purls: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()

    @property
    def vulnerability(self) -> str:
        """The id the entry is listed under."""
        return self.ids[0]

    def expired(self, today: date) -> bool:
        """Whether ``today`` is after the last day the entry applies."""
        return self.expires is not None and today > self.expires

    def in_scope(self, ref: ImageRef, digests: Sequence[Digest], env: str) -> bool:
        """Whether the entry is meant for this image in this environment."""
        if self.environments and not any(fnmatchcase(env, e) for e in self.environments):
            return False
        return not self.images or any(image_scope_matches(p, ref, digests) for p in self.images)

    def matches(self, finding: Finding) -> bool:
        """Whether the entry covers ``finding`` (by id or alias, then package scope)."""
        wanted = {i.upper() for i in self.ids}
        if not any(i.upper() in wanted for i in finding.all_ids):
            return False
        if self.package is not None:
            if self.package.startswith("pkg:"):
                if not purl_matches(self.package, finding.purl):
                    return False
            elif not fnmatchcase(finding.package, self.package):
                return False
        if self.purls and not any(purl_matches(p, finding.purl) for p in self.purls):
            return False
        return not self.paths or (finding.path is not None and any(
            fnmatchcase(finding.path.lstrip("/"), p.lstrip("/")) for p in self.paths))


#: Entries that matched nothing are listed up to this many per image; the rest are only
#: counted (a million-line ``.trivyignore`` must not become a million-row report).
MAX_UNUSED_LISTED = 100


class Applied(Struct, frozen=True):
    """Findings after exceptions: what still counts, what was suppressed and why.

    ``uses`` lists every entry that matched a finding and the first
    :data:`MAX_UNUSED_LISTED` that matched nothing; ``unlisted`` counts the others.
    """

    active: tuple[Finding, ...]
    suppressed: tuple[tuple[Finding, str], ...]
    uses: tuple[ExceptionUse, ...]
    unlisted: int = 0


def _describe(f: Finding) -> str:
    return f"{f.id} in {f.package} {f.version}"


def policy_problem(entry: AllowEntry, *, require_expiry: bool, max_days: int | None,
                   today: date) -> str | None:
    """Why an environment's exception policy refuses ``entry`` (``None``: it may apply).

    OpenVEX statements are exempt: they state a fact about a product (not
    affected, fixed), not a risk accepted until a date.
    """
    if entry.kind == "openvex":
        return None
    if entry.expires is None:
        if require_expiry:
            return "it has no expiry date (exception_policy.require_expiry)"
        return None
    if max_days is not None and (entry.expires - today).days > max_days:
        return (f"it expires on {entry.expires}, more than {max_days} days from today "
                "(exception_policy.max_days)")
    return None


class ExceptionSet(Struct, frozen=True):
    """Every exception that applies to a run, from every source.

    ``refused`` are entries the environment's exception policy turned down,
    each with the reason: they are never applied, and every image they would
    cover reports them.
    """

    entries: tuple[AllowEntry, ...] = ()
    refused: tuple[tuple[AllowEntry, str], ...] = ()

    def __add__(self, other: ExceptionSet) -> ExceptionSet:
        return ExceptionSet(self.entries + other.entries, self.refused + other.refused)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def scoped_by_tag(self) -> bool:
        """Whether an entry (applied or refused) is scoped to a tag (``name:tag``): only
        then can two tags of one image differ in what applies to them."""
        return any(_split_image_pattern(p)[1] is not None
                   for e in (*self.entries, *(e for e, _ in self.refused)) for p in e.images)

    def vetted(self, *, require_expiry: bool, max_days: int | None,
               today: date) -> ExceptionSet:
        """These exceptions with the ones the policy refuses moved to ``refused``."""
        keep: list[AllowEntry] = []
        refused = list(self.refused)
        for e in self.entries:
            why = policy_problem(e, require_expiry=require_expiry, max_days=max_days,
                                 today=today)
            if why is None:
                keep.append(e)
            else:
                refused.append((e, why))
        return ExceptionSet(tuple(keep), tuple(refused))

    def apply(self, findings: Iterable[Finding], *, ref: ImageRef, digests: Sequence[Digest],
              env: str, today: date) -> Applied:
        """Split ``findings`` for one image and account for every in-scope entry.

        Linear in entries plus findings, and the index holds only entries that
        name an id some finding has: the rest can only be unused.
        """
        findings = list(findings)
        # Every id of every finding, upper-cased: a pass over all of them (~10 ms at
        # 10,000 findings), needed only when there is an entry at all.
        wanted = {i.upper() for f in findings for i in f.all_ids} \
            if self.entries or self.refused else set()
        scoped: list[AllowEntry] = []
        # id -> (declaration order, entry) for entries naming an id a finding has.
        by_id: dict[str, list[tuple[int, AllowEntry]]] = {}
        for e in self.entries:
            if not e.in_scope(ref, digests, env):
                continue
            n = len(scoped)
            scoped.append(e)
            if wanted:
                for vid in dict.fromkeys(i.upper() for i in e.ids):
                    if vid in wanted:
                        by_id.setdefault(vid, []).append((n, e))
        hits: dict[int, list[str]] = {}
        # No entry names an id of these findings (no exceptions at all, most often): every
        # finding is active, without a pass over them (~3.9M instructions at 10,000).
        active: list[Finding] = [] if by_id else findings
        suppressed: list[tuple[Finding, str]] = []
        for f in findings if by_id else ():
            # Most findings have no entry at all: skip the bookkeeping for them.
            named = [pair for i in f.all_ids for pair in by_id.get(i.upper(), ())]
            if not named:
                active.append(f)
                continue
            first: AllowEntry | None = None
            # Declaration order decides which entry's reason is shown.
            for _, e in sorted(dict(named).items()):
                if e.matches(f):
                    hits.setdefault(id(e), []).append(_describe(f))
                    if first is None and not e.expired(today):
                        first = e
            if first is None:
                active.append(f)
            else:
                suppressed.append((f, f"{first.kind} {first.source}: {first.reason}"))
        uses = []
        unused = 0
        for e in scoped:
            matched = tuple(dict.fromkeys(hits.get(id(e), ())))
            if not matched:
                unused += 1
                if unused > MAX_UNUSED_LISTED:
                    continue
            status = EXPIRED if e.expired(today) else (USED if matched else STALE)
            uses.append(ExceptionUse(vulnerability=e.vulnerability, status=status,
                                     reason=e.reason, source=e.source, expires=e.expires,
                                     package=e.package, matched=matched))
        # Refused entries are listed on an image only where they would have matched
        # (the run's notes count them all): a huge refused allowlist stays linear.
        for e, why in self.refused:
            if not wanted.intersection(i.upper() for i in e.ids):
                continue
            if e.in_scope(ref, digests, env):
                would = tuple(dict.fromkeys(_describe(f) for f in active if e.matches(f)))
                if would:
                    uses.append(ExceptionUse(vulnerability=e.vulnerability, status=REFUSED,
                                             reason=f"refused: {why}", source=e.source,
                                             expires=e.expires, package=e.package,
                                             matched=would))
        return Applied(tuple(active), tuple(suppressed), tuple(uses),
                       max(0, unused - MAX_UNUSED_LISTED))


    def in_effect(self, env: str, today: date, ref: ImageRef | None = None,
                  digests: Sequence[Digest] = ()) -> tuple[AllowEntry, ...]:
        """The entries meant for ``env`` (and ``ref``, when given) that have not expired."""
        return tuple(e for e in self.entries if not e.expired(today) and (
            e.in_scope(ref, digests, env) if ref is not None
            else not e.environments or any(fnmatchcase(env, p) for p in e.environments)))


def describe_entry(e: AllowEntry, today: date) -> dict[str, object]:
    """Plain data for one exception (``rules explain``)."""
    out: dict[str, object] = {"id": e.vulnerability}
    if len(e.ids) > 1:
        out["aliases"] = list(e.ids[1:])
    if e.package:
        out["package"] = e.package
    if e.images:
        out["images"] = list(e.images)
    if e.environments:
        out["environments"] = list(e.environments)
    out["expires"] = e.expires.isoformat() if e.expires else None
    if e.expires is not None:
        out["days_left"] = (e.expires - today).days
    out["reason"] = e.reason
    out["source"] = f"{e.kind} {e.source}"
    return out


def expiry_warnings(entries: Iterable[AllowEntry], today: date,
                    max_days: int | None = None, env: str | None = None) -> list[str]:
    """Why each entry deserves a look: already expired, or expiring beyond ``max_days``.

    ``max_days`` is the environment's ``exception_policy.max_days`` (``env``
    names it in the message); entries not meant for ``env`` are skipped then.
    """
    out = []
    for e in entries:
        if env is not None and e.environments and not any(fnmatchcase(env, p)
                                                          for p in e.environments):
            continue
        if e.expires is None:
            continue
        if max_days is None and e.expired(today):
            out.append(f"{e.source}: exception {e.vulnerability} expired on "
                       f"{e.expires.isoformat()}: it no longer applies; renew or remove it")
        elif max_days is not None and (e.expires - today).days > max_days:
            out.append(f"{e.source}: exception {e.vulnerability} expires on "
                       f"{e.expires.isoformat()}, {(e.expires - today).days} days from now: "
                       f"more than exception_policy.max_days ({max_days}) of environment "
                       f"{env!r}")
    return out


def summarize(uses: Iterable[ExceptionUse]) -> tuple[ExceptionUse, ...]:
    """One line per exception over a whole run (several images).

    An exception is ``expired`` if it expired, else ``used`` if any image used
    it, else ``stale``; ``matched`` is the union over images.
    """
    rank = {REFUSED: 3, EXPIRED: 2, USED: 1, STALE: 0}
    merged: dict[tuple[str, str, str | None], ExceptionUse] = {}
    for u in uses:
        key = (u.source, u.vulnerability, u.package)
        seen = merged.get(key)
        if seen is None:
            merged[key] = u
            continue
        best = u if rank.get(u.status, 0) > rank.get(seen.status, 0) else seen
        matched = tuple(dict.fromkeys((*seen.matched, *u.matched)))
        merged[key] = ExceptionUse(best.vulnerability, best.status, best.reason, best.source,
                                   best.expires, best.package, matched)
    return tuple(merged.values())


def from_models(models: Sequence[ExceptionEntry], where: Sequence[str]) -> ExceptionSet:
    """Normalise imggate entries; ``where[i]`` is entry i's ``file:line``."""
    return ExceptionSet(tuple(
        AllowEntry(ids=(m.id,), reason=m.reason, source=w, kind="imggate", expires=m.expires,
                   package=m.package, images=m.images, environments=m.environments)
        for m, w in zip(models, where, strict=True)))
