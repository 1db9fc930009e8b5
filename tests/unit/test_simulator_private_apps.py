"""Private apps / Service Keys: static pat tokens, UI-style rotation, token info and the audit feeds."""

from __future__ import annotations

import re

import httpx
import pytest

from hubspot_token_operator.simulator import SimControl

from .conftest import HUB_ID

INFO = "/oauth/v2/private-apps/get/access-token-info"
SEVEN_DAYS = 7 * 24 * 3600


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def details_status(http: httpx.Client, token: str) -> int:
    return http.get("/account-info/2026-03/details", headers=bearer(token)).status_code


def test_token_format_and_info(http, sim: SimControl):
    app = sim.create_private_app(HUB_ID, ["crm.objects.contacts.read"])
    assert re.fullmatch(r"pat-na1-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", app.token)
    body = http.post(INFO, json={"tokenKey": app.token}).json()
    assert body["hubId"] == HUB_ID and body["appId"] == app.app_id
    assert body["scopes"] == ["crm.objects.contacts.read"] and isinstance(body["userId"], int)


def test_eu1_token_info_needs_the_bearer_header(http, sim: SimControl):
    app = sim.create_private_app(HUB_ID, [], hublet="eu1")
    assert app.token.startswith("pat-eu1-")
    assert http.post(INFO, json={"tokenKey": app.token}).status_code == 401
    assert http.post(INFO, json={"tokenKey": app.token}, headers=bearer(app.token)).status_code == 200
    sim.configure(eu1_token_info_requires_bearer=False)
    assert http.post(INFO, json={"tokenKey": app.token}).status_code == 200


def test_token_info_rejects_unknown_and_malformed(http, sim):
    assert http.post(INFO, json={"tokenKey": "pat-na1-00000000-0000-0000-0000-000000000000"}).status_code == 401
    assert http.post(INFO, json={}).status_code == 400
    assert http.post(INFO, content=b"not json", headers={"Content-Type": "application/json"}).status_code == 400


def test_rotate_and_expire_now_kills_the_old_token(http, sim: SimControl):
    app = sim.create_private_app(HUB_ID)
    new = sim.rotate_private_app(app.app_id, expire="now")
    assert new != app.token
    assert details_status(http, app.token) == 401
    assert details_status(http, new) == 200


def test_rotate_and_expire_later_keeps_the_old_token_for_seven_days(http, sim: SimControl):
    app = sim.create_private_app(HUB_ID)
    new = sim.rotate_private_app(app.app_id, expire="later")
    sim.advance(SEVEN_DAYS - 60)
    assert details_status(http, app.token) == 200
    sim.advance(120)
    response = http.get("/account-info/2026-03/details", headers=bearer(app.token))
    assert response.status_code == 401
    assert response.json()["category"] == "EXPIRED_AUTHENTICATION"
    assert "expired 1 minute(s) ago" in response.json()["message"]
    assert details_status(http, new) == 200


def test_expire_previous_cuts_the_grace_period_short(http, sim: SimControl):
    app = sim.create_private_app(HUB_ID)
    new = sim.rotate_private_app(app.app_id, expire="later")
    sim.expire_previous(app.app_id)
    assert details_status(http, app.token) == 401
    assert details_status(http, new) == 200


def test_deactivate_kills_every_token(http, sim: SimControl):
    app = sim.create_private_app(HUB_ID)
    new = sim.rotate_private_app(app.app_id, expire="later")
    sim.deactivate_private_app(app.app_id)
    assert details_status(http, app.token) == 401
    assert details_status(http, new) == 401
    with pytest.raises(httpx.HTTPStatusError):
        sim.rotate_private_app(app.app_id)


def test_rotations_show_up_in_the_security_activity_and_audit_log(http, sim: SimControl):
    app = sim.create_private_app(HUB_ID, ["account-info.security.read"])
    sim.rotate_private_app(app.app_id, expire="later")
    key = sim.create_private_app(HUB_ID, ["account-info.security.read"], kind="service_key")
    token = sim.rotate_private_app(key.app_id, expire="now")

    security = http.get("/account-info/2026-03/activity/security", headers=bearer(token)).json()
    types = [event["type"] for event in security["results"]]
    assert types == [
        "PRIVATE_APP_ACCESS_TOKEN_CREATE",
        "PRIVATE_APP_ACCESS_TOKEN_ROTATE",
        "SERVICE_KEY_CREATE",
        "SERVICE_KEY_ROTATE",
    ]
    assert security["results"][1]["objectId"] == str(app.app_id)

    page = http.get("/account-info/2026-03/activity/audit-logs", params={"limit": 3}, headers=bearer(token)).json()
    assert [e["action"] for e in page["results"]] == ["CREATE", "ROTATE", "CREATE"]
    rest = http.get(
        "/account-info/2026-03/activity/audit-logs",
        params={"limit": 3, "after": page["paging"]["next"]["after"]},
        headers=bearer(token),
    ).json()
    assert [e["subCategory"] for e in rest["results"]] == ["SERVICE_KEY_ROTATE"] and "paging" not in rest


def test_audit_feed_needs_its_scope(http, sim: SimControl):
    app = sim.create_private_app(HUB_ID, ["crm.objects.contacts.read"])
    response = http.get("/account-info/2026-03/activity/security", headers=bearer(app.token))
    assert response.status_code == 403
    assert response.json()["category"] == "MISSING_SCOPES"


def test_audit_log_time_filter(http, sim: SimControl):
    app = sim.create_private_app(HUB_ID, ["account-info.security.read"])
    sim.advance(3600)
    cutoff_ms = int(sim.now() * 1000)
    token = sim.rotate_private_app(app.app_id, expire="now")
    recent = http.get(
        "/account-info/2026-03/activity/security", params={"fromTimestamp": cutoff_ms}, headers=bearer(token)
    ).json()
    assert [e["type"] for e in recent["results"]] == ["PRIVATE_APP_ACCESS_TOKEN_ROTATE"]


def test_cancel_rotation_kills_the_new_token_and_keeps_the_old_one(http, sim: SimControl):
    app = sim.create_private_app(HUB_ID)
    new = sim.rotate_private_app(app.app_id, expire="later")
    sim.cancel_rotation(app.app_id)
    assert details_status(http, new) == 401
    assert http.post(INFO, json={"tokenKey": new}).status_code == 401
    assert details_status(http, app.token) == 200
    sim.advance(SEVEN_DAYS + 60)  # the old token no longer has an end date
    assert details_status(http, app.token) == 200
    later = sim.rotate_private_app(app.app_id, expire="later")  # and it can be rotated again
    assert details_status(http, later) == 200 and details_status(http, app.token) == 200


def test_cancel_rotation_needs_a_pending_rotation(http, sim: SimControl):
    app = sim.create_private_app(HUB_ID)
    with pytest.raises(httpx.HTTPStatusError) as nothing:
        sim.cancel_rotation(app.app_id)
    assert nothing.value.response.status_code == 409
    now = sim.rotate_private_app(app.app_id, expire="now")  # nothing left to fall back to
    with pytest.raises(httpx.HTTPStatusError) as expired:
        sim.cancel_rotation(app.app_id)
    assert expired.value.response.status_code == 409
    assert details_status(http, now) == 200
    with pytest.raises(httpx.HTTPStatusError) as unknown:
        sim.cancel_rotation(987654321)
    assert unknown.value.response.status_code == 404


def test_cancel_after_two_rotations_restores_only_the_token_it_replaced(http, sim: SimControl):
    app = sim.create_private_app(HUB_ID)
    second = sim.rotate_private_app(app.app_id, expire="later")
    sim.advance(3600)
    third = sim.rotate_private_app(app.app_id, expire="later")
    sim.cancel_rotation(app.app_id)
    assert details_status(http, third) == 401 and details_status(http, second) == 200
    sim.advance(SEVEN_DAYS)  # the first token keeps the end date of its own rotation
    assert details_status(http, app.token) == 401 and details_status(http, second) == 200


def test_audit_log_order_is_configurable_and_a_foreign_cursor_is_refused(http, sim: SimControl):
    """HubSpot documents no order for audit-log entries; the simulator serves either, so the operator is tested
    with both. A cursor it did not hand out gets HubSpot's 400 VALIDATION_ERROR."""
    app = sim.create_private_app(HUB_ID, ["account-info.security.read"])
    sim.advance(1)
    token = sim.rotate_private_app(app.app_id, expire="later")
    path = "/account-info/2026-03/activity/audit-logs"
    assert [e["action"] for e in http.get(path, headers=bearer(token)).json()["results"]] == ["CREATE", "ROTATE"]
    sim.configure(audit_log_order="newest_first")
    assert [e["action"] for e in http.get(path, headers=bearer(token)).json()["results"]] == ["ROTATE", "CREATE"]
    refused = http.get(path, params={"after": "not-a-cursor"}, headers=bearer(token))
    assert refused.status_code == 400 and refused.json()["category"] == "VALIDATION_ERROR"
