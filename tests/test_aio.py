"""The CLI's event loop: a coroutine's result or exception comes back, its async
generators are finalised, and the loop is uvloop's when uvloop is installed; a task
settled is stopped and its outcome taken."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import pytest

from imggate._aio import run, settle
from imggate.errors import Error


def test_the_result_and_the_exception_come_back() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def fail() -> None:
        raise ValueError("no")

    assert run(answer()) == 42
    with pytest.raises(ValueError, match="no"):
        run(fail())


def test_an_unfinished_async_generator_is_finalised_before_the_loop_closes() -> None:
    closed: list[bool] = []

    async def numbers() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    gen = numbers()

    async def first() -> int:
        return await gen.__anext__()

    assert run(first()) == 1
    assert closed == [True]


def test_the_loop_is_uvloops_when_installed() -> None:
    import uvloop  # installed with uvicorn[standard], a dependency: never skipped

    async def loop_type() -> type:
        return type(asyncio.get_running_loop())

    assert issubclass(run(loop_type()), uvloop.Loop)


def test_a_lookup_stopped_that_ends_in_its_own_error_is_not_left_unretrieved() -> None:
    # A task told to stop that still ends in an error (its request cut off by its own
    # deadline meanwhile): nobody asks for it, and asyncio must not log it as unretrieved.
    logged: list[dict[str, object]] = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise Error("cut off") from None

    async def go() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, c: logged.append(c))
        task = asyncio.ensure_future(stubborn())
        await asyncio.sleep(0)
        settle(task)
        await asyncio.sleep(0.01)
        assert task.done() and not task.cancelled()
        del task
        gc.collect()

    asyncio.run(go())
    assert not logged, logged


def test_a_task_settled_just_before_the_end_unwinds_in_its_own_context_on_the_loop() -> None:
    """A lookup stopped when the run ends (the image's config failed meanwhile): its
    ``finally`` runs on the loop, in its own context, before :func:`run` returns."""
    import contextvars

    current: contextvars.ContextVar[str | None] = contextvars.ContextVar("current",
                                                                         default=None)
    unwound: list[tuple[bool, str | None]] = []
    started = asyncio.Event()

    async def lookup() -> None:
        token = current.set("lookup")
        try:
            started.set()
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.01)  # (releasing a connection: a write and a wait)
            try:
                asyncio.get_running_loop()
                on_loop = True
            except RuntimeError:
                on_loop = False
            unwound.append((on_loop, current.get()))
            current.reset(token)  # (a foreign context: ValueError, printed and ignored)

    async def gather_then_fail() -> str:
        task = asyncio.ensure_future(lookup())
        await started.wait()
        settle(task)
        return "config failed"

    assert run(gather_then_fail()) == "config failed"
    assert unwound == [(True, "lookup")]
