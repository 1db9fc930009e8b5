"""Revoke on delete (revocation.py): the pure decisions, then whole deletions against FakeKube and the
simulator (the World of test_flows.py: reconciles the way the work queue runs them)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from hubspot_token_operator import revocation as rv
from hubspot_token_operator.hubspot import ErrorKind, Failure
from hubspot_token_operator.model import parse_spec

from .test_flows import NS, World, passes, world  # noqa: F401 - world is a fixture

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SPEC = parse_spec({"type": "OAuth", "target": {"name": "t"}, "oauth": {
    "clientSecretRef": {"name": "app"}, "refreshTokenSecretRef": {"name": "install"}, "revokeOnDelete": True}})


def other(ns="sales", name="b", uid="u2", ref="install", key=None, grant=None, deleting=False, type_="OAuth"):
    md = {"namespace": ns, "name": name, "uid": uid}
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    r = {"name": ref, **({"key": key} if key else {})}
    return {"metadata": md, "spec": {"type": type_, "oauth": {"refreshTokenSecretRef": r}},
            "status": {"grantFingerprint": grant} if grant else {}}


def test_finalizer_lists():
    assert rv.with_finalizer(["a"], "m", True) == ["a", "m"]
    assert rv.with_finalizer(["a", "m"], "m", True) is None
    assert rv.with_finalizer(["a", "m"], "m", False) == ["a"]
    assert rv.with_finalizer([], "m", False) is None
    assert rv.secret_finalizer("0f3c") == "hubspot-operator.dev/revoke-0f3c"
    assert rv.input_secrets(SPEC) == ["app", "install"]
    assert rv.wants_revoke(SPEC) and not rv.wants_revoke(None)


def test_sharers_by_secret_or_grant_and_never_the_deleting_or_itself():
    me = ("sales", "u1")
    found = rv.sharers(*me, SPEC, {"g1"}, [
        other(name="same-secret"),
        other(name="other-key", uid="u3", key="other"),
        other(ns="ops", name="same-grant", uid="u4", grant="g1"),
        other(ns="ops", name="same-secret-name-elsewhere", uid="u5"),
        other(name="going-too", uid="u6", deleting=True),
        other(name="private", uid="u7", type_="PrivateApp"),
        other(name="me", uid="u1"),
    ])
    assert found == [("ops", "same-grant"), ("sales", "same-secret")]


def test_plan_names_sharers_only_within_the_namespace():
    p = rv.plan_revoke("sales", [("ops", "x")], (), None, None)
    assert (p.action, p.reason) == ("Skip", "RevokeSkipped") and "ops" not in p.message and "x" not in p.message
    p = rv.plan_revoke("sales", [("sales", "b"), ("ops", "x")], (), None, None)
    assert "HubSpotToken b" in p.message and "ops" not in p.message
    p = rv.plan_revoke("sales", [], ("Secret install",), None, None)
    assert p.action == "GiveUp" and "missing Secret install" in p.message and "by hand" in p.message
    assert rv.plan_revoke("sales", [], (), None, None).action == "Revoke"


@pytest.mark.parametrize(("kind", "attempts", "since", "retries"), [
    (ErrorKind.RETRYABLE, 1, 0, True),
    (ErrorKind.RETRYABLE, rv.MAX_ATTEMPTS, 0, False),
    (ErrorKind.RETRYABLE, 1, 11, False),  # minutes since the deletion: past GIVE_UP_AFTER
    (ErrorKind.TERMINAL, 1, 0, False),
])
def test_after_failure_is_bounded(kind, attempts, since, retries):
    now = T0 + timedelta(minutes=since)
    when = rv.after_failure(now, T0, attempts, Failure(kind, "Server", "HTTP 503"))
    assert (when is not None) is retries
    if when is not None:
        assert now < when <= T0 + rv.GIVE_UP_AFTER


# ---- whole deletions -----------------------------------------------------------------------------------


def finalizers(w: World, name: str) -> list[str]:
    return w.kube.tokens[(NS, name)]["metadata"].get("finalizers") or []


def secret_finalizers(w: World, name: str) -> list[str]:
    return w.kube.secrets[(NS, name)].finalizers


def delete_now(w: World) -> None:
    """kubectl delete of crm-sync, stamped with the operator's (simulated) time."""
    w.kube.delete_token(NS, "crm-sync", at=w.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"))


async def revoking(w: World):
    """OAuth token crm-sync with revokeOnDelete, published (two passes)."""
    key = w.oauth()
    w.kube.edit_token(NS, "crm-sync", {"spec": {"oauth": {"revokeOnDelete": True}}})
    rt = w.runtime()
    await passes(rt, key, 2)
    return key, rt


def test_namespace_deletion_revokes_with_the_secrets_held_until_done(world: World, run):
    async def main():
        key, rt = await revoking(world)
        uid = world.kube.tokens[key]["metadata"]["uid"]
        assert finalizers(world, "crm-sync") == [rv.FINALIZER]
        for secret in ("hubspot-app", "crm-sync-install"):
            assert secret_finalizers(world, secret) == [rv.secret_finalizer(uid)], secret
        refresh = world.kube.text(NS, "crm-sync-install", "refresh_token")
        assert world.refresh_token_live(refresh)
        # the namespace controller deletes everything at once: the Secrets stay, held by our finalizers
        for secret in ("hubspot-app", "crm-sync-install", "crm-hubspot"):
            world.kube.delete_secret(NS, secret)
        world.kube.delete_token(NS, "crm-sync")
        await passes(rt, key)
        assert key not in world.kube.tokens, "the finalizer was not released"
        assert (NS, "hubspot-app") not in world.kube.secrets and (NS, "crm-sync-install") not in world.kube.secrets
        assert not world.refresh_token_live(refresh), "the refresh token is still live at HubSpot"
        assert "Revoked" in world.kube.reasons("crm-sync")
        await rt.close()

    run(main(), timeout=45)


def test_shared_grant_is_left_alone(world: World, run):
    async def main():
        a = world.oauth("crm-sync", target="a")
        world.kube.edit_token(NS, "crm-sync", {"spec": {"oauth": {"revokeOnDelete": True}}})
        b = world.oauth("reports", target="b")  # its own install Secret, holding the same refresh token
        rt = world.runtime()
        for key in (a, b):
            await passes(rt, key, 2)
        refresh = world.kube.text(NS, "crm-sync-install", "refresh_token")
        world.kube.delete_token(NS, "crm-sync")
        await passes(rt, a)
        assert a not in world.kube.tokens
        assert world.refresh_token_live(refresh), "a grant another token uses was revoked"
        events = [e for e in world.kube.events if e["name"] == "crm-sync" and e["reason"] == "RevokeSkipped"]
        assert events and "HubSpotToken reports" in events[0]["message"]
        assert rv.secret_finalizer(world.kube.tokens.get(b, {}).get("metadata", {}).get("uid", "-")) not in \
            secret_finalizers(world, "hubspot-app")
        await rt.close()

    run(main(), timeout=45)


def test_failing_revoke_is_retried_then_given_up_and_the_deletion_goes_on(world: World, run):
    async def main():
        key, rt = await revoking(world)
        world.sim.add_fault("server_error", "/oauth/2026-03/token/revoke", status=503)
        delete_now(world)
        runs = await passes(rt, key, rv.MAX_ATTEMPTS, follow=True)
        assert key not in world.kube.tokens, "the deletion is blocked"
        assert sum(p.wake is not None for p in runs[:-1]) >= 1
        reasons = world.kube.reasons("crm-sync")
        assert reasons.count("RevokeRetrying") == 1 and reasons[-1] == "RevokeFailed", reasons
        failed = [e for e in world.kube.events if e["reason"] == "RevokeFailed"][0]["message"]
        assert f"after {rv.MAX_ATTEMPTS} attempt(s)" in failed and "by hand" in failed
        await rt.close()

    run(main(), timeout=45)


def test_revokes_are_paced_by_the_apps_bucket_and_waiting_is_not_an_attempt(world: World, run):
    """A namespace of many tokens deleted at once must not burst past the app's HubSpot limit: the revoke
    takes a unit of the same per-app bucket as a refresh, and a token without one comes back at its slot."""
    from hubspot_token_operator.runtime import AppRateLimiter

    async def main():
        key, rt = await revoking(world)
        refresh = world.kube.text(NS, "crm-sync-install", "refresh_token")
        rt.limiter = AppRateLimiter(rate=2.0, burst=1)
        assert rt.limiter.take(world.grant.client_id, "another token") == 0.0  # the app's capacity is spent
        delete_now(world)
        paced = (await passes(rt, key))[0]
        assert key in world.kube.tokens and world.refresh_token_live(refresh), "revoked without capacity"
        assert paced.delay is not None and 0 <= paced.delay <= 2, paced.delay
        assert "RevokeRetrying" not in world.kube.reasons("crm-sync")
        assert not (world.status("crm-sync").get("revocation") or {}).get("attempts")
        await asyncio.sleep(0.6)  # the bucket refills (real time)
        await passes(rt, key)
        assert key not in world.kube.tokens and not world.refresh_token_live(refresh)
        assert "Revoked" in world.kube.reasons("crm-sync")
        await rt.close()

    run(main(), timeout=45)


def test_turning_it_off_removes_every_finalizer(world: World, run):
    async def main():
        key, rt = await revoking(world)
        assert finalizers(world, "crm-sync")
        world.kube.edit_token(NS, "crm-sync", {"spec": {"oauth": {"revokeOnDelete": False}}})
        await passes(rt, key, 2)
        assert not finalizers(world, "crm-sync")
        assert not secret_finalizers(world, "hubspot-app") and not secret_finalizers(world, "crm-sync-install")
        assert not (world.status("crm-sync").get("revocation") or {}).get("heldSecrets")
        world.kube.delete_token(NS, "crm-sync")
        assert key not in world.kube.tokens
        await rt.close()

    run(main(), timeout=45)


# ---- found by review: backoff, Kubernetes failures, lone Secret deletions, orphans, partial failures ------


def revoke_calls(w: World) -> int:
    return w.sim.count("POST /oauth/2026-03/token/revoke")


def test_an_early_wake_keeps_the_backoff(world: World, run):
    """The watch echo of the status write used to wake the token at once: 5 attempts in a second."""
    async def main():
        key, rt = await revoking(world)
        world.sim.add_fault("server_error", "/oauth/2026-03/token/revoke", status=503)
        delete_now(world)
        first = await passes(rt, key, 3)  # no time passes between them: woken early twice
        assert revoke_calls(world) == 1, f"{revoke_calls(world)} revoke calls without any time passing"
        assert first[1].wake == first[0].wake and first[0].delay >= 1
        assert key in world.kube.tokens
        await rt.close()

    run(main(), timeout=45)


def test_a_kubernetes_failure_counts_as_an_attempt_and_never_blocks_the_deletion(world: World, run):
    async def main():
        key, rt = await revoking(world)
        world.kube.fail("list_tokens", 500, times=None)
        delete_now(world)
        await passes(rt, key, rv.MAX_ATTEMPTS + 1, follow=True)
        assert key not in world.kube.tokens, "a failing list blocked the deletion"
        assert world.kube.reasons("crm-sync")[-1] == "RevokeFailed"
        await rt.close()

    run(main(), timeout=45)


def test_a_lone_secret_deletion_is_not_held_but_a_namespace_deletion_is(world: World, run):
    async def main():
        key, rt = await revoking(world)
        uid = world.kube.tokens[key]["metadata"]["uid"]
        world.kube.delete_secret(NS, "crm-sync-install")  # a person (or GitOps) deletes the Secret alone
        await passes(rt, key)
        assert (NS, "crm-sync-install") not in world.kube.secrets, "a lone Secret deletion hangs"
        assert "crm-sync-install" not in (world.status("crm-sync").get("revocation") or {}).get("heldSecrets", [])
        world.kube.terminating.add(NS)
        world.kube.delete_secret(NS, "hubspot-app")
        await passes(rt, key)
        assert rv.secret_finalizer(uid) in secret_finalizers(world, "hubspot-app"), "released during a namespace deletion"
        world.kube.terminating.discard(NS)
        await rt.close()

    run(main(), timeout=45)


def test_a_failure_half_way_forgets_no_finalizer(world: World, run):
    async def main():
        key, rt = await revoking(world)
        uid = world.kube.tokens[key]["metadata"]["uid"]
        world.kube.edit_token(NS, "crm-sync", {"spec": {"oauth": {"revokeOnDelete": False}}})
        world.kube.fail("patch_secret_metadata", 500, when=lambda ns, n: n == "hubspot-app")
        await passes(rt, key)  # releasing hubspot-app fails; crm-sync-install is released
        held = (world.status("crm-sync").get("revocation") or {}).get("heldSecrets") or []
        assert "hubspot-app" in held and rv.secret_finalizer(uid) in secret_finalizers(world, "hubspot-app")
        await passes(rt, key)
        assert not secret_finalizers(world, "hubspot-app") and not secret_finalizers(world, "crm-sync-install")
        await rt.close()

    run(main(), timeout=45)


def test_a_token_gone_without_its_finalize_releases_its_secrets(world: World, run):
    async def main():
        key, rt = await revoking(world)
        body = world.kube.token(*key)
        uid = body["metadata"]["uid"]
        del world.kube.tokens[key]  # its finalizer was patched away by hand; Kubernetes deleted it
        await rv.release_orphaned(rt, body)
        assert rv.held_anything(body)
        assert rv.secret_finalizer(uid) not in secret_finalizers(world, "hubspot-app")
        assert rv.secret_finalizer(uid) not in secret_finalizers(world, "crm-sync-install")
        await rt.close()

    run(main(), timeout=45)


def test_a_series_counted_by_a_reconcile_that_outlived_its_token_is_removed(world: World, run):
    """Review finding: a reconcile still running when its token was deleted re-created its counter series."""
    from hubspot_token_operator import controller, metrics

    async def main():
        key = world.oauth()
        rt = world.runtime()
        rt.remember(world.kube.token(*key))
        real = rt.kube.create_secret

        async def deleted_meanwhile(*a, **k):
            rt.tokens.pop(key, None)  # the watch's DELETED arrives while this reconcile publishes
            rt.drop(key)
            return await real(*a, **k)

        rt.kube.create_secret = deleted_meanwhile
        await controller.reconcile(rt, key)
        names = {(s.labels.get("namespace"), s.labels.get("name")) for s in metrics.REFRESHES.collect()[0].samples}
        assert key not in names, "the deleted token's refresh series is back"
        await rt.close()

    run(main(), timeout=45)


def test_turned_off_then_deleted_before_a_reconcile_revokes_nothing(world: World, run):
    """revokeOnDelete set to false and the token deleted at once (one apply, then a delete; or the operator
    was down in between): the finalizer is still there, but the grant is left alone, as the spec now says."""
    async def main():
        key, rt = await revoking(world)
        refresh = world.kube.text(NS, "crm-sync-install", "refresh_token")
        world.kube.edit_token(NS, "crm-sync", {"spec": {"oauth": {"revokeOnDelete": False}}})
        delete_now(world)
        await passes(rt, key, 3, follow=True)
        assert world.refresh_token_live(refresh), "the grant was revoked although revokeOnDelete was off"
        assert "RevokeSkipped" in world.kube.reasons("crm-sync")
        assert key not in world.kube.tokens, "the deletion did not finish"
        assert not [f for s in world.kube.secrets.values() for f in s.finalizers], "a Secret kept a finalizer"
        await rt.close()

    run(main(), timeout=30)


def test_a_sharer_served_by_another_shard_in_another_watched_namespace_keeps_the_grant(world: World, run):
    """watch.mode namespaces: no cluster-wide list of HubSpotTokens. A token of another release (another
    shard, so not in this replica's memory) in another watched namespace uses the same grant: it is found
    by listing each watched namespace, and the grant is left alone."""
    import dataclasses

    async def main():
        a = world.oauth("crm-sync", target="a")
        world.kube.edit_token(NS, "crm-sync", {"spec": {"oauth": {"revokeOnDelete": True}}})
        refresh = world.kube.text(NS, "crm-sync-install", "refresh_token")
        other = "team-b"
        world.kube.put_secret(other, "hubspot-app", {"client_id": world.grant.client_id,
                                                     "client_secret": world.grant.client_secret})
        world.kube.put_secret(other, "copy-install", {"refresh_token": refresh})
        world.kube.add_token(other, {"apiVersion": "hubspot-operator.dev/v1alpha1", "kind": "HubSpotToken",
                                     "metadata": {"name": "reports"}, "spec": {
                                         "type": "OAuth", "hubId": 1, "target": {"name": "b"},
                                         "oauth": {"clientSecretRef": {"name": "hubspot-app"},
                                                   "refreshTokenSecretRef": {"name": "copy-install"}}}})
        world.kube.fail("list_tokens", 403, times=None, when=lambda ns, _: ns == "")  # no cluster-wide read
        rt = world.runtime()
        rt.settings = dataclasses.replace(rt.settings, namespaces=[NS, other])
        await passes(rt, a, 2)
        # what the other release wrote when it refreshed "reports": the same grant's fingerprint
        world.kube.edit_token(other, "reports", {"status": {"grantFingerprint": world.status("crm-sync")["grantFingerprint"]}})
        world.kube.delete_token(NS, "crm-sync")
        await passes(rt, a)
        assert a not in world.kube.tokens
        assert world.refresh_token_live(refresh), "a grant a token of another shard uses was revoked"
        assert "RevokeSkipped" in world.kube.reasons("crm-sync")
        await rt.close()

    run(main(), timeout=45)
