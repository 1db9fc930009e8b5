"""``kubectl hubspot status [NAME]``: one HubSpotToken's status and recent Events, or (no NAME, or
``kubectl hubspot list``) a table of every HubSpotToken in the namespace (``-A``: in every namespace).

Only HubSpotTokens and their Events are read; never a Secret (status holds no secret values).
"""

from __future__ import annotations

from datetime import datetime, timezone

from ..durations import format_duration
from .api import ApiError, PluginError
from .common import EXIT_OK, Ctx, condition, describe_condition, get_token, parse_time, when
from .next_step import next_step as next_step_for
from .output import document, table
from .rotate import restart_progress

EVENTS_SHOWN = 10
LIST_HEADERS = ["NAME", "TYPE", "READY", "REASON", "EXPIRES", "NEXT", "AGE"]


def run(ctx: Ctx, args) -> int:
    name = getattr(args, "name", None)
    if not name:
        return run_list(ctx, args)
    if getattr(args, "all_namespaces", False) or getattr(args, "selector", None):
        raise PluginError("status NAME shows one HubSpotToken; -A/--all-namespaces and -l/--selector go "
                          "without NAME (they list)")
    obj = get_token(ctx, name)
    try:
        events, events_error = ctx.api.list_events(ctx.namespace, name), None
    except ApiError as e:
        events, events_error = [], str(e)
    if ctx.out.machine:
        ctx.out.emit(status_document(obj, events, events_error, ctx.now()))
        return EXIT_OK
    for line in render(obj, ctx.now()):
        ctx.out.line(line)
    if events_error:
        ctx.out.line(f"Events: cannot list ({events_error})")
        return EXIT_OK
    for line in render_events(obj, events):
        ctx.out.line(line)
    return EXIT_OK


def run_list(ctx: Ctx, args) -> int:
    all_ns = bool(getattr(args, "all_namespaces", False))
    selector = getattr(args, "selector", None) or None
    items = ctx.api.list_tokens(None if all_ns else ctx.namespace, selector)
    items.sort(key=lambda o: ((o.get("metadata") or {}).get("namespace") or "", (o.get("metadata") or {}).get("name") or ""))
    now = ctx.now()
    summaries = [summary(o) for o in items]
    if ctx.out.machine:
        ctx.out.emit(document("TokenList", namespace=None if all_ns else ctx.namespace, selector=selector,
                              items=summaries))
        return EXIT_OK
    if not summaries:
        where = "in any namespace" if all_ns else f"in namespace {ctx.namespace}"
        what = f" matching {selector!r}" if selector else ""
        ctx.out.line(f"No hubspottokens{what} found {where}.")
        return EXIT_OK
    for line in list_table(summaries, now, all_ns, ctx.out.color):
        ctx.out.line(line)
    return EXIT_OK


def summary(obj: dict) -> dict:
    """The machine-readable view of one HubSpotToken (``-o json|yaml`` of list and status; documented)."""
    md, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    ready = condition(obj, "Ready") or {}
    kind = spec.get("type")
    pa = status.get("privateApp") or {}
    return {
        "namespace": md.get("namespace"),
        "name": md.get("name"),
        "type": kind,
        "ready": ready.get("status") or "Unknown",
        "reason": ready.get("reason"),
        "message": ready.get("message"),
        "suspended": bool(spec.get("suspend")),
        "target": (spec.get("target") or {}).get("name"),
        "hubId": status.get("hubId"),
        "expiresAt": status.get("expiresAt") if kind == "OAuth" else None,
        "nextRefreshAt": status.get("nextRefreshAt") if kind == "OAuth" else None,
        "lastRefreshTime": status.get("lastRefreshTime") if kind == "OAuth" else None,
        "rotation": {
            "lastOutcome": pa.get("lastOutcome"),
            "lastOutcomeReason": pa.get("lastOutcomeReason"),
            "publishedAt": pa.get("publishedAt"),
            "previousUntil": pa.get("previousUntil"),
            "nextVerifyAt": pa.get("nextVerifyAt"),
        } if kind == "PrivateApp" else None,
        "creationTimestamp": md.get("creationTimestamp"),
    }


def relative(text: object, now: datetime) -> str:
    """``in 29m`` / ``5m ago`` / ``-`` (the table's short form of :func:`common.when`)."""
    dt = parse_time(text)
    if dt is None:
        return "-"
    delta = (dt - now).total_seconds()
    if abs(delta) < 1:
        return "now"
    return f"in {format_duration(dt - now)}" if delta > 0 else f"{format_duration(now - dt)} ago"


def age(text: object, now: datetime) -> str:
    dt = parse_time(text)
    return format_duration(now - dt) if dt is not None else "-"


def next_step(item: dict, now: datetime) -> str:
    """The NEXT column: when the operator acts next (OAuth refresh) or where a rotation stands (PrivateApp)."""
    if item.get("suspended"):
        return "suspended"
    if item.get("type") == "OAuth":
        nxt = relative(item.get("nextRefreshAt"), now)
        return f"refresh {nxt}" if nxt != "-" else "-"
    rot = item.get("rotation") or {}
    if not rot.get("lastOutcome"):
        return "-"
    text = rot["lastOutcome"]
    if rot.get("lastOutcome") != "Published" and rot.get("lastOutcomeReason"):
        text += f" ({rot['lastOutcomeReason']})"
    verify = relative(rot.get("nextVerifyAt"), now)
    if verify != "-":
        text += f", verify {verify}"
    return text


def list_table(items: list[dict], now: datetime, all_namespaces: bool = False, color: bool = False) -> list[str]:
    headers = (["NAMESPACE"] if all_namespaces else []) + LIST_HEADERS
    rows = []
    for i in items:
        row = [i["name"], i.get("type") or "?", i.get("ready"), i.get("reason"),
               relative(i.get("expiresAt"), now), next_step(i, now), age(i.get("creationTimestamp"), now)]
        rows.append(([i["namespace"]] if all_namespaces else []) + row)
    return table(headers, rows, color=color)


def status_document(obj: dict, events: list[dict], events_error: str | None, now: datetime) -> dict:
    """``status NAME -o json|yaml``: the summary plus conditions, rollout, failures and the last Events."""
    status = obj.get("status") or {}
    uid = (obj.get("metadata") or {}).get("uid")
    mine = sorted((e for e in events if not uid or (e.get("involvedObject") or {}).get("uid") in (None, uid)),
                  key=_event_time)[-EVENTS_SHOWN:]
    return document(
        "TokenStatus",
        **summary(obj),
        conditions=[{k: c.get(k) for k in ("type", "status", "reason", "message", "lastTransitionTime")}
                    for c in status.get("conditions") or []],
        failures={"count": status.get("failedAttempts") or 0, "lastReason": status.get("lastFailureReason"),
                  "lastTime": status.get("lastFailureTime")},
        rollout={"summary": restart_progress(obj),
                 "targets": [{k: t.get(k) for k in ("kind", "name", "state", "revision", "replicas",
                                                   "updatedReplicas", "availableReplicas", "message")}
                             for t in (status.get("rollout") or {}).get("targets") or []]},
        events=[{"time": (t.strftime("%Y-%m-%dT%H:%M:%SZ") if (t := _event_time(e)) != _EPOCH else None),
                 "type": e.get("type"), "reason": e.get("reason"), "count": e.get("count") or 1,
                 "message": (e.get("message") or e.get("note") or "").strip()} for e in mine],
        eventsError=events_error,
    )


def render(obj: dict, now: datetime) -> list[str]:
    md, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    kind = spec.get("type") or "?"
    lines = [
        f"Name:        {md.get('name')}",
        f"Namespace:   {md.get('namespace')}",
        f"Type:        {kind}",
        f"Ready:       {describe_condition(condition(obj, 'Ready'))}",
    ]
    if spec.get("suspend"):
        lines.append("Suspended:   yes (spec.suspend: nothing is refreshed, verified or restarted)")
    gen, observed = md.get("generation"), status.get("observedGeneration")
    if gen is not None and observed is not None and observed < gen:
        lines.append(f"Note:        status is for generation {observed}; the spec is at generation {gen}")
    if not status:
        lines.append("Status:      none yet (has the operator seen this object?)")
    others = [c for c in status.get("conditions") or [] if c.get("type") != "Ready"]
    if others:
        lines.append("Conditions:")
        lines += _table(
            [[c.get("type", ""), c.get("status", ""), c.get("reason", ""), _since(c, now), c.get("message", "")]
             for c in others],
            indent="  ",
        )
    hub = status.get("hubId")
    if hub is not None or spec.get("hubId") is not None:
        text = str(hub if hub is not None else "-")
        if status.get("appId") is not None:
            text += f" (app {status['appId']})"
        if spec.get("hubId") is not None:
            text += f"; pinned to {spec['hubId']}"
        lines.append(f"Hub:         {text}")
    if status.get("scopes"):
        lines.append(f"Scopes:      {', '.join(status['scopes'])}")
    target = (spec.get("target") or {}).get("name")
    if target:
        lines.append(f"Target:      Secret {target}")
    if kind == "OAuth":
        lines.append("OAuth:")
        lines.append(f"  Expires at:        {when(status.get('expiresAt'), now)}")
        lines.append(f"  Next refresh at:   {when(status.get('nextRefreshAt'), now)}")
        last = when(status.get("lastRefreshTime"), now)
        if status.get("lastRefreshReason"):
            last += f" ({status['lastRefreshReason']})"
        lines.append(f"  Last refresh:      {last}")
        if status.get("lastRefreshRequest"):
            lines.append(f"  Refresh request:   {status['lastRefreshRequest']} (last handled)")
    if kind == "PrivateApp":
        pa = status.get("privateApp") or {}
        src = (spec.get("privateApp") or {}).get("tokenSecretRef") or {}
        outcome = pa.get("lastOutcome") or "-"
        if pa.get("lastOutcomeReason"):
            outcome += f" ({pa['lastOutcomeReason']})"
        lines.append("PrivateApp:")
        lines.append(f"  Source:            Secret {src.get('name')} key {src.get('key') or 'token'}"
                     f" (evaluated resourceVersion {pa.get('sourceVersion') or '-'})")
        lines.append(f"  Last outcome:      {outcome}")
        lines.append(f"  Published at:      {when(pa.get('publishedAt'), now)}")
        if pa.get("rotatedAt"):
            lines.append(f"  Rotated at:        {when(pa.get('rotatedAt'), now)}")
        lines.append(f"  Previous until:    {when(pa.get('previousUntil'), now)}")
        lines.append(f"  Last verified:     {when(pa.get('lastVerifiedAt'), now)}")
        lines.append(f"  Next verify:       {when(pa.get('nextVerifyAt'), now)}")
    if status.get("failedAttempts") or status.get("lastFailureReason"):
        lines.append(f"Failures:    {status.get('failedAttempts') or 0} in a row; last "
                     f"{status.get('lastFailureReason') or '-'} at {when(status.get('lastFailureTime'), now)}")
    lines.append(f"Rollout:     {restart_progress(obj)}")
    lines.append(f"Next step:   {next_step_for(obj, now)}")
    targets = (status.get("rollout") or {}).get("targets") or []
    if targets:
        revision = status.get("restartRevision")
        rows = []
        for t in targets:
            counts = ""
            if t.get("replicas") is not None:
                counts = f"{t.get('updatedReplicas', 0)}/{t.get('replicas')} updated, {t.get('availableReplicas', 0)} available"
            rev = t.get("revision") or "-"
            if revision and rev != revision:
                rev += " (older)"
            rows.append([f"{t.get('kind')}/{t.get('name')}", t.get("state") or "-", f"revision {rev}", counts,
                         t.get("message") or ""])
        lines += _table(rows, indent="  ")
    return lines


def render_events(obj: dict, events: list[dict]) -> list[str]:
    uid = (obj.get("metadata") or {}).get("uid")
    mine = [e for e in events if not uid or not (e.get("involvedObject") or {}).get("uid")
            or (e.get("involvedObject") or {}).get("uid") == uid]
    mine.sort(key=_event_time)
    shown = mine[-EVENTS_SHOWN:]
    if not shown:
        return ["Events:      none"]
    lines = [f"Events (last {len(shown)} of {len(mine)}):" if len(mine) > len(shown) else "Events:"]
    rows = []
    for e in shown:
        t = _event_time(e)
        stamp = t.strftime("%Y-%m-%dT%H:%M:%SZ") if t != _EPOCH else "-"
        reason = e.get("reason") or ""
        if (e.get("count") or 1) > 1:
            reason += f" (x{e['count']})"
        rows.append([stamp, e.get("type") or "", reason, (e.get("message") or e.get("note") or "").strip()])
    return lines + _table(rows, indent="  ")


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _event_time(e: dict) -> datetime:
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        t = parse_time(e.get(key))
        if t is not None:
            return t
    return parse_time((e.get("metadata") or {}).get("creationTimestamp")) or _EPOCH


def _since(c: dict, now: datetime) -> str:
    t = parse_time(c.get("lastTransitionTime"))
    return when(c.get("lastTransitionTime"), now).split(" ", 1)[-1].strip("()") if t else ""


def _table(rows: list[list[str]], indent: str = "") -> list[str]:
    """Left-aligned columns; the last column is not padded."""
    rows = [[str(x) for x in r] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)] if rows else []
    out = []
    for r in rows:
        cells = [r[i].ljust(widths[i]) for i in range(len(widths))] + [r[-1]]
        out.append((indent + "  ".join(cells)).rstrip())
    return out
