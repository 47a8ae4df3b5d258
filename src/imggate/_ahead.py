"""Work done ahead on a thread of its own, while the main thread goes on.

For start-up work that waits on nothing but the CPU, to overlap the main thread's
network round trips: ``audit`` imports the policy layer and reads the rules (pydantic
models, ~0.5G instructions) while the tags are listed and resolved, instead of
keeping the registry idle until they are loaded.

Two threads importing at once are safe as long as they import different modules
(each module has its own import lock); a module both want is imported once, the
second thread waiting for the first. What runs ahead should import only what the main
thread will not be importing meanwhile, or the main thread waits for it.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


def ahead(fn: Callable[[], T], name: str) -> Future[T]:
    """``fn()`` started now on a thread of its own (in a copy of the caller's context);
    its result, or the exception it raised, in the future returned.

    The caller waits for it before it finishes; the thread is a daemon so that a run
    interrupted meanwhile (Ctrl-C) is not held up by it (rules read from a pipe, say)."""
    future: Future[T] = Future()
    context = contextvars.copy_context()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = context.run(fn)
        except BaseException as e:  # handed to the caller, who raises it
            future.set_exception(e)
        else:
            future.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def failure(future: Future[T]) -> BaseException | None:
    """The exception ``future``'s work raised (waiting for it to end), else ``None``."""
    try:
        future.result()
    except BaseException as e:
        return e
    return None
