"""Waiting on a runtime's observations, shared by the runtime integration tests."""

import asyncio
from collections.abc import Callable
from typing import Any

from gs_engine.runtimes.base import ReplicaObservation
from gs_engine.runtimes.process import ProcessRuntime


async def wait_until(
    condition: Callable[[], Any], what: str, timeout: float = 15.0, poll: float = 0.05
) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(poll)


def observed(rt: ProcessRuntime, replica_id: str) -> ReplicaObservation | None:
    return next((o for o in rt.replicas() if o.replica_id == replica_id), None)
