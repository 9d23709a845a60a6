"""/api/v1 services, namespaces, replicas, logs and events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field

from gs_engine.api.auth import require_token
from gs_engine.api.views import event_view, namespace_view, replica_view, service_view
from gs_engine.errors import InvalidInput, NotFound, Problem, Unsupported
from gs_engine.spec import ServiceSpec, load_service, template_revision, validate_dns_label

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)])

SERVICE_DOCUMENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A service document (top-level `service:`), as YAML or JSON; at most 1 MiB.",
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["service"],
                    "properties": {"service": {"type": "object"}},
                }
            },
        },
    }
}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/problem+json": {}}}
    for status, text in (
        (401, "missing or wrong bearer token"),
        (404, "no such object"),
        (409, "conflict: exists already, or a route another service holds"),
        (422, "the document or request is invalid; `problems` lists each field and its fix"),
    )
}

MAX_BODY = 1 << 20


class ScaleRequest(BaseModel):
    replicas: int = Field(ge=0, le=1000, description="desired number of replicas")


class NamespaceRequest(BaseModel):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)


def _engine(request: Request) -> Any:
    return request.app.state.engine


def parse_selector(selector: str | None) -> dict[str, str] | None:
    """`app=web,tier=edge` → {"app": "web", "tier": "edge"}."""
    if not selector:
        return None
    labels: dict[str, str] = {}
    for part in selector.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(
                f"label selector part {part!r} is not KEY=VALUE",
                fix="write labelSelector as key=value pairs separated by commas, e.g. app=web,tier=edge",
                field="labelSelector",
            )
        labels[key.strip()] = value.strip()
    return labels


async def read_document(request: Request) -> ServiceSpec:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidInput("the service document is larger than 1 MiB", fix="send a smaller document")
    if not body.strip():
        raise InvalidInput("the request has no body", fix="send a service document as YAML or JSON")
    return load_service(body)


def check_runnable(engine: Any, spec: ServiceSpec) -> dict[str, Any]:
    document: dict[str, Any] = spec.to_document()
    wanted = spec.runtime or engine.runtime.name
    if wanted != engine.runtime.name:
        raise Unsupported(
            f"service.runtime is {wanted!r} but this engine runs the {engine.runtime.name!r} runtime",
            fix=f"start the engine with --runtime {wanted}, or remove service.runtime",
            field="service.runtime",
        )
    engine.runtime.check_spec(document)
    return document


async def apply_spec(engine: Any, spec: ServiceSpec) -> tuple[Any, str]:
    document = check_runnable(engine, spec)
    route = spec.route
    host = (route.host if route and route.host else "") or ""
    routes = [(host, spec.route_prefix())]
    record, action = await asyncio.to_thread(
        engine.store.apply_service,
        spec.namespace,
        spec.name,
        document,
        dict(spec.labels),
        template_revision(spec),
        routes,
    )
    engine.controller.poke()
    return record, action


# --- services ---------------------------------------------------------------------------------
@router.get("/services", summary="List services")
async def list_services(
    request: Request,
    namespace: str | None = None,
    labelSelector: str | None = Query(default=None, description="key=value[,key=value]"),  # noqa: N803
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
) -> dict[str, Any]:
    engine = _engine(request)
    records, total = await asyncio.to_thread(
        engine.store.list_services, namespace, parse_selector(labelSelector), limit, offset
    )
    return {"items": [service_view(r) for r in records], "total": total, "limit": limit, "offset": offset}


@router.post(
    "/services",
    status_code=201,
    summary="Create a service from a YAML or JSON document",
    openapi_extra=SERVICE_DOCUMENT_BODY,
    responses=PROBLEM_RESPONSES,
)
async def create_service(request: Request) -> JSONResponse:
    engine = _engine(request)
    spec = await read_document(request)
    try:
        await asyncio.to_thread(engine.store.get_service, spec.namespace, spec.name)
    except NotFound:
        pass
    else:
        from gs_engine.errors import Conflict

        raise Conflict(
            f"service {spec.namespace}/{spec.name} already exists",
            fix=f"update it with PUT /api/v1/namespaces/{spec.namespace}/services/{spec.name} or 'gse apply'",
            field="service.name",
        )
    record, _ = await apply_spec(engine, spec)
    return JSONResponse(service_view(record), status_code=201)


@router.put(
    "/namespaces/{namespace}/services/{name}",
    summary="Create or update a service (a changed spec rolls out)",
    openapi_extra=SERVICE_DOCUMENT_BODY,
    responses=PROBLEM_RESPONSES,
)
async def put_service(request: Request, namespace: str, name: str) -> JSONResponse:
    validate_dns_label(namespace, "namespace")
    validate_dns_label(name, "name")
    engine = _engine(request)
    spec = await read_document(request)
    problems = []
    if spec.name != name:
        problems.append(
            Problem("service.name", f"is {spec.name!r} but the URL names {name!r}", "make them equal")
        )
    if spec.namespace != namespace:
        problems.append(
            Problem(
                "service.namespace",
                f"is {spec.namespace!r} but the URL names {namespace!r}",
                "make them equal",
            )
        )
    if problems:
        raise InvalidInput("the document does not match the URL", problems=problems)
    record, action = await apply_spec(engine, spec)
    body = service_view(record) | {"action": action}
    return JSONResponse(body, status_code=201 if action == "created" else 200)


@router.get("/namespaces/{namespace}/services/{name}", summary="Get a service with its spec and status")
async def get_service(request: Request, namespace: str, name: str) -> dict[str, Any]:
    record = await asyncio.to_thread(_engine(request).store.get_service, namespace, name)
    return service_view(record)


@router.get("/namespaces/{namespace}/services/{name}/status", summary="A service's status")
async def get_status(request: Request, namespace: str, name: str) -> dict[str, Any]:
    record = await asyncio.to_thread(_engine(request).store.get_service, namespace, name)
    status: dict[str, Any] = dict(record.status or {})
    status.setdefault("desiredReplicas", record.spec.get("service", {}).get("replicas", 1))
    status.setdefault("readyReplicas", 0)
    status["generation"] = record.generation
    status["observedGeneration"] = record.observed_generation
    return status


@router.put("/namespaces/{namespace}/services/{name}/scale", summary="Set a service's replica count")
async def scale_service(request: Request, namespace: str, name: str, body: ScaleRequest) -> dict[str, Any]:
    engine = _engine(request)
    record = await asyncio.to_thread(engine.store.scale_service, namespace, name, body.replicas)
    engine.controller.poke()
    return service_view(record)


@router.delete(
    "/namespaces/{namespace}/services/{name}", status_code=202, summary="Drain and delete a service"
)
async def delete_service(request: Request, namespace: str, name: str) -> dict[str, Any]:
    engine = _engine(request)
    record = await asyncio.to_thread(engine.store.mark_deleting, namespace, name)
    engine.controller.poke()
    return service_view(record)


@router.get("/namespaces/{namespace}/services/{name}/events", summary="What the controllers decided, and why")
async def service_events(
    request: Request, namespace: str, name: str, limit: int = Query(default=100, ge=1, le=1000)
) -> dict[str, Any]:
    engine = _engine(request)
    await asyncio.to_thread(engine.store.get_service, namespace, name)
    events = await asyncio.to_thread(engine.store.list_events, namespace, name, limit)
    return {"items": [event_view(e) for e in events]}


@router.get("/events", summary="Recent events")
async def all_events(
    request: Request, namespace: str | None = None, limit: int = Query(default=100, ge=1, le=1000)
) -> dict[str, Any]:
    events = await asyncio.to_thread(_engine(request).store.list_events, namespace, None, limit)
    return {"items": [event_view(e) for e in events]}


def _service_replicas(engine: Any, namespace: str, name: str) -> list[Any]:
    return [r for r in engine.runtime.replicas() if r.namespace == namespace and r.service == name]


@router.get("/namespaces/{namespace}/services/{name}/logs", summary="Replica logs", response_model=None)
async def service_logs(
    request: Request,
    namespace: str,
    name: str,
    tail: int | None = Query(default=200, ge=0, le=100000),
    replica: str | None = None,
    follow: bool = False,
) -> PlainTextResponse | StreamingResponse:
    engine = _engine(request)
    await asyncio.to_thread(engine.store.get_service, namespace, name)
    replicas = _service_replicas(engine, namespace, name)
    if replica:
        replicas = [r for r in replicas if r.replica_id == replica or r.replica_id.endswith(replica)]
        if not replicas:
            raise NotFound(
                f"service {namespace}/{name} has no replica {replica!r}", fix="list them: gse get replicas"
            )
    if not follow:
        parts = []
        for r in replicas:
            text = await engine.runtime.logs(r.replica_id, tail)
            prefix = f"[{r.replica_id}] " if len(replicas) > 1 else ""
            parts.extend(prefix + line for line in text.splitlines())
        return PlainTextResponse("\n".join(parts) + ("\n" if parts else ""))
    return StreamingResponse(_follow(engine, namespace, name, replica, tail), media_type="text/plain")


async def _follow(
    engine: Any, namespace: str, name: str, chosen: str | None, tail: int | None
) -> AsyncIterator[str]:
    """The last `tail` lines of each replica, then new lines as they are written, from replicas
    that start later too (a scale-up, a rollout, a restart), each line prefixed with its replica."""
    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)
    pumps: dict[str, asyncio.Task[None]] = {}

    async def pump(replica_id: str, lines: int | None) -> None:
        prefix = f"[{replica_id}] "
        following = engine.runtime.follow_logs(replica_id)
        if lines:
            for line in (await engine.runtime.logs(replica_id, lines)).splitlines():
                await queue.put(prefix + line + "\n")
        async for line in following:
            await queue.put(prefix + line.rstrip("\n") + "\n")

    def discover(first: bool) -> None:
        for replica in _service_replicas(engine, namespace, name):
            rid = replica.replica_id
            if rid in pumps or (chosen and rid != chosen and not rid.endswith(chosen)):
                continue
            # a replica that appears later is shown from its first line
            pumps[rid] = asyncio.create_task(pump(rid, tail if first else 100000))

    discover(first=True)
    loop = asyncio.get_running_loop()
    next_look = loop.time() + 1.0
    try:
        while True:
            try:
                yield await asyncio.wait_for(queue.get(), timeout=max(0.0, next_look - loop.time()))
            except TimeoutError:
                pass
            if loop.time() >= next_look:
                discover(first=False)
                next_look = loop.time() + 1.0
    finally:
        for task in pumps.values():
            task.cancel()


# --- replicas and nodes -----------------------------------------------------------------------
@router.get("/replicas", summary="Replicas as the runtime sees them now")
async def list_replicas(
    request: Request, namespace: str | None = None, service: str | None = None
) -> dict[str, Any]:
    engine = _engine(request)
    draining = engine.controller.draining_ids()
    chosen = [
        r
        for r in engine.runtime.replicas()
        if (namespace is None or r.namespace == namespace) and (service is None or r.service == service)
    ]
    stats = await asyncio.gather(
        *(engine.runtime.stats(r.replica_id) for r in chosen), return_exceptions=True
    )
    items = [
        replica_view(r, r.replica_id in draining, s if not isinstance(s, BaseException) else None)
        for r, s in zip(chosen, stats, strict=True)
    ]
    items.sort(key=lambda r: (r["namespace"], r["service"], r["id"]))
    return {"items": items}


@router.get("/nodes", summary="Nodes with CPU, memory and GPUs")
async def list_nodes(request: Request) -> dict[str, Any]:
    from gs_engine.api.views import node_view
    from gs_engine.autoscaling.live import replica_requests
    from gs_engine.spec.quantity import cpu_cores, memory_bytes

    engine = _engine(request)
    nodes = await engine.runtime.nodes()
    records = await asyncio.to_thread(engine.store.all_services)
    per_replica = {(r.namespace, r.name): replica_requests(r.spec) for r in records}
    allocated: dict[str, dict[str, float]] = {}
    for replica in engine.runtime.replicas():  # warm standbys included: they hold their resources
        if replica.state.value == "Exited":
            continue
        requests = per_replica.get((replica.namespace, replica.service), {})
        entry = allocated.setdefault(replica.node, {"cpu": 0.0, "memory": 0.0, "replicas": 0})
        entry["cpu"] += cpu_cores(requests["cpu"]) if "cpu" in requests else 0.0
        entry["memory"] += memory_bytes(requests["memory"]) if "memory" in requests else 0
        entry["replicas"] += 1
    items = []
    for node in nodes:
        view = node_view(node)
        used = allocated.get(node.name, {"cpu": 0.0, "memory": 0.0, "replicas": 0})
        view["allocated"] = {
            "replicas": int(used["replicas"]),
            "cpuCores": round(used["cpu"], 3),
            "memoryBytes": int(used["memory"]),
        }
        items.append(view)
    return {"items": items}


# --- namespaces -------------------------------------------------------------------------------
@router.get("/namespaces", summary="List namespaces")
async def list_namespaces(request: Request) -> dict[str, Any]:
    records = await asyncio.to_thread(_engine(request).store.list_namespaces)
    return {"items": [namespace_view(r) for r in records]}


@router.post("/namespaces", status_code=201, summary="Create a namespace")
async def create_namespace(request: Request, body: NamespaceRequest) -> dict[str, Any]:
    validate_dns_label(body.name, "name")
    record = await asyncio.to_thread(_engine(request).store.create_namespace, body.name, body.labels)
    return namespace_view(record)


@router.get("/namespaces/{namespace}", summary="Get a namespace")
async def get_namespace(request: Request, namespace: str) -> dict[str, Any]:
    record = await asyncio.to_thread(_engine(request).store.get_namespace, namespace)
    return namespace_view(record)


@router.delete(
    "/namespaces/{namespace}", status_code=204, summary="Delete an empty namespace", response_model=None
)
async def delete_namespace(request: Request, namespace: str) -> None:
    await asyncio.to_thread(_engine(request).store.delete_namespace, namespace)
