"""The replica calculator alone: published Kubernetes replica_calculator cases and the rules behind them."""

from __future__ import annotations

from gs_engine.autoscaling.replicas import (
    CalculatorSettings,
    PodState,
    average_value_replicas,
    group_pods,
    to_milli,
    utilization_replicas,
)

NOW = 1000.0


def cpu_pods(
    usages: list[float | None],
    requests: list[float | None] | None = None,
    ready: list[bool] | None = None,
    phases: list[str] | None = None,
) -> list[PodState]:
    pods = []
    for i, usage in enumerate(usages):
        request = 1.0 if requests is None else requests[i]
        pods.append(
            PodState(
                name=f"p{i}",
                phase=(phases[i] if phases else "Running"),
                ready=True if ready is None else ready[i],
                requests={} if request is None else {"cpu": request},
                usage={} if usage is None else {"cpu": usage},
            )
        )
    return pods


def util(pods: list[PodState], target: int, current: int | None = None) -> int | None:
    return utilization_replicas(pods, "cpu", target, len(pods) if current is None else current, NOW).replicas


def test_scale_up() -> None:
    assert util(cpu_pods([0.3, 0.5, 0.7]), 30) == 5


def test_scale_down() -> None:
    assert util(cpu_pods([0.1, 0.3, 0.5, 0.25, 0.25]), 50) == 3


def test_within_tolerance_keeps_current() -> None:
    pods = cpu_pods([1.01, 1.03, 1.02], requests=[0.9, 1.0, 1.1])
    assert util(pods, 100) == 3


def test_tolerance_is_configurable() -> None:
    pods = cpu_pods([1.01, 1.03, 1.02], requests=[0.9, 1.0, 1.1])
    proposal = utilization_replicas(pods, "cpu", 100, 3, NOW, CalculatorSettings(tolerance=0.01))
    assert proposal.replicas == 4  # 102 % of target: ceil(1.02 * 3)


def test_unready_pod_counts_as_zero_on_scale_up() -> None:
    # ready pods at 60 % (ratio 2); counting the unready pod as 0 % gives 40 % → 4
    pods = cpu_pods([0.3, 0.5, 0.7], ready=[False, True, True])
    assert util(pods, 30) == 4


def test_unready_rebalance_that_flips_direction_keeps_current() -> None:
    pods = cpu_pods([0.4, 0.5, 0.7], ready=[True, False, False])
    assert util(pods, 30) == 3


def test_pending_pod_is_treated_as_unready() -> None:
    pods = cpu_pods([0.3, 0.5, 0.7], phases=["Pending", "Running", "Running"])
    assert util(pods, 30) == 4


def test_failed_and_deleted_pods_are_ignored() -> None:
    pods = cpu_pods([0.5, 0.7, 0.1, 0.1], phases=["Running", "Running", "Failed", "Running"])
    pods[3] = PodState("p3", deleted=True, requests={"cpu": 1.0}, usage={"cpu": 0.1})
    assert util(pods, 30, current=2) == 4


def test_unready_pods_ignored_on_scale_down() -> None:
    pods = cpu_pods([0.1, 0.3, 0.5, 0.25, 0.25], ready=[True, True, True, False, False])
    assert util(pods, 50) == 2


def test_missing_metrics_assumed_at_request_on_scale_down() -> None:
    # 2 of 4 pods report; scale-down, so the other two count as 100 % of their request
    pods = cpu_pods([0.4, 0.095, None, None])
    assert util(pods, 100) == 3


def test_missing_metrics_no_change_when_exactly_on_target() -> None:
    assert util(cpu_pods([1.0, None]), 100) == 2


def test_missing_metrics_scale_up_assumes_zero_and_may_land_in_tolerance() -> None:
    assert util(cpu_pods([1.9, None]), 100) == 2


def test_missing_metrics_scale_down_damped() -> None:
    assert util(cpu_pods([0.6, None]), 100) == 2


def test_missing_and_unready_flip_keeps_current() -> None:
    pods = cpu_pods([0.1, 0.45, None], ready=[False, True, True])
    assert util(pods, 50) == 3


def test_missing_and_unready_scale_up() -> None:
    pods = cpu_pods([0.1, 2.0, None], ready=[False, True, True])
    assert util(pods, 50) == 4


def test_missing_and_unready_scale_down() -> None:
    pods = cpu_pods([0.1, 0.1, 0.1, None], ready=[False, True, True, True])
    assert util(pods, 50) == 3


def test_missing_on_scale_down_uses_target_when_target_above_100_percent() -> None:
    # target 200 %: a missing pod is assumed at the target (ratio 1), not at its request
    pods = cpu_pods([0.5, None])
    assert util(pods, 200) == 2
    # at 100 % of the request instead it would be ceil((0.5+1)/4 * 2) = 1


def test_missing_request_makes_the_metric_invalid() -> None:
    proposal = utilization_replicas(cpu_pods([0.3, 0.5], requests=[1.0, None]), "cpu", 50, 2, NOW)
    assert proposal.replicas is None
    assert "missing request for cpu in pod p1" in proposal.error


def test_no_metrics_at_all_is_invalid() -> None:
    proposal = utilization_replicas(cpu_pods([None, None]), "cpu", 50, 2, NOW)
    assert proposal.replicas is None
    assert "did not receive metrics" in proposal.error


def test_cpu_unready_only_within_initialization_period_or_never_ready() -> None:
    settings = CalculatorSettings()
    young = PodState("young", ready=False, started_at=NOW - 60, usage={"cpu": 1})
    was_ready = PodState(
        "was-ready", ready=False, started_at=NOW - 900, ready_changed_at=NOW - 100, usage={"cpu": 1}
    )
    never_ready = PodState(
        "never-ready", ready=False, started_at=NOW - 900, ready_changed_at=NOW - 895, usage={"cpu": 1}
    )
    pods = [young, was_ready, never_ready]
    samples = {p.name: 1000 for p in pods}
    groups = group_pods(pods, samples, "cpu", NOW, settings)
    assert groups.unready == {"young", "never-ready"}
    assert groups.ready_count == 1
    # for memory (and Pods metrics) readiness does not matter, only Pending does
    assert group_pods(pods, samples, "memory", NOW, settings).ready_count == 3


def test_pods_metric_average_value() -> None:
    pods = [PodState(f"p{i}", usage={"qps": v}) for i, v in enumerate([20.0, 10.0, 30.0])]
    assert average_value_replicas(pods, "qps", to_milli(15), 3, NOW).replicas == 4


def test_pods_metric_scale_down() -> None:
    pods = [PodState(f"p{i}", usage={"qps": 12.0}) for i in range(5)]
    assert average_value_replicas(pods, "qps", to_milli(20), 5, NOW).replicas == 3


def test_pods_metric_missing_on_scale_down_assumes_target() -> None:
    pods = [PodState("p0", usage={"qps": 5.0}), PodState("p1"), PodState("p2")]
    # (5 + 20 + 20) / 3 / 20 = 0.75 → ceil(2.25) = 3 → no change
    assert average_value_replicas(pods, "qps", to_milli(20), 3, NOW).replicas == 3
    pods = [PodState("p0", usage={"qps": 1.0}), PodState("p1", usage={"qps": 1.0}), PodState("p2")]
    # (1 + 1 + 20) / 3 / 20 = 0.3667 → ceil(1.1) = 2
    assert average_value_replicas(pods, "qps", to_milli(20), 3, NOW).replicas == 2


def test_memory_average_value_ignores_readiness() -> None:
    gib = 2**30
    pods = [
        PodState("p0", ready=False, usage={"memory": 2 * gib}),
        PodState("p1", usage={"memory": 2 * gib}),
    ]
    proposal = average_value_replicas(pods, "memory", to_milli(gib), 2, NOW, resource="memory")
    assert proposal.replicas == 4
