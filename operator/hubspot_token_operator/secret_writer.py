"""Writes the target Secret according to publish.plan_target, recording the outcome."""

from __future__ import annotations

from kubernetes.client import ApiException

from . import conditions as cond
from .kube import SecretView
from .model import TokenSpec
from .publish import Owner, plan_target
from .recording import Recorder
from .runtime import Runtime


async def publish_target(
    rt: Runtime,
    rec: Recorder,
    spec: TokenSpec,
    body: dict,
    values: dict[str, bytes],
    existing: SecretView | None,
    remove: tuple[str, ...] = (),
) -> bool:
    """True when the Secret holds `values` afterwards; on refusal or error, Ready says why and nothing changed."""
    md = body["metadata"]
    published_before = bool((body.get("status") or {}).get("secretMAC"))
    plan = plan_target(
        spec.target, Owner(md["name"], md["uid"]), values, existing, remove_keys=remove, published_before=published_before
    )
    try:
        written = None
        if plan.action == "create":
            written = await rt.kube.create_secret(md["namespace"], plan.body)
        elif plan.action == "replace":
            written = await rt.kube.replace_secret(md["namespace"], spec.target.name, plan.body)
        if written is not None:
            rt.own_writes[(written.namespace, written.name)] = written.resource_version
        elif plan.action == "refuse":
            rec.condition(cond.READY, False, plan.reason, plan.message)
            rec.event_once("Warning", plan.reason, plan.message)
            return False
    except ApiException as e:
        msg = f"writing Secret {spec.target.name} failed: HTTP {e.status} {e.reason}"
        rec.condition(cond.READY, False, "SecretWriteFailed", msg)
        rec.event("Warning", "SecretWriteFailed", msg)
        return False
    rec.set_fields(secretMAC=rt.fingerprints.of_data(values))
    return True
