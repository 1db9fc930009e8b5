"""Cancelled or mistaken private-app rotations roll back, and each HubSpot rotation email has a condition or
Event that says the same thing earlier (docs/hubspot-emails.md). Driven by the simulator's UI stand-ins;
the operator follows the simulator's clock, so advancing it past spec.privateApp.verifyInterval (the CRD's
minimum, 1m) makes the operator re-verify at once."""

from __future__ import annotations

import pytest

from tests.cluster import tokens as t
from tests.cluster import workloads as w
from tests.helpers import wait_for

HUB = 5150
SCOPES = ["crm.objects.contacts.read", "oauth"]
DAY = 86400
VERIFY = "1m"
PAST_VERIFY = 70  # simulated seconds: past the next verification (1m, jittered earlier)


def cond(custom, ns, name, ctype):
    return t.condition(t.get(custom, ns, name), ctype)


def published(core, ns, target="hubspot-private"):
    return t.read_secret(core, ns, target) or {}


def pa_status(custom, ns, name="pa"):
    return (t.get(custom, ns, name).get("status") or {}).get("privateApp") or {}


@pytest.fixture
def pat(simulator, core, namespace):
    return t.private_app_in_source(simulator, core, namespace, HUB, SCOPES)


def rotate_and_publish(simulator, core, custom, namespace, pat):
    new = simulator.rotate(pat["app_id"], "later")
    t.remember(new)
    t.put_secret(core, namespace, "pa-source", {"token": new})
    wait_for(lambda: published(core, namespace).get("access_token") == new, timeout=30, what="rotated token published")
    wait_for(lambda: pa_status(custom, namespace).get("previousUntil"), what="rotation in status")
    return new


def test_cancelled_rotation_is_rolled_back_and_consumers_restart(operator, simulator, core, custom, apps, namespace, pat):
    w.deployment(apps, namespace, "consumer")
    t.create(custom, namespace, t.private_app_token(
        "pa", hubId=HUB, privateApp={"tokenSecretRef": {"name": "pa-source"}, "overlap": "7d", "verifyInterval": VERIFY},
        rollout={"targets": [{"kind": "Deployment", "name": "consumer"}], "delay": "0s"},
    ))
    wait_for(lambda: published(core, namespace).get("access_token") == pat["token"], timeout=30, what="first publish")
    wait_for(lambda: w.rollout_complete(apps, namespace, "Deployment", "consumer"), timeout=60, what="consumer up")
    first = w.template_value(apps, namespace, "Deployment", "consumer")

    # "rotation started" email: Rotated Event, RotationAccepted=True, consumers restart
    new = rotate_and_publish(simulator, core, custom, namespace, pat)
    assert cond(custom, namespace, "pa", "RotationAccepted")["status"] == "True"
    wait_for(lambda: "Rotated" in t.reasons(core, namespace, "pa"), what="Rotated Event")
    rotated = wait_for(lambda: (v := w.template_value(apps, namespace, "Deployment", "consumer")) != first and v,
                       timeout=30, what="restart for the rotation")
    revision = t.get(custom, namespace, "pa")["status"]["credentialRevision"]

    # "rotation cancelled" email: the new token dies in HubSpot, the old one lives on
    simulator.cancel_rotation(pat["app_id"])
    assert not simulator.bearer_ok(new) and simulator.bearer_ok(pat["token"])
    simulator.advance(PAST_VERIFY)
    wait_for(lambda: published(core, namespace).get("access_token") == pat["token"], timeout=30, what="rolled back")
    data = published(core, namespace)
    assert "previous_access_token" not in data  # the dead token is of no use to anyone
    c = wait_for(lambda: (c := cond(custom, namespace, "pa", "RotationAccepted")) and
                 c.get("reason") == "RotationRolledBack" and c, what="RotationAccepted=False RotationRolledBack")
    assert c["status"] == "False" and "Secret pa-source still holds that dead token" in c["message"]
    assert cond(custom, namespace, "pa", "Ready")["status"] == "True"
    assert cond(custom, namespace, "pa", "Verified")["status"] == "True"
    assert cond(custom, namespace, "pa", "PreviousTokenRetirable")["status"] == "False"  # never expire it now
    obj = t.get(custom, namespace, "pa")
    assert obj["status"]["credentialRevision"] != revision
    assert obj["status"]["privateApp"]["rejectedFingerprint"]
    ev = wait_for(lambda: [e for e in t.events(core, namespace, "pa") if e.reason == "RotationRolledBack"],
                  what="RotationRolledBack Event")
    assert ev[0].type == "Warning"
    # consumers are restarted onto the rolled-back token (a new credential revision)
    wait_for(lambda: w.template_value(apps, namespace, "Deployment", "consumer") not in (first, rotated),
             timeout=30, what="restart for the rollback")

    # the dead token in the source Secret is never published again: not on a later verification...
    before = pa_status(custom, namespace).get("lastVerifiedAt")
    simulator.advance(PAST_VERIFY)
    wait_for(lambda: pa_status(custom, namespace).get("lastVerifiedAt") != before, timeout=30, what="another verification")
    # ...nor when the source Secret is written again with it
    t.put_secret(core, namespace, "pa-source", {"token": new, "note": "touched"})
    version = core.read_namespaced_secret("pa-source", namespace).metadata.resource_version
    wait_for(lambda: pa_status(custom, namespace).get("sourceVersion") == version, what="source evaluated")
    assert published(core, namespace).get("access_token") == pat["token"]
    assert cond(custom, namespace, "pa", "RotationAccepted")["reason"] == "RotationRolledBack"

    # a person rotates again in HubSpot and puts a working token there: a normal rotation
    newer = rotate_and_publish(simulator, core, custom, namespace, pat)
    assert published(core, namespace)["previous_access_token"] == pat["token"]
    assert published(core, namespace)["access_token"] == newer
    wait_for(lambda: cond(custom, namespace, "pa", "RotationAccepted").get("status") == "True", what="accepted again")


def test_new_and_old_token_both_dead_is_token_invalid(operator, simulator, core, custom, namespace, pat):
    t.create(custom, namespace, t.private_app_token(
        "pa", privateApp={"tokenSecretRef": {"name": "pa-source"}, "verifyInterval": VERIFY}))
    wait_for(lambda: published(core, namespace).get("access_token") == pat["token"], timeout=30, what="first publish")
    new = rotate_and_publish(simulator, core, custom, namespace, pat)
    simulator.post(f"/_sim/private-apps/{pat['app_id']}/deactivate")  # every token of the app dies
    simulator.advance(PAST_VERIFY)
    c = wait_for(lambda: (c := cond(custom, namespace, "pa", "Ready")) and c.get("status") == "False" and c,
                 timeout=30, what="Ready=False")
    assert c["reason"] == "TokenDeactivated" and "the previous token does not work either" in c["message"]
    assert published(core, namespace)["access_token"] == new  # nothing better to publish
    assert "RotationRolledBack" not in t.reasons(core, namespace, "pa")
    wait_for(lambda: "TokenInvalid" in t.reasons(core, namespace, "pa"), what="TokenInvalid Event")


def test_expire_now_during_the_overlap_is_reported(operator, simulator, core, custom, namespace, pat):
    t.create(custom, namespace, t.private_app_token(
        "pa", privateApp={"tokenSecretRef": {"name": "pa-source"}, "verifyInterval": VERIFY}))
    wait_for(lambda: published(core, namespace).get("access_token") == pat["token"], timeout=30, what="first publish")
    new = rotate_and_publish(simulator, core, custom, namespace, pat)

    # "invalidated immediately" email: "Expire now" on the pending rotation
    simulator.expire_previous(pat["app_id"])
    simulator.advance(PAST_VERIFY)
    wait_for(lambda: "previous_access_token" not in published(core, namespace), timeout=30, what="dead previous dropped")
    assert published(core, namespace)["access_token"] == new
    c = wait_for(lambda: (c := cond(custom, namespace, "pa", "PreviousTokenRetirable")) and
                 c.get("reason") == "PreviousTokenExpired" and c, what="PreviousTokenRetirable PreviousTokenExpired")
    assert c["status"] == "True"
    assert cond(custom, namespace, "pa", "Ready")["status"] == "True"
    wait_for(lambda: "PreviousTokenExpired" in t.reasons(core, namespace, "pa"), what="PreviousTokenExpired Event")
    assert not pa_status(custom, namespace).get("previousFingerprint")


def test_each_rotation_email_has_its_condition(operator, simulator, core, custom, apps, namespace, pat):
    w.deployment(apps, namespace, "stuck")
    apps.patch_namespaced_deployment("stuck", namespace, {"spec": {"paused": True}})  # never restarts
    t.create(custom, namespace, t.private_app_token(
        "pa", privateApp={"tokenSecretRef": {"name": "pa-source"}, "overlap": "7d", "maxAge": "30d",
                          "verifyInterval": VERIFY},
        rollout={"delay": "0s", "targets": [{"kind": "Deployment", "name": "stuck"}]}))
    wait_for(lambda: published(core, namespace).get("access_token") == pat["token"], timeout=30, what="first publish")

    # rotation started: Rotated, RotationAccepted=True, PreviousTokenRetirable=False
    rotate_and_publish(simulator, core, custom, namespace, pat)
    wait_for(lambda: cond(custom, namespace, "pa", "RotationAccepted").get("status") == "True", what="RotationAccepted")
    wait_for(lambda: "Rotated" in t.reasons(core, namespace, "pa"), what="Rotated Event")
    wait_for(lambda: cond(custom, namespace, "pa", "PreviousTokenRetirable").get("status") == "False",
             what="PreviousTokenRetirable=False")

    # 24 hours before the old token expires, with a consumer still on it: OverlapEnding
    simulator.advance(6 * DAY + 3600)
    wait_for(lambda: "OverlapEnding" in t.reasons(core, namespace, "pa"), timeout=30, what="OverlapEnding Event")
    assert pa_status(custom, namespace).get("overlapWarned") is True

    # the old token expired after seven days: PreviousTokenDropped
    simulator.advance(DAY)
    wait_for(lambda: "previous_access_token" not in published(core, namespace), timeout=30, what="previous dropped")
    wait_for(lambda: "PreviousTokenDropped" in t.reasons(core, namespace, "pa"), what="PreviousTokenDropped Event")
    assert cond(custom, namespace, "pa", "PreviousTokenRetirable")["reason"] in ("OverlapEnded", "PreviousTokenExpired")

    # not rotated for maxAge (180 days by default; 30 here): RotationDue
    simulator.advance(24 * DAY)
    wait_for(lambda: cond(custom, namespace, "pa", "RotationDue").get("status") == "True", timeout=30,
             what="RotationDue=True")
    wait_for(lambda: "RotationDue" in t.reasons(core, namespace, "pa"), what="RotationDue Event")


def test_a_rotation_in_hubspots_ui_is_seen_in_the_audit_log(operator, simulator, core, custom, namespace):
    """issue #15 item 5: spec.privateApp.auditLog reads HubSpot's audit log; a rotation nobody has brought to
    the cluster yet shows as RotationDue=True RotatedInHubSpot within one interval, long before the hourly
    verification, and clears once the new token is in the source Secret."""
    pat = t.private_app_in_source(simulator, core, namespace, HUB, [*SCOPES, "account-info.security.read"])
    t.create(custom, namespace, t.private_app_token("pa", hubId=HUB, privateApp={
        "tokenSecretRef": {"name": "pa-source"}, "auditLog": {"enabled": True, "interval": "1m"}}))
    wait_for(lambda: published(core, namespace).get("access_token") == pat["token"], timeout=30, what="first publish")
    wait_for(lambda: (pa_status(custom, namespace).get("auditLog") or {}).get("checkedAt"), timeout=30,
             what="the first audit-log read")
    simulator.advance(2)  # publishedAt is stored to the second: a rotation in the same second is not told apart
    new = simulator.rotate(pat["app_id"], "later")  # in HubSpot's UI; the source Secret still holds the old token
    t.remember(new)
    simulator.advance(75)  # past the next audit read (1m), not the next verification (1h)
    wait_for(lambda: cond(custom, namespace, "pa", "RotationDue").get("reason") == "RotatedInHubSpot", timeout=30,
             what="RotationDue=True RotatedInHubSpot")
    assert cond(custom, namespace, "pa", "RotationDue")["status"] == "True"
    assert "RotatedInHubSpot" in t.reasons(core, namespace, "pa")
    assert cond(custom, namespace, "pa", "Ready")["status"] == "True", "the old token still works"
    t.put_secret(core, namespace, "pa-source", {"token": new})
    wait_for(lambda: published(core, namespace).get("access_token") == new, timeout=30, what="the new token published")
    wait_for(lambda: cond(custom, namespace, "pa", "RotationDue").get("reason") == "WithinMaxAge", timeout=30,
             what="RotationDue back to WithinMaxAge")


def test_tokens_sharing_an_audit_reader_read_the_log_once_per_interval(operator, simulator, core, custom, namespace):
    """The audit log is account-wide: three private apps whose tokens read it with one reader Secret make one
    read per interval between them (audit_reads.py), and a rotation of one app is told to that token only."""
    reader = simulator.private_app(HUB, ["account-info.security.read"])
    t.remember(reader["token"])
    t.put_secret(core, namespace, "audit-reader", {"token": reader["token"]})
    names = ["pa-a", "pa-b", "pa-c"]
    apps = {}
    for name in names:
        apps[name] = t.private_app_in_source(simulator, core, namespace, HUB, SCOPES, secret=f"{name}-source")
        t.create(custom, namespace, t.private_app_token(name, target=f"{name}-hubspot", hubId=HUB, privateApp={
            "tokenSecretRef": {"name": f"{name}-source"},
            "auditLog": {"enabled": True, "interval": "1m", "tokenSecretRef": {"name": "audit-reader"}}}))
    checked = lambda: {n: (pa_status(custom, namespace, n).get("auditLog") or {}).get("checkedAt") for n in names}  # noqa: E731
    wait_for(lambda: all(checked().values()), timeout=30, what="the first audit-log read of each token")
    by_reader = lambda: simulator.stats()["audit_log_reads_by_app"].get(f"private-app:{reader['app_id']}:hub:{HUB}", 0)  # noqa: E731
    reads = []
    for i in range(3):
        before, seen = by_reader(), checked()
        if i == 2:
            simulator.advance(2)
            t.remember(simulator.rotate(apps["pa-b"]["app_id"], "later"))
        simulator.advance(65)
        wait_for(lambda: all(checked()[n] != seen[n] for n in names), timeout=30, what="every token's next audit read")
        reads.append(by_reader() - before)
    assert reads == [1, 1, 1], f"audit-log reads per interval, three tokens of one reader: {reads}"
    wait_for(lambda: cond(custom, namespace, "pa-b", "RotationDue").get("reason") == "RotatedInHubSpot", timeout=30,
             what="pa-b: RotationDue=True RotatedInHubSpot")
    assert [n for n in names if "RotatedInHubSpot" in t.reasons(core, namespace, n)] == ["pa-b"]
