"""A small typed client for the GS-Engine REST API (used by the CLI, the demo and the tests)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx

from gs_engine.config import Settings
from gs_engine.errors import (
    BackendError,
    Conflict,
    GseError,
    InvalidInput,
    NotFound,
    Problem,
    SpecInvalid,
    TemporaryBackendError,
    Unauthorized,
    Unsupported,
)

_BY_STATUS: dict[int, type[GseError]] = {
    400: InvalidInput,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    422: SpecInvalid,
    502: BackendError,
    503: TemporaryBackendError,
}


def read_token(settings: Settings) -> str:
    env = os.environ.get("GSE_TOKEN")
    if env:
        return env.strip()
    path = settings.token_file
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise Unauthorized(
            f"no API token: {path} does not exist",
            fix="start the engine with 'gse up' (it writes the token there), or set GSE_TOKEN / --token",
        ) from None
    except PermissionError:
        raise Unauthorized(
            f"cannot read the API token in {path}", fix="run as the user who started 'gse up'"
        ) from None


def error_from_response(response: httpx.Response) -> GseError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = str(body.get("detail") or response.text[:200] or response.reason_phrase)
    problems = [
        Problem(str(p.get("field", "")), str(p.get("message", "")), str(p.get("fix", "")))
        for p in body.get("problems", []) or []
        if isinstance(p, dict)
    ]
    if "gateway-" in str(body.get("type", "")):
        return InvalidInput(
            f"{response.url} answered as the GS-Engine gateway, not its API: {detail}",
            fix="point --api-url / GSE_API_URL at the API port (GSE_API_PORT, default 7070)",
        )
    cls = _BY_STATUS.get(response.status_code, GseError)
    if response.status_code == 400 and "Unsupported" in str(body.get("type", "")):
        cls = Unsupported
    if cls is TemporaryBackendError:
        return TemporaryBackendError(detail, fix=str(body.get("fix", "")))
    return cls(detail, fix=str(body.get("fix", "")), field=str(body.get("field", "")), problems=problems)


class ApiClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, api_url: str | None = None, token: str | None = None
    ) -> ApiClient:
        return cls(
            api_url or os.environ.get("GSE_API_URL") or settings.api_url, token or read_token(settings)
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise TemporaryBackendError(
                f"cannot reach the GS-Engine API at {self.base_url}",
                fix="start it with 'gse up', or point --api-url / GSE_API_URL at a running engine",
            ) from None
        except httpx.TimeoutException:
            raise TemporaryBackendError(
                f"the GS-Engine API at {self.base_url} did not answer in time"
            ) from None
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None

    # --- services ---------------------------------------------------------------------
    def apply(self, document: dict[str, Any]) -> dict[str, Any]:
        inner = document.get("service", document)
        path = f"/api/v1/namespaces/{inner.get('namespace', 'default')}/services/{inner['name']}"
        result: dict[str, Any] = self.json("PUT", path, json=document)
        return result

    def list_services(
        self, namespace: str | None = None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": 1000}
        if namespace:
            params["namespace"] = namespace
        if selector:
            params["labelSelector"] = selector
        items: list[dict[str, Any]] = self.json("GET", "/api/v1/services", params=params)["items"]
        return items

    def get_service(self, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.json("GET", f"/api/v1/namespaces/{namespace}/services/{name}")
        return result

    def delete_service(self, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.json("DELETE", f"/api/v1/namespaces/{namespace}/services/{name}")
        return result

    def scale(self, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        result: dict[str, Any] = self.json(
            "PUT", f"/api/v1/namespaces/{namespace}/services/{name}/scale", json={"replicas": replicas}
        )
        return result

    def events(self, namespace: str, name: str, limit: int = 20) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.json(
            "GET", f"/api/v1/namespaces/{namespace}/services/{name}/events", params={"limit": limit}
        )["items"]
        return items

    def logs(self, namespace: str, name: str, tail: int | None = 200, replica: str | None = None) -> str:
        params: dict[str, Any] = {"tail": tail} if tail else {}
        if replica:
            params["replica"] = replica
        return self.request("GET", f"/api/v1/namespaces/{namespace}/services/{name}/logs", params=params).text

    def follow_logs(
        self, namespace: str, name: str, replica: str | None = None, tail: int | None = 200
    ) -> Iterator[str]:
        params: dict[str, Any] = {"follow": "true", "tail": tail or 0}
        if replica:
            params["replica"] = replica
        path = f"/api/v1/namespaces/{namespace}/services/{name}/logs"
        with self._http.stream("GET", path, params=params, timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                raise error_from_response(response)
            yield from response.iter_lines()

    # --- others -----------------------------------------------------------------------
    def replicas(self, namespace: str | None = None, service: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"namespace": namespace, "service": service}.items() if v}
        items: list[dict[str, Any]] = self.json("GET", "/api/v1/replicas", params=params)["items"]
        return items

    def nodes(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.json("GET", "/api/v1/nodes")["items"]
        return items

    def namespaces(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.json("GET", "/api/v1/namespaces")["items"]
        return items

    def simulate(self, case: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.json("POST", "/api/v1/autoscaling/simulate", json=case)
        return result
