"""Documents in the original GS-Engine's shape parse unchanged, with its defaults."""

from __future__ import annotations

import json

from gs_engine.spec import load_service, service_from_dict
from tests.unit.spec.conftest import UPSTREAM_EXAMPLE


def test_upstream_example_parses_with_its_values() -> None:
    spec = load_service(UPSTREAM_EXAMPLE)
    assert (spec.name, spec.namespace, spec.type, spec.ports, spec.replicas) == (
        "face-detect",
        "edge",
        "ClusterIP",
        [8500],
        1,
    )
    (container,) = spec.containers
    assert container.image == "registry.example.org/vision/face:2.1"
    assert container.name == "face-detect"
    port = container.ports[0]
    assert (port.container_port, port.protocol, port.external_port) == (8500, "TCP", 8500)
    assert container.resources.requests.cpu == "250m"
    assert container.requests_cpu_cores == 0.25
    assert container.requests_memory_bytes == 512 * 2**20
    assert container.limits_cpu_cores == 1.0
    assert container.limits_memory_bytes == 2**30
    assert container.gpus == 1
    assert container.topology_aware is False
    assert spec.runtime is None and spec.route is None and spec.autoscaling is None


def test_upstream_defaults_fill_what_is_omitted() -> None:
    spec = load_service(
        """
service:
  name: minimal
  namespace: edge
  containers:
    - image: nginx:1.25
    - image: redis:7
    - image: busybox
      command: [sh, -c, "sleep 1000"]
      args: ["--port", 8080, true]
      env:
        - {name: MODE, value: fast}
        - {name: WORKERS, value: 4}
"""
    )
    assert spec.replicas == 1 and spec.type == "ClusterIP" and spec.ports == []
    assert [c.name for c in spec.containers] == ["minimal", "minimal1", "minimal2"]
    for container in spec.containers:
        assert container.resources.requests.cpu == "200m"
        assert container.resources.requests.memory == "500Mi"
        assert container.resources.limits.cpu == "500m"
        assert container.resources.limits.memory == "1Gi"
    assert spec.containers[2].args == ["--port", "8080", "true"]
    assert spec.containers[2].env_dict() == {"MODE": "fast", "WORKERS": "4"}


def test_namespace_defaults_and_labels_schedule_hint_monitor_ports_are_kept() -> None:
    spec = load_service(
        """
service:
  name: tagger
  monitorPorts: [9100]
  labels: {app: tagger, example.org/tier: gpu, version: 2}
  scheduleHint: {zone: seoul-1, nodes: [a, b]}
  containers:
    - image: tagger:1
      resources:
        acceleration: {topologyAware: true, compute: {gpu: 2}}
"""
    )
    assert spec.namespace == "default"
    assert spec.monitor_ports == [9100]
    assert spec.labels == {"app": "tagger", "example.org/tier": "gpu", "version": "2"}
    assert spec.schedule_hint == {"zone": "seoul-1", "nodes": ["a", "b"]}
    assert spec.containers[0].topology_aware and spec.containers[0].gpus == 2


def test_json_input_is_accepted() -> None:
    document = {
        "service": {
            "name": "face-detect",
            "namespace": "edge",
            "ports": [8500],
            "containers": [{"image": "face:2", "resources": {"limits": {"cpu": 2, "memory": "2Gi"}}}],
        }
    }
    spec = load_service(json.dumps(document))
    assert spec.containers[0].limits_cpu_cores == 2.0
    assert spec.containers[0].resources.limits.cpu == "2"
    assert load_service(json.dumps(document).encode()) == spec
    assert service_from_dict(document) == spec


def test_bare_mapping_without_service_key_is_accepted() -> None:
    spec = service_from_dict({"name": "bare", "containers": [{"command": ["python", "app.py"]}]})
    assert spec.name == "bare" and spec.containers[0].command == ["python", "app.py"]


def test_snake_case_names_are_accepted_too() -> None:
    spec = service_from_dict(
        {"name": "s", "monitor_ports": [9000], "containers": [{"command": ["x"], "working_dir": "/srv"}]}
    )
    assert spec.monitor_ports == [9000] and spec.containers[0].working_dir == "/srv"


def test_env_as_mapping_is_accepted() -> None:
    spec = service_from_dict({"name": "s", "containers": [{"command": ["x"], "env": {"A": "1", "B": 2}}]})
    assert spec.containers[0].env_dict() == {"A": "1", "B": "2"}


def test_one_sided_resources_never_contradict_the_given_side() -> None:
    spec = service_from_dict(
        {
            "name": "s",
            "containers": [
                {"command": ["x"], "resources": {"limits": {"cpu": "100m", "memory": "128Mi"}}},
                {"command": ["x"], "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}},
            ],
        }
    )
    small, big = spec.containers
    assert small.requests_cpu_cores == 0.1 and small.requests_memory_bytes == 128 * 2**20
    assert big.limits_cpu_cores == 2.0 and big.limits_memory_bytes == 4 * 2**30


def test_container_level_readiness_probe_as_in_kubernetes() -> None:
    spec = service_from_dict(
        {
            "name": "s",
            "containers": [{"command": ["x"], "readinessProbe": {"httpGet": {"path": "/healthz"}}}],
        }
    )
    probe = spec.effective_readiness_probe()
    assert probe is not None and probe.kind == "httpGet"
    assert probe.port_or(8123) == 8123
