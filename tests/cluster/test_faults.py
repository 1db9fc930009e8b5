"""Fault suite: the operator against the real local control plane and the HubSpot simulator (real
processes, real sockets), with faults injected into each, asserting that nothing is lost.

a. kill -9 of the operator at random points of refresh rounds (rotating refresh tokens), >= 20 times;
b. the refresh-token Secret's UPDATE denied by a ValidatingAdmissionPolicy while HubSpot rotates;
c. kube-apiserver stopped for 30 s mid-round and started again: the same operator process recovers;
d. HubSpot down (503), dropped connections, and a 429 with Retry-After: 86400, past token expiry;
e. SIGTERM during a round of 10 rotating refreshes.

Isolation. Every test here runs its own operator process, `run --namespace <its test namespace>` with
that namespace also as its operator namespace (fingerprint key), against its own simulator process, and
none requests the session-wide `operator` fixture. That fixture watches *all* namespaces, so if another
module already started it, the module fixture below stops it for the duration of this module and starts
it again afterwards: one operator per namespace at a time, whatever the module order. Namespace scoping
(rather than labels) is what the operator supports, and a per-test simulator keeps simulated time,
rotation mode, faults and request counts from leaking into other tests.

Figures are printed per test (run with -s). Waits poll for a positive signal and are bounded; the fixed
windows below are fault durations or counting windows ("how many HubSpot calls in N seconds"), never a
deadline the operator has to beat.
"""

from __future__ import annotations

import os
import random
import time
from datetime import datetime

import pytest

from tests.cluster import faults as f
from tests.cluster import tokens as t
from tests.cluster.harness import Simulator
from tests.helpers import wait_for

# ---- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def sole_operator(request):
    """Stops the session-wide (all-namespaces) operator while this module runs, if it was started."""
    yield from f.run_without_session_operator(request, "fault suite")


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
def operator_proc(cluster, crds, sim, namespace, tmp_path):
    op = f.new_operator(cluster, sim, namespace, tmp_path / "operator.log")
    print(f"\noperator log: {op.log_path}", flush=True)
    try:
        yield op
    finally:
        op.stop()
        leaked = f.secrets_in(op.logs()) if op.log_path.exists() else []
        assert not leaked, f"secret values in the operator log: {leaked}"


def _seed() -> int:
    seed = int(os.environ.get("HTO_FAULT_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"fault seed: {seed} (HTO_FAULT_SEED={seed} replays the same kill points)", flush=True)
    return seed


def _install_tokens(sim, core, custom, namespace, app, names, hubs, **spec):
    for name in names:
        f.install(sim, core, namespace, app, name, hubs[name])
        t.create(custom, namespace, t.oauth_token(name, target=f"{name}-out", hubId=hubs[name], **spec))


def _all_ready(custom, namespace, names, timeout=60):
    missing = f.wait_all(names, lambda n: f.published(t.get(custom, namespace, n)), timeout=timeout)
    assert not missing, f"never Ready/TokenPublished: {sorted(missing)}"


def _force_and_verify(sim, core, custom, namespace, names, hubs, value, tally, timeout=60):
    """Forces a refresh of every token and checks that each grant still works end to end: Ready with a
    new token fingerprint, the target holding an access token HubSpot accepts for the right hub, and the
    refresh-token Secret holding a refresh token HubSpot still honours. Returns the names that failed."""
    before = {n: f.status(custom, namespace, n).get("tokenFingerprint") for n in names}
    for n in names:
        f.request_refresh(custom, namespace, n, value)
    stuck = f.wait_all(
        names, lambda n: f.published(t.get(custom, namespace, n), after_request=value, not_fingerprint=before[n]),
        timeout=timeout,
    )
    lost: set[str] = set()
    for n in names:
        obj = t.get(custom, namespace, n)
        st = obj.get("status") or {}
        problems = []
        if n in stuck:
            ready = f.cond_status(st, "Ready")
            problems.append(f"no new token published (Ready={ready.get('status')}/{ready.get('reason')}, "
                            f"ReauthRequired={f.cond_status(st, 'ReauthRequired').get('status')}, "
                            f"lastFailureReason={st.get('lastFailureReason')})")
        rt = (t.read_secret(core, namespace, f"{n}-install") or {}).get("refresh_token")
        if not f.refresh_token_live(sim, rt):
            problems.append("the refresh-token Secret holds a refresh token HubSpot no longer honours")
        access = (t.read_secret(core, namespace, f"{n}-out") or {}).get("access_token")
        if n not in stuck and f.bearer_hub(sim, access) != hubs[n]:
            problems.append("the target's access token is not accepted by HubSpot for its hub")
        if problems:
            lost.add(n)
            tally.finding(f"{n}: " + "; ".join(problems))
    return lost


# ---- a. kill -9 at random points of rotating refreshes -----------------------------------------------

KILLS = 24
KILL_TOKENS = 8


@pytest.mark.timeout(540)
def test_kill_9_at_random_points_of_rotating_refreshes_loses_no_grant(
    operator_proc, sim, app, core, custom, namespace
):
    # Under strict rotation a kill -9 that lands after HubSpot answered but before the new refresh token
    # reached any write loses the grant, and no client can close that window: the old token is dead and
    # the new one existed only in the killed process's memory. Providers that rotate refresh tokens offer a
    # reuse grace for exactly this (Okta's grace period, Auth0's reuse interval); the simulator models it,
    # and 60 s covers an operator restart here. What remains for the operator to get right, and what this
    # test demands, is everything else: write-back before publish, compare-and-swap, recovery from status.
    sim.config(refresh_token_mode="rotating", refresh_token_reuse_grace_seconds=60,
               access_token_lifetime_seconds=90)
    rng = random.Random(_seed())
    tally = f.Tally("kill -9 during rotating refreshes")
    names = [f"k{i}" for i in range(KILL_TOKENS)]
    hubs = {n: 7100 + i for i, n in enumerate(names)}
    _install_tokens(sim, core, custom, namespace, app, names, hubs)
    op = operator_proc.start()
    _all_ready(custom, namespace, names)

    answered_at_kill: list[int] = []
    latencies: list[int] = []
    bad: list[str] = []
    reauth_seen: set[str] = set()
    for i in range(KILLS):
        value = f"kill-{i}"
        annotate_first = not op.alive() and rng.random() < 0.5
        if annotate_first:  # the restarted operator finds a whole round due at start-up
            for n in names:
                f.request_refresh(custom, namespace, n, value)
        # a random HubSpot latency this round, so kills also land while requests are in flight (HubSpot
        # still answers, and rotates, after the client is gone)
        sim.clear_faults()
        delay = rng.choice([0, 0, 100, 300, 800])
        if delay:
            sim.faults(kind="latency", path="/oauth/2026-03/token", delay_ms=delay)
        latencies.append(delay)
        before = f.token_calls(sim)
        if not op.alive():
            op.start()
        if not annotate_first:
            for n in names:
                f.request_refresh(custom, namespace, n, value)
        # kill after k HubSpot answers of this round (0 = before any), plus a random slice of time so the
        # kill also lands between the answer and the refresh-token write, the publish, the status write...
        k = rng.randint(0, KILL_TOKENS)
        if not f.poll_until(lambda: f.token_calls(sim) >= before + k, timeout=15, interval=0.01):
            tally.add("kills_where_k_answers_never_came")
        time.sleep(rng.choice([0.0, rng.uniform(0, 0.05), rng.uniform(0, 0.3), rng.uniform(0, 1.0)]))
        answered_at_kill.append(f.token_calls(sim) - before)
        op.kill9()

        # the operator is dead: nothing moves, so this is exactly what it left behind
        for n in names:
            obj = t.get(custom, namespace, n)
            st = obj.get("status") or {}
            if f.cond_status(st, "ReauthRequired").get("status") == "True":
                reauth_seen.add(n)
            if f.cond_status(st, "Ready").get("status") == "True":
                access = (t.read_secret(core, namespace, f"{n}-out") or {}).get("access_token")
                if f.bearer_hub(sim, access) != hubs[n]:
                    bad.append(f"after kill {i + 1}: {n} Ready=True but its target token is refused by HubSpot")

    sim.clear_faults()
    op.start()
    lost = _force_and_verify(sim, core, custom, namespace, names, hubs, "final", tally)
    stats = sim.stats()
    tally.set(
        kills=len(answered_at_kill),
        hubspot_latency_ms_per_round=latencies,
        hubspot_answers_of_the_round_before_each_kill=answered_at_kill,
        token_endpoint_calls=stats["requests"].get(f.TOKEN_ROUTE),
        reuse_grace_used=stats.get("refresh_token_reuses"),
        reauth_required_seen_after_a_kill=sorted(reauth_seen),
        tokens_lost=len(lost),
        bad_tokens_published=len(bad),
    )
    for b in bad:
        tally.finding(b)
    if lost or bad:
        print("\n".join(op.grep(r"ReauthRequired|RefreshTokenWriteFailed|ERROR|invalid_grant")), flush=True)
    assert len(answered_at_kill) >= 20
    tally.print_and_check()


# ---- b. the refresh-token write-back denied by admission --------------------------------------------


@pytest.mark.timeout(240)
def test_refresh_token_write_back_denied_by_admission_keeps_the_grant(
    operator_proc, sim, app, api, core, custom, namespace
):
    # Strict rotation (no reuse grace): HubSpot has retired the old refresh token the moment it answers,
    # so the rotated one exists only in the operator's memory until the write-back goes through.
    sim.config(refresh_token_mode="rotating")
    tally = f.Tally("refresh-token write-back denied")
    name, secret = "wb", "wb-install"
    _install_tokens(sim, core, custom, namespace, app, [name], {name: 7200})
    op = operator_proc.start()
    _all_ready(custom, namespace, [name])
    published0 = t.read_secret(core, namespace, "wb-out")["access_token"]
    fp0 = f.status(custom, namespace, name)["tokenFingerprint"]

    policy = f.deny_secret_updates(api, namespace, secret)
    try:
        wait_for(lambda: f.update_denied(core, namespace, secret), timeout=30, what="the admission policy to apply")
        mark = op.mark()
        calls0 = f.token_calls(sim)
        f.request_refresh(custom, namespace, name, "while-denied")
        wait_for(lambda: f.token_calls(sim) > calls0, timeout=30,
                 what="HubSpot to answer (and rotate) the forced refresh")

        def write_back_failure_reported():
            deg = f.cond_status(f.status(custom, namespace, name), "Degraded")
            if deg.get("status") == "True" and ("RefreshToken" in deg.get("reason", "") or "WriteBack" in deg.get("reason", "")):
                return deg["reason"]
            return next((r for r in f.warning_reasons(core, namespace, name) if "RefreshToken" in r or "WriteBack" in r), None)

        reported = f.poll_until(write_back_failure_reported, timeout=30, interval=0.2)
        if not reported:
            tally.finding("no Degraded condition / Warning Event saying the refresh-token write-back failed")
        # keep denying for a while and watch: the held token must stay published and valid, the grant must
        # not be declared dead, and the operator must not hammer HubSpot or the API server
        start_calls = f.token_calls(sim)
        reauth_during = None
        window_end = time.monotonic() + 12
        while time.monotonic() < window_end:
            st = f.status(custom, namespace, name)
            if f.cond_status(st, "ReauthRequired").get("status") == "True" and reauth_during is None:
                reauth_during = f.cond_status(st, "ReauthRequired")
            access = t.read_secret(core, namespace, "wb-out")["access_token"]
            if f.bearer_hub(sim, access) != 7200:
                tally.finding("the target held a token HubSpot refuses while the write-back was denied")
                break
            time.sleep(0.5)
        calls_in_window = f.token_calls(sim) - start_calls
        write_failures = [r for r in f.warning_reasons(core, namespace, name) if "RefreshToken" in r or "WriteBack" in r]
        still_published = t.read_secret(core, namespace, "wb-out")["access_token"]
    finally:
        f.remove_policy(api, policy)
    wait_for(lambda: not f.update_denied(core, namespace, secret), timeout=30, what="the admission policy to go")
    if reauth_during:
        tally.finding(f"ReauthRequired=True while only the write-back was denied: {reauth_during.get('reason')}: "
                      f"{reauth_during.get('message')}")
    if calls_in_window > 4:
        tally.finding(f"{calls_in_window} HubSpot token calls in 12 s while the write was denied (hot loop)")
    if len(write_failures) > 12:
        tally.finding(f"{len(write_failures)} write-back failure Events: a hot loop on a failing write")

    lost = _force_and_verify(sim, core, custom, namespace, [name], {name: 7200}, "after-denial", tally, timeout=45)
    final = f.status(custom, namespace, name)
    if f.cond_status(final, "ReauthRequired").get("status") == "True":
        tally.finding("ReauthRequired=True at the end")
    tally.set(
        write_back_failure_reported_as=reported,
        hubspot_calls_in_12s_while_denied=calls_in_window,
        write_back_failure_events=len(write_failures),
        published_token_kept_while_denied=still_published == published0,
        fingerprint_before=fp0, tokens_lost=len(lost),
    )
    if tally.findings:
        print("\n".join(op.grep(r"Refresh|ReauthRequired|WriteFailed|ERROR|HTTP 4", since=mark)), flush=True)
    tally.print_and_check()


# ---- c. kube-apiserver down and back ----------------------------------------------------------------

OUTAGE_SECONDS = 30


@pytest.mark.timeout(300)
def test_apiserver_outage_mid_round_is_survived_by_the_same_process(
    operator_proc, cluster, sim, app, core, custom, namespace
):
    if not hasattr(cluster, "stop_apiserver"):
        pytest.fail("this test stops and starts kube-apiserver: it needs the local control plane, "
                    "not --existing-kubeconfig")
    tally = f.Tally("kube-apiserver outage")
    names = [f"ap{i}" for i in range(4)]
    hubs = {n: 7300 + i for i, n in enumerate(names)}
    _install_tokens(sim, core, custom, namespace, app, names, hubs)
    op = operator_proc.start()
    pid = op.pid
    _all_ready(custom, namespace, names)

    # mid-round: force a refresh of every token, and take the API server away once HubSpot has answered
    # the first of them (the rest of the round then meets a dead API server)
    calls0 = f.token_calls(sim)
    for n in names:
        f.request_refresh(custom, namespace, n, "outage")
    f.poll_until(lambda: f.token_calls(sim) > calls0, timeout=20, interval=0.01)
    mark = op.mark()
    cluster.stop_apiserver()
    died_during_outage = False
    try:
        end = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < end:
            if not op.alive():
                died_during_outage = True
                break
            time.sleep(0.5)
    finally:
        cluster.start_apiserver()
    wait_for(lambda: core.list_namespaced_secret(namespace), timeout=30, what="the API server to answer again")
    if died_during_outage or not op.alive():
        tally.finding(f"the operator exited during the outage (code {op.proc.poll() if op.proc else '?'})")
        print(op.tail(40), flush=True)
        tally.print_and_check()

    # Right after the API server is back (the watches are still reconnecting, each on its own backoff),
    # a user forces a refresh of every token and someone edits every target Secret. Each must take effect:
    # 1) edited targets are restored (Secret watch), 2) forced refreshes happen (HubSpotToken watch: the
    # new annotation reaches the operator only through it).
    before = {n: f.status(custom, namespace, n).get("tokenFingerprint") for n in names}
    for n in names:
        f.request_refresh(custom, namespace, n, "after-outage")
    for n in names:
        original = t.read_secret(core, namespace, f"{n}-out")
        t.put_secret(core, namespace, f"{n}-out", {**original, "access_token": f"tampered-after-outage-{n}"})
    unrestored = f.wait_all(names, lambda n: (s := t.read_secret(core, namespace, f"{n}-out")) and
                            not s["access_token"].startswith("tampered") and
                            f.bearer_hub(sim, s["access_token"]) == hubs[n], timeout=45)
    for n in sorted(unrestored):
        tally.finding(f"{n}: the edited target Secret was not restored after the outage")
    not_refreshed = f.wait_all(names, lambda n: f.published(t.get(custom, namespace, n), "after-outage", before[n]),
                               timeout=45)
    for n in sorted(not_refreshed):
        st = f.status(custom, namespace, n)
        tally.finding(f"{n}: the refresh requested right after the outage never happened (lastRefreshRequest="
                      f"{st.get('lastRefreshRequest')!r}, Ready={f.cond_status(st, 'Ready').get('reason')})")
    lost = {n for n in names if not f.refresh_token_live(sim, t.read_secret(core, namespace, f"{n}-install")["refresh_token"])}
    # 3) both watches, strictly: a new HubSpotToken whose input Secret appears only later heals at once
    # (a blocked token is not looked at again until something it reads changes)
    rt = sim.install(app["client_id"], 7399, f.SCOPES)
    t.remember(rt)
    t.create(custom, namespace, t.oauth_token("late", target="late-out", hubId=7399))
    blocked = f.poll_until(lambda: f.cond_status(f.status(custom, namespace, "late"), "Ready").get("reason")
                           == "InputsMissing", timeout=45, interval=0.2)
    if not blocked:
        tally.finding("a HubSpotToken created after the outage was never reconciled (watch dead?)")
    t.put_secret(core, namespace, "late-install", {"refresh_token": rt})
    if not f.poll_until(lambda: f.published(t.get(custom, namespace, "late")), timeout=45, interval=0.2):
        tally.finding("a Secret created after the outage did not wake its HubSpotToken")

    same = op.alive() and op.pid == pid
    if not same:
        tally.finding(f"the operator process changed (pid {pid} -> {op.pid})")
    tally.set(outage_seconds=OUTAGE_SECONDS, operator_pid_unchanged=same, tokens_lost=len(lost),
              operator_errors_during_outage=len(op.grep(r"ERROR|Request attempt", since=mark, limit=10_000)))
    if tally.findings:
        print(op.health_report(), flush=True)
        print("\n".join(op.grep(r"ERROR|escalat|Traceback|watch|liveness", since=mark, limit=30)), flush=True)
    tally.print_and_check()


# ---- d. HubSpot faults -------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_hubspot_outage_and_long_rate_limit_keep_the_token_without_hot_loops(
    operator_proc, sim, app, core, custom, namespace
):
    tally = f.Tally("HubSpot faults")
    name, hub, path = "hs", 7400, "/oauth/2026-03/token"
    _install_tokens(sim, core, custom, namespace, app, [name], {name: hub})
    op = operator_proc.start()
    _all_ready(custom, namespace, [name])

    def target_token():
        return t.read_secret(core, namespace, "hs-out")["access_token"]

    def observe(seconds: float, held: str, phase: str) -> None:
        """For `seconds`: the held token stays published and valid, and Ready stays True while it is."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if target_token() != held:
                tally.finding(f"{phase}: the published token was replaced during the fault")
                return
            if f.bearer_hub(sim, held) != hub:
                tally.finding(f"{phase}: the published token stopped working during the fault")
                return
            ready = f.cond_status(f.status(custom, namespace, name), "Ready")
            if ready.get("status") != "True":
                tally.finding(f"{phase}: Ready={ready.get('status')}/{ready.get('reason')} while a valid token is held")
                return
            time.sleep(0.5)

    # 1) HubSpot down: every token call answers 503 until cleared
    held, fp = target_token(), f.status(custom, namespace, name)["tokenFingerprint"]
    sim.faults(kind="server_error", path=path, status=503)
    f.request_refresh(custom, namespace, name, "down")
    wait_for(lambda: f.token_calls(sim, "503") >= 1, timeout=30, what="the first refresh attempt against the outage")
    at_first = f.token_calls(sim)
    observe(12, held, "HubSpot down")
    down_calls = f.token_calls(sim) - at_first
    if down_calls > 4:
        tally.finding(f"{down_calls} token calls in 12 s after the first 503 (hot loop)")
    degraded = f.cond_status(f.status(custom, namespace, name), "Degraded")
    if degraded.get("status") != "True":
        tally.finding(f"Degraded is not True during the outage: {degraded}")
    sim.clear_faults()
    f.request_refresh(custom, namespace, name, "up")
    if not f.poll_until(lambda: f.published(t.get(custom, namespace, name), "up", fp), timeout=30, interval=0.2):
        tally.finding("no recovery after the outage ended (forced refresh)")

    # 2) a burst of dropped connections: recovered by the operator's own retries
    fp = f.status(custom, namespace, name)["tokenFingerprint"]
    drops0 = f.token_calls(sim)
    sim.faults(kind="drop", path=path, count=2)
    f.request_refresh(custom, namespace, name, "drops")
    if not f.poll_until(lambda: f.published(t.get(custom, namespace, name), "drops", fp), timeout=60, interval=0.2):
        tally.finding("no recovery from two dropped connections by retries")
    drop_calls = f.token_calls(sim) - drops0
    sim.clear_faults()

    # 3) 429 with Retry-After: 86400 (a day): no retry before then, the token stays until it expires,
    #    then Ready turns False; recovery once the limit is lifted
    held, fp = target_token(), f.status(custom, namespace, name)["tokenFingerprint"]
    sim.faults(kind="rate_limit", path=path, retry_after=86400)
    f.request_refresh(custom, namespace, name, "limited")
    wait_for(lambda: f.token_calls(sim, "429") >= 1, timeout=30, what="the first refresh attempt against the 429")
    at_first = f.token_calls(sim)
    observe(10, held, "429 Retry-After 86400")
    limited_calls = f.token_calls(sim) - at_first
    if limited_calls > 2:
        tally.finding(f"{limited_calls} token calls in 10 s after a 429 with Retry-After 86400 (hot loop)")
    st = f.status(custom, namespace, name)
    next_in = (datetime.fromisoformat(st["nextRefreshAt"].replace("Z", "+00:00")).timestamp() - f.sim_now(sim)
               if st.get("nextRefreshAt") else None)
    expires = datetime.fromisoformat(st["expiresAt"].replace("Z", "+00:00")).timestamp()
    sim.advance(expires - f.sim_now(sim) + 60)  # one simulated minute past the published token's expiry
    assert f.bearer_hub(sim, held) is None, "the simulator should refuse an expired token"
    after_advance = f.token_calls(sim)
    expired_ready = f.poll_until(
        lambda: (c := f.cond_status(f.status(custom, namespace, name), "Ready")).get("status") == "False" and c,
        timeout=20, interval=0.2)
    if not expired_ready:
        ready = f.cond_status(f.status(custom, namespace, name), "Ready")
        tally.finding(f"Ready stayed {ready.get('status')}/{ready.get('reason')} ({ready.get('message')}) "
                      f"after the published token expired")
    jump_calls = f.token_calls(sim) - after_advance
    if jump_calls > 2:
        tally.finding(f"{jump_calls} token calls after the clock passed expiry, Retry-After not yet over")
    sim.clear_faults()
    f.request_refresh(custom, namespace, name, "recovered")
    if not f.poll_until(lambda: f.published(t.get(custom, namespace, name), "recovered", fp), timeout=30, interval=0.2):
        tally.finding("no recovery after the rate limit was lifted (forced refresh)")
    elif f.bearer_hub(sim, target_token()) != hub:
        tally.finding("the recovered token is refused by HubSpot")

    stats = sim.stats()["requests"].get(f.TOKEN_ROUTE)
    tally.set(
        faults_injected="503 until cleared; 2 dropped connections; 429 Retry-After 86400 until cleared",
        calls_in_12s_after_first_503=down_calls,
        calls_for_2_drops_then_success=drop_calls,
        calls_in_10s_after_first_429=limited_calls,
        next_refresh_after_429_in_s=round(next_in) if next_in is not None else None,
        ready_after_expiry=(expired_ready or {}).get("reason") if expired_ready else "still True",
        calls_after_clock_passed_expiry=jump_calls,
        token_endpoint_calls=stats,
    )
    if tally.findings:
        print("\n".join(op.grep(r"RefreshFailed|Refreshed|Degraded|ERROR|clock offset")), flush=True)
    tally.print_and_check()


# ---- e. SIGTERM during a round --------------------------------------------------------------------

ROUND_TOKENS = 10


@pytest.mark.timeout(300)
def test_sigterm_during_a_round_of_rotating_refreshes_loses_nothing(
    operator_proc, sim, app, core, custom, namespace
):
    # Strict rotation: unlike kill -9, SIGTERM leaves the process time to finish what it started (15 s
    # here, Kubernetes' default is 30 s), so nothing excuses losing a grant.
    sim.config(refresh_token_mode="rotating")
    tally = f.Tally("SIGTERM during a round")
    names = [f"s{i}" for i in range(ROUND_TOKENS)]
    hubs = {n: 7500 + i for i, n in enumerate(names)}
    _install_tokens(sim, core, custom, namespace, app, names, hubs)
    op = operator_proc.start()
    _all_ready(custom, namespace, names)
    issued = {n: f.status(custom, namespace, n)["lastRefreshTime"] for n in names}

    # every refresh spends 1.5 s at HubSpot, so SIGTERM surely finds some in flight
    c0 = f.token_calls(sim)
    rule = sim.faults(kind="latency", path="/oauth/2026-03/token", delay_ms=1500)

    def arrived() -> int:
        return next((r["fired"] for r in sim.http.get("/_sim/faults").json()["faults"] if r["id"] == rule["id"]), 0)

    sim.advance(1400)  # past every token's refresh time (67% of 30 min, minus jitter), all due at once
    wait_for(lambda: arrived() >= 4, timeout=30, what="a round of refreshes in flight at HubSpot")
    in_flight = arrived() - (f.token_calls(sim) - c0)
    graceful = op.terminate(grace=15)
    at_exit = arrived()
    wait_for(lambda: f.token_calls(sim) - c0 >= at_exit, timeout=15, what="HubSpot to finish the requests it got")
    sim.clear_faults()
    done_before_exit = [n for n in names if f.status(custom, namespace, n).get("lastRefreshTime") != issued[n]]

    op.start()
    lost = _force_and_verify(sim, core, custom, namespace, names, hubs, "after-sigterm", tally, timeout=60)
    tally.set(
        refreshes_at_hubspot_when_sigterm_sent=in_flight,
        requests_hubspot_received_before_exit=at_exit,
        refreshes_recorded_before_exit=len(done_before_exit),
        exited_within_grace=graceful,
        tokens_lost=len(lost),
    )
    if not graceful:
        tally.finding("the operator did not exit within 15 s of SIGTERM")
    if lost:
        print("\n".join(op.grep(r"ReauthRequired|cancel|Cancel|ERROR|shutdown|stop")), flush=True)
    tally.print_and_check()
