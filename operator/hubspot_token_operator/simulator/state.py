"""The simulator's in-memory store.

One ``SimState`` holds every record behind one re-entrant lock. HTTP handlers run on a single event loop,
but tests and the in-process server helper may touch the state from another thread, and a handler's
read-modify-write (e.g. a rotating refresh) must not interleave with a control-API uninstall. ``revision``
bumps on each mutation so the persister knows when to write.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from .clock import SimClock
from .config import SimConfig
from .model import (
    AccessToken,
    App,
    AuditEvent,
    AuthCode,
    Consent,
    Hub,
    Install,
    PrivateApp,
    RefreshToken,
    StaticToken,
)

SNAPSHOT_VERSION = 1

# Collection name in a snapshot -> (record class, key attribute).
_TABLES: dict[str, tuple[type, str]] = {
    "hubs": (Hub, "hub_id"),
    "apps": (App, "client_id"),
    "installs": (Install, "install_id"),
    "refresh_tokens": (RefreshToken, "token"),
    "access_tokens": (AccessToken, "token"),
    "auth_codes": (AuthCode, "code"),
    "private_apps": (PrivateApp, "app_id"),
    "static_tokens": (StaticToken, "token"),
}


class SimState:
    def __init__(self, clock: SimClock | None = None, config: SimConfig | None = None) -> None:
        self.clock = clock or SimClock()
        self.config = config or SimConfig()
        self.lock = threading.RLock()
        self.revision = 0
        self._clear_records()

    def _clear_records(self) -> None:
        self.hubs: dict[int, Hub] = {}
        self.apps: dict[str, App] = {}
        self.installs: dict[int, Install] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.auth_codes: dict[str, AuthCode] = {}
        self.private_apps: dict[int, PrivateApp] = {}
        self.static_tokens: dict[str, StaticToken] = {}
        self.audit: list[AuditEvent] = []
        self.consent: Consent | None = None  # set by POST /_sim/consent
        self._next_id = 1_000_001

    def now(self) -> float:
        return self.clock.now()

    def next_id(self) -> int:
        with self.lock:
            self._next_id += 1
            return self._next_id

    def touched(self) -> None:
        self.revision += 1

    def hub(self, hub_id: int, hublet: str | None = None) -> Hub:
        """The hub with this id, created on first mention; a later explicit hublet wins."""
        with self.lock:
            hub = self.hubs.get(hub_id)
            if hub is None:
                hub = self.hubs[hub_id] = Hub(hub_id=hub_id, hublet=hublet or "na1")
                self.touched()
            elif hublet and hub.hublet != hublet:
                hub.hublet = hublet
                self.touched()
            return hub

    def app_by_id(self, app_id: int) -> App | None:
        return next((a for a in self.apps.values() if a.app_id == app_id), None)

    def reset(self) -> None:
        """Forget everything, including config and simulated time (tests share one simulator)."""
        with self.lock:
            self._clear_records()
            self.config = SimConfig()
            self.clock.reset()
            self.touched()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            data: dict[str, Any] = {
                "version": SNAPSHOT_VERSION,
                "clock_offset_seconds": self.clock.offset_seconds,
                "next_id": self._next_id,
                "config": self.config.model_dump(),
                "audit": [dataclasses.asdict(e) for e in self.audit],
                "consent": dataclasses.asdict(self.consent) if self.consent else None,
            }
            for name in _TABLES:
                data[name] = [dataclasses.asdict(r) for r in getattr(self, name).values()]
            return data

    def restore(self, data: dict[str, Any]) -> None:
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported state file version {data.get('version')!r}")
        with self.lock:
            self._clear_records()
            for name, (cls, key) in _TABLES.items():
                table = getattr(self, name)
                for row in data.get(name, []):
                    record = cls(**row)
                    table[getattr(record, key)] = record
            self.audit = [AuditEvent(**row) for row in data.get("audit", [])]
            self.consent = Consent(**data["consent"]) if data.get("consent") else None
            self._next_id = int(data.get("next_id", self._next_id))
            self.config = SimConfig.model_validate(data.get("config", {}))
            self.clock.reset()
            self.clock.advance(float(data.get("clock_offset_seconds", 0.0)))
            self.touched()
