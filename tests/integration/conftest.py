from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gs_engine.harness import EngineProcess

APPS = Path(__file__).resolve().parent / "apps"


def echo_service(name: str, replicas: int = 1, version: str = "v1", **extra: Any) -> dict[str, Any]:
    service: dict[str, Any] = {
        "name": name,
        "namespace": "default",
        "replicas": replicas,
        "containers": [
            {
                "name": "app",
                "command": ["python", str(APPS / "echo_app.py")],
                "env": [{"name": "VERSION", "value": version}],
            }
        ],
        "readinessProbe": {"httpGet": {"path": "/healthz"}, "periodSeconds": 0.2},
    }
    service.update(extra)
    return {"service": service}


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value {last!r}")


def ready_count(api: Any, name: str, namespace: str = "default") -> int:
    service = api.get_service(namespace, name)
    status = service.get("status") or {}
    if service["observedGeneration"] != service["generation"]:
        return 0
    return int(status.get("readyReplicas", 0))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    proc = EngineProcess(tmp_path / "home")
    proc.start()
    try:
        yield proc
    finally:
        left = proc.stop()
        assert left == [], f"replica processes left behind: {left}\n{proc.log()}"
