"""Probe, route, autoscaling and pre-warm sections: defaults, accepted shapes and refusals."""

from __future__ import annotations

from datetime import datetime

import pytest

from gs_engine.spec import load_service, parse_cron
from gs_engine.spec.cron import CronError
from tests.unit.spec.conftest import minimal, paths, refused


def test_probe_defaults_follow_kubernetes() -> None:
    spec = load_service(minimal("  readinessProbe: {tcpSocket: {}}\n"))
    probe = spec.readiness_probe
    assert probe is not None and probe.kind == "tcpSocket"
    assert (probe.period_seconds, probe.timeout_seconds) == (1.0, 1.0)
    assert (probe.success_threshold, probe.failure_threshold) == (1, 3)
    assert probe.port_or(9000) == 9000


def test_probe_exec_and_explicit_port() -> None:
    spec = load_service(minimal("  readinessProbe: {exec: {command: [cat, /tmp/ready]}}\n"))
    assert spec.readiness_probe is not None and spec.readiness_probe.kind == "exec"
    spec = load_service(minimal("  readinessProbe: {httpGet: {path: /healthz, port: 8081}}\n"))
    assert spec.readiness_probe is not None and spec.readiness_probe.port_or(9000) == 8081


def test_route_prefix_defaults_to_namespace_and_name() -> None:
    spec = load_service(minimal("  namespace: edge\n"))
    assert spec.route_prefix() == "/edge/svc"
    spec = load_service(minimal("  route: {host: face.example.org}\n"))
    assert spec.route_prefix() == "/default/svc"
    assert spec.route is not None and spec.route.strip_prefix is True


def test_route_settings_are_kept() -> None:
    spec = load_service(
        minimal(
            "  route: {pathPrefix: /faces, host: '*.edge.example.org', timeoutSeconds: 2.5, retries: 2}\n"
        )
    )
    assert spec.route_prefix() == "/faces"
    assert spec.route is not None and (spec.route.timeout_seconds, spec.route.retries) == (2.5, 2)


@pytest.mark.parametrize("host", ["Face.example.org", "bad_host.org", "a..b"])
def test_bad_route_hosts_are_refused(host: str) -> None:
    assert paths(refused(minimal(f"  route: {{host: '{host}'}}\n"))) == ["service.route.host"]


def test_kpa_defaults_are_knatives() -> None:
    spec = load_service(minimal("  autoscaling: {minReplicas: 0, maxReplicas: 5}\n"))
    scaling = spec.autoscaling
    assert scaling is not None and scaling.policy == "kpa"
    assert (scaling.metric, scaling.target, scaling.target_utilization_percentage) == (
        "concurrency",
        100.0,
        70.0,
    )
    assert (scaling.stable_window_seconds, scaling.panic_window_percentage) == (60.0, 10.0)
    assert (scaling.panic_threshold_percentage, scaling.max_scale_up_rate, scaling.max_scale_down_rate) == (
        200.0,
        1000.0,
        2.0,
    )
    assert (scaling.scale_to_zero_grace_period_seconds, scaling.activation_scale) == (30.0, 1)
    assert (scaling.target_burst_capacity, scaling.container_concurrency) == (200.0, 0)


def test_hpa_gets_cpu_metric_and_kubernetes_behavior_by_default() -> None:
    spec = load_service(minimal("  autoscaling: {policy: hpa, maxReplicas: 4}\n"))
    scaling = spec.autoscaling
    assert scaling is not None and scaling.behavior is not None
    (metric,) = scaling.metrics
    assert (metric.type, metric.name, metric.target.type, metric.target.average_utilization) == (
        "Resource",
        "cpu",
        "Utilization",
        80,
    )
    assert scaling.behavior.scale_down.stabilization_window_seconds == 300
    assert scaling.behavior.scale_up.stabilization_window_seconds == 0


def test_hpa_metrics_in_kubernetes_nesting_and_flat() -> None:
    spec = load_service(
        minimal(
            "  autoscaling:\n"
            "    maxReplicas: 8\n"
            "    metrics:\n"
            "      - type: Resource\n"
            "        resource: {name: memory, target: {type: Utilization, averageUtilization: 60}}\n"
            "      - type: Pods\n"
            "        pods: {metric: {name: rps}, target: {type: AverageValue, averageValue: 500m}}\n"
            "      - {type: Pods, name: queue, target: {type: AverageValue, averageValue: 3}}\n"
            "    behavior:\n"
            "      scaleDown:\n"
            "        stabilizationWindowSeconds: 60\n"
            "        policies: [{type: Pods, value: 1, periodSeconds: 30}]\n"
        )
    )
    scaling = spec.autoscaling
    assert scaling is not None and scaling.policy == "hpa"
    assert [(m.type, m.name) for m in scaling.metrics] == [
        ("Resource", "memory"),
        ("Pods", "rps"),
        ("Pods", "queue"),
    ]
    assert scaling.metrics[1].target.average_value == 0.5
    assert scaling.behavior is not None
    assert scaling.behavior.scale_down.stabilization_window_seconds == 60
    assert [(p.type, p.value) for p in scaling.behavior.scale_down.policies] == [("Pods", 1)]
    assert scaling.behavior.scale_up.policies  # the default direction is still filled


@pytest.mark.parametrize(
    ("metric", "path"),
    [
        ("{type: Resource, name: cpu, target: {type: Utilization}}", "target.averageUtilization"),
        ("{type: Resource, name: gpu, target: {type: Utilization, averageUtilization: 50}}", "name"),
        ("{type: Pods, name: rps, target: {type: Utilization, averageUtilization: 50}}", "target.type"),
        ("{type: External, name: x, target: {type: Value, value: 1}}", "type"),
        ("{type: Resource, name: cpu, target: {type: Percent, averageUtilization: 50}}", "target.type"),
    ],
)
def test_bad_metrics_are_refused(metric: str, path: str) -> None:
    problems = refused(minimal(f"  autoscaling: {{policy: hpa, maxReplicas: 3, metrics: [{metric}]}}\n"))
    assert paths(problems) == [f"service.autoscaling.metrics[0].{path}"]


def test_kpa_refuses_hpa_only_settings() -> None:
    problems = refused(
        minimal(
            "  autoscaling: {policy: kpa, maxReplicas: 3, metrics: [{type: Resource, name: cpu, "
            "target: {type: Utilization, averageUtilization: 50}}]}\n"
        )
    )
    assert paths(problems) == ["service.autoscaling.metrics"]


def test_bad_behavior_is_refused() -> None:
    problems = refused(
        minimal(
            "  autoscaling: {policy: hpa, maxReplicas: 3, behavior: {scaleUp: {selectPolicy: Fastest}}}\n"
        )
    )
    assert paths(problems) == ["service.autoscaling.behavior.scaleUp.selectPolicy"]


def test_kpa_bounds_are_checked() -> None:
    problems = refused(minimal("  autoscaling: {maxReplicas: 3, target: 0, panicThresholdPercentage: 50}\n"))
    assert paths(problems) == ["service.autoscaling.target", "service.autoscaling.panicThresholdPercentage"]


def test_prewarm_shapes() -> None:
    spec = load_service(
        minimal(
            "  prewarm:\n"
            "    minWarm: 1\n"
            "    schedule:\n"
            "      - {cron: '30 7 * * mon-fri', timezone: Asia/Seoul, minReplicas: 3, durationMinutes: 90}\n"
            "    predictive: true\n"
            "    zygote: {preload: [numpy, sklearn.linear_model]}\n"
        )
    )
    prewarm = spec.prewarm
    assert prewarm is not None and prewarm.min_warm == 1
    window = prewarm.schedule[0]
    assert (window.min_replicas, window.duration_minutes, window.timezone) == (3, 90, "Asia/Seoul")
    assert window.schedule.matches(datetime(2024, 6, 3, 7, 30, tzinfo=window.zone))  # a Monday
    assert prewarm.predictive is not None and prewarm.predictive.horizon_seconds > 0
    assert prewarm.zygote is not None and prewarm.zygote.preload == ["numpy", "sklearn.linear_model"]


def test_prewarm_switches_off() -> None:
    spec = load_service(minimal("  prewarm: {predictive: false, zygote: false}\n"))
    assert spec.prewarm is not None and spec.prewarm.predictive is None and spec.prewarm.zygote is None


def test_bad_zygote_module_is_refused() -> None:
    assert paths(refused(minimal("  prewarm: {zygote: {preload: [numpy, 'not a module']}}\n"))) == [
        "service.prewarm.zygote.preload[1]"
    ]


def test_cron_matching() -> None:
    every_15 = parse_cron("*/15 9-17 * * 1-5")
    assert every_15.matches(datetime(2024, 6, 4, 9, 45))  # Tuesday
    assert not every_15.matches(datetime(2024, 6, 4, 9, 46))
    assert not every_15.matches(datetime(2024, 6, 8, 9, 45))  # Saturday
    sunday = parse_cron("0 0 * * 7")
    assert sunday.matches(datetime(2024, 6, 9, 0, 0))
    # Both day fields restricted: either one matches (Vixie cron).
    either = parse_cron("0 12 1 * fri")
    assert either.matches(datetime(2024, 6, 1, 12, 0)) and either.matches(datetime(2024, 6, 7, 12, 0))
    assert not either.matches(datetime(2024, 6, 8, 12, 0))
    assert parse_cron("@daily") == parse_cron("0 0 * * *")


@pytest.mark.parametrize(
    "expression",
    [
        "* * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 8",
        "*/0 * * * *",
        "5-1 * * * *",
        "x * * * *",
    ],
)
def test_cron_refusals(expression: str) -> None:
    with pytest.raises(CronError):
        parse_cron(expression)
