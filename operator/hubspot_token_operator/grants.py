"""Fan-out of one refresh to every HubSpotToken that shares a grant (the same install's refresh token).

A grant is identified by a keyed fingerprint of (base URL, API generation, client id, refresh token),
never by the secret values themselves. After a refresh, the result is remembered under that
fingerprint (and under the new one, when HubSpot rotated the refresh token), so sibling tokens that come
due moments later publish the same access token instead of calling HubSpot again. Together with the
client's single-flight this gives one HubSpot call per refresh, however many tokens share the grant.

This is a cache, not state: after an operator restart it is empty, and nothing depends on it except
saving HubSpot calls (the schedule itself is recomputed from status).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class GrantResult:
    access_token: str = field(repr=False)
    issued_at: datetime
    expires_at: datetime
    hub_id: int | None
    scopes: tuple[str, ...]
    user_id: int | None = None
    grant_fingerprint: str = ""  # the grant as it stands after this refresh
    previous_grant_fingerprint: str | None = None  # set when HubSpot returned a new refresh token


class GrantCache:
    def __init__(self, max_entries: int = 20000) -> None:
        self._by_grant: dict[str, GrantResult] = {}
        self._max = max_entries

    def __repr__(self) -> str:
        return f"GrantCache({len(self._by_grant)} grants)"

    def remember(self, grant_fp: str, result: GrantResult) -> None:
        if len(self._by_grant) >= self._max:
            self._by_grant.pop(next(iter(self._by_grant)))
        self._by_grant[grant_fp] = result
        if result.grant_fingerprint and result.grant_fingerprint != grant_fp:
            self._by_grant[result.grant_fingerprint] = result

    def latest(self, grant_fp: str | None) -> GrantResult | None:
        return self._by_grant.get(grant_fp) if grant_fp else None

    def forget(self, grant_fp: str | None) -> None:
        if grant_fp:
            self._by_grant.pop(grant_fp, None)
