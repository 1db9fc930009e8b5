"""Injected failures: 429s of either policy, 5xx, latency and dropped connections.

Rules match by path prefix (and optionally method). A rule fires for every match, for the next ``count``
matches, or for a ``share`` of matches. Shares are deterministic (an error-diffusion accumulator, so 0.25
means exactly every 4th match) because flaky tests are worse than unrealistic randomness. Latency rules
stack with one "terminal" fault (429/5xx/drop) so "slow and then 503" can be expressed.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FaultKind = Literal["rate_limit", "server_error", "latency", "drop"]


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    path: str = Field("/", description="path prefix, e.g. /oauth/ or /oauth/2026-03/token")
    method: str | None = Field(None, description="only this HTTP method (default: any)")
    count: int | None = Field(None, ge=1, description="fire for the next N matches, then retire")
    share: float | None = Field(None, gt=0, le=1, description="fire for this fraction of matches")
    policy: Literal["TEN_SECONDLY_ROLLING", "DAILY"] = "TEN_SECONDLY_ROLLING"
    status: int = Field(503, ge=500, le=599)
    delay_ms: int = Field(1000, ge=0)
    retry_after: int | None = Field(None, ge=0, description="adds a Retry-After header to an injected 429")

    @model_validator(mode="after")
    def _path_is_absolute(self) -> "FaultSpec":
        if not self.path.startswith("/"):
            raise ValueError("path must start with '/'")
        if self.path.startswith("/_sim"):
            raise ValueError("the control API cannot be faulted")
        return self


@dataclass
class FaultRule:
    id: str
    spec: FaultSpec
    remaining: int | None
    accumulator: float = 0.0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.spec.method and self.spec.method.upper() != method.upper():
            return False
        return path.startswith(self.spec.path)

    def fire(self) -> bool:
        """Decide for one matching request; consumes count/share budget when it fires."""
        if self.spec.share is not None:
            self.accumulator += self.spec.share
            if self.accumulator < 1.0 - 1e-9:
                return False
            self.accumulator -= 1.0
        if self.remaining is not None:
            self.remaining -= 1
        self.fired += 1
        return True

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def describe(self) -> dict:
        return {"id": self.id, **self.spec.model_dump(), "remaining": self.remaining, "fired": self.fired}


@dataclass(frozen=True)
class FaultPlan:
    delay_seconds: float = 0.0
    terminal: FaultSpec | None = None


class FaultBook:
    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, spec: FaultSpec) -> FaultRule:
        rule = FaultRule(id=str(uuid.uuid4()), spec=spec, remaining=spec.count)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def describe(self) -> list[dict]:
        with self._lock:
            return [r.describe() for r in self._rules]

    def plan(self, method: str, path: str) -> FaultPlan:
        if path.startswith("/_sim"):
            return FaultPlan()
        delay = 0.0
        terminal: FaultSpec | None = None
        with self._lock:
            for rule in self._rules:
                is_latency = rule.spec.kind == "latency"
                if (not is_latency and terminal is not None) or not rule.matches(method, path):
                    continue
                if not rule.fire():
                    continue
                if is_latency:
                    delay += rule.spec.delay_ms / 1000.0
                else:
                    terminal = rule.spec
            self._rules = [r for r in self._rules if not r.exhausted]
        return FaultPlan(delay_seconds=delay, terminal=terminal)
