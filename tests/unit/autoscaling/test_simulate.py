"""simulate(): JSON cases in, decisions out, and malformed cases reported field by field."""

from __future__ import annotations

from typing import Any

import pytest

import gs_engine.autoscaling as autoscaling
from gs_engine.autoscaling import simulate
from gs_engine.errors import InvalidInput


def cpu_case(
    usages: list[str], target: int, requests: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    reqs = requests or ["1"] * len(usages)
    case: dict[str, Any] = {
        "policy": "hpa",
        "currentReplicas": len(usages),
        "minReplicas": 1,
        "maxReplicas": 10,
        "metrics": [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}},
            }
        ],
        "pods": [
            {"name": f"p{i}", "phase": "Running", "ready": True, "requests": {"cpu": r}, "usage": {"cpu": u}}
            for i, (u, r) in enumerate(zip(usages, reqs, strict=True))
        ],
    }
    case.update(extra)
    return case


KPA = {
    "target": 10,
    "totalValue": 13.3,
    "panicThreshold": 2.0,
    "maxScaleUpRate": 10,
    "maxScaleDownRate": 10,
    "stableWindowSeconds": 60,
    "scaleDownDelaySeconds": 0,
    "activationScale": 1,
    "targetBurstCapacity": 0,
    "reachable": True,
}


def kpa(steps: list[dict[str, Any]], **config: Any) -> list[dict[str, Any]]:
    out = simulate({"policy": "kpa", "config": {**KPA, **config}, "steps": steps})
    return list(out["steps"])


def problems(case: Any) -> set[str]:
    with pytest.raises(InvalidInput) as err:
        simulate(case)
    assert err.value.problems or err.value.fix
    return {p.path for p in err.value.problems}


def test_hpa_published_cases() -> None:
    assert simulate(cpu_case(["300m", "500m", "700m"], 30))["desiredReplicas"] == 5
    assert simulate(cpu_case(["100m", "300m", "500m", "250m", "250m"], 50))["desiredReplicas"] == 3
    tolerance = cpu_case(["1010m", "1030m", "1020m"], 100, requests=["0.9", "1.0", "1.1"])
    assert simulate(tolerance)["desiredReplicas"] == 3


def test_hpa_output_shape() -> None:
    out = simulate(cpu_case(["300m", "500m", "700m"], 30))
    assert set(out) == {"desiredReplicas", "conditions"}
    types = [c["type"] for c in out["conditions"]]
    assert types == ["AbleToScale", "ScalingActive", "ScalingLimited"]
    for c in out["conditions"]:
        assert set(c) == {"type", "status", "reason", "message"}


def test_hpa_pod_without_usage_is_missing() -> None:
    case = cpu_case(["400m", "95m", "0", "0"], 100)
    for pod in case["pods"][2:]:
        del pod["usage"]
    assert simulate(case)["desiredReplicas"] == 3


def test_hpa_pods_metric_and_behavior_and_history() -> None:
    case = cpu_case(["100m", "100m", "100m"], 50)
    case["metrics"].append(
        {
            "type": "Pods",
            "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "10"}},
        }
    )
    for pod in case["pods"]:
        pod["usage"]["rps"] = "30"
    case["behavior"] = {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}}
    assert simulate(case)["desiredReplicas"] == 5
    case["scaleEvents"] = [{"ageSeconds": 30, "change": 1}]
    out = simulate(case)
    assert out["desiredReplicas"] == 4
    limited = [c for c in out["conditions"] if c["type"] == "ScalingLimited"][0]
    assert (limited["status"], limited["reason"]) == ("True", "ScaleUpLimit")


def test_hpa_recommendations_stabilize_scale_down() -> None:
    case = cpu_case(["100m", "100m", "100m"], 50, recommendations=[{"ageSeconds": 60, "replicas": 3}])
    out = simulate(case)
    assert out["desiredReplicas"] == 3
    assert out["conditions"][0]["reason"] == "ScaleDownStabilized"
    case["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": 30}}
    assert simulate(case)["desiredReplicas"] == 1


def test_hpa_unready_and_failed_pods_from_json() -> None:
    case = cpu_case(["300m", "500m", "700m"], 30)
    case["pods"][0]["ready"] = False
    assert simulate(case)["desiredReplicas"] == 4
    case["pods"][0]["phase"] = "Failed"
    case["currentReplicas"] = 2
    assert simulate(case)["desiredReplicas"] == 4


def test_hpa_missing_request_condition() -> None:
    case = cpu_case(["300m", "500m"], 30)
    del case["pods"][1]["requests"]
    out = simulate(case)
    assert out["desiredReplicas"] == 2
    active = [c for c in out["conditions"] if c["type"] == "ScalingActive"][0]
    assert (active["status"], active["reason"]) == ("False", "FailedGetResourceMetric")


def test_hpa_defaults_to_cpu_80_percent() -> None:
    case = cpu_case(["1600m", "1600m"], 30)
    del case["metrics"]
    assert simulate(case)["desiredReplicas"] == 4


def test_kpa_published_cases() -> None:
    assert kpa([{"atSeconds": 0, "readyPods": 1, "stableValue": 50, "panicValue": 10}])[0]["desiredPods"] == 5
    assert (
        kpa([{"atSeconds": 0, "readyPods": 1, "stableValue": 100, "panicValue": 10}])[0]["desiredPods"] == 10
    )
    assert (
        kpa([{"atSeconds": 0, "readyPods": 1, "stableValue": 1000, "panicValue": 1001}])[0]["desiredPods"]
        == 10
    )
    assert (
        kpa([{"atSeconds": 0, "readyPods": 10, "stableValue": 1000, "panicValue": 1001}])[0]["desiredPods"]
        == 100
    )
    assert (
        kpa([{"atSeconds": 0, "readyPods": 100, "stableValue": 1, "panicValue": 1}])[0]["desiredPods"] == 10
    )


def test_kpa_state_carries_across_steps() -> None:
    steps = kpa(
        [
            {"atSeconds": 0, "readyPods": 1, "stableValue": 10, "panicValue": 40},
            {"atSeconds": 2, "readyPods": 4, "stableValue": 10, "panicValue": 10},
            {"atSeconds": 63, "readyPods": 4, "stableValue": 10, "panicValue": 10},
        ]
    )
    assert [s["panic"] for s in steps] == [True, True, False]
    assert [s["desiredPods"] for s in steps] == [4, 4, 1]
    assert set(steps[0]) == {"atSeconds", "desiredPods", "panic", "excessBurstCapacity"}


def test_kpa_raw_samples_are_windowed() -> None:
    out = simulate(
        {
            "policy": "kpa",
            "config": KPA,
            "samples": [{"atSeconds": t, "value": 30} for t in range(0, 60, 2)],
            "steps": [{"atSeconds": 30, "readyPods": 3}, {"atSeconds": 200, "readyPods": 3}],
        }
    )["steps"]
    assert out[0]["desiredPods"] == 3
    assert out[1]["desiredPods"] is None and out[1]["valid"] is False


def test_kpa_burst_capacity_in_output() -> None:
    step = kpa(
        [{"atSeconds": 0, "readyPods": 3, "stableValue": 20, "panicValue": 10.5}], targetBurstCapacity=20
    )
    assert step[0]["excessBurstCapacity"] == 9
    step = kpa(
        [{"atSeconds": 0, "readyPods": 3, "stableValue": 20, "panicValue": 10.5}], targetBurstCapacity=-1
    )
    assert step[0]["excessBurstCapacity"] == -1


def test_vpa_case() -> None:
    out = simulate(
        {
            "policy": "vpa",
            "containers": [
                {
                    "name": "c",
                    "cpuSamples": [{"ageSeconds": 600 * i, "cores": 1.0} for i in range(10)],
                    "memoryPeaks": [{"ageSeconds": 600, "bytes": 1000000000}],
                }
            ],
            "config": {"safetyMarginFraction": 0.1},
        }
    )
    rec = out["containers"]["c"]
    assert set(rec) == {"target", "lowerBound", "upperBound"}
    # every sample is 1.0 core / 1 GB: the estimate is exactly that (never above what was seen) plus 10 %
    assert rec["target"]["cpu"] == pytest.approx(1.1, abs=0.001)
    assert rec["target"]["memory"] == pytest.approx(1.1e9, rel=1e-6)
    assert rec["lowerBound"]["cpu"] <= rec["target"]["cpu"] <= rec["upperBound"]["cpu"]
    assert isinstance(rec["target"]["memory"], int)


def test_vpa_min_resources_from_config_quantities() -> None:
    out = simulate(
        {
            "policy": "vpa",
            "containers": [{"name": "a", "cpuSamples": [{"ageSeconds": 0, "cores": 0.001}]}, {"name": "b"}],
            "config": {"podMinCpu": "100m", "podMinMemory": "512Mi"},
        }
    )
    assert out["containers"]["a"]["target"] == {"cpu": 0.05, "memory": 256 * 2**20}


def test_malformed_cases_name_each_field() -> None:
    assert problems({"policy": "lpa"}) == {"policy"}
    assert problems({}) == {"policy"}
    assert problems({"policy": "hpa", "maxReplicas": "ten"}) >= {"currentReplicas", "maxReplicas"}
    bad_pod = cpu_case(["300m"], 30)
    bad_pod["pods"][0]["usage"]["cpu"] = "lots"
    bad_pod["pods"][0]["phase"] = "Sleeping"
    assert problems(bad_pod) == {"pods[0].usage.cpu", "pods[0].phase"}
    bad_metric = cpu_case(["300m"], 30)
    bad_metric["metrics"][0]["resource"]["target"] = {"type": "Utilization"}
    bad_metric["metrics"].append({"type": "Cosmic"})
    assert problems(bad_metric) == {"metrics[0].resource.target.averageUtilization", "metrics[1].type"}
    assert problems({"policy": "hpa", "currentReplicas": 1, "maxReplicas": 2, "pods": "p0"}) == {"pods"}
    assert problems({"policy": "hpa", "currentReplicas": 1, "minReplicas": 3, "maxReplicas": 2}) == {
        "maxReplicas"
    }


def test_malformed_kpa_and_vpa_cases() -> None:
    assert problems({"policy": "kpa", "steps": [{"atSeconds": 0, "readyPods": 1, "stableValue": 1}]}) == {
        "config"
    }
    assert problems({"policy": "kpa", "config": {"target": 0, "speed": 1}, "steps": [{"readyPods": -1}]}) >= {
        "config.target",
        "config.speed",
        "steps[0].atSeconds",
        "steps[0].readyPods",
        "steps[0].stableValue",
    }
    assert problems(
        {"policy": "vpa", "containers": [{"cpuSamples": [{"ageSeconds": -1, "cores": "x"}]}]}
    ) == {
        "containers[0].name",
        "containers[0].cpuSamples[0].ageSeconds",
        "containers[0].cpuSamples[0].cores",
    }
    assert problems({"policy": "vpa", "containers": [{"name": "a"}, {"name": "a"}]}) == {"containers[1].name"}
    assert problems([1, 2]) == set()


def test_public_names_are_reexported() -> None:
    for name in autoscaling.__all__:
        assert hasattr(autoscaling, name), name
