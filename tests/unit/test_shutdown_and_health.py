"""Shutdown drains (SIGTERM never cuts a refresh from its write-back), and liveness fails when wedged."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from hubspot_token_operator import health
from hubspot_token_operator.clock import Clock
from hubspot_token_operator.workqueue import WorkQueue


def test_stop_lets_reconciles_in_flight_finish(run):
    finished: list[str] = []

    async def handler(key):
        await asyncio.sleep(0.3)
        finished.append(key)
        return None

    async def main():
        q = WorkQueue(Clock(), handler, workers=2)
        await q.start()
        q.schedule("a")
        q.schedule("b")
        await asyncio.sleep(0.05)  # both taken by workers
        unfinished = await q.stop(grace=5)
        return unfinished

    assert run(main()) == 0
    assert sorted(finished) == ["a", "b"]


def test_stop_takes_no_new_work_and_cancels_after_the_grace(run):
    started: list[str] = []

    async def handler(key):
        started.append(key)
        await asyncio.sleep(30)

    async def main():
        q = WorkQueue(Clock(), handler, workers=1)
        await q.start()
        q.schedule("slow")
        await asyncio.sleep(0.05)
        q.schedule("later")  # waits behind "slow": must not start once stopping
        unfinished = await q.stop(grace=0.2)
        return unfinished

    assert run(main()) == 1
    assert started == ["slow"]


def test_a_shielded_critical_section_survives_the_cancel_of_its_reconcile(run):
    from hubspot_token_operator.fingerprint import Fingerprinter
    from hubspot_token_operator.runtime import Runtime
    from hubspot_token_operator.settings import Settings

    done: list[str] = []

    async def write_back():
        await asyncio.sleep(0.2)
        done.append("written")

    async def main():
        rt = Runtime(settings=Settings(), kube=None, clock=Clock(), fingerprints=Fingerprinter(b"k" * 32))
        task = asyncio.ensure_future(rt.critical(write_back()))
        await asyncio.sleep(0.05)
        task.cancel()  # SIGTERM's cancel of the reconcile
        still = await rt.drain_critical(timeout=5)
        return still, task.cancelled()

    still, cancelled = run(main())
    assert cancelled and still == 0 and done == ["written"]


def test_liveness_fails_when_work_is_overdue_or_a_reconcile_hangs():
    assert health.judge(0, 0, 10, 0).ok
    assert health.judge(health.OVERDUE_LIMIT - 1, health.RUNNING_LIMIT - 1, 10, 0).ok
    assert not health.judge(health.OVERDUE_LIMIT + 1, 0, 10, 0).ok
    assert not health.judge(0, health.RUNNING_LIMIT + 1, 10, 0).ok


def test_queue_reports_overdue_and_longest_running(run):
    clock = Clock()
    release = asyncio.Event

    async def main():
        gate = release()

        async def handler(key):
            await gate.wait()

        q = WorkQueue(clock, handler, workers=1)
        q.schedule("late", clock.now() - timedelta(seconds=50))
        assert q.oldest_overdue() >= 50
        await q.start()
        await asyncio.sleep(0.2)
        running = q.longest_running()
        gate.set()
        await q.stop(grace=1)
        return running, q.oldest_overdue()

    running, overdue = run(main())
    assert running > 0.1 and overdue == 0


def test_a_black_holed_api_server_fails_the_call_instead_of_hanging(run, monkeypatch):
    """A listener that accepts and never answers (a partition without resets): the call must end, as an
    ApiException (the one kind of failure callers handle), for reads and writes alike."""
    import socket
    import time

    from kubernetes.client import ApiException
    from kubernetes_asyncio import client

    from hubspot_token_operator import kube

    monkeypatch.setattr(kube, "REQUEST_TIMEOUT", (0.5, 0.5))
    monkeypatch.setattr(kube, "CALL_DEADLINE", 2.0)
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)

    async def main():
        cfg = client.Configuration()
        cfg.host = f"http://127.0.0.1:{hole.getsockname()[1]}"
        k = kube.Kube(client.ApiClient(cfg))
        outcomes = []
        try:
            for call in (k.get_secret("ns", "s"), k.patch_status("ns", "t", {"x": 1}),
                         k.create_secret("ns", {"metadata": {"name": "s"}, "data": {"k": b"v"}})):
                started = time.monotonic()
                try:
                    await call
                    outcomes.append(("answered", 0.0))
                except ApiException as e:
                    outcomes.append((e.status, time.monotonic() - started))
        finally:
            await k.close()
        return outcomes

    try:
        outcomes = run(main(), timeout=20)
    finally:
        hole.close()
    assert all(status in (503, 504) for status, _ in outcomes), outcomes  # unreachable, or past its deadline
    assert all(took < 3.0 for _, took in outcomes), outcomes


def test_a_refused_connection_is_an_api_error_too(run):
    import socket

    from kubernetes.client import ApiException
    from kubernetes_asyncio import client

    from hubspot_token_operator import kube

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now

    async def main():
        cfg = client.Configuration()
        cfg.host = f"http://127.0.0.1:{port}"
        k = kube.Kube(client.ApiClient(cfg))
        try:
            await k.get_lease("ns", "l")
        except ApiException as e:
            return e.status
        finally:
            await k.close()

    assert run(main(), timeout=10) == 503


def test_operator_stop_drains_the_queue_even_when_no_key_is_waiting(run):
    """Found by the SIGTERM fault test: a WorkQueue is falsy when nothing waits (every key in flight or
    dispatched), and `if self.queue:` skipped the drain, so reconciles waiting for a worker started
    refreshes after SIGTERM and the HubSpot client was closed under them."""
    from hubspot_token_operator.operator_main import OperatorContext
    from hubspot_token_operator.settings import Settings

    started: list[str] = []

    async def handler(key):
        started.append(key)
        await asyncio.sleep(0.3)

    async def main():
        ctx = OperatorContext(Settings(shutdown_grace_seconds=5, leader_elect=False))
        ctx.queue = WorkQueue(Clock(), handler, workers=1)
        ctx.started = True
        await ctx.queue.start()
        for k in ("a", "b", "c"):
            ctx.queue.schedule(k)
        await asyncio.sleep(0.05)  # "a" runs; "b" and "c" were dispatched and wait for the one worker
        assert len(ctx.queue) == 0
        await ctx.stop()

    run(main())
    assert started == ["a"], "work started after the stop began"


def test_drain_critical_waits_for_sections_that_start_while_it_waits(run):
    from hubspot_token_operator.fingerprint import Fingerprinter
    from hubspot_token_operator.runtime import Runtime
    from hubspot_token_operator.settings import Settings

    done: list[str] = []

    async def section(name, delay):
        await asyncio.sleep(delay)
        done.append(name)

    async def main():
        rt = Runtime(settings=Settings(), kube=None, clock=Clock(), fingerprints=Fingerprinter(b"k" * 32))
        first = asyncio.ensure_future(rt.critical(section("first", 0.1)))

        async def later():
            await asyncio.sleep(0.05)
            await rt.critical(section("second", 0.3))

        second = asyncio.ensure_future(later())
        left = await rt.drain_critical(5)
        await asyncio.gather(first, second)
        return left

    assert run(main()) == 0
    assert done == ["first", "second"]


def test_a_standby_is_alive_while_its_election_runs_and_reports_its_role():
    h = health.judge_standby(True, 3)
    assert h.ok and h.as_dict()["role"] == "standby"
    assert not health.judge_standby(False, 0).ok


def test_after_sigterm_no_new_hubspot_call_starts_and_the_drain_keeps_one_deadline(run):
    """A reconcile that reaches HubSpot after SIGTERM (it waited on a slow read) gets no call: the refresh
    token it would rotate could not be written back before the pod is killed. And the drain (reconciles,
    then critical sections, then custody) fits in one shutdownGraceSeconds, not one each."""
    import time

    from hubspot_token_operator.fingerprint import Fingerprinter
    from hubspot_token_operator.leadership import NotLeading
    from hubspot_token_operator.operator_main import OperatorContext
    from hubspot_token_operator.runtime import Runtime
    from hubspot_token_operator.settings import Settings

    calls: list[str] = []

    async def main():
        ctx = OperatorContext(Settings(shutdown_grace_seconds=1.0, leader_elect=False))

        class NoKube:
            async def close(self):
                pass

        rt = Runtime(settings=ctx.settings, kube=NoKube(), clock=Clock(), fingerprints=Fingerprinter(b"k" * 32))
        ctx.runtime = rt

        async def slow_then_call(key):
            await asyncio.sleep(0.2)  # a read that is slow: SIGTERM arrives meanwhile
            try:
                rt._admit(10.0)  # what the HubSpot client asks before every call
                calls.append(key)
            except NotLeading:
                pass
            await asyncio.sleep(30)  # and then something else hangs: the grace runs out here

        async def endless():
            await asyncio.sleep(30)

        ctx.queue = WorkQueue(Clock(), slow_then_call, workers=1)
        ctx.started = True
        await ctx.queue.start()
        ctx.queue.schedule("a")
        await asyncio.sleep(0.05)
        stuck = asyncio.ensure_future(rt.critical(endless()))  # a critical section that will not end in time
        t0 = time.monotonic()
        await ctx.stop()
        took = time.monotonic() - t0
        stuck.cancel()
        return took

    took = run(main(), timeout=10)
    assert calls == [], "a HubSpot call started after SIGTERM"
    assert took < 1.6, f"the drain took {took:.1f}s for a 1s grace"
