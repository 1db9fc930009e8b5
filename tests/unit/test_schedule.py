"""When a token refreshes (schedule.py), as tables."""

from datetime import datetime, timedelta, timezone

import pytest

from hubspot_token_operator.durations import format_duration, parse_duration
from hubspot_token_operator.model import RefreshSpec
from hubspot_token_operator.schedule import jitter_fraction, refresh_at, retry_at, usable

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def policy(**kw) -> RefreshSpec:
    return RefreshSpec.model_validate(kw)


@pytest.mark.parametrize(
    "lifetime_s, spec, expected_offset_s",
    [
        (1800, {"percent": 67, "jitterPercent": 0}, 1206),  # 67% of 30 min
        (1800, {"percent": 90, "jitterPercent": 0, "before": "10m"}, 1200),  # `before` is earlier
        (1800, {"percent": 50, "jitterPercent": 0, "before": "5m"}, 900),  # percent is earlier
        (1800, {"percent": 95, "jitterPercent": 0, "minRemainingValidity": "10m"}, 1200),  # clamp
        (1800, {"percent": 10, "jitterPercent": 0, "before": "29m"}, 180),  # floor
        (60, {"percent": 67, "jitterPercent": 0, "minRemainingValidity": "2m"}, 6),  # floor: a tenth of the lifetime
        (21600, {"percent": 67, "jitterPercent": 0}, 14472),  # an old 6 h token, from its real lifetime
    ],
)
def test_refresh_at_uses_the_real_lifetime(lifetime_s, spec, expected_offset_s):
    due = refresh_at(T0, T0 + timedelta(seconds=lifetime_s), policy(**spec), seed="x")
    assert (due - T0).total_seconds() == pytest.approx(expected_offset_s, abs=0.01)


def test_jitter_is_earlier_only_bounded_and_stable_per_object():
    p = policy(percent=67, jitterPercent=10)
    no_jitter = refresh_at(T0, T0 + timedelta(seconds=1800), policy(percent=67, jitterPercent=0), "a")
    dues = {seed: refresh_at(T0, T0 + timedelta(seconds=1800), p, seed) for seed in map(str, range(200))}
    for due in dues.values():
        assert no_jitter - timedelta(seconds=180) <= due <= no_jitter
    assert refresh_at(T0, T0 + timedelta(seconds=1800), p, "7") == dues["7"]
    assert len({d for d in dues.values()}) > 150  # objects are spread, not herded


def test_jitter_fraction_range():
    values = [jitter_fraction(str(i)) for i in range(1000)]
    assert all(0 <= v < 1 for v in values)
    assert 0.4 < sum(values) / len(values) < 0.6


def test_retry_backoff_grows_and_is_capped_by_remaining_validity():
    now = T0
    far = now + timedelta(hours=10)
    delays = [(retry_at(now, n, far) - now).total_seconds() for n in range(1, 10)]
    assert delays[:4] == [5, 10, 20, 40]
    assert max(delays) == 300
    assert (retry_at(now, 10_000, far) - now).total_seconds() == 300  # no overflow
    # with 60 s of validity left, never wait more than a quarter of it
    assert (retry_at(now, 6, now + timedelta(seconds=60)) - now).total_seconds() == 15
    # HubSpot's Retry-After is a floor
    assert (retry_at(now, 1, far, timedelta(seconds=10)) - now).total_seconds() == 10
    # an expired token: plain backoff
    assert (retry_at(now, 2, now - timedelta(seconds=5)) - now).total_seconds() == 10


def test_usable_respects_min_remaining_validity():
    p = policy(minRemainingValidity="2m")
    assert usable(T0 + timedelta(minutes=3), T0, p)
    assert not usable(T0 + timedelta(minutes=1), T0, p)
    assert not usable(None, T0, p)


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("10m", 600), ("1h30m", 5400), ("7d", 604800), ("250ms", 0.25), ("168h", 604800)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "10", "m", "1x", "1h 30m", "-5s", "1.5.2s"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_format_duration():
    assert format_duration(timedelta(seconds=3723)) == "1h2m"
    assert format_duration(timedelta(days=3, hours=4, minutes=5)) == "3d4h"
    assert format_duration(timedelta(seconds=-1)) == "0s"


def test_first_look_puts_due_and_unhealthy_tokens_first_and_spreads_the_rest():
    from hubspot_token_operator.schedule import FIRST_LOOK_SPREAD, first_look

    now = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
    later = now + timedelta(minutes=15)
    assert first_look(now, None, True, "a") == now  # never refreshed
    assert first_look(now, later, False, "a") == now  # not Ready: something to fix
    assert first_look(now, now + timedelta(seconds=59), True, "a") == now  # due within the margin
    looks = [first_look(now, later, True, f"uid-{i}") for i in range(200)]
    assert all(now + timedelta(seconds=1) <= t < now + FIRST_LOOK_SPREAD for t in looks)
    assert len(set(looks)) > 150  # spread, not a herd
    assert first_look(now, later, True, "uid-7") == looks[7]  # stable per object


def test_a_listing_wakes_tokens_spread_and_a_change_wakes_them_now(run):
    import types

    from hubspot_token_operator import handlers
    from hubspot_token_operator.clock import Clock
    from hubspot_token_operator.fingerprint import Fingerprinter
    from hubspot_token_operator.runtime import Runtime
    from hubspot_token_operator.settings import Settings

    from hubspot_token_operator.secret_cache import SecretCache

    async def no_fetch(ns, name):
        return None

    kube = types.SimpleNamespace(secret_cache=SecretCache(no_fetch))
    rt = Runtime(settings=Settings(), kube=kube, clock=Clock(), fingerprints=Fingerprinter(b"k" * 32))
    body = {"metadata": {"namespace": "ns", "name": "t", "uid": "u1", "resourceVersion": "1"},
            "spec": {"target": {"name": "out"}}}
    rt.remember(body)
    rt.index.put("ns", "t", body["spec"])
    secret = {"metadata": {"namespace": "ns", "name": "out", "resourceVersion": "5"}, "data": {}}
    calls = []
    ctx = types.SimpleNamespace(runtime=rt, queue=types.SimpleNamespace(schedule=lambda k, at=None, unless=None: calls.append((k, at))))
    saved = handlers.current
    handlers.current = lambda: ctx
    try:
        run(handlers.secret_event(event={"type": None}, body=secret, namespace="ns", name="out",
                                  meta={"resourceVersion": "5"}))
        secret["metadata"]["resourceVersion"] = "6"
        run(handlers.secret_event(event={"type": "MODIFIED"}, body=secret, namespace="ns", name="out",
                                  meta={"resourceVersion": "6"}))
    finally:
        handlers.current = saved
    (k1, at1), (k2, at2) = calls
    assert k1 == k2 == ("ns", "t") and at2 is None
    assert at1 is not None and at1 > rt.clock.now()
