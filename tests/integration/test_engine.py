"""The real engine (`gse up` as a child process) on loopback: deploy, heal, roll out, delete, restart."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

import httpx
import psutil
import pytest

from gs_engine.errors import Conflict, InvalidInput, NotFound, SpecInvalid, Unauthorized
from gs_engine.harness import EngineProcess
from tests.integration.conftest import echo_service, ready_count, wait_for

pytestmark = pytest.mark.integration


def running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_deploy_and_call_through_gateway(engine: EngineProcess) -> None:
    with engine.client() as api:
        created = api.apply(echo_service("echo", replicas=2))
        assert created["action"] == "created"
        wait_for(lambda: ready_count(api, "echo") == 2, what="2 ready replicas")
        status = api.get_service("default", "echo")["status"]
    assert status["url"] == f"{engine.gateway_url}/default/echo"
    seen: Counter[str] = Counter()
    with httpx.Client(base_url=status["url"]) as http:
        for i in range(40):
            response = http.post(f"/items/{i}?q=1", content=b"x" * i)
            assert response.status_code == 200
            doc = response.json()
            assert doc["path"] == f"/items/{i}?q=1"  # the route prefix is stripped
            assert doc["bodyBytes"] == i
            assert doc["forwardedFor"] == "127.0.0.1"
            assert doc["requestId"] and response.headers["x-request-id"] == doc["requestId"]
            seen[doc["replica"]] += 1
    assert len(seen) == 2, f"requests did not spread over both replicas: {seen}"


def test_killed_replica_comes_back(engine: EngineProcess) -> None:
    with engine.client() as api:
        api.apply(echo_service("heal"))
        wait_for(lambda: ready_count(api, "heal") == 1, what="a ready replica")
        [replica] = api.replicas("default", "heal")
        os.killpg(replica["pid"], signal.SIGKILL)

        def restarted() -> bool:
            rows = api.replicas("default", "heal")
            return bool(rows) and rows[0]["ready"] and rows[0]["pid"] != replica["pid"]

        wait_for(restarted, what="the replica to be restarted")
        [again] = api.replicas("default", "heal")
        assert again["id"] == replica["id"] and again["restarts"] == 1
        reasons = [e["reason"] for e in api.events("default", "heal", 50)]
        assert "Restarting" in reasons
    response = httpx.get(f"{engine.gateway_url}/default/heal/")
    assert response.status_code == 200


def test_crash_loop_shows_in_status_and_others_unaffected(engine: EngineProcess) -> None:
    with engine.client() as api:
        api.apply(echo_service("steady"))
        crashing = echo_service("crashy")
        crashing["service"]["containers"][0]["command"] = [
            "python",
            "-c",
            "import sys; print('boom'); sys.exit(3)",
        ]
        api.apply(crashing)

        def crash_looping() -> bool:
            conditions = {
                c["type"]: c for c in api.get_service("default", "crashy")["status"].get("conditions", [])
            }
            failure = conditions.get("ReplicaFailure", {})
            return failure.get("reason") == "CrashLoopBackOff" and "code 3" in failure.get("message", "")

        wait_for(crash_looping, what="CrashLoopBackOff in status")
        assert "boom" in api.logs("default", "crashy")
        wait_for(lambda: ready_count(api, "steady") == 1, what="the other service ready")
    assert httpx.get(f"{engine.gateway_url}/default/steady/x").status_code == 200
    unavailable = httpx.get(f"{engine.gateway_url}/default/crashy/x")
    assert unavailable.status_code == 503
    assert unavailable.headers["content-type"].startswith("application/problem+json")


def test_rollout_under_traffic_loses_no_request(engine: EngineProcess) -> None:
    with engine.client() as api:
        api.apply(echo_service("roll", replicas=2, version="v1"))
        wait_for(lambda: ready_count(api, "roll") == 2, what="v1 ready")
        url = f"{engine.gateway_url}/default/roll/work"
        failures: list[str] = []
        versions: Counter[str] = Counter()
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(timeout=10) as http:
                while not stop.is_set():
                    try:
                        response = http.post(url, content=b"payload")
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        continue
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text[:200]}")
                    else:
                        versions[response.json()["version"]] += 1

        workers = [threading.Thread(target=traffic) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            wait_for(lambda: versions["v1"] > 50, what="traffic on v1")
            updated = api.apply(echo_service("roll", replicas=2, version="v2"))
            assert updated["action"] == "updated" and updated["generation"] == 2

            def rolled_out() -> bool:
                rows = api.replicas("default", "roll")
                status = api.get_service("default", "roll")["status"]
                progressing = {c["type"]: c for c in status["conditions"]}["Progressing"]["reason"]
                return progressing == "RolloutComplete" and len(rows) == 2 and versions["v2"] > 50

            wait_for(rolled_out, timeout=60, what="rollout to v2 complete")
            before = versions["v1"]
        finally:
            stop.set()
            for worker in workers:
                worker.join()
    assert failures == [], failures[:5]
    assert before > 50 and versions["v2"] > 50
    with httpx.Client() as http:
        assert all(http.get(url).json()["version"] == "v2" for _ in range(20))


def test_scale_and_delete(engine: EngineProcess) -> None:
    with engine.client() as api:
        api.apply(echo_service("sized"))
        wait_for(lambda: ready_count(api, "sized") == 1, what="1 ready")
        scaled = api.scale("default", "sized", 3)
        assert scaled["spec"]["service"]["replicas"] == 3
        wait_for(lambda: ready_count(api, "sized") == 3, what="3 ready")
        api.scale("default", "sized", 1)
        wait_for(lambda: len(api.replicas("default", "sized")) == 1, what="scaled down to 1")
        pids = [r["pid"] for r in api.replicas("default", "sized")]
        api.delete_service("default", "sized")

        def gone() -> bool:
            try:
                api.get_service("default", "sized")
            except NotFound:
                return True
            return False

        wait_for(gone, what="the service removed")
        assert api.replicas("default", "sized") == []
    assert not any(running(pid) for pid in pids)
    response = httpx.get(f"{engine.gateway_url}/default/sized/")
    assert response.status_code == 404


def test_restart_keeps_services(tmp_path) -> None:
    home = tmp_path / "home"
    first = EngineProcess(home)
    first.start()
    try:
        with first.client() as api:
            api.apply(echo_service("durable", replicas=2))
            wait_for(lambda: ready_count(api, "durable") == 2, what="2 ready")
    finally:
        assert first.stop() == []
    second = EngineProcess(home, api_port=first.api_port, gateway_port=first.gateway_port)
    second.start()
    try:
        with second.client() as api:
            wait_for(lambda: ready_count(api, "durable") == 2, what="2 ready after restart")
        assert httpx.get(f"{second.gateway_url}/default/durable/").status_code == 200
    finally:
        assert second.stop() == []


def test_crashed_engine_adopts_running_replicas(tmp_path) -> None:
    home = tmp_path / "home"
    first = EngineProcess(home)
    first.start()
    with first.client() as api:
        api.apply(echo_service("adopted", replicas=1))
        wait_for(lambda: ready_count(api, "adopted") == 1, what="1 ready")
        [replica] = api.replicas("default", "adopted")
    first.kill()  # no clean shutdown: the replica keeps running
    assert psutil.pid_exists(replica["pid"])
    second = EngineProcess(home, gateway_port=first.gateway_port)
    second.start()
    try:
        with second.client() as api:
            wait_for(lambda: ready_count(api, "adopted") == 1, what="adopted replica ready")
            [again] = api.replicas("default", "adopted")
        assert again["pid"] == replica["pid"], "the running replica should be adopted, not replaced"
        assert httpx.get(f"{second.gateway_url}/default/adopted/").status_code == 200
    finally:
        assert second.stop() == []
    assert not running(replica["pid"])


# --- bad input, as a new user would send it ---------------------------------------------------
def test_bad_input_is_refused_and_nothing_changes(engine: EngineProcess) -> None:
    with engine.client() as api:
        api.apply(echo_service("keeper"))
        wait_for(lambda: ready_count(api, "keeper") == 1, what="keeper ready")
        before = api.get_service("default", "keeper")
        token = engine.token

        def put(body: bytes, name: str = "x", content_type: str = "application/yaml") -> httpx.Response:
            return httpx.put(
                f"{engine.api_url}/api/v1/namespaces/default/services/{name}",
                content=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
            )

        malformed = put(b"service: [\n")
        assert malformed.status_code == 422
        assert malformed.headers["content-type"] == "application/problem+json"
        assert "line" in malformed.json()["problems"][0]["message"]

        unknown = put(b"service:\n  name: x\n  containerz: []\n")
        fields = {p["field"] for p in unknown.json()["problems"]}
        assert unknown.status_code == 422 and "service.containerz" in fields

        capitals = put(b"service:\n  name: Bad_Name\n  containers: [{command: [python]}]\n", name="bad-name")
        assert capitals.status_code == 422
        assert capitals.json()["problems"][0]["field"] == "service.name"
        assert capitals.json()["problems"][0]["fix"]

        missing = put(b"service:\n  name: x\n  containers: [{command: [no-such-command-here]}]\n")
        assert missing.status_code == 400
        assert "command[0]" in missing.text

        image = put(b"service:\n  name: x\n  containers: [{image: 'nginx:1.25'}]\n")
        assert image.status_code == 400 and "podman" in image.text

        with pytest.raises(Conflict) as clash:
            api.apply(echo_service("thief", route={"pathPrefix": "/default/keeper"}))
        assert "default/keeper" in str(clash.value)
        with pytest.raises(NotFound):
            api.get_service("default", "thief")

        with pytest.raises(SpecInvalid):
            api.apply({"service": {"name": "x", "replicas": -1, "containers": [{"command": ["python"]}]}})
        with pytest.raises(InvalidInput):
            api.scale("default", "keeper", -3)

        after = api.get_service("default", "keeper")
        assert after["generation"] == before["generation"] and after["spec"] == before["spec"]
        names = [s["name"] for s in api.list_services()]
        assert names == ["keeper"]
    assert httpx.get(f"{engine.gateway_url}/default/keeper/").status_code == 200
    assert httpx.get(f"{engine.api_url}/readyz").status_code == 200


def test_token_is_required(engine: EngineProcess) -> None:
    base = f"{engine.api_url}/api/v1/services"
    missing = httpx.get(base)
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert httpx.get(base, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(base, headers={"Authorization": f"Bearer {engine.token}"}).status_code == 200
    assert httpx.get(f"{engine.api_url}/healthz").status_code == 200
    assert httpx.get(f"{engine.api_url}/metrics").status_code == 200
    token_file = engine.home / "admin.token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert engine.token not in (engine.home / "gse.db").read_bytes().decode("latin-1")
    with pytest.raises(Unauthorized):
        from gs_engine.client import ApiClient

        with ApiClient(engine.api_url, "wrong") as api:
            api.list_services()


def test_openapi_and_metrics(engine: EngineProcess) -> None:
    spec = httpx.get(f"{engine.api_url}/openapi.json").json()
    paths = spec["paths"]
    assert spec["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"
    assert paths["/api/v1/services"]["get"]["security"] == [{"adminToken": []}]
    assert "application/yaml" in paths["/api/v1/services"]["post"]["requestBody"]["content"]
    for path in (
        "/api/v1/services",
        "/api/v1/namespaces/{namespace}/services/{name}",
        "/api/v1/namespaces/{namespace}/services/{name}/status",
        "/api/v1/namespaces/{namespace}/services/{name}/scale",
        "/api/v1/namespaces/{namespace}/services/{name}/logs",
        "/api/v1/namespaces/{namespace}/services/{name}/events",
        "/api/v1/nodes",
        "/api/v1/replicas",
        "/healthz",
        "/metrics",
    ):
        assert path in paths, path
    with engine.client() as api:
        api.apply(echo_service("counted"))
        wait_for(lambda: ready_count(api, "counted") == 1, what="ready")
        nodes = api.nodes()
    assert nodes[0]["cpu"]["cores"] >= 1 and nodes[0]["memory"]["bytes"] > 0
    for _ in range(5):
        assert httpx.get(f"{engine.gateway_url}/default/counted/").status_code == 200
    text = httpx.get(f"{engine.api_url}/metrics").text
    assert "gse_gateway_requests_total{" in text and "default/counted" in text
    assert "gse_controller_passes" in text
