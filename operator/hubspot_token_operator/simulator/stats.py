"""Request counts per route and status, so tests can assert "exactly one HTTP call reached HubSpot".

Routes are counted by their template (``GET /oauth/v1/access-tokens/{token}``), never by the raw path,
which both groups the numbers usefully and keeps tokens out of the stats. Hosts are counted too, so a
test can prove a client really talked to the EU hostname. A request still in flight when the stats are
reset (say, one held by a latency fault after its client timed out) is not counted afterwards, so one test's
stragglers never show up in the next test's numbers.
"""

from __future__ import annotations

import threading
from collections import defaultdict


class RequestStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.generation = 0
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.generation += 1
            self._requests: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            self._hosts: dict[str, int] = defaultdict(int)
            self._total = 0
            self._reuses = 0
            self._refreshing: dict[int, int] = defaultdict(int)  # install id -> refreshes in flight
            self._refreshes: dict[int, int] = defaultdict(int)  # install id -> refreshes received
            self._overlaps = 0
            self._audit_reads: dict[str, int] = defaultdict(int)  # app key -> audit-log pages read with its tokens

    def record(self, route: str, outcome: str, host: str | None, generation: int | None = None) -> None:
        """Count one finished request; ``generation`` is ``self.generation`` as seen when it started."""
        with self._lock:
            if generation is not None and generation != self.generation:
                return
            self._requests[route][outcome] += 1
            if host:
                self._hosts[host] += 1
            self._total += 1

    def record_reuse(self) -> None:
        """A rotated-out refresh token was honoured within ``refresh_token_reuse_grace_seconds``."""
        with self._lock:
            self._reuses += 1

    def refresh_started(self, install_id: int) -> None:
        """A refresh of this install (grant) arrived. Two in flight at once is an overlap: two callers
        (say, two operator replicas) refreshing one grant concurrently."""
        with self._lock:
            if self._refreshing[install_id]:
                self._overlaps += 1
            self._refreshing[install_id] += 1
            self._refreshes[install_id] += 1

    def audit_log_read(self, app_key: str) -> None:
        """A page of the audit log read with an app's token (`private-app:<id>:hub:<hub>`): who reads how often."""
        with self._lock:
            self._audit_reads[app_key] += 1

    def refresh_ended(self, install_id: int) -> None:
        with self._lock:
            self._refreshing[install_id] = max(0, self._refreshing[install_id] - 1)

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "requests": {route: dict(by_status) for route, by_status in self._requests.items()},
                "hosts": dict(self._hosts),
                "total": self._total,
                "refresh_token_reuses": self._reuses,
                "refreshes_by_install": {str(k): v for k, v in self._refreshes.items()},
                "concurrent_refreshes_of_one_grant": self._overlaps,
                "audit_log_reads_by_app": dict(self._audit_reads),
            }
