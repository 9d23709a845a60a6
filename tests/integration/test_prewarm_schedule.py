"""A schedule window raises the floor ahead of a peak: real store, runtime and gateway, stepped clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gs_engine.controllers.autoscaler import AutoscalerController
from gs_engine.controllers.services import ServiceController
from gs_engine.gateway.server import Gateway
from gs_engine.runtimes.process import ProcessRuntime
from gs_engine.spec import service_from_dict, template_revision
from gs_engine.store import Store
from tests.integration.conftest import echo_service

pytestmark = pytest.mark.integration


class SteppedClock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when.timestamp()


def test_schedule_window_raises_and_releases_the_floor(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))


async def _scenario(tmp_path: Path) -> None:
    clock = SteppedClock(datetime(2026, 12, 3, 7, 58, tzinfo=UTC))
    store = Store(f"sqlite:///{tmp_path / 'gse.db'}")
    store.migrate()
    runtime = ProcessRuntime(tmp_path / "replicas")
    gateway = Gateway("127.0.0.1", 0)
    await runtime.start()
    await gateway.start()
    services = ServiceController(store, runtime, gateway, clock=clock)
    autoscaler = AutoscalerController(
        store, runtime, gateway, services.poke, resting=services.resting_ids, clock=clock
    )
    services.targets = autoscaler
    try:
        doc = echo_service("peak")
        doc["service"]["autoscaling"] = {
            "policy": "kpa",
            "minReplicas": 1,
            "maxReplicas": 5,
            "stableWindowSeconds": 5,
        }
        doc["service"]["prewarm"] = {
            "schedule": [{"cron": "0 8 * * *", "timezone": "UTC", "minReplicas": 3, "durationMinutes": 30}]
        }
        spec = service_from_dict(doc)
        store.apply_service(
            "default", "peak", spec.to_document(), {}, template_revision(spec), [("", "/default/peak")]
        )

        async def step(when: datetime) -> int:
            clock.set(when)
            await autoscaler.decide_all()
            await services.reconcile_once()
            return len(
                [
                    r
                    for r in runtime.replicas()
                    if r.service == "peak" and r.replica_id not in services.draining_ids()
                ]
            )

        assert await step(datetime(2026, 12, 3, 7, 59, tzinfo=UTC)) == 1
        assert await step(datetime(2026, 12, 3, 8, 0, 30, tzinfo=UTC)) == 3
        assert autoscaler.status("default", "peak")["reason"] == "schedule[0] window open"
        assert await step(datetime(2026, 12, 3, 8, 29, tzinfo=UTC)) == 3
        assert await step(datetime(2026, 12, 3, 8, 31, tzinfo=UTC)) == 1
        await services.flush()
        await autoscaler.close()
        reasons = [e.reason for e in store.list_events("default", "peak", 100)]
        assert reasons.count("ScaledUp") == 1 and reasons.count("ScaledDown") == 1
    finally:
        await services.close()
        await autoscaler.close()
        await gateway.close()
        await runtime.close()
        store.close()
