"""Rotation detection from HubSpot's audit log (audit_detection.py): the matching, then whole passes against
FakeKube and the simulator, whose private apps write the audit entries HubSpot's UI would."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from hubspot_token_operator.audit_detection import (classify, concerns, findings, newer, rotated_in_hubspot,
                                                     window_after_read)
from hubspot_token_operator.hubspot import AuditEvent

from .conftest import HUB_ID
from .test_flows import NS, World, passes, world  # noqa: F401 - world is a fixture

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
AUDIT_SCOPE = "account-info.security.read"


def ev(action="ROTATE", category="PRIVATE_APP_ACCESS_TOKEN", sub=None, at=T0, target="42", id_="e1"):
    return AuditEvent(id=id_, action=action, category=category, sub_category=sub, occurred_at=at,
                      target_object_id=target, user_id=7, user_email="admin@example.com")


@pytest.mark.parametrize(("event", "kind"), [
    (ev(), "Rotated"),
    (ev(action="PRIVATE_APP_ACCESS_TOKEN_ROTATE", category="INTEGRATIONS"), "Rotated"),
    (ev(action="AUTO_ROTATE", category="SERVICE_KEY"), "Rotated"),
    (ev(action="DEACTIVATE"), "Deactivated"),
    (ev(action="SET", category="SERVICE_KEY_ROTATION_SCHEDULE"), None),  # a schedule changes no token
    (ev(action="VIEW"), None),
    (ev(action="ROTATE", category="PERSONAL_ACCESS_KEY"), None),  # not an app's token
])
def test_classify(event, kind):
    assert classify(event) == kind


def test_findings_keep_this_apps_entries_after_the_publish():
    events = [
        ev(at=T0 - timedelta(hours=1), id_="before"),  # the rotation whose token is published
        ev(at=T0 + timedelta(minutes=1), target="99", id_="other-app"),
        ev(at=T0 + timedelta(minutes=2), id_="r1"),
        ev(at=T0 + timedelta(minutes=3), id_="r2"),
        ev(action="DEACTIVATE", at=T0 + timedelta(minutes=4), target=None, id_="d"),  # no target id: ours
    ]
    f = findings(events, 42, T0, T0 - timedelta(days=1))
    assert f.rotated.id == "r2" and f.deactivated.id == "d"
    assert f.seen_until == T0 + timedelta(minutes=4)
    assert findings([], 42, T0, T0).seen_until == T0
    # within the publish's own second: the rotation that produced the published token, not a new one
    assert findings([ev(at=T0 + timedelta(milliseconds=400))], 42, T0, T0).rotated is None
    assert concerns(ev(target="99"), None)


def test_a_shared_read_from_an_earlier_start_tells_only_what_this_token_had_not_read():
    """A read shared with other tokens may start before this token's own seenUntil: what it had already
    read is no news (a token with nothing published yet would otherwise hear of an old rotation), yet the
    window it goes on from is the shared one."""
    old, new = ev(at=T0 + timedelta(minutes=1), id_="old"), ev(at=T0 + timedelta(minutes=9), id_="new")
    f = findings([old], 42, None, T0, read_before=T0 + timedelta(minutes=5))
    assert f.rotated is None and f.seen_until == T0 + timedelta(minutes=1)
    f = findings([old, new], 42, None, T0, read_before=T0 + timedelta(minutes=5))
    assert f.rotated.id == "new" and f.seen_until == T0 + timedelta(minutes=9)


def test_rotated_in_hubspot_only_while_newer_than_the_published_token():
    audit = {"rotatedAt": "2026-03-01T00:05:00Z", "rotatedBy": "admin@example.com"}
    assert rotated_in_hubspot(audit, T0) == (T0 + timedelta(minutes=5), "admin@example.com")
    assert rotated_in_hubspot(audit, T0 + timedelta(minutes=6)) is None
    assert rotated_in_hubspot({}, T0) is None


def test_seen_until_moves_only_with_the_last_page_of_a_window():
    """HubSpot documents no order for audit-log entries: while pages are left, the read goes on from the cursor
    and the newest entry read so far waits; the last page moves seenUntil to the newest of the whole window."""
    t = lambda m: T0 + timedelta(minutes=m)  # noqa: E731
    first = window_after_read({"seenUntil": "2026-03-01T00:00:00Z"}, t(9), "c500")
    assert first == {"pageAfter": "c500", "pendingSeenUntil": "2026-03-01T00:09:00Z"}
    audit = {"seenUntil": "2026-03-01T00:00:00Z", **first}
    second = window_after_read(audit, t(3), "c1000")  # newest first: later pages hold older entries
    assert second == {"pageAfter": "c1000", "pendingSeenUntil": "2026-03-01T00:09:00Z"}
    last = window_after_read({**audit, **second}, t(1), None)
    assert last == {"pageAfter": None, "pendingSeenUntil": None, "seenUntil": "2026-03-01T00:09:00Z"}
    assert window_after_read({}, t(2), None)["seenUntil"] == "2026-03-01T00:02:00Z"


def test_an_older_entry_read_later_is_not_newer_than_the_recorded_one():
    assert newer(ev(at=T0 + timedelta(seconds=1, milliseconds=500)), "2026-03-01T00:00:00Z")
    assert not newer(ev(at=T0 + timedelta(milliseconds=500)), "2026-03-01T00:00:00Z")  # status keeps seconds
    assert not newer(ev(at=T0 - timedelta(minutes=1)), "2026-03-01T00:00:00Z")
    assert newer(ev(), None)


# ---- whole passes --------------------------------------------------------------------------------------


def audited(w: World, scopes: list[str], **audit):
    app = w.sim.create_private_app(HUB_ID, scopes=["crm.objects.contacts.read", *scopes])
    w.kube.put_secret(NS, "reporting-source", {"token": app.token})
    w.kube.add_token(NS, {"apiVersion": "hubspot-operator.dev/v1alpha1", "kind": "HubSpotToken",
                          "metadata": {"name": "reporting"}, "spec": {
                              "type": "PrivateApp", "hubId": HUB_ID, "target": {"name": "reporting-hubspot"},
                              "privateApp": {"tokenSecretRef": {"name": "reporting-source"},
                                             "auditLog": {"enabled": True, "interval": "5m", **audit}}}})
    return (NS, "reporting"), app


def cond(w: World, ctype: str) -> dict:
    return w.cond("reporting", ctype)


def test_a_rotation_in_the_ui_is_seen_before_the_next_verification(world: World, run):
    async def main():
        key, app = audited(world, [AUDIT_SCOPE])
        rt = world.runtime()
        await passes(rt, key, 2)
        assert cond(world, "Ready").get("status") == "True"
        world.advance(60)
        new = world.sim.rotate_private_app(app.app_id, "later")  # in HubSpot's UI; nobody updated the cluster
        world.advance(5 * 60)  # the next audit read, far before the hourly verification
        await passes(rt, key, 2)
        rd = cond(world, "RotationDue")
        assert (rd.get("status"), rd.get("reason")) == ("True", "RotatedInHubSpot"), rd
        assert "reporting-source" in rd["message"]
        assert world.kube.reasons("reporting").count("RotatedInHubSpot") == 1
        assert cond(world, "Ready").get("status") == "True", "the old token still works: still Ready"
        await passes(rt, key, 2)
        assert world.kube.reasons("reporting").count("RotatedInHubSpot") == 1, "repeated"
        world.set_source("reporting", new)  # the person finishes the rotation
        await passes(rt, key, 2)
        rd = cond(world, "RotationDue")
        assert (rd.get("status"), rd.get("reason")) == ("False", "WithinMaxAge"), rd
        await rt.close()

    run(main(), timeout=45)


def test_rotate_and_expire_now_is_noticed_at_the_next_audit_read(world: World, run):
    async def main():
        key, app = audited(world, [AUDIT_SCOPE])
        rt = world.runtime()
        await passes(rt, key, 2)
        world.advance(60)
        world.sim.rotate_private_app(app.app_id, "now")  # the published token dies at once
        world.advance(5 * 60)
        await passes(rt, key, 3, follow=True)
        assert cond(world, "Verified").get("status") == "False", cond(world, "Verified")
        assert cond(world, "Ready").get("status") == "False"
        # well before status.privateApp.nextVerifyAt would have come round (verifyInterval 1h)
        assert world.clock.now() - world.clock.start < timedelta(minutes=30)
        await rt.close()

    run(main(), timeout=45)


@pytest.mark.parametrize("order", ["oldest_first", "newest_first"])
def test_a_rotation_behind_more_pages_than_one_read_takes_is_found_in_either_order(world: World, run, order):
    """600 entries of another app after ours (more than one read's 5 pages of 100): whichever order HubSpot
    lists them in, the read goes on from its cursor until the window is read, finds the rotation once, and
    only then moves seenUntil past it."""
    async def main():
        world.sim.configure(audit_log_order=order)
        key, app = audited(world, [AUDIT_SCOPE])
        noisy = world.sim.create_private_app(HUB_ID, scopes=["crm.objects.contacts.read"])
        rt = world.runtime()
        await passes(rt, key, 2)
        world.advance(60)
        world.sim.rotate_private_app(app.app_id, "later")  # ours, the oldest entry of the window
        world.advance(1)
        for _ in range(600):
            world.sim.rotate_private_app(noisy.app_id, "later")
        world.advance(5 * 60)
        before = world.status("reporting")["privateApp"]["auditLog"]
        calls = world.sim.count("GET /account-info/2026-03/activity/audit-logs")
        seen = []
        for _ in range(4):
            await passes(rt, key)
            seen.append(world.status("reporting")["privateApp"]["auditLog"])
        pages = world.sim.count("GET /account-info/2026-03/activity/audit-logs") - calls
        assert pages == 7, pages  # 601 entries in the window, 100 to a page: 5 in one read, 2 in the next, then none
        assert seen[0].get("pageAfter") and seen[0].get("pendingSeenUntil"), seen[0]
        assert seen[0].get("seenUntil") == before.get("seenUntil"), "moved before the window was read"
        assert "pageAfter" not in seen[1] and "pendingSeenUntil" not in seen[1], seen[1]
        # the noise takes wall time to write, so the last page may hold a later second than the first five
        assert seen[1]["seenUntil"] >= seen[0]["pendingSeenUntil"] > (before.get("seenUntil") or "")
        assert seen[2:] == [seen[1]] * 2, "read again before its interval"
        rd = cond(world, "RotationDue")
        assert (rd.get("status"), rd.get("reason")) == ("True", "RotatedInHubSpot"), rd
        assert world.kube.reasons("reporting").count("RotatedInHubSpot") == 1
        await rt.close()

    run(main(), timeout=60)


def test_a_failed_page_keeps_the_cursor_and_a_refused_cursor_reads_the_window_again(world: World, run):
    """A read that fails midway (HTTP 503) goes on from the same cursor next time; a cursor HubSpot refuses
    (HTTP 400: stale, or not its own) is dropped, and the window is read again from seenUntil. Either way
    the rotation behind the pages is found, once."""
    async def main():
        world.sim.configure(audit_log_order="newest_first")
        key, app = audited(world, [AUDIT_SCOPE])
        noisy = world.sim.create_private_app(HUB_ID, scopes=["crm.objects.contacts.read"])
        rt = world.runtime()
        await passes(rt, key, 2)
        world.advance(60)
        world.sim.rotate_private_app(app.app_id, "later")
        world.advance(1)
        for _ in range(600):
            world.sim.rotate_private_app(noisy.app_id, "later")
        world.advance(5 * 60)
        audit = lambda: world.status("reporting")["privateApp"]["auditLog"]  # noqa: E731
        await passes(rt, key)  # pages 1-5
        cursor = audit()["pageAfter"]
        world.sim.add_fault("server_error", path="/account-info/2026-03/activity/audit-logs", status=503, count=1)
        await passes(rt, key)
        assert audit()["pageAfter"] == cursor and "503" in audit()["problem"], audit()
        world.advance(5 * 60)
        # as if HubSpot's cursor had gone stale meanwhile (a status edit, so a newer resourceVersion)
        world.kube.edit_token(NS, "reporting", {"status": {"privateApp": {"auditLog": {"pageAfter": "expired-cursor"}}}})
        await passes(rt, key)
        assert "pageAfter" not in audit() and "pendingSeenUntil" not in audit(), audit()
        assert "400" in audit()["problem"], audit()
        assert cond(world, "RotationDue").get("reason") != "RotatedInHubSpot"
        world.advance(5 * 60)
        await passes(rt, key, 3)  # the window again, from seenUntil: 5 pages, then 2; then the verification
        assert "pageAfter" not in audit() and "problem" not in audit(), audit()
        assert cond(world, "RotationDue").get("reason") == "RotatedInHubSpot"
        assert world.kube.reasons("reporting").count("RotatedInHubSpot") == 1
        assert world.kube.reasons("reporting").count("AuditLogUnreadable") == 2  # the 503, then the 400
        await rt.close()

    run(main(), timeout=60)


def test_an_unreadable_audit_log_says_why_once_and_changes_nothing_else(world: World, run):
    async def main():
        key, _ = audited(world, [])  # the published token lacks account-info.security.read
        rt = world.runtime()
        await passes(rt, key, 2)
        for _ in range(3):
            world.advance(5 * 60)
            await passes(rt, key)
        assert world.kube.reasons("reporting").count("AuditLogUnreadable") == 1
        problem = world.status("reporting")["privateApp"]["auditLog"]["problem"]
        assert "account-info.security.read" in problem and "Enterprise" in problem
        assert cond(world, "Ready").get("status") == "True"
        await rt.close()

    run(main(), timeout=45)


def test_a_separate_audit_token_is_used_when_given(world: World, run):
    async def main():
        reader = world.sim.create_private_app(HUB_ID, scopes=[AUDIT_SCOPE])
        world.kube.put_secret(NS, "audit-reader", {"token": reader.token})
        key, app = audited(world, [], tokenSecretRef={"name": "audit-reader"})
        rt = world.runtime()
        await passes(rt, key, 2)
        world.advance(60)
        world.sim.rotate_private_app(app.app_id, "later")
        world.advance(5 * 60)
        await passes(rt, key, 2)
        assert cond(world, "RotationDue").get("reason") == "RotatedInHubSpot"
        assert not world.kube.reasons("reporting").count("AuditLogUnreadable")
        await rt.close()

    run(main(), timeout=45)


def test_the_audit_reader_secret_is_an_input_like_the_others():
    """Watched (a change wakes the token), and never a target another token may write (tenancy)."""
    from hubspot_token_operator.sharding import secret_names
    from hubspot_token_operator.tenancy import input_secret_names

    spec = {"type": "PrivateApp", "target": {"name": "t"}, "privateApp": {
        "tokenSecretRef": {"name": "src"}, "auditLog": {"enabled": True, "tokenSecretRef": {"name": "reader"}}}}
    assert secret_names(spec) == {"t", "src", "reader"}
    assert input_secret_names(spec) == {"src", "reader"}


# ---- one read per credential (audit_reads.py) ------------------------------------------------------------


def test_a_kept_read_serves_the_windows_it_covers_for_a_while():
    from hubspot_token_operator.audit_reads import SHARE_FOR, Read, serves

    read = Read(since=T0, at=T0 + timedelta(minutes=10), events=(ev(at=T0 + timedelta(minutes=2)),))
    now = read.at + timedelta(seconds=5)
    assert serves(read, T0, now) and serves(read, T0 + timedelta(minutes=3), now)
    assert not serves(read, T0 - timedelta(seconds=1), now), "a wider window has entries the read never asked for"
    assert not serves(read, T0, read.at + SHARE_FOR), "too old: a token would see the log later than it asked"
    assert not serves(None, T0, now)


def test_reads_of_one_credential_share_one_window_and_one_call(run):
    """Concurrent reads of a key make one call; a later one within SHARE_FOR is served; the window starts at
    the earliest start the key's tokens asked for, so it covers them all; failures and reads that left
    pages are never kept; a token gone no longer holds the window back."""
    from hubspot_token_operator.audit_reads import AuditReads
    from hubspot_token_operator.hubspot import AuditLogEvents, ErrorKind, Failure

    async def main():
        reads, calls = AuditReads(), []
        release = asyncio.Event()

        def reader(outcome):
            async def read(start):
                calls.append(start)
                await release.wait()
                return outcome
            return read

        entries = AuditLogEvents(events=(ev(at=T0 + timedelta(minutes=1), id_="a"), ev(at=T0 + timedelta(minutes=3), id_="b")))
        m = lambda n: T0 + timedelta(minutes=n)  # noqa: E731
        now, I = m(5), timedelta(minutes=5)  # noqa: E741 - every token reads every 5 minutes
        waiting = [asyncio.ensure_future(reads.events(("u", "fp"), (NS, t), since, now, I, reader(entries)))
                   for t, since in (("x", m(0)), ("y", m(2)), ("z", m(2)))]
        await asyncio.sleep(0)
        release.set()
        got = await asyncio.gather(*waiting)
        assert calls == [m(0)] and (reads.calls, reads.shared) == (1, 2)
        assert all([e.id for e in g.outcome.events] == ["a", "b"] and g.since == m(0) and g.at == now for g in got)
        # within SHARE_FOR: served; another credential is not
        g = await reads.events(("u", "fp"), (NS, "y"), m(1), now + timedelta(seconds=10), I, reader(entries))
        assert g.at == now and len(calls) == 1
        await reads.events(("u", "other-fp"), (NS, "w"), m(0), now, I, reader(entries))
        assert len(calls) == 2
        # later: the read starts at the earliest start any token of the key asked for ("x": m(0))
        later = now + timedelta(minutes=5)
        g = await reads.events(("u", "fp"), (NS, "y"), m(4), later, I, reader(entries))
        assert calls[-1] == m(0) and g.since == m(0)
        reads.forget((NS, "x"))
        await reads.events(("u", "fp"), (NS, "y"), m(4), later + timedelta(minutes=5), I, reader(entries))
        assert calls[-1] == m(2), "a deleted token held the window back"  # "z" asked for m(2)
        await reads.events(("u", "fp"), (NS, "y"), m(4), now + 3 * I, I, reader(entries))
        assert calls[-1] == m(4), "a token that stopped asking two intervals ago held the window back"
        # failures and reads that left pages are never kept
        failed = Failure(kind=ErrorKind.RETRYABLE, reason="RateLimited", message="429", http_status=429)
        n = len(calls)
        assert (await reads.events(("u", "f"), (NS, "x"), T0, later, I, reader(failed))).outcome is failed
        await reads.events(("u", "f"), (NS, "x"), T0, later, I, reader(entries))
        partial = AuditLogEvents(events=(), next_after="100")
        await reads.events(("u", "p"), (NS, "x"), T0, later, I, reader(partial))
        await reads.events(("u", "p"), (NS, "x"), T0, later, I, reader(partial))
        assert len(calls) == n + 4

    run(main(), timeout=10)


def shared_reader_tokens(w: World, names: list[str], reader: str = "audit-reader"):
    apps = {}
    for name in names:
        app = w.sim.create_private_app(HUB_ID, scopes=["crm.objects.contacts.read"])
        w.kube.put_secret(NS, f"{name}-source", {"token": app.token})
        w.kube.add_token(NS, {"apiVersion": "hubspot-operator.dev/v1alpha1", "kind": "HubSpotToken",
                              "metadata": {"name": name}, "spec": {
                                  "type": "PrivateApp", "hubId": HUB_ID, "target": {"name": f"{name}-hubspot"},
                                  "privateApp": {"tokenSecretRef": {"name": f"{name}-source"},
                                                 "auditLog": {"enabled": True, "interval": "5m",
                                                              "tokenSecretRef": {"name": reader}}}}})
        apps[name] = app
    return apps


def test_tokens_sharing_a_reader_read_the_audit_log_once_per_interval(world: World, run):
    """Three private apps of one hub, one reader Secret: one audit-log read per interval serves all three,
    whichever of them reads first, each finds only its own app's rotation, and a token with another reader
    credential reads on its own."""
    async def main():
        reader = world.sim.create_private_app(HUB_ID, scopes=[AUDIT_SCOPE])
        world.kube.put_secret(NS, "audit-reader", {"token": reader.token})
        names = ["sales", "support", "billing"]
        apps = shared_reader_tokens(world, names)
        own = world.sim.create_private_app(HUB_ID, scopes=[AUDIT_SCOPE])
        world.kube.put_secret(NS, "own-reader", {"token": own.token})
        apps.update(shared_reader_tokens(world, ["solo"], reader="own-reader"))
        rt = world.runtime()
        audit_gets = lambda: world.sim.count("GET /account-info/2026-03/activity/audit-logs")  # noqa: E731

        async def round_(order=(*names, "solo")):
            before = audit_gets()
            for name in order:
                await passes(rt, (NS, name))
            return audit_gets() - before

        for name in [*names, "solo"]:  # published a few seconds apart: four different first windows
            await passes(rt, (NS, name))
            world.advance(3)
        reads = [await round_(("solo", *reversed(names))) for _ in range(2)]  # each token's first read
        assert 2 <= sum(reads) <= 5, reads
        for _ in range(3):  # the token published last reads first: its window alone would not cover the others
            world.advance(5 * 60)
            reads.append(await round_(("solo", *reversed(names))))
        assert reads[-2:] == [2, 2], f"one read for the shared reader, one for solo: {reads}"
        world.sim.rotate_private_app(apps["support"].app_id, "later")
        world.advance(5 * 60)
        assert await round_() == 2
        reasons = {n: world.kube.reasons(n).count("RotatedInHubSpot") for n in [*names, "solo"]}
        assert reasons == {"sales": 0, "support": 1, "billing": 0, "solo": 0}, reasons
        checks = {world.status(n)["privateApp"]["auditLog"]["nextCheckAt"] for n in names}
        assert len(checks) == 1, f"the tokens of one reader fell out of step: {checks}"
        assert rt.audit_reads.shared >= 8  # two tokens served in each of the four rounds that read
        await rt.close()

    run(main(), timeout=60)
