"""The OAuth trigger chain (policies.py): which check wins, with which words."""

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from hubspot_token_operator.durations import to_rfc3339
from hubspot_token_operator.model import parse_spec
from hubspot_token_operator.policies import Observed, decide_oauth
from hubspot_token_operator.status_model import parse_status

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
SPEC = parse_spec(
    {
        "type": "OAuth",
        "oauth": {"clientSecretRef": {"name": "app"}, "refreshTokenSecretRef": {"name": "install"}},
        "target": {"name": "out"},
        "refresh": {"jitterPercent": 0},
    }
)


def healthy(**status_overrides) -> Observed:
    issued = NOW - timedelta(minutes=5)
    status = {
        "expiresAt": to_rfc3339(issued + timedelta(minutes=30)),
        "lastRefreshTime": to_rfc3339(issued),
        "grantFingerprint": "g1",
        "secretMAC": "m1",
        "tokenFingerprint": "t1",
        "conditions": [{"type": "Ready", "status": "True", "reason": "TokenPublished", "observedGeneration": 1}],
    }
    status.update(status_overrides)
    return Observed(
        spec=SPEC,
        status=parse_status(status),
        now=NOW,
        uid="uid-1",
        generation=1,
        refresh_request=None,
        missing_inputs=(),
        grant_fingerprint="g1",
        target_exists=True,
        target_mac="m1",
        held_token=True,
    )


def with_status(obs: Observed, **fields) -> Observed:
    raw = obs.status.model_dump(by_alias=True, exclude_none=True)
    raw.update(fields)
    return replace(obs, status=parse_status({k: v for k, v in raw.items() if v is not None}))


def test_steady_state_waits_until_the_scheduled_time():
    v = decide_oauth(healthy())
    assert (v.action, v.reason) == ("Wait", "Scheduled")
    assert v.until == NOW - timedelta(minutes=5) + timedelta(seconds=1206)
    assert "next refresh in" in v.message


def test_due_token_refreshes():
    v = decide_oauth(replace(healthy(), now=NOW + timedelta(minutes=20)))
    assert (v.action, v.reason) == ("Refresh", "Expiring")


@pytest.mark.parametrize(
    "change, action, reason",
    [
        ({"missing_inputs": ("Secret install",)}, "Blocked", "InputsMissing"),
        ({"refresh_request": "2026-11-22T12:00:00Z"}, "Refresh", "RefreshRequested"),
        ({"grant_fingerprint": "g2"}, "Refresh", "GrantChanged"),
        ({"target_exists": False, "target_mac": None}, "Republish", "SecretRestored"),
        ({"target_exists": False, "target_mac": None, "held_token": False}, "Refresh", "SecretMissing"),
        ({"target_mac": "edited"}, "Republish", "SecretRestored"),
        ({"target_mac": "edited", "held_token": False}, "Refresh", "SecretDrift"),
        ({"custody_pending": True}, "WriteBack", "RefreshTokenWriteBackPending"),
        ({"custody_pending": True, "missing_inputs": ("Secret install",)}, "Blocked", "InputsMissing"),
        ({"key_changed": True}, "Rebase", "FingerprintKeyChanged"),
        ({"key_changed": True, "grant_fingerprint": "g2"}, "Rebase", "FingerprintKeyChanged"),
        ({"grant_fingerprint": "g2", "grant_moved_by_us": True}, "Wait", "Scheduled"),
    ],
)
def test_trigger_table(change, action, reason):
    v = decide_oauth(replace(healthy(), **change))
    assert (v.action, v.reason) == (action, reason)


def test_missing_inputs_message_names_what_is_missing():
    v = decide_oauth(replace(healthy(), missing_inputs=("key refresh_token in Secret install",)))
    assert v.message == "missing key refresh_token in Secret install"


def test_initial_issue():
    obs = replace(healthy(), status=parse_status({}), held_token=False, target_exists=False)
    assert decide_oauth(obs).reason == "InitialIssue"


def test_reauth_required_blocks_until_the_grant_changes():
    obs = replace(healthy(reauthRequiredFor="g1"), now=NOW + timedelta(hours=1))
    assert (decide_oauth(obs).action, decide_oauth(obs).reason) == ("Blocked", "ReauthRequired")
    assert decide_oauth(replace(obs, grant_fingerprint="new")).reason == "GrantChanged"
    assert decide_oauth(replace(obs, refresh_request="now")).reason == "RefreshRequested"


def test_hub_mismatch_stays_refused_until_spec_generation_changes():
    refusal = {"reason": "HubMismatch", "message": "m", "generation": 1, "grantFingerprint": "g1"}
    obs = replace(healthy(refusal=refusal), now=NOW + timedelta(hours=1))
    assert decide_oauth(obs).action == "Blocked"
    assert decide_oauth(replace(obs, generation=2)).action == "Refresh"
    assert decide_oauth(replace(obs, grant_fingerprint="g2")).reason == "GrantChanged"


def test_decisions_never_read_condition_reasons():
    """A Ready condition that says HubMismatch or ReauthRequired is for people; the fields decide."""
    conds = [{"type": "Ready", "status": "False", "reason": "HubMismatch", "observedGeneration": 1},
             {"type": "ReauthRequired", "status": "True", "reason": "InvalidGrant"}]
    assert decide_oauth(healthy(conditions=conds)).reason == "Scheduled"


def test_write_failures_back_off_without_refreshing():
    retry = NOW + timedelta(seconds=40)
    obs = replace(healthy(failedAttempts=2, lastFailureKind="Write", retryAt=to_rfc3339(retry)), target_mac="edited")
    assert decide_oauth(obs).reason == "BackingOff"
    assert (decide_oauth(replace(obs, now=retry)).action, decide_oauth(replace(obs, now=retry)).reason) == (
        "Republish", "SecretRestored")


def test_backoff_waits_for_next_refresh_at_after_failures():
    retry = NOW + timedelta(seconds=40)
    obs = healthy(failedAttempts=3, nextRefreshAt=to_rfc3339(retry))
    v = decide_oauth(obs)
    assert (v.action, v.reason, v.until) == ("Wait", "BackingOff", retry)
    assert decide_oauth(replace(obs, now=retry)).reason == "Retry"


def test_suspended_blocks_everything_but_missing_inputs():
    spec = SPEC.model_copy(update={"suspend": True})
    assert decide_oauth(replace(healthy(), spec=spec, now=NOW + timedelta(hours=2))).reason == "Suspended"


def test_backoff_applies_before_the_first_token_too():
    retry = NOW + timedelta(seconds=40)
    obs = healthy(failedAttempts=2, nextRefreshAt=to_rfc3339(retry), expiresAt=None, lastRefreshTime=None)
    obs = replace(obs, status=parse_status({k: v for k, v in obs.status.model_dump(by_alias=True).items()
                                            if v is not None and k not in ("expiresAt", "lastRefreshTime")}))
    assert decide_oauth(obs).reason == "BackingOff"


# ---- private apps: what a periodic re-verification means (private_app_policies.decide_reverify) ----------

from hubspot_token_operator.private_app_policies import Reverified, decide_reverify  # noqa: E402


@pytest.mark.parametrize(
    "published, previous, previous_reason, expected",
    [
        # the new token died (cancelled rotation, wrong token, deactivated) and the old one still works
        ("rejected", "ok", "Verified", Reverified("RollBack")),
        # both dead: nothing to fall back to, the existing Verified=False / Ready=False TokenInvalid path
        ("rejected", "rejected", "InvalidToken", Reverified("Invalid")),
        # the previous token is refused for this spec (hub pin, scopes): not a fallback either
        ("rejected", "rejected", "ScopesMissing", Reverified("Invalid")),
        # no previous token (never rotated, or the overlap is over): the existing behaviour
        ("rejected", None, None, Reverified("Invalid")),
        # HubSpot did not answer about the previous token: invalid now, ask again soon
        ("rejected", "transient", "VerifyFailed", Reverified("Invalid", retry_previous=True)),
        # the new token works: nothing to roll back, whatever the previous one does
        ("ok", "ok", "Verified", Reverified("Valid")),
        ("ok", None, None, Reverified("Valid")),
        ("ok", "transient", "VerifyFailed", Reverified("Valid")),
        # ... but a dead previous token before the overlap ends is HubSpot's "Expire now"
        ("ok", "rejected", "InvalidToken", Reverified("Valid", previous_dead=True)),
        ("ok", "rejected", "HubMismatch", Reverified("Valid")),
        # no answer about the published token: change nothing, retry
        ("transient", None, None, Reverified("Retry")),
        ("transient", "ok", "Verified", Reverified("Retry")),
    ],
)
def test_reverify_table(published, previous, previous_reason, expected):
    assert decide_reverify(published, previous, previous_reason) == expected


def test_a_rollback_never_happens_without_a_working_previous_token():
    for previous in (None, "rejected", "transient"):
        for reason in (None, "InvalidToken", "VerifyFailed"):
            assert decide_reverify("rejected", previous, reason).action != "RollBack"
    assert decide_reverify("ok", "ok").action != "RollBack"
