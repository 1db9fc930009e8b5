"""One read of HubSpot's audit log serves every token that reads it with the same credential.

HubSpot's audit log is account-wide: every token with `spec.privateApp.auditLog` reads the same entries
and keeps only its own app's. Tokens that read with the same credential (one reader Secret shared by a
namespace's tokens, or Secrets holding the same value) used to make one read each per interval: fifty
private apps of one hub, fifty reads every five minutes against the reader's HubSpot rate limit.

How one read serves them all:
- **One window for the credential.** A read starts at the earliest window start any token of the
  credential has asked for lately (`floor`), not only at its own, so it covers every one of them.
- **Kept for a while.** A read that reached the end of its window is kept for SHARE_FOR and answers every
  later read with the same key whose window it covers. Reads that start while one with the same key is in
  flight wait for it (one call, any number of waiters).
- **In step afterwards.** A token served by a read takes that read's window as its own: it is handed every
  entry of the read and goes on from where the read ended (audit_detection: its `seenUntil` may move back
  to the shared start, which only means reading entries again that can no longer be announced twice), and
  it is due again one interval after the read. So the tokens of one reader keep one window and one due
  time: one read per reader per interval.

Limits that keep this safe:
- The key is (HubSpot base URL, keyed fingerprint of the credential): only holders of the same credential
  share a read, so no token learns anything through someone else's credential (tenancy), and the key
  itself reveals nothing (fingerprint.py).
- Only what a complete read returned is kept. A read that left pages (its cursor is one token's state in
  status) and a failed read are never kept; a failure is shared only with the reads that waited for it.
- This is a cache: after a restart every token reads on its own once, and what says how far each token
  has read (audit_detection.window_after_read) stays in its status, in the API server.
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
Token = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Read:
    since: datetime  # the window's start: every entry after it, up to `at`, is in `events`
    at: datetime  # when the read was made
    events: tuple[AuditEvent, ...]


@dataclass(frozen=True)
class Served:
    outcome: AuditLogOutcome  # the entries of the whole window after `since` (or why they could not be read)
    since: datetime  # the window start the token now reads from
    at: datetime  # when the read was made


def serves(held: Read | None, since: datetime, now: datetime, share_for: timedelta = SHARE_FOR) -> bool:
    """Whether a kept read covers the window after `since`, asked for at `now`."""
    return held is not None and held.since <= since and now - held.at < share_for


class AuditReads:
    def __init__(self, share_for: timedelta = SHARE_FOR, max_readers: int = MAX_READERS) -> None:
        self.share_for, self.max_readers = share_for, max_readers
        self._kept: dict[Key, Read] = {}
        self._flights: dict[Key, tuple[datetime, datetime, asyncio.Future]] = {}  # key -> (since, at, the read)
        self._asked: dict[Key, dict[Token, tuple[datetime, datetime]]] = {}  # key -> token -> (since, kept until)
        self.calls = 0  # reads that went to HubSpot
        self.shared = 0  # reads answered by a read another token made

    def floor(self, key: Key, token: Token, since: datetime, now: datetime, interval: timedelta) -> datetime:
        """Notes that `token` reads the window after `since` every `interval`; the earliest start the key's
        tokens read from. A token that has not asked for two of its intervals (its audit log turned off, its
        reader changed) no longer counts."""
        asked = self._asked.setdefault(key, {})
        asked[token] = (since, now + 2 * interval)
        for t in [t for t, (_, until) in asked.items() if until < now]:
            del asked[t]
        return min(s for s, _ in asked.values())

    def forget(self, token: Token) -> None:
        """A token gone from this shard no longer holds its credential's window back."""
        for key in [k for k, asked in self._asked.items() if asked.pop(token, None) and not asked]:
            del self._asked[key]

    async def events(self, key: Key, token: Token, since: datetime, now: datetime, interval: timedelta,
                     read: Callable[[datetime], Awaitable[AuditLogOutcome]]) -> Served:
        """The audit-log entries of a window that covers `since` (`read(start)` calls HubSpot for the window
        after `start`), from a read of this token's, or one made for another token of the same key."""
        start = self.floor(key, token, since, now, interval)
        held = self._kept.get(key)
        if serves(held, since, now, self.share_for):
            self.shared += 1
            return Served(AuditLogEvents(events=held.events), held.since, held.at)
        flight = self._flights.get(key)
        if flight is not None and flight[0] <= since:
            got = await asyncio.shield(flight[2])
            if not isinstance(got, AuditLogEvents) or got.complete:  # a failure is the same for every holder
                self.shared += 1
                return Served(got, flight[0], flight[1])
        task = asyncio.ensure_future(read(start))
        self.calls += 1
        if flight is None:
            self._flights[key] = (start, now, task)
        try:
            got = await asyncio.shield(task)
        finally:
            if (self._flights.get(key) or (None, None, None))[2] is task:
                del self._flights[key]
        if isinstance(got, AuditLogEvents) and got.complete:
            self._keep(key, Read(start, now, got.events), now)
        return Served(got, start, now)

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
