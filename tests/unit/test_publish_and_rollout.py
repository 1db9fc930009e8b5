"""What lands in the target Secret (publish.py) and whom to restart, when (rollout.py)."""

from datetime import datetime, timedelta, timezone

import pytest

from hubspot_token_operator.kube import SecretView
from hubspot_token_operator.model import RolloutSpec, TargetSpec
from hubspot_token_operator.publish import MANAGED_BY, TOKEN_LABEL, Owner, plan_target
from hubspot_token_operator.rollout import (
    RESTARTED_FOR,
    TargetRef,
    current_value,
    due_at,
    progress,
    restart_patch,
    restart_value,
    select_targets,
    targets_workload,
)

OWNER = Owner("tok", "uid-1")
VALUES = {"access_token": b"a", "expires_at": b"2026"}


def target(**kw) -> TargetSpec:
    return TargetSpec.model_validate({"name": "out", **kw})


def existing(data=None, labels=None, owner_uids=()) -> SecretView:
    return SecretView(
        name="out",
        namespace="ns",
        data=data or {"other": b"keep"},
        resource_version="7",
        labels=labels or {},
        owner_refs=[{"uid": u, "apiVersion": "x", "kind": "y", "name": "z"} for u in owner_uids],
    )


def test_owner_creates_with_labels_and_no_owner_ref_by_default():
    plan = plan_target(target(), OWNER, VALUES, None)
    assert plan.action == "create"
    md = plan.body["metadata"]
    assert md["labels"][MANAGED_BY] == "hubspot-token-operator" and md["labels"][TOKEN_LABEL] == "tok"
    assert md["ownerReferences"] == []
    assert plan.body["data"] == VALUES


def test_delete_policy_adds_owner_reference():
    plan = plan_target(target(deletionPolicy="Delete"), OWNER, VALUES, None)
    assert plan.body["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_owner_refuses_a_foreign_secret_with_a_message_that_says_what_to_do():
    plan = plan_target(target(), OWNER, VALUES, existing())
    assert plan.action == "refuse" and plan.reason == "TargetSecretNotOwned"
    assert "Adopt or Merge" in plan.message


def test_owner_keeps_a_secret_it_published_even_if_labels_were_stripped():
    assert plan_target(target(), OWNER, VALUES, existing(), published_before=True).action == "replace"


def test_adopt_replaces_data_and_merge_keeps_other_keys():
    adopted = plan_target(target(creationPolicy="Adopt"), OWNER, VALUES, existing())
    assert adopted.action == "replace" and adopted.body["data"] == VALUES
    merged = plan_target(target(creationPolicy="Merge"), OWNER, VALUES, existing())
    assert merged.body["data"] == {"other": b"keep", **VALUES}
    assert merged.body["metadata"]["resourceVersion"] == "7"


def test_merge_needs_an_existing_secret():
    assert plan_target(target(creationPolicy="Merge"), OWNER, VALUES, None).reason == "TargetSecretMissing"


def test_up_to_date_secret_is_not_rewritten():
    labels = {MANAGED_BY: "hubspot-token-operator", "hubspot-operator.dev/managed-by": "hubspot-token-operator",
              TOKEN_LABEL: "tok"}
    plan = plan_target(target(), OWNER, VALUES, existing(data=dict(VALUES), labels=labels, owner_uids=["uid-1"]))
    assert plan.action == "none"


def test_merge_can_remove_the_previous_token_key():
    ex = existing(data={"other": b"keep", "previous_access_token": b"old", **VALUES})
    plan = plan_target(target(creationPolicy="Merge"), OWNER, VALUES, ex, remove_keys=("previous_access_token",))
    assert "previous_access_token" not in plan.body["data"] and plan.body["data"]["other"] == b"keep"


# ---- rollout -------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def deployment(name="web", labels=None, annotations=None, **status):
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels or {}, "generation": 2},
        "spec": {"replicas": 2, "template": {"metadata": {"annotations": annotations or {}}}},
        "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2, **status},
    }


def test_restart_value_is_order_independent_and_revision_sensitive():
    a = restart_value({"t1": "2-aa", "t2": "1-bb"})
    assert a == restart_value({"t2": "1-bb", "t1": "2-aa"})
    assert a != restart_value({"t1": "3-cc", "t2": "1-bb"})
    assert a.startswith("rev-")


def test_two_rotations_in_one_second_get_distinct_values():
    assert restart_value({"t": "2-aaaa"}) != restart_value({"t": "3-bbbb"})


def test_selector_and_explicit_targets_without_duplicates():
    spec = RolloutSpec.model_validate(
        {"targets": [{"kind": "Deployment", "name": "web"}], "selector": {"matchLabels": {"uses": "hubspot"}}}
    )
    ws = [deployment("web", {"uses": "hubspot"}), deployment("api", {"uses": "hubspot"}), deployment("x")]
    assert select_targets(spec, ws) == [TargetRef("Deployment", "web"), TargetRef("Deployment", "api")]


def test_targets_workload_ignores_never_policy():
    spec = {"rollout": {"restartOn": "Never", "targets": [{"kind": "Deployment", "name": "web"}]}}
    assert not targets_workload(spec, TargetRef("Deployment", "web"), {})
    spec["rollout"]["restartOn"] = "Rotation"
    assert targets_workload(spec, TargetRef("Deployment", "web"), {})


def test_due_at_respects_delay_and_min_interval_from_the_workload_annotation():
    spec = RolloutSpec.model_validate({"delay": "5s", "minInterval": "10m"})
    fresh = deployment()
    assert due_at(NOW, fresh, spec) == NOW + timedelta(seconds=5)
    recent = deployment(annotations={"hubspot-operator.dev/restarted-at": "2026-11-22T11:58:00.000Z"})
    assert due_at(NOW, recent, spec) == datetime(2026, 11, 22, 12, 8, tzinfo=timezone.utc)


def test_restart_patch_shapes():
    p = restart_patch(deployment(), "rev-1", NOW)
    ann = p["spec"]["template"]["metadata"]["annotations"]
    assert ann[RESTARTED_FOR] == "rev-1" and ann["hubspot-operator.dev/restarted-at"] == "2026-11-22T12:00:00.000Z"
    rollout = restart_patch({"kind": "Rollout"}, "rev-1", NOW)
    assert rollout["spec"]["restartAt"] == "2026-11-22T12:00:00Z"
    assert current_value({"kind": "Rollout", **{"metadata": rollout["metadata"]}}) == "rev-1"


@pytest.mark.parametrize(
    "status, state",
    [
        ({}, "Complete"),
        ({"updatedReplicas": 1}, "Progressing"),
        ({"observedGeneration": 1}, "Progressing"),
        ({"availableReplicas": 1}, "Progressing"),
    ],
)
def test_progress(status, state):
    assert progress(deployment(**status))[0] == state


# ---- ownership marks (tenancy) ------------------------------------------------------------------------


def test_a_created_secret_is_marked_for_its_token_uid():
    from hubspot_token_operator.publish import CREATED_FOR

    plan = plan_target(target(), OWNER, VALUES, None)
    assert plan.body["metadata"]["annotations"][CREATED_FOR] == OWNER.uid


def test_name_labels_do_not_make_a_secret_created_for_another_uid_ours():
    from dataclasses import replace

    from hubspot_token_operator.publish import CREATED_FOR

    labelled = existing(labels={MANAGED_BY: "hubspot-token-operator", TOKEN_LABEL: OWNER.name})
    # before created-for existed: the name labels still count (upgrades keep working)
    assert plan_target(target(), OWNER, VALUES, labelled).action == "replace"
    # left behind by a deleted token of the same name: not ours, refused
    orphan = replace(labelled, annotations={CREATED_FOR: "00000000-dead-beef"})
    plan = plan_target(target(), OWNER, VALUES, orphan)
    assert (plan.action, plan.reason) == ("refuse", "TargetSecretNotOwned")


def test_deletion_policy_delete_never_owns_an_adopted_secret():
    plan = plan_target(target(creationPolicy="Adopt", deletionPolicy="Delete"), OWNER, VALUES, existing())
    assert plan.action == "replace" and plan.body["metadata"]["ownerReferences"] == []


def test_target_annotations_cannot_forge_the_operators_own_records():
    """spec.target.annotations may not set created-for (which would make deletionPolicy Delete garbage-collect
    an adopted Secret) nor published: the CRD refuses them, and plan_target ignores them on older objects."""
    from hubspot_token_operator.publish import CREATED_FOR, PUBLISHED

    forged = target(creationPolicy="Adopt", deletionPolicy="Delete",
                    annotations={CREATED_FOR: OWNER.uid, PUBLISHED: "forged", "team": "a"})
    plan = plan_target(forged, OWNER, VALUES, existing())
    assert plan.action == "replace"
    md = plan.body["metadata"]
    assert CREATED_FOR not in md["annotations"] and PUBLISHED not in md["annotations"]
    assert md["annotations"]["team"] == "a"
    assert md["ownerReferences"] == [], "an adopted Secret got the token as its owner"
    applied = SecretView(name="out", namespace="ns", data=dict(plan.body["data"]), resource_version="8",
                         labels=md["labels"], annotations=md["annotations"])
    again = plan_target(forged, OWNER, {**VALUES, "access_token": b"b"}, applied)
    assert again.body["metadata"]["ownerReferences"] == []


def test_a_surge_with_an_old_pod_still_running_is_not_complete():
    """Mid-rollout with maxSurge: the new pods are all updated and available, but an old pod still runs
    (status.replicas counts it). `kubectl rollout status` waits for it; so must PreviousTokenRetirable."""
    from hubspot_token_operator.rollout import progress

    def deployment(replicas):
        return {"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
                "status": {"observedGeneration": 2, "replicas": replicas, "updatedReplicas": 2, "availableReplicas": 2}}

    assert progress(deployment(3))[0] == "Progressing"
    assert progress(deployment(2))[0] == "Complete"
