"""Finding the operator in the cluster without any operator-side code: its Deployment, by the labels the
Helm chart puts on it (charts/hubspot-token-operator/templates/_helpers.tpl, ``hto.selectorLabels``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .api import ApiError, Forbidden

DEFAULT_SELECTOR = "app.kubernetes.io/name=hubspot-token-operator"
VERSION_LABEL = "app.kubernetes.io/version"
CONTAINER = "operator"  # the chart's container name


@dataclass(frozen=True)
class OperatorDeployment:
    namespace: str
    name: str
    image: str | None
    image_tag: str | None
    version: str | None  # the app.kubernetes.io/version label
    replicas: int
    ready_replicas: int

    @property
    def ready(self) -> bool:
        return self.ready_replicas > 0

    def as_dict(self) -> dict:
        return {"namespace": self.namespace, "name": self.name, "image": self.image, "imageTag": self.image_tag,
                "version": self.version, "replicas": self.replicas, "readyReplicas": self.ready_replicas,
                "ready": self.ready}

    def describe(self) -> str:
        parts = [f"image tag {self.image_tag or '-'}"]
        if self.version:
            parts.append(f"version {self.version}")
        parts.append(f"{self.ready_replicas}/{self.replicas} ready")
        return f"deployment/{self.name} in namespace {self.namespace}: " + ", ".join(parts)


@dataclass
class OperatorLookup:
    scope: str | None  # the namespace looked in; None: every namespace
    selector: str
    deployments: list[OperatorDeployment] = field(default_factory=list)
    error: str | None = None  # could not look (e.g. no permission to list Deployments)

    @property
    def where(self) -> str:
        return f"in namespace {self.scope}" if self.scope else "in any namespace"

    @property
    def found(self) -> bool:
        return bool(self.deployments)

    @property
    def ready(self) -> bool:
        return any(d.ready for d in self.deployments)

    def as_dict(self) -> dict:
        return {"found": self.found, "ready": self.ready, "namespace": self.scope, "selector": self.selector,
                "deployments": [d.as_dict() for d in self.deployments], "error": self.error}

    def problem(self) -> str | None:
        """Why nothing may be running the operator, or None when a ready operator Deployment was seen."""
        if self.error:
            return f"could not look for the operator Deployment: {self.error}"
        if not self.found:
            return (f"no hubspot-token-operator Deployment found {self.where} (label selector {self.selector}); "
                    "is the operator installed (helm install ... charts/hubspot-token-operator)? If it runs under "
                    "other labels or you may only look in its namespace, pass --operator-namespace NS and/or "
                    "--operator-selector SELECTOR")
        if not self.ready:
            names = ", ".join(f"{d.namespace}/{d.name} ({d.ready_replicas}/{d.replicas} ready)" for d in self.deployments)
            return (f"the operator Deployment has no ready replica: {names}; see `kubectl get pods -n "
                    f"{self.deployments[0].namespace}` and its logs")
        return None


def image_tag(image: str | None) -> str | None:
    """``ghcr.io/x/op:0.1.0`` -> ``0.1.0``; ``reg:5000/op`` -> None; ``op@sha256:ab..`` -> ``sha256:ab..``."""
    if not image:
        return None
    if "@" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def summarize(dep: dict) -> OperatorDeployment:
    md, spec, status = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    chosen = next((c for c in containers if c.get("name") == CONTAINER), containers[0] if containers else {})
    image = chosen.get("image")
    replicas = spec.get("replicas")
    return OperatorDeployment(
        namespace=md.get("namespace") or "", name=md.get("name") or "", image=image, image_tag=image_tag(image),
        version=(md.get("labels") or {}).get(VERSION_LABEL), replicas=1 if replicas is None else int(replicas),
        ready_replicas=int(status.get("readyReplicas") or 0),
    )


def find_operator(api, namespace: str | None, selector: str | None = None) -> OperatorLookup:
    selector = selector or DEFAULT_SELECTOR
    lookup = OperatorLookup(namespace, selector)
    try:
        items = api.list_deployments(namespace, selector)
    except Forbidden as e:
        lookup.error = str(e)
        return lookup
    except ApiError as e:
        lookup.error = f"listing Deployments failed: {e}"
        return lookup
    lookup.deployments = sorted((summarize(d) for d in items), key=lambda d: (d.namespace, d.name))
    return lookup


def lookup_for(ctx) -> OperatorLookup:
    return find_operator(ctx.api, ctx.operator_namespace, ctx.operator_selector or DEFAULT_SELECTOR)


def warn_if_absent(ctx) -> OperatorLookup:
    """For commands that wait on the operator: one warning (stderr) when no ready operator Deployment is seen.
    Not an error: the operator may run outside a Deployment (e.g. `hubspot-token-operator run` on a laptop)."""
    lookup = lookup_for(ctx)
    problem = lookup.problem()
    if problem:
        ctx.out.warn(f"{problem}. Waiting anyway; without a running operator the wait ends in a timeout")
    ctx.extra["operator"] = lookup
    return lookup
