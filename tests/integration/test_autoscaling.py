"""Autoscaling on the real engine: scale up under load, down with drain, warm standbys promoted."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import pytest

from gs_engine.harness import EngineProcess
from tests.integration.conftest import echo_service, wait_for

pytestmark = pytest.mark.integration


def kpa_service(name: str, **scaling: object) -> dict:
    doc = echo_service(name)
    doc["service"]["autoscaling"] = {
        "policy": "kpa",
        "minReplicas": 1,
        "maxReplicas": 4,
        "target": 1,
        "targetUtilizationPercentage": 100,
        "stableWindowSeconds": 4,
        "maxScaleDownRate": 100,
        **scaling,
    }
    return doc


class Load:
    """`workers` clients calling /slow in a loop; counts failures."""

    def __init__(self, url: str, workers: int, ms: int = 200) -> None:
        self.url = f"{url}/slow?ms={ms}"
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.served: Counter[str] = Counter()
        self.threads = [threading.Thread(target=self._run) for _ in range(workers)]

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self.stop.is_set():
                try:
                    response = http.get(self.url)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text[:120]}")
                else:
                    self.served[response.json()["replica"]] += 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def status(api, name: str) -> dict:
    return api.get_service("default", name)["status"]


def at_zero(api, name: str) -> bool:
    """The autoscaler has decided zero (after its first decision) and no replica is left."""
    decided = (status(api, name).get("autoscaler") or {}).get("desiredReplicas")
    return decided == 0 and not api.replicas("default", name)


def test_kpa_scales_up_under_load_and_down_with_drain(engine: EngineProcess) -> None:
    with engine.client() as api:
        api.apply(kpa_service("burst"))
        wait_for(lambda: status(api, "burst").get("readyReplicas") == 1, what="1 ready")
        url = f"{engine.gateway_url}/default/burst"
        with Load(url, workers=4) as load:
            wait_for(lambda: status(api, "burst").get("readyReplicas", 0) >= 3, timeout=30, what="scale up")
            assert load.failures == []
        # load gone: back to one replica after the stable window, draining the others first
        with Load(url, workers=1, ms=20) as trickle:
            wait_for(lambda: len(api.replicas("default", "burst")) == 1, timeout=40, what="scale down to 1")
        assert load.failures == [] and trickle.failures == []
        reasons = [e["reason"] for e in api.events("default", "burst", 100)]
        assert "ScaledUp" in reasons and "ScaledDown" in reasons
        scaled_up = next(e for e in api.events("default", "burst", 100) if e["reason"] == "ScaledUp")
        assert scaled_up["controller"] == "autoscaler"
        assert scaled_up["data"]["inputs"]["concurrency"] > 0  # the decision's inputs are kept
        described = api.get_service("default", "burst")["status"]["autoscaler"]
        assert described["policy"] == "kpa" and described["reason"]


def test_hpa_on_inflight_pods_metric(engine: EngineProcess) -> None:
    doc = echo_service("hpa-echo")
    doc["service"]["autoscaling"] = {
        "policy": "hpa",
        "minReplicas": 1,
        "maxReplicas": 3,
        "metrics": [
            {"type": "Pods", "name": "inflight", "target": {"type": "AverageValue", "averageValue": 1}}
        ],
    }
    with engine.client() as api:
        api.apply(doc)
        wait_for(lambda: status(api, "hpa-echo").get("readyReplicas") == 1, what="1 ready")
        with Load(f"{engine.gateway_url}/default/hpa-echo", workers=3, ms=300) as load:
            wait_for(lambda: status(api, "hpa-echo").get("readyReplicas", 0) == 3, timeout=30, what="hpa up")
        assert load.failures == []
        event = next(e for e in api.events("default", "hpa-echo", 100) if e["reason"] == "ScaledUp")
        conditions = {c["type"]: c for c in event["data"]["inputs"]["conditions"]}
        assert conditions["ScalingActive"]["status"] == "True"


def test_warm_standby_is_promoted_at_once(engine: EngineProcess) -> None:
    doc = kpa_service("warm", maxReplicas=3)
    doc["service"]["prewarm"] = {"minWarm": 1}
    with engine.client() as api:
        api.apply(doc)

        def settled() -> bool:
            st = status(api, "warm")
            return st.get("readyReplicas") == 1 and st.get("warmReplicas") == 1

        wait_for(settled, what="1 serving + 1 warm")
        st = status(api, "warm")
        standby = st["standby"][0]
        assert standby not in {e["replica"] for e in st["endpoints"]}
        url = f"{engine.gateway_url}/default/warm"
        with Load(url, workers=3) as load:
            wait_for(
                lambda: standby in {e["replica"] for e in status(api, "warm")["endpoints"]},
                timeout=20,
                what="the standby promoted into rotation",
            )
            wait_for(lambda: load.served[standby] > 0, timeout=10, what="the promoted replica serving")
            wait_for(
                lambda: status(api, "warm").get("warmReplicas") == 1, timeout=20, what="the pool refilled"
            )
        assert load.failures == []


def test_scale_to_zero_and_back_with_held_requests_all_answered(engine: EngineProcess) -> None:
    doc = kpa_service(
        "sleepy", minReplicas=0, maxReplicas=2, stableWindowSeconds=2, scaleToZeroGracePeriodSeconds=1
    )
    with engine.client() as api:
        api.apply(doc)
        url = f"{engine.gateway_url}/default/sleepy"
        # at zero (or on the way there), requests are held by the activator and answered
        wait_for(lambda: at_zero(api, "sleepy"), timeout=30, what="scaled to zero")
        assert status(api, "sleepy")["readyReplicas"] == 0
        results: list[int] = []

        def call() -> None:
            results.append(httpx.get(f"{url}/hello", timeout=30).status_code)

        callers = [threading.Thread(target=call) for _ in range(5)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        assert results == [200] * 5
        reasons = [e["reason"] for e in api.events("default", "sleepy", 100)]
        assert "ActivatedFromZero" in reasons
        # idle again: back to zero; a request during the scale-down is still served
        wait_for(
            lambda: status(api, "sleepy")["autoscaler"]["desiredReplicas"] == 0, timeout=30, what="zero again"
        )
        assert httpx.get(f"{url}/again", timeout=30).status_code == 200


def test_scale_from_zero_forks_from_the_kept_warm_zygote(engine: EngineProcess) -> None:
    import psutil

    doc = kpa_service(
        "forked", minReplicas=0, maxReplicas=2, stableWindowSeconds=2, scaleToZeroGracePeriodSeconds=1
    )
    doc["service"]["prewarm"] = {"zygote": {"preload": ["json"]}}
    with engine.client() as api:
        api.apply(doc)
        wait_for(lambda: at_zero(api, "forked"), timeout=30, what="scaled to zero")

        def zygote_alive() -> bool:
            for process in engine.descendants():
                try:
                    if "zygote_main" in " ".join(process.cmdline()):
                        return True
                except psutil.Error:  # exited (or a zombie not yet reaped) since it was listed
                    continue
            return False

        wait_for(zygote_alive, timeout=20, what="the zygote kept warm at zero replicas")
        answer = httpx.get(f"{engine.gateway_url}/default/forked/x", timeout=30)
        assert answer.status_code == 200, answer.text
        [replica] = api.replicas("default", "forked")
        parent = psutil.Process(replica["pid"]).parent()
        assert parent is not None and "zygote_main" in " ".join(parent.cmdline())
        api.delete_service("default", "forked")
        wait_for(lambda: not zygote_alive(), timeout=30, what="the deleted service's zygote stopped")
