"""OAuth refresh end to end: real kube-apiserver, real operator process, HubSpot simulator over HTTP."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone

import pytest

from tests.cluster import signals as sig
from tests.cluster import tokens as t
from tests.helpers import wait_for

TOKEN_ROUTE = "POST /oauth/2026-03/token"
HUB = 4242


def install(simulator, core, namespace, app, name, hub=HUB, scopes=("oauth", "crm.objects.contacts.read")):
    rt = simulator.install(app["client_id"], hub, list(scopes))
    t.put_secret(core, namespace, f"{name}-install", {"refresh_token": rt})
    return rt


def ready(custom, ns, name):
    obj = t.get(custom, ns, name)
    return obj if t.condition(obj, "Ready").get("status") == "True" else None


def test_token_published_status_complete_and_columns(operator, simulator, core, custom, namespace, app, cluster):
    install(simulator, core, namespace, app, "crm")
    t.create(custom, namespace, t.oauth_token("crm", hubId=HUB, requiredScopes=["crm.objects.contacts.read"]))
    obj = wait_for(lambda: ready(custom, namespace, "crm"), timeout=30, what="Ready=True")

    secret = t.read_secret(core, namespace, "hubspot-access")
    assert simulator.bearer_ok(secret["access_token"])
    assert secret["hub_id"] == str(HUB)
    expires = datetime.fromisoformat(secret["expires_at"].replace("Z", "+00:00"))
    assert 1700 < (expires - datetime.now(timezone.utc)).total_seconds() - _sim_offset(simulator) <= 1800

    st = obj["status"]
    for field in ("hubId", "scopes", "expiresAt", "nextRefreshAt", "lastRefreshTime", "lastRefreshReason",
                  "tokenFingerprint", "secretMAC", "grantFingerprint", "observedGeneration"):
        assert field in st, field
    assert st["hubId"] == HUB and st["lastRefreshReason"] == "InitialIssue"
    assert t.condition(obj, "ScopesSatisfied")["status"] == "True"
    assert t.condition(obj, "ReauthRequired")["status"] == "False"
    wait_for(lambda: "Refreshed" in t.reasons(core, namespace, "crm"), what="Refreshed Event")

    out = subprocess.run(["kubectl", "get", "hst", "-n", namespace], capture_output=True, text=True, check=True,
                         env=dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))).stdout
    header, row = out.splitlines()[0], out.splitlines()[1]
    for col in ("READY", "TYPE", "HUB", "EXPIRES", "NEXT REFRESH", "AGE"):
        assert col in header
    assert "True" in row and "OAuth" in row and str(HUB) in row


def _sim_offset(simulator) -> float:
    return float(simulator.http.get("/_sim/clock").json()["offset_seconds"])


def test_short_lifetime_refreshes_before_expiry_repeatedly(operator, simulator, core, custom, namespace, app):
    simulator.config(access_token_lifetime_seconds=12)
    try:
        install(simulator, core, namespace, app, "fast")
        t.create(custom, namespace, t.oauth_token(
            "fast", refresh={"percent": 50, "jitterPercent": 0, "minRemainingValidity": "2s"}))
        wait_for(lambda: ready(custom, namespace, "fast"), timeout=30, what="first token")
        seen: list[tuple[str, str, str]] = []  # (token fingerprint, lastRefreshTime, expiresAt)

        def three_refreshes():
            st = t.get(custom, namespace, "fast")["status"]
            entry = (st["tokenFingerprint"], st["lastRefreshTime"], st["expiresAt"])
            if not seen or seen[-1] != entry:
                seen.append(entry)
            return len(seen) >= 4

        wait_for(three_refreshes, timeout=60, interval=0.2, what="three refreshes")
    finally:
        simulator.config(access_token_lifetime_seconds=1800)
    for (fp1, issued1, exp1), (fp2, issued2, _) in zip(seen, seen[1:]):
        assert fp1 != fp2
        i1, e1, i2 = (datetime.fromisoformat(x.replace("Z", "+00:00")) for x in (issued1, exp1, issued2))
        assert i2 < e1, "refreshed only after the previous token had expired"
        # due at 50% of a 12 s lifetime; allow for one-second timestamps and scheduling slack
        assert 4 <= (i2 - i1).total_seconds() <= 10
    assert all(e[0] for e in seen)


def test_operator_restart_makes_no_calls_for_tokens_not_due(operator, simulator, core, custom, namespace, app):
    for name in ("r1", "r2", "r3"):
        install(simulator, core, namespace, app, name)
        t.create(custom, namespace, t.oauth_token(name, target=f"{name}-out"))
    for name in ("r1", "r2", "r3"):
        wait_for(lambda: ready(custom, namespace, name), timeout=30, what=f"{name} Ready")
    assert len(sig.only_tokens_in(custom, namespace)) == 3  # and no other test's token calls HubSpot meanwhile
    before = simulator.calls(TOKEN_ROUTE)
    statuses = {n: t.get(custom, namespace, n)["status"]["nextRefreshAt"] for n in ("r1", "r2", "r3")}
    operator.restart()
    # positive signal: the new process (its counter starts at 0) has reconciled every HubSpotToken there is
    sig.wait_for_reconciles(operator, since=0, n=3, what="the restarted operator looked at r1, r2, r3")
    assert simulator.calls(TOKEN_ROUTE) == before
    assert sig.metric_sum(operator, "hubspot_token_refresh_total") == 0
    assert sig.metric_sum(operator, "hubspot_token_api_requests_total") == 0, "the restarted operator called HubSpot"
    for n, nxt in statuses.items():
        assert t.get(custom, namespace, n)["status"]["nextRefreshAt"] == nxt


def test_uninstall_leads_to_reauth_required_without_retry_storm(operator, simulator, core, custom, namespace, app):
    rt = install(simulator, core, namespace, app, "gone")
    t.create(custom, namespace, t.oauth_token("gone"))
    wait_for(lambda: ready(custom, namespace, "gone"), timeout=30, what="Ready")
    published = t.read_secret(core, namespace, "hubspot-access")["access_token"]
    simulator.uninstall(rt)
    t.patch(custom, namespace, "gone", {"metadata": {"annotations": {"hubspot-operator.dev/refresh-requested-at": "1"}}})
    obj = wait_for(
        lambda: (o := t.get(custom, namespace, "gone")) and t.condition(o, "ReauthRequired").get("status") == "True" and o,
        timeout=30, what="ReauthRequired=True",
    )
    assert t.condition(obj, "Ready")["reason"] == "ReauthRequired"
    assert "stays valid until" in t.condition(obj, "Ready")["message"]
    wait_for(lambda: "ReauthRequired" in t.reasons(core, namespace, "gone"), what="ReauthRequired Event")
    sig.only_tokens_in(custom, namespace)  # no other test's token calls HubSpot meanwhile
    calls = simulator.calls(TOKEN_ROUTE)
    assert not obj["status"].get("failedAttempts") and not obj["status"].get("nextRefreshAt"), "a retry is scheduled"
    # make the operator look again (a spec edit is no re-authorisation) and wait until it has
    gen = t.patch(custom, namespace, "gone", {"spec": {"refresh": {"percent": 60}}})["metadata"]["generation"]
    obj = wait_for(lambda: (o := t.get(custom, namespace, "gone"))["status"].get("observedGeneration") == gen and o,
                   timeout=30, what="the spec edit processed (observedGeneration)")
    assert simulator.calls(TOKEN_ROUTE) == calls, "the operator kept retrying a dead refresh token"
    assert t.condition(obj, "ReauthRequired")["status"] == "True"
    assert not obj["status"].get("failedAttempts") and not obj["status"].get("nextRefreshAt"), "a retry is scheduled"
    # the current token stays published
    assert t.read_secret(core, namespace, "hubspot-access")["access_token"] == published
    # re-authorising (a new refresh token in the Secret) heals it without any other nudge
    install(simulator, core, namespace, app, "gone")
    healed = wait_for(lambda: ready(custom, namespace, "gone"), timeout=30, what="Ready after re-authorisation")
    assert t.condition(healed, "ReauthRequired")["status"] == "False"
    assert healed["status"]["lastRefreshReason"] == "GrantChanged"


def test_rate_limits_and_server_errors_recover_and_never_publish_a_bad_token(
    operator, simulator, core, custom, namespace, app
):
    install(simulator, core, namespace, app, "flaky")
    t.create(custom, namespace, t.oauth_token("flaky"))
    wait_for(lambda: ready(custom, namespace, "flaky"), timeout=30, what="Ready")
    good = t.read_secret(core, namespace, "hubspot-access")["access_token"]
    simulator.faults(kind="server_error", path="/oauth/2026-03/token", count=2, status=503)
    simulator.faults(kind="rate_limit", path="/oauth/2026-03/token", count=1, retry_after=1)
    try:
        t.patch(custom, namespace, "flaky",
                {"metadata": {"annotations": {"hubspot-operator.dev/refresh-requested-at": "now"}}})
        published: set[str] = set()

        def refreshed():
            value = t.read_secret(core, namespace, "hubspot-access")["access_token"]
            published.add(value)
            return value != good

        wait_for(refreshed, timeout=60, interval=0.2, what="a refresh after 3 failures")
    finally:
        simulator.clear_faults()
    obj = wait_for(lambda: (o := t.get(custom, namespace, "flaky")) and o["status"]["failedAttempts"] == 0 and o,
                   what="status of the successful refresh")
    assert t.condition(obj, "Ready")["status"] == "True"
    assert all(p and simulator.bearer_ok(p) for p in published - {good})
    wait_for(lambda: "RefreshFailed" in t.reasons(core, namespace, "flaky"), what="RefreshFailed Event")


def test_missing_secret_reported_and_healed(operator, simulator, core, custom, namespace, app):
    t.create(custom, namespace, t.oauth_token("late"))
    obj = wait_for(
        lambda: (o := t.get(custom, namespace, "late")) and t.condition(o, "Ready").get("reason") == "InputsMissing" and o,
        timeout=30, what="InputsMissing",
    )
    assert "Secret late-install" in t.condition(obj, "Ready")["message"]
    wait_for(lambda: "InputsMissing" in t.reasons(core, namespace, "late"), what="InputsMissing Event")
    install(simulator, core, namespace, app, "late")
    wait_for(lambda: ready(custom, namespace, "late"), timeout=30, what="healed once the Secret appears")


def test_target_secret_deleted_or_edited_is_restored(operator, simulator, core, custom, namespace, app):
    install(simulator, core, namespace, app, "drift")
    t.create(custom, namespace, t.oauth_token("drift"))
    wait_for(lambda: ready(custom, namespace, "drift"), timeout=30, what="Ready")
    original = t.read_secret(core, namespace, "hubspot-access")
    sig.only_tokens_in(custom, namespace)  # no other test's token calls HubSpot meanwhile
    calls = simulator.calls(TOKEN_ROUTE)

    core.delete_namespaced_secret("hubspot-access", namespace)
    wait_for(lambda: t.read_secret(core, namespace, "hubspot-access") == original, timeout=30, what="restored")

    t.put_secret(core, namespace, "hubspot-access", {**original, "access_token": "tampered"})
    wait_for(lambda: t.read_secret(core, namespace, "hubspot-access") == original, timeout=30, what="edit reverted")
    assert simulator.calls(TOKEN_ROUTE) == calls, "restoring needs no new token while one is held"
    wait_for(lambda: t.reasons(core, namespace, "drift").count("SecretRestored") >= 2, what="two SecretRestored Events")


def test_hub_mismatch_and_missing_scopes_are_refused(operator, simulator, core, custom, namespace, app):
    install(simulator, core, namespace, app, "wronghub", hub=777)
    t.create(custom, namespace, t.oauth_token("wronghub", target="wh-out", hubId=HUB))
    install(simulator, core, namespace, app, "noscope", scopes=("oauth",))
    t.create(custom, namespace, t.oauth_token("noscope", target="ns-out", requiredScopes=["crm.objects.deals.write"]))

    wh = wait_for(lambda: (o := t.get(custom, namespace, "wronghub")) and
                  t.condition(o, "Ready").get("reason") == "HubMismatch" and o, timeout=30, what="HubMismatch")
    assert "hub 777" in t.condition(wh, "Ready")["message"] and str(HUB) in t.condition(wh, "Ready")["message"]
    sc = wait_for(lambda: (o := t.get(custom, namespace, "noscope")) and
                  t.condition(o, "ScopesSatisfied").get("status") == "False" and o, timeout=30, what="ScopesMissing")
    assert "crm.objects.deals.write" in t.condition(sc, "ScopesSatisfied")["message"]
    assert t.read_secret(core, namespace, "wh-out") is None and t.read_secret(core, namespace, "ns-out") is None
    wait_for(lambda: "HubMismatch" in t.reasons(core, namespace, "wronghub"), what="HubMismatch Event")
    wait_for(lambda: "ScopeDrift" in t.reasons(core, namespace, "noscope"), what="ScopeDrift Event")
    assert len(sig.only_tokens_in(custom, namespace)) == 2  # and no other test's token calls HubSpot meanwhile
    calls = simulator.calls(TOKEN_ROUTE)
    for obj in (wh, sc):
        assert not obj["status"].get("nextRefreshAt") and not obj["status"].get("failedAttempts"), "a retry is scheduled"
    # make the operator look at both again (an unrelated edit of the client Secret they share), wait until it has
    since = sig.reconcile_count(operator)
    app_data = t.read_secret(core, namespace, "hubspot-app")
    t.put_secret(core, namespace, "hubspot-app", {**app_data, "note": "unrelated edit"})
    sig.wait_for_reconciles(operator, since, n=2, what="both refused tokens re-evaluated")
    assert simulator.calls(TOKEN_ROUTE) == calls, "a refused token must not be retried in a loop"
    assert t.condition(t.get(custom, namespace, "wronghub"), "Ready")["reason"] == "HubMismatch"
    assert t.condition(t.get(custom, namespace, "noscope"), "ScopesSatisfied")["status"] == "False"
    assert t.read_secret(core, namespace, "wh-out") is None and t.read_secret(core, namespace, "ns-out") is None


def test_tokens_sharing_a_refresh_token_cause_one_call_per_refresh(operator, simulator, core, custom, namespace, app):
    install(simulator, core, namespace, app, "shared")
    sig.only_tokens_in(custom, namespace)  # no other test's token calls HubSpot (or falls due below) meanwhile
    before = simulator.calls(TOKEN_ROUTE)
    for i in range(3):
        body = t.oauth_token(f"fan{i}", target=f"fan{i}-out")
        body["spec"]["oauth"]["refreshTokenSecretRef"]["name"] = "shared-install"
        t.create(custom, namespace, body)
    for i in range(3):
        wait_for(lambda: ready(custom, namespace, f"fan{i}"), timeout=30, what=f"fan{i} Ready")
    values = {t.read_secret(core, namespace, f"fan{i}-out")["access_token"] for i in range(3)}
    assert len(values) == 1
    assert simulator.calls(TOKEN_ROUTE) - before == 1
    first = values.pop()
    # the scheduled refresh: all three fall due together (past 67% of 30 minutes), one call serves them all
    simulator.advance(1300)

    def all_refreshed():
        vals = {(t.read_secret(core, namespace, f"fan{i}-out") or {}).get("access_token") for i in range(3)}
        return first not in vals and len(vals) == 1 and vals

    wait_for(all_refreshed, timeout=30, what="the three tokens refreshed")
    for i in range(3):
        wait_for(lambda: t.get(custom, namespace, f"fan{i}")["status"].get("lastRefreshReason") == "Expiring",
                 what=f"fan{i} status of the scheduled refresh")
    assert simulator.calls(TOKEN_ROUTE) - before == 2


def test_rotating_refresh_tokens_are_written_back_before_publishing(operator, simulator, core, custom, namespace, app):
    simulator.config(refresh_token_mode="rotating")
    try:
        original = install(simulator, core, namespace, app, "rot")
        t.create(custom, namespace, t.oauth_token("rot"))
        wait_for(lambda: ready(custom, namespace, "rot"), timeout=30, what="Ready")
        stored = t.read_secret(core, namespace, "rot-install")["refresh_token"]
        assert stored != original
        t.patch(custom, namespace, "rot", {"metadata": {"annotations": {"hubspot-operator.dev/refresh-requested-at": "2"}}})
        wait_for(lambda: t.read_secret(core, namespace, "rot-install")["refresh_token"] != stored, timeout=30,
                 what="second rotation written back")
        wait_for(lambda: t.get(custom, namespace, "rot")["status"].get("lastRefreshReason") == "RefreshRequested",
                 timeout=30, what="refreshed again")
        obj = t.get(custom, namespace, "rot")
        assert t.condition(obj, "Ready")["status"] == "True"
        assert t.condition(obj, "ReauthRequired")["status"] == "False"
        # before publishing: the refresh-token Secret was written before the target Secret. resourceVersions
        # are etcd revisions here (one etcd), so they order the two writes.
        install_rv = int(core.read_namespaced_secret("rot-install", namespace).metadata.resource_version)
        target_rv = int(core.read_namespaced_secret("hubspot-access", namespace).metadata.resource_version)
        assert install_rv < target_rv, "the access token was published before the new refresh token was stored"
    finally:
        simulator.config(refresh_token_mode="stable")


def test_creation_and_deletion_policies(operator, simulator, core, custom, namespace, app):
    install(simulator, core, namespace, app, "pol")
    # Owner refuses a Secret it did not create, and says how to proceed
    t.put_secret(core, namespace, "foreign", {"other": "x"})
    t.create(custom, namespace, t.oauth_token("owner", target="foreign",
                                              oauth={"clientSecretRef": {"name": "hubspot-app"},
                                                     "refreshTokenSecretRef": {"name": "pol-install"}}))
    refused = wait_for(lambda: (c := t.condition(t.get(custom, namespace, "owner"), "Ready")) and
                       c.get("reason") == "TargetSecretNotOwned" and c, timeout=30, what="TargetSecretNotOwned")
    assert "Adopt or Merge" in refused["message"]
    assert t.read_secret(core, namespace, "foreign") == {"other": "x"}
    # Merge writes our keys and keeps the others
    t.patch(custom, namespace, "owner", {"spec": {"target": {"creationPolicy": "Merge"}}})
    merged = wait_for(lambda: (s := t.read_secret(core, namespace, "foreign")) and "access_token" in s and s,
                      timeout=30, what="merged")
    assert merged["other"] == "x"
    # Delete: the Secret goes with the HubSpotToken (owner reference, garbage collector)
    body = t.oauth_token("deleter", target="deleted-with-token", oauth={
        "clientSecretRef": {"name": "hubspot-app"}, "refreshTokenSecretRef": {"name": "pol-install"}})
    body["spec"]["target"]["deletionPolicy"] = "Delete"
    t.create(custom, namespace, body)
    wait_for(lambda: t.read_secret(core, namespace, "deleted-with-token"), timeout=30, what="published")
    custom.delete_namespaced_custom_object("hubspot-operator.dev", "v1alpha1", namespace, "hubspottokens", "deleter")
    wait_for(lambda: t.read_secret(core, namespace, "deleted-with-token") is None, timeout=60, what="garbage-collected")
    # Retain (the default): the Secret outlives the HubSpotToken
    owner_uid = t.get(custom, namespace, "owner")["metadata"]["uid"]
    assert sig.token_known(operator, namespace, "owner")
    custom.delete_namespaced_custom_object("hubspot-operator.dev", "v1alpha1", namespace, "hubspottokens", "owner")
    wait_for(lambda: not sig.token_known(operator, namespace, "owner"), timeout=30,
             what="the operator processed the deletion (its gauges for the token are gone)")
    foreign = core.read_namespaced_secret("foreign", namespace)
    # nothing for the garbage collector to act on (it did collect "deleted-with-token" above)
    assert owner_uid not in {r.uid for r in foreign.metadata.owner_references or []}
    assert "access_token" in t.read_secret(core, namespace, "foreign")


def test_per_token_base_url_and_v1_generation(operator, simulator, core, custom, namespace, app):
    install(simulator, core, namespace, app, "legacy")
    other_host = simulator.url.replace("127.0.0.1", "localhost")  # a different base URL, same simulator
    before = simulator.calls("POST /oauth/v1/token")
    other_host_port = other_host.split("://", 1)[1]
    via_other = simulator.stats().get("hosts", {}).get(other_host_port, 0)
    t.create(custom, namespace, t.oauth_token(
        "legacy", hubspot={"baseURL": other_host},
        oauth={"clientSecretRef": {"name": "hubspot-app"}, "refreshTokenSecretRef": {"name": "legacy-install"},
               "apiVersion": "v1"}))
    wait_for(lambda: ready(custom, namespace, "legacy"), timeout=30, what="Ready via v1")
    assert simulator.calls("POST /oauth/v1/token") == before + 1
    assert simulator.stats()["hosts"].get(other_host_port, 0) >= via_other + 1, "spec.hubspot.baseURL was not used"
    assert simulator.bearer_ok(t.read_secret(core, namespace, "hubspot-access")["access_token"])
    wait_for(lambda: any("sunsets on 2027-02-16" in e.message
                         for e in t.events(core, namespace, "legacy") if e.reason == "Refreshed"),
             what="deprecation note in the Refreshed Event")


def test_suspend_stops_refreshing_and_resume_catches_up(operator, simulator, core, custom, namespace, app):
    install(simulator, core, namespace, app, "sus")
    t.create(custom, namespace, t.oauth_token("sus"))
    wait_for(lambda: ready(custom, namespace, "sus"), timeout=30, what="Ready")
    t.patch(custom, namespace, "sus", {"spec": {"suspend": True}})
    wait_for(lambda: t.condition(t.get(custom, namespace, "sus"), "Ready").get("reason") == "Suspended",
             what="Suspended")
    sig.only_tokens_in(custom, namespace)  # no other test's token falls due below and calls HubSpot
    calls = simulator.calls(TOKEN_ROUTE)
    before = t.get(custom, namespace, "sus")["status"]["tokenFingerprint"]
    assert "stays valid until" in t.condition(t.get(custom, namespace, "sus"), "Ready")["message"]
    simulator.advance(1900)  # past the refresh time and the expiry of the 30-minute token
    # positive signal: the operator looked at the suspended token after its expiry (Ready no longer says
    # the published token is valid) ...
    suspended = wait_for(
        lambda: (o := t.get(custom, namespace, "sus")) and (c := t.condition(o, "Ready")).get("reason") == "Suspended"
        and "stays valid until" not in c.get("message", "") and o,
        timeout=30, what="the suspended token re-evaluated after its expiry")
    # ... and still refreshed nothing
    assert suspended["status"]["tokenFingerprint"] == before
    assert simulator.calls(TOKEN_ROUTE) == calls, "a suspended token was refreshed"
    t.patch(custom, namespace, "sus", {"spec": {"suspend": False}})
    wait_for(lambda: t.get(custom, namespace, "sus")["status"]["tokenFingerprint"] != before, timeout=30,
             what="refresh after resume")
    wait_for(lambda: ready(custom, namespace, "sus"), what="Ready again")
    assert simulator.calls(TOKEN_ROUTE) > calls
