"""``kubectl hubspot check``: is everything in place for the plugin (and the operator) to work?

One line per check, OK or FAIL and what to do. Exit code 1 if any check fails.

1. The CRD is installed, Established and serves the version the plugin speaks.
2. An operator Deployment is found and has a ready replica.
3. The current user may do what each plugin command needs (SelfSubjectAccessReview per verb and resource).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import GROUP, PLURAL, VERSION
from .api import CRD_MISSING_HINT, CRD_NAME, ApiError, CRDMissing, Forbidden, NotFound, qualified
from .common import EXIT_ERROR, EXIT_OK, Ctx
from .operator_info import lookup_for
from .output import document, paint

# (verb, group, resource, namespaced, commands that need it): the RBAC table of docs/kubectl-plugin.md.
PERMISSIONS: list[tuple[str, str, str, bool, str]] = [
    ("get", GROUP, PLURAL, True, "status NAME, rotate, authorize, refresh NAME, inspect secret"),
    ("list", GROUP, PLURAL, True, "status, list, refresh --all/-l, completion"),
    ("patch", GROUP, PLURAL, True, "refresh"),
    ("list", "", "events", True, "status NAME"),
    ("get", "", "secrets", True, "rotate, authorize (the app's client Secret), inspect secret"),
    ("create", "", "secrets", True, "rotate, authorize (when the Secret does not exist yet)"),
    ("update", "", "secrets", True, "rotate, authorize"),
    ("list", "apps", "deployments", False, "version, check, and refresh --wait / rotate (finding the operator)"),
]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str
    fix: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "message": self.message, "fix": self.fix or None}


def run(ctx: Ctx, args) -> int:
    checks = [crd_check(ctx), operator_check(ctx), *rbac_checks(ctx)]
    failed = [c for c in checks if not c.ok]
    if ctx.out.machine:
        ctx.out.emit(document("CheckResult", namespace=ctx.namespace, ok=not failed,
                              checks=[c.as_dict() for c in checks]))
    else:
        for line in render(checks, ctx.out.color):
            ctx.out.line(line)
    return EXIT_ERROR if failed else EXIT_OK


def render(checks: list[Check], color: bool = False) -> list[str]:
    lines = []
    for c in checks:
        word = "OK" if c.ok else "FAIL"
        text = f"{paint(word, 'green' if c.ok else 'red', color)}{' ' * (6 - len(word))}{c.name}: {c.message}"
        if c.fix and not c.ok:
            text += f" -> {c.fix}"
        lines.append(text)
    failed = sum(not c.ok for c in checks)
    lines.append(f"{failed} of {len(checks)} checks failed" if failed else f"all {len(checks)} checks passed")
    return lines


def crd_verdict(crd: dict) -> Check:
    """Pure: the CRD object -> OK when Established and serving the plugin's version."""
    conds = {c.get("type"): c for c in (crd.get("status") or {}).get("conditions") or []}
    versions = (crd.get("spec") or {}).get("versions") or []
    served = [v.get("name") for v in versions if v.get("served")]
    storage = next((v.get("name") for v in versions if v.get("storage")), None)
    est = conds.get("Established") or {}
    if est.get("status") != "True":
        why = est.get("message") or est.get("reason") or "no Established condition yet"
        return Check("crd", False, f"CRD {CRD_NAME} is installed but not Established ({why})",
                     f"kubectl describe crd {CRD_NAME}")
    if VERSION not in served:
        return Check("crd", False, f"CRD {CRD_NAME} serves {', '.join(served) or 'no version'}, not {VERSION} "
                     "which this plugin uses", "upgrade the CRDs and the plugin together (kubectl apply -f crds/)")
    return Check("crd", True, f"CRD {CRD_NAME} is Established; serves {', '.join(served)} (storage {storage})")


def crd_check(ctx: Ctx) -> Check:
    try:
        return crd_verdict(ctx.api.get_crd(CRD_NAME))
    except NotFound:
        return Check("crd", False, f"CRD {CRD_NAME} is not installed", CRD_MISSING_HINT)
    except Forbidden:
        pass  # most users may not read CRDs: ask the API for the resource instead
    except ApiError as e:
        return Check("crd", False, f"cannot read CRD {CRD_NAME}: {e}")
    try:
        ctx.api.list_tokens(ctx.namespace)
    except CRDMissing:
        return Check("crd", False, f"CRD {CRD_NAME} is not installed (the API server does not serve "
                     f"{qualified(PLURAL, GROUP)})", CRD_MISSING_HINT)
    except Forbidden:  # RBAC answers before the API server looks the type up: this proves nothing
        return Check("crd", False, f"cannot tell whether CRD {CRD_NAME} is installed: you may neither read the CRD "
                     f"nor list {PLURAL} in namespace {ctx.namespace}", f"ask for 'list' on {qualified(PLURAL, GROUP)}")
    except ApiError as e:
        return Check("crd", False, f"cannot tell whether CRD {CRD_NAME} is installed: {e}")
    return Check("crd", True, f"{qualified(PLURAL, GROUP)}/{VERSION} is served (reading the CRD object itself "
                 "is not permitted)")


def operator_check(ctx: Ctx) -> Check:
    lookup = lookup_for(ctx)
    problem = lookup.problem()
    if problem:
        fix = ("install the chart, or pass --operator-namespace/--operator-selector" if not lookup.found
               else "check the operator's pods and logs")
        return Check("operator", False, problem, fix if not lookup.error else "")
    return Check("operator", True, "; ".join(d.describe() for d in lookup.deployments))


def rbac_checks(ctx: Ctx) -> list[Check]:
    out = []
    for verb, group, resource, namespaced, commands in PERMISSIONS:
        ns = ctx.namespace if namespaced else ctx.operator_namespace
        where = f"in namespace {ns}" if ns else "in all namespaces"
        what = f"{verb} {qualified(resource, group)} {where}"
        try:
            review = ctx.api.access_review(ns, verb, resource, group)
        except ApiError as e:
            out.append(Check(f"rbac {what}", False, f"cannot ask the API server (SelfSubjectAccessReview): {e}"))
            continue
        if review.get("allowed"):
            out.append(Check(f"rbac {what}", True, f"allowed (needed by {commands})"))
        else:
            fix = (f"ask a cluster admin for a {'Role' if ns else 'ClusterRole'} granting {verb!r} on "
                   f"{qualified(resource, group)} {where}")
            if not namespaced:
                fix += " (or pass --operator-namespace NS to look only there)"
            out.append(Check(f"rbac {what}", False, f"denied (needed by {commands})", fix))
    return out
