"""imggate's errors: one root, each subclass carrying the exit code it maps to.

The tree::

    Error                       exit 3 unless a subclass says otherwise
    ├── UsageError              exit 2: a bad flag, argument or image reference
    │   ├── InvalidReference    an image reference docker would reject
    │   └── ManifestError       a Kubernetes object without the shape of its kind
    ├── ConfigError             exit 2: a rules file, exception list or key file is invalid
    ├── RegistryError           exit 3: the registry could not give a trustworthy answer
    │   ├── AuthError           credentials missing or refused
    │   ├── NotFound            manifest, blob or tag does not exist
    │   └── DigestMismatch      bytes do not hash to the digest they were fetched by
    ├── LayoutError             exit 3: an OCI image layout directory is unusable
    ├── ReportError             exit 2: a scanner report the user named is unreadable or
    │                           malformed (no retry fixes it)
    ├── ScannerError            exit 3: running a scanner failed
    └── SignatureError          exit 3: signatures could not be fetched (a *failed*
                                verification is a result, not an error)

Every error has a message a user can act on and never holds a secret: the
message and hint are passed through :func:`imggate.redact.redact` when the
error is built. A :class:`RegistryError` quotes a remote party, so its
message is also made :func:`~imggate.text.printable` (one line, controls
escaped). ``diagnostics()`` renders an error for the console.
"""

from __future__ import annotations

from typing import ClassVar

from imggate.redact import redact
from imggate.text import printable


class Error(Exception):
    """Root of every error imggate raises on purpose."""

    exit_code: ClassVar[int] = 3

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.hint = redact(hint) if hint else hint

    def diagnostics(self) -> str:
        """A user-facing rendering: the message and, when there is one, what to do."""
        text = f"imggate: error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class UsageError(Error):
    """A bad flag, argument or combination of them."""

    exit_code: ClassVar[int] = 2


class InvalidReference(UsageError):
    """An image reference that docker would reject; the message names the bad part."""


class ManifestError(UsageError):
    """A Kubernetes object (an AdmissionReview's, or one in a manifest file) is malformed.

    ``path`` is the RFC 6901 JSON pointer of the offending field in the object;
    ``location`` (``file:line``) is set when the object came from a file.
    """

    def __init__(self, message: str, *, path: str, location: str | None = None,
                 hint: str | None = None) -> None:
        where = f"{location}: {path}" if location else path
        super().__init__(f"{where}: {message}", hint=hint)
        self.path = path
        self.location = location
        self.detail = message

    def at(self, location: str) -> ManifestError:
        """The same error, placed at ``location`` (``file:line``)."""
        return ManifestError(self.detail, path=self.path, location=location, hint=self.hint)


class ConfigError(Error):
    """A rules file, exception list, key or other user-written input is invalid.

    ``location`` is ``file:line`` when known.
    """

    exit_code: ClassVar[int] = 2

    def __init__(
        self, message: str, *, location: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(f"{location}: {message}" if location else message, hint=hint)
        self.location = location


class RegistryError(Error):
    """The registry could not give a trustworthy answer.

    The message names registry, repository, reference/digest and HTTP status
    when they are known.
    """

    def __init__(
        self,
        message: str,
        *,
        registry: str | None = None,
        repository: str | None = None,
        reference: str | None = None,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        parts = []
        if registry:
            where = registry + (f"/{repository}" if repository else "")
            if reference:
                where += ("@" if reference.startswith("sha256:") else ":") + reference
            parts.append(where)
        if status is not None:
            parts.append(f"HTTP {status}")
        prefix = f"{' '.join(parts)}: " if parts else ""
        # Redact before escaping: a secret with a line break is known in its raw form.
        super().__init__(printable(redact(prefix + message)), hint=hint)
        self.registry = registry
        self.repository = repository
        self.reference = reference
        self.status = status


class AuthError(RegistryError):
    """Credentials are missing or were refused."""


class NotFound(RegistryError):
    """The manifest, blob or tag does not exist."""


class DigestMismatch(RegistryError):
    """Bytes fetched by digest do not hash to that digest: never accepted."""


class LayoutError(Error):
    """An OCI image layout directory is missing, malformed or inconsistent."""


class ReportError(Error):
    """A scanner report could not be read; the message names the file and the place.

    Exit 2: the report is a file the user named, and reading it again changes nothing.
    Where a report comes from a scanner imggate ran, its failure is a
    :class:`ScannerError` (exit 3) instead.
    """

    exit_code: ClassVar[int] = 2


class ScannerError(Error):
    """Running a scanner failed, timed out or produced nothing usable."""


class SignatureError(Error):
    """Signatures or attestations could not be fetched or the request is malformed."""
