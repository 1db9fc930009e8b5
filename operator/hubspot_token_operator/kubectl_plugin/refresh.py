"""``kubectl hubspot refresh``: ask the operator to refresh OAuth tokens now, through an annotation."""

from __future__ import annotations

from datetime import datetime, timedelta

from .api import ApiError, NotFound, PluginError
from .common import (
    EXIT_ERROR, EXIT_OK, EXIT_REJECTED, EXIT_TIMEOUT, Ctx, condition, describe_condition, get_token, parse_timeout,
    rfc3339_now, when,
)
from .operator_info import warn_if_absent
from .output import document

# Same value as oauth_flow.REFRESH_REQUEST_ANNOTATION (a unit test keeps them equal).
REFRESH_ANNOTATION = "hubspot-operator.dev/refresh-requested-at"


def run(ctx: Ctx, args) -> int:
    """``-o json|yaml``: a RefreshResult document with one entry per token (docs/kubectl-plugin.md)."""
    results: dict[str, dict] = {}
    ctx.extra["refresh"] = results
    rc = _run(ctx, args, results)
    if ctx.out.machine:
        ctx.out.emit(document("RefreshResult", namespace=ctx.namespace, requestedAt=ctx.extra.get("refresh_value"),
                              waited=bool(args.wait), tokens=list(results.values())))
    return rc


def _result(results: dict, name: str, outcome: str, **fields) -> None:
    entry = results.setdefault(name, {"name": name, "outcome": outcome, "expiresAt": None, "reason": None,
                                      "message": None})
    entry.update(outcome=outcome, **fields)


def _run(ctx: Ctx, args, results: dict) -> int:
    timeout = parse_timeout(args.timeout)
    out = ctx.out
    if args.name:
        objects = [get_token(ctx, args.name)]
    else:
        objects = ctx.api.list_tokens(ctx.namespace, args.selector or None)
        if not objects:
            what = f" matching {args.selector!r}" if args.selector else ""
            out.line(f"no hubspottokens{what} in namespace {ctx.namespace}")
            return EXIT_OK
    value = _fresh_value(ctx.now(), objects)
    ctx.extra["refresh_value"] = value
    requested: list[str] = []
    rc = EXIT_OK
    for obj in objects:
        name = (obj.get("metadata") or {}).get("name")
        kind = (obj.get("spec") or {}).get("type")
        if kind != "OAuth":
            message = (f"hubspottoken/{name} is a {kind} token, which the operator does not refresh (it re-verifies "
                       "it every spec.privateApp.verifyInterval); use `kubectl hubspot rotate` to replace it")
            if args.name:
                raise PluginError(message)
            out.line(f"hubspottoken/{name} skipped: {kind} tokens are not refreshed")
            _result(results, name, "Skipped", reason="NotOAuth", message=f"{kind} tokens are not refreshed")
            continue
        try:
            ctx.api.patch_token(ctx.namespace, name, {"metadata": {"annotations": {REFRESH_ANNOTATION: value}}})
        except ApiError as e:
            if args.name:
                raise
            out.error(f"hubspottoken/{name}: " + ("deleted meanwhile" if isinstance(e, NotFound) else str(e)))
            _result(results, name, "Error", reason=e.reason, message=str(e))
            rc = EXIT_ERROR
            continue
        out.line(f"hubspottoken/{name} refresh requested ({REFRESH_ANNOTATION}={value})")
        _result(results, name, "Requested")
        requested.append(name)
    if not args.wait or not requested:
        return rc
    warn_if_absent(ctx)
    waited = _wait(ctx, requested, value, timeout)
    return waited if waited != EXIT_OK else rc


def _fresh_value(now: datetime, objects: list[dict]) -> str:
    """The current time, moved on by a millisecond while it equals a value already in use (a request equal
    to the last handled one would be ignored by the operator)."""
    used = set()
    for obj in objects:
        used.add((obj.get("status") or {}).get("lastRefreshRequest"))
        used.add(((obj.get("metadata") or {}).get("annotations") or {}).get(REFRESH_ANNOTATION))
    value = rfc3339_now(now)
    while value in used:
        now += timedelta(milliseconds=1)
        value = rfc3339_now(now)
    return value


def _wait(ctx: Ctx, names: list[str], value: str, timeout: float) -> int:
    out = ctx.out
    deadline = ctx.clock() + timeout
    pending = list(names)
    last: dict[str, dict] = {}
    failed = False
    out.line(f"waiting for the operator to refresh {len(names)} token(s)...")
    while pending:
        for name in list(pending):
            try:
                obj = ctx.api.get_token(ctx.namespace, name)
            except NotFound:
                out.error(f"hubspottoken/{name} was deleted while waiting")
                _result(ctx.extra.get("refresh", {}), name, "Deleted")
                pending.remove(name)
                failed = True
                continue
            except ApiError:
                continue  # transient; try again on the next round
            last[name] = obj
            status = obj.get("status") or {}
            if status.get("lastRefreshRequest") != value:
                continue
            pending.remove(name)
            results = ctx.extra.get("refresh", {})
            if status.get("lastFailureReason"):
                failed = True
                out.line(f"hubspottoken/{name} refresh failed: {status['lastFailureReason']}: {_problem(obj)}")
                _result(results, name, "Failed", reason=status["lastFailureReason"], message=_problem(obj),
                        expiresAt=status.get("expiresAt"))
            else:
                out.line(f"hubspottoken/{name} refreshed; access token valid until "
                         f"{when(status.get('expiresAt'), ctx.now())}")
                _result(results, name, "Refreshed", expiresAt=status.get("expiresAt"))
        if not pending:
            break
        now = ctx.clock()
        if now >= deadline:
            for name in pending:
                obj = last.get(name) or {}
                out.error(f"hubspottoken/{name}: the operator did not handle the refresh request within "
                          f"{int(timeout)}s; Ready: {describe_condition(condition(obj, 'Ready'))}")
                _result(ctx.extra.get("refresh", {}), name, "TimedOut",
                        message=f"not handled within {int(timeout)}s")
            _no_operator_note(ctx)
            return EXIT_TIMEOUT
        ctx.sleep(max(0.0, min(ctx.poll_interval, deadline - now)))
    return EXIT_REJECTED if failed else EXIT_OK


def _problem(obj: dict) -> str:
    degraded = condition(obj, "Degraded")
    if degraded and degraded.get("status") == "True" and degraded.get("message"):
        return degraded["message"]
    ready = condition(obj, "Ready")
    return (ready or {}).get("message") or "no message"


def _no_operator_note(ctx: Ctx) -> None:
    lookup = ctx.extra.get("operator")
    problem = lookup.problem() if lookup is not None else None
    if problem:
        ctx.out.error(f"no running operator seen: {problem}")
