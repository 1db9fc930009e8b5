"""Rolling restarts of dependent workloads: controller-manager + scheduler + kwok make rollouts real."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.cluster import signals as sig
from tests.cluster import tokens as t
from tests.cluster import workloads as w
from tests.helpers import wait_for

HUB = 6060
SCOPES = ["oauth"]


def rotate_source(simulator, core, ns, app, secret="pa-source"):
    new = simulator.rotate(app["app_id"], "later")
    t.remember(new)
    t.put_secret(core, ns, secret, {"token": new})
    return new


def restart_events(core, ns, name=None):
    return [e for e in t.events(core, ns, name) if e.reason == "RestartTriggered"]


def private_app(simulator, core, ns, secret="pa-source"):
    app = simulator.private_app(HUB, SCOPES)
    t.remember(app["token"])
    t.put_secret(core, ns, secret, {"token": app["token"]})
    return app


def published(core, ns, target):
    return (t.read_secret(core, ns, target) or {}).get("access_token")


def test_rotation_restarts_deployment_statefulset_daemonset_and_argo_rollout(
    operator, simulator, api, core, apps, custom, namespace
):
    w.install_argo_crd(api)
    w.deployment(apps, namespace, "dep")
    w.statefulset(apps, namespace, "sts")
    w.daemonset(apps, namespace, "ds")
    wait_for(lambda: w.argo_rollout(custom, namespace, "ro") or True, what="argo Rollout created")
    app = private_app(simulator, core, namespace)
    t.create(custom, namespace, t.private_app_token("pa", rollout={
        "delay": "0s",
        "targets": [{"kind": "Deployment", "name": "dep"}, {"kind": "StatefulSet", "name": "sts"},
                    {"kind": "DaemonSet", "name": "ds"}, {"kind": "Rollout", "name": "ro"}],
    }))
    wait_for(lambda: published(core, namespace, "hubspot-private") == app["token"], timeout=30, what="publish")
    for kind, name in (("Deployment", "dep"), ("StatefulSet", "sts"), ("DaemonSet", "ds")):
        wait_for(lambda: w.rollout_complete(apps, namespace, kind, name), timeout=60, what=f"{kind} up")
    rs_before = {rs.metadata.name for rs in w.replicasets(apps, namespace, "dep")}
    sts_rev = apps.read_namespaced_stateful_set("sts", namespace).status.update_revision
    assert not restart_events(core, namespace), "the first publication is not a rotation"

    rotate_source(simulator, core, namespace, app)
    for kind, name in (("Deployment", "dep"), ("StatefulSet", "sts"), ("DaemonSet", "ds")):
        wait_for(lambda: w.template_value(apps, namespace, kind, name), timeout=30, what=f"{kind} restarted")
        wait_for(lambda: w.rollout_complete(apps, namespace, kind, name), timeout=90, what=f"{kind} rollout done")
    assert {rs.metadata.name for rs in w.replicasets(apps, namespace, "dep")} - rs_before, "no new ReplicaSet"
    assert apps.read_namespaced_stateful_set("sts", namespace).status.update_revision != sts_rev
    ro = custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", namespace, "rollouts", "ro")
    assert ro["spec"].get("restartAt")
    # Events are posted after the reconcile's status write (and a 409 on one workload retries it next pass)
    wait_for(lambda: len(restart_events(core, namespace, "pa")) >= 4, timeout=30, what="four RestartTriggered Events")
    assert len(restart_events(core, namespace, "pa")) == 4
    wait_for(lambda: all(r["state"] == "Complete" for r in t.get(custom, namespace, "pa")["status"]["rollout"]["targets"]
                         if r["kind"] != "Rollout"), timeout=60, what="per-target Complete in status")
    status = t.get(custom, namespace, "pa")["status"]
    by_kind = {r["kind"]: r for r in status["rollout"]["targets"]}
    assert all(r["revision"] == status["restartRevision"] for r in by_kind.values())
    assert by_kind["Deployment"]["updatedReplicas"] == by_kind["Deployment"]["replicas"] == 1
    assert status["rollout"]["restarts"] == 4 and not status["rollout"].get("pendingSince")


def test_routine_refreshes_do_not_restart_but_every_refresh_does(operator, simulator, core, apps, custom, namespace):
    a = simulator.create_app()
    t.remember(a["client_secret"])
    t.put_secret(core, namespace, "hubspot-app", {"client_id": a["client_id"], "client_secret": a["client_secret"]})
    for name, policy in (("routine", "Rotation"), ("every", "EveryRefresh")):
        t.put_secret(core, namespace, f"{name}-install", {"refresh_token": simulator.install(a["client_id"], HUB, SCOPES)})
        w.deployment(apps, namespace, f"{name}-app")
        t.create(custom, namespace, t.oauth_token(name, target=f"{name}-out", rollout={
            "restartOn": policy, "delay": "0s", "targets": [{"kind": "Deployment", "name": f"{name}-app"}]}))
    for name, count in (("routine", 10), ("every", 4)):
        wait_for(lambda: t.condition(t.get(custom, namespace, name), "Ready").get("status") == "True", what="Ready")
        for i in range(count):
            before = published(core, namespace, f"{name}-out")
            t.patch(custom, namespace, name,
                    {"metadata": {"annotations": {"hubspot-operator.dev/refresh-requested-at": f"{name}-{i}"}}})
            wait_for(lambda: published(core, namespace, f"{name}-out") != before, timeout=30, what=f"{name} refresh {i}")
            if name == "every":
                wait_for(lambda: len(restart_events(core, namespace, name)) == i + 1, timeout=30,
                         what=f"restart for refresh {i}")

    def settled(name, last):
        # the status written by the reconcile that published the last refresh, which also made the restart
        # decision: its target is recorded at the token's current restart revision
        o = t.get(custom, namespace, name)
        st = o["status"]
        targets = (st.get("rollout") or {}).get("targets") or []
        done = st.get("lastRefreshRequest") == last and targets and all(
            r.get("revision") == st.get("restartRevision") for r in targets)
        return done and o

    routine = wait_for(lambda: settled("routine", "routine-9"), what="routine's last refresh and restart decision")
    every = wait_for(lambda: settled("every", "every-3"), what="every's last refresh and restart decision")
    assert not routine["status"]["rollout"].get("restarts")
    assert restart_events(core, namespace, "routine") == []
    assert w.template_value(apps, namespace, "Deployment", "routine-app") is None
    assert every["status"]["rollout"]["restarts"] == 4
    assert len(restart_events(core, namespace, "every")) == 4
    values = {e.message.split("(")[-1] for e in restart_events(core, namespace, "every")}
    assert len(values) == 4, "each refresh restarts with its own value"


def test_two_back_to_back_rotations_make_two_distinct_restarts(operator, simulator, core, apps, custom, namespace):
    w.deployment(apps, namespace, "dep")
    app = private_app(simulator, core, namespace)
    t.create(custom, namespace, t.private_app_token("pa", rollout={
        "delay": "0s", "targets": [{"kind": "Deployment", "name": "dep"}]}))
    wait_for(lambda: published(core, namespace, "hubspot-private") == app["token"], timeout=30, what="publish")
    wait_for(lambda: w.rollout_complete(apps, namespace, "Deployment", "dep"), timeout=60, what="dep up")
    first = rotate_source(simulator, core, namespace, app)
    wait_for(lambda: published(core, namespace, "hubspot-private") == first, timeout=30, what="first rotation")
    second = rotate_source(simulator, core, namespace, app)
    wait_for(lambda: published(core, namespace, "hubspot-private") == second, timeout=30, what="second rotation")
    wait_for(lambda: len(restart_events(core, namespace, "pa")) == 2, timeout=30, what="two restarts")
    values = [e.message.split("(")[-1] for e in restart_events(core, namespace, "pa")]
    assert len(set(values)) == 2
    wait_for(lambda: w.rollout_complete(apps, namespace, "Deployment", "dep"), timeout=60, what="rollout done")
    assert len(w.replicasets(apps, namespace, "dep")) == 3  # original + one per rotation


def test_operator_restart_during_debounce_neither_loses_nor_repeats(
    operator, simulator, core, apps, custom, namespace
):
    w.deployment(apps, namespace, "dep")
    app = private_app(simulator, core, namespace)
    t.create(custom, namespace, t.private_app_token("pa", rollout={
        "delay": "0s", "minInterval": "10m", "targets": [{"kind": "Deployment", "name": "dep"}]}))
    wait_for(lambda: published(core, namespace, "hubspot-private") == app["token"], timeout=30, what="publish")
    rotate_source(simulator, core, namespace, app)
    wait_for(lambda: len(restart_events(core, namespace, "pa")) == 1, timeout=30, what="first restart")
    rotate_source(simulator, core, namespace, app)
    wait_for(lambda: "RestartDeferred" in t.reasons(core, namespace, "pa"), timeout=30, what="second deferred")
    pending = t.get(custom, namespace, "pa")["status"]["rollout"]
    assert pending["pendingSince"] and pending["pendingRevision"]
    first_value = w.template_value(apps, namespace, "Deployment", "dep")
    assert len(sig.only_tokens_in(custom, namespace)) == 1

    operator.stop()
    operator.start()
    # positive signal: the new process (its counter starts at 0) has reconciled pa, the only HubSpotToken
    sig.wait_for_reconciles(operator, since=0, n=1, what="the restarted operator looked at pa")
    assert len(restart_events(core, namespace, "pa")) == 1, "restarted early after an operator restart"
    assert w.template_value(apps, namespace, "Deployment", "dep") == first_value
    after = t.get(custom, namespace, "pa")["status"]["rollout"]
    assert (after["pendingSince"], after["pendingRevision"]) == (pending["pendingSince"], pending["pendingRevision"])
    simulator.advance(601)  # the debounce window ends (simulated time; the operator follows it)
    wait_for(lambda: len(restart_events(core, namespace, "pa")) == 2, timeout=30, what="deferred restart")
    second_value = w.template_value(apps, namespace, "Deployment", "dep")
    assert second_value != first_value
    # positive signal: pa recorded the restart for its revision and, in later reconciles, saw it roll out
    obj = wait_for(
        lambda: (o := t.get(custom, namespace, "pa")) and not o["status"]["rollout"].get("pendingSince")
        and (r := o["status"]["rollout"]["targets"][0])["revision"] == o["status"]["restartRevision"]
        and r.get("state") == "Complete" and o,
        timeout=60, what="the deferred restart recorded and rolled out")
    assert len(restart_events(core, namespace, "pa")) == 2, "the deferred restart ran twice"
    assert obj["status"]["rollout"]["restarts"] == 2
    assert w.template_value(apps, namespace, "Deployment", "dep") == second_value


def test_three_tokens_rotating_together_restart_a_shared_deployment_once(
    operator, simulator, core, apps, custom, namespace
):
    w.deployment(apps, namespace, "shared", labels={"uses-hubspot": "yes"})
    apps_ = []
    for i in range(3):
        apps_.append(private_app(simulator, core, namespace, secret=f"src{i}"))
        body = t.private_app_token(f"pa{i}", target=f"out{i}", rollout={
            "delay": "3s", "selector": {"matchLabels": {"uses-hubspot": "yes"}}})
        body["spec"]["privateApp"]["tokenSecretRef"]["name"] = f"src{i}"
        t.create(custom, namespace, body)
    for i in range(3):
        wait_for(lambda: published(core, namespace, f"out{i}") == apps_[i]["token"], timeout=30, what=f"publish {i}")
    wait_for(lambda: w.rollout_complete(apps, namespace, "Deployment", "shared"), timeout=60, what="shared up")
    rs_before = len(w.replicasets(apps, namespace, "shared"))
    for i in range(3):  # the Secret is written before the status of the same reconcile
        wait_for(lambda: (t.get(custom, namespace, f"pa{i}").get("status") or {}).get("restartRevision"),
                 timeout=30, what=f"status of pa{i}")
    old_revisions = [t.get(custom, namespace, f"pa{i}")["status"]["restartRevision"] for i in range(3)]
    for i in range(3):
        rotate_source(simulator, core, namespace, apps_[i], secret=f"src{i}")
    value = wait_for(lambda: w.template_value(apps, namespace, "Deployment", "shared"), timeout=30, what="restart")
    # positive signal: every token, after its delay, recorded the workload at its new revision, with nothing
    # pending (the later ones found the value already there)
    statuses = []
    for i in range(3):
        def recorded():
            st = t.get(custom, namespace, f"pa{i}")["status"]
            ok = (st["restartRevision"] != old_revisions[i] and not st["rollout"].get("pendingSince")
                  and st["rollout"]["targets"][0]["revision"] == st["restartRevision"])
            return st if ok else None
        try:
            statuses.append(wait_for(recorded, timeout=30, what=f"pa{i} recorded"))
        except AssertionError:
            for j in range(3):
                st = t.get(custom, namespace, f"pa{j}")["status"]
                print(f"pa{j}: old {old_revisions[j]} now {st.get('restartRevision')} rollout {st.get('rollout')}")
            raise
    # Events are posted right after the status write of the reconcile that restarted
    wait_for(lambda: restart_events(core, namespace), what="RestartTriggered Event")
    assert len(restart_events(core, namespace)) == 1
    assert sum(st["rollout"].get("restarts") or 0 for st in statuses) == 1
    assert w.template_value(apps, namespace, "Deployment", "shared") == value
    wait_for(lambda: w.rollout_complete(apps, namespace, "Deployment", "shared"), timeout=60, what="rollout done")
    assert len(w.replicasets(apps, namespace, "shared")) == rs_before + 1


def test_paused_deployment_is_not_patched_and_missing_target_does_not_block(
    operator, simulator, core, apps, custom, namespace
):
    w.deployment(apps, namespace, "paused")
    w.deployment(apps, namespace, "live")
    apps.patch_namespaced_deployment("paused", namespace, {"spec": {"paused": True}})
    app = private_app(simulator, core, namespace)
    t.create(custom, namespace, t.private_app_token("pa", rollout={"delay": "0s", "targets": [
        {"kind": "Deployment", "name": "paused"}, {"kind": "Deployment", "name": "nope"},
        {"kind": "Deployment", "name": "live"}]}))
    wait_for(lambda: published(core, namespace, "hubspot-private") == app["token"], timeout=30, what="publish")
    rotate_source(simulator, core, namespace, app)
    wait_for(lambda: w.template_value(apps, namespace, "Deployment", "live"), timeout=30, what="live restarted")
    assert w.template_value(apps, namespace, "Deployment", "paused") is None
    def target_states():  # status is written at the end of the reconcile that patched `live`
        return {r["name"]: r["state"] for r in t.get(custom, namespace, "pa")["status"]["rollout"]["targets"]}

    wait_for(lambda: target_states().get("paused") == "Paused", what="Paused recorded in status")
    assert target_states()["nope"] == "Missing"
    assert w.template_value(apps, namespace, "Deployment", "paused") is None
    msgs = [e.message for e in t.events(core, namespace, "pa")]
    assert any("paused" in m for m in msgs) and any("does not exist" in m for m in msgs)
    apps.patch_namespaced_deployment("paused", namespace, {"spec": {"paused": False}})
    wait_for(lambda: w.template_value(apps, namespace, "Deployment", "paused"), timeout=30, what="restarted on resume")


def test_a_kubectl_applied_token_is_quiet_once_its_restart_completed(
    operator, simulator, core, apps, custom, namespace, cluster
):
    """The dashboard run against the demo found a settled token reconciled ~60 times a second: every pass
    wrote a status the API server found unchanged (rollout.pendingSince: None looked like a change), and the
    write's response carried kubectl's last-applied annotation, which the stored copy drops, so it looked
    like a user edit and the token went round again at once. Needs `kubectl apply` (the annotation) and a
    completed restart (the rollout status)."""
    w.deployment(apps, namespace, "quiet")
    wait_for(lambda: w.rollout_complete(apps, namespace, "Deployment", "quiet"), timeout=60, what="quiet up")
    app = private_app(simulator, core, namespace)
    manifest = json.dumps(t.private_app_token("pa", rollout={"delay": "0s", "targets": [
        {"kind": "Deployment", "name": "quiet"}]}))
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
    res = subprocess.run(["kubectl", "apply", "-n", namespace, "-f", "-"], input=manifest, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "kubectl.kubernetes.io/last-applied-configuration" in t.get(custom, namespace, "pa")["metadata"]["annotations"]
    wait_for(lambda: published(core, namespace, "hubspot-private") == app["token"], timeout=30, what="publish")
    rotate_source(simulator, core, namespace, app)
    wait_for(lambda: w.template_value(apps, namespace, "Deployment", "quiet"), timeout=30, what="restarted")
    wait_for(lambda: all(r["state"] == "Complete" for r in
                         (t.get(custom, namespace, "pa")["status"].get("rollout") or {}).get("targets") or [{}]),
             timeout=90, what="restart Complete in status")

    def counts() -> tuple[float, float, float]:
        return (sig.metric_sum(operator, "hubspot_token_status_noop_writes_total"),
                sig.metric_sum(operator, "hubspot_token_kube_requests_total", verb="patch", resource="hubspottokens/status"),
                sig.metric_sum(operator, "hubspot_token_kube_requests_total", verb="get", resource="deployments"))

    sig.only_tokens_in(custom, namespace)  # the counters then move for this token only
    noop_before, patches_before, gets_before = counts()
    rv = t.get(custom, namespace, "pa")["metadata"]["resourceVersion"]
    time.sleep(5)  # a window to count in, not a wait for something to happen: a loop shows as hundreds
    noop, patches, gets = counts()
    assert t.get(custom, namespace, "pa")["metadata"]["resourceVersion"] == rv, "the settled token was written"
    assert noop == noop_before, f"{noop - noop_before} status writes changed nothing"
    assert patches - patches_before <= 3 and gets - gets_before <= 3, (
        f"in 5 s: {patches - patches_before} status patches, {gets - gets_before} Deployment reads")
