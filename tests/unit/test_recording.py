"""The status diff: a field goes into the merge patch only when applying it would change the stored status."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from hubspot_token_operator.recording import Recorder, merge_patch_changes


@pytest.mark.parametrize(("current", "patch", "changes"), [
    ({"a": 1}, {"a": None, "b": None}, True),  # deletes a
    ({"a": 1}, {"b": None}, False),  # deleting an absent key changes nothing
    ({"a": 1, "t": [1]}, {"a": 1, "t": [1]}, False),
    ({"t": [1, 2]}, {"t": [1]}, True),  # lists are replaced whole
    (None, {"a": None}, True),  # a patch object where there was none creates {}
    (None, None, False),
    ("x", "x", False),
    ({"n": {"x": 1}}, {"n": {"x": 1, "y": None}}, False),
    ({"n": {"x": 1}}, {"n": {"x": 2}}, True),
])
def test_merge_patch_changes(current, patch, changes):
    assert merge_patch_changes(current, patch) is changes


def test_rollout_status_with_cleared_fields_is_not_rewritten():
    stored = {"rollout": {"restarts": 1, "targets": [{"kind": "Deployment", "name": "web", "state": "Complete"}]},
              "observedGeneration": 1, "conditions": []}
    body = {"metadata": {"namespace": "ns", "name": "t", "generation": 1}, "status": stored}
    rec = Recorder(body=body, now=datetime.now(timezone.utc))
    rec.set_fields(rollout={**stored["rollout"], "pendingSince": None, "pendingRevision": None}, retryAt=None)
    assert rec.patch() == {}
    rec.set_fields(rollout={**stored["rollout"], "restarts": 2})
    assert rec.patch() == {"rollout": {**stored["rollout"], "restarts": 2}}
