"""Two replicas of one release, and two releases sharding one namespace, on the real API server.

- One replica leads (holds the Lease) and does all the work; the other stands by and calls nobody.
- kill -9 the leader in the middle of a round of refreshes: the standby takes over after the lease
  duration and finishes the round.
- A drain (SIGTERM, as a pod deletion sends) hands over within a few retry periods: the leader finishes
  what it started, releases the lease, and the standby goes on; with rotating refresh tokens nothing is lost.
- Throughout, the simulator counts refreshes of one grant that were in flight at the same time: zero.
- Two releases with disjoint token selectors: each token is served by exactly one of them.
"""

from __future__ import annotations

import time

import pytest

from tests.cluster import faults as f
from tests.cluster import tokens as t
from tests.cluster.harness import Simulator
from tests.helpers import wait_for

# Short leases so the suite is quick; the call deadline must fit in a lease (the operator refuses otherwise).
LEASE = ("--lease-duration", "6", "--lease-renew-deadline", "4", "--lease-retry-period", "0.5",
         "--hubspot-call-deadline", "3")
N = 8


@pytest.fixture(scope="module", autouse=True)
def sole_operator(request):
    yield from f.run_without_session_operator(request, "high-availability suite")


@pytest.fixture
def sim(tmp_path):
    s = Simulator(tmp_path / "hubspot-sim.log").start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def app(sim, core, namespace):
    return f.setup_app(sim, core, namespace)


@pytest.fixture
def replicas(cluster, crds, sim, namespace, tmp_path):
    made: list[f.FaultOperator] = []

    def make(name: str, *args: str) -> f.FaultOperator:
        op = f.FaultOperator(cluster.kubeconfig, sim, tmp_path / f"{name}.log", namespace,
                             scope=("--namespace", namespace))
        op.extra_env = {"POD_NAME": f"{name}-{namespace}"}
        op.extra_args = (*LEASE, *args)
        made.append(op)
        print(f"\n{name} log: {op.log_path}", flush=True)
        return op

    try:
        yield make
    finally:
        for op in made:
            op.stop()
        for op in made:
            leaked = f.secrets_in(op.logs()) if op.log_path.exists() else []
            assert not leaked, f"secret values in {op.log_path.name}: {leaked}"


def _tokens(sim, core, custom, namespace, app, names, base_hub, labels=None):
    for i, name in enumerate(names):
        f.install(sim, core, namespace, app, name, base_hub + i)
        body = t.oauth_token(name, target=f"{name}-out", hubId=base_hub + i)
        if labels:
            body["metadata"]["labels"] = labels(name)
        t.create(custom, namespace, body)


def _refreshed_since(custom, namespace, names, before, timeout):
    return f.wait_all(names, lambda n: f.published(t.get(custom, namespace, n))
                      and f.status(custom, namespace, n).get("lastRefreshTime") != before[n], timeout=timeout)


def _lease_holder(coordination, namespace):
    leases = coordination.list_namespaced_lease(namespace).items
    return {lease.metadata.name: lease.spec.holder_identity for lease in leases}


def _reconciled(op: f.FaultOperator, namespace: str) -> list[str]:
    return op.grep(rf"{namespace}/\S+: (Refresh|Wait|Blocked|Republish|WriteBack)", limit=10_000)


@pytest.fixture
def coordination(api):
    from kubernetes import client

    return client.CoordinationV1Api(api)


@pytest.mark.timeout(240)
def test_kill_9_of_the_leader_mid_round_the_standby_finishes_it(replicas, sim, app, core, custom, coordination,
                                                                namespace):
    names = [f"k{i}" for i in range(N)]
    _tokens(sim, core, custom, namespace, app, names, 8100)
    a = replicas("a").start()
    b = replicas("b").start(ready="standby:")
    wait_for(lambda: f.wait_all(names, lambda n: f.published(t.get(custom, namespace, n)), timeout=60) == set(),
             timeout=90, what="every token published by the leader")
    assert set(_lease_holder(coordination, namespace).values()) == {f"a-{namespace}"}
    assert _reconciled(b, namespace) == [], "the standby reconciled tokens"
    # only the leader exports per-token gauges (a standby's copies would double every alert)
    assert "hubspot_token_operator_leader 1.0" in a.metrics() and "hubspot_token_operator_leader 0.0" in b.metrics()
    assert "hubspot_token_expiry_timestamp_seconds{" in a.metrics()
    assert "hubspot_token_expiry_timestamp_seconds{" not in b.metrics()
    before = {n: f.status(custom, namespace, n)["lastRefreshTime"] for n in names}

    rule = sim.faults(kind="latency", path="/oauth/2026-03/token", delay_ms=800)
    arrived = lambda: next(  # noqa: E731
        (r["fired"] for r in sim.http.get("/_sim/faults").json()["faults"] if r["id"] == rule["id"]), 0)
    sim.advance(1400)  # every token is due
    wait_for(lambda: arrived() >= 2, timeout=30, what="refreshes in flight at HubSpot")
    a.kill9()
    killed = time.monotonic()
    took_over = wait_for(lambda: "acquired lease" in b.logs() and time.monotonic(), timeout=30,
                         what="the standby took the lease")
    stuck = _refreshed_since(custom, namespace, names, before, timeout=60)
    done = time.monotonic()
    sim.clear_faults()
    stats = sim.stats()
    print(f"\nfailover: lease taken {took_over - killed:.1f}s after kill -9 (lease 6s); "
          f"round finished {done - killed:.1f}s after; refreshes per grant "
          f"{sorted(stats['refreshes_by_install'].values())}", flush=True)
    assert not stuck, f"not refreshed after the failover: {sorted(stuck)}"
    assert stats["concurrent_refreshes_of_one_grant"] == 0, "two refreshes of one grant were in flight at once"
    assert set(_lease_holder(coordination, namespace).values()) == {f"b-{namespace}"}
    # a standby takes over no earlier than the lease duration after the last renewal it saw
    assert took_over - killed >= 4.0


@pytest.mark.timeout(240)
def test_a_drain_hands_over_at_once_and_loses_no_rotated_refresh_token(replicas, sim, app, core, custom,
                                                                        coordination, namespace):
    sim.config(refresh_token_mode="rotating")  # a lost response would lose the grant
    names = [f"d{i}" for i in range(N)]
    _tokens(sim, core, custom, namespace, app, names, 8200)
    a = replicas("a").start()
    b = replicas("b").start(ready="standby:")
    assert not f.wait_all(names, lambda n: f.published(t.get(custom, namespace, n)), timeout=60)
    before = {n: f.status(custom, namespace, n)["lastRefreshTime"] for n in names}

    rule = sim.faults(kind="latency", path="/oauth/2026-03/token", delay_ms=800)
    arrived = lambda: next(  # noqa: E731
        (r["fired"] for r in sim.http.get("/_sim/faults").json()["faults"] if r["id"] == rule["id"]), 0)
    sim.advance(1400)
    wait_for(lambda: arrived() >= 2, timeout=30, what="refreshes in flight at HubSpot")
    sent = time.monotonic()
    assert a.terminate(grace=15), "the leader did not exit within its grace period"
    exited = time.monotonic()
    took_over = wait_for(lambda: "acquired lease" in b.logs() and time.monotonic(), timeout=30,
                         what="the standby took the released lease")
    stuck = _refreshed_since(custom, namespace, names, before, timeout=60)
    sim.clear_faults()
    stats = sim.stats()
    print(f"\ndrain: leader exited {exited - sent:.1f}s after SIGTERM; standby led {took_over - exited:.1f}s "
          f"after that", flush=True)
    assert "released lease" in a.logs()
    assert took_over - exited < 3.0, "a released lease should be taken within a few retry periods"
    assert not stuck, f"not refreshed after the drain: {sorted(stuck)}"
    assert stats["concurrent_refreshes_of_one_grant"] == 0
    for n in names:  # every grant still works: nothing was lost in the handover
        st = f.status(custom, namespace, n)
        assert f.cond_status(st, "ReauthRequired").get("status") != "True", f"{n} lost its grant"


@pytest.mark.timeout(240)
def test_two_shards_serve_each_token_exactly_once(replicas, sim, app, core, custom, coordination, namespace):
    names = [f"s{i}" for i in range(6)]
    shard = {n: ("a" if i % 2 == 0 else "b") for i, n in enumerate(names)}
    _tokens(sim, core, custom, namespace, app, names, 8300, labels=lambda n: {"shard": shard[n]})
    _tokens(sim, core, custom, namespace, app, ["nobody"], 8399, labels=lambda n: {"shard": "c"})
    a = replicas("shard-a", "--token-selector", "shard=a").start()
    b = replicas("shard-b", "--token-selector", "shard in (b)").start()
    assert not f.wait_all(names, lambda n: f.published(t.get(custom, namespace, n)), timeout=60)
    holders = _lease_holder(coordination, namespace)
    assert sorted(holders.values()) == sorted([f"shard-a-{namespace}", f"shard-b-{namespace}"]), holders
    served_by_a = {line.split(f"{namespace}/")[1].split(":")[0] for line in _reconciled(a, namespace)}
    served_by_b = {line.split(f"{namespace}/")[1].split(":")[0] for line in _reconciled(b, namespace)}
    assert served_by_a == {n for n in names if shard[n] == "a"}
    assert served_by_b == {n for n in names if shard[n] == "b"}
    stats = sim.stats()
    assert sorted(stats["refreshes_by_install"].values()) == [1] * len(names), stats["refreshes_by_install"]
    assert not t.get(custom, namespace, "nobody").get("status"), "a token outside every shard was served"

    # Moving a token to the other shard moves who serves it; the old shard lets go of it.
    t.patch(custom, namespace, "s0", {"metadata": {"labels": {"shard": "b"}}})
    mark_a = a.mark()
    f.request_refresh(custom, namespace, "s0", "moved")
    assert not f.wait_all(["s0"], lambda n: f.published(t.get(custom, namespace, n), after_request="moved"),
                          timeout=30)
    assert any("/s0: Refresh" in line for line in _reconciled(b, namespace))
    assert not [line for line in a.grep(rf"{namespace}/s0: ", since=mark_a)]


@pytest.mark.timeout(240)
def test_an_api_server_outage_demotes_the_leader_and_one_replica_leads_after_it(
        replicas, cluster, sim, app, core, custom, coordination, namespace):
    if not hasattr(cluster, "stop_apiserver"):
        pytest.fail("this test stops and starts kube-apiserver: it needs the local control plane")
    names = [f"o{i}" for i in range(4)]
    _tokens(sim, core, custom, namespace, app, names, 8400)
    a = replicas("a").start()
    b = replicas("b").start(ready="standby:")
    assert not f.wait_all(names, lambda n: f.published(t.get(custom, namespace, n)), timeout=60)
    marks = {op: op.mark() for op in (a, b)}
    cluster.stop_apiserver()
    try:
        # longer than the renew deadline (4 s) and the lease (6 s): nobody can be sure of the lease
        wait_for(lambda: "stepping down" in a.logs()[marks[a]:], timeout=30, what="the leader to step down")
    finally:
        cluster.start_apiserver()
    wait_for(lambda: core.list_namespaced_secret(namespace), timeout=30, what="the API server to answer again")
    assert a.alive() and b.alive(), "a replica exited: after an outage both should compete again"
    leader = wait_for(lambda: next((op for op in (a, b) if "operator started" in op.logs()[marks[op]:]), None),
                      timeout=60, what="a replica to lead after the outage")
    holder = set(_lease_holder(coordination, namespace).values())
    assert holder == {f"{'a' if leader is a else 'b'}-{namespace}"}, holder
    before = {n: f.status(custom, namespace, n)["lastRefreshTime"] for n in names}
    sim.advance(1400)
    stuck = _refreshed_since(custom, namespace, names, before, timeout=60)
    assert not stuck, f"not refreshed after the outage: {sorted(stuck)}"
    assert sim.stats()["concurrent_refreshes_of_one_grant"] == 0
    other = b if leader is a else a
    assert "operator started" not in other.logs()[marks[other]:], "both replicas led after the outage"
    # kube-controller-manager needs a while to resume namespace deletion after an API-server restart;
    # remove this test's tokens now so the next tests' "only my tokens exist" checks do not wait on it
    custom.delete_collection_namespaced_custom_object(t.GROUP, t.VERSION, namespace, t.PLURAL)
