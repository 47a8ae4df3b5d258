"""``check --html-template FILE``: a team's own Jinja2 template, rendered in a sandbox.

Templates come from repositories, so they are not trusted more than a
scanner report: they run in Jinja2's ``ImmutableSandboxedEnvironment``
(no ``__class__``/``__globals__``/``mro()`` walks, no attribute beginning
with ``_``, no mutation of what they are given, ``range()`` bounded), with
autoescape on, no loader (so no ``include``/``import``/``extends`` of files)
and a cap on the size of what they write. A template that breaks these rules,
or fails to compile or render, is a :class:`~imggate.errors.ConfigError`
(exit 2) naming the file and line.

The context (documented in ``docs/outputs.md``) is the verdict model itself:

``verdict``
    :class:`imggate.models.Verdict`: ``env``, ``generated``, ``exit_code``,
    ``run`` (which rules and environment, and why), ``error`` and ``images``
    (:class:`~imggate.models.ImageVerdict`, with ``reference``, ``decision``,
    ``image``, ``rules``, ``violations``, ``warnings``, ``findings``,
    ``suppressed``, ``exceptions``, ``signatures``, ``reports``,
    ``evidence``, ``scanned``, ``error`` and ``notes``).
``decision``
    The run's decision: ``"allow"``, ``"deny"`` or ``"error"``.
``exit_code``, ``tool_version``, ``generated``
    The run's exit code, imggate's version, and when the verdict was made
    (``YYYY-MM-DD HH:MM:SS UTC``).
``severities``
    Severity names worst first (``Critical`` … ``Unknown``).

Functions: ``severity_counts(findings)`` (a dict of every severity to its
count), ``worst_first(findings)``, ``safe_url(url)`` (the URL when it is plain
http(s), else none). Filter: ``clean`` (control and bidi characters made
visible; autoescape does the rest).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imggate import __version__
from imggate.errors import ConfigError
from imggate.formats.html import FILENAME, _ts, clean, safe_url
from imggate.formats.verdict_json import (
    SEVERITY_ORDER,
    overall_decision,
    severity_counts,
    worst_first,
    write_text,
)

if TYPE_CHECKING:
    import jinja2

    from imggate.models import Verdict

#: A template file larger than this is not a template anyone meant.
MAX_TEMPLATE_BYTES = 1024 * 1024
#: What a template may write: far above any real report (10k findings ~ 6 MB).
MAX_OUTPUT_CHARS = 64 * 1024 * 1024


def _read(path: Path) -> str:
    """The template's text: a regular UTF-8 file within :data:`MAX_TEMPLATE_BYTES`."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ConfigError(f"--html-template {path}: cannot open it ({e.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a directory, FIFO or device: never read
        os.close(fd)
        raise ConfigError(f"--html-template {path}: not a regular file")
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_TEMPLATE_BYTES + 1)
    if len(data) > MAX_TEMPLATE_BYTES:
        raise ConfigError(f"--html-template {path}: larger than {MAX_TEMPLATE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"--html-template {path}: not UTF-8 (byte {e.start})") from None


def sandbox() -> jinja2.Environment:
    """The environment user templates run in: sandboxed, immutable, autoescaped, no loader."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(autoescape=True, undefined=jinja2.StrictUndefined,
                                        trim_blocks=True, lstrip_blocks=True)
    env.filters["clean"] = clean
    env.globals.update(severity_counts=severity_counts, worst_first=worst_first,
                       safe_url=safe_url)
    return env


@dataclass(frozen=True)
class UserTemplate:
    """A team's template, compiled in the sandbox, and the file it came from."""

    path: Path
    template: jinja2.Template

    def render(self, verdict: Verdict, *, tool_version: str | None = None) -> str:
        """The page for ``verdict`` (documented context); any failure is a :class:`ConfigError`."""
        import jinja2
        from jinja2.exceptions import SecurityError

        context = {
            "verdict": verdict,
            "decision": overall_decision(verdict).value,
            "exit_code": verdict.exit_code,
            "tool_version": tool_version or __version__,
            "generated": _ts(verdict.generated),
            "severities": [s.value for s in SEVERITY_ORDER],
        }
        out: list[str] = []
        size = 0
        try:
            for chunk in self.template.generate(context):
                size += len(chunk)
                if size > MAX_OUTPUT_CHARS:
                    raise ConfigError(f"{self.path}: the template wrote more than "
                                      f"{MAX_OUTPUT_CHARS} characters; stopped")
                out.append(chunk)
        except SecurityError as e:
            raise ConfigError(f"the sandbox refused: {e}", location=self._where(e),
                              hint="a template sees the documented context only "
                                   "(docs/outputs.md)") from None
        except jinja2.TemplateError as e:
            raise ConfigError(str(e), location=self._where(e)) from None
        except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError,
                RecursionError) as e:
            raise ConfigError(f"the template failed: {type(e).__name__}: {e}",
                              location=self._where(e)) from None
        return "".join(out)

    def _where(self, e: BaseException) -> str:
        """``file:line`` of the template line that raised ``e``, when the traceback has it."""
        tb = e.__traceback__
        line = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<template>":
                line = tb.tb_lineno
            tb = tb.tb_next
        return f"{self.path}:{line}" if line else str(self.path)

    def write(self, verdict: Verdict, output_dir: Path, *,
              tool_version: str | None = None) -> Path:
        """Render into ``output_dir/imggate-report.html``; return its path."""
        return write_text(Path(output_dir) / FILENAME,
                          self.render(verdict, tool_version=tool_version))


#: The names a template's context holds (see the module docstring).
CONTEXT_NAMES = frozenset({"verdict", "decision", "exit_code", "tool_version", "generated",
                           "severities"})


def load(path: Path) -> UserTemplate:
    """Read, compile and check ``path`` before any network work: a syntax error, a name
    the context does not hold, or an attribute the sandbox always refuses is a
    :class:`ConfigError` (exit 2) naming ``file:line``, with nothing fetched."""
    import jinja2

    text = _read(path)
    env = sandbox()
    try:
        ast = env.parse(text)
        template = env.from_string(ast)
    except jinja2.TemplateSyntaxError as e:
        raise ConfigError(e.message or "syntax error",
                          location=f"{path}:{e.lineno}") from None
    _check_names(ast, env, path)
    return UserTemplate(path, template)


def _check_names(ast: jinja2.nodes.Template, env: jinja2.Environment, path: Path) -> None:
    """Refuse, by reading the template, what would fail whatever the verdict: a name
    that is neither in the context, nor a global, nor set by the template itself, and an
    attribute the sandbox refuses on every object (one beginning with ``_``)."""
    from jinja2 import meta, nodes

    unknown = meta.find_undeclared_variables(ast) - CONTEXT_NAMES - set(env.globals)
    for node in ast.find_all((nodes.Name, nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Name) and node.name in unknown:
            raise ConfigError(f"{node.name!r} is not in the template's context",
                              location=f"{path}:{node.lineno}",
                              hint="the context is documented in docs/outputs.md: "
                                   + ", ".join(sorted(CONTEXT_NAMES)))
        name = (node.attr if isinstance(node, nodes.Getattr)
                else node.arg.value if isinstance(node, nodes.Getitem)
                and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str)
                else None)
        if name is not None and name.startswith("_"):
            raise ConfigError(f"the sandbox refused the attribute {name!r}",
                              location=f"{path}:{node.lineno}",
                              hint="a template sees the documented context only "
                                   "(docs/outputs.md)")
