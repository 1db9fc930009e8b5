"""``kubectl hubspot status``: a readable view of one HubSpotToken's status and its recent Events.

Only the HubSpotToken and its Events are read; never a Secret (status holds no secret values).
"""

from __future__ import annotations

from datetime import datetime, timezone

from .api import ApiError
from .common import EXIT_OK, Ctx, condition, describe_condition, get_token, parse_time, when
from .rotate import restart_progress

EVENTS_SHOWN = 10


def run(ctx: Ctx, args) -> int:
    obj = get_token(ctx, args.name)
    for line in render(obj, ctx.now()):
        ctx.out.line(line)
    try:
        events = ctx.api.list_events(ctx.namespace, args.name)
    except ApiError as e:
        ctx.out.line(f"Events: cannot list ({e})")
        return EXIT_OK
    for line in render_events(obj, events):
        ctx.out.line(line)
    return EXIT_OK


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
