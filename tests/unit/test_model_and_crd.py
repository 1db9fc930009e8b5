"""The spec model agrees with the CRD (defaults, enums), and small helpers behave."""

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from hubspot_token_operator import conditions
from hubspot_token_operator.clock import Clock
from hubspot_token_operator.fingerprint import Fingerprinter
from hubspot_token_operator.model import SpecError, TokenSpec, parse_spec
from hubspot_token_operator.workqueue import WorkQueue

CRD = Path(__file__).resolve().parents[2] / "crds" / "hubspottokens.hubspot-operator.dev.yaml"


def crd_spec_schema() -> dict:
    doc = yaml.safe_load(CRD.read_text())
    return doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def defaults(schema: dict, path=()) -> dict:
    out = {}
    for name, prop in (schema.get("properties") or {}).items():
        if "default" in prop and prop["default"] != {}:
            out[path + (name,)] = prop["default"]
        out.update(defaults(prop, path + (name,)))
    return out


def model_value(model, path):
    obj = model
    aliases = {
        "clientIdKey": "client_id_key", "clientSecretKey": "client_secret_key", "apiVersion": "api_version",
        "minRemainingValidity": "min_remaining_validity", "jitterPercent": "jitter_percent",
        "maxAge": "max_age", "verifyInterval": "verify_interval", "previousToken": "previous_token",
        "expiresAt": "expires_at", "hubId": "hub_id", "creationPolicy": "creation_policy",
        "deletionPolicy": "deletion_policy", "restartOn": "restart_on", "minInterval": "min_interval",
        "privateApp": "private_app", "clientSecretRef": "client_secret_ref",
        "refreshTokenSecretRef": "refresh_token_secret_ref", "tokenSecretRef": "token_secret_ref",
        "revokeOnDelete": "revoke_on_delete", "auditLog": "audit_log",
    }
    for p in path:
        obj = getattr(obj, aliases.get(p, p))
    return obj


def test_model_defaults_match_crd_defaults():
    from hubspot_token_operator.durations import parse_duration

    full = parse_spec(
        {
            "type": "OAuth",
            "oauth": {"clientSecretRef": {"name": "a"}, "refreshTokenSecretRef": {"name": "b"}},
            "privateApp": {"tokenSecretRef": {"name": "c"}, "auditLog": {"tokenSecretRef": {"name": "e"}}},
            "target": {"name": "d"},
        }
    )
    found = defaults(crd_spec_schema())
    assert len(found) > 15
    for path, default in found.items():
        value = model_value(full, path)
        if isinstance(value, timedelta):
            default = parse_duration(default)
        assert value == default, f"spec.{'.'.join(path)}: CRD default {default!r}, model {value!r}"


def test_model_enums_match_crd():
    schema = crd_spec_schema()
    assert schema["properties"]["type"]["enum"] == ["OAuth", "PrivateApp"]
    fields = TokenSpec.model_fields
    assert set(schema["properties"]) == {f.alias or n for n, f in fields.items()}


def test_parse_spec_errors_name_the_field():
    with pytest.raises(SpecError) as err:
        parse_spec({"type": "OAuth", "target": {"name": "x"}, "refresh": {"before": "soon"}})
    assert "spec.refresh.before" in str(err.value) and "not a duration" in str(err.value)
    with pytest.raises(SpecError, match="spec.type OAuth needs a spec.oauth block"):
        parse_spec({"type": "OAuth", "target": {"name": "x"}})


@pytest.mark.parametrize(
    "section, field, value",
    [
        ("privateApp", "overlap", "99999999999d"),
        ("privateApp", "maxAge", "9" * 400 + "s"),  # float('9'*400) is inf
        ("privateApp", "verifyInterval", "36501d"),
        ("refresh", "before", "999999999999h"),
        ("rollout", "minInterval", 10**13),  # a number is read as seconds
    ],
)
def test_durations_too_large_to_represent_are_spec_errors_not_overflow(section, field, value):
    spec = {"type": "PrivateApp", "privateApp": {"tokenSecretRef": {"name": "c"}}, "target": {"name": "d"}}
    spec.setdefault(section, {})[field] = value
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    assert f"spec.{section}.{field}" in str(err.value) and "at most 36500d" in str(err.value)


def test_longest_duration_still_fits_datetime_arithmetic():
    from hubspot_token_operator.durations import MAX_DURATION, parse_duration

    assert parse_duration("36500d") == MAX_DURATION
    now = datetime.now(timezone.utc)
    assert (now + MAX_DURATION).year > now.year and (now - MAX_DURATION).year < now.year


def _walk(schema: dict, path: str = "spec"):
    yield path, schema
    for name, prop in (schema.get("properties") or {}).items():
        yield from _walk(prop, f"{path}.{name}")


DURATION_FIELDS = {
    "spec.refresh.before", "spec.refresh.minRemainingValidity", "spec.privateApp.overlap", "spec.privateApp.maxAge",
    "spec.privateApp.verifyInterval", "spec.rollout.delay", "spec.rollout.minInterval",
    "spec.privateApp.auditLog.interval",
}
SECRET_KEY_FIELDS = {
    "spec.oauth.clientSecretRef.clientIdKey", "spec.oauth.clientSecretRef.clientSecretKey",
    "spec.oauth.refreshTokenSecretRef.key", "spec.privateApp.tokenSecretRef.key", "spec.target.keys.token",
    "spec.target.keys.previousToken", "spec.target.keys.expiresAt", "spec.target.keys.hubId",
    "spec.privateApp.auditLog.tokenSecretRef.key",
}


def test_crd_bounds_every_duration_and_secret_key_field():
    """The CEL behaviour itself is exercised against a real API server in tests/cluster/test_crd_validation.py."""
    fields = dict(_walk(crd_spec_schema()))
    for path in DURATION_FIELDS:
        prop = fields[path]
        rules = [r["rule"] for r in prop["x-kubernetes-validations"]]
        assert prop.get("maxLength") == 16, path
        assert any(".sum() <=" in r for r in rules), f"{path} has no upper bound"
        assert "at most" in prop["description"], f"{path}: document the ceiling"
    for path in SECRET_KEY_FIELDS:
        prop = fields[path]
        rules = prop["x-kubernetes-validations"]
        assert prop.get("maxLength") == 253 and prop.get("description"), path
        assert any("^[-._a-zA-Z0-9]+$" in r["rule"] and r["message"].startswith(path) for r in rules), path
    # Every duration field of the model is in the list above.
    def model_durations(model, path):
        for name, f in model.model_fields.items():
            sub = f"{path}.{f.alias or name}"
            if f.annotation in (timedelta, timedelta | None):
                yield sub
            elif isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
                yield from model_durations(f.annotation, sub)
            elif getattr(f.annotation, "__args__", None) and isinstance(f.annotation.__args__[0], type) \
                    and issubclass(f.annotation.__args__[0], BaseModel):
                yield from model_durations(f.annotation.__args__[0], sub)

    assert set(model_durations(TokenSpec, "spec")) == DURATION_FIELDS
    root = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert any("self.metadata.name.size() <= 63" == r["rule"] for r in root["x-kubernetes-validations"])


def test_conditions_keep_transition_time_when_status_is_unchanged():
    t1 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    c = conditions.set_condition(None, "Ready", True, "A", "m", 1, t1)
    c2 = conditions.set_condition(c, "Ready", True, "B", "m2", 2, t1 + timedelta(hours=1))
    assert c2[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z" and c2[0]["reason"] == "B"
    c3 = conditions.set_condition(c2, "Ready", False, "C", "m3", 2, t1 + timedelta(hours=2))
    assert c3[0]["lastTransitionTime"] == "2026-01-01T02:00:00Z"


def test_fingerprints_are_keyed_and_hide_the_key():
    a, b = Fingerprinter(b"k" * 32), Fingerprinter(b"j" * 32)
    assert a.of("tok") != b.of("tok") and a.of("tok") == a.of("tok")
    assert "k" * 8 not in repr(a)
    assert a.of_data({"x": b"1"}) != a.of_data({"x": b"2"})
    assert a.of_data({"x": b"1", "y": b""}) != a.of_data({"xy": b"1"})


async def _until(done, tries: int = 100) -> None:
    """Lets the queue run until `done()` (or about 2 s); the assertions after it say what was wanted."""
    for _ in range(tries):
        await asyncio.sleep(0.02)
        if done():
            return


def test_workqueue_dedups_keeps_earliest_and_reruns_after_processing():
    async def scenario():
        clock = Clock()
        seen: list[str] = []

        async def handler(key):
            seen.append(key)
            if key == "a" and seen.count("a") == 1:
                q.schedule("a")  # scheduled while active: runs again afterwards
            return None

        q = WorkQueue(clock, handler, workers=2)
        await q.start()
        later = clock.now() + timedelta(seconds=30)
        q.schedule("b", later)
        q.schedule("b")  # earlier wins
        q.schedule("a")
        q.schedule("a")  # dedup
        for _ in range(50):
            await asyncio.sleep(0.02)
            if seen.count("a") == 2 and "b" in seen:
                break
        q.schedule("c", clock.now() + timedelta(hours=1))
        clock.set_offset(timedelta(hours=2))  # a time jump wakes the queue
        for _ in range(50):
            await asyncio.sleep(0.02)
            if "c" in seen:
                break
        await q.stop()
        return seen

    seen = asyncio.run(scenario())
    assert seen.count("a") == 2 and seen.count("b") == 1 and seen.count("c") == 1


def test_workqueue_decides_a_possible_echo_once_the_reconcile_is_over():
    """The watch event of a reconcile's own write can arrive before the write's answer. Scheduled with
    `unless`, it re-runs the key only if the check, asked after the reconcile, says it was not an echo."""
    async def scenario():
        clock = Clock()
        seen: list[str] = []
        written: dict[str, str] = {}
        asked: list[str] = []

        def echo_of(key, rv):
            def check():
                asked.append(key)
                return written.get(key) == rv
            return check

        async def handler(key):
            seen.append(key)
            if key != "idle" and seen.count(key) == 1:
                # the "watch event" arrives while the reconcile is still running, before it records its write
                q.schedule(key, unless=echo_of(key, "7"))
                await asyncio.sleep(0)
                assert asked == [] or key not in asked  # not decided while the reconcile runs
                written[key] = "7" if key == "ours" else "6"  # "theirs": someone else wrote version 7
            return None

        q = WorkQueue(clock, handler, workers=2)
        await q.start()
        q.schedule("ours")
        q.schedule("theirs")
        await _until(lambda: seen.count("theirs") == 2)
        await asyncio.sleep(0.1)
        idle_key_checks = len(asked)
        q.schedule("idle", unless=lambda: True)  # not being reconciled: runs now, the check is not asked
        await _until(lambda: "idle" in seen)
        await q.stop()
        return seen, q.echoes_skipped, asked, idle_key_checks

    seen, skipped, asked, checks_before_idle = asyncio.run(scenario())
    assert seen.count("ours") == 1  # its own echo: no second reconcile
    assert seen.count("theirs") == 2  # a real change: reconciled again
    assert seen.count("idle") == 1 and len(asked) == checks_before_idle == 2
    assert skipped == 1


def test_workqueue_reruns_a_key_whose_echo_check_fails():
    async def scenario():
        clock = Clock()
        seen: list[str] = []

        def broken():
            raise RuntimeError("boom")

        async def handler(key):
            seen.append(key)
            if len(seen) == 1:
                q.schedule(key, unless=broken)
            return None

        q = WorkQueue(clock, handler, workers=1)
        await q.start()
        q.schedule("a")
        await _until(lambda: len(seen) == 2)
        await q.stop()
        return seen

    assert asyncio.run(scenario()) == ["a", "a"]  # a failing check never loses the wake


def test_workqueue_takes_an_urgent_key_before_a_round_of_due_ones():
    """Head-of-line: a Secret deleted during a round of 200 due refreshes is restored next, not after them."""
    async def scenario():
        clock = Clock()
        order: list[str] = []
        gate_open = asyncio.Event()

        async def handler(key):
            order.append(key)
            if key == "due-0":
                await gate_open.wait()  # the only worker is busy while the round and the change arrive
            return None

        q = WorkQueue(clock, handler, workers=1)
        await q.start()
        q.schedule("due-0", clock.now())
        await asyncio.sleep(0.05)
        for i in range(1, 200):
            q.schedule(f"due-{i}", clock.now())
        await asyncio.sleep(0.05)  # all 199 came due and are waiting for the worker
        q.schedule("restore")  # a watch saw a change: no time given
        await asyncio.sleep(0.05)
        gate_open.set()
        await _until(lambda: len(order) == 201)
        await q.stop()
        return order

    order = asyncio.run(scenario())
    assert order[1] == "restore", order[:5]
    assert len(order) == 201


def test_workqueue_gate_parks_a_due_key_without_spending_a_reconcile():
    async def scenario():
        clock = Clock()
        runs: list[tuple[str, float]] = []
        asked: list[str] = []
        start = clock.now()

        def gate(key):
            asked.append(key)
            if key == "paced" and asked.count("paced") == 1:
                return clock.now() + timedelta(seconds=0.3)  # no capacity now: come back at the slot
            return None

        async def handler(key):
            runs.append((key, (clock.now() - start).total_seconds()))
            return None

        q = WorkQueue(clock, handler, workers=2, gate=gate)
        await q.start()
        q.schedule("paced", clock.now())
        q.schedule("free", clock.now())
        q.schedule("changed")  # urgent keys skip the gate: a change is looked at now
        await _until(lambda: len(runs) == 3)
        await q.stop()
        return runs, asked, q.gated

    runs, asked, gated = asyncio.run(scenario())
    assert [k for k, _ in runs].count("paced") == 1  # reconciled once, at its slot
    assert dict(runs)["paced"] >= 0.29
    assert "changed" not in asked and gated == 1
