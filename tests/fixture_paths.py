"""Where the tests' real-world data lives.

``tests/fixtures`` is a byte-for-byte copy of the project's shared fixtures
(``SOURCES.md`` and the ``cosign/*/README.md`` files beside the data say where
each file came from), kept in the repository so that the README's test command
passes on a fresh clone with nothing beside it.
"""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
