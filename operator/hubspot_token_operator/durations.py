"""Durations as users write them in specs (``90s``, ``10m``, ``1h30m``, ``7d``), parsed once into timedelta."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

# The longest duration accepted anywhere. The CRD bounds each field far lower (30d at most, maxAge 3650d);
# this ceiling only keeps objects stored before those bounds from breaking datetime arithmetic
# (now + 100 years is still a valid datetime; timedelta itself stops at 999999999 days).
MAX_DURATION = timedelta(days=36500)


def parse_duration(text: str) -> timedelta:
    """Parses a Go-style duration, plus ``d`` for days. Raises ValueError with the offending text, also for
    durations longer than MAX_DURATION (never OverflowError)."""
    text = text.strip()
    pos, seconds = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        seconds += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"{text!r} is not a duration such as 90s, 10m, 1h30m or 7d")
    if not seconds <= MAX_DURATION.total_seconds():  # also catches inf from a very long digit string
        raise ValueError(f"{text!r} is too long a duration: at most 36500d (100 years)")
    return timedelta(seconds=seconds)


def format_duration(td: timedelta) -> str:
    """Short human form for messages: 1h2m, 45s, 3d4h."""
    total = int(td.total_seconds())
    if total <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts[:2])


def to_rfc3339(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_rfc3339(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
