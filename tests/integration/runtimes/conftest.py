"""Fixtures shared by the runtime integration tests: a real ProcessRuntime in a fresh state folder."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gs_engine.runtimes.process import ProcessRuntime


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    rt = ProcessRuntime(tmp_path / "state", log_check_seconds=0.05)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.close()
