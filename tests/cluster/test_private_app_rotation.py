"""Private-app / service-key rotation end to end, driven by the simulator's UI-rotation stand-in."""

from __future__ import annotations

import pytest

from tests.cluster import tokens as t
from tests.cluster import workloads as w
from tests.helpers import wait_for

HUB = 5150
SCOPES = ["crm.objects.contacts.read", "oauth"]
DAY = 86400


def cond(custom, ns, name, ctype):
    return t.condition(t.get(custom, ns, name), ctype)


def published(core, ns, target="hubspot-private"):
    return t.read_secret(core, ns, target) or {}


@pytest.fixture
def pat(simulator, core, namespace):
    """A private app in the simulator with its token in the source Secret."""
    return t.private_app_in_source(simulator, core, namespace, HUB, SCOPES)


def test_rotation_verified_published_overlap_then_dropped(operator, simulator, core, custom, apps, namespace, pat):
    w.deployment(apps, namespace, "consumer")
    t.create(custom, namespace, t.private_app_token(
        "pa", hubId=HUB, requiredScopes=["crm.objects.contacts.read"],
        privateApp={"tokenSecretRef": {"name": "pa-source"}, "overlap": "7d", "maxAge": "30d"},
        rollout={"targets": [{"kind": "Deployment", "name": "consumer"}], "delay": "0s"},
    ))
    wait_for(lambda: published(core, namespace).get("access_token") == pat["token"], timeout=30, what="first publish")
    wait_for(lambda: cond(custom, namespace, "pa", "Ready").get("status") == "True", what="Ready")
    assert cond(custom, namespace, "pa", "Verified")["status"] == "True"
    wait_for(lambda: w.rollout_complete(apps, namespace, "Deployment", "consumer"), timeout=60, what="consumer up")
    before = w.template_value(apps, namespace, "Deployment", "consumer")

    new = simulator.rotate(pat["app_id"], "later")
    t.remember(new)
    t.put_secret(core, namespace, "pa-source", {"token": new})
    wait_for(lambda: published(core, namespace).get("access_token") == new, timeout=30, what="rotated token published")
    data = published(core, namespace)
    assert data["previous_access_token"] == pat["token"]
    assert simulator.bearer_ok(new) and simulator.bearer_ok(pat["token"])  # "expire later": both work
    # the Secret is written before status: wait for the status of the same reconcile
    obj = wait_for(lambda: (o := t.get(custom, namespace, "pa")) and
                   (o["status"].get("privateApp") or {}).get("previousUntil") and o, what="rotation in status")
    assert t.condition(obj, "RotationAccepted")["status"] == "True"
    wait_for(lambda: "Rotated" in t.reasons(core, namespace, "pa"), what="Rotated Event")

    # the consumer is restarted and, once it runs new pods, the old token is declared unused
    wait_for(lambda: w.template_value(apps, namespace, "Deployment", "consumer") != before, timeout=30, what="restart")
    wait_for(lambda: cond(custom, namespace, "pa", "PreviousTokenRetirable").get("status") == "True",
             timeout=60, what="PreviousTokenRetirable=True")
    wait_for(lambda: "PreviousTokenUnused" in t.reasons(core, namespace, "pa"), what="safe-to-expire Event")

    # seven simulated days later the overlap ends and the previous token leaves the Secret
    simulator.advance(7 * DAY + 60)
    wait_for(lambda: "previous_access_token" not in published(core, namespace), timeout=30, what="previous dropped")
    assert published(core, namespace)["access_token"] == new
    assert not simulator.bearer_ok(pat["token"])  # HubSpot expired the old one too
    wait_for(lambda: "PreviousTokenDropped" in t.reasons(core, namespace, "pa"), what="PreviousTokenDropped Event")

    # and after maxAge, RotationDue turns the 180-day reminder e-mail into a condition and an Event
    simulator.advance(24 * DAY)
    wait_for(lambda: cond(custom, namespace, "pa", "RotationDue").get("status") == "True", timeout=30,
             what="RotationDue=True")
    wait_for(lambda: "RotationDue" in t.reasons(core, namespace, "pa"), what="RotationDue Event")


@pytest.mark.parametrize("case", ["wrong-hub", "missing-scope", "dead-token"])
def test_bad_new_tokens_are_rejected_and_the_old_one_stays(operator, simulator, core, custom, namespace, pat, case):
    t.create(custom, namespace, t.private_app_token(
        "pa", hubId=HUB, requiredScopes=["crm.objects.contacts.read"],
        privateApp={"tokenSecretRef": {"name": "pa-source"}}))
    wait_for(lambda: published(core, namespace).get("access_token") == pat["token"], timeout=30, what="first publish")

    if case == "wrong-hub":
        bad = simulator.private_app(HUB + 1, SCOPES)["token"]
        reason = "HubMismatch"
    elif case == "missing-scope":
        bad = simulator.private_app(HUB, ["oauth"])["token"]
        reason = "ScopesMissing"
    else:
        other = simulator.private_app(HUB, SCOPES)
        bad = other["token"]
        simulator.post(f"/_sim/private-apps/{other['app_id']}/deactivate")
        reason = "InvalidToken"
    t.remember(bad)
    t.put_secret(core, namespace, "pa-source", {"token": bad})
    rejected = wait_for(
        lambda: (c := cond(custom, namespace, "pa", "RotationAccepted")) and c.get("status") == "False" and c,
        timeout=30, what="RotationAccepted=False",
    )
    assert rejected["reason"] == reason
    assert "current token stays published" in rejected["message"]
    assert published(core, namespace)["access_token"] == pat["token"]
    assert cond(custom, namespace, "pa", "Ready")["status"] == "True"
    wait_for(lambda: "RotationRejected" in t.reasons(core, namespace, "pa"), what="RotationRejected Event")


def test_rotate_now_in_hubspot_is_detected_at_the_next_verification(operator, simulator, core, custom, namespace, pat):
    t.create(custom, namespace, t.private_app_token(
        "pa", privateApp={"tokenSecretRef": {"name": "pa-source"}, "verifyInterval": "1h"}))
    wait_for(lambda: published(core, namespace).get("access_token") == pat["token"], timeout=30, what="first publish")
    t.remember(simulator.rotate(pat["app_id"], "now"))  # nobody updates the cluster
    simulator.advance(3700)  # past the next verification
    c = wait_for(lambda: (c := cond(custom, namespace, "pa", "Verified")) and c.get("status") == "False" and c,
                 timeout=30, what="Verified=False")
    assert c["reason"] == "TokenDeactivated"
    assert cond(custom, namespace, "pa", "Ready")["status"] == "False"
    wait_for(lambda: "TokenInvalid" in t.reasons(core, namespace, "pa"), what="TokenInvalid Event")


def test_kubectl_hubspot_rotate_feeds_the_token_from_stdin_and_waits(
    operator, simulator, core, custom, namespace, pat, cluster
):
    import subprocess
    import sys
    from pathlib import Path

    t.create(custom, namespace, t.private_app_token("pa", privateApp={"tokenSecretRef": {"name": "pa-source"}}))
    wait_for(lambda: published(core, namespace).get("access_token") == pat["token"], timeout=30, what="first publish")
    plugin = str(Path(sys.executable).parent / "kubectl-hubspot")

    new = simulator.rotate(pat["app_id"], "later")
    t.remember(new)
    res = subprocess.run([plugin, "rotate", "pa", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig),
                          "--timeout", "60s"], input=new + "\n", capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "published" in res.stdout
    assert new not in res.stdout + res.stderr and pat["token"] not in res.stdout + res.stderr
    assert published(core, namespace)["access_token"] == new
    assert published(core, namespace)["previous_access_token"] == pat["token"]

    bad = simulator.private_app(HUB + 7, SCOPES)["token"]
    t.remember(bad)
    t.patch(custom, namespace, "pa", {"spec": {"hubId": HUB}})
    res = subprocess.run([plugin, "rotate", "pa", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig),
                          "--timeout", "60s"], input=bad, capture_output=True, text=True, timeout=90)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "HubMismatch" in res.stdout + res.stderr
    assert bad not in res.stdout + res.stderr
    assert published(core, namespace)["access_token"] == new

    status = subprocess.run([plugin, "status", "pa", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "RotationAccepted" in status.stdout


def test_overlap_ending_while_old_pods_still_run_is_warned(operator, simulator, core, apps, custom, namespace, pat):
    w.deployment(apps, namespace, "stuck")
    apps.patch_namespaced_deployment("stuck", namespace, {"spec": {"paused": True}})  # never restarts
    t.create(custom, namespace, t.private_app_token(
        "pa", privateApp={"tokenSecretRef": {"name": "pa-source"}, "overlap": "7d"},
        rollout={"delay": "0s", "targets": [{"kind": "Deployment", "name": "stuck"}]}))
    wait_for(lambda: published(core, namespace).get("access_token") == pat["token"], timeout=30, what="first publish")
    new = simulator.rotate(pat["app_id"], "later")
    t.remember(new)
    t.put_secret(core, namespace, "pa-source", {"token": new})
    wait_for(lambda: published(core, namespace).get("access_token") == new, timeout=30, what="rotation")
    wait_for(lambda: cond(custom, namespace, "pa", "PreviousTokenRetirable").get("status") == "False",
             what="PreviousTokenRetirable=False")
    simulator.advance(6 * DAY + 3600)  # inside the last day of the overlap
    wait_for(lambda: "OverlapEnding" in t.reasons(core, namespace, "pa"), timeout=30, what="OverlapEnding Event")
