"""The `Next step:` line of `kubectl hubspot status NAME` (kubectl_plugin/next_step.py): one case per HubSpot
email (docs/hubspot-emails.md) and the other states a person can find a token in."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from hubspot_token_operator.kubectl_plugin.next_step import next_step
from hubspot_token_operator.kubectl_plugin.status import render

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def c(ctype: str, status: str, reason: str, message: str = "") -> dict:
    return {"type": ctype, "status": status, "reason": reason, "message": message}


def pa_token(conditions: list[dict], private_app: dict | None = None, **spec) -> dict:
    return {
        "metadata": {"name": "reporting", "namespace": "sales"},
        "spec": {"type": "PrivateApp", "privateApp": {"tokenSecretRef": {"name": "reporting-source"}},
                 "target": {"name": "reporting-hubspot"}, **spec},
        "status": {"conditions": conditions, "tokenFingerprint": "abcdef0123456789",
                   "privateApp": private_app or {"lastOutcome": "Published"}},
    }


READY = c("Ready", "True", "TokenPublished", "verified token published")
OVERLAP = {"lastOutcome": "Published", "previousFingerprint": "0123456789abcdef", "previousUntil": "2026-11-29T12:00:00Z"}


@pytest.mark.parametrize(
    "obj, expect",
    [
        # "rotation started" email: the new token is published, consumers restart
        (pa_token([READY, c("RotationAccepted", "True", "Verified"),
                   c("PreviousTokenRetirable", "False", "ConsumersRestarting")], OVERLAP),
         ["wait for the consumers", "do not expire the old token", "2026-11-29T12:00:00Z"]),
        # consumers restarted: safe to expire the old token
        (pa_token([READY, c("PreviousTokenRetirable", "True", "ConsumersRestarted")], OVERLAP),
         ["safe to expire the old token in HubSpot", "reporting-hubspot"]),
        # "expires in 24 hours" email while workloads still run old pods (OverlapEnding)
        (pa_token([READY, c("PreviousTokenRetirable", "False", "ConsumersRestarting")], dict(OVERLAP, overlapWarned=True)),
         ["restart the workloads", "before 2026-11-29T12:00:00Z"]),
        # "rotation cancelled" email: rolled back, the source still holds the dead token
        (pa_token([READY, c("RotationAccepted", "False", "RotationRolledBack"),
                   c("PreviousTokenRetirable", "False", "RotationRolledBack")],
                  {"lastOutcome": "Rejected", "lastOutcomeReason": "RotationRolledBack", "rejectedFingerprint": "x"}),
         ["previous one is published again", "reporting-source", "kubectl hubspot rotate reporting -n sales"]),
        # "invalidated immediately" email (rotate and expire now) before anyone updated the cluster
        (pa_token([c("Ready", "False", "TokenDeactivated", "the published token no longer passes verification"),
                   c("Verified", "False", "TokenDeactivated")], {"lastOutcome": "Published", "verified": False}),
         ["no longer works", "put a working token into Secret reporting-source"]),
        # "180 days" reminder email
        (pa_token([READY, c("RotationDue", "True", "MaxAgeExceeded")]),
         ["rotate in HubSpot", "then `kubectl hubspot rotate reporting -n sales < new-token.txt`"]),
        # "rotation started" email, seen first in the audit log (spec.privateApp.auditLog): nobody updated the cluster
        (pa_token([READY, c("RotationDue", "True", "RotatedInHubSpot", "rotated in HubSpot at ...")]),
         ["someone rotated the token in HubSpot", "kubectl hubspot rotate reporting -n sales"]),
        # "rotated and expired after seven days" email: overlap over, nothing left to do
        (pa_token([READY, c("PreviousTokenRetirable", "True", "OverlapEnded"),
                   c("RotationDue", "False", "WithinMaxAge", "rotation due in 173d")]),
         ["nothing to do", "rotation due in 173d"]),
        # a bad token in the source Secret was refused; the old one stays
        (pa_token([READY, c("RotationAccepted", "False", "HubMismatch")],
                  {"lastOutcome": "Rejected", "lastOutcomeReason": "HubMismatch"}),
         ["rejected (HubMismatch)", "reporting-source"]),
        (pa_token([c("Ready", "False", "InputsMissing", "missing Secret reporting-source")], {}),
         ["put a token into Secret reporting-source"]),
        (pa_token([READY], suspend=True), ["spec.suspend"]),
    ],
)
def test_next_step(obj, expect):
    text = next_step(obj, NOW)
    for part in expect:
        assert part in text, text


def test_the_cancelled_rotation_outranks_the_overlap_and_rotation_due():
    obj = pa_token([READY, c("RotationAccepted", "False", "RotationRolledBack"), c("RotationDue", "True", "MaxAgeExceeded")],
                   {"lastOutcome": "Rejected", "lastOutcomeReason": "RotationRolledBack"})
    assert "previous one is published again" in next_step(obj, NOW)


def test_a_dead_token_outranks_everything_else():
    obj = pa_token([c("Ready", "False", "TokenDeactivated"), c("PreviousTokenRetirable", "True", "ConsumersRestarted")],
                   dict(OVERLAP, verified=False))
    assert "no longer works" in next_step(obj, NOW) and "safe to expire" not in next_step(obj, NOW)


def test_oauth_next_steps():
    base = {"metadata": {"name": "crm"}, "spec": {"type": "OAuth", "oauth": {"refreshTokenSecretRef": {"name": "crm-install"}}}}
    assert "refreshed on their own" in next_step(dict(base, status={"conditions": [READY]}), NOW)
    reauth = dict(base, status={"conditions": [c("Ready", "False", "ReauthRequired"), c("ReauthRequired", "True", "InvalidGrant")]})
    assert "re-authorise" in next_step(reauth, NOW) and "crm-install" in next_step(reauth, NOW)


def test_status_prints_the_next_step_line():
    lines = render(pa_token([READY, c("RotationDue", "True", "MaxAgeExceeded")]), NOW)
    step = [line for line in lines if line.startswith("Next step:")]
    assert len(step) == 1 and "rotate in HubSpot" in step[0]
