"""kubectl-hubspot (kubectl_plugin): rotate, status and refresh against an in-memory fake of the Kubernetes API.

No cluster: the plugin's Kubernetes I/O goes through one small class (KubeAPI), replaced here by FakeAPI.
Clocks are injected, so waiting and timeouts take no real time. Every run asserts that the sentinel token
never shows up in stdout or stderr.
"""

from __future__ import annotations

import base64
import copy
import io
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hubspot_token_operator.kubectl_plugin import Conflict, KubeAPI, NotFound, main
from hubspot_token_operator.kubectl_plugin.api import ApiError, _status_message
from hubspot_token_operator.kubectl_plugin.refresh import REFRESH_ANNOTATION
from hubspot_token_operator.kubectl_plugin.rotate import version_reached
from hubspot_token_operator.kubectl_plugin.token_input import TokenInputError, clean_token

NS = "team-a"
TOKEN = "pat-na1-5e111e11-aaaa-4bbb-8ccc-0123456789ab"  # sentinel: must never be printed
TOKEN_B64 = base64.b64encode(TOKEN.encode()).decode()
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


# ---- fakes ---------------------------------------------------------------------------------------------


def private_app(name="crm", secret="crm-pat", key=None, status=None, **spec_extra) -> dict:
    ref = {"name": secret, **({"key": key} if key else {})}
    return {
        "apiVersion": "hubspot-operator.dev/v1alpha1",
        "kind": "HubSpotToken",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1},
        "spec": {"type": "PrivateApp", "privateApp": {"tokenSecretRef": ref}, "target": {"name": f"{name}-out"},
                 **spec_extra},
        "status": status or {},
    }


def oauth(name="app", status=None) -> dict:
    return {
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1},
        "spec": {"type": "OAuth", "oauth": {}, "target": {"name": f"{name}-out"}},
        "status": status or {},
    }


class FakeAPI:
    """In-memory HubSpotTokens, Secrets and Events, with resourceVersions and 409s like the API server."""

    def __init__(self, *tokens: dict, secrets: dict | None = None, events: list | None = None, namespace=NS):
        self.tokens = {(t["metadata"]["namespace"], t["metadata"]["name"]): copy.deepcopy(t) for t in tokens}
        self.secrets: dict[tuple[str, str], dict] = {}
        self.events = events or []
        self.namespace = namespace
        self.rv = 100
        self.calls: list[tuple] = []
        self.conflicts = 0  # the next N replace_secret calls lose a race against another writer
        self.operator = None  # callable(fake, token_obj, poll_number): plays the operator on each get_token
        self.operator_after_write = True  # ... once a Secret was written (rotate's first read sees the old status)
        self.wrote = False
        self.polls = 0
        self.secret_reads_forbidden = False
        for name, data in (secrets or {}).items():
            self.secrets[(NS, name)] = {
                "metadata": {"name": name, "namespace": NS, "resourceVersion": self._next(), "labels": {"a": "b"},
                             "managedFields": [{"manager": "kubectl"}]},
                "type": "Opaque",
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
            }

    def _next(self) -> str:
        self.rv += 1
        return str(self.rv)

    def default_namespace(self):
        return self.namespace

    def get_token(self, namespace, name):
        self.calls.append(("get_token", namespace, name))
        obj = self.tokens.get((namespace, name))
        if obj is None:
            raise NotFound(404, f'hubspottokens "{name}" not found')
        if self.operator is not None and (self.wrote or not self.operator_after_write):
            self.polls += 1
            self.operator(self, obj, self.polls)
        return copy.deepcopy(obj)

    def list_tokens(self, namespace, label_selector=None):
        self.calls.append(("list_tokens", namespace, label_selector))
        out = [copy.deepcopy(t) for (ns, _), t in sorted(self.tokens.items()) if ns == namespace]
        if label_selector:
            k, v = label_selector.split("=")
            out = [t for t in out if (t["metadata"].get("labels") or {}).get(k) == v]
        return out

    def patch_token(self, namespace, name, patch):
        self.calls.append(("patch_token", namespace, name, copy.deepcopy(patch)))
        obj = self.tokens.get((namespace, name))
        if obj is None:
            raise NotFound(404, "not found")
        obj["metadata"].setdefault("annotations", {}).update(patch["metadata"]["annotations"])
        return copy.deepcopy(obj)

    def read_secret(self, namespace, name):
        assert not self.secret_reads_forbidden, "this command must not read Secrets"
        self.calls.append(("read_secret", namespace, name))
        s = self.secrets.get((namespace, name))
        return copy.deepcopy(s) if s else None

    def create_secret(self, namespace, body):
        self.calls.append(("create_secret", namespace, copy.deepcopy(body)))
        name = body["metadata"]["name"]
        if (namespace, name) in self.secrets:
            raise Conflict(409, f'secrets "{name}" already exists')
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = self._next()
        self.secrets[(namespace, name)] = stored
        self.wrote = True
        return copy.deepcopy(stored)

    def replace_secret(self, namespace, name, body):
        self.calls.append(("replace_secret", namespace, name, copy.deepcopy(body)))
        cur = self.secrets.get((namespace, name))
        if cur is None:
            raise NotFound(404, "not found")
        if self.conflicts:
            self.conflicts -= 1
            cur["metadata"]["resourceVersion"] = self._next()  # another writer got there first
        if body["metadata"].get("resourceVersion") != cur["metadata"]["resourceVersion"]:
            raise Conflict(409, "the object has been modified; please apply your changes to the latest version")
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = self._next()
        self.secrets[(namespace, name)] = stored
        self.wrote = True
        return copy.deepcopy(stored)

    def list_events(self, namespace, name):
        self.calls.append(("list_events", namespace, name))
        return [e for e in self.events if e["involvedObject"]["name"] == name]

    def writes(self, verb):
        return [c for c in self.calls if c[0] == verb]


class FakeClock:
    def __init__(self):
        self.t = 1000.0
        self.slept = 0.0

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        assert seconds >= 0
        self.t += seconds
        self.slept += seconds


class TTYInput(io.StringIO):
    def isatty(self):
        return True

    def read(self, *a):
        raise AssertionError("a terminal must not be read directly; use getpass")


def run(api, *argv, stdin: str | io.StringIO = "", getpass=None):
    """Runs main() with fakes; returns (exit code, stdout, stderr). Fails if the token was printed."""
    out, err, clock = io.StringIO(), io.StringIO(), FakeClock()
    rc = main(
        list(argv), api=api, stdin=io.StringIO(stdin) if isinstance(stdin, str) else stdin, stdout=out, stderr=err,
        getpass=getpass or (lambda prompt: pytest.fail("unexpected prompt")), clock=clock, sleep=clock.sleep,
        now=lambda: NOW,
    )
    for stream in (out.getvalue(), err.getvalue()):
        assert TOKEN not in stream and TOKEN_B64 not in stream
    run.clock = clock
    return rc, out.getvalue(), err.getvalue()


def written_token(api, secret="crm-pat", key="token") -> str:
    return base64.b64decode(api.secrets[(NS, secret)]["data"][key]).decode()


# ---- reading the token -----------------------------------------------------------------------------


def test_token_from_stdin_updates_the_key_guarded_by_resource_version():
    api = FakeAPI(private_app(key="pat"), secrets={"crm-pat": {"pat": "pat-na1-old", "other": "keep"}})
    old_rv = api.secrets[(NS, "crm-pat")]["metadata"]["resourceVersion"]
    rc, out, err = run(api, "rotate", "crm", "-n", NS, "--no-wait", stdin=f"  {TOKEN}\n\n")
    assert rc == 0, err
    (_, ns, name, body), = api.writes("replace_secret")
    assert (ns, name) == (NS, "crm-pat")
    assert body["metadata"]["resourceVersion"] == old_rv
    assert "managedFields" not in body["metadata"] and body["metadata"]["labels"] == {"a": "b"}
    assert written_token(api, key="pat") == TOKEN  # stripped
    assert base64.b64decode(body["data"]["other"]) == b"keep"
    new_rv = api.secrets[(NS, "crm-pat")]["metadata"]["resourceVersion"]
    assert f"updated key 'pat' of Secret {NS}/crm-pat (resourceVersion {new_rv})" in out


@pytest.mark.parametrize("use_dash", [False, True])
def test_token_from_file_or_dash(tmp_path, use_dash):
    api = FakeAPI(private_app(), secrets={"crm-pat": {"token": "x"}})
    f = tmp_path / "token.txt"
    f.write_text(TOKEN + "\n")
    args = ["--from-file", "-"] if use_dash else ["--from-file", str(f)]
    rc, _, err = run(api, "rotate", "crm", *args, "--no-wait", stdin=TOKEN if use_dash else "not-this")
    assert rc == 0, err
    assert written_token(api) == TOKEN


def test_missing_file_is_a_clear_error(tmp_path):
    rc, _, err = run(FakeAPI(private_app()), "rotate", "crm", "--from-file", str(tmp_path / "nope"))
    assert rc == 1 and "cannot read --from-file" in err


def test_terminal_stdin_prompts_without_echo():
    api = FakeAPI(private_app(), secrets={"crm-pat": {"token": "x"}})
    prompts = []
    rc, _, err = run(api, "rotate", "crm", "--no-wait", stdin=TTYInput(),
                     getpass=lambda p: prompts.append(p) or TOKEN + "\n")
    assert rc == 0, err
    assert prompts and "hidden" in prompts[0]
    assert written_token(api) == TOKEN


@pytest.mark.parametrize("argv", [
    ["rotate", "crm", TOKEN],
    ["rotate", TOKEN],
    ["rotate", "crm", f"--token={TOKEN}"],
    ["rotate", "crm", "--no-wait", "some-other-word"],
    ["status", "crm", TOKEN],
])
def test_token_is_never_taken_from_argv(argv):
    api = FakeAPI(private_app(), secrets={"crm-pat": {"token": "x"}})
    rc, out, err = run(api, *argv, stdin=TOKEN)
    assert rc == 1
    assert "never accepted on the command line" in err or "unrecognized" in err
    assert api.calls == []  # refused before any API call


@pytest.mark.parametrize("text", ["", "   \n\t\n"])
def test_empty_token_is_refused(text):
    api = FakeAPI(private_app(), secrets={"crm-pat": {"token": "x"}})
    rc, _, err = run(api, "rotate", "crm", stdin=text)
    assert rc == 1 and "empty" in err
    assert not api.writes("replace_secret") and not api.writes("create_secret")


def test_multi_line_input_is_refused_even_with_force():
    api = FakeAPI(private_app(), secrets={"crm-pat": {"token": "x"}})
    rc, _, err = run(api, "rotate", "crm", "--force", stdin=f"HUBSPOT_TOKEN=1\n{TOKEN}\n")
    assert rc == 1 and "whitespace" in err
    assert not api.writes("replace_secret")


def test_unexpected_format_is_refused_without_force_and_warned_with_it():
    odd = "CJSP5qf1KhICAQEYs-gDIIGOBii1hQIyGQAf3xBKmlwHjX7OIpuIFEavB2-qYAGQsF4"
    api = FakeAPI(private_app(), secrets={"crm-pat": {"token": "x"}})
    rc, out, err = run(api, "rotate", "crm", "--no-wait", stdin=odd)
    assert rc == 1 and "does not look like a HubSpot private-app token" in err and "--force" in err
    assert odd not in out + err
    assert not api.writes("replace_secret")

    rc, out, err = run(api, "rotate", "crm", "--no-wait", "--force", stdin=odd)
    assert rc == 0 and "warning:" in err
    assert odd not in out + err
    assert written_token(api) == odd


@pytest.mark.parametrize("region", ["na1", "eu1", "na2", "ap1"])
def test_regions_are_accepted(region):
    api = FakeAPI(private_app(), secrets={"crm-pat": {"token": "x"}})
    token = f"pat-{region}-5e111e11-aaaa-4bbb-8ccc-0123456789ab"
    rc, out, err = run(api, "rotate", "crm", "--no-wait", stdin=token)
    assert rc == 0 and not err and token not in out


def test_validation_errors_never_contain_the_input():
    for bad in ["", f"{TOKEN} {TOKEN}", TOKEN * 200, f"{TOKEN}\x00"]:
        with pytest.raises(TokenInputError) as exc:
            clean_token(bad, "stdin")
        assert TOKEN not in str(exc.value) and TOKEN not in repr(exc.value)


# ---- writing the source Secret ---------------------------------------------------------------------


def test_rotate_creates_the_source_secret_when_missing():
    api = FakeAPI(private_app(key="pat"))
    rc, out, err = run(api, "rotate", "crm", "--no-wait", stdin=TOKEN)
    assert rc == 0, err
    (_, ns, body), = api.writes("create_secret")
    # created by the person rotating, for this token: it consents to being read by it (tenancy)
    assert ns == NS and body["metadata"] == {"name": "crm-pat", "namespace": NS,
                                             "labels": {"hubspot-operator.dev/consent": "true"}}
    assert body["type"] == "Opaque"
    assert written_token(api, key="pat") == TOKEN
    assert "created key 'pat'" in out


def test_rotate_retries_on_conflict():
    api = FakeAPI(private_app(), secrets={"crm-pat": {"token": "x"}})
    api.conflicts = 2
    rc, out, err = run(api, "rotate", "crm", "--no-wait", stdin=TOKEN)
    assert rc == 0, err
    assert len(api.writes("replace_secret")) == 3
    assert len(api.writes("read_secret")) == 3  # re-read before each retry, for the fresh resourceVersion
    assert out.count("conflict") == 2 and written_token(api) == TOKEN


def test_rotate_gives_up_after_repeated_conflicts():
    api = FakeAPI(private_app(), secrets={"crm-pat": {"token": "x"}})
    api.conflicts = 99
    rc, _, err = run(api, "rotate", "crm", "--no-wait", stdin=TOKEN)
    assert rc == 1 and "kept changing" in err
    assert len(api.writes("replace_secret")) == 5


def test_rotate_create_race_falls_back_to_update():
    api = FakeAPI(private_app())
    real_create = api.create_secret

    def racing_create(namespace, body):  # someone else creates it between our read and our create
        api.secrets[(NS, "crm-pat")] = {"metadata": {"name": "crm-pat", "namespace": NS, "resourceVersion": "5"},
                                        "type": "Opaque", "data": {"token": "eA=="}}
        api.create_secret = real_create
        return real_create(namespace, body)

    api.create_secret = racing_create
    rc, _, err = run(api, "rotate", "crm", "--no-wait", stdin=TOKEN)
    assert rc == 0, err
    assert written_token(api) == TOKEN and len(api.writes("replace_secret")) == 1


def test_same_token_is_not_written_again():
    api = FakeAPI(private_app(), secrets={"crm-pat": {"token": TOKEN}})
    rc, out, _ = run(api, "rotate", "crm", "--no-wait", stdin=TOKEN)
    assert rc == 0 and "already holds this token" in out
    assert not api.writes("replace_secret")


def test_rotate_refuses_oauth_tokens_and_unknown_names():
    api = FakeAPI(oauth("app"))
    rc, _, err = run(api, "rotate", "app", stdin=TOKEN)
    assert rc == 1 and "spec.type 'OAuth'" in err and "PrivateApp" in err
    rc, _, err = run(api, "rotate", "nope", stdin=TOKEN)
    assert rc == 1 and "not found in namespace 'team-a'" in err
    assert not api.writes("create_secret") and not api.writes("replace_secret")


def test_secret_write_errors_are_redacted():
    api = FakeAPI(private_app(), secrets={"crm-pat": {"token": "x"}})

    def leaky(namespace, name, body):  # an error that echoes the request (what we must never print)
        raise ApiError(422, f"invalid: {body['data']} {TOKEN}")

    api.replace_secret = leaky
    rc, _, err = run(api, "rotate", "crm", "--no-wait", stdin=TOKEN)
    assert rc == 1 and "[REDACTED]" in err

    def crash(namespace, name, body):
        raise RuntimeError(f"boom {TOKEN}")

    api.replace_secret = crash
    rc, _, err = run(api, "rotate", "crm", "--no-wait", stdin=TOKEN)
    assert rc == 1 and "unexpected RuntimeError: boom [REDACTED]" in err


# ---- waiting for the operator -------------------------------------------------------------------------


def published(version, previous_until="2026-03-08T12:00:00Z", **extra) -> dict:
    return {
        "tokenFingerprint": "abcd1234",
        "restartRevision": "2-abcd1234",
        "privateApp": {"sourceVersion": version, "lastOutcome": "Published", "lastOutcomeReason": "Verified",
                       "previousUntil": previous_until},
        "conditions": [{"type": "Ready", "status": "True", "reason": "TokenPublished", "message": "verified token published"},
                       {"type": "RotationAccepted", "status": "True", "reason": "Verified", "message": "ok"}],
        **extra,
    }


def operator_script(*steps):
    """An operator that shows steps[i](written_version) as status on poll i+1 (the last step repeats)."""
    def play(fake, obj, n):
        version = fake.secrets[(NS, "crm-pat")]["metadata"]["resourceVersion"]
        obj["status"] = steps[min(n, len(steps)) - 1](version)
    return play


def test_wait_pending_then_published():
    api = FakeAPI(private_app(status=published("7")), secrets={"crm-pat": {"token": "x"}})
    pending = lambda v: {  # noqa: E731
        "tokenFingerprint": "old",
        "privateApp": {"sourceVersion": v, "lastOutcome": "Pending"},
        "conditions": [{"type": "Degraded", "status": "True", "reason": "VerifyFailed",
                        "message": "HubSpot token info failed: HTTP 503"}],
    }
    rollout = {"targets": [
        {"kind": "Deployment", "name": "web", "revision": "2-abcd1234", "state": "Complete"},
        {"kind": "Deployment", "name": "worker", "revision": "1-old", "state": "Complete"},
    ]}
    api.operator = operator_script(
        lambda v: published("7"),  # the operator has not seen the write yet: an older verdict
        pending, pending, pending,
        lambda v: published(v, rollout=rollout),
    )
    rc, out, err = run(api, "rotate", "crm", stdin=TOKEN)
    assert rc == 0, err
    assert "waiting for the operator to verify the new token..." in out
    assert out.count("HubSpot could not verify the token yet: VerifyFailed: HubSpot token info failed: HTTP 503") == 1
    assert ("verified and published; previous token kept until 2026-03-08T12:00:00Z (in 7d); restart progress: "
            "1/2 complete (Deployment/web Complete, Deployment/worker Waiting)") in out
    assert api.polls == 5


def test_wait_stale_published_does_not_end_the_wait_and_rejected_exits_2():
    api = FakeAPI(private_app(status=published("7")), secrets={"crm-pat": {"token": "x"}})
    rejected = lambda v: {  # noqa: E731
        "tokenFingerprint": "abcd1234",
        "privateApp": {"sourceVersion": v, "lastOutcome": "Rejected", "lastOutcomeReason": "HubMismatch"},
        "conditions": [{"type": "RotationAccepted", "status": "False", "reason": "HubMismatch",
                        "message": "the token is for hub 1, but spec.hubId pins hub 2; the current token stays published"}],
    }
    api.operator = operator_script(lambda v: published("7"), lambda v: published("7"), rejected)
    rc, out, err = run(api, "rotate", "crm", stdin=TOKEN)
    assert rc == 2, out + err
    assert ("rejected: HubMismatch: the token is for hub 1, but spec.hubId pins hub 2; "
            "the previous token is still published") in out
    assert "verified and published" not in out


def test_wait_accepts_a_later_source_version():
    api = FakeAPI(private_app(), secrets={"crm-pat": {"token": "x"}})
    api.operator = operator_script(lambda v: published(str(int(v) + 5), previous_until=None))
    rc, out, _ = run(api, "rotate", "crm", stdin=TOKEN)
    assert rc == 0 and "changed again after this write" in out
    assert "no previous token was published" in out


def test_wait_times_out_with_exit_3_quickly():
    api = FakeAPI(private_app(status=published("7")), secrets={"crm-pat": {"token": "x"}})
    api.operator = operator_script(lambda v: published("7"))
    rc, out, err = run(api, "rotate", "crm", "--timeout", "2s", stdin=TOKEN)
    assert rc == 3
    assert "timed out after 2s" in err and "has not evaluated this write yet" in err
    assert run.clock.slept == pytest.approx(2.0)
    assert api.polls == 5  # every 0.5 s


def test_wait_survives_transient_api_errors():
    api = FakeAPI(private_app(), secrets={"crm-pat": {"token": "x"}})
    real_get = api.get_token
    failures = iter([False, True, True])  # the read before writing succeeds

    def flaky(namespace, name):
        if next(failures, False):
            raise ApiError(503, "HTTP 503 Service Unavailable")
        return real_get(namespace, name)

    api.get_token = flaky
    api.operator = operator_script(lambda v: published(v))
    rc, out, err = run(api, "rotate", "crm", stdin=TOKEN)
    assert rc == 0, err
    assert err.count("HTTP 503") == 1


def test_version_reached():
    assert version_reached("12", "12") and version_reached(13, "12")
    assert not version_reached("11", "12") and not version_reached(None, "12") and not version_reached("x", "12")


# ---- refresh -----------------------------------------------------------------------------------------


def test_refresh_one_sets_the_annotation():
    api = FakeAPI(oauth("app"), oauth("other"))
    rc, out, _ = run(api, "refresh", "app", "-n", NS)
    assert rc == 0
    (_, ns, name, patch), = api.writes("patch_token")
    assert (ns, name) == (NS, "app")
    assert patch == {"metadata": {"annotations": {REFRESH_ANNOTATION: "2026-03-01T12:00:00.000Z"}}}
    assert "hubspottoken/app refresh requested" in out


def test_refresh_all_and_selector():
    labelled = oauth("b")
    labelled["metadata"]["labels"] = {"team": "crm"}
    api = FakeAPI(oauth("a"), labelled, private_app("pa"))
    rc, out, _ = run(api, "refresh", "--all")
    assert rc == 0
    assert sorted(c[2] for c in api.writes("patch_token")) == ["a", "b"]
    assert "hubspottoken/pa skipped" in out

    api.calls.clear()
    rc, out, _ = run(api, "refresh", "-l", "team=crm")
    assert rc == 0 and [c[2] for c in api.writes("patch_token")] == ["b"]
    assert ("list_tokens", NS, "team=crm") in api.calls


def test_refresh_needs_exactly_one_target_and_refuses_private_apps():
    api = FakeAPI(oauth("a"), private_app("pa"))
    assert run(api, "refresh")[0] == 1
    assert run(api, "refresh", "a", "--all")[0] == 1
    rc, _, err = run(api, "refresh", "pa")
    assert rc == 1 and "rotate" in err
    assert not api.writes("patch_token")


def test_refresh_wait():
    api = FakeAPI(oauth("a"))
    api.operator_after_write = False

    def handle(fake, obj, n):
        if n >= 3:
            obj["status"] = {"lastRefreshRequest": obj["metadata"]["annotations"][REFRESH_ANNOTATION],
                             "expiresAt": "2026-03-01T12:30:00Z"}
    api.operator = handle
    rc, out, _ = run(api, "refresh", "a", "--wait")
    assert rc == 0
    assert "hubspottoken/a refreshed; access token valid until 2026-03-01T12:30:00Z (in 30m)" in out


def test_refresh_wait_failure_and_timeout():
    api = FakeAPI(oauth("a"))
    api.operator_after_write = False

    def fail(fake, obj, n):
        if n == 1:
            return  # the read before the annotation is written
        obj["status"] = {"lastRefreshRequest": obj["metadata"]["annotations"][REFRESH_ANNOTATION],
                         "lastFailureReason": "invalid_grant",
                         "conditions": [{"type": "Ready", "status": "False", "reason": "ReauthRequired",
                                         "message": "HubSpot rejected the refresh token"}]}
    api.operator = fail
    rc, out, _ = run(api, "refresh", "a", "--wait")
    assert rc == 2 and "refresh failed: invalid_grant: HubSpot rejected the refresh token" in out

    api.operator = lambda fake, obj, n: None
    rc, _, err = run(api, "refresh", "a", "--wait", "--timeout", "1s")
    assert rc == 3 and "did not handle the refresh request within 1s" in err


def test_refresh_annotation_matches_the_operator():
    from hubspot_token_operator.oauth_flow import REFRESH_REQUEST_ANNOTATION

    assert REFRESH_ANNOTATION == REFRESH_REQUEST_ANNOTATION


# ---- status ------------------------------------------------------------------------------------------


def test_status_shows_conditions_fields_rollout_and_last_events():
    status = published("42", rollout={"targets": [
        {"kind": "Deployment", "name": "web", "revision": "2-abcd1234", "state": "Progressing",
         "replicas": 3, "updatedReplicas": 1, "availableReplicas": 3}]})
    status["hubId"] = 62515
    status["privateApp"].update(publishedAt="2026-03-01T11:00:00Z", lastVerifiedAt="2026-03-01T11:30:00Z",
                                nextVerifyAt="2026-03-01T12:30:00Z")
    status["conditions"].append({"type": "PreviousTokenRetirable", "status": "False", "reason": "ConsumersRestarting",
                                 "message": "workloads may still use the previous token"})
    events = [
        {"involvedObject": {"name": "crm", "uid": "uid-crm"}, "type": "Normal", "reason": f"R{i:02d}",
         "message": f"event {i}", "lastTimestamp": f"2026-03-01T10:{i:02d}:00Z"}
        for i in range(12)
    ] + [{"involvedObject": {"name": "crm", "uid": "old-uid"}, "type": "Warning", "reason": "Stale",
          "message": "from a deleted object", "lastTimestamp": "2026-03-01T11:59:00Z"}]
    api = FakeAPI(private_app(status=status), events=events[::-1])
    api.secret_reads_forbidden = True
    rc, out, _ = run(api, "status", "crm")
    assert rc == 0
    assert "Type:        PrivateApp" in out
    assert "Ready:       True (TokenPublished): verified token published" in out
    assert "RotationAccepted" in out and "PreviousTokenRetirable  False  ConsumersRestarting" in out
    assert "Hub:         62515" in out
    assert "Previous until:    2026-03-08T12:00:00Z (in 7d)" in out
    assert "Next verify:       2026-03-01T12:30:00Z (in 30m)" in out
    assert "Deployment/web  Progressing  revision 2-abcd1234  1/3 updated, 3 available" in out
    assert "Events (last 10 of 12):" in out
    assert "R01" not in out and "R02" in out and "R11" in out and "Stale" not in out
    assert out.index("R02") < out.index("R11")  # oldest first


def test_status_oauth_fields_and_namespace_defaults():
    st = {"expiresAt": "2026-03-01T12:30:00Z", "nextRefreshAt": "2026-03-01T12:20:00Z",
          "conditions": [{"type": "Ready", "status": "False", "reason": "RefreshFailing", "message": "no valid token"},
                         {"type": "Degraded", "status": "True", "reason": "http_503", "message": "attempt 2 failed"}]}
    api = FakeAPI(oauth("app", status=st))
    rc, out, _ = run(api, "status", "app")  # namespace from the kubeconfig context (fake: team-a)
    assert rc == 0
    assert "Ready:       False (RefreshFailing): no valid token" in out
    assert "Degraded  True  http_503" in out
    assert "Expires at:        2026-03-01T12:30:00Z (in 30m)" in out and "Events:      none" in out
    assert ("get_token", NS, "app") in api.calls

    api.namespace = None
    rc, _, err = run(api, "status", "app")
    assert rc == 1 and "not found in namespace 'default'" in err
    rc, _, err = run(api, "status", "app", "-n", "elsewhere")
    assert "not found in namespace 'elsewhere'" in err


# ---- the real KubeAPI, without a cluster ------------------------------------------------------------


def test_kube_api_takes_namespace_from_the_kubeconfig_context(tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: dummy}}]
contexts:
- {name: one, context: {cluster: c, user: u, namespace: team-x}}
- {name: two, context: {cluster: c, user: u}}
current-context: one
"""
    )
    assert KubeAPI.from_kubeconfig(str(kubeconfig)).default_namespace() == "team-x"
    assert KubeAPI.from_kubeconfig(str(kubeconfig), "two").default_namespace() is None
    rc, _, err = run(None, "status", "x", "--kubeconfig", str(tmp_path / "missing"))
    assert rc == 1 and "cannot load kubeconfig" in err


def test_api_errors_keep_only_status_and_message():
    from kubernetes.client import ApiException

    e = ApiException(status=403, reason="Forbidden")
    e.body = '{"kind":"Status","message":"secrets \\"crm-pat\\" is forbidden: User \\"bob\\" cannot update"}'
    assert _status_message(e) == 'HTTP 403 Forbidden: secrets "crm-pat" is forbidden: User "bob" cannot update'


def test_console_script_refuses_a_token_argument():
    script = Path(sys.executable).parent / "kubectl-hubspot"
    assert script.exists(), "the package (and its console scripts) must be installed: make venv"
    res = subprocess.run([str(script), "rotate", "crm", TOKEN], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "never accepted on the command line" in res.stderr
    assert TOKEN not in res.stdout + res.stderr


def test_kube_api_requests_against_a_stub_api_server(tmp_path):
    """The real KubeAPI, talking HTTP to a tiny stub: a guarded PUT of the Secret and a merge PATCH."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str, str, str, dict | None]] = []
    token_obj = private_app()
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": {"token": "eA=="},
              "metadata": {"name": "crm-pat", "namespace": NS, "resourceVersion": "41",
                           "managedFields": [{"manager": "kubectl", "operation": "Update"}]}}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _reply(self, code, body):
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            seen.append((self.command, self.path, self.headers.get("Content-Type", ""), body))
            base = f"/apis/hubspot-operator.dev/v1alpha1/namespaces/{NS}/hubspottokens"
            if self.path.startswith(f"{base}/crm"):
                return self._reply(200, token_obj)
            if self.path.startswith(f"/api/v1/namespaces/{NS}/secrets/crm-pat"):
                if self.command == "PUT":
                    return self._reply(200, {**body, "metadata": {**body["metadata"], "resourceVersion": "42"}})
                return self._reply(200, secret)
            if self.path.startswith(f"/api/v1/namespaces/{NS}/events"):
                return self._reply(200, {"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": []})
            return self._reply(404, {"kind": "Status", "code": 404, "message": "not found"})

        do_GET = do_PUT = do_PATCH = do_POST = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        kubeconfig = tmp_path / "config"
        kubeconfig.write_text(f"""
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{server.server_address[1]}"}}}}]
users: [{{name: u, user: {{token: dummy}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u, namespace: {NS}}}}}]
current-context: c
""")
        out, err = io.StringIO(), io.StringIO()
        rc = main(["rotate", "crm", "--kubeconfig", str(kubeconfig), "--no-wait"], stdin=io.StringIO(TOKEN),
                  stdout=out, stderr=err)
        assert rc == 0, err.getvalue()
        assert "resourceVersion 42" in out.getvalue() and TOKEN not in out.getvalue() + err.getvalue()
        put = next(s for s in seen if s[0] == "PUT")
        assert put[1].startswith(f"/api/v1/namespaces/{NS}/secrets/crm-pat")
        assert put[3]["metadata"]["resourceVersion"] == "41" and "managedFields" not in put[3]["metadata"]
        assert base64.b64decode(put[3]["data"]["token"]).decode() == TOKEN

        rc = main(["refresh", "crm", "--kubeconfig", str(kubeconfig)], stdout=io.StringIO(), stderr=err)
        assert rc == 1  # crm is a PrivateApp token: nothing is patched
        token_obj["spec"]["type"] = "OAuth"
        rc = main(["refresh", "crm", "--kubeconfig", str(kubeconfig)], stdout=io.StringIO(), stderr=err,
                  now=lambda: NOW)
        assert rc == 0, err.getvalue()
        patch = next(s for s in seen if s[0] == "PATCH")
        assert patch[2] == "application/merge-patch+json"
        assert patch[3] == {"metadata": {"annotations": {REFRESH_ANNOTATION: "2026-03-01T12:00:00.000Z"}}}

        rc = main(["status", "crm", "--kubeconfig", str(kubeconfig)], stdout=io.StringIO(), stderr=err)
        assert rc == 0
        events = next(s for s in seen if "/events" in s[1])
        assert "fieldSelector=involvedObject.kind%3DHubSpotToken%2CinvolvedObject.name%3Dcrm" in events[1]
    finally:
        server.shutdown()
        server.server_close()
