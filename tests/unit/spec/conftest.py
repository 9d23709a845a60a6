from __future__ import annotations

import pytest

from gs_engine.errors import Problem, SpecInvalid
from gs_engine.spec import load_service

UPSTREAM_EXAMPLE = """\
service:
  name: face-detect
  namespace: edge
  type: ClusterIP
  ports: [8500]
  replicas: 1
  containers:
    - image: registry.example.org/vision/face:2.1
      ports:
        - {containerPort: 8500, protocol: TCP, externalPort: 8500}
      resources:
        requests: {cpu: 250m, memory: 512Mi}
        limits: {cpu: "1", memory: 1Gi}
        acceleration:
          compute: {gpu: 1}
"""


def refused(text: str) -> list[Problem]:
    """The problems a document is refused with (fails the test if it is accepted)."""
    with pytest.raises(SpecInvalid) as caught:
        load_service(text)
    assert caught.value.problems, "SpecInvalid must list its problems"
    return caught.value.problems


def paths(problems: list[Problem]) -> list[str]:
    return [p.path for p in problems]


def minimal(extra: str = "", container: str = "    - command: [python, app.py]\n") -> str:
    return f"service:\n  name: svc\n{extra}  containers:\n{container}"
