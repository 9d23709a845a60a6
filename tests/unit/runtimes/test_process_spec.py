"""Pure parts of the process runtime: $(VAR) expansion, the environment a replica gets, and
which service documents it refuses."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from gs_engine.errors import InvalidInput, Unsupported
from gs_engine.runtimes.environment import (
    build_environment,
    expand_vars,
    resolve_executable,
    scrub_environment,
)
from gs_engine.runtimes.process import ProcessRuntime, exit_message


def doc(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"service": {"name": "digits", "namespace": "default", "containers": list(containers)}}


def container(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "main", "image": None, "command": ["python"], "args": [], "env": []}
    base.update(fields)
    return base


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("--port=$(PORT)", "--port=8000"),
        ("$(PORT)$(HOST)", "8000127.0.0.1"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(PORT)", "$(PORT)"),
        ("$$$(PORT)", "$8000"),
        ("cost $5", "cost $5"),
        ("$(PORT", "$(PORT"),
        ("trailing $", "trailing $"),
        ("", ""),
    ],
)
def test_expand_vars(text: str, expected: str) -> None:
    assert expand_vars(text, {"PORT": "8000", "HOST": "127.0.0.1"}) == expected


def test_scrub_removes_engine_settings_only() -> None:
    env = scrub_environment({"GSE_TOKEN": "secret", "GSE_DATABASE_URL": "x", "HOME": "/h", "LANG": "C"})
    assert env == {"HOME": "/h", "LANG": "C"}


def test_environment_layers_and_expansion() -> None:
    env = build_environment(
        {"PATH": "/usr/bin", "GSE_TOKEN": "secret", "PORT": "1", "KEEP": "yes"},
        {"PORT": "8000", "HOST": "127.0.0.1", "GSE_REPLICA_ID": "r1"},
        [
            {"name": "URL", "value": "http://$(HOST):$(PORT)/"},
            {"name": "NEXT", "value": "$(URL)v1"},
            {"name": "PORT", "value": "9999"},
            {"name": "EMPTY", "value": None},
        ],
        "/venv/bin",
    )
    assert "GSE_TOKEN" not in env
    assert env["PATH"] == os.pathsep.join(["/venv/bin", "/usr/bin"])
    assert env["PORT"] == "8000"
    assert env["URL"] == "http://127.0.0.1:8000/"
    assert env["NEXT"] == "http://127.0.0.1:8000/v1"
    assert env["EMPTY"] == ""
    assert env["KEEP"] == "yes"
    assert env["GSE_REPLICA_ID"] == "r1"


def test_sidecar_environment_has_no_port() -> None:
    env = build_environment(
        {"PORT": "1"}, {"GSE_MAIN_PORT": "8000", "HOST": "h"}, [], "/venv/bin", serves_port=False
    )
    assert "PORT" not in env
    assert env["GSE_MAIN_PORT"] == "8000"


def test_python_resolves_to_the_engine_interpreter_directory(tmp_path: Path) -> None:
    python_dir = str(Path(sys.executable).parent)
    env = build_environment({"PATH": "/usr/bin:/bin"}, {}, [], python_dir)
    found = resolve_executable(Path(sys.executable).name, env["PATH"], None)
    assert found is not None
    assert Path(found).parent == Path(python_dir)


def test_resolve_relative_path_against_working_dir(tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n")
    assert resolve_executable("./run.sh", "", tmp_path) is None  # not executable yet
    script.chmod(0o755)
    assert resolve_executable("./run.sh", "", tmp_path) == str(tmp_path / "run.sh")


def test_exit_messages() -> None:
    assert exit_message(1) == "exited with code 1"
    assert exit_message(-9) == "killed by signal 9 (SIGKILL)"
    assert exit_message(2, "ValueError: boom") == "exited with code 2: ValueError: boom"
    assert "sidecar" in exit_message(0, container="sidecar")
    assert "unknown" in exit_message(None)


@pytest.fixture
def runtime(tmp_path: Path) -> ProcessRuntime:
    return ProcessRuntime(tmp_path)


def test_image_without_command_needs_another_runtime(runtime: ProcessRuntime) -> None:
    with pytest.raises(Unsupported) as info:
        runtime.check_spec(doc(container(), container(name="model", image="ghcr.io/x/y:1", command=[])))
    assert info.value.field == "service.containers[1].image"
    assert "podman" in info.value.fix


def test_image_with_command_is_refused_too(runtime: ProcessRuntime) -> None:
    with pytest.raises(Unsupported) as info:
        runtime.check_spec(doc(container(image="python:3.12", command=["python", "app.py"])))
    assert info.value.field == "service.containers[0].image"
    assert "not here" in info.value.message


def test_missing_executable_names_command_0(runtime: ProcessRuntime) -> None:
    with pytest.raises(InvalidInput) as info:
        runtime.check_spec(doc(container(command=["no-such-binary-gse-test", "--x"])))
    assert info.value.field == "service.containers[0].command[0]"
    assert "PATH" in info.value.problems[0].message
    assert info.value.problems[0].fix


def test_missing_path_executable(runtime: ProcessRuntime, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        runtime.check_spec(doc(container(command=[str(tmp_path / "absent")])))
    assert "does not exist" in info.value.problems[0].message


def test_no_command_and_reserved_env_and_bad_working_dir(runtime: ProcessRuntime, tmp_path: Path) -> None:
    spec = doc(
        container(command=[], env=[{"name": "PORT", "value": "80"}], workingDir=str(tmp_path / "nope"))
    )
    with pytest.raises(InvalidInput) as info:
        runtime.check_spec(spec)
    fields = {p.path for p in info.value.problems}
    assert fields == {
        "service.containers[0].command",
        "service.containers[0].env[0].name",
        "service.containers[0].workingDir",
    }


def test_no_containers(runtime: ProcessRuntime) -> None:
    with pytest.raises(InvalidInput) as info:
        runtime.check_spec(doc())
    assert info.value.field == "service.containers"


def test_a_runnable_spec_passes(runtime: ProcessRuntime, tmp_path: Path) -> None:
    runtime.check_spec(doc(container(command=["python", "-c", "pass"], workingDir=str(tmp_path))))
    runtime.check_spec(doc(container(command=[sys.executable])))


def test_relative_working_dir_is_refused(tmp_path) -> None:
    runtime = ProcessRuntime(tmp_path)
    with pytest.raises(InvalidInput) as refused:
        runtime.check_spec(doc({"name": "c", "command": [sys.executable], "workingDir": "."}))
    assert refused.value.problems[0].path.endswith("containers[0].workingDir")
    assert "absolute" in refused.value.problems[0].fix
