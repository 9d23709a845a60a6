"""Store writes off the reconcile path: queued in order, run one at a time in a worker thread.

A reconcile pass decides and acts on replicas and routes at memory speed; what it records (status,
events, the replica mirror) follows a moment later without holding up the next pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gs_engine.controllers.tasks import cancel_and_wait

log = logging.getLogger("gs_engine.controllers.writer")


class BackgroundWriter:
    def __init__(self, name: str = "store-writer") -> None:
        self.name = name
        self._queue: asyncio.Queue[Callable[[], object]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0

    def submit(self, write: Callable[[], object]) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)
        self._queue.put_nowait(write)

    async def flush(self) -> None:
        """Wait until everything submitted so far is written."""
        if self._task is not None and not self._task.done():
            await self._queue.join()

    async def close(self, timeout: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except TimeoutError:
            log.warning("%s: %d writes still queued at shutdown", self.name, self._queue.qsize())
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            write = await self._queue.get()
            try:
                await asyncio.to_thread(write)
            except Exception:
                self.failures += 1
                log.exception("%s: a store write failed", self.name)
            finally:
                self._queue.task_done()
