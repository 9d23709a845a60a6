"""Right-sizing from real measurements: a replica that burns a core gets a CPU recommendation near one."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from gs_engine.controllers.rightsizing import RightsizingController
from gs_engine.runtimes.base import ReplicaRequest, ReplicaState
from gs_engine.runtimes.process import ProcessRuntime

pytestmark = pytest.mark.integration

BURNER = (
    "import os, socket\n"
    "s = socket.socket(); s.bind(('127.0.0.1', int(os.environ['PORT']))); s.listen()\n"
    "ballast = bytearray(64 * 2**20)\n"
    "while True: pass\n"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_recommendation_follows_measured_use(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))


async def _scenario(tmp_path: Path) -> None:
    clock = Clock()
    runtime = ProcessRuntime(tmp_path / "replicas")
    await runtime.start()
    sizing = RightsizingController(runtime, clock=clock, peak_interval=5.0)
    spec = {
        "service": {
            "name": "burner",
            "namespace": "default",
            "replicas": 1,
            "containers": [{"name": "burn", "command": [sys.executable, "-c", BURNER]}],
            "readinessProbe": {"tcpSocket": {}},
        }
    }
    try:
        await runtime.run_replica(ReplicaRequest("default.burner-1", "default", "burner", "r1", spec))
        for _ in range(200):
            if any(r.state is ReplicaState.RUNNING for r in runtime.replicas()):
                break
            await asyncio.sleep(0.05)
        for _ in range(12):
            await asyncio.sleep(0.25)  # let the process run between CPU readings
            clock.now += 1.0
            await sizing.sample()
        sizing.update_recommendations()
        rec = sizing.recommendation("default", "burner")
        assert rec is not None and rec["samples"] >= 10
        assert rec["target"]["cpu"] > 0.3  # a busy loop: most of a core (the machine is shared)
        assert rec["target"]["memory"] > 64 * 2**20  # the ballast is resident
        assert rec["lowerBound"]["cpu"] <= rec["target"]["cpu"] <= rec["upperBound"]["cpu"]
        assert sizing.recommendation("default", "other") is None
    finally:
        await runtime.close()
