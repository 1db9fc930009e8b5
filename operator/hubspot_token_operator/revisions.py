"""What counts as a credential change (restart-worthy) versus a routine refresh. Pure functions.

`credentialRevision` is "<n>-<fingerprint prefix>": n grows on a real change. `restartRevision` is what
rollouts follow: the credential revision with restartOn Rotation, or every new access token with
EveryRefresh.
"""

from __future__ import annotations

from .status_model import TokenStatus


def bump(current: str | None, fp: str) -> str:
    n = 0
    head = (current or "").split("-", 1)[0]
    if head.isdigit():
        n = int(head)
    return f"{n + 1}-{fp[:8]}"


def oauth_is_rotation(
    st: TokenStatus,
    reason: str,
    hub_id: int | None,
    scopes: tuple[str, ...],
    grant_before: str | None,
    grant_after: str | None,
    reauthorised: bool,
) -> bool:
    """A new grant (re-authorisation, another client), another hub, other scopes: consumers restart.
    HubSpot rotating the refresh token during a routine refresh is not a change of grant."""
    routine_grant_move = grant_before is not None and st.grant_fingerprint in (grant_before, grant_after)
    return (
        (reason == "GrantChanged" and not routine_grant_move)
        or st.hub_id not in (None, hub_id)
        or (st.scopes is not None and sorted(st.scopes) != sorted(scopes))
        or reauthorised
    )


def oauth_revisions(st: TokenStatus, rotation: bool, token_fp: str, restart_on: str) -> tuple[str, str]:
    revision = st.credential_revision or f"1-{token_fp[:8]}"
    if rotation:
        revision = bump(revision, token_fp)
    restart = f"r-{token_fp[:12]}" if restart_on == "EveryRefresh" else revision
    return revision, restart
