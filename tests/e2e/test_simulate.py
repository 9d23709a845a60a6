"""`gse autoscale simulate` and POST /api/v1/autoscaling/simulate answer the same cases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gs_engine.harness import EngineProcess

HPA_CASE = {
    "policy": "hpa",
    "currentReplicas": 3,
    "minReplicas": 1,
    "maxReplicas": 10,
    "metrics": [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 30}},
        }
    ],
    "pods": [
        {"name": f"p{i}", "phase": "Running", "ready": True, "requests": {"cpu": "1"}, "usage": {"cpu": cpu}}
        for i, cpu in enumerate(["300m", "500m", "700m"])
    ],
}
KPA_CASE = {
    "policy": "kpa",
    "config": {"target": 10, "totalValue": 13.3, "panicThreshold": 2.0, "maxScaleUpRate": 10,
               "maxScaleDownRate": 10, "stableWindowSeconds": 60, "scaleDownDelaySeconds": 0,
               "activationScale": 1, "targetBurstCapacity": 0, "reachable": True},
    "steps": [{"atSeconds": 0, "readyPods": 1, "stableValue": 50, "panicValue": 10}],
}  # fmt: skip


def run_cli(tmp_path: Path, case: dict, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case))
    return subprocess.run(
        [sys.executable, "-m", "gs_engine.cli", "autoscale", "simulate", "-f", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_simulates_hpa_and_kpa(tmp_path: Path) -> None:
    hpa = run_cli(tmp_path, HPA_CASE)
    assert hpa.returncode == 0, hpa.stderr
    assert json.loads(hpa.stdout)["desiredReplicas"] == 5
    kpa = run_cli(tmp_path, KPA_CASE)
    assert json.loads(kpa.stdout)["steps"][0]["desiredPods"] == 5


def test_cli_refuses_a_bad_case_naming_the_field(tmp_path: Path) -> None:
    bad = run_cli(tmp_path, {"policy": "hpa", "currentReplicas": "three", "maxReplicas": 3})
    assert bad.returncode == 1
    assert "currentReplicas" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.integration
def test_api_simulates_like_the_cli(engine: EngineProcess, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {engine.token}"}
    simulate_url = f"{engine.api_url}/api/v1/autoscaling/simulate"
    answer = httpx.post(simulate_url, json=HPA_CASE, headers=headers)
    assert answer.status_code == 200
    assert answer.json() == json.loads(run_cli(tmp_path, HPA_CASE).stdout)
    bad = httpx.post(simulate_url, json={"policy": "nope"}, headers=headers)
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["problems"][0]["field"] == "policy"


@pytest.mark.parametrize("name", ["hpa-cpu.json", "kpa-burst.json", "vpa.json"])
def test_example_cases_simulate(name: str) -> None:
    case = Path(__file__).resolve().parents[2] / "examples" / "autoscaling" / name
    result = subprocess.run(
        [sys.executable, "-m", "gs_engine.cli", "autoscale", "simulate", "-f", str(case)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer.get("desiredReplicas") or answer.get("steps") or answer.get("containers")
