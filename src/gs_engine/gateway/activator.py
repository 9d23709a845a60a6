"""The activator: requests for a service at zero wait here until a replica is ready.

A route with `activate` set and no endpoints does not answer 503: each request is held (bounded
queue per route, a deadline per request) and the activation handler is called at once, so the
autoscaler scales up now rather than at its next tick. When `set_routes` brings the route its first
ready endpoint, every held request goes on, in arrival order, in that same call.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the proxy imports this module; these names are for types only
    from gs_engine.gateway.proxy import Exchange as HeldRequest
    from gs_engine.gateway.proxy import RouteRuntime as HeldRoute


ActivationHandler = Callable[[str, str], None]  # (namespace, service)


class Activator:
    def __init__(self) -> None:
        self.handler: ActivationHandler | None = None
        self._queues: dict[str, deque[HeldRequest]] = {}
        self._deadlines: dict[int, asyncio.TimerHandle] = {}
        self.activations = 0  # handler calls, for metrics and tests

    def held(self, route_name: str) -> int:
        queue = self._queues.get(route_name)
        return len(queue) if queue else 0

    def hold(self, request: HeldRequest, route: HeldRoute, loop: asyncio.AbstractEventLoop) -> bool:
        queue = self._queues.get(route.name)
        if queue is None:
            queue = self._queues[route.name] = deque()
        if len(queue) >= route.max_held:
            return False
        queue.append(request)
        self._deadlines[id(request)] = loop.call_later(route.activation_timeout, self._expire, request)
        if self.handler is not None:
            self.activations += 1
            self.handler(route.namespace, route.service_name)
        return True

    def forget(self, request: HeldRequest) -> None:
        """The client went away while its request was held."""
        handle = self._deadlines.pop(id(request), None)
        if handle is None:
            return
        handle.cancel()
        route = request.rt
        queue = self._queues.get(route.name) if route is not None else None
        if queue is not None:
            try:
                queue.remove(request)
            except ValueError:
                pass

    def release(self, routes: Mapping[str, HeldRoute], now: float) -> None:
        """After a route table swap: send held requests to routes that now have endpoints."""
        for name in list(self._queues):
            queue = self._queues[name]
            route = routes.get(name)
            if route is None:
                while queue:
                    self._drop(queue.popleft(), "its route was removed while the request waited")
                del self._queues[name]
                continue
            if not route.pools:
                for request in queue:
                    request.rt = route  # keep the newest settings for the deadline message
                continue
            while queue:
                request = queue.popleft()
                handle = self._deadlines.pop(id(request), None)
                if handle is not None:
                    handle.cancel()
                if request.response_done:
                    continue
                request.rt = route
                request.resume(now)
            del self._queues[name]

    def _drop(self, request: HeldRequest, why: str) -> None:
        handle = self._deadlines.pop(id(request), None)
        if handle is not None:
            handle.cancel()
        if not request.response_done:
            request.expire(why)

    def _expire(self, request: HeldRequest) -> None:
        self._deadlines.pop(id(request), None)
        route = request.rt
        if route is not None:
            queue = self._queues.get(route.name)
            if queue is not None:
                try:
                    queue.remove(request)
                except ValueError:
                    pass
        if not request.response_done and route is not None:
            request.expire(
                f"no replica of service {route.service} became ready within {route.activation_timeout:g} s"
            )
