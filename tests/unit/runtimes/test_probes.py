"""The readiness tracker (pure) and how a service document's probe becomes a ProbeConfig."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gs_engine.runtimes.probes import (
    ProbeKind,
    ProbeState,
    parse_status_line,
    probe_config_from_spec,
)


def run(state: ProbeState, results: list[bool]) -> ProbeState:
    for ok in results:
        state = state.observe(ok)
    return state


def test_starts_not_ready_and_one_success_is_enough_by_default() -> None:
    state = ProbeState()
    assert not state.ready
    assert state.observe(True).ready


def test_success_threshold_needs_consecutive_successes() -> None:
    state = ProbeState(success_threshold=3)
    assert not run(state, [True, True]).ready
    assert not run(state, [True, True, False, True, True]).ready
    assert run(state, [True, False, True, True, True]).ready


def test_failure_threshold_needs_consecutive_failures_once_ready() -> None:
    ready = ProbeState(failure_threshold=3).observe(True)
    assert run(ready, [False, False]).ready
    assert run(ready, [False, False, True, False, False]).ready
    lost = run(ready, [False, False, False])
    assert not lost.ready
    assert lost.ever_ready


def test_ready_again_after_loss_needs_the_success_threshold() -> None:
    state = run(ProbeState(success_threshold=2, failure_threshold=1), [True, True, False])
    assert not state.ready
    assert not state.observe(True).ready
    assert run(state, [True, True]).ready


@given(st.lists(st.booleans(), max_size=40), st.integers(1, 5), st.integers(1, 5))
def test_verdict_changes_only_on_a_full_run_of_results(results: list[bool], succ: int, fail: int) -> None:
    state = ProbeState(success_threshold=succ, failure_threshold=fail)
    history: list[bool] = []
    for ok in results:
        before = state.ready
        state = state.observe(ok)
        history.append(ok)
        if state.ready and not before:
            assert history[-succ:] == [True] * succ
        if before and not state.ready:
            assert history[-fail:] == [False] * fail


def test_no_probe_means_tcp_on_the_replica_port() -> None:
    config = probe_config_from_spec(None, 4321)
    assert config.kind is ProbeKind.TCP_SOCKET
    assert config.port == 4321


def test_http_probe_maps_the_container_port_to_the_replica_port() -> None:
    probe = {
        "httpGet": {"path": "healthz", "port": 8080},
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "successThreshold": 2,
        "failureThreshold": 4,
        "initialDelaySeconds": 1,
    }
    config = probe_config_from_spec(probe, 40000, container_ports=[8080])
    assert config.kind is ProbeKind.HTTP_GET
    assert (config.port, config.path) == (40000, "/healthz")
    assert (config.period_seconds, config.timeout_seconds) == (5.0, 2.0)
    assert (config.success_threshold, config.failure_threshold) == (2, 4)
    assert config.initial_delay_seconds == 1.0


def test_probe_port_other_than_the_container_port_is_kept() -> None:
    config = probe_config_from_spec({"tcpSocket": {"port": 9100}}, 40000, container_ports=[8080])
    assert config.port == 9100
    assert probe_config_from_spec({"tcpSocket": {"port": None}}, 40000).port == 40000


def test_exec_probe_keeps_its_command() -> None:
    config = probe_config_from_spec({"exec": {"command": ["true", "x"]}}, 1)
    assert config.kind is ProbeKind.EXEC
    assert config.command == ("true", "x")


def test_status_line_parsing() -> None:
    assert parse_status_line(b"HTTP/1.1 204 No Content\r\n") == 204
    assert parse_status_line(b"HTTP/1.0 302\r\n") == 302
    assert parse_status_line(b"SSH-2.0-OpenSSH\r\n") is None
    assert parse_status_line(b"") is None
