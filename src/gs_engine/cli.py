"""`gse`: run the engine and manage services from the command line."""

from __future__ import annotations

import json
import os
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from gs_engine import __version__
from gs_engine.client import ApiClient
from gs_engine.config import Settings, load_settings
from gs_engine.errors import GseError, InvalidInput, NotFound

app = typer.Typer(
    name="gse",
    help="GS-Engine: run AI services on this edge node behind a low-latency gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
get_app = typer.Typer(help="List services, replicas, nodes, namespaces or events.", no_args_is_help=True)
describe_app = typer.Typer(help="Show one object in detail.", no_args_is_help=True)
delete_app = typer.Typer(help="Delete an object.", no_args_is_help=True)
autoscale_app = typer.Typer(help="Autoscaler tools.", no_args_is_help=True)
app.add_typer(get_app, name="get")
app.add_typer(describe_app, name="describe")
app.add_typer(delete_app, name="delete")
app.add_typer(autoscale_app, name="autoscale")

console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class Output(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


class _Global:
    api_url: str | None = None
    token: str | None = None
    home: Path | None = None


state = _Global()

NamespaceOpt = typer.Option(
    "default", "--namespace", "-n", help="namespace of the service", envvar="GSE_NAMESPACE"
)
OutputOpt = typer.Option(Output.table, "--output", "-o", help="table for people, json or yaml for scripts")


def settings() -> Settings:
    base = load_settings()
    return base.with_overrides(home=state.home) if state.home else base


def client() -> ApiClient:
    return ApiClient.from_settings(settings(), api_url=state.api_url, token=state.token)


def emit(data: Any, output: Output, table: Table | None = None) -> None:
    if output is Output.json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    elif output is Output.yaml:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    elif table is not None:
        console.print(table)


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.callback()
def main_options(
    api_url: str | None = typer.Option(None, "--api-url", envvar="GSE_API_URL", help="engine API address"),
    token: str | None = typer.Option(
        None, "--token", envvar="GSE_TOKEN", help="API bearer token", show_default=False
    ),
    home: Path | None = typer.Option(
        None, "--home", envvar="GSE_HOME", help="data directory (store, token, logs)"
    ),
) -> None:
    state.api_url = api_url
    state.token = token
    state.home = home


@app.command()
def version() -> None:
    """Print the GS-Engine version."""
    console.print(__version__)


@app.command()
def up(
    api_host: str = typer.Option("127.0.0.1", "--api-host", envvar="GSE_API_HOST", help="API listen address"),
    api_port: int = typer.Option(7070, "--api-port", envvar="GSE_API_PORT", help="API port"),
    gateway_host: str = typer.Option(
        "127.0.0.1", "--gateway-host", envvar="GSE_GATEWAY_HOST", help="gateway address"
    ),
    gateway_port: int = typer.Option(8080, "--gateway-port", envvar="GSE_GATEWAY_PORT", help="gateway port"),
    database_url: str = typer.Option(
        "",
        "--database-url",
        envvar="GSE_DATABASE_URL",
        help="SQLAlchemy URL; default SQLite in the data directory",
    ),
    runtime: str = typer.Option("process", "--runtime", envvar="GSE_RUNTIME", help="where replicas run"),
    replica_host: str = typer.Option(
        "127.0.0.1", "--replica-host", envvar="GSE_REPLICA_HOST", help="replica address"
    ),
) -> None:
    """Run the API server, controllers and gateway in the foreground (Ctrl-C stops everything)."""
    import logging

    from gs_engine.engine import run_engine

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    engine_log = logging.getLogger("gs_engine")
    engine_log.addHandler(handler)
    engine_log.setLevel(logging.INFO)
    engine_log.propagate = False

    config = settings().with_overrides(
        api_host=api_host,
        api_port=api_port,
        gateway_host=gateway_host,
        gateway_port=gateway_port,
        database_url=database_url,
        runtime=runtime,
        replica_host=replica_host,
    )

    def ready(engine: Any) -> None:
        err_console.print(
            f"GS-Engine {__version__} ready: api {config.api_url}  gateway {config.gateway_url}  "
            f"home {config.home}  token {config.token_file}",
            highlight=False,
            soft_wrap=True,
        )

    run_engine(config, on_ready=ready)
    err_console.print("GS-Engine stopped", highlight=False)


def load_document(path: str) -> tuple[dict[str, Any], Path]:
    from gs_engine.spec import load_service

    if path == "-":
        text = sys.stdin.read()
        base = Path.cwd()
    else:
        file = Path(path)
        try:
            text = file.read_text()
        except FileNotFoundError:
            raise InvalidInput(
                f"no such file: {path}", fix="give the path of a service YAML with -f"
            ) from None
        except IsADirectoryError:
            raise InvalidInput(
                f"{path} is a folder", fix="give the path of one service YAML file with -f"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(
                f"cannot read {path}: {exc}", fix="give a readable YAML or JSON file"
            ) from None
        base = file.resolve().parent
    spec = load_service(text)
    document: dict[str, Any] = spec.to_document()
    for container in document["service"]["containers"]:
        working_dir = container.get("workingDir")
        if working_dir and not os.path.isabs(working_dir):
            container["workingDir"] = str((base / working_dir).resolve())
    return document, base


@app.command()
def apply(
    file: str = typer.Option(..., "--file", "-f", help="service YAML or JSON ('-' reads standard input)"),
    wait: bool = typer.Option(False, "--wait", help="wait until every replica is ready"),
    timeout: float = typer.Option(120.0, "--timeout", help="seconds to wait with --wait"),
    output: Output = OutputOpt,
) -> None:
    """Create or update a service from a document (a relative workingDir is taken from the file's folder)."""
    document, _ = load_document(file)
    inner = document["service"]
    with client() as api:
        result = api.apply(document)
        if output is not Output.table:
            emit(result, output)
        else:
            console.print(f"service {inner['namespace']}/{inner['name']} {result.get('action', 'applied')}")
        if wait:
            wait_ready(api, inner["namespace"], inner["name"], timeout)


def wait_ready(api: ApiClient, namespace: str, name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with console.status(f"waiting for {namespace}/{name} to be ready") as status:
        while True:
            service = api.get_service(namespace, name)
            st = service.get("status") or {}
            want = st.get("desiredReplicas", 1)
            ready = st.get("readyReplicas", 0)
            updated = st.get("updatedReplicas", 0)
            status.update(f"waiting for {namespace}/{name}: {ready}/{want} ready")
            conditions = {c["type"]: c for c in st.get("conditions", [])}
            progressing = conditions.get("Progressing", {}).get("reason")
            if (
                service.get("observedGeneration") == service.get("generation")
                and ready >= want
                and updated >= want
                and progressing == "RolloutComplete"
            ):
                console.print(f"service {namespace}/{name} ready: {ready}/{want} replicas at {st.get('url')}")
                return service
            failure = conditions.get("ReplicaFailure", {})
            current = service.get("observedGeneration") == service.get("generation")  # not the old spec's
            if (
                current
                and failure.get("status") == "True"
                and failure.get("reason")
                in (
                    "FailedCreate",
                    "CrashLoopBackOff",
                )
            ):
                fail(
                    f"service {namespace}/{name} is failing: "
                    f"{failure.get('reason')}: {failure.get('message')}"
                )
            if time.monotonic() > deadline:
                fail(f"service {namespace}/{name} not ready after {timeout:.0f}s ({ready}/{want} ready)")
            time.sleep(0.2)


# --- get --------------------------------------------------------------------------------------
def _age(value: Any) -> str:
    if not value:
        return ""
    try:
        from datetime import datetime

        started = datetime.fromisoformat(str(value)).timestamp() if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return ""
    seconds = max(0, int(time.time() - started))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@get_app.command("services")
def get_services(
    namespace: str | None = typer.Option(None, "--namespace", "-n", help="only this namespace"),
    selector: str | None = typer.Option(
        None, "--selector", "-l", help="label selector key=value[,key=value]"
    ),
    output: Output = OutputOpt,
) -> None:
    """List services."""
    with client() as api:
        items = api.list_services(namespace, selector)
    table = Table("NAMESPACE", "NAME", "READY", "REVISION", "URL", "STATUS", "AGE", box=None)
    for s in items:
        st = s.get("status") or {}
        conditions = {c["type"]: c for c in st.get("conditions", [])}
        state_text = "Deleting" if s.get("deleting") else _status_word(conditions)
        table.add_row(
            s["namespace"],
            s["name"],
            f"{st.get('readyReplicas', 0)}/{st.get('desiredReplicas', '?')}",
            s.get("revision", ""),
            st.get("url", ""),
            state_text,
            _age(s.get("createdAt")),
        )
    emit(items, output, table)


def _status_word(conditions: dict[str, dict[str, Any]]) -> str:
    failure = conditions.get("ReplicaFailure", {})
    if failure.get("status") == "True":
        return str(failure.get("reason"))
    progressing = conditions.get("Progressing", {})
    if progressing.get("reason") == "RollingOut":
        return "RollingOut"
    available = conditions.get("Available", {})
    if available.get("reason") == "ScaledToZero":
        return "ScaledToZero"
    if available:
        return "Available" if available.get("status") == "True" else str(available.get("reason"))
    return "Pending"


@get_app.command("replicas")
def get_replicas(
    namespace: str | None = typer.Option(None, "--namespace", "-n", help="only this namespace"),
    service: str | None = typer.Option(None, "--service", "-s", help="only this service"),
    output: Output = OutputOpt,
) -> None:
    """List replicas as the runtime sees them now."""
    with client() as api:
        items = api.replicas(namespace, service)
    table = Table(
        "NAMESPACE",
        "SERVICE",
        "REPLICA",
        "STATE",
        "READY",
        "ADDRESS",
        "PID",
        "RESTARTS",
        "CPU",
        "MEMORY",
        "AGE",
        box=None,
    )
    for r in items:
        table.add_row(
            r["namespace"],
            r["service"],
            r["id"].split(".", 1)[-1],
            r["state"],
            "yes" if r["ready"] else "no",
            f"{r['host']}:{r['port']}",
            str(r.get("pid") or ""),
            str(r.get("restarts", 0)),
            "-" if r.get("cpuCores") is None else f"{r['cpuCores'] * 1000:.0f}m",
            _bytes(r.get("memoryBytes")),
            _age(r.get("startedAt")),
        )
    emit(items, output, table)


@get_app.command("nodes")
def get_nodes(output: Output = OutputOpt) -> None:
    """List nodes with CPU, memory and GPUs."""
    with client() as api:
        items = api.nodes()
    table = Table(
        "NAME",
        "RUNTIME",
        "READY",
        "CPUS",
        "CPU%",
        "MEMORY",
        "AVAILABLE",
        "REQUESTED",
        "REPLICAS",
        "GPUS",
        box=None,
    )
    for n in items:
        table.add_row(
            n["name"],
            n["runtime"],
            "yes" if n["ready"] else "no",
            str(n["cpu"]["cores"]),
            f"{n['cpu']['percent']:.0f}",
            _bytes(n["memory"]["bytes"]),
            _bytes(n["memory"]["availableBytes"]),
            f"{n['allocated']['cpuCores']:g} cpu, {_bytes(n['allocated']['memoryBytes'])}",
            str(n["allocated"]["replicas"]),
            ", ".join(g["name"] for g in n["gpus"]) or "-",
        )
    emit(items, output, table)


def _bytes(value: int | None) -> str:
    if not value:
        return "-"
    for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)


@get_app.command("namespaces")
def get_namespaces(output: Output = OutputOpt) -> None:
    """List namespaces."""
    with client() as api:
        items = api.namespaces()
    table = Table("NAME", "AGE", box=None)
    for n in items:
        table.add_row(n["name"], _age(n.get("createdAt")))
    emit(items, output, table)


@get_app.command("events")
def get_events(
    name: str = typer.Argument(..., help="service name"),
    namespace: str = NamespaceOpt,
    limit: int = typer.Option(20, "--limit", help="how many, newest first"),
    output: Output = OutputOpt,
) -> None:
    """A service's events: what the controllers decided, and why."""
    with client() as api:
        items = api.events(namespace, name, limit)
    emit(items, output, _events_table(items))


def _events_table(items: list[dict[str, Any]]) -> Table:
    table = Table("AGE", "REASON", "FROM", "MESSAGE", box=None)
    for e in items:
        table.add_row(_age(e.get("at")), e["reason"], e["controller"], e["message"])
    return table


# --- describe, delete, scale, logs, call ------------------------------------------------------
@describe_app.command("service")
def describe_service(
    name: str = typer.Argument(..., help="service name"),
    namespace: str = NamespaceOpt,
    output: Output = OutputOpt,
) -> None:
    """A service's spec summary, status, conditions, replicas and recent events."""
    with client() as api:
        service = api.get_service(namespace, name)
        replicas = api.replicas(namespace, name)
        events = api.events(namespace, name, 10)
    if output is not Output.table:
        emit(service | {"replicas": replicas, "events": events}, output)
        return
    st = service.get("status") or {}
    spec = service["spec"]["service"]
    console.print(f"[bold]Service[/] {namespace}/{name}", highlight=False)
    console.print(
        f"  generation {service['generation']} (observed {service['observedGeneration']}), "
        f"revision {service['revision']}{', deleting' if service['deleting'] else ''}",
        highlight=False,
    )
    console.print(f"  url        {st.get('url', '-')}", highlight=False)
    console.print(
        f"  replicas   {st.get('readyReplicas', 0)} ready / {st.get('desiredReplicas', spec['replicas'])} "
        f"desired ({st.get('updatedReplicas', 0)} on the current revision)",
        highlight=False,
    )
    labels = ", ".join(f"{k}={v}" for k, v in (service.get("labels") or {}).items()) or "-"
    console.print(f"  labels     {labels}", highlight=False)
    scaler = st.get("autoscaler")
    if scaler:
        console.print(
            f"  autoscaler {scaler.get('policy')}: {scaler.get('desiredReplicas')} replicas "
            f"({scaler.get('reason')}); {st.get('warmReplicas', 0)} warm",
            highlight=False,
        )
    for c in spec["containers"]:
        command = " ".join([*c.get("command", []), *c.get("args", [])]) or c.get("image") or ""
        console.print(f"  container  {c['name']}: {command}", highlight=False)
    rec = st.get("recommendation")
    if rec:
        target = rec["target"]
        console.print(
            f"  right-size {target['cpu'] * 1000:.0f}m cpu, {_bytes(target['memory'])} memory per replica "
            f"(from {rec['samples']} samples)",
            highlight=False,
        )
    conditions = Table("CONDITION", "STATUS", "REASON", "MESSAGE", box=None)
    for cond in st.get("conditions", []):
        conditions.add_row(cond["type"], cond["status"], cond["reason"], cond.get("message", ""))
    console.print(conditions)
    table = Table("REPLICA", "STATE", "READY", "ADDRESS", "RESTARTS", "MESSAGE", box=None)
    for r in replicas:
        table.add_row(
            r["id"].split(".", 1)[-1],
            r["state"],
            "yes" if r["ready"] else "no",
            f"{r['host']}:{r['port']}",
            str(r["restarts"]),
            r.get("message", ""),
        )
    console.print(table)
    console.print("[bold]Events[/]")
    console.print(_events_table(events))


@delete_app.command("service")
def delete_service(
    name: str = typer.Argument(..., help="service name"),
    namespace: str = NamespaceOpt,
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="wait until its replicas are drained and stopped"
    ),
    timeout: float = typer.Option(60.0, "--timeout", help="seconds to wait"),
) -> None:
    """Drain a service's replicas, stop them, and remove the service."""
    with client() as api:
        api.delete_service(namespace, name)
        if wait:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    api.get_service(namespace, name)
                except NotFound:
                    break
                time.sleep(0.2)
            else:
                fail(f"service {namespace}/{name} is still draining after {timeout:.0f}s")
    console.print(f"service {namespace}/{name} deleted")


@app.command()
def scale(
    name: str = typer.Argument(..., help="service name"),
    replicas: int = typer.Option(..., "--replicas", "-r", min=0, max=1000, help="desired replica count"),
    namespace: str = NamespaceOpt,
) -> None:
    """Set a service's replica count."""
    with client() as api:
        api.scale(namespace, name, replicas)
    console.print(f"service {namespace}/{name} scaled to {replicas}")


@app.command()
def logs(
    name: str = typer.Argument(..., help="service name"),
    namespace: str = NamespaceOpt,
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines"),
    tail: int = typer.Option(200, "--tail", help="lines from the end of each replica's log"),
    replica: str | None = typer.Option(None, "--replica", help="only this replica (id or its suffix)"),
) -> None:
    """Print a service's replica logs."""
    with client() as api:
        if not follow:
            sys.stdout.write(api.logs(namespace, name, tail, replica))
            return
        try:
            for line in api.follow_logs(namespace, name, replica, tail):
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        except KeyboardInterrupt:
            return


@app.command()
def call(
    name: str = typer.Argument(..., help="service name"),
    path: str = typer.Argument("/", help="path under the service's route, e.g. /predict"),
    data: str | None = typer.Option(None, "--data", "-d", help="request body ('@FILE' reads a file)"),
    method: str | None = typer.Option(
        None, "--request", "-X", help="HTTP method (default GET, or POST with -d)"
    ),
    header: list[str] = typer.Option([], "--header", "-H", help="extra header 'Name: value'"),
    namespace: str = NamespaceOpt,
    include: bool = typer.Option(False, "--include", "-i", help="print the status line and headers"),
) -> None:
    """Send one request to a service through the gateway and print the answer."""
    import httpx

    with client() as api:
        service = api.get_service(namespace, name)
    st = service.get("status") or {}
    url = st.get("url")
    if not url:
        fail(f"service {namespace}/{name} has no route yet; check 'gse describe service {name}'")
    body: bytes | None = None
    if data is not None:
        body = Path(data[1:]).read_bytes() if data.startswith("@") else data.encode()
    headers: dict[str, str] = {}
    for item in header:
        key, sep, value = item.partition(":")
        if not sep:
            raise InvalidInput(f"header {item!r} is not 'Name: value'", field="--header")
        headers[key.strip()] = value.strip()
    if body is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json" if body.lstrip()[:1] in (b"{", b"[") else "text/plain"
    target = str(url).rstrip("/") + "/" + path.lstrip("/")
    gateway = os.environ.get("GSE_GATEWAY_URL")
    if gateway:
        target = gateway.rstrip("/") + st["route"]["pathPrefix"].rstrip("/") + "/" + path.lstrip("/")
    try:
        response = httpx.request(
            method or ("POST" if body is not None else "GET"),
            target,
            content=body,
            headers=headers,
            timeout=60,
        )
    except httpx.HTTPError as exc:
        fail(f"request to {target} failed: {exc}")
        return
    if include:
        console.print(f"HTTP/1.1 {response.status_code} {response.reason_phrase}", highlight=False)
        for key, value in response.headers.items():
            console.print(f"{key}: {value}", highlight=False)
        console.print()
    sys.stdout.write(response.text)
    if not response.text.endswith("\n"):
        sys.stdout.write("\n")
    if response.status_code >= 400:
        raise typer.Exit(1)


@autoscale_app.command("simulate")
def autoscale_simulate(
    file: Path = typer.Option(..., "--file", "-f", help="JSON case (policy hpa, kpa or vpa)"),
    output: Output = typer.Option(Output.json, "--output", "-o", help="json or yaml"),
) -> None:
    """Print what the HPA, KPA or VPA decider would do for a JSON case, computed locally.

    Cases to start from: examples/autoscaling/hpa-cpu.json, kpa-burst.json and vpa.json.
    """
    from gs_engine.autoscaling.simulate import simulate

    try:
        case = json.loads(file.read_text())
    except FileNotFoundError:
        raise InvalidInput(f"no such file: {file}", fix="give the path of a JSON case with -f") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{file} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    result = simulate(case)
    emit(result, Output.yaml if output is Output.yaml else Output.json)


def main() -> None:
    try:
        app()
    except GseError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
