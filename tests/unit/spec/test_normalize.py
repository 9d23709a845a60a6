"""to_document round trips, template revisions, and name validation against a regex oracle."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gs_engine.errors import InvalidInput, SpecInvalid
from gs_engine.spec import ServiceSpec, load_service, service_from_dict, template_revision, validate_dns_label
from tests.unit.spec.conftest import UPSTREAM_EXAMPLE

FULL = """
service:
  name: face-detect
  namespace: edge
  type: NodePort
  ports: [8500]
  monitorPorts: [9100]
  scheduleHint: {zone: seoul-1, since: 2024-01-01}
  replicas: 2
  labels: {app: face, example.org/tier: gpu}
  runtime: podman
  containers:
    - image: registry.example.org/vision/face:2.1
      env: [{name: MODEL, value: /models/face.onnx}]
      ports: [{containerPort: 8500}]
      resources:
        limits: {cpu: "2", memory: 2Gi}
        acceleration: {topologyAware: true, compute: {gpu: 1}}
    - image: registry.example.org/vision/sidecar:1
  readinessProbe: {httpGet: {path: /healthz}, periodSeconds: 0.5}
  route: {host: face.edge.example.org, timeoutSeconds: 3}
  autoscaling:
    policy: hpa
    maxReplicas: 6
    metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}]
  prewarm:
    minWarm: 1
    schedule: [{cron: "0 8 * * 1-5", timezone: Asia/Seoul, minReplicas: 4}]
    predictive: {horizonSeconds: 120}
    zygote: true
"""


@pytest.mark.parametrize("text", [UPSTREAM_EXAMPLE, FULL, "service: {name: a, containers: [{command: [x]}]}"])
def test_to_document_round_trips(text: str) -> None:
    spec = load_service(text)
    document = spec.to_document()
    assert list(document) == ["service"]
    encoded = json.dumps(document)  # JSON-serialisable
    again = load_service(encoded)
    assert again == spec
    assert again.to_document() == document
    assert template_revision(again) == template_revision(spec)


def test_to_document_fills_defaults_in_camel_case() -> None:
    body = load_service(UPSTREAM_EXAMPLE.replace("  replicas: 1\n", "")).to_document()["service"]
    assert body["replicas"] == 1 and body["monitorPorts"] == []
    container = body["containers"][0]
    assert container["name"] == "face-detect"
    assert container["ports"][0] == {"containerPort": 8500, "protocol": "TCP", "externalPort": 8500}
    assert container["resources"]["acceleration"] == {"topologyAware": False, "compute": {"gpu": 1}}


def test_free_form_schedule_hint_becomes_json_plain() -> None:
    spec = load_service(FULL)
    assert spec.schedule_hint == {"zone": "seoul-1", "since": "2024-01-01"}


def test_revision_ignores_replicas_scaling_prewarm_and_route() -> None:
    base = load_service(FULL)
    revision = template_revision(base)
    assert re.fullmatch(r"[0-9a-f]{12}", revision)
    body = base.to_document()["service"]
    for change in (
        {"replicas": 7},
        {"autoscaling": {"policy": "kpa", "minReplicas": 0, "maxReplicas": 3}},
        {"prewarm": {"minWarm": 3}},
        {"route": {"pathPrefix": "/other"}},
        {"ports": [9000]},
    ):
        assert template_revision(service_from_dict({"service": {**body, **change}})) == revision, change


def test_revision_changes_with_what_defines_a_replica() -> None:
    base = load_service(FULL)
    body = base.to_document()["service"]
    image = json.loads(json.dumps(body))
    image["containers"][0]["image"] = "registry.example.org/vision/face:2.2"
    probe = {**body, "readinessProbe": {"tcpSocket": {}}}
    labels = {**body, "labels": {"app": "face", "track": "canary"}}
    runtime = {**body, "runtime": "kubernetes"}
    revisions = {
        template_revision(service_from_dict({"service": b})) for b in (image, probe, labels, runtime)
    }
    assert template_revision(base) not in revisions
    assert len(revisions) == 4


def test_spec_is_immutable() -> None:
    spec = load_service(UPSTREAM_EXAMPLE)
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its own ValidationError for frozen models
        spec.replicas = 3  # type: ignore[misc]


def test_model_dump_by_alias_parses_back() -> None:
    spec = load_service(FULL)
    assert ServiceSpec.model_validate(spec.model_dump(by_alias=True)) == spec


DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
NAMEISH = st.text(alphabet="abcxyz019-_A.Z ", min_size=0, max_size=70)


@settings(max_examples=300, deadline=None)
@given(NAMEISH | st.from_regex(DNS_LABEL, fullmatch=True))
def test_names_agree_with_the_dns_label_oracle(name: str) -> None:
    expected = len(name) <= 63 and DNS_LABEL.fullmatch(name) is not None
    try:
        validate_dns_label(name, "name")
        accepted = True
    except InvalidInput as error:
        accepted = False
        assert error.field == "name" and error.fix
    assert accepted == expected
    try:
        service_from_dict({"name": name, "containers": [{"command": ["x"]}]})
        parsed = True
    except SpecInvalid as error:
        parsed = False
        assert [p.path for p in error.problems] == ["name"]
    assert parsed == expected


def test_validate_dns_label_names_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_dns_label("Bad_Name", "namespace")
    assert caught.value.field == "namespace"
    assert caught.value.problems[0].path == "namespace"
    assert "'bad-name'" in caught.value.fix


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        "name",
        "namespace",
        "type",
        "ports",
        "replicas",
        "labels",
        "runtime",
        "containers",
        "readinessProbe",
        "route",
        "autoscaling",
        "prewarm",
        "scheduleHint",
        "monitorPorts",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(FIELDS, JSONISH, max_size=6), JSONISH)
def test_nothing_but_spec_invalid_escapes(body: dict[str, object], container: object) -> None:
    body = {"name": "svc", "containers": [container], **body}
    try:
        spec = service_from_dict({"service": body})
    except SpecInvalid as error:
        assert error.problems and all(isinstance(p.path, str) and p.message for p in error.problems)
    else:
        assert load_service(json.dumps(spec.to_document())) == spec


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="service:name- []{}\n\t'\"&*!|>%@`,?#0", max_size=60))
def test_arbitrary_text_is_parsed_or_refused(text: str) -> None:
    try:
        load_service(text)
    except SpecInvalid as error:
        assert error.problems
