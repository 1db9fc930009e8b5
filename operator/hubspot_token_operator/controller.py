"""One reconcile of one HubSpotToken: parse, run the flow for its type, roll out, record.

Called by the work queue; returns when to look at the object again (None: only on the next change).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from . import conditions as cond
from . import metrics
from .model import SpecError, parse_spec
from .oauth_flow import reconcile_oauth
from .recording import Recorder
from .runtime import Runtime

log = logging.getLogger(__name__)

MAX_SLEEP = timedelta(hours=1)  # look again at least hourly, to catch anything a missed event hid


async def reconcile(rt: Runtime, key: tuple[str, str]) -> datetime | None:
    body = rt.tokens.get(key)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    started = time.monotonic()
    now = rt.clock.now()
    rec = Recorder(body=body, now=now)
    try:
        spec = parse_spec(body.get("spec") or {})
    except SpecError as e:
        rec.condition(cond.READY, False, "InvalidSpec", str(e))
        rec.event_once("Warning", "InvalidSpec", str(e))
        await _flush(rt, rec, key)
        return None

    if spec.type == "OAuth":
        nxt = await reconcile_oauth(rt, body, spec, rec)
    else:
        from .private_app_flow import reconcile_private_app

        nxt = await reconcile_private_app(rt, body, spec, rec)

    if spec.rollout.enabled and not spec.suspend:
        from .rollout_flow import reconcile_rollout

        rollout_next = await reconcile_rollout(rt, body, spec, rec)
        nxt = _earliest(nxt, rollout_next)

    await _flush(rt, rec, key)
    metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
    cap = rt.clock.now() + MAX_SLEEP
    return _earliest(nxt, cap)


async def _flush(rt: Runtime, rec: Recorder, key: tuple[str, str]) -> None:
    updated = await rec.flush(rt.kube)
    if updated:
        rt.remember(updated)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
