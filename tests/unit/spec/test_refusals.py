"""Every refusal names the field and the fix, and never leaks a pydantic or YAML error."""

from __future__ import annotations

import pytest

from gs_engine.errors import SpecInvalid
from gs_engine.spec import load_service, service_from_dict
from tests.unit.spec.conftest import minimal, paths, refused


def test_unknown_field_is_refused_with_the_nearest_name() -> None:
    problems = refused(minimal("  replica: 2\n"))
    assert paths(problems) == ["service.replica"]
    assert "replicas" in problems[0].fix


def test_unknown_field_deep_inside_is_refused_at_its_path() -> None:
    problems = refused(
        minimal(container="    - command: [x]\n      ports: [{containerPort: 80, protocl: TCP}]\n")
    )
    assert paths(problems) == ["service.containers[0].ports[0].protocl"]
    assert "protocol" in problems[0].fix


@pytest.mark.parametrize(
    ("name", "reason"),
    [("Face-Detect", "capital"), ("face_detect", "'_'"), ("-face", "'-'"), ("a" * 64, "64 characters")],
)
def test_bad_service_names_are_refused(name: str, reason: str) -> None:
    problems = refused(f"service:\n  name: '{name}'\n  containers: [{{command: [x]}}]\n")
    assert paths(problems) == ["service.name"]
    assert reason in problems[0].message
    assert "lowercase letters, digits and '-'" in problems[0].fix


def test_capitals_fix_suggests_the_lowercase_name() -> None:
    (problem,) = refused("service:\n  name: Face-Detect\n  containers: [{command: [x]}]\n")
    assert "'face-detect'" in problem.fix


def test_bad_namespace_and_container_name_are_refused() -> None:
    problems = refused(
        "service:\n  name: ok\n  namespace: My_NS\n  containers: [{name: Web, command: [x]}]\n"
    )
    assert paths(problems) == ["service.namespace", "service.containers[0].name"]


def test_missing_containers_is_refused() -> None:
    problems = refused("service:\n  name: svc\n")
    assert paths(problems) == ["service.containers"]
    assert "add containers" in problems[0].fix


def test_empty_containers_is_refused() -> None:
    assert paths(refused("service:\n  name: svc\n  containers: []\n")) == ["service.containers"]


def test_container_without_command_or_image_is_refused() -> None:
    problems = refused(minimal(container="    - args: [--fast]\n"))
    assert paths(problems) == ["service.containers[0]"]
    assert "image" in problems[0].message and "command" in problems[0].message


def test_command_as_one_string_is_refused() -> None:
    problems = refused(minimal(container="    - command: python app.py\n"))
    assert paths(problems) == ["service.containers[0].command"]
    assert "[python, app.py]" in problems[0].fix


@pytest.mark.parametrize(
    ("resources", "path"),
    [
        ("{limits: {cpu: lots}}", "service.containers[0].resources.limits.cpu"),
        ("{requests: {memory: 12XB}}", "service.containers[0].resources.requests.memory"),
        ("{limits: {memory: 500m}}", "service.containers[0].resources.limits.memory"),
        ("{requests: {cpu: -1}}", "service.containers[0].resources.requests.cpu"),
    ],
)
def test_bad_quantities_are_refused(resources: str, path: str) -> None:
    problems = refused(minimal(container=f"    - command: [x]\n      resources: {resources}\n"))
    assert paths(problems) == [path]
    assert problems[0].fix


def test_requests_above_limits_are_refused_for_each_resource() -> None:
    problems = refused(
        minimal(
            container="    - command: [x]\n"
            "      resources:\n"
            "        requests: {cpu: '2', memory: 2Gi}\n"
            "        limits: {cpu: 500m, memory: 1Gi}\n"
        )
    )
    assert paths(problems) == [
        "service.containers[0].resources.limits.cpu",
        "service.containers[0].resources.limits.memory",
    ]
    assert "at least 2" in problems[0].fix and "at least 2Gi" in problems[1].fix


def test_probe_with_two_kinds_is_refused() -> None:
    problems = refused(minimal("  readinessProbe: {httpGet: {path: /healthz}, tcpSocket: {port: 80}}\n"))
    assert paths(problems) == ["service.readinessProbe"]
    assert "httpGet and tcpSocket" in problems[0].message


def test_probe_with_no_kind_is_refused() -> None:
    assert paths(refused(minimal("  readinessProbe: {periodSeconds: 2}\n"))) == ["service.readinessProbe"]


def test_bad_cron_and_timezone_are_refused() -> None:
    problems = refused(
        minimal(
            "  prewarm:\n"
            "    schedule:\n"
            "      - {cron: '0 8 * *', minReplicas: 2}\n"
            "      - {cron: '61 8 * * *', minReplicas: 2}\n"
            "      - {cron: '0 8 * * 1-5', timezone: Mars/Olympus, minReplicas: 2}\n"
        )
    )
    assert paths(problems) == [
        "service.prewarm.schedule[0].cron",
        "service.prewarm.schedule[1].cron",
        "service.prewarm.schedule[2].timezone",
    ]
    assert "4 fields" in problems[0].message
    assert "minute" in problems[1].message and "0-59" in problems[1].message


def test_min_above_max_replicas_is_refused() -> None:
    problems = refused(minimal("  autoscaling: {policy: kpa, minReplicas: 5, maxReplicas: 2}\n"))
    assert paths(problems) == ["service.autoscaling.maxReplicas"]
    assert "at least 5" in problems[0].fix


def test_hpa_cannot_scale_to_zero() -> None:
    problems = refused(minimal("  autoscaling: {policy: hpa, minReplicas: 0, maxReplicas: 3}\n"))
    assert paths(problems) == ["service.autoscaling.minReplicas"]
    assert "kpa" in problems[0].fix


def test_malformed_yaml_names_line_and_column() -> None:
    problems = refused("service:\n  name: svc\n  containers:\n    - command: [x\n  replicas: 2\n")
    assert len(problems) == 1
    assert "line " in problems[0].message and "column " in problems[0].message


def test_malformed_yaml_line_number_is_the_right_one() -> None:
    (problem,) = refused("service:\n  name: a\n   b: c\n")
    assert "line 3" in problem.message


def test_duplicate_keys_are_refused_not_silently_overwritten() -> None:
    (problem,) = refused("service:\n  name: a\n  name: b\n  containers: [{command: [x]}]\n")
    assert "twice" in problem.message and "line 3" in problem.message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n", ""])
def test_non_mapping_documents_are_refused(text: str) -> None:
    (problem,) = refused(text)
    assert "service" in problem.fix


def test_several_documents_are_refused() -> None:
    one = "service:\n  name: a\n  containers: [{command: [x]}]\n"
    (problem,) = refused(one + "---\n" + one)
    assert "2 YAML documents" in problem.message


def test_mapping_without_service_key_is_refused() -> None:
    (problem,) = refused("name: a\n")
    assert "service" in problem.message


def test_unknown_top_level_key_beside_service_is_refused() -> None:
    problems = refused("service:\n  name: a\n  containers: [{command: [x]}]\nextra: 1\n")
    assert paths(problems) == ["extra"]


def test_several_problems_are_all_reported_at_once() -> None:
    problems = refused(
        """
service:
  name: Bad_Name
  type: Headless
  replicas: -1
  ports: [70000]
  labels: {"bad key!": x}
  containers:
    - ports: [{containerPort: 80, protocol: QUIC}]
      resources: {limits: {cpu: abc}}
  route: {pathPrefix: nope}
"""
    )
    assert set(paths(problems)) >= {
        "service.name",
        "service.type",
        "service.replicas",
        "service.ports[0]",
        'service.labels["bad key!"]',
        "service.containers[0].ports[0].protocol",
        "service.containers[0].resources.limits.cpu",
        "service.route.pathPrefix",
    }
    assert all(p.fix for p in problems), [p for p in problems if not p.fix]


def test_wrong_types_get_a_fix() -> None:
    problems = refused(minimal("  replicas: two\n  ports: 8080\n"))
    by_path = {p.path: p for p in problems}
    assert "whole number" in by_path["service.replicas"].message
    assert "list" in by_path["service.ports"].fix


def test_booleans_are_not_numbers() -> None:
    assert paths(refused(minimal("  replicas: true\n"))) == ["service.replicas"]


def test_runtime_must_fit_the_containers() -> None:
    problems = refused(minimal("  runtime: podman\n"))
    assert paths(problems) == ["service.containers[0].image"]
    problems = refused(minimal("  runtime: process\n", container="    - image: nginx\n"))
    assert paths(problems) == ["service.containers[0].command"]


def test_duplicate_container_names_are_refused() -> None:
    problems = refused(
        "service:\n  name: web\n  containers:\n    - {name: web1, image: a}\n    - {image: b}\n"
    )
    assert paths(problems) == ["service.containers[1].name"]


def test_bad_label_values_are_refused() -> None:
    problems = refused(minimal("  labels: {app: 'has space', tier: '" + "x" * 64 + "'}\n"))
    assert paths(problems) == ['service.labels["app"]', 'service.labels["tier"]']


def test_service_from_dict_refuses_a_list() -> None:
    with pytest.raises(SpecInvalid):
        service_from_dict([{"name": "a"}])  # type: ignore[arg-type]


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(SpecInvalid):
        load_service(b"\xff\xfe service")


def test_refusal_is_one_readable_error() -> None:
    with pytest.raises(SpecInvalid) as caught:
        load_service(minimal("  replicas: -1\n"))
    doc = caught.value.as_problem()
    assert doc["status"] == 422
    assert doc["problems"] == [p.as_dict() for p in caught.value.problems]
    assert "service.replicas" in str(caught.value)


def test_alias_expansion_bomb_is_refused() -> None:
    from gs_engine.errors import SpecInvalid
    from gs_engine.spec import load_service

    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 12):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    bomb = "\n".join(lines) + "\nservice: {name: x, containers: [{command: [python]}], labels: *a11}\n"
    with pytest.raises(SpecInvalid) as refused:
        load_service(bomb)
    assert "aliases" in str(refused.value)


def test_a_few_aliases_are_fine() -> None:
    from gs_engine.spec import load_service

    ok = "service:\n  name: x\n  labels: &l {app: x}\n  containers: [{command: [python]}]\n"
    assert load_service(ok).labels == {"app": "x"}
