"""Leader election decisions (which step, when a replica may call HubSpot, when it steps down) and the
shard a release serves (label selector parsing, the token index that replaced Kopf indexes)."""

from __future__ import annotations

import asyncio

import pytest

from hubspot_token_operator.leadership import (
    Elector, LeaderClock, LeaseRecord, LeaseTimings, NotLeading, Step, next_step,
)
from hubspot_token_operator.settings import Settings
from hubspot_token_operator.sharding import SelectorError, TokenIndex, in_shard, parse_selector

T = LeaseTimings(duration=15, renew_deadline=10, retry_period=2)


def rec(holder, rv="1", duration=15):
    return LeaseRecord(holder=holder, duration_seconds=duration, renew_time="t", transitions=0, resource_version=rv)


@pytest.mark.parametrize("record,unchanged_for,step", [
    (None, 0, Step.CREATE),
    (rec("me"), 0, Step.RENEW),
    (rec("me"), 100, Step.RENEW),
    (rec(None), 0, Step.TAKE),  # released on a clean shutdown: take it at once
    (rec("other"), 14.9, Step.WAIT),
    (rec("other"), 15, Step.TAKE),  # not renewed for its whole duration, as we saw it
    (rec("other", duration=60), 30, Step.WAIT),  # the holder's own duration counts, not ours
])
def test_next_step(record, unchanged_for, step):
    assert next_step(record, "me", unchanged_for) is step


def test_a_replica_calls_hubspot_only_while_the_lease_outlives_the_call():
    now = [100.0]
    clock = LeaderClock(T, now=lambda: now[0])
    assert not clock.leading and not clock.may_call(1)
    clock.renewed(sent_at=100.0)
    assert clock.leading and clock.may_call(10)  # 15 s left > 10 s call
    now[0] = 104.0
    assert not clock.may_call(11.5) and clock.may_call(10.5)
    with pytest.raises(NotLeading):
        clock.admit(12)
    assert not clock.must_step_down()
    now[0] = 110.5  # no successful renewal for longer than the renew deadline
    assert clock.must_step_down()
    now[0] = 115.0
    assert not clock.leading and not clock.may_call(0.001)


def test_timings_must_leave_room_for_a_renewal():
    with pytest.raises(ValueError):
        LeaseTimings(duration=10, renew_deadline=10, retry_period=2)
    with pytest.raises(ValueError):
        LeaseTimings(duration=15, renew_deadline=10, retry_period=10)


class FakeLeases:
    """Leases with resourceVersion guards, like the API server (unit tests only)."""

    def __init__(self):
        self.spec, self.rv, self.writes, self.gets = None, 0, 0, 0

    async def get_lease(self, ns, name):
        self.gets += 1
        return self._record()

    def taken_by(self, holder: str) -> None:
        """Someone else writes the lease (as another replica would)."""
        self.spec = {"holderIdentity": holder, "leaseDurationSeconds": 60, "renewTime": "t2"}
        self.rv += 1

    def _record(self):
        if self.spec is None:
            return None
        return LeaseRecord(self.spec.get("holderIdentity"), self.spec["leaseDurationSeconds"],
                           self.spec.get("renewTime"), self.spec.get("leaseTransitions", 0), str(self.rv))

    async def create_lease(self, ns, name, spec):
        from kubernetes.client import ApiException
        if self.spec is not None:
            raise ApiException(status=409)
        self.spec, self.rv = dict(spec), self.rv + 1
        self.writes += 1
        return self._record()

    async def replace_lease(self, ns, name, rv, spec):
        from kubernetes.client import ApiException
        if rv != str(self.rv):
            raise ApiException(status=409)
        self.spec, self.rv = dict(spec), self.rv + 1
        self.writes += 1
        return self._record()


def recording_elector(leases: FakeLeases, me: str, timings: LeaseTimings, events: list[str]) -> Elector:
    """An Elector whose callbacks append "<me> elected" / "<me> lost" to `events`."""
    async def elected():
        events.append(f"{me} elected")

    async def lost():
        events.append(f"{me} lost")
    return Elector(leases, "ns", "lease", timings, elected, lost, me=me)


async def until(check, timeout: float = 3.0) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < end, "timed out"
        await asyncio.sleep(0.01)


async def elected_leader(timings: LeaseTimings) -> tuple[FakeLeases, list[str], Elector]:
    """A fresh lease, and elector "a" started and leading on it (its callbacks recorded in the list)."""
    leases, events = FakeLeases(), []
    a = recording_elector(leases, "a", timings, events)
    a.start()
    await until(lambda: a.clock.leading)
    return leases, events, a


def test_two_electors_one_leader_and_a_release_hands_over_at_once(run):
    fast = LeaseTimings(duration=1.0, renew_deadline=0.6, retry_period=0.05)

    async def main():
        leases, events = FakeLeases(), []
        a, b = recording_elector(leases, "a", fast, events), recording_elector(leases, "b", fast, events)
        a.start()
        await asyncio.sleep(0.2)
        b.start()
        await asyncio.sleep(0.5)
        assert events == ["a elected"] and a.clock.leading and not b.clock.leading
        await a.stop(release=True)
        await asyncio.sleep(0.3)  # b takes the released lease within a few retry periods, not a duration
        assert events == ["a elected", "b elected"]
        assert leases.spec["holderIdentity"] == "b" and leases.spec["leaseTransitions"] == 1
        await b.stop(release=False)

    run(main())


def test_a_standby_takes_over_only_after_the_lease_went_unrenewed_for_its_duration(run):
    fast = LeaseTimings(duration=0.6, renew_deadline=0.4, retry_period=0.05)

    async def main():
        leases, events = FakeLeases(), []
        leases.spec = {"holderIdentity": "dead", "leaseDurationSeconds": 0.6, "renewTime": "t"}
        b = recording_elector(leases, "b", fast, events)
        started = asyncio.get_running_loop().time()
        b.start()
        await until(lambda: events)
        waited = asyncio.get_running_loop().time() - started
        await b.stop(release=False)
        return waited

    assert run(main()) >= 0.55


def test_a_leader_that_cannot_renew_steps_down_and_leads_again_when_it_can(run):
    fast = LeaseTimings(duration=0.6, renew_deadline=0.3, retry_period=0.05)

    async def main():
        leases, events, a = await elected_leader(fast)

        async def broken(*_):
            from kubernetes.client import ApiException
            raise ApiException(status=503)
        working = leases.get_lease, leases.replace_lease
        leases.get_lease = leases.replace_lease = broken  # the API server goes away
        await until(lambda: "a lost" in events)
        assert not a.clock.leading and not a.clock.may_call(0.01)
        leases.get_lease, leases.replace_lease = working  # back: the lease still names us: taken back at once
        await until(lambda: events.count("a elected") == 2)
        assert events == ["a elected", "a lost", "a elected"] and a.clock.leading
        await a.stop(release=False)

    run(main())


def test_a_leader_whose_lease_was_taken_never_acts_again_until_it_wins_it_back(run):
    fast = LeaseTimings(duration=0.6, renew_deadline=0.3, retry_period=0.05)

    async def main():
        leases, events, a = await elected_leader(fast)
        leases.taken_by("b")  # a partition longer than the lease, seen from the other side
        await until(lambda: "a lost" in events)
        await asyncio.sleep(0.2)
        assert events == ["a elected", "a lost"] and not a.clock.leading and not a.clock.may_call(0.01)
        await a.stop(release=True)
        assert leases.spec["holderIdentity"] == "b", "a replica that does not lead must not release the lease"

    run(main())


def test_a_leader_renews_on_top_of_its_own_write_without_reading_the_lease(run):
    """As client-go: while leading, the answer to the last renewal is the lease as it is (or the next write
    gets a 409), so each renewal is one request, not a GET and an update."""
    fast = LeaseTimings(duration=1.0, renew_deadline=0.6, retry_period=0.02)

    async def main():
        leases, events, a = await elected_leader(fast)
        gets, writes = leases.gets, leases.writes
        await until(lambda: leases.writes >= writes + 10)
        renew_gets = leases.gets - gets
        leases.taken_by("b")  # the next renewal gets a 409, reads the lease, and steps down
        await until(lambda: "a lost" in events)
        await a.stop(release=False)
        return renew_gets

    assert run(main()) == 0


def test_lease_names_are_per_shard():
    assert Settings(all_namespaces=True).lease_name() == "hubspot-token-operator"
    a = Settings(all_namespaces=True, token_selector="shard=a").lease_name()
    b = Settings(all_namespaces=True, token_selector="shard=b").lease_name()
    ns = Settings(namespaces=["x", "y"]).lease_name()
    assert len({a, b, ns, "hubspot-token-operator"}) == 4
    assert Settings(namespaces=["y", "x"]).lease_name() == ns  # order does not matter
    assert Settings(all_namespaces=True, lease="mine").lease_name() == "mine"


@pytest.mark.parametrize("text,labels,match", [
    ("shard=a", {"shard": "a"}, True),
    ("shard==a", {"shard": "b"}, False),
    ("shard!=a", {}, True),
    ("shard!=a", {"shard": "a"}, False),
    ("shard in (a, b)", {"shard": "b"}, True),
    ("shard in (a,b),tier=x", {"shard": "b"}, False),
    ("shard notin (a,b)", {"shard": "c"}, True),
    ("legacy", {"legacy": ""}, True),
    ("!legacy", {"legacy": "y"}, False),
    ("!legacy", {}, True),
    ("app.kubernetes.io/part-of=billing", {"app.kubernetes.io/part-of": "billing"}, True),
])
def test_token_selector(text, labels, match):
    assert in_shard(parse_selector(text), labels) is match


def test_empty_selector_serves_everything_and_garbage_is_refused():
    assert parse_selector("  ") is None and in_shard(None, {"x": "y"})
    with pytest.raises(SelectorError, match="cannot parse"):
        parse_selector("shard=(a")


def test_token_index_follows_spec_changes_and_deletes():
    idx = TokenIndex()
    spec = {"target": {"name": "out"}, "oauth": {"clientSecretRef": {"name": "app"},
                                                  "refreshTokenSecretRef": {"name": "rt"}}}
    idx.put("ns", "a", spec)
    idx.put("ns", "b", {"target": {"name": "out2"}, "oauth": {"clientSecretRef": {"name": "app"}}})
    assert idx.using_secret("ns", "app") == ["a", "b"]
    assert idx.in_namespace("ns") == ["a", "b"]
    idx.put("ns", "a", {"target": {"name": "moved"}, "oauth": {"clientSecretRef": {"name": "app"}}})
    assert idx.using_secret("ns", "out") == [] and idx.using_secret("ns", "moved") == ["a"]
    idx.drop("ns", "a")
    idx.drop("ns", "b")
    assert idx.by_secret == {} and idx.by_namespace == {}


def test_token_events_outside_the_shard_are_dropped_and_relabelling_moves_a_token(run):
    import types

    from hubspot_token_operator import handlers
    from hubspot_token_operator.clock import Clock
    from hubspot_token_operator.fingerprint import Fingerprinter
    from hubspot_token_operator.runtime import Runtime

    rt = Runtime(settings=Settings(token_selector="shard=a"), kube=None, clock=Clock(),
                 fingerprints=Fingerprinter(b"k" * 32))
    scheduled, forgotten = [], []
    ctx = types.SimpleNamespace(runtime=rt, queue=types.SimpleNamespace(
        schedule=lambda k, at=None, unless=None: scheduled.append(k), forget=forgotten.append))

    def body(name, shard, rv):
        return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv, "labels": {"shard": shard}},
                "spec": {"target": {"name": f"{name}-out"}}}

    handlers.on_token(ctx, "ADDED", body("mine", "a", "1"))
    handlers.on_token(ctx, "ADDED", body("theirs", "b", "2"))
    assert scheduled == [("ns", "mine")] and set(rt.tokens) == {("ns", "mine")}
    assert rt.index.using_secret("ns", "mine-out") == ["mine"] and rt.index.using_secret("ns", "theirs-out") == []
    handlers.on_token(ctx, "MODIFIED", body("mine", "b", "3"))  # relabelled into another shard
    assert rt.tokens == {} and forgotten == [("ns", "mine")] and rt.index.using_secret("ns", "mine-out") == []
    handlers.on_token(ctx, "MODIFIED", body("theirs", "a", "4"))  # and one comes in
    assert set(rt.tokens) == {("ns", "theirs")} and scheduled[-1] == ("ns", "theirs")


def test_a_failed_start_of_leading_is_tried_again_on_the_next_renewal(run):
    """E.g. the custody Secret could not be read the moment the lease was won: the replica must not hold
    the lease without working. (OperatorContext._lead also retries the read itself.)"""
    from kubernetes.client import ApiException

    fast = LeaseTimings(duration=1.0, renew_deadline=0.6, retry_period=0.05)

    async def main():
        leases, tries = FakeLeases(), []

        async def elected():
            tries.append(1)
            if len(tries) == 1:
                raise ApiException(status=503)

        async def lost():
            pass
        a = Elector(leases, "ns", "lease", fast, elected, lost, me="a")
        a.start()
        await until(lambda: len(tries) >= 2)
        await asyncio.sleep(0.2)
        await a.stop(release=False)
        return len(tries), a.elected

    assert run(main()) == (2, True)


def test_a_slow_start_of_leading_does_not_stop_the_renewals(run):
    """Reading custody can take longer than the renew deadline on a slow API server. The renewals go on
    meanwhile; before, the new leader stepped down as soon as it was done, and again, for ever."""
    fast = LeaseTimings(duration=1.0, renew_deadline=0.6, retry_period=0.05)

    async def main():
        leases, events = FakeLeases(), []

        async def elected():
            events.append("elected")
            await asyncio.sleep(1.5)  # longer than the renew deadline
            events.append("working")

        async def lost():
            events.append("lost")
        a = Elector(leases, "ns", "lease", fast, elected, lost, me="a")
        a.start()
        await until(lambda: "working" in events, timeout=5)
        await asyncio.sleep(0.5)
        await a.stop(release=False)
        return events

    assert run(main()) == ["elected", "working"]


def test_a_token_met_by_a_late_renewal_is_looked_at_again(run, monkeypatch):
    """A renewal late by a few seconds: still the leader (no step-down), but no HubSpot call may start
    (the lease is not surely ours for a whole call). The token that met that moment is looked at again
    soon; before, its reconcile returned no next time and nothing ever queued it again."""
    from datetime import timedelta

    from hubspot_token_operator import controller
    from hubspot_token_operator.clock import Clock
    from hubspot_token_operator.fingerprint import Fingerprinter
    from hubspot_token_operator.leadership import LeaderClock
    from hubspot_token_operator.runtime import Runtime
    from hubspot_token_operator.settings import Settings

    t = [6.0]
    lc = LeaderClock(LeaseTimings(15, 10, 2), now=lambda: t[0])
    lc.renewed(0.0)  # 9 s of lease left: less than a 10 s call
    assert lc.leading and not lc.must_step_down() and not lc.may_call(10)

    async def flows(rt, body, spec, rec):
        rt._admit(rt.settings.hubspot_call_deadline)  # what the HubSpot client asks before the refresh
        raise AssertionError("the call was let start")

    monkeypatch.setattr(controller, "_run_flows", flows)
    monkeypatch.setattr(controller, "parse_spec", lambda spec: object())

    async def main():
        rt = Runtime(settings=Settings(), kube=None, clock=Clock(), fingerprints=Fingerprinter(b"k" * 32))
        rt.leader = lc
        key = ("ns", "tok")
        rt.tokens[key] = {"metadata": {"namespace": "ns", "name": "tok", "resourceVersion": "1", "uid": "u"},
                          "spec": {}}
        return rt.clock.now(), await controller.reconcile(rt, key)

    before, nxt = run(main())
    assert nxt is not None and nxt - before <= timedelta(seconds=5), nxt


def test_a_new_leader_forgets_the_wakes_it_queued_as_a_standby(run):
    """A standby's watches queue a wake for every token the leader writes (urgent, as changes are). On
    election these all went first, ahead of the tokens that were due; the new leader now clears them and
    schedules every token afresh from its status."""
    from datetime import timedelta

    from hubspot_token_operator.clock import Clock
    from hubspot_token_operator.workqueue import WorkQueue

    async def main():
        clock, order = Clock(), []

        async def handler(k):
            order.append(k)

        q = WorkQueue(clock, handler, workers=1)
        for i in range(5):  # standby: the leader's writes, seen by the watch
            q.schedule(("ns", f"fresh{i}"))
        q.clear()  # OperatorContext._lead
        await q.start()
        now = clock.now()
        q.schedule(("ns", "due"), now)
        for i in range(5):
            q.schedule(("ns", f"fresh{i}"), now + timedelta(seconds=5))
        await asyncio.sleep(0.3)
        await q.stop()
        return order

    assert run(main()) == [("ns", "due")]


def test_a_lease_duration_must_be_whole_seconds():
    from hubspot_token_operator.settings import Settings

    problems = Settings(lease_duration=12.9, lease_renew_deadline=8, lease_retry_period=1, hubspot_call_deadline=5).problems()
    assert any("whole seconds" in p for p in problems), problems
    assert not Settings(lease_duration=13, lease_renew_deadline=8, lease_retry_period=1, hubspot_call_deadline=5).problems()


def test_sigterm_keeps_the_lease_while_a_refresh_is_still_in_flight(run):
    """With a refresh still running when the grace is over, the lease is not handed over (a standby would
    take it at once and could refresh the same grant): it runs out, by when every call this replica was
    let start has ended. With nothing in flight it is released at once, as before."""
    from hubspot_token_operator.clock import Clock
    from hubspot_token_operator.fingerprint import Fingerprinter
    from hubspot_token_operator.operator_main import OperatorContext
    from hubspot_token_operator.runtime import Runtime
    from hubspot_token_operator.settings import Settings

    class NoKube:
        async def close(self):
            pass

    class Recorder:
        def __init__(self):
            self.released = None

        async def stop(self, release):
            self.released = release

    async def main(slow: bool):
        ctx = OperatorContext(Settings(shutdown_grace_seconds=0.3, leader_elect=False))
        ctx.runtime = Runtime(settings=ctx.settings, kube=NoKube(), clock=Clock(), fingerprints=Fingerprinter(b"k" * 32))
        ctx.elector = Recorder()
        call = asyncio.ensure_future(ctx.runtime.critical(asyncio.sleep(2 if slow else 0.01)))
        await asyncio.sleep(0.05)
        await ctx.stop()
        call.cancel()
        return ctx.elector.released

    assert run(main(True)) is False
    assert run(main(False)) is True
