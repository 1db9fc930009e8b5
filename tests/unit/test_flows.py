"""Every flow end to end in-process: controller.reconcile against FakeKube and the HubSpot simulator.

Time is explicit: the operator's clock is frozen and moves only with `World.advance`, which moves the
simulator's clock by the same amount. `passes` runs reconciles the way the work queue would (optionally
jumping to the wake-up time each pass asked for). A "crash" is a new Runtime on the same FakeKube, clock
and fingerprint key, with empty caches.

Each row is one scenario; ids name the finding they cover. Scenarios gather problems and assert once,
so a failure names everything that went wrong. Assertions are on observable effects only: Secrets,
status, Events, calls counted by the fake and by the simulator's /_sim/stats.
"""

from __future__ import annotations

import asyncio
import copy
import math
import types
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial

import httpx
import pytest

from hubspot_token_operator import GROUP, VERSION, controller
from hubspot_token_operator.clock import Clock
from hubspot_token_operator.durations import from_rfc3339, to_rfc3339
from hubspot_token_operator.fingerprint import Fingerprinter
from hubspot_token_operator.runtime import Runtime
from hubspot_token_operator.settings import Settings
from hubspot_token_operator.simulator import SimControl

from .conftest import HUB_ID, Grant
from .fakekube import FakeKube
from hubspot_token_operator.tenancy import CONSENT_LABEL

NS = "sales"
KEY = b"k" * 32
SCOPES = ["oauth", "crm.objects.contacts.read"]
REFRESH_REQUEST = "hubspot-operator.dev/refresh-requested-at"
TOKEN_INFO = "POST /oauth/v2/private-apps/get/access-token-info"

pytestmark = pytest.mark.timeout(60)


# ---- the world: simulator, fake API server, one clock -----------------------------------------------


class SimTime(Clock):
    """The operator's clock, frozen except through advance(), which moves the simulator's clock too."""

    def __init__(self, sim: SimControl) -> None:
        super().__init__()
        self.sim = sim
        self.start = datetime.fromtimestamp(math.floor(sim.now()), timezone.utc)

    def now(self) -> datetime:
        return self.start + self.offset

    def advance(self, seconds: float) -> None:
        seconds = math.ceil(seconds)
        if seconds > 0:
            self.sim.advance(seconds)
            self.set_offset(self.offset + timedelta(seconds=seconds))

    def advance_to(self, when: datetime) -> None:
        self.advance((when - self.now()).total_seconds())


@dataclass
class Pass:
    now: datetime  # operator time when the pass started
    wake: datetime | None  # what reconcile asked for
    error: BaseException | None  # what it raised (the work queue would log it and retry)
    body: dict  # the stored HubSpotToken afterwards

    @property
    def delay(self) -> float | None:
        return None if self.wake is None else (self.wake - self.now).total_seconds()

    @property
    def status(self) -> dict:
        return self.body.get("status") or {}


async def passes(rt: Runtime, key: tuple[str, str], n: int = 1, *, follow: bool = False, before=None) -> list[Pass]:
    """n reconciles of `key`. Each starts from the stored object (rt.remember, as a watch event would).
    follow=True: before each later pass, time jumps to the wake-up the previous pass asked for.
    before(i): a hook run before pass i (edit objects, inject faults, advance time)."""
    out: list[Pass] = []
    for i in range(n):
        if i and follow and out[-1].wake is not None:
            rt.clock.advance_to(out[-1].wake)
        if before is not None:
            before(i)
        if key in rt.kube.tokens:
            rt.remember(rt.kube.token(*key))
        else:  # deleted (its finalizers released): the watch's DELETED event
            rt.tokens.pop(key, None)
        now = rt.clock.now()
        try:
            wake, error = await controller.reconcile(rt, key), None
        except Exception as e:  # noqa: BLE001 - recorded, like the work queue does
            wake, error = None, e
        out.append(Pass(now, wake, error, rt.kube.token(*key) if key in rt.kube.tokens else {}))
    return out


@dataclass
class World:
    sim: SimControl
    url: str
    grant: Grant
    kube: FakeKube
    clock: SimTime
    runtimes: list[Runtime] = field(default_factory=list)

    def runtime(self, key: bytes = KEY) -> Runtime:
        settings = Settings(
            hubspot_base_url=self.url, refreshes_per_second_per_app=1000.0, metrics_port=0, rollout_poll_seconds=5.0
        )
        rt = Runtime(settings=settings, kube=self.kube, clock=self.clock, fingerprints=Fingerprinter(key))
        self.runtimes.append(rt)
        return rt

    crash = runtime  # a crash: the old Runtime and its caches are gone; API server, clock and key remain

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def advance_to_refresh(self, name: str) -> None:
        """Just past status.nextRefreshAt (which is stored truncated to whole seconds)."""
        self.clock.advance_to(from_rfc3339(self.status(name)["nextRefreshAt"]) + timedelta(seconds=1))

    # ---- objects -------------------------------------------------------------------------------------

    def oauth(self, name: str = "crm-sync", target: str = "crm-hubspot", rotating: bool = False,
              refresh_token: str | None = None, creation_policy: str = "Owner", **spec) -> tuple[str, str]:
        if rotating:
            self.sim.configure(refresh_token_mode="rotating")
        self.kube.put_secret(NS, "hubspot-app", {"client_id": self.grant.client_id, "client_secret": self.grant.client_secret})
        self.kube.put_secret(NS, f"{name}-install", {"refresh_token": refresh_token or self.grant.refresh_token})
        self.kube.add_token(NS, _token(name, {
            "type": "OAuth", "hubId": HUB_ID, "requiredScopes": ["crm.objects.contacts.read"],
            "oauth": {"clientSecretRef": {"name": "hubspot-app"}, "refreshTokenSecretRef": {"name": f"{name}-install"}},
            "target": {"name": target, "creationPolicy": creation_policy}, **spec,
        }))
        return NS, name

    def private_app(self, name: str = "reporting", target: str = "reporting-hubspot", **spec):
        app = self.sim.create_private_app(HUB_ID, scopes=["crm.objects.contacts.read"])
        self.kube.put_secret(NS, f"{name}-source", {"token": app.token})
        pa = {"tokenSecretRef": {"name": f"{name}-source"}, **spec.pop("privateApp", {})}
        self.kube.add_token(NS, _token(name, {
            "type": "PrivateApp", "hubId": HUB_ID, "privateApp": pa, "target": {"name": target}, **spec,
        }))
        return (NS, name), app

    def set_source(self, name: str, token: str) -> None:
        self.kube.put_secret(NS, f"{name}-source", {"token": token})

    def request_refresh(self, name: str) -> None:
        self.kube.edit_token(NS, name, {"metadata": {"annotations": {REFRESH_REQUEST: uuid.uuid4().hex}}})

    # ---- observations --------------------------------------------------------------------------------

    def status(self, name: str) -> dict:
        return self.kube.token(NS, name).get("status") or {}

    def cond(self, name: str, ctype: str) -> dict:
        return _cond(self.status(name), ctype)

    def refresh_token_live(self, value: str | None) -> bool:
        """Whether HubSpot still accepts a refresh token (a metadata GET: does not consume it)."""
        return bool(value) and httpx.get(f"{self.url}/oauth/v1/refresh-tokens/{value}").status_code == 200

    def refused_token_calls(self) -> dict:
        """Token-endpoint routes that answered 400 (a refresh token HubSpot no longer takes), with counts."""
        return {r: by["400"] for r, by in self.sim.stats()["requests"].items() if r.endswith("/token") and by.get("400")}

    def token_calls(self) -> int:
        return sum(sum(by.values()) for route, by in self.sim.stats()["requests"].items()
                   if route.startswith("POST /oauth/") and route.endswith("/token"))


def _token(name: str, spec: dict) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "HubSpotToken", "metadata": {"name": name}, "spec": spec}


def _cond(status: dict, ctype: str) -> dict:
    return next((c for c in status.get("conditions") or [] if c["type"] == ctype), {})


def named(name: str):
    return lambda ns, n: n == name


@pytest.fixture
def world(sim: SimControl, sim_url: str, grant: Grant) -> World:
    return World(sim=sim, url=sim_url, grant=grant, kube=FakeKube(), clock=SimTime(sim))


def check(problems: list[str]) -> None:
    assert not problems, "; ".join(problems)


# ---- F1: a failed refresh-token write-back must not lose a rotated refresh token ---------------------


async def f1_write_back_fails(w: World, status: int | None) -> None:
    key = w.oauth(rotating=True)
    if status is not None:
        w.kube.fail("replace_secret", status, times=1, when=named("crm-sync-install"))
    rt = w.runtime()
    ps = await passes(rt, key, 2, follow=True)
    w.request_refresh("crm-sync")
    ps += await passes(rt, key, 1)
    problems = []
    if any(_cond(p.status, "ReauthRequired").get("status") == "True" for p in ps):
        problems.append("went ReauthRequired")
    if not w.refresh_token_live(w.kube.text(NS, "crm-sync-install", "refresh_token")):
        problems.append("refresh-token Secret holds a refresh token HubSpot no longer accepts")
    if w.cond("crm-sync", "Ready").get("status") != "True":
        problems.append(f"not Ready after 3 passes: {w.cond('crm-sync', 'Ready').get('reason')}")
    check(problems)


# ---- F3: a rejected candidate must not switch off drift repair, verification and the overlap end ----


async def f3_rejected_candidate(w: World, then: str) -> None:
    key, app = w.private_app(privateApp={"overlap": "1h", "verifyInterval": "10m"})
    rt = w.runtime()
    await passes(rt, key)  # T1 published
    t1 = app.token
    t2 = w.sim.rotate_private_app(app.app_id, expire="later")
    w.set_source("reporting", t2)
    await passes(rt, key)  # T2 published, T1 kept as previous until +1h
    assert w.kube.text(NS, "reporting-hubspot", "previous_access_token") == t1, "setup: rotation did not happen"
    w.set_source("reporting", "pat-na1-" + str(uuid.uuid4()))  # a token HubSpot does not know
    await passes(rt, key)
    assert w.status("reporting")["privateApp"].get("lastOutcome") == "Rejected", "setup: bogus token not rejected"

    problems = []
    if then == "verify":
        before = w.status("reporting")["privateApp"].get("lastVerifiedAt")
        w.advance(11 * 60)
        w.sim.reset_stats()
        await passes(rt, key)
        after = w.status("reporting")["privateApp"].get("lastVerifiedAt")
        if w.sim.count(TOKEN_INFO) == 0 or after == before:
            problems.append("verifyInterval passed but the published token was not re-verified")
    elif then == "overlap-end":
        w.advance(61 * 60)
        await passes(rt, key)
        if w.kube.text(NS, "reporting-hubspot", "previous_access_token") is not None:
            problems.append("overlap ended but the previous token is still in the target Secret")
    else:  # target deleted, with or without an operator restart in between
        w.kube.drop_secret(NS, "reporting-hubspot")
        if then == "target-deleted-after-crash":
            rt = w.crash()
        await passes(rt, key)
        restored = w.kube.text(NS, "reporting-hubspot", "access_token") == t2
        ready = w.cond("reporting", "Ready")
        if not restored and not (ready.get("status") == "False" and ready.get("reason")):
            problems.append(f"target Secret left deleted while Ready={ready.get('status')} ({ready.get('reason')})")
    check(problems)


# ---- F4: backoff grows on every failure path ---------------------------------------------------------


def _grows(ps: list[Pass]) -> list[str]:
    problems = []
    delays = [p.delay for p in ps]
    attempts = [p.status.get("failedAttempts") for p in ps]
    if any(d is None for d in delays) or any(b <= a for a, b in zip(delays, delays[1:])):
        problems.append(f"retry delays do not grow: {delays}")
    if any(not isinstance(a, int) for a in attempts) or any(b <= a for a, b in zip(attempts, attempts[1:])):
        problems.append(f"status.failedAttempts does not grow: {attempts}")
    return problems


async def f4_target_write_fails(w: World, flow: str) -> None:
    if flow == "oauth":
        key, target = w.oauth(), "crm-hubspot"
    else:
        (key, _), target = w.private_app(), "reporting-hubspot"
    w.kube.fail("create_secret", 500, times=None, when=named(target))
    check(_grows(await passes(w.runtime(), key, 4, follow=True)))


async def f4_write_back_fails(w: World) -> None:
    key = w.oauth(rotating=True)
    w.kube.fail("replace_secret", 500, times=None, when=named("crm-sync-install"))
    check(_grows(await passes(w.runtime(), key, 4, follow=True)))


# ---- F5: whoever wakes a token for a workload event agrees with whom the rollout restarts ------------


async def f5_wake_matches_restart(w: World, selector: dict, labels: dict) -> None:
    from hubspot_token_operator import handlers, operator_main

    key, app = w.private_app(rollout={"selector": selector, "delay": "0s"})
    w.kube.add_workload(NS, "Deployment", "web", labels=labels)
    rt = w.runtime()
    await passes(rt, key)
    w.set_source("reporting", w.sim.rotate_private_app(app.app_id))
    await passes(rt, key)
    restarted = w.kube.count("patch_workload", "web") > 0

    woken: list = []
    saved = operator_main._current
    rt.index.put(NS, "reporting", rt.tokens[key]["spec"])
    operator_main.install(types.SimpleNamespace(
        runtime=rt, queue=types.SimpleNamespace(schedule=lambda k, at=None, unless=None: woken.append(k))))
    try:  # the watch handler Kopf calls for a Deployment event
        await handlers.deployment_event(event={"type": "MODIFIED"}, namespace=NS, name="web", labels=labels)
    finally:
        operator_main.install(saved)
    check([] if bool(woken) == restarted else
          [f"a Deployment event {'wakes' if woken else 'does not wake'} the token, "
           f"but the rollout {'restarts' if restarted else 'does not restart'} the Deployment"])


# ---- F13: a restart recorded in the pass that finds it complete leaves nothing pending ------------------


async def f13_restart_complete_at_once(w: World, already_restarted: bool) -> None:
    """Found by a flaky cluster test: when a target was restarted (by this token, or already by a sibling
    that changed together with it) and had rolled out by the time this token looked, the pass recorded the
    new revision but left `pendingSince` set and PreviousTokenRetirable False, and, the workload being
    complete, asked for no further look: both stayed wrong for an hour."""
    key, app = w.private_app(rollout={"targets": [{"kind": "Deployment", "name": "web"}], "delay": "0s"})
    w.kube.add_workload(NS, "Deployment", "web")
    rt = w.runtime()
    await passes(rt, key)
    w.set_source("reporting", w.sim.rotate_private_app(app.app_id))
    if already_restarted:  # a sibling's restart for the same revisions got there first: no patch of ours
        async def noop(*_a, **_k):
            return None
        w.kube.patch_workload = noop
    await passes(rt, key)  # the pass that sees the rotation restarts, and the workload is done at once
    st = w.status("reporting")
    target = st["rollout"]["targets"][0]
    check([p for p in (
        "pendingSince still set" if st["rollout"].get("pendingSince") else "",
        f"target state {target.get('state')}" if target.get("state") != "Complete" else "",
        "target revision not recorded" if target.get("revision") != st.get("restartRevision") else "",
        "PreviousTokenRetirable not True" if w.cond("reporting", "PreviousTokenRetirable").get("status") != "True" else "",
    ) if p])


# ---- F22: a settled token is left alone -----------------------------------------------------------------


async def f22_settled_token_is_quiet(w: World, applied: bool) -> None:
    """Found by the dashboard run against the demo: after a rotation's restart completed, the token was
    reconciled ~60 times a second, each pass writing a status the API server found unchanged. Two bugs
    made the loop: the rollout status carried `pendingSince: None`, which a `!=` diff always saw as a change
    (in a merge patch None deletes an absent key: no change), and the stored copy of a kubectl-applied token
    has its last-applied annotation slimmed away, so the write's response looked like a user edit
    ("changed while reconciled; again now")."""
    key, app = w.private_app(rollout={"targets": [{"kind": "Deployment", "name": "web"}], "delay": "0s"})
    if applied:  # what `kubectl apply` leaves on the object
        w.kube.tokens[key]["metadata"]["annotations"] = {
            "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"HubSpotToken"}'}
    w.kube.add_workload(NS, "Deployment", "web")
    rt = w.runtime()
    await passes(rt, key)
    w.set_source("reporting", w.sim.rotate_private_app(app.app_id))
    await passes(rt, key, 2)  # the rotation, its restart, the rollout found complete
    writes_before = sum(c.method == "patch_status" for c in w.kube.calls)
    settled = await passes(rt, key, 3)
    writes = sum(c.method == "patch_status" for c in w.kube.calls) - writes_before
    target = (w.status("reporting").get("rollout") or {}).get("targets") or [{}]
    check([p for p in (
        "" if target[0].get("state") == "Complete" else f"rollout not complete ({target[0].get('state')})",
        f"{w.kube.noop_status_writes} status writes changed nothing" if w.kube.noop_status_writes else "",
        f"{writes} status writes in 3 passes of a settled token" if writes else "",
        *(f"a settled pass asked to look again in {p.delay}s" for p in settled if p.delay is None or p.delay < 60),
    ) if p])


# ---- F23: the watch shows our own writes before their answers: no second reconcile ---------------------


async def f23_early_echoes(w: World, edit: bool) -> None:
    """Found by the 1,000-token create benchmark: 1.79 reconciles per new token. Under load the watch
    delivered the token's own status write (798 of 1,000) before the write's answer was handled, so it
    looked newer than what the runtime held and queued the token again. Here every write's watch event
    is delivered inside the write, before its answer, through the real handlers and a real WorkQueue.
    edit=True: a real change made while the reconcile runs is still reconciled again."""
    from hubspot_token_operator import handlers, operator_main
    from hubspot_token_operator.workqueue import WorkQueue

    key = w.oauth()
    w.kube.secret_cache = types.SimpleNamespace(observe=lambda *_: None, wanted=None, prune=lambda _ns: 0)
    rt = w.runtime()
    reconciles: list = []

    async def handler(k):
        reconciles.append(k)
        return await controller.reconcile(rt, k)

    q = WorkQueue(rt.clock, handler, workers=2)
    ctx = types.SimpleNamespace(runtime=rt, queue=q)
    patch_status, store = w.kube.patch_status, w.kube._store

    async def status_then_echo(namespace, name, status):
        obj = await patch_status(namespace, name, status)
        handlers.on_token(ctx, "MODIFIED", copy.deepcopy(obj))  # the watch is faster than the answer
        if edit and len(reconciles) == 1:
            handlers.on_token(ctx, "MODIFIED", w.kube.edit_token(NS, name, {"metadata": {"labels": {"x": "y"}}}))
        return obj

    def store_then_echo(ns, body):
        view = store(ns, body)
        secret = {"metadata": {"namespace": ns, "name": view.name, "resourceVersion": view.resource_version}}
        handlers.on_secret(ctx, "MODIFIED", secret)
        return view

    w.kube.patch_status, w.kube._store = status_then_echo, store_then_echo
    saved = operator_main._current
    operator_main.install(ctx)
    try:
        handlers.on_token(ctx, "ADDED", w.kube.token(*key))
        rt.tokens[key] = w.kube.token(*key)  # a first look now, not spread
        await q.start()
        q.schedule(key)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if w.status("crm-sync").get("tokenFingerprint") and not q.longest_running() and not len(q):
                break
        await asyncio.sleep(0.2)
        await q.stop()
    finally:
        operator_main.install(saved)
        w.kube.patch_status, w.kube._store = patch_status, store
    want = 2 if edit else 1
    check([p for p in (
        "" if w.status("crm-sync").get("tokenFingerprint") else "nothing was published",
        "" if len(reconciles) == want else f"{len(reconciles)} reconciles, {want} expected",
        "" if edit or q.echoes_skipped >= 2 else f"{q.echoes_skipped} early echoes recognised (status and Secret: 2)",
    ) if p])


# ---- F14: a requested refresh whose publish fails is served after the backoff, not dropped -----------


async def f14_requested_refresh_publish_fails(w: World) -> None:
    """Found by the API-outage fault test: the target write after a requested refresh got a 409 (someone
    edited the Secret meanwhile); the next pass restored the *old* token and the request counted as done."""
    key = w.oauth()
    rt = w.runtime()
    await passes(rt, key)
    first = w.status("crm-sync")["tokenFingerprint"]
    w.request_refresh("crm-sync")
    w.kube.fail("replace_secret", 409, times=1, when=named("crm-hubspot"))
    w.kube.fail("create_secret", 409, times=1, when=named("crm-hubspot"))
    runs = await passes(rt, key, 2, follow=True)  # the failed attempt, then the pass after its backoff
    request = w.kube.token(NS, "crm-sync")["metadata"]["annotations"][REFRESH_REQUEST]
    failed, retried = runs[0].status, runs[1].status
    check([p for p in (
        "the failed attempt did not back off" if not (runs[0].delay and 0 < runs[0].delay <= 60) else "",
        "the request counted as served by a failed attempt" if failed.get("lastRefreshRequest") == request else "",
        "the request was not served after the backoff" if retried.get("lastRefreshRequest") != request else "",
        "no new token after the backoff" if retried.get("tokenFingerprint") == first else "",
    ) if p])


# ---- F8: a failing restore is not a hot loop ---------------------------------------------------------


async def f8_immutable_target(w: World, flow: str) -> None:
    if flow == "oauth":
        key, target = w.oauth(), "crm-hubspot"
    else:
        (key, _), target = w.private_app(), "reporting-hubspot"
    rt = w.runtime()
    await passes(rt, key)
    assert w.kube.text(NS, target, "access_token"), "setup: nothing published"
    # Someone deletes the target and recreates it by hand, immutable.
    w.kube.drop_secret(NS, target)
    w.kube.put_secret(NS, target, {"access_token": "hand-made"}, immutable=True)
    seen = len(w.kube.events)
    ps = await passes(rt, key, 4, follow=True)
    problems = []
    delays = [p.delay for p in ps]
    if any(d is None or d < 1 for d in delays) or any(b < a for a, b in zip(delays, delays[1:])):
        problems.append(f"restore retries do not back off: delays {delays}")
    warnings = [e["reason"] for e in w.kube.events[seen:] if e["type"] == "Warning"]
    repeated = sorted({r for r in warnings if warnings.count(r) > 1})
    if repeated:
        problems.append(f"Warning Events repeat every pass: {warnings}")
    check(problems)


# ---- F10: a long Retry-After must not let Ready outlive the published token --------------------------


async def f10_retry_after_past_expiry(w: World) -> None:
    key = w.oauth()
    rt = w.runtime()
    await passes(rt, key)
    expires = from_rfc3339(w.status("crm-sync")["expiresAt"])
    w.sim.add_fault("rate_limit", path="/oauth/", retry_after=86400)
    w.advance_to_refresh("crm-sync")
    [p] = await passes(rt, key)
    assert w.status("crm-sync").get("lastFailureReason"), "setup: the refresh did not fail"
    problems = []
    if p.wake is None or p.wake > expires:
        problems.append(f"asks to be woken at {to_rfc3339(p.wake)}, after the token expires at {to_rfc3339(expires)}")
    w.clock.advance_to(expires + timedelta(seconds=1))
    await passes(rt, key)
    if w.cond("crm-sync", "Ready").get("status") != "False":
        problems.append("Ready stays True after the published token expired")
    check(problems)


# ---- F11: crashes between writes ---------------------------------------------------------------------


async def f11a_rotation_crash(w: World, how: str) -> None:
    key, app = w.private_app()
    rt = w.runtime()
    await passes(rt, key)
    t1, t2 = app.token, w.sim.rotate_private_app(app.app_id)
    w.set_source("reporting", t2)
    after_target_write = lambda ns, n: n == "reporting" and w.kube.count("replace_secret", "reporting-hubspot") > 0  # noqa: E731
    if how == "fail":
        w.kube.fail("patch_status", 500, when=after_target_write)
        await passes(rt, key)
    else:
        w.kube.hang("patch_status", when=after_target_write)
        try:
            await asyncio.wait_for(passes(rt, key), 0.5)  # the process dies while the status write hangs
        except asyncio.TimeoutError:
            pass
    w.kube.heal()
    assert w.kube.text(NS, "reporting-hubspot", "access_token") == t2, "setup: the target was not written"
    await passes(w.crash(), key)
    problems = []
    if w.kube.text(NS, "reporting-hubspot", "previous_access_token") != t1:
        problems.append("after the restart the previous token is gone from the target Secret")
    if not w.status("reporting").get("privateApp", {}).get("previousUntil"):
        problems.append("status.privateApp.previousUntil not set")
    check(problems)


async def f11b_write_back_crash(w: World) -> None:
    key = w.oauth(rotating=True, rollout={"targets": [{"kind": "Deployment", "name": "crm-sync"}], "delay": "0s"})
    w.kube.add_workload(NS, "Deployment", "crm-sync")
    rt = w.runtime()
    await passes(rt, key)
    assert w.cond("crm-sync", "Ready").get("status") == "True", "setup: not published"
    w.advance_to_refresh("crm-sync")
    old = w.kube.text(NS, "crm-sync-install", "refresh_token")
    w.kube.fail("patch_status", 500,
                when=lambda ns, n: n == "crm-sync" and w.kube.count("replace_secret", "crm-sync-install") > 0)
    await passes(rt, key)  # the due refresh; its status write fails
    w.kube.heal()
    assert w.kube.text(NS, "crm-sync-install", "refresh_token") != old, "setup: no refresh-token write-back"
    await passes(w.crash(), key, 2)
    problems = []
    if w.kube.count("patch_workload"):
        problems.append(f"{w.kube.count('patch_workload')} workload restart(s) for a routine refresh")
    if w.token_calls() != 2:
        problems.append(f"{w.token_calls()} HubSpot token calls, 2 were due")
    if w.cond("crm-sync", "ReauthRequired").get("status") == "True":
        problems.append("went ReauthRequired")
    check(problems)


async def f11c_lost_fingerprint_key(w: World, flow: str) -> None:
    rollout = {"targets": [{"kind": "Deployment", "name": "consumer"}], "delay": "0s"}
    if flow == "oauth":
        key = w.oauth(rollout=rollout)
    else:
        key, _ = w.private_app(rollout=rollout)
    w.kube.add_workload(NS, "Deployment", "consumer")
    await passes(w.runtime(), key)
    assert not w.kube.count("patch_workload"), "setup: restarted on first publish"
    w.advance(60)
    w.sim.reset_stats()
    await passes(w.crash(key=b"j" * 32), key, 2)
    problems = []
    if flow == "oauth" and w.token_calls():
        problems.append(f"{w.token_calls()} HubSpot token call(s) for a token not due")
    if w.kube.count("patch_workload"):
        problems.append(f"{w.kube.count('patch_workload')} workload restart(s) without a credential change")
    check(problems)


# ---- a change made while a reconcile ran is not lost -------------------------------------------------


async def change_during_reconcile(w: World) -> None:
    """The status write's response already carries a user's newer edit (here: a refresh request). The
    operator remembers that response, so the edit's own watch event looks like an echo; the reconcile must
    therefore look again itself (found by the apiserver-outage fault test)."""
    key = w.oauth()
    rt = w.runtime()
    await passes(rt, key)
    w.advance_to_refresh("crm-sync")  # the next pass refreshes, so it writes status
    rt.remember(w.kube.token(*key))  # the body this reconcile works from
    w.kube.edit_token(NS, "crm-sync", {"metadata": {"annotations": {REFRESH_REQUEST: "while-running"}}})
    wake = await controller.reconcile(rt, key)
    problems = []
    if wake is None or wake > rt.clock.now():
        problems.append(f"the reconcile did not ask to look again at once (wake {wake}); the edit would be lost")
    rt.remember(w.kube.token(*key))  # what the echo-filtered watch would leave us with
    await controller.reconcile(rt, key)
    if w.kube.token(*key)["status"].get("lastRefreshRequest") != "while-running":
        problems.append("the refresh request made during the reconcile was never acted on")
    check(problems)


# ---- F12: two tokens, one target Secret --------------------------------------------------------------


async def f12_shared_target(w: World) -> None:
    a = w.oauth("owner-token", target="shared-hubspot")
    second = w.sim.install(w.grant.client_id, HUB_ID, SCOPES)
    b = w.oauth("adopt-token", target="shared-hubspot", refresh_token=second, creation_policy="Adopt")
    rt = w.runtime()
    for _ in range(3):
        writes = w.kube.count("create_secret", "shared-hubspot") + w.kube.count("replace_secret", "shared-hubspot")
        await passes(rt, a)
        await passes(rt, b)
    last_round = w.kube.count("create_secret", "shared-hubspot") + w.kube.count("replace_secret", "shared-hubspot") - writes
    ready = {n: w.cond(n, "Ready") for n in ("owner-token", "adopt-token")}
    problems = []
    if last_round:
        problems.append(f"ownership still flips: {last_round} target writes in the third round")
    refused = [n for n, c in ready.items() if c.get("status") == "False"]
    if len(refused) != 1 or not ready[refused[0]].get("reason") or "shared-hubspot" not in ready[refused[0]].get("message", ""):
        problems.append("expected exactly one token refused with a reason naming Secret shared-hubspot, got "
                        + ", ".join(f"{n} Ready={c.get('status')} ({c.get('reason')})" for n, c in ready.items()))
    else:
        winner = next(n for n in ready if n not in refused)
        held = w.kube.text(NS, "shared-hubspot", "access_token")
        if rt.fingerprints.of(held or "") != w.status(winner).get("tokenFingerprint"):
            problems.append(f"{winner} is Ready but the Secret does not hold its token")
    check(problems)


# ---- a reconcile that raises leaves a condition saying why -------------------------------------------


async def raising_reconcile(w: World, flow: str, method: str) -> None:
    if flow == "oauth":
        key = w.oauth()
    else:
        key, _ = w.private_app(rollout={"selector": {"matchLabels": {"uses-hubspot": "yes"}}})
    w.kube.fail(method, 500, times=None)
    [p] = await passes(w.runtime(), key)
    st = p.status
    ready, degraded = _cond(st, "Ready"), _cond(st, "Degraded")
    said = (ready.get("status") == "False" and ready.get("reason")) or (
        method != "get_secret" and degraded.get("status") == "True" and degraded.get("reason"))
    check([] if said else [f"reconcile {'raised ' + type(p.error).__name__ if p.error else 'returned'} "
                           f"and left no condition saying why (conditions: {st.get('conditions')})"])


ROWS = [
    pytest.param(change_during_reconcile, id="change-during-reconcile-not-lost"),
    pytest.param(partial(f1_write_back_fails, status=None), id="F1-control-no-fault"),
    pytest.param(partial(f1_write_back_fails, status=500), id="F1-write-back-500"),
    pytest.param(partial(f1_write_back_fails, status=409), id="F1-write-back-409"),
    pytest.param(partial(f1_write_back_fails, status=403), id="F1-write-back-403-admission"),
    pytest.param(partial(f3_rejected_candidate, then="target-deleted"), id="F3-rejected-then-target-deleted"),
    pytest.param(partial(f3_rejected_candidate, then="target-deleted-after-crash"), id="F3-rejected-then-target-deleted-after-crash"),
    pytest.param(partial(f3_rejected_candidate, then="verify"), id="F3-rejected-still-verifies"),
    pytest.param(partial(f3_rejected_candidate, then="overlap-end"), id="F3-rejected-still-ends-overlap"),
    pytest.param(partial(f4_target_write_fails, flow="oauth"), id="F4-oauth-target-write"),
    pytest.param(partial(f4_target_write_fails, flow="private-app"), id="F4-private-app-target-write"),
    pytest.param(f4_write_back_fails, id="F4-refresh-token-write-back"),
    pytest.param(partial(f5_wake_matches_restart, selector={"matchExpressions": [
        {"key": "uses-hubspot", "operator": "In", "values": ["yes"]}]}, labels={"uses-hubspot": "yes"}),
        id="F5-matchExpressions-In"),
    pytest.param(partial(f5_wake_matches_restart, selector={"matchExpressions": [
        {"key": "uses-hubspot", "operator": "Exists"}]}, labels={"uses-hubspot": "no"}), id="F5-matchExpressions-Exists"),
    pytest.param(partial(f5_wake_matches_restart, selector={"matchLabels": {"team": "a"}, "matchExpressions": [
        {"key": "tier", "operator": "NotIn", "values": ["batch"]}]}, labels={"team": "a", "tier": "batch"}),
        id="F5-matchLabels-plus-NotIn-excluded"),
    pytest.param(partial(f5_wake_matches_restart, selector={"matchLabels": {"uses-hubspot": "yes"}},
                         labels={"uses-hubspot": "yes"}), id="F5-control-matchLabels"),
    pytest.param(partial(f13_restart_complete_at_once, already_restarted=False), id="F13-own-restart-complete-at-once"),
    pytest.param(partial(f13_restart_complete_at_once, already_restarted=True), id="F13-sibling-restart-already-complete"),
    pytest.param(partial(f22_settled_token_is_quiet, applied=False), id="F22-settled-token-quiet"),
    pytest.param(partial(f22_settled_token_is_quiet, applied=True), id="F22-settled-kubectl-applied-token-quiet"),
    pytest.param(partial(f23_early_echoes, edit=False), id="F23-early-echoes-no-second-reconcile"),
    pytest.param(partial(f23_early_echoes, edit=True), id="F23-edit-during-reconcile-still-reconciled"),
    pytest.param(f14_requested_refresh_publish_fails, id="F14-requested-refresh-publish-409"),
    pytest.param(partial(f8_immutable_target, flow="oauth"), id="F8-oauth-immutable-target"),
    pytest.param(partial(f8_immutable_target, flow="private-app"), id="F8-private-app-immutable-target"),
    pytest.param(f10_retry_after_past_expiry, id="F10-retry-after-86400"),
    pytest.param(partial(f11a_rotation_crash, how="fail"), id="F11a-status-write-fails-then-crash"),
    pytest.param(partial(f11a_rotation_crash, how="hang"), id="F11a-status-write-hangs-then-crash"),
    pytest.param(f11b_write_back_crash, id="F11b-crash-after-write-back"),
    pytest.param(partial(f11c_lost_fingerprint_key, flow="oauth"), id="F11c-oauth-new-fingerprint-key"),
    pytest.param(partial(f11c_lost_fingerprint_key, flow="private-app"), id="F11c-private-app-new-fingerprint-key"),
    pytest.param(f12_shared_target, id="F12-owner-and-adopt-on-one-secret"),
    pytest.param(partial(raising_reconcile, flow="oauth", method="get_secret"), id="raise-oauth-get-secret-500"),
    pytest.param(partial(raising_reconcile, flow="private-app", method="get_secret"), id="raise-private-app-get-secret-500"),
    pytest.param(partial(raising_reconcile, flow="private-app", method="list_workloads"), id="raise-list-workloads-500"),
]


@pytest.mark.parametrize("scenario", ROWS)
def test_flow(world: World, run, scenario) -> None:
    async def main() -> None:
        try:
            await scenario(world)
        finally:
            for rt in world.runtimes:
                await rt.close()

    run(main(), timeout=45)


# ---- F24: a tenant cannot reach a Secret they could not touch by renaming the target or by sharding ------


@pytest.mark.parametrize("kind", ["OAuth", "PrivateApp"])
def test_f24_renaming_the_target_to_a_foreign_secret_is_refused_like_naming_it_at_first(world: World, run, kind):
    """After a first publish into a Secret of its own, a token renamed to point at a Secret it did not
    create (no consent, no owner: say a Helm-made database password) is refused as TargetSecretNotOwned;
    the Secret keeps its data. Before the fix the earlier publish counted for any name."""
    async def main():
        w = world
        key = w.oauth(name="evil", target="evil-out") if kind == "OAuth" else w.private_app(name="evil", target="evil-out")[0]
        w.kube.put_secret(NS, "db-credentials", {"password": "hunter2"}, consent=False)
        rt = w.runtime()
        await passes(rt, key, 2)
        assert w.cond("evil", "Ready").get("status") == "True"
        w.kube.edit_token(NS, "evil", {"spec": {"target": {"name": "db-credentials"}}})
        await passes(rt, key, 2)
        assert w.kube.secrets[(NS, "db-credentials")].data == {"password": b"hunter2"}
        assert (w.status("evil").get("refusal") or {}).get("reason") == "TargetSecretNotOwned", w.status("evil")
        # its own Secret, recreated by someone else under the same name, is not its own either
        w.kube.edit_token(NS, "evil", {"spec": {"target": {"name": "evil-out"}}})
        await passes(rt, key, 2)
        assert w.cond("evil", "Ready").get("status") == "True", w.cond("evil", "Ready")
        assert (w.status("evil").get("refusal") or {}).get("reason") is None, w.status("evil")
        w.kube.drop_secret(NS, "evil-out")
        w.kube.put_secret(NS, "evil-out", {"other": "someone else's"}, consent=False)
        await passes(rt, key, 2)
        assert w.kube.secrets[(NS, "evil-out")].data == {"other": b"someone else's"}
        assert (w.status("evil").get("refusal") or {}).get("reason") == "TargetSecretNotOwned"
        await rt.close()

    run(main(), timeout=45)


def test_f24_a_token_of_another_shard_keeps_its_inputs_out_of_reach(world: World, run):
    """With --token-selector, a tenant labelling their token into this shard still cannot make another
    shard's token's refresh-token Secret their target (it has consent, as input Secrets do)."""
    from hubspot_token_operator import handlers
    from hubspot_token_operator.sharding import parse_selector

    async def main():
        w = world
        victim = w.oauth(name="crm-sync")  # served by shard b
        w.kube.edit_token(NS, "crm-sync", {"metadata": {"labels": {"shard": "b"}}})
        w.kube.add_token(NS, _token("evil", {
            "type": "OAuth", "hubId": HUB_ID, "oauth": {"clientSecretRef": {"name": "hubspot-app"},
                                                        "refreshTokenSecretRef": {"name": "crm-sync-install"}},
            "target": {"name": "crm-sync-install", "creationPolicy": "Adopt"}}))
        w.kube.edit_token(NS, "evil", {"metadata": {"labels": {"shard": "a"}}})
        rt = w.runtime()
        rt.selector = parse_selector("shard=a")

        class Ctx:  # what handlers.on_token uses of the operator's context
            runtime, queue = rt, type("Q", (), {"schedule": lambda *a, **k: None, "forget": lambda *a: None})()

        for name in ("crm-sync", "evil"):
            handlers.on_token(Ctx, "ADDED", w.kube.token(NS, name))
        assert victim not in rt.tokens and (NS, "evil") in rt.tokens
        before = w.kube.text(NS, "crm-sync-install", "refresh_token")
        await passes(rt, (NS, "evil"), 2)
        assert w.kube.text(NS, "crm-sync-install", "refresh_token") == before
        assert (w.status("evil").get("refusal") or {}).get("reason") == "TargetSecretIsAnInput", w.status("evil")
        handlers.on_token(Ctx, "DELETED", w.kube.token(NS, "crm-sync"))
        assert not rt.other_shard_inputs
        await rt.close()

    run(main(), timeout=45)


# ---- F25-F28: custody under refusals, deletion, siblings and shutdown ---------------------------------------


def test_f25_a_refresh_request_against_a_refused_target_spends_no_grant(world: World, run):
    """A refused target refuses whatever is refreshed for it: a refresh request then waits for the target to
    be fixed. Before, each pass called HubSpot, rotated the refresh token and rewrote its Secret, whose watch
    event queued the token again at once: a loop paced only by the per-app limit."""
    async def main():
        w = world
        w.kube.put_secret(NS, "crm-hubspot", {"other": "x"}, consent=False)  # not ours: Owner refuses it
        key = w.oauth(rotating=True)
        rt = w.runtime()
        await passes(rt, key, 2)
        assert (w.status("crm-sync").get("refusal") or {}).get("reason") == "TargetSecretNotOwned"
        calls, install = w.token_calls(), w.kube.secrets[(NS, "crm-sync-install")].resource_version
        w.request_refresh("crm-sync")
        ps = await passes(rt, key, 3)
        assert w.token_calls() == calls, "a refused target spent the grant"
        assert w.kube.secrets[(NS, "crm-sync-install")].resource_version == install
        assert all(p.wake is None or p.wake - p.now > timedelta(minutes=30) for p in ps), [p.wake for p in ps]
        w.kube.drop_secret(NS, "crm-hubspot")  # fixed: the request is served now
        await passes(rt, key, 2)
        assert w.token_calls() == calls + 1 and w.cond("crm-sync", "Ready").get("status") == "True"
        await rt.close()

    run(main(), timeout=45)


def test_f25_our_own_write_back_of_a_refresh_token_wakes_no_token(world: World, run):
    from hubspot_token_operator import handlers

    async def main():
        w = world
        key = w.oauth(rotating=True)
        rt = w.runtime()
        await passes(rt, key, 2)
        w.request_refresh("crm-sync")
        await passes(rt, key)
        s = w.kube.secrets[(NS, "crm-sync-install")]
        woken = []

        class Ctx:
            runtime = rt
            queue = type("Q", (), {"schedule": lambda self, k, *a, **kw: woken.append(k)})()

        rt.index.put(NS, "crm-sync", w.kube.token(*key)["spec"])
        w.kube.secret_cache = types.SimpleNamespace(observe=lambda *_: None)  # FakeKube has no watch cache
        handlers.on_secret(Ctx, "MODIFIED", {"metadata": {"namespace": NS, "name": s.name,
                                                          "resourceVersion": s.resource_version}, "data": {}})
        assert woken == [], "the echo of our own write-back queued the token again"
        await rt.close()

    run(main(), timeout=45)


def test_f26_revoke_on_delete_revokes_the_refresh_token_held_in_custody(world: World, run):
    """The write-back of a rotated refresh token failed, so the newest one is in custody (keyed by the grant
    it replaced) while status already names the new grant. Deleting the token revokes that newest one and
    drops it from custody; before, the spent old one was revoked and the live one stayed in custody."""
    async def main():
        w = world
        key = w.oauth(rotating=True, oauth={"clientSecretRef": {"name": "hubspot-app"},
                                            "refreshTokenSecretRef": {"name": "crm-sync-install"}, "revokeOnDelete": True})
        rt = w.runtime()
        await passes(rt, key, 2)
        w.kube.fail("replace_secret", 403, times=None, when=named("crm-sync-install"))
        w.request_refresh("crm-sync")
        await passes(rt, key)
        assert len(rt.custody) == 1
        newest = next(iter(rt.custody._pending.values())).token
        assert w.refresh_token_live(newest)
        w.kube.delete_token(NS, "crm-sync")
        await passes(rt, key, 3, follow=True)
        assert "Revoked" in w.kube.reasons("crm-sync"), w.kube.reasons("crm-sync")
        assert not w.refresh_token_live(newest), "the live refresh token in custody was not revoked"
        assert len(rt.custody) == 0
        await rt.close()

    run(main(), timeout=45)


def test_f27_a_sibling_that_waited_for_the_grant_never_calls_hubspot_with_a_spent_refresh_token(world: World, run):
    """Two tokens share one rotating grant and both are asked to refresh. The second waits for the grant's
    lock while the first rotates the refresh token; it must not then call HubSpot with the one it read
    before (invalid_grant: ReauthRequired for a grant that is fine), but look again at what is current."""
    async def main():
        w = world
        a = w.oauth(name="crm-a", target="crm-a-hubspot", rotating=True)
        w.kube.add_token(NS, _token("crm-b", {
            "type": "OAuth", "hubId": HUB_ID, "requiredScopes": ["crm.objects.contacts.read"],
            "oauth": {"clientSecretRef": {"name": "hubspot-app"}, "refreshTokenSecretRef": {"name": "crm-a-install"}},
            "target": {"name": "crm-b-hubspot"}}))
        b = (NS, "crm-b")
        rt = w.runtime()
        await passes(rt, a, 2)
        await passes(rt, b, 2)
        w.request_refresh("crm-a")
        w.request_refresh("crm-b")
        rt.remember(w.kube.token(*a))
        rt.remember(w.kube.token(*b))
        await asyncio.gather(controller.reconcile(rt, a), controller.reconcile(rt, b))
        await passes(rt, b, 2)
        for name in ("crm-a", "crm-b"):
            assert w.cond(name, "ReauthRequired").get("status") != "True", (name, w.cond(name, "ReauthRequired"))
            assert w.cond(name, "Ready").get("status") == "True", (name, w.cond(name, "Ready"))
        assert w.refresh_token_live(w.kube.text(NS, "crm-a-install", "refresh_token"))
        assert not w.refused_token_calls(), f"HubSpot was sent a spent refresh token: {w.refused_token_calls()}"
        await rt.close()

    run(main(), timeout=45)


def test_f28_a_refresh_token_held_in_memory_only_is_stored_before_another_replica_leads(world: World, run):
    """Both writes failed (the refresh-token Secret and the custody Secret): the only copy of the newest
    refresh token is in this process's memory. Stepping down or shutting down stores it once the API server
    takes it, within the grace, so the next leader (a new Runtime here) finds it and writes it back. Before,
    nothing stored it again and it was lost with the process."""
    from hubspot_token_operator.operator_main import OperatorContext

    async def main():
        w = world
        key = w.oauth(rotating=True)
        rt = w.runtime()
        await passes(rt, key, 2)
        custody = rt.settings.custody_secret
        w.kube.fail("replace_secret", 503, times=None, when=named("crm-sync-install"))
        w.kube.fail("create_secret", 503, times=None, when=named(custody))
        w.request_refresh("crm-sync")
        await passes(rt, key)
        assert rt.custody.unsaved == 1 and (NS, custody) not in w.kube.secrets
        newest = next(iter(rt.custody._pending.values())).token
        w.kube.heal()  # the API server answers again
        ctx = OperatorContext(rt.settings)
        ctx.runtime = rt
        await ctx._drain(5.0)  # what stepping down and SIGTERM do after the reconciles
        assert rt.custody.unsaved == 0
        nxt = w.crash()  # the next leader: a new process, custody read from the API server
        await nxt.custody.load()
        assert nxt.custody.held_for(w.status("crm-sync").get("grantFingerprint")) is not None
        calls = w.token_calls()
        await passes(nxt, key, 2, follow=True)  # the write-back comes first (after its backoff)
        assert w.kube.text(NS, "crm-sync-install", "refresh_token") == newest and w.token_calls() == calls
        await passes(nxt, key, 2)
        assert w.refresh_token_live(w.kube.text(NS, "crm-sync-install", "refresh_token"))
        assert w.cond("crm-sync", "Ready").get("status") == "True"
        assert not w.refused_token_calls(), f"HubSpot was sent a spent refresh token: {w.refused_token_calls()}"
        await rt.close()
        await nxt.close()

    run(main(), timeout=45)


def test_f29_a_target_given_consent_after_a_rotation_is_restarted_then(world: World, run):
    """A restart target without consent is refused (NotAllowed). The token rotates meanwhile; when the
    workload's owner then consents, it is restarted for that rotation: its pods still run the old token.
    Before, consent counted as first sight (no restart) and PreviousTokenRetirable went True."""
    async def main():
        w = world
        key, app = w.private_app(rollout={"targets": [{"kind": "Deployment", "name": "consumer"}], "delay": "0s"})
        w.kube.add_workload(NS, "Deployment", "consumer", consent=False)
        rt = w.runtime()
        await passes(rt, key, 2)
        assert not w.kube.count("patch_workload")
        w.set_source("reporting", w.sim.rotate_private_app(app.app_id, "later"))  # the person rotates
        await passes(rt, key, 3)
        assert not w.kube.count("patch_workload"), "a workload without consent was restarted"
        assert w.cond("reporting", "PreviousTokenRetirable").get("status") != "True"
        w.kube.workloads[(NS, "Deployment", "consumer")]["metadata"]["labels"][CONSENT_LABEL] = "true"
        await passes(rt, key, 3)
        assert w.kube.count("patch_workload") == 1, "the consumer never got the rotated token"
        await rt.close()

    run(main(), timeout=45)


def test_f30_a_token_rejected_under_a_wrong_spec_is_verified_again_once_the_spec_is_fixed(world: World, run):
    """A private-app token rejected for a spec reason (the wrong hubId pinned) is not retried while nothing
    changes, but fixing the spec, as the message says, verifies the same token again and publishes it.
    Before, the rejection stood until another token was put into the source Secret."""
    async def main():
        w = world
        key, _ = w.private_app(hubId=HUB_ID + 1)
        rt = w.runtime()
        await passes(rt, key, 2)
        assert (w.status("reporting").get("privateApp") or {}).get("lastOutcome") == "Rejected"
        assert not w.status("reporting").get("tokenFingerprint")
        info = lambda: w.sim.count("POST /oauth/v2/private-apps/get/access-token-info")  # noqa: E731
        calls = info()
        await passes(rt, key, 2)
        assert info() == calls, "a rejected token was verified again with nothing changed"
        w.kube.edit_token(NS, "reporting", {"spec": {"hubId": HUB_ID}})
        await passes(rt, key, 2)
        assert w.status("reporting").get("tokenFingerprint"), w.status("reporting").get("privateApp")
        assert w.cond("reporting", "Ready").get("status") == "True"
        await rt.close()

    run(main(), timeout=45)


def test_f31_a_periodic_verification_hubspot_does_not_answer_waits_for_its_backoff(world: World, run):
    """The hourly re-verification of a published private-app token gets a 503. Other wakes in the meantime
    (the 5 s rollout poll while a consumer rolls, Secret events) must not ask HubSpot again before the
    backoff; before, every pass did, so a rate limit was met with a call every few seconds."""
    async def main():
        w = world
        key, _ = w.private_app()
        rt = w.runtime()
        await passes(rt, key, 2)
        assert w.cond("reporting", "Ready").get("status") == "True"
        info = lambda: w.sim.count("POST /oauth/v2/private-apps/get/access-token-info")  # noqa: E731
        w.advance(2 * 3600)  # past the hourly verification
        w.sim.add_fault("server_error", path="/oauth/v2/private-apps/get/access-token-info", status=503, count=50)
        calls = info()
        for _ in range(5):  # wakes for other reasons, a second apart
            await passes(rt, key)
            w.advance(1)
        assert info() - calls == 1, f"{info() - calls} verification calls within the backoff"
        w.sim.clear_faults()
        w.advance(60)
        await passes(rt, key)
        assert info() - calls == 2 and w.status("reporting").get("failedAttempts") in (0, None)
        await rt.close()

    run(main(), timeout=45)
