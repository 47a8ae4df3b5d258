"""A report's part for an image, made once per distinct image verdict, the reference aside.

An audit judges every tag of a repository: 1,002 tags over 300 images, say. The tags
that name the same image are judged alike, so their verdicts differ only in the
reference (``repo:tag@digest``), and so would each report's part for them (an HTML
section, a JUnit testsuite, a verdict JSON object) but for that reference. A writer
makes its part once per distinct verdict (:class:`OncePerVerdict`) and puts each
verdict's reference in. Whether two verdicts are alike is their equality, reference
aside: anything else that differs (a rule about tags such as ``latest``, a note, a
decision) makes a part of its own. A check's images have distinct digests: nothing is
compared.

Where the part is text, it is made with a :func:`placeholder` for the reference, which
each verdict's (escaped as that text escapes it) replaces.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from imggate.models import Digest, ImageVerdict
from imggate.values import replace

T = TypeVar("T")


def alike(a: ImageVerdict, b: ImageVerdict) -> bool:
    """``a`` and ``b`` are the same verdict, reference aside."""
    return replace(a, reference=b.reference) == b


def placeholder(what: str) -> str:
    """A token to stand for ``what`` (letters, digits, dashes) in a part made as text.

    Each holds a fresh nonce, so no text from a report or registry can be mistaken for
    one, and no escaping (HTML, XML, JSON) changes it.
    """
    return f"imggate-{what}-{secrets.token_hex(16)}"


#: Distinct verdicts of one image kept to compare with: each verdict is compared with at
#: most this many (the latest), so that tags of one image judged each differently (a rule
#: whose message names the tag) cost a few comparisons each, not one per earlier tag.
KEPT_PER_IMAGE = 8


class OncePerVerdict(Generic[T]):
    """``make(verdict)``, made once per distinct verdict (:func:`alike`) and reused."""

    def __init__(self, make: Callable[[ImageVerdict], T]) -> None:
        self._make = make
        # By digest (None: no image), the latest distinct verdicts and what was made of each.
        self._seen: dict[Digest | None, deque[tuple[ImageVerdict, T]]] = {}

    def __call__(self, iv: ImageVerdict) -> T:
        """What was made of a verdict alike ``iv`` (among those kept), else of ``iv`` now."""
        key = iv.image.digest if iv.image is not None else None
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = deque(maxlen=KEPT_PER_IMAGE)
        for other, made in seen:
            if alike(iv, other):
                return made
        made = self._make(iv)
        seen.append((iv, made))
        return made
