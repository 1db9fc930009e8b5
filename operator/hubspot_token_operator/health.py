"""/healthz: the operator is alive only while it keeps up with its work.

A wedged operator (a hung call, a dead watch, a loop stuck behind a partition) keeps answering HTTP, so
"the port answers" proves nothing. Liveness fails when the work queue holds a key far past its due time or
a reconcile has run far past every deadline its calls have; the kubelet then restarts the pod, and the
schedule is recomputed from status. `/readyz` answers once start-up is done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger(__name__)

OVERDUE_LIMIT = 300.0  # seconds a due key may wait (a restart with thousands of tokens stays well under)
RUNNING_LIMIT = 180.0  # seconds one reconcile may run (each call has a 30 s deadline)


@dataclass(frozen=True)
class Health:
    ok: bool
    overdue_seconds: float
    longest_reconcile_seconds: float
    queue_depth: int
    custody_pending: int
    role: str = "leader"  # leader | standby (a standby has no work to fall behind on)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "overdueSeconds": round(self.overdue_seconds, 1),
                "longestReconcileSeconds": round(self.longest_reconcile_seconds, 1),
                "queueDepth": self.queue_depth, "custodyPending": self.custody_pending, "role": self.role}


def judge(overdue: float, longest: float, depth: int, custody: int) -> Health:
    return Health(overdue <= OVERDUE_LIMIT and longest <= RUNNING_LIMIT, overdue, longest, depth, custody)


def judge_standby(election_alive: bool, depth: int) -> Health:
    """A standby is alive while its election loop runs: it watches and waits, so nothing can be overdue."""
    return Health(election_alive, 0.0, 0.0, depth, 0, role="standby")


async def serve(port: int, probe, ready) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        h: Health = probe()
        if not h.ok:
            log.warning("liveness failing: %s", h.as_dict())
        return web.json_response(h.as_dict(), status=200 if h.ok else 503)

    async def readyz(_: web.Request) -> web.Response:
        return web.json_response({"ready": ready()}, status=200 if ready() else 503)

    app = web.Application()
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner
