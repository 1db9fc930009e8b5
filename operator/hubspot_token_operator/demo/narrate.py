"""What the demo prints, and the rules for printing it: short lines, times as UTC clock times, and no
secret value ever (every line passes through a redactor that knows each secret the demo handled)."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from typing import TextIO

REDACTED = "[REDACTED]"
INDENT = "      "


class Redactor:
    """Replaces every secret value it was told about. Values shorter than 8 characters are ignored
    (nothing the demo handles is that short, and short values would mangle ordinary words)."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, *values: str | None) -> None:
        for v in values:
            if v and len(v) >= 8:
                self._values.add(v)

    def __call__(self, text: str) -> str:
        for v in sorted(self._values, key=len, reverse=True):  # longest first: no partial leftovers
            if v in text:
                text = text.replace(v, REDACTED)
        return text


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def clock(value: str | None) -> str:
    """``2026-03-01T12:00:30Z`` -> ``12:00:30`` (UTC); ``-`` when missing."""
    t = parse_time(value)
    return t.astimezone(timezone.utc).strftime("%H:%M:%S") if t else "-"


def seconds_between(start: str | None, end: str | None) -> int | None:
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None:
        return None
    return round((b - a).total_seconds())


def refresh_line(status: dict) -> str:
    """One line about the OAuth token the operator last published, from status fields only."""
    issued, expires, nxt = status.get("lastRefreshTime"), status.get("expiresAt"), status.get("nextRefreshAt")
    life, wait = seconds_between(issued, expires), seconds_between(issued, nxt)
    parts = [f"refreshed at {clock(issued)}"]
    parts.append(f"expires {clock(expires)}" + (f" ({life}s later)" if life is not None else ""))
    parts.append(f"next refresh {clock(nxt)}" + (f" (after {wait}s)" if wait is not None else ""))
    parts.append(f"token {status.get('tokenFingerprint') or '-'}")
    if status.get("lastRefreshReason"):
        parts.append(f"reason {status['lastRefreshReason']}")
    return ", ".join(parts)


def condition(obj: dict, ctype: str) -> dict:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return {}


def condition_line(c: dict) -> str:
    if not c:
        return "(not set)"
    return f"{c.get('type')}={c.get('status')} ({c.get('reason') or '-'}): {c.get('message') or ''}".rstrip(": ")


def stats_lines(stats: dict) -> list[str]:
    """The simulator's request counts as aligned lines: route, then count per status."""
    requests = stats.get("requests") or {}
    if not requests:
        return ["(no HubSpot calls)"]
    width = max(len(route) for route in requests)
    out = []
    for route in sorted(requests):
        counts = ", ".join(f"{n} x {status}" for status, n in sorted(requests[route].items()))
        out.append(f"{route.ljust(width)}  {counts}")
    return out


class Narrator:
    """Prints the demo's story. ``step`` starts a numbered section; everything else is indented below it."""

    def __init__(self, total_steps: int, stream: TextIO | None = None, redact: Redactor | None = None) -> None:
        self.total = total_steps
        self.stream = stream or sys.stdout
        self.redact = redact or Redactor()
        self.started = time.monotonic()
        self.current = ""
        self.number = 0

    def _emit(self, text: str) -> None:
        self.stream.write(self.redact(text) + "\n")
        self.stream.flush()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def title(self, text: str) -> None:
        self._emit(text)

    def step(self, text: str) -> None:
        self.number += 1
        self.current = text
        self._emit(f"\n[{self.number}/{self.total}] {text}  (t+{self.elapsed():.0f}s)")

    def say(self, text: str = "") -> None:
        for line in text.splitlines() or [""]:
            self._emit(INDENT + line if line else "")

    def cmd(self, text: str) -> None:
        self._emit(f"{INDENT}$ {text}")

    def output(self, text: str) -> None:
        """Command output, indented one more level; blank trailing lines dropped."""
        for line in text.rstrip("\n").splitlines():
            self._emit(INDENT + "  " + line)

    def plain(self, text: str = "") -> None:
        for line in text.splitlines() or [""]:
            self._emit(line)
