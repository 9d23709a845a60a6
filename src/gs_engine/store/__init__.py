"""The store: desired state (namespaces, services, routes), the observed replica mirror, events and
API tokens, in SQLite (default) or PostgreSQL.

Only this package imports SQLAlchemy. Callers use `Store` and the frozen records below; every
backend failure reaches them as a `gs_engine.errors` type.
"""

from gs_engine.store.engine import normalize_url
from gs_engine.store.records import (
    ApplyOutcome,
    EventRecord,
    NamespaceRecord,
    ReplicaRecord,
    RouteRecord,
    ServiceRecord,
    TokenRecord,
)
from gs_engine.store.store import Store, utc_now

__all__ = [
    "ApplyOutcome",
    "EventRecord",
    "NamespaceRecord",
    "ReplicaRecord",
    "RouteRecord",
    "ServiceRecord",
    "Store",
    "TokenRecord",
    "normalize_url",
    "utc_now",
]
