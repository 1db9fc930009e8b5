"""Kopf wiring. Thin on purpose: watches feed the work queue; all decisions live elsewhere.

- HubSpotToken events store the newest body and queue the object.
- Secret events wake exactly the HubSpotTokens that read or write that Secret (a Kopf index), so a
  missing Secret heals the moment it appears and an edited target is restored, with no polling.
- Workload events wake the tokens that target them, so rollout progress lands in status promptly.
No change handlers are registered, so Kopf adds no finalizers and no progress annotations to anything.
"""

from __future__ import annotations

import logging

import kopf

from . import GROUP, PLURAL, VERSION
from .operator_main import OperatorContext, current
from .rollout import TargetRef, targets_workload

log = logging.getLogger(__name__)


def _secret_names(spec: dict) -> set[str]:
    names = {((spec.get("target") or {}).get("name"))}
    oauth = spec.get("oauth") or {}
    names.add((oauth.get("clientSecretRef") or {}).get("name"))
    names.add((oauth.get("refreshTokenSecretRef") or {}).get("name"))
    names.add(((spec.get("privateApp") or {}).get("tokenSecretRef") or {}).get("name"))
    return {n for n in names if n}


@kopf.index(GROUP, VERSION, PLURAL)
def tokens_by_secret(namespace, name, spec, **_):
    return {(namespace, secret): name for secret in _secret_names(dict(spec))}


@kopf.index(GROUP, VERSION, PLURAL)
def tokens_by_namespace(namespace, name, **_):
    return {namespace: name}


@kopf.on.event(GROUP, VERSION, PLURAL)
def token_event(event, body, namespace, name, **_):
    ctx: OperatorContext = current()
    key = (namespace, name)
    if event.get("type") == "DELETED":
        ctx.runtime.tokens.pop(key, None)
        ctx.queue.forget(key)
        return
    if ctx.runtime.remember(dict(body)):  # not the echo of our own status write
        ctx.queue.schedule(key)


@kopf.on.event("", "v1", "secrets")
def secret_event(event, namespace, name, meta, tokens_by_secret: kopf.Index, **_):
    ctx: OperatorContext = current()
    if event.get("type") != "DELETED" and ctx.runtime.is_own_echo(namespace, name, meta.get("resourceVersion")):
        return
    for token in tokens_by_secret.get((namespace, name), []):
        ctx.queue.schedule((namespace, token))


def _wake_targeting(namespace: str, kind: str, name: str, labels: dict, tokens_by_namespace: kopf.Index) -> None:
    ctx: OperatorContext = current()
    for token in tokens_by_namespace.get(namespace, []):
        body = ctx.runtime.tokens.get((namespace, token))
        if body and _targets(body.get("spec") or {}, kind, name, labels):
            ctx.queue.schedule((namespace, token))


def _targets(spec: dict, kind: str, name: str, labels: dict) -> bool:
    """The same decision the restart uses (one function decides "does token T target workload W")."""
    return targets_workload(spec, TargetRef(kind, name), labels)


@kopf.on.event("apps", "v1", "deployments")
def deployment_event(namespace, name, labels, tokens_by_namespace: kopf.Index, **_):
    _wake_targeting(namespace, "Deployment", name, dict(labels), tokens_by_namespace)


@kopf.on.event("apps", "v1", "statefulsets")
def statefulset_event(namespace, name, labels, tokens_by_namespace: kopf.Index, **_):
    _wake_targeting(namespace, "StatefulSet", name, dict(labels), tokens_by_namespace)


@kopf.on.event("apps", "v1", "daemonsets")
def daemonset_event(namespace, name, labels, tokens_by_namespace: kopf.Index, **_):
    _wake_targeting(namespace, "DaemonSet", name, dict(labels), tokens_by_namespace)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_):
    ctx = current()
    settings.posting.enabled = False  # we post our own Events, with our own reasons
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.watching.inactivity_timeout = 70  # a black-holed watch (no bookmarks) is reopened, not trusted
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="hubspot-operator.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="hubspot-operator.dev")
    settings.networking.request_timeout = 60
    await ctx.start()


@kopf.on.cleanup()
async def cleanup(**_):
    await current().stop()


@kopf.on.event("argoproj.io", "v1alpha1", "rollouts")
def argo_rollout_event(namespace, name, labels, tokens_by_namespace: kopf.Index, **_):
    _wake_targeting(namespace, "Rollout", name, dict(labels), tokens_by_namespace)
