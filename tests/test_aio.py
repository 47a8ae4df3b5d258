"""The CLI's event loop: a coroutine's result or exception comes back, its async
generators are finalised, and the loop is uvloop's when uvloop is installed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from imggate._aio import run


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
