"""`Store`: the desired and observed state of this engine, in SQLite or PostgreSQL.

Every method runs in its own short session and transaction (safe from several threads), returns
frozen records from `records.py`, and raises only `gs_engine.errors` types.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gs_engine.errors import Conflict, InvalidInput, NotFound
from gs_engine.store import migrate as migrations
from gs_engine.store.engine import WRITE_OPTION, make_engine, translate_errors
from gs_engine.store.models import Event, Namespace, Replica, Route, Service, Token
from gs_engine.store.records import (
    ApplyOutcome,
    EventRecord,
    NamespaceRecord,
    ReplicaRecord,
    RouteRecord,
    ServiceRecord,
    TokenRecord,
)

T = TypeVar("T")
Clock = Callable[[], datetime]

MAX_PAGE = 1000
_APPLY_ATTEMPTS = 3  # a create racing another create fails on a unique key; the retry sees the winner


def utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    def __init__(self, url: str, *, clock: Clock = utc_now) -> None:
        """Create the engine (no connection is made yet, and nothing is migrated)."""
        self.url = url
        self._clock = clock
        self._engine = make_engine(url)
        self._read = sessionmaker(self._engine, expire_on_commit=False)
        self._write = sessionmaker(
            self._engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )

    @property
    def backend(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self._engine.dialect.name

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to the newest revision (or `revision`); harmless when already there."""
        migrations.upgrade(self._engine, revision)

    def schema_revision(self) -> str | None:
        """The migration the database is at; None before the first `migrate()`."""
        return migrations.current_revision(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- sessions -------------------------------------------------------------------------------

    @contextmanager
    def _session(self, what: str, *, write: bool = False) -> Iterator[Session]:
        factory = self._write if write else self._read
        with translate_errors(what), factory() as session, session.begin():
            yield session

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise InvalidInput("the store's clock returned a naive datetime", fix="return datetime.now(UTC)")
        return now.astimezone(UTC)

    # -- namespaces -----------------------------------------------------------------------------

    def ensure_namespace(self, name: str) -> NamespaceRecord:
        """The namespace, created with no labels if it does not exist yet."""
        for attempt in range(_APPLY_ATTEMPTS):
            try:
                with self._session(f"creating namespace {name!r}", write=True) as s:
                    return _namespace_record(self._ensure_namespace(s, name))
            except Conflict:
                if attempt == _APPLY_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> NamespaceRecord:
        _check_name(name, "namespace")
        with self._session(f"creating namespace {name!r}", write=True) as s:
            if _find_namespace(s, name) is not None:
                raise Conflict(
                    f"namespace {name!r} already exists",
                    fix="choose another name, or use the existing namespace",
                    field="name",
                )
            row = Namespace(name=name, labels=dict(labels or {}), created_at=self._now())
            s.add(row)
            s.flush()
            return _namespace_record(row)

    def list_namespaces(self) -> list[NamespaceRecord]:
        with self._session("listing namespaces") as s:
            rows = s.scalars(select(Namespace).order_by(Namespace.name))
            return [_namespace_record(r) for r in rows]

    def get_namespace(self, name: str) -> NamespaceRecord:
        with self._session(f"reading namespace {name!r}") as s:
            row = _find_namespace(s, name)
            if row is None:
                raise _namespace_not_found(name)
            return _namespace_record(row)

    def delete_namespace(self, name: str) -> None:
        with self._session(f"deleting namespace {name!r}", write=True) as s:
            row = _find_namespace(s, name)
            if row is None:
                raise _namespace_not_found(name)
            names = list(
                s.scalars(select(Service.name).where(Service.namespace == name).order_by(Service.name))
            )
            if names:
                shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                raise Conflict(
                    f"namespace {name!r} still has {len(names)} service(s): {shown}",
                    fix=f"delete its services first (gse delete service -n {name} NAME), then the namespace",
                    field="name",
                )
            s.delete(row)

    def _ensure_namespace(self, s: Session, name: str) -> Namespace:
        _check_name(name, "namespace")
        row = _find_namespace(s, name)
        if row is None:
            row = Namespace(name=name, labels={}, created_at=self._now())
            s.add(row)
            s.flush()
        return row

    # -- services -------------------------------------------------------------------------------

    def apply_service(
        self,
        namespace: str,
        name: str,
        spec: dict[str, Any],
        labels: dict[str, str],
        revision: str,
        routes: list[tuple[str, str]],
    ) -> tuple[ServiceRecord, ApplyOutcome]:
        """Create or update a service and replace its routes, all in one transaction.

        The generation goes up only when the spec changes. If another service holds one of the
        routes, Conflict names it and nothing at all is written.
        """
        _check_name(name, "service")
        wanted = _normalize_routes(routes)
        for attempt in range(_APPLY_ATTEMPTS):
            try:
                with self._session(f"applying service {namespace}/{name}", write=True) as s:
                    return self._apply(s, namespace, name, spec, labels, revision, wanted)
            except _Retry:
                if attempt == _APPLY_ATTEMPTS - 1:
                    raise Conflict(
                        f"service {namespace}/{name} is being changed by someone else at the same time",
                        fix="apply it again",
                    ) from None
        raise AssertionError("unreachable")

    def _apply(
        self,
        s: Session,
        namespace: str,
        name: str,
        spec: dict[str, Any],
        labels: dict[str, str],
        revision: str,
        wanted: list[tuple[str, str]],
    ) -> tuple[ServiceRecord, ApplyOutcome]:
        try:
            self._ensure_namespace(s, namespace)
            row = s.scalars(
                select(Service).where(Service.namespace == namespace, Service.name == name).with_for_update()
            ).one_or_none()
            if row is not None and row.deleting:
                raise Conflict(
                    f"service {namespace}/{name} is being deleted",
                    fix="wait until it is gone (gse get services), then apply it again",
                )
            _check_routes_free(s, wanted, row.id if row is not None else None)
            now = self._now()
            if row is None:
                row = Service(
                    namespace=namespace,
                    name=name,
                    spec=copy.deepcopy(spec),
                    labels=dict(labels),
                    revision=revision,
                    generation=1,
                    observed_generation=0,
                    status={},
                    deleting=False,
                    created_at=now,
                    updated_at=now,
                )
                s.add(row)
                s.flush()
                _replace_routes(s, row.id, wanted)
                s.flush()
                return _service_record(row), "created"
            current = sorted(_routes_of(s, row.id))
            if row.spec == spec and row.labels == labels and row.revision == revision and current == wanted:
                return _service_record(row), "unchanged"
            if row.spec != spec:
                row.spec = copy.deepcopy(spec)
                row.generation += 1
            row.labels = dict(labels)
            row.revision = revision
            row.updated_at = now
            if current != wanted:
                _replace_routes(s, row.id, wanted)
            s.flush()
            return _service_record(row), "updated"
        except IntegrityError as exc:
            raise _Retry() from exc

    def get_service(self, namespace: str, name: str) -> ServiceRecord:
        with self._session(f"reading service {namespace}/{name}") as s:
            return _service_record(_get_service_row(s, namespace, name))

    def list_services(
        self,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[ServiceRecord], int]:
        """One page of services sorted by (namespace, name), and how many match in all.

        `labels` keeps services whose labels contain every given key=value pair.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(
                f"limit {limit} is out of range", fix=f"use a limit from 1 to {MAX_PAGE}", field="limit"
            )
        if offset < 0:
            raise InvalidInput(
                f"offset {offset} is negative", fix="use an offset of 0 or more", field="offset"
            )
        query = select(Service).order_by(Service.namespace, Service.name)
        if namespace is not None:
            query = query.where(Service.namespace == namespace)
        with self._session("listing services") as s:
            if labels:
                # JSON containment differs between backends; an edge node holds few services.
                matching = [r for r in s.scalars(query) if _has_labels(r.labels, labels)]
                return [_service_record(r) for r in matching[offset : offset + limit]], len(matching)
            total = s.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
            rows = s.scalars(query.limit(limit).offset(offset))
            return [_service_record(r) for r in rows], total

    def all_services(self) -> list[ServiceRecord]:
        """Every service, including those being deleted, for the controllers."""
        with self._session("listing services") as s:
            rows = s.scalars(select(Service).order_by(Service.namespace, Service.name))
            return [_service_record(r) for r in rows]

    def scale_service(self, namespace: str, name: str, replicas: int) -> ServiceRecord:
        """Set spec.service.replicas; the generation goes up when the number changes."""
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise InvalidInput(
                f"cannot scale to {replicas!r} replicas",
                fix="give a whole number, 0 or more",
                field="replicas",
            )
        with self._session(f"scaling service {namespace}/{name}", write=True) as s:
            row = _get_service_row(s, namespace, name, for_update=True)
            if row.deleting:
                raise Conflict(f"service {namespace}/{name} is being deleted", fix="wait until it is gone")
            spec = copy.deepcopy(row.spec)
            section = spec.setdefault("service", {})
            if section.get("replicas") != replicas:
                section["replicas"] = replicas
                row.spec = spec
                row.generation += 1
                row.updated_at = self._now()
                s.flush()
            return _service_record(row)

    def mark_deleting(self, namespace: str, name: str) -> ServiceRecord:
        """Flag the service for the controllers to tear down; idempotent."""
        with self._session(f"deleting service {namespace}/{name}", write=True) as s:
            row = _get_service_row(s, namespace, name, for_update=True)
            if not row.deleting:
                row.deleting = True
                row.updated_at = self._now()
                s.flush()
            return _service_record(row)

    def remove_service(self, namespace: str, name: str) -> None:
        """Remove the service for good: its routes go with it, and so do its replica rows."""
        with self._session(f"removing service {namespace}/{name}", write=True) as s:
            row = _get_service_row(s, namespace, name)
            s.execute(delete(Replica).where(Replica.namespace == namespace, Replica.service == name))
            s.execute(delete(Service).where(Service.id == row.id))

    def update_status(
        self, namespace: str, name: str, status: dict[str, Any], observed_generation: int
    ) -> None:
        """Record what a controller observed; does nothing if the service is already gone."""
        with self._session(f"updating status of {namespace}/{name}", write=True) as s:
            row = s.scalars(
                select(Service).where(Service.namespace == namespace, Service.name == name)
            ).one_or_none()
            if row is not None:
                row.status = copy.deepcopy(status)
                row.observed_generation = observed_generation

    # -- routes ---------------------------------------------------------------------------------

    def list_routes(self, namespace: str | None = None, service: str | None = None) -> list[RouteRecord]:
        query = (
            select(Service.namespace, Service.name, Route.host, Route.path_prefix)
            .join(Service, Route.service_id == Service.id)
            .order_by(Route.host, Route.path_prefix)
        )
        if namespace is not None:
            query = query.where(Service.namespace == namespace)
        if service is not None:
            query = query.where(Service.name == service)
        with self._session("listing routes") as s:
            return [RouteRecord(ns, svc, host, prefix) for ns, svc, host, prefix in s.execute(query)]

    # -- replicas (observed mirror) -------------------------------------------------------------

    def sync_replicas(self, namespace: str, service: str, replicas: list[ReplicaRecord]) -> None:
        """Make the mirror hold exactly `replicas` for this service."""
        for r in replicas:
            if (r.namespace, r.service) != (namespace, service):
                raise InvalidInput(
                    f"replica {r.replica_id} belongs to {r.namespace}/{r.service}, not {namespace}/{service}",
                    fix="sync each service's replicas separately",
                    field="replicas",
                )
        ids = [r.replica_id for r in replicas]
        if len(set(ids)) != len(ids):
            raise InvalidInput("a replica id appears twice", fix="give each replica once", field="replicas")
        now = self._now()
        with self._session(f"syncing replicas of {namespace}/{service}", write=True) as s:
            s.execute(delete(Replica).where(Replica.namespace == namespace, Replica.service == service))
            if ids:
                s.execute(delete(Replica).where(Replica.replica_id.in_(ids)))
            s.add_all(_replica_row(r, now) for r in replicas)

    def list_replicas(self, namespace: str | None = None, service: str | None = None) -> list[ReplicaRecord]:
        query = select(Replica).order_by(Replica.namespace, Replica.service, Replica.replica_id)
        if namespace is not None:
            query = query.where(Replica.namespace == namespace)
        if service is not None:
            query = query.where(Replica.service == service)
        with self._session("listing replicas") as s:
            return [_replica_record(r) for r in s.scalars(query)]

    # -- events ---------------------------------------------------------------------------------

    def add_event(
        self,
        namespace: str,
        object_kind: str,
        object_name: str,
        controller: str,
        reason: str,
        message: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        row = Event(
            at=self._now(),
            namespace=namespace,
            object_kind=object_kind,
            object_name=object_name,
            controller=controller,
            reason=reason,
            message=message,
            data=copy.deepcopy(data or {}),
        )
        with self._session("recording an event", write=True) as s:
            s.add(row)

    def list_events(
        self, namespace: str | None = None, object_name: str | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """The newest `limit` events, newest first."""
        if not 1 <= limit <= MAX_PAGE * 10:
            raise InvalidInput(
                f"limit {limit} is out of range", fix=f"use a limit from 1 to {MAX_PAGE * 10}", field="limit"
            )
        query = select(Event).order_by(Event.id.desc()).limit(limit)
        if namespace is not None:
            query = query.where(Event.namespace == namespace)
        if object_name is not None:
            query = query.where(Event.object_name == object_name)
        with self._session("listing events") as s:
            return [_event_record(r) for r in s.scalars(query)]

    def prune_events(self, keep: int = 10000) -> int:
        """Delete all but the newest `keep` events; returns how many were deleted."""
        if keep < 0:
            raise InvalidInput(f"keep {keep} is negative", fix="keep 0 or more events", field="keep")
        with self._session("pruning events", write=True) as s:
            cutoff = s.scalar(select(Event.id).order_by(Event.id.desc()).offset(keep).limit(1))
            if cutoff is None:
                return 0
            result = s.execute(delete(Event).where(Event.id <= cutoff))
            return int(getattr(result, "rowcount", 0) or 0)

    # -- tokens ---------------------------------------------------------------------------------

    def add_token(self, name: str, token_hash: str) -> None:
        """Store a token's hash under a name (the token itself is never stored)."""
        if not name or not token_hash:
            raise InvalidInput("a token needs a name and a hash", fix="give both", field="name")
        with self._session(f"adding token {name!r}", write=True) as s:
            if s.scalar(select(Token.id).where(Token.name == name)) is not None:
                raise Conflict(
                    f"token {name!r} already exists",
                    fix="choose another name or delete it first",
                    field="name",
                )
            if s.scalar(select(Token.id).where(Token.token_hash == token_hash)) is not None:
                raise Conflict("that token is already registered", fix="generate a new token", field="token")
            s.add(Token(name=name, token_hash=token_hash, created_at=self._now(), last_used_at=None))

    def find_token(self, token_hash: str) -> TokenRecord | None:
        """The token with this hash, marked as used now; None when there is none."""
        with self._session("checking a token", write=True) as s:
            row = s.scalars(select(Token).where(Token.token_hash == token_hash)).one_or_none()
            if row is None:
                return None
            row.last_used_at = self._now()
            s.flush()
            return _token_record(row)

    def has_tokens(self) -> bool:
        with self._session("checking for tokens") as s:
            return s.scalar(select(Token.id).limit(1)) is not None

    def list_tokens(self) -> list[TokenRecord]:
        with self._session("listing tokens") as s:
            return [_token_record(r) for r in s.scalars(select(Token).order_by(Token.name))]

    def delete_token(self, name: str) -> None:
        with self._session(f"deleting token {name!r}", write=True) as s:
            result = s.execute(delete(Token).where(Token.name == name))
            if not getattr(result, "rowcount", 0):
                raise NotFound(
                    f"token {name!r} not found", fix="list tokens to see their names", field="name"
                )


class _Retry(Exception):
    """A unique key was hit by a concurrent writer; run the whole transaction again."""


# -- helpers (pure, or over one open session) ---------------------------------------------------


def _check_name(name: str, kind: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"the {kind} name is empty", fix=f"give the {kind} a name", field="name")


def _normalize_routes(routes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    wanted: set[tuple[str, str]] = set()
    for host, prefix in routes:
        if not prefix:
            raise InvalidInput(
                "a route has an empty path prefix", fix="use '/' for every path", field="routes"
            )
        wanted.add((host or "", prefix))
    return sorted(wanted)


def _has_labels(have: Mapping[str, Any], want: Mapping[str, str]) -> bool:
    return all(k in have and have[k] == v for k, v in want.items())


def _find_namespace(s: Session, name: str) -> Namespace | None:
    return s.scalars(select(Namespace).where(Namespace.name == name)).one_or_none()


def _namespace_not_found(name: str) -> NotFound:
    return NotFound(
        f"namespace {name!r} not found", fix="list namespaces with `gse get namespaces`", field="name"
    )


def _get_service_row(s: Session, namespace: str, name: str, *, for_update: bool = False) -> Service:
    query = select(Service).where(Service.namespace == namespace, Service.name == name)
    if for_update:
        query = query.with_for_update()
    row = s.scalars(query).one_or_none()
    if row is None:
        raise NotFound(
            f"service {namespace}/{name} not found",
            fix=f"list services with `gse get services -n {namespace}`, or apply it first",
            field="name",
        )
    return row


def _routes_of(s: Session, service_id: int) -> list[tuple[str, str]]:
    rows = s.execute(select(Route.host, Route.path_prefix).where(Route.service_id == service_id))
    return [(host, prefix) for host, prefix in rows]


def _check_routes_free(s: Session, wanted: list[tuple[str, str]], own_id: int | None) -> None:
    for host, prefix in wanted:
        holder = s.execute(
            select(Service.id, Service.namespace, Service.name)
            .join(Route, Route.service_id == Service.id)
            .where(Route.host == host, Route.path_prefix == prefix)
        ).one_or_none()
        if holder is not None and holder[0] != own_id:
            other = f"{holder[1]}/{holder[2]}"
            where = f"host {host!r} path {prefix!r}" if host else f"path {prefix!r} (any host)"
            raise Conflict(
                f"route {where} is already used by service {other}",
                fix=f"choose another path or host, or delete service {other} first",
                field="routes",
            )


def _replace_routes(s: Session, service_id: int, wanted: list[tuple[str, str]]) -> None:
    s.execute(delete(Route).where(Route.service_id == service_id))
    s.add_all(Route(service_id=service_id, host=host, path_prefix=prefix) for host, prefix in wanted)


def _namespace_record(row: Namespace) -> NamespaceRecord:
    return NamespaceRecord(name=row.name, labels=dict(row.labels or {}), created_at=row.created_at)


def _service_record(row: Service) -> ServiceRecord:
    return ServiceRecord(
        namespace=row.namespace,
        name=row.name,
        spec=copy.deepcopy(row.spec),
        labels=dict(row.labels or {}),
        revision=row.revision,
        generation=row.generation,
        observed_generation=row.observed_generation,
        status=copy.deepcopy(row.status or {}),
        deleting=row.deleting,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _replica_row(r: ReplicaRecord, now: datetime) -> Replica:
    return Replica(
        replica_id=r.replica_id,
        namespace=r.namespace,
        service=r.service,
        revision=r.revision,
        state=str(r.state),
        ready=bool(r.ready),
        host=r.host,
        port=r.port,
        pid=r.pid,
        node=r.node,
        attempt=r.attempt,
        message=r.message,
        started_at=r.started_at,
        updated_at=r.updated_at or now,
    )


def _replica_record(row: Replica) -> ReplicaRecord:
    return ReplicaRecord(
        replica_id=row.replica_id,
        namespace=row.namespace,
        service=row.service,
        revision=row.revision,
        state=row.state,
        ready=row.ready,
        host=row.host,
        port=row.port,
        pid=row.pid,
        node=row.node,
        attempt=row.attempt,
        message=row.message,
        started_at=row.started_at,
        updated_at=row.updated_at,
    )


def _event_record(row: Event) -> EventRecord:
    return EventRecord(
        id=row.id,
        at=row.at,
        namespace=row.namespace,
        object_kind=row.object_kind,
        object_name=row.object_name,
        controller=row.controller,
        reason=row.reason,
        message=row.message,
        data=copy.deepcopy(row.data or {}),
    )


def _token_record(row: Token) -> TokenRecord:
    return TokenRecord(
        name=row.name, token_hash=row.token_hash, created_at=row.created_at, last_used_at=row.last_used_at
    )
