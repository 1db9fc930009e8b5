"""One read of HubSpot's audit log serves every token that reads it with the same credential.

HubSpot's audit log is account-wide: every token with `spec.privateApp.auditLog` reads the same entries
and keeps only its own app's. Tokens that read with the same credential (one reader Secret shared by a
namespace's tokens, or Secrets holding the same value) used to make one read each per interval: fifty
private apps of one hub, fifty reads every five minutes against the reader's HubSpot rate limit.

Now a read that reached the end of its window is kept for SHARE_FOR and answers every later read with the
same key whose window starts no earlier (entries after that token's own `seenUntil`, filtered from the kept
ones). Reads that start while one with the same key is in flight wait for it instead of calling HubSpot
(one call, any number of waiters). Reads served this way are due again one interval after the shared read,
so the tokens of one reader stay in step and keep sharing: one read per reader per interval.

- The key is (HubSpot base URL, keyed fingerprint of the credential): only holders of the same credential
  share a read, so no token learns anything through someone else's credential (tenancy), and the key
  itself reveals nothing (fingerprint.py).
- Only what a complete read returned is kept. A read that left pages (its cursor is one token's state in
  status) and a failed read are never kept; a failure is shared only with the reads that waited for it.
- State is a cache: after a restart every token reads on its own once, and the status fields that say how
  far the log has been read (audit_detection.window_after_read) stay per token, in the API server.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Awaitable, Callable

from .hubspot import AuditEvent, AuditLogEvents, AuditLogOutcome

SHARE_FOR = timedelta(seconds=30)  # below the shortest interval (1m): a token is never served the read it made last time
MAX_READERS = 4096  # kept reads at the most (each a few hundred entries); the oldest goes first

Key = tuple[str, str]  # (base URL, credential fingerprint)


@dataclass(frozen=True)
class Read:
    since: datetime  # the window's start: entries after it, up to `at`, are all in `events`
    at: datetime  # when the read was made
    events: tuple[AuditEvent, ...]


def serves(held: Read | None, since: datetime, now: datetime, share_for: timedelta = SHARE_FOR) -> bool:
    """Whether a kept read answers a read of the window after `since`, made at `now`."""
    return held is not None and held.since <= since and now - held.at < share_for


def after(read: Read, since: datetime) -> AuditLogEvents:
    """What the read of the window after `since` would have returned, from a read of a wider window."""
    return AuditLogEvents(events=tuple(e for e in read.events if e.occurred_at > since))


class AuditReads:
    def __init__(self, share_for: timedelta = SHARE_FOR, max_readers: int = MAX_READERS) -> None:
        self.share_for, self.max_readers = share_for, max_readers
        self._kept: dict[Key, Read] = {}
        self._flights: dict[Key, tuple[datetime, datetime, asyncio.Future]] = {}  # key -> (since, at, read)
        self.calls = 0  # reads that went to HubSpot
        self.shared = 0  # reads answered by another token's read

    def __len__(self) -> int:
        return len(self._kept)

    async def events(self, key: Key, since: datetime, now: datetime,
                     read: Callable[[], Awaitable[AuditLogOutcome]]) -> tuple[AuditLogOutcome, datetime]:
        """The audit-log entries after `since` (`read()` calls HubSpot for exactly that window), and when the
        read that answers was made."""
        held = self._kept.get(key)
        if serves(held, since, now, self.share_for):
            self.shared += 1
            return after(held, since), held.at
        flight = self._flights.get(key)
        if flight is not None and flight[0] <= since:
            got = await asyncio.shield(flight[2])
            if not isinstance(got, AuditLogEvents):  # a failure: the same for every holder of the credential
                self.shared += 1
                return got, flight[1]
            if got.complete:
                self.shared += 1
                return after(Read(flight[0], flight[1], got.events), since), flight[1]
        task = asyncio.ensure_future(read())
        self.calls += 1
        if flight is None:
            self._flights[key] = (since, now, task)
        try:
            got = await asyncio.shield(task)
        finally:
            if self._flights.get(key, (None, None, None))[2] is task:
                del self._flights[key]
        if isinstance(got, AuditLogEvents) and got.complete:
            self._keep(key, Read(since, now, got.events), now)
        return got, now

    def _keep(self, key: Key, read: Read, now: datetime) -> None:
        for k in [k for k, r in self._kept.items() if now - r.at >= self.share_for]:
            del self._kept[k]
        held = self._kept.get(key)
        if held is not None and held.at > read.at:
            return
        self._kept.pop(key, None)
        self._kept[key] = read
        while len(self._kept) > self.max_readers:
            del self._kept[next(iter(self._kept))]
