"""``kubectl hubspot version``: the plugin's version and the operator Deployment(s) found in the cluster.

Exit code 0 even when no operator is found (or looking is not permitted): that is information, not failure."""

from __future__ import annotations

from .. import __version__
from .api import ApiError
from .common import EXIT_OK, Ctx
from .operator_info import OperatorLookup, lookup_for
from .output import document


def run(ctx: Ctx, args) -> int:
    lookup = lookup_for(ctx)
    try:
        server = ctx.api.server_version()
    except ApiError:
        server = None
    if ctx.out.machine:
        ctx.out.emit(version_document(lookup, server))
        return EXIT_OK
    for line in render(lookup, server):
        ctx.out.line(line)
    return EXIT_OK


def version_document(lookup: OperatorLookup, server: str | None) -> dict:
    return document("Version", plugin={"version": __version__}, kubernetes={"serverVersion": server},
                    operator=lookup.as_dict())


def render(lookup: OperatorLookup, server: str | None) -> list[str]:
    lines = [f"Plugin:      kubectl-hubspot {__version__}",
             f"Kubernetes:  {server or 'unknown (could not read /version)'}"]
    if lookup.error:
        lines.append(f"Operator:    unknown: {lookup.error}")
    elif not lookup.found:
        lines.append(f"Operator:    none found {lookup.where} (no Deployment labelled {lookup.selector}); pass "
                     "--operator-namespace NS / --operator-selector SELECTOR if it runs elsewhere or under other labels")
    elif len(lookup.deployments) == 1:
        lines.append(f"Operator:    {lookup.deployments[0].describe()}")
    else:
        lines.append(f"Operator:    {len(lookup.deployments)} Deployments found {lookup.where}:")
        lines += [f"  {d.describe()}" for d in lookup.deployments]
    return lines
