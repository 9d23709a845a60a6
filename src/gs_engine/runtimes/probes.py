"""Readiness probes: what to check (`ProbeConfig`), how to count results (`ProbeState`), how to check.

`ProbeState` is pure (consecutive successes/failures against thresholds, Kubernetes semantics) and
tested without I/O. The three checks are small async functions that never raise for an unhealthy
target: they return a `ProbeResult` saying why it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


class ProbeKind(enum.StrEnum):
    HTTP_GET = "httpGet"
    TCP_SOCKET = "tcpSocket"
    EXEC = "exec"


@dataclass(frozen=True)
class ProbeConfig:
    """One readiness probe, with the port already resolved to where the replica really listens."""

    kind: ProbeKind
    port: int = 0
    path: str = "/"
    https: bool = False
    command: tuple[str, ...] = ()
    initial_delay_seconds: float = 0.0
    period_seconds: float = 1.0
    timeout_seconds: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str = ""


@dataclass(frozen=True)
class ProbeState:
    """Readiness as consecutive results: ready after `success_threshold` successes in a row,
    not ready after `failure_threshold` failures in a row; in between it keeps its last verdict."""

    success_threshold: int = 1
    failure_threshold: int = 3
    ready: bool = False
    successes: int = 0
    failures: int = 0
    ever_ready: bool = False

    def observe(self, ok: bool) -> ProbeState:
        if ok:
            successes, failures = self.successes + 1, 0
            ready = self.ready or successes >= max(1, self.success_threshold)
        else:
            successes, failures = 0, self.failures + 1
            ready = self.ready and failures < max(1, self.failure_threshold)
        return ProbeState(
            success_threshold=self.success_threshold,
            failure_threshold=self.failure_threshold,
            ready=ready,
            successes=successes,
            failures=failures,
            ever_ready=self.ever_ready or ready,
        )


def _as_port(value: Any, default_port: int, container_ports: Sequence[int]) -> int:
    """A probe port in the spec names the container's port; here the replica listens on `default_port`."""
    if value is None or value == "":
        return default_port
    try:
        port = int(value)
    except (TypeError, ValueError):
        return default_port  # a named port: the process runtime has only one, the replica's
    if port in container_ports:
        return default_port
    return port


def probe_config_from_spec(
    probe: Mapping[str, Any] | None, default_port: int, container_ports: Sequence[int] = ()
) -> ProbeConfig:
    """The readiness probe of a service document; no probe means a TCP connect to the replica port."""
    if not probe:
        return ProbeConfig(kind=ProbeKind.TCP_SOCKET, port=default_port)
    timing = ProbeConfig(
        kind=ProbeKind.TCP_SOCKET,
        port=default_port,
        initial_delay_seconds=float(probe.get("initialDelaySeconds") or 0.0),
        period_seconds=float(probe.get("periodSeconds") or 1.0),
        timeout_seconds=float(probe.get("timeoutSeconds") or 1.0),
        success_threshold=int(probe.get("successThreshold") or 1),
        failure_threshold=int(probe.get("failureThreshold") or 3),
    )
    if probe.get("httpGet") is not None:
        http = probe["httpGet"]
        path = str(http.get("path") or "/")
        return replace(
            timing,
            kind=ProbeKind.HTTP_GET,
            port=_as_port(http.get("port"), default_port, container_ports),
            path=path if path.startswith("/") else "/" + path,
            https=str(http.get("scheme") or "HTTP").upper() == "HTTPS",
        )
    if probe.get("exec") is not None:
        command = tuple(str(part) for part in probe["exec"].get("command") or ())
        return replace(timing, kind=ProbeKind.EXEC, command=command)
    tcp = probe.get("tcpSocket") or {}
    return replace(timing, port=_as_port(tcp.get("port"), default_port, container_ports))


async def tcp_connect(host: str, port: int, timeout: float) -> ProbeResult:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return ProbeResult(False, f"tcp connect to {host}:{port} timed out after {timeout:g}s")
    except OSError as exc:
        return ProbeResult(False, f"tcp connect to {host}:{port} failed: {exc.strerror or exc}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeResult(True)


def parse_status_line(line: bytes) -> int | None:
    """The status code of an HTTP/1.x status line, or None if it is not one."""
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        return None
    try:
        return int(parts[1])
    except ValueError:
        return None


def _insecure_tls() -> ssl.SSLContext:
    # Like a kubelet, an HTTPS probe checks that the replica answers, not who signed its certificate.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def http_get(host: str, port: int, path: str, timeout: float, https: bool = False) -> ProbeResult:
    """An HTTP/1.1 GET; ready on 2xx and 3xx (redirects are not followed)."""

    async def attempt() -> ProbeResult:
        tls = _insecure_tls() if https else None
        reader, writer = await asyncio.open_connection(host, port, ssl=tls)
        try:
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "User-Agent: gs-engine-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            )
            writer.write(request.encode("latin-1"))
            await writer.drain()
            status = parse_status_line(await reader.readline())
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if status is None:
            return ProbeResult(False, f"GET {path} on port {port}: not an HTTP response")
        if 200 <= status < 400:
            return ProbeResult(True)
        return ProbeResult(False, f"GET {path} on port {port} answered {status}")

    try:
        return await asyncio.wait_for(attempt(), timeout)
    except TimeoutError:
        return ProbeResult(False, f"GET {path} on port {port} timed out after {timeout:g}s")
    except OSError as exc:
        return ProbeResult(False, f"GET {path} on port {port} failed: {exc.strerror or exc}")


async def exec_command(
    command: Sequence[str], timeout: float, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> ProbeResult:
    """Run `command` (no shell); ready on exit code 0 within `timeout`."""
    if not command:
        return ProbeResult(False, "exec probe has no command")
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    except OSError as exc:
        return ProbeResult(False, f"exec probe {command[0]!r} could not start: {exc.strerror or exc}")
    try:
        code = await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return ProbeResult(False, f"exec probe timed out after {timeout:g}s")
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    if code == 0:
        return ProbeResult(True)
    return ProbeResult(False, f"exec probe exited with code {code}")


async def run_probe(
    config: ProbeConfig, host: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> ProbeResult:
    if config.kind is ProbeKind.HTTP_GET:
        return await http_get(host, config.port, config.path, config.timeout_seconds, config.https)
    if config.kind is ProbeKind.EXEC:
        return await exec_command(config.command, config.timeout_seconds, env, cwd)
    return await tcp_connect(host, config.port, config.timeout_seconds)
