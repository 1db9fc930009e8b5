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
        self.deployments: list[dict] = []
        self.crd: dict | None = crd_object()
        self.denied: set[tuple] = set()  # (verb, resource) the access reviews deny
        self.fail: dict[str, Exception] = {}  # method name -> the error it raises
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
        if "list_tokens" in self.fail:
            raise self.fail["list_tokens"]
        out = [copy.deepcopy(t) for (ns, _), t in sorted(self.tokens.items()) if namespace in (None, ns)]
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

    def list_deployments(self, namespace, label_selector):
        self.calls.append(("list_deployments", namespace, label_selector))
        if "list_deployments" in self.fail:
            raise self.fail["list_deployments"]
        k, v = label_selector.split("=")
        return [copy.deepcopy(d) for d in self.deployments if namespace in (None, d["metadata"]["namespace"])
                and d["metadata"].get("labels", {}).get(k) == v]

    def get_crd(self, name):
        if "get_crd" in self.fail:
            raise self.fail["get_crd"]
        if self.crd is None:
            raise NotFound(404, f'customresourcedefinitions.apiextensions.k8s.io "{name}" not found')
        return copy.deepcopy(self.crd)

    def access_review(self, namespace, verb, resource, group=""):
        self.calls.append(("access_review", namespace, verb, resource, group))
        return {"allowed": (verb, resource) not in self.denied}

    def server_version(self):
        return "v1.32.4"


def crd_object(established="True", served=("v1alpha1",)) -> dict:
    return {"metadata": {"name": "hubspottokens.hubspot-operator.dev"},
            "spec": {"versions": [{"name": v, "served": True, "storage": i == 0} for i, v in enumerate(served)]},
            "status": {"conditions": [{"type": "Established", "status": established}]}}


def operator_deployment(ns="hto-system", name="hto", ready=1, replicas=1, tag="0.1.0", labels=None) -> dict:
    return {"metadata": {"namespace": ns, "name": name, "labels": labels or {
                "app.kubernetes.io/name": "hubspot-token-operator", "app.kubernetes.io/version": tag}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "sidecar", "image": "busybox:1"},
                {"name": "operator", "image": f"ghcr.io/example/hubspot-token-operator:{tag}"}]}}},
            "status": {"readyReplicas": ready}}


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


# ---- list (status without NAME), -A, -l, -o json|yaml -------------------------------------------------

import json  # noqa: E402

import yaml  # noqa: E402

from hubspot_token_operator.kubectl_plugin import api as plugin_api  # noqa: E402
from hubspot_token_operator.kubectl_plugin import completion, inspect, operator_info, output  # noqa: E402
from hubspot_token_operator.kubectl_plugin.check import crd_verdict  # noqa: E402
from hubspot_token_operator.kubectl_plugin.status import list_table, next_step, summary  # noqa: E402


def fleet() -> FakeAPI:
    ready = {"type": "Ready", "status": "True", "reason": "TokenPublished", "message": "published"}
    app = oauth("app", status={"expiresAt": "2026-03-01T12:30:00Z", "nextRefreshAt": "2026-03-01T12:20:00Z",
                               "conditions": [ready]})
    app["metadata"].update(labels={"team": "crm"}, creationTimestamp="2026-02-28T12:00:00Z")
    pa = private_app("crm", status={"conditions": [{"type": "Ready", "status": "False", "reason": "RotationRejected"}],
                                    "privateApp": {"lastOutcome": "Rejected", "lastOutcomeReason": "HubMismatch",
                                                   "nextVerifyAt": "2026-03-01T13:00:00Z"}})
    pa["metadata"]["creationTimestamp"] = "2026-03-01T11:55:00Z"
    other = oauth("far")
    other["metadata"]["namespace"] = "team-b"
    return FakeAPI(app, pa, other)


def test_status_without_name_lists_the_namespace_as_an_aligned_table():
    api = fleet()
    for argv in (["status"], ["list"]):
        rc, out, err = run(api, *argv)
        assert rc == 0, err
        lines = out.splitlines()
        assert lines[0].split() == ["NAME", "TYPE", "READY", "REASON", "EXPIRES", "NEXT", "AGE"]
        assert lines[1].split()[:4] == ["app", "OAuth", "True", "TokenPublished"]
        assert "in 30m" in lines[1] and "refresh in 20m" in lines[1] and lines[1].endswith("1d")
        assert "Rejected (HubMismatch), verify in 1h" in lines[2] and lines[2].endswith("5m")
        assert "far" not in out  # another namespace
        # aligned: every column starts at the same offset on every line
        assert len({line.index(word) for line, word in zip(lines, ["TYPE", "OAuth", "PrivateApp"])}) == 1
        assert "\x1b[" not in out  # not a terminal: no colour
    assert ("list_tokens", NS, None) in api.calls


def test_list_all_namespaces_and_selector_reach_the_api():
    api = fleet()
    rc, out, _ = run(api, "status", "-A")
    assert rc == 0 and out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == ["team-b", "far"] for line in out.splitlines())
    assert ("list_tokens", None, None) in api.calls
    rc, out, _ = run(api, "list", "-l", "team=crm")
    assert rc == 0 and ("list_tokens", NS, "team=crm") in api.calls
    assert "app" in out and "crm" not in out.split("\n", 1)[1].replace("team=crm", "")
    rc, out, _ = run(api, "status", "-l", "team=none")
    assert rc == 0 and "No hubspottokens matching 'team=none' found in namespace team-a." in out
    rc, _, err = run(api, "status", "app", "-A")
    assert rc == 1 and "without NAME" in err


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_list_machine_output_shape(fmt):
    rc, out, err = run(fleet(), "status", "-A", "-o", fmt)
    assert rc == 0, err
    doc = json.loads(out) if fmt == "json" else yaml.safe_load(out)
    assert doc["apiVersion"] == output.DOC_API_VERSION and doc["kind"] == "TokenList"
    assert doc["namespace"] is None and doc["selector"] is None
    by_name = {i["name"]: i for i in doc["items"]}
    assert set(by_name) == {"app", "crm", "far"}
    assert set(by_name["app"]) == {"namespace", "name", "type", "ready", "reason", "message", "suspended", "target",
                                   "hubId", "expiresAt", "nextRefreshAt", "lastRefreshTime", "rotation",
                                   "creationTimestamp"}
    assert by_name["app"]["expiresAt"] == "2026-03-01T12:30:00Z" and by_name["app"]["rotation"] is None
    assert by_name["crm"]["rotation"]["lastOutcomeReason"] == "HubMismatch" and by_name["crm"]["ready"] == "False"
    assert by_name["far"]["ready"] == "Unknown"


def test_status_name_machine_output_has_conditions_and_events():
    events = [{"involvedObject": {"name": "app", "uid": "uid-app"}, "type": "Normal", "reason": "Refreshed",
               "message": "ok", "lastTimestamp": "2026-03-01T11:00:00Z"}]
    api = fleet()
    api.events = events
    rc, out, err = run(api, "status", "app", "-o", "json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["kind"] == "TokenStatus" and doc["name"] == "app" and doc["conditions"][0]["type"] == "Ready"
    assert doc["events"] == [{"time": "2026-03-01T11:00:00Z", "type": "Normal", "reason": "Refreshed", "count": 1,
                              "message": "ok"}]
    assert doc["rollout"]["summary"] == "no restart targets" and doc["failures"]["count"] == 0


def test_colour_only_on_a_terminal_without_no_color():
    class TTY(io.StringIO):
        def isatty(self):
            return True

    assert output.use_color(TTY(), {}) and not output.use_color(TTY(), {"NO_COLOR": ""})
    assert not output.use_color(io.StringIO(), {})
    lines = output.table(["A", "READY"], [["x", "True"], ["longer", "False"]], color=True)
    assert "\x1b[32mTrue\x1b[0m" in lines[1] and "\x1b[31mFalse\x1b[0m" in lines[2]
    plain = [output._ANSI.sub("", line) for line in lines]
    assert plain == output.table(["A", "READY"], [["x", "True"], ["longer", "False"]])
    assert plain[1].index("True") == plain[0].index("READY")

    out, err = TTY(), io.StringIO()
    assert main(["list"], api=fleet(), stdout=out, stderr=err, now=lambda: NOW, environ={}) == 0
    assert "\x1b[32mTrue" in out.getvalue()
    out = TTY()
    main(["list"], api=fleet(), stdout=out, stderr=err, now=lambda: NOW, environ={"NO_COLOR": "1"})
    assert "\x1b[" not in out.getvalue()
    out = TTY()
    main(["list", "-o", "json"], api=fleet(), stdout=out, stderr=err, now=lambda: NOW, environ={})
    assert "\x1b[" not in out.getvalue() and json.loads(out.getvalue())["kind"] == "TokenList"


def test_next_step_and_relative_times():
    item = summary(oauth("x", status={"nextRefreshAt": "2026-03-01T11:59:00Z"}))
    assert next_step(item, NOW) == "refresh 1m ago"
    assert next_step({**item, "suspended": True}, NOW) == "suspended"
    assert next_step(summary(private_app(status={"privateApp": {"lastOutcome": "Published",
                                                                 "lastOutcomeReason": "Verified"}})), NOW) == "Published"
    assert list_table([], NOW) == ["NAME  TYPE  READY  REASON  EXPIRES  NEXT  AGE"]


# ---- errors that say what to do --------------------------------------------------------------------------


def test_no_such_token_names_it_and_suggests_listing():
    rc, _, err = run(FakeAPI(), "status", "nope", "-n", "team-z")
    assert rc == 1
    assert "hubspottoken 'nope' not found in namespace 'team-z'" in err and "kubectl hubspot status -n team-z" in err
    rc, out, err = run(FakeAPI(), "status", "nope", "-o", "json")
    assert rc == 1 and json.loads(out) == {"apiVersion": output.DOC_API_VERSION, "kind": "Error",
                                            "reason": "NotFound", "message": err.strip().removeprefix("error: ")}


# Bodies as kube-apiserver 1.32 sends them (captured from the local control plane).
FORBIDDEN_BODY = json.dumps({
    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
    "message": 'hubspottokens.hubspot-operator.dev is forbidden: User "system:serviceaccount:t-1:nobody" cannot '
               'list resource "hubspottokens" in API group "hubspot-operator.dev" in the namespace "t-1"',
    "details": {"group": "hubspot-operator.dev", "kind": "hubspottokens"}})
CLUSTER_FORBIDDEN = ('deployments.apps is forbidden: User "bob" cannot list resource "deployments" in API group '
                     '"apps" at the cluster scope')
TYPE_404_BODY = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": "the server could not find the requested resource", "reason": "NotFound",
                            "details": {}, "code": 404})
OBJECT_404_BODY = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": 'hubspottokens.hubspot-operator.dev "x" not found', "reason": "NotFound",
                              "details": {"name": "x", "group": "hubspot-operator.dev", "kind": "hubspottokens"},
                              "code": 404})


def test_forbidden_names_verb_resource_namespace_and_user():
    e = plugin_api.classify(403, FORBIDDEN_BODY, "HTTP 403 Forbidden: " + json.loads(FORBIDDEN_BODY)["message"],
                            ("list", "hubspottokens.hubspot-operator.dev", "t-1", True))
    assert isinstance(e, plugin_api.Forbidden) and e.reason == "Forbidden"
    assert (e.verb, e.resource, e.namespace, e.user) == ("list", "hubspottokens.hubspot-operator.dev", "t-1",
                                                         "system:serviceaccount:t-1:nobody")
    assert str(e).startswith('permission denied: user "system:serviceaccount:t-1:nobody" cannot list '
                             "hubspottokens.hubspot-operator.dev in namespace t-1")
    assert "kubectl hubspot check -n t-1" in str(e)
    e = plugin_api.classify(403, None, "HTTP 403 Forbidden: " + CLUSTER_FORBIDDEN, ("list", "deployments.apps", None, False))
    assert "cannot list deployments.apps across all namespaces" in str(e) and e.namespace is None
    # a message in an unknown shape: the request itself still names what was refused
    e = plugin_api.classify(403, None, "HTTP 403 Forbidden", ("update", "secrets", "team-a", False))
    assert "you cannot update secrets in namespace team-a" in str(e)


def test_crd_missing_is_told_apart_from_a_missing_object():
    e = plugin_api.classify(404, TYPE_404_BODY, "HTTP 404 Not Found", ("get", "hubspottokens", "t", True))
    assert isinstance(e, plugin_api.CRDMissing) and e.reason == "CRDMissing"
    assert str(e) == ("CRD hubspottokens.hubspot-operator.dev is not installed: kubectl apply -f crds/ or install "
                      "the chart")
    e = plugin_api.classify(404, OBJECT_404_BODY, "HTTP 404 Not Found", ("get", "hubspottokens", "t", True))
    assert isinstance(e, NotFound) and not isinstance(e, plugin_api.CRDMissing)
    # Secrets are core: a 404 there is never "CRD missing"
    e = plugin_api.classify(404, TYPE_404_BODY, "HTTP 404", ("get", "secrets", "t", False))
    assert type(e) is NotFound
    api = FakeAPI()
    api.fail["list_tokens"] = plugin_api.CRDMissing()
    rc, out, err = run(api, "list", "-o", "yaml")
    assert rc == 1 and "kubectl apply -f crds/ or install the chart" in err
    assert yaml.safe_load(out)["reason"] == "CRDMissing"


def test_no_operator_is_warned_before_waiting_and_named_on_timeout():
    api = FakeAPI(oauth("app"))
    rc, out, err = run(api, "refresh", "app", "--wait", "--timeout", "2s")
    assert rc == 3
    assert "warning: no hubspot-token-operator Deployment found in any namespace" in err
    assert "no running operator seen" in err
    assert ("list_deployments", None, operator_info.DEFAULT_SELECTOR) in api.calls
    api.deployments = [operator_deployment(ready=0)]
    rc, _, err = run(api, "refresh", "app", "--wait", "--timeout", "1s")
    assert "has no ready replica: hto-system/hto (0/1 ready)" in err
    api.deployments = [operator_deployment()]
    rc, _, err = run(api, "refresh", "app", "--wait", "--timeout", "1s", "--operator-namespace", "hto-system")
    assert rc == 3 and "no running operator" not in err and "warning" not in err
    assert ("list_deployments", "hto-system", operator_info.DEFAULT_SELECTOR) in api.calls
    api.fail["list_deployments"] = plugin_api.forbidden("", "list", "deployments.apps", None)
    rc, _, err = run(api, "refresh", "app", "--wait", "--timeout", "1s")
    assert "could not look for the operator Deployment: permission denied" in err
    # no wait, no lookup
    api.calls.clear()
    run(api, "refresh", "app")
    assert not [c for c in api.calls if c[0] == "list_deployments"]


def test_rotate_machine_output_and_no_operator_warning():
    api = FakeAPI(private_app())
    api.operator = operator_script(lambda v: published(v))
    rc, out, err = run(api, "rotate", "crm", "-o", "json", stdin=TOKEN)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["kind"] == "RotateResult" and doc["outcome"] == "Published" and doc["write"] == "created"
    assert doc["secret"] == "crm-pat" and doc["key"] == "token" and doc["previousUntil"] == "2026-03-08T12:00:00Z"
    assert "no hubspot-token-operator Deployment found" in err  # stdout is only the document
    assert "verified and published" in err


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_refresh_machine_output(fmt):
    api = FakeAPI(oauth("app"), private_app("pa"))
    rc, out, err = run(api, "refresh", "--all", "-o", fmt)
    assert rc == 0, err
    doc = json.loads(out) if fmt == "json" else yaml.safe_load(out)
    assert doc["kind"] == "RefreshResult" and doc["requestedAt"] == "2026-03-01T12:00:00.000Z"
    assert {t["name"]: t["outcome"] for t in doc["tokens"]} == {"app": "Requested", "pa": "Skipped"}
    assert "refresh requested" in err


# ---- version and check -----------------------------------------------------------------------------------


def test_image_tags():
    assert operator_info.image_tag("ghcr.io/x/op:0.1.0") == "0.1.0"
    assert operator_info.image_tag("registry:5000/op") is None
    assert operator_info.image_tag("registry:5000/op:1.2") == "1.2"
    assert operator_info.image_tag("op@sha256:abcd") == "sha256:abcd"
    assert operator_info.image_tag(None) is None


def test_version_without_and_with_an_operator():
    api = FakeAPI()
    rc, out, _ = run(api, "version")
    assert rc == 0
    assert "kubectl-hubspot 0.1.0" in out and "v1.32.4" in out
    assert "Operator:    none found in any namespace (no Deployment labelled app.kubernetes.io/name=" in out
    api.deployments = [operator_deployment(tag="0.2.0", ready=2, replicas=2)]
    rc, out, _ = run(api, "version")
    assert "deployment/hto in namespace hto-system: image tag 0.2.0, version 0.2.0, 2/2 ready" in out
    rc, out, _ = run(api, "version", "-o", "json")
    doc = json.loads(out)
    assert doc["kind"] == "Version" and doc["plugin"] == {"version": "0.1.0"}
    assert doc["operator"]["found"] and doc["operator"]["deployments"][0] == {
        "namespace": "hto-system", "name": "hto", "image": "ghcr.io/example/hubspot-token-operator:0.2.0",
        "imageTag": "0.2.0", "version": "0.2.0", "replicas": 2, "readyReplicas": 2, "ready": True}
    api.fail["list_deployments"] = plugin_api.forbidden("", "list", "deployments.apps", None)
    rc, out, _ = run(api, "version")
    assert rc == 0 and "Operator:    unknown: permission denied" in out and "0.1.0" in out


def test_check_passes_and_fails_with_what_to_do():
    api = FakeAPI()
    api.deployments = [operator_deployment()]
    rc, out, err = run(api, "check")
    assert rc == 0, out + err
    assert out.splitlines()[0].startswith("OK    crd: CRD hubspottokens.hubspot-operator.dev is Established")
    assert f"OK    rbac patch hubspottokens.hubspot-operator.dev in namespace {NS}: allowed (needed by refresh)" in out
    assert out.splitlines()[-1] == "all 10 checks passed"
    reviews = {c[2:4] for c in api.calls if c[0] == "access_review"}
    assert reviews == {("get", "hubspottokens"), ("list", "hubspottokens"), ("patch", "hubspottokens"),
                       ("list", "events"), ("get", "secrets"), ("create", "secrets"), ("update", "secrets"),
                       ("list", "deployments")}

    api.deployments, api.crd = [], None
    api.denied = {("update", "secrets")}
    rc, out, _ = run(api, "check", "-o", "json")
    assert rc == 1
    doc = json.loads(out)
    assert doc["kind"] == "CheckResult" and doc["ok"] is False
    failed = {c["name"]: c for c in doc["checks"] if not c["ok"]}
    assert set(failed) == {"crd", "operator", f"rbac update secrets in namespace {NS}"}
    assert failed["crd"]["fix"] == "kubectl apply -f crds/ or install the chart"
    assert "granting 'update' on secrets in namespace team-a" in failed[f"rbac update secrets in namespace {NS}"]["fix"]


def test_check_crd_when_the_crd_cannot_be_read():
    api = FakeAPI()
    api.fail["get_crd"] = plugin_api.forbidden("", "get", "customresourcedefinitions.apiextensions.k8s.io", None)
    rc, out, _ = run(api, "check")
    assert "OK    crd: hubspottokens.hubspot-operator.dev/v1alpha1 is served" in out
    api.fail["list_tokens"] = plugin_api.CRDMissing()
    rc, out, _ = run(api, "check")
    assert rc == 1 and "FAIL  crd: CRD hubspottokens.hubspot-operator.dev is not installed" in out
    assert "-> kubectl apply -f crds/ or install the chart" in out


def test_crd_verdict():
    assert crd_verdict(crd_object()).ok
    assert not crd_verdict(crd_object(established="False")).ok
    v = crd_verdict(crd_object(served=("v1beta1",)))
    assert not v.ok and "serves v1beta1, not v1alpha1" in v.message


# ---- inspect secret ----------------------------------------------------------------------------------------


def target_secret(owner_uid="uid-app", **md) -> dict:
    values = {"access_token": TOKEN, "expires_at": "2026-03-01T12:30:00Z", "hub_id": "62515"}
    return {"metadata": {"name": "app-out", "namespace": NS, "resourceVersion": "5",
                         "labels": {"app.kubernetes.io/managed-by": "hubspot-token-operator",
                                    "hubspot-operator.dev/token": "app"},
                         "annotations": {"hubspot-operator.dev/created-for": owner_uid,
                                         "hubspot-operator.dev/published":
                                             f"{owner_uid} fp0123456789abcd 2026-03-01T12:00:00Z 2026-03-01T12:30:00Z "
                                             "3-fp01 3-fp01 seal0123"}, **md},
            "type": "Opaque", "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


def with_secret(api: FakeAPI, secret: dict) -> FakeAPI:
    api.secrets[(NS, secret["metadata"]["name"])] = secret
    return api


def test_inspect_secret_by_key_never_the_value():
    import hashlib

    app = oauth("app", status={"tokenFingerprint": "fp0123456789abcd"})
    api = with_secret(FakeAPI(app), target_secret())
    rc, out, err = run(api, "inspect", "secret", "app-out")
    assert rc == 0, err
    assert "Owner:       hubspottoken/app (from annotation hubspot-operator.dev/created-for, verified)" in out
    assert "Expires:     2026-03-01T12:30:00Z (in 30m) (from key expires_at)" in out
    assert "matches status.tokenFingerprint" in out
    fp = "sha256:" + hashlib.sha256(TOKEN.encode()).hexdigest()[:12]
    row = next(line for line in out.splitlines() if line.strip().startswith("access_token"))
    assert row.split() == ["access_token", "token", str(len(TOKEN)), "B", fp]
    assert "62515" not in out  # not even the non-secret values
    rc, out, _ = run(api, "inspect", "secret", "app-out", "-o", "json")
    doc = json.loads(out)
    assert doc["kind"] == "SecretInspection" and doc["owner"]["verified"] is True
    assert doc["keys"][0] == {"key": "access_token", "role": "token", "size": len(TOKEN), "fingerprint": fp}
    assert doc["expiresAt"] == "2026-03-01T12:30:00Z" and doc["publishedRecord"]["matchesStatus"] is True
    assert TOKEN not in out and TOKEN_B64 not in out


def test_inspect_owner_variants():
    s = target_secret()
    s["metadata"]["ownerReferences"] = [{"kind": "HubSpotToken", "name": "app", "uid": "uid-app"}]
    assert inspect.owner_of(s) == {"hubspotToken": "app", "uid": "uid-app", "via": "ownerReference"}
    s = target_secret()
    del s["metadata"]["annotations"]["hubspot-operator.dev/created-for"]
    assert inspect.owner_of(s)["via"] == "label hubspot-operator.dev/token"
    assert inspect.owner_of({"metadata": {}}) == {"hubspotToken": None, "uid": None, "via": None}
    # recreated token with the same name: the Secret was written for the old one
    api = with_secret(FakeAPI(oauth("app")), target_secret(owner_uid="uid-old"))
    rc, out, _ = run(api, "inspect", "secret", "app-out")
    assert rc == 0 and "NOT verified" in out and "uid uid-old" in out
    # a Secret the operator did not write; a token that is gone
    api = with_secret(FakeAPI(), {"metadata": {"name": "plain", "namespace": NS}, "data": {"k": "eA=="}})
    rc, out, _ = run(api, "inspect", "secret", "plain")
    assert "Owner:       none: not written by the hubspot-token-operator" in out and "Expires:     -" in out
    api = with_secret(FakeAPI(), target_secret())
    rc, out, _ = run(api, "inspect", "secret", "app-out")
    assert rc == 0 and "hubspottoken app no longer exists" in out
    assert "(from key expires_at)" in out  # the default key names still apply


def test_inspect_missing_secret_and_expiry_from_the_annotation():
    rc, _, err = run(FakeAPI(), "inspect", "secret", "nope")
    assert rc == 1 and "Secret 'nope' not found in namespace 'team-a'" in err
    s = target_secret()
    del s["data"]["expires_at"]
    rc, out, _ = run(with_secret(FakeAPI(oauth("app")), s), "inspect", "secret", "app-out")
    assert "(from annotation hubspot-operator.dev/published)" in out
    rc, _, err = run(FakeAPI(), "inspect", "configmap", "x")
    assert rc == 1 and "invalid choice" in err


def test_inspect_constants_match_the_operator():
    from hubspot_token_operator import publish
    from hubspot_token_operator.model import TargetKeys

    assert (inspect.MANAGED_BY, inspect.MANAGER, inspect.TOKEN_LABEL, inspect.PUBLISHED, inspect.CREATED_FOR) == (
        publish.MANAGED_BY, publish.MANAGER, publish.TOKEN_LABEL, publish.PUBLISHED, publish.CREATED_FOR)
    keys = TargetKeys()
    assert inspect.DEFAULT_KEYS == {"token": keys.token, "previousToken": keys.previous_token,
                                    "expiresAt": keys.expires_at, "hubId": keys.hub_id}


def test_inspect_redacts_values_even_if_a_bug_printed_them():
    out = io.StringIO()
    from hubspot_token_operator.kubectl_plugin.common import Output

    o = Output(out, io.StringIO())
    api = with_secret(FakeAPI(oauth("app")), target_secret())

    class Args:
        name = "app-out"

    from hubspot_token_operator.kubectl_plugin.common import Ctx

    ctx = Ctx(api=api, out=o, namespace=NS, stdin=io.StringIO(), getpass=None, clock=None, sleep=None,
              now=lambda: NOW)
    assert inspect.run(ctx, Args()) == 0
    o.line(f"oops {TOKEN} {TOKEN_B64}")
    assert TOKEN not in out.getvalue() and TOKEN_B64 not in out.getvalue() and "oops [REDACTED] [REDACTED]" in out.getvalue()


# ---- completion ------------------------------------------------------------------------------------------


def complete(*words, names=("app", "crm")):
    from hubspot_token_operator.kubectl_plugin.cli import build_parser
    from hubspot_token_operator.kubectl_plugin.common import Output

    seen = []

    def fake_names(what, options):
        seen.append((what, options))
        return list(names) if what == "tokens" else ["app-out"]

    lines = completion.complete(list(words), build_parser(Output(io.StringIO(), io.StringIO())), fake_names)
    complete.seen = seen
    return lines


def test_completion_candidates():
    assert complete("") == ["rotate", "authorize", "status", "list", "refresh", "version", "check", "inspect", "completion", ":4"]
    assert complete("re") == ["refresh", ":4"]
    assert complete("status", "") == ["app", "crm", ":4"]
    assert complete("status", "-n", "team-b", "c") == ["crm", ":4"]
    assert complete.seen[-1][1]["-n"] == "team-b"
    assert complete("status", "app", "") == [":4"]
    assert "--all-namespaces" in complete("status", "--a") and "--selector" not in complete("status", "--a")
    assert complete("status", "-o", "") == ["json", "yaml", ":4"]
    assert complete("completion", "") == ["bash", "zsh", ":4"]
    assert complete("inspect", "") == ["secret", ":4"]
    assert complete("inspect", "secret", "") == ["app-out", ":4"]
    assert complete("rotate", "crm", "--from-file", "") == [":0"]  # file names
    assert complete("--kubeconfig", "") == [":0"]
    assert "--timeout" in complete("refresh", "--t")
    assert complete("__complete") == [":4"]  # hidden


def test_complete_subcommand_and_kubectl_hook_via_main(monkeypatch):
    out = io.StringIO()
    assert main(["__complete", "status", ""], api=fleet(), stdout=out, stderr=io.StringIO()) == 0
    assert out.getvalue().splitlines() == ["app", "crm", ":4"]
    from hubspot_token_operator.kubectl_plugin import cli

    seen = []
    monkeypatch.setattr(cli, "main", lambda argv: seen.append(argv) or 0)
    monkeypatch.setattr(sys, "argv", ["kubectl_complete-hubspot", "status", "a"])
    assert cli.complete_main() == 0 and seen == [["__complete", "status", "a"]]


def test_completion_scripts_and_pyproject_hook():
    out = io.StringIO()
    assert main(["completion", "bash"], stdout=out, stderr=io.StringIO()) == 0
    assert "complete -F _kubectl_hubspot kubectl-hubspot" in out.getvalue()
    out = io.StringIO()
    assert main(["completion", "zsh"], stdout=out, stderr=io.StringIO()) == 0
    assert out.getvalue().startswith("#compdef kubectl-hubspot") and "__complete" in out.getvalue()
    import tomllib

    scripts = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl_complete-hubspot"] == "hubspot_token_operator.kubectl_plugin:complete_main"


def test_bash_completion_script_runs_in_bash(tmp_path):
    """The bash script, sourced into a real bash, completes through a stand-in kubectl-hubspot."""
    import shutil

    bash = shutil.which("bash")
    assert bash, "bash is needed for this test"
    stub = tmp_path / "kubectl-hubspot"
    stub.write_text(f"#!{sys.executable}\nimport sys\nfrom hubspot_token_operator.kubectl_plugin.cli import main\n"
                    "from hubspot_token_operator.kubectl_plugin import completion\n"
                    "completion.api_names = lambda what, options: ['app', 'crm']\n"
                    "sys.exit(main(sys.argv[1:]))\n")
    stub.chmod(0o755)
    script = tmp_path / "c.bash"
    script.write_text(completion.BASH + f"""
COMP_WORDS=({stub} st); COMP_CWORD=1; _kubectl_hubspot; echo "1:${{COMPREPLY[*]}}"
COMP_WORDS=({stub} status c); COMP_CWORD=2; _kubectl_hubspot; echo "2:${{COMPREPLY[*]}}"
COMP_WORDS=({stub} status -o ''); COMP_CWORD=3; _kubectl_hubspot; echo "3:${{COMPREPLY[*]}}"
""")
    res = subprocess.run([bash, "--norc", str(script)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["1:status", "2:crm", "3:json yaml"]


# ---- krew manifest ------------------------------------------------------------------------------------------


def test_krew_manifest_is_a_plausible_plugin():
    manifest = yaml.safe_load((Path(__file__).parents[2] / "plugins" / "krew" / "hubspot.yaml").read_text())
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin" and manifest["metadata"]["name"] == "hubspot"
    spec = manifest["spec"]
    assert spec["version"].lstrip("v") == __import__("hubspot_token_operator").__version__
    assert spec["shortDescription"] and spec["homepage"].startswith("https://")
    import hashlib
    import importlib.util

    builder = Path(__file__).parents[2] / "plugins" / "krew" / "build_archive.py"
    mod_spec = importlib.util.spec_from_file_location("build_archive", builder)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    sha = hashlib.sha256(mod.archive_bytes()).hexdigest()
    assert sha == hashlib.sha256(mod.archive_bytes()).hexdigest()  # reproducible
    assert {(p["selector"]["matchLabels"]["os"], p["selector"]["matchLabels"]["arch"]) for p in spec["platforms"]} == {
        ("linux", "amd64"), ("linux", "arm64"), ("darwin", "amd64"), ("darwin", "arm64")}
    for p in spec["platforms"]:
        assert p["uri"].startswith("https://") and p["uri"].endswith("/" + mod.ARCHIVE)
        assert p["sha256"] == sha, "rebuild: python plugins/krew/build_archive.py, and update hubspot.yaml"
        assert p["bin"] == "kubectl-hubspot" and p["files"] == [{"from": "kubectl-hubspot", "to": "."}]


def test_krew_launcher_runs_the_plugin_or_says_how_to_install(tmp_path):
    launcher = Path(__file__).parents[2] / "plugins" / "krew" / "kubectl-hubspot"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECTL_HUBSPOT_PYTHON": sys.executable}
    res = subprocess.run([str(launcher), "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "kubectl-hubspot 0.1.0", res.stderr
    env["KUBECTL_HUBSPOT_PYTHON"] = str(tmp_path / "no-python")
    env["PATH"] = str(tmp_path)  # no python3 either
    res = subprocess.run(["/bin/sh", str(launcher), "version"], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 1 and "pipx install hubspot-token-operator" in res.stderr
