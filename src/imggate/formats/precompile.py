"""Compile the shipped HTML report template to Python: ``python -m imggate.formats.precompile``.

Writes ``src/imggate/formats/_compiled/`` (Jinja2's ``compile_templates``
output, loaded with ``jinja2.ModuleLoader``, plus a ``STAMP`` naming the
Jinja2 release and each template's SHA-256). Run it after editing
``templates/report.html.j2`` or ``templates/report_section.html.j2``, or upgrading
Jinja2; ``--check`` exits 1 when the checked-in output is stale (the test suite
runs the same check).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import jinja2

from imggate.formats import _jinja

COMMAND = "python -m imggate.formats.precompile"


def build(target: Path) -> None:
    """Write the compiled templates and their ``STAMP`` into ``target`` (emptied first)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    env = _jinja.environment(jinja2.FileSystemLoader(str(_jinja.TEMPLATES)))
    env.compile_templates(str(target), zip=None, ignore_errors=False,
                          filter_func=lambda name: name in _jinja.SHIPPED)
    (target / "STAMP").write_text("\n".join(_jinja.stamp_fields()) + "\n", "utf-8")


def stale(checked_in: Path = _jinja.COMPILED) -> list[str]:
    """Files of ``checked_in`` that differ from a fresh build (empty when current)."""
    with tempfile.TemporaryDirectory(prefix="imggate-precompile-") as tmp:
        fresh = Path(tmp) / "compiled"
        build(fresh)
        names = sorted({p.name for p in fresh.iterdir()}
                       | ({p.name for p in checked_in.iterdir() if p.is_file()}
                          if checked_in.is_dir() else set()))
        return [n for n in names
                if not (fresh / n).is_file() or not (checked_in / n).is_file()
                or not filecmp.cmp(fresh / n, checked_in / n, shallow=False)]


def main(argv: list[str] | None = None) -> int:
    """Build (or with ``--check``, verify) the checked-in compiled templates."""
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the output is stale")
    args = ap.parse_args(argv)
    if args.check:
        differ = stale()
        if differ:
            print(f"stale: {', '.join(differ)} (run: {COMMAND})", file=sys.stderr)
            return 1
        return 0
    build(_jinja.COMPILED)
    print(f"wrote {_jinja.COMPILED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
