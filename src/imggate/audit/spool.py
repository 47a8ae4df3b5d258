"""The containers of a cluster audit kept on disk, read back a namespace at a time.

``audit --cluster`` reads pods a page at a time; what it must remember of each
container until the reports are written is a few hundred bytes, but 10,000
pods of such small objects, made between pages of pod JSON that are freed, pin
the allocator's pages: the process grew by ~3 KB a pod. Each container is
written here instead as one compact JSON line in an unnamed temporary file
(removed when closed, readable by this process only), and the memory held per
container is the line's offset (8 bytes), grouped by namespace.

The records are the audit's own writing, read back by the same process; they
are still parsed as JSON (never unpickled).
"""

from __future__ import annotations

import json
import tempfile
from array import array
from collections.abc import Iterator
from typing import IO, Any


class ContainerSpool:
    """Records appended per namespace, then read back per namespace, any number of times."""

    def __init__(self) -> None:
        # Open for the spool's life (closed by close()), not a with block.
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="imggate-cluster-")  # noqa: SIM115
        self._end = 0
        self._index: dict[str, array[int]] = {}
        self._count = 0

    def add(self, namespace: str, record: list[Any]) -> None:
        """Append ``record`` (JSON-serialisable) to ``namespace``'s."""
        data = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        self._file.seek(self._end)
        self._file.write(data)
        self._index.setdefault(namespace, array("q")).append(self._end)
        self._end += len(data)
        self._count += 1

    def namespaces(self) -> list[str]:
        """The namespaces with records, in the order first seen."""
        return list(self._index)

    def records(self, namespace: str) -> Iterator[list[Any]]:
        """``namespace``'s records, in the order added."""
        for offset in self._index.get(namespace, ()):
            self._file.seek(offset)
            record = json.loads(self._file.readline())
            assert isinstance(record, list)
            yield record

    def count(self, namespace: str) -> int:
        """How many records ``namespace`` has."""
        return len(self._index.get(namespace, ()))

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        """Remove the file."""
        self._file.close()
