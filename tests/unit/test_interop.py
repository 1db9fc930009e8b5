"""Playing well with others (issue #14): the labels and Reloader annotations the operator puts on target
Secrets (publish.py), the CRD's descriptions, and the Argo CD health check of docs/interop.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hubspot_token_operator.kube import SecretView
from hubspot_token_operator.model import TargetSpec
from hubspot_token_operator.publish import (
    CREATED_FOR,
    MANAGED_BY,
    MANAGER,
    OUR_MANAGED_BY,
    RELOADER_IGNORE,
    TOKEN_LABEL,
    Owner,
    is_marked_ours,
    other_token,
    owned_by,
    ownership_labels,
    plan_target,
    reloader_annotations,
)

ROOT = Path(__file__).resolve().parents[2]
OWNER = Owner("tok", "uid-1")
VALUES = {"access_token": b"a", "expires_at": b"2026"}
HELM = {MANAGED_BY: "Helm", "app.kubernetes.io/instance": "shop"}
HELM_ANN = {"meta.helm.sh/release-name": "shop", "meta.helm.sh/release-namespace": "ns"}


def target(**kw) -> TargetSpec:
    return TargetSpec.model_validate({"name": "out", **kw})


def secret(labels=None, annotations=None, data=None, owner_uids=()) -> SecretView:
    return SecretView(name="out", namespace="ns", data=data if data is not None else {"other": b"keep"},
                      resource_version="7", labels=dict(labels or {}), annotations=dict(annotations or {}),
                      owner_refs=[{"uid": u, "apiVersion": "x", "kind": "y", "name": "z"} for u in owner_uids])


# ---- labels: ours on every target, app.kubernetes.io/managed-by only on Secrets we create ----------------


def test_ownership_labels_new_and_existing():
    assert ownership_labels(None, "tok") == {OUR_MANAGED_BY: MANAGER, MANAGED_BY: MANAGER, TOKEN_LABEL: "tok"}
    assert ownership_labels({MANAGED_BY: "Helm"}, "tok") == {OUR_MANAGED_BY: MANAGER, TOKEN_LABEL: "tok"}
    assert ownership_labels({}, "tok") == {OUR_MANAGED_BY: MANAGER, TOKEN_LABEL: "tok"}


def test_a_created_secret_carries_both_managed_by_labels():
    plan = plan_target(target(), OWNER, VALUES, None)
    labels = plan.body["metadata"]["labels"]
    assert (labels[OUR_MANAGED_BY], labels[MANAGED_BY], labels[TOKEN_LABEL]) == (MANAGER, MANAGER, "tok")


@pytest.mark.parametrize("policy", ["Merge", "Adopt"])
def test_helm_managed_by_survives_merge_and_adopt(policy):
    plan = plan_target(target(creationPolicy=policy), OWNER, VALUES, secret(labels=HELM, annotations=HELM_ANN))
    assert plan.action == "replace"
    md = plan.body["metadata"]
    assert md["labels"][MANAGED_BY] == "Helm" and md["labels"]["app.kubernetes.io/instance"] == "shop"
    assert md["labels"][OUR_MANAGED_BY] == MANAGER and md["labels"][TOKEN_LABEL] == "tok"
    assert HELM_ANN.items() <= md["annotations"].items()


@pytest.mark.parametrize("policy", ["Merge", "Adopt"])
def test_an_absent_managed_by_stays_absent_on_merge_and_adopt(policy):
    plan = plan_target(target(creationPolicy=policy), OWNER, VALUES, secret())
    assert MANAGED_BY not in plan.body["metadata"]["labels"]


def test_a_merged_secret_already_marked_is_not_rewritten_for_labels():
    labels = {**HELM, OUR_MANAGED_BY: MANAGER, TOKEN_LABEL: "tok"}
    ex = secret(labels=labels, data={"other": b"keep", **VALUES})
    assert plan_target(target(creationPolicy="Merge"), OWNER, VALUES, ex).action == "none"


def test_old_and_new_marks_are_both_recognised():
    assert is_marked_ours({OUR_MANAGED_BY: MANAGER}) and is_marked_ours({MANAGED_BY: MANAGER})
    assert not is_marked_ours({MANAGED_BY: "Helm"}) and not is_marked_ours({})
    # a Secret from before created-for, labelled the old way: still ours (upgrades keep working)
    old = secret(labels={MANAGED_BY: MANAGER, TOKEN_LABEL: "tok"})
    new = secret(labels={OUR_MANAGED_BY: MANAGER, TOKEN_LABEL: "tok"})
    helm = secret(labels={MANAGED_BY: "Helm", TOKEN_LABEL: "tok"})
    assert owned_by(old, OWNER) and owned_by(new, OWNER) and not owned_by(helm, OWNER)
    # and another token's Secret is recognised under either mark, not under Helm's
    for labels in ({MANAGED_BY: MANAGER, TOKEN_LABEL: "other"}, {OUR_MANAGED_BY: MANAGER, TOKEN_LABEL: "other"}):
        assert other_token(secret(labels=labels), OWNER) == "other"
    assert other_token(secret(labels={MANAGED_BY: "Helm", TOKEN_LABEL: "other"}), OWNER) is None


def test_an_old_secret_gets_our_label_and_keeps_the_old_one():
    old = secret(labels={MANAGED_BY: MANAGER, TOKEN_LABEL: "tok"}, data=dict(VALUES), owner_uids=["uid-1"])
    plan = plan_target(target(), OWNER, VALUES, old)
    assert plan.action == "replace"  # one write, to add our label
    assert plan.body["metadata"]["labels"] == {MANAGED_BY: MANAGER, OUR_MANAGED_BY: MANAGER, TOKEN_LABEL: "tok"}


def test_adopting_a_secret_created_for_a_deleted_token_is_still_refused_under_owner():
    orphan = secret(labels={OUR_MANAGED_BY: MANAGER, TOKEN_LABEL: "tok"}, annotations={CREATED_FOR: "dead"})
    assert plan_target(target(), OWNER, VALUES, orphan).reason == "TargetSecretNotOwned"


# ---- Reloader --------------------------------------------------------------------------------------------

RELOADER_TABLE = [
    # token type, restartOn, creationPolicy -> what the operator does with reloader.stakater.com/ignore
    ("OAuth", "Rotation", "Owner", "true"),
    ("OAuth", "Never", "Owner", "true"),
    ("OAuth", "Rotation", "Adopt", "true"),
    ("OAuth", "Never", "Adopt", "true"),
    ("OAuth", "EveryRefresh", "Owner", "remove"),
    ("OAuth", "EveryRefresh", "Adopt", "remove"),
    ("PrivateApp", "Rotation", "Owner", "remove"),
    ("PrivateApp", "Never", "Owner", "remove"),
    ("PrivateApp", "EveryRefresh", "Adopt", "remove"),
    ("OAuth", "Rotation", "Merge", "leave"),
    ("OAuth", "Never", "Merge", "leave"),
    ("PrivateApp", "Rotation", "Merge", "leave"),
]


@pytest.mark.parametrize("kind,restart_on,policy,expected", RELOADER_TABLE)
def test_reloader_decision(kind, restart_on, policy, expected):
    got = reloader_annotations(kind, restart_on, policy)
    assert got == {"true": {RELOADER_IGNORE: "true"}, "remove": {RELOADER_IGNORE: None}, "leave": {}}[expected]


def _plan(kind, restart_on, policy, existing=None, annotations=None):
    t = target(creationPolicy=policy, **({"annotations": annotations} if annotations else {}))
    return plan_target(t, OWNER, VALUES, existing, reloader=reloader_annotations(kind, restart_on, policy))


def test_reloader_ignore_written_on_create_and_on_adopt():
    created = _plan("OAuth", "Rotation", "Owner")
    assert created.action == "create" and created.body["metadata"]["annotations"][RELOADER_IGNORE] == "true"
    adopted = _plan("OAuth", "Never", "Adopt", secret())
    assert adopted.body["metadata"]["annotations"][RELOADER_IGNORE] == "true"


def test_reloader_ignore_removed_when_restart_on_becomes_every_refresh():
    ours = secret(labels={OUR_MANAGED_BY: MANAGER, TOKEN_LABEL: "tok"}, annotations={RELOADER_IGNORE: "true", "x": "y"},
                  data=dict(VALUES), owner_uids=["uid-1"])
    plan = _plan("OAuth", "EveryRefresh", "Owner", ours)
    assert plan.action == "replace" and plan.body["metadata"]["annotations"] == {"x": "y"}
    assert _plan("OAuth", "Rotation", "Owner", ours).action == "none"  # already there: no write for it


def test_reloader_ignore_left_alone_on_a_merged_secret():
    for ann in ({}, {RELOADER_IGNORE: "false"}, {RELOADER_IGNORE: "true"}):
        plan = _plan("OAuth", "Rotation", "Merge", secret(labels=HELM, annotations=ann))
        assert plan.body["metadata"]["annotations"].get(RELOADER_IGNORE) == ann.get(RELOADER_IGNORE)


def test_spec_target_annotations_win_over_the_reloader_decision():
    plan = _plan("OAuth", "Rotation", "Owner", annotations={RELOADER_IGNORE: "false"})
    assert plan.body["metadata"]["annotations"][RELOADER_IGNORE] == "false"
    ex = secret(annotations={RELOADER_IGNORE: "true"})
    plan = _plan("PrivateApp", "Rotation", "Adopt", ex, annotations={RELOADER_IGNORE: "true"})
    assert plan.body["metadata"]["annotations"][RELOADER_IGNORE] == "true"  # asked for: not removed


def test_no_reloader_argument_changes_nothing():
    plan = plan_target(target(creationPolicy="Adopt"), OWNER, VALUES, secret(annotations={RELOADER_IGNORE: "true"}))
    assert plan.body["metadata"]["annotations"][RELOADER_IGNORE] == "true"
    assert RELOADER_IGNORE not in plan_target(target(), OWNER, VALUES, None).body["metadata"]["annotations"]


def test_secret_writer_passes_the_tokens_reloader_decision():
    """publish_target (secret_writer.py) hands plan_target the decision for the token's own type, restartOn
    and creationPolicy; checked on the source, since the async writer needs a runtime."""
    src = (ROOT / "operator" / "hubspot_token_operator" / "secret_writer.py").read_text()
    assert "reloader=reloader_annotations(spec.type, spec.rollout.restart_on, spec.target.creation_policy)" in src


# ---- the CRD: every property is described (kubectl explain) ----------------------------------------------

CRD = ROOT / "crds" / "hubspottokens.hubspot-operator.dev.yaml"


def _undescribed(schema: dict, path: str, root: bool = False) -> list[str]:
    out = []
    for name, prop in (schema.get("properties") or {}).items():
        here = f"{path}.{name}"
        if root and name == "metadata":
            # the API server refuses anything on the root metadata but name/generateName restrictions
            # (kubectl explain shows ObjectMeta's own documentation there)
            assert prop == {"type": "object"}, prop
            continue
        if not str(prop.get("description") or "").strip():
            out.append(here)
        out += _undescribed(prop, here)
    if isinstance(schema.get("items"), dict):
        out += _undescribed(schema["items"], path + "[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out += _undescribed(schema["additionalProperties"], path + "{}")
    return out


def test_every_crd_property_has_a_description():
    doc = yaml.safe_load(CRD.read_text())
    for v in doc["spec"]["versions"]:
        root = v["schema"]["openAPIV3Schema"]
        assert root.get("description")
        missing = _undescribed(root, v["name"], root=True)
        assert not missing, f"CRD properties without a description (kubectl explain shows nothing): {missing}"


def test_the_walk_finds_a_missing_description():
    assert _undescribed({"properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}}}, "x") == [
        "x.a", "x.a.b"]


def test_refresh_percent_says_elapsed_and_contrasts_cert_manager():
    doc = yaml.safe_load(CRD.read_text())
    spec = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    desc = spec["properties"]["refresh"]["properties"]["percent"]["description"]
    assert "elapsed" in desc and "renewBeforePercentage" in desc and "remaining" in desc
    docs = (ROOT / "docs" / "install.md").read_text()
    assert "renewBeforePercentage" in docs


def test_crd_supports_kubectl_wait_for_ready():
    doc = yaml.safe_load(CRD.read_text())
    assert "hst" in doc["spec"]["names"]["shortNames"]
    v = doc["spec"]["versions"][0]
    assert "status" in v["subresources"]
    conds = v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"]
    assert conds["type"] == "array" and conds["x-kubernetes-list-map-keys"] == ["type"]
    item = conds["items"]
    assert set(item["required"]) == {"type", "status"}
    assert {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"} <= set(item["properties"])
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]


# ---- the Argo CD health check in docs/interop.md ---------------------------------------------------------

INTEROP = ROOT / "docs" / "interop.md"


def argocd_lua() -> str:
    text = INTEROP.read_text()
    m = re.search(r"<!-- argocd-health-lua: begin -->\n```lua\n(.*?)```\n<!-- argocd-health-lua: end -->", text, re.S)
    assert m, "docs/interop.md lost its Argo CD health check block"
    return m.group(1)


def argocd_health(obj: dict) -> str:
    """A line-by-line Python mirror of the Lua in docs/interop.md (keep them in step)."""
    conditions = (obj.get("status") or {}).get("conditions")
    if conditions is not None:
        for c in conditions:
            if c.get("type") == "Ready":
                gen = (obj.get("metadata") or {}).get("generation")
                if gen is not None and c.get("observedGeneration") is not None and c["observedGeneration"] < gen:
                    return "Progressing"
                if c.get("status") == "True":
                    return "Healthy"
                if c.get("status") == "False" and c.get("reason") == "Suspended":
                    return "Suspended"
                if c.get("status") == "False" and c.get("reason") == "NotIssued":
                    return "Progressing"
                if c.get("status") == "False":
                    return "Degraded"
                return "Progressing"
    return "Progressing"


def hst(ready: dict | None, generation: int = 2, extra=()) -> dict:
    conds = [*extra, *([{"type": "Ready", **ready}] if ready else [])]
    return {"metadata": {"generation": generation}, "status": {"conditions": conds} if ready or extra else {}}


ARGOCD_TABLE = [
    ("no status", {"metadata": {"generation": 1}}, "Progressing"),
    ("no Ready yet", hst(None, extra=[{"type": "ScopesSatisfied", "status": "True"}]), "Progressing"),
    ("stale generation", hst({"status": "True", "observedGeneration": 1}), "Progressing"),
    ("ready", hst({"status": "True", "reason": "TokenPublished", "observedGeneration": 2}), "Healthy"),
    ("ready, no observedGeneration", hst({"status": "True"}), "Healthy"),
    ("suspended", hst({"status": "False", "reason": "Suspended", "observedGeneration": 2}), "Suspended"),
    ("first token pending", hst({"status": "False", "reason": "NotIssued", "observedGeneration": 2}), "Progressing"),
    ("reauth", hst({"status": "False", "reason": "ReauthRequired", "observedGeneration": 2}), "Degraded"),
    ("expired", hst({"status": "False", "reason": "TokenExpired"}), "Degraded"),
    ("consent", hst({"status": "False", "reason": "ConsentMissing"}), "Degraded"),
    ("unknown", hst({"status": "Unknown", "reason": "Reconciling"}), "Progressing"),
]


@pytest.mark.parametrize("case,obj,expected", ARGOCD_TABLE, ids=[c[0] for c in ARGOCD_TABLE])
def test_argocd_health_decision_table(case, obj, expected):
    assert argocd_health(obj) == expected


def test_argocd_lua_and_its_mirror_name_the_same_outcomes_and_reasons():
    lua = argocd_lua()
    statuses = set(re.findall(r'hs\.status = "(\w+)"', lua))
    assert statuses == {e for _, _, e in ARGOCD_TABLE} == {"Healthy", "Progressing", "Degraded", "Suspended"}
    assert set(re.findall(r'c\.reason == "(\w+)"', lua)) == {"Suspended", "NotIssued"}
    assert 'c.type == "Ready"' in lua and "c.observedGeneration < gen" in lua and lua.rstrip().endswith("return hs")
    # the reasons the Lua singles out are reasons the operator really sets on Ready
    readiness = (ROOT / "operator" / "hubspot_token_operator" / "readiness.py").read_text()
    assert '"Suspended"' in readiness and '"NotIssued"' in readiness
    # and the decision table in the docs says the same as the mirror
    doc = INTEROP.read_text()
    for words, health in (("`True`", "Healthy"), ("reason `Suspended`", "Suspended"), ("reason `NotIssued`", "Progressing")):
        assert re.search(rf"\| `?{re.escape(words)}`?.*\| {health} \|", doc) or re.search(
            rf"{re.escape(words)}.*\| {health} \|", doc), (words, health)


def test_argocd_lua_parses_when_a_lua_compiler_is_installed(tmp_path):
    """A syntax check with luac (Debian's lua5.4, installed by .ci/run); the next test runs the Lua itself."""
    luac = shutil.which("luac") or shutil.which("luac5.4") or shutil.which("luac5.3")
    assert luac, "luac is missing: apt-get install lua5.4 (.ci/run and testbin/node-deps.sh install it)"
    f = tmp_path / "health.lua"
    f.write_text(argocd_lua())
    proc = subprocess.run([luac, "-p", str(f)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _lua_literal(value) -> str:
    """A Python value (JSON-like) as a Lua table constructor: what Argo CD hands the script as `obj`."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{_lua_literal(k)}] = {_lua_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(_lua_literal(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.mark.parametrize("case,obj,expected", ARGOCD_TABLE, ids=[c[0] for c in ARGOCD_TABLE])
def test_argocd_lua_itself_gives_the_table_outcome(case, obj, expected, tmp_path):
    """Runs the Lua from docs/interop.md with a real interpreter (Debian's lua5.4, installed by .ci/run), the
    way Argo CD does: a global `obj`, the script's return value is the health."""
    lua = shutil.which("lua5.4") or shutil.which("lua")
    assert lua, "lua5.4 is missing: apt-get install lua5.4 (.ci/run installs it)"
    script = tmp_path / "health.lua"
    script.write_text(argocd_lua())
    runner = tmp_path / "run.lua"
    runner.write_text(f"obj = {_lua_literal(obj)}\nlocal hs = dofile({_lua_literal(str(script))})\n"
                      "io.write(hs.status, '\\n')\n")
    proc = subprocess.run([lua, str(runner)], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected
