"""``kubectl hubspot authorize``: the pure decisions (install URL, redirect parsing, hub/scope checks, the
operator's verdict) and the whole command against the in-process HubSpot simulator with a fake Kubernetes API."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from hubspot_token_operator.kubectl_plugin import authorize as az
from hubspot_token_operator.simulator import SimControl

from .test_kubectl_plugin import NS, FakeAPI, FakeClock, TTYInput
from hubspot_token_operator.kubectl_plugin import main

HUB = 62515
STATE = "s-" + "x" * 30


# ---- install URL ---------------------------------------------------------------------------------------

def test_install_url_has_every_parameter_and_oauth_first_once():
    url = az.build_authorize_url("https://app.hubspot.com/oauth/authorize", "cid-1",
                                 ["crm.objects.contacts.read", "oauth", "crm.objects.contacts.read"],
                                 ["crm.objects.deals.read", "oauth"], "http://127.0.0.1:8765/callback", STATE)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "app.hubspot.com", "/oauth/authorize")
    assert "scope=oauth%20crm.objects.contacts.read&" in url  # spaces as %20, not '+'
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q == {"client_id": "cid-1", "scope": "oauth crm.objects.contacts.read",
                 "optional_scope": "crm.objects.deals.read", "redirect_uri": "http://127.0.0.1:8765/callback",
                 "state": STATE}


def test_install_url_without_required_scopes_still_asks_for_oauth_and_omits_empty_optional():
    q = parse_qs(urlsplit(az.build_authorize_url("https://x/oauth/authorize", "c", [], [], "http://h/cb", STATE)).query)
    assert q["scope"] == ["oauth"] and "optional_scope" not in q


# ---- redirect parsing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    f"http://127.0.0.1:8765/callback?code=abc-123&state={STATE}",
    f"  http://127.0.0.1:8765/callback?state={STATE}&code=abc-123\n",
    f"?code=abc-123&state={STATE}",
    f"code=abc-123&state={STATE}",
])
def test_redirect_yields_the_code(text):
    assert az.parse_redirect(text, STATE) == "abc-123"


@pytest.mark.parametrize("text", [
    "http://127.0.0.1:8765/callback?code=abc-123&state=other",
    "http://127.0.0.1:8765/callback?code=abc-123",
    f"http://127.0.0.1:8765/callback?code=abc-123&state={STATE}x",
])
def test_state_mismatch_is_refused_without_showing_the_code(text):
    with pytest.raises(az.StateMismatch) as e:
        az.parse_redirect(text, STATE)
    assert "abc-123" not in str(e.value) and "nothing was written" in str(e.value)
    assert e.value.reason == "StateMismatch"


def test_denied_consent_is_reported():
    with pytest.raises(az.AuthorizeError) as e:
        az.parse_redirect(f"http://h/cb?error=access_denied&error_description=no+thanks&state={STATE}", STATE)
    assert e.value.reason == "ConsentDenied" and "access_denied: no thanks" in str(e.value)


def test_an_error_redirect_with_a_foreign_state_is_a_state_mismatch():
    with pytest.raises(az.StateMismatch):
        az.parse_redirect("http://h/cb?error=access_denied&state=forged", STATE)


@pytest.mark.parametrize("text,reason", [
    ("", "NoRedirect"), ("   \n", "NoRedirect"), (f"http://h/cb?state={STATE}", "NoCode"),
    (f"http://h/cb?code=a b&state={STATE}", "NoRedirect"), ("x" * 9000, "NoRedirect"),
])
def test_unusable_input_is_refused(text, reason):
    with pytest.raises(az.AuthorizeError) as e:
        az.parse_redirect(text, STATE)
    assert e.value.reason == reason


# ---- hub and scope checks, endpoints -------------------------------------------------------------------

def test_refusal_names_both_hubs():
    reason, message = az.refusal(62515, [], 99, ["oauth"])
    assert reason == "HubMismatch" and "hub 99" in message and "hub 62515" in message


def test_refusal_lists_missing_scopes_and_accepts_a_fit():
    assert az.refusal(None, ["b", "a", "oauth"], 1, ["oauth"]) == (
        "ScopesMissing", "HubSpot granted the app without required scopes: a, b")
    assert az.refusal(7, ["a"], 7, ["oauth", "a", "extra"]) is None
    assert az.refusal(None, [], 123, []) is None


@pytest.mark.parametrize("uri,expected", [
    ("http://127.0.0.1:9999/callback", ("127.0.0.1", 9999, "/callback")),
    ("http://localhost:8765/cb", ("127.0.0.1", 8765, "/cb")),
    ("http://[::1]:8765/", ("::1", 8765, "/")),
    ("http://127.0.0.1/callback", None),
    ("https://127.0.0.1:8765/callback", None),
    ("https://app.example.com/oauth/callback", None),
])
def test_loopback_target(uri, expected):
    assert az.loopback_target(uri) == expected


def test_token_base_url_never_sends_the_client_secret_where_a_spec_author_points_alone():
    """A HubSpotToken's author must not be able to collect the client secret of whoever runs `authorize`."""
    with pytest.raises(az.AuthorizeError, match="not a HubSpot API host"):
        az.token_base_url("https://evil.example.com", None)
    with pytest.raises(az.AuthorizeError, match="not a HubSpot API host"):
        az.token_base_url("https://api.hubapi.com.evil.example.com", None)
    with pytest.raises(az.AuthorizeError, match="plain http"):
        az.token_base_url(None, "http://proxy.internal:8080")
    # the runner vouches for a non-HubSpot URL by naming it; loopback http is fine (the simulator)
    assert az.token_base_url("https://hubspot-proxy.internal", "https://hubspot-proxy.internal") == "https://hubspot-proxy.internal"
    assert az.token_base_url("http://localhost:9", "http://localhost:9") == "http://localhost:9"
    assert az.is_hubspot_api_host("https://api-eu1.hubapi.com") and not az.is_hubspot_api_host("http://api.hubapi.com")


def test_token_base_url_prefers_the_spec_and_refuses_a_contradicting_flag():
    assert az.token_base_url(None, None) == "https://api.hubapi.com"
    assert az.token_base_url(None, "http://127.0.0.1:1/") == "http://127.0.0.1:1"
    assert az.token_base_url("https://api-eu1.hubapi.com", None) == "https://api-eu1.hubapi.com"
    assert az.token_base_url("https://api-eu1.hubapi.com/", "https://api-eu1.hubapi.com") == "https://api-eu1.hubapi.com"
    with pytest.raises(az.AuthorizeError):
        az.token_base_url("https://api-eu1.hubapi.com", "https://api.hubapi.com")
    with pytest.raises(az.AuthorizeError):
        az.token_base_url(None, "ftp://x")


# ---- the operator's verdict ----------------------------------------------------------------------------

def _obj(grant=None, ready=None, reauth=None, reauth_for=None, refusal=None):
    conds = []
    if ready:
        conds.append({"type": "Ready", "status": ready[0], "reason": ready[1], "message": "m"})
    if reauth:
        conds.append({"type": "ReauthRequired", "status": reauth, "reason": "InvalidGrant", "message": "dead"})
    return {"status": {"grantFingerprint": grant, "reauthRequiredFor": reauth_for, "refusal": refusal,
                       "conditions": conds}}


def test_verdict_waits_until_the_new_grant_was_used():
    assert az.verdict(_obj(grant="old", ready=("True", "Refreshed")), "old") is None
    assert az.verdict(_obj(grant=None), None) is None
    assert az.verdict(_obj(grant="new", ready=("False", "RefreshFailed")), "old") is None  # retrying


def test_verdict_ready_and_rejections():
    assert az.verdict(_obj(grant="new", ready=("True", "Refreshed"), reauth="False"), "old")[0] == "Ready"
    assert az.verdict(_obj(grant="new", ready=("True", "Refreshed")), None)[0] == "Ready"
    dead = az.verdict(_obj(grant="new", ready=("False", "ReauthRequired"), reauth="True", reauth_for="new"), "old")
    assert dead[:2] == ("Rejected", "InvalidGrant")
    refused = az.verdict(_obj(grant="new", refusal={"reason": "HubMismatch", "message": "x", "grantFingerprint": "new"}),
                         "old")
    assert refused[:2] == ("Rejected", "HubMismatch")
    # a ReauthRequired left over from the old grant is not a verdict on the new one
    assert az.verdict(_obj(grant="new", ready=("True", "Refreshed"), reauth="True", reauth_for="old"), "old")[0] == "Ready"


# ---- the command, against the in-process simulator ----------------------------------------------------

def oauth_token(name="crm", hub=HUB, scopes=("crm.objects.contacts.read",), status=None, **spec_extra):
    return {"metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1},
            "spec": {"type": "OAuth", "hubId": hub, "requiredScopes": list(scopes),
                     "oauth": {"clientSecretRef": {"name": "hubspot-app"},
                               "refreshTokenSecretRef": {"name": f"{name}-install"}},
                     "target": {"name": f"{name}-out"}, **spec_extra},
            "status": status or {}}


def plays_operator(fake, obj, polls):
    """Once the refresh-token Secret was written, the 'operator' refreshes with it: a new grant, Ready."""
    obj["status"] = {"grantFingerprint": "new-grant", "reauthRequiredFor": None, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Refreshed", "message": "ok"},
        {"type": "ReauthRequired", "status": "False", "reason": "RefreshSucceeded"}]}


class Browser:
    """Plays the person: when the plugin prints the install URL, 'consents' at the simulator."""

    def __init__(self, sim_url: str, *streams: io.StringIO, tamper=None, follow=False):
        self.sim_url, self.streams, self.tamper, self.follow = sim_url, list(streams), tamper, follow
        self.locations: list[str] = []

    def url(self) -> str:
        text = "".join(s.getvalue() for s in self.streams)  # stdout, or stderr with -o json|yaml
        m = re.search(r"^(http://\S+/oauth/authorize\?\S+)$", text, re.M)
        assert m, "no install URL printed"
        return m.group(1)

    def consent(self) -> str:
        with httpx.Client(timeout=10) as http:
            r = http.get(self.url(), follow_redirects=False)
            assert r.status_code == 302, r.text
            loc = r.headers["Location"]
            self.locations.append(loc)
            if self.follow:
                assert http.get(loc).status_code == 200
        return self.tamper(loc) if self.tamper else loc


class PasteStdin(io.StringIO):
    def __init__(self, browser: Browser):
        super().__init__()
        self.browser = browser

    def readline(self, *a):
        return self.browser.consent() + "\n"


class WatchingStdout(io.StringIO):
    """stdout that starts the browser (following the redirect to the listener) once the URL is printed."""

    def __init__(self, sim_url):
        super().__init__()
        self.browser = Browser(sim_url, self, follow=True)
        self.started = False

    def write(self, s):
        n = super().write(s)
        if not self.started and "/oauth/authorize?" in s:
            self.started = True
            threading.Thread(target=self.browser.consent, daemon=True).start()
        return n


@pytest.fixture
def app(sim: SimControl):
    return sim.create_app()


def fake_api(app, token=None, **kw):
    api = FakeAPI(token or oauth_token(), secrets={"hubspot-app": {"client_id": app.client_id,
                                                                   "client_secret": app.client_secret}}, **kw)
    api.operator = plays_operator
    return api


def run_authorize(running_sim, api, *extra, tamper=None, stdout=None, stdin=None, getpass=None):
    out = stdout or io.StringIO()
    err = io.StringIO()
    browser = getattr(out, "browser", None) or Browser(running_sim.url, out, err, tamper=tamper)
    argv = ["authorize", "crm", "--authorize-url", f"{running_sim.url}/oauth/authorize",
            "--hubspot-base-url", running_sim.url, *extra]
    if stdin is None and "--headless" in extra:
        stdin = PasteStdin(browser)
    clock = FakeClock()
    rc = main(argv, api=api, stdin=stdin or io.StringIO(""), stdout=out, stderr=err, clock=clock, sleep=clock.sleep,
              getpass=getpass or (lambda prompt: pytest.fail("unexpected prompt")))
    return rc, out.getvalue(), err.getvalue(), browser


def assert_no_secrets(texts, *secrets):
    for text in texts:
        for s in secrets:
            if s:
                assert s not in text and base64.b64encode(s.encode()).decode() not in text


def stored_refresh_token(api) -> str:
    return base64.b64decode(api.secrets[(NS, "crm-install")]["data"]["refresh_token"]).decode()


def test_headless_first_install_writes_the_secret_with_consent_and_waits_for_ready(running_sim, sim, app):
    sim.consent(HUB)
    api = fake_api(app)
    rc, out, err, browser = run_authorize(running_sim, api, "--headless")
    assert rc == 0, out + err
    secret = api.secrets[(NS, "crm-install")]
    assert secret["metadata"]["labels"] == {"hubspot-operator.dev/consent": "true"}
    rt = stored_refresh_token(api)
    assert running_sim.state.refresh_tokens[rt].active
    install = running_sim.state.installs[running_sim.state.refresh_tokens[rt].install_id]
    assert install.hub_id == HUB and install.scopes == ["oauth", "crm.objects.contacts.read"]
    code = parse_qs(urlsplit(browser.locations[0]).query)["code"][0]
    assert "Ready" in out and f"hub {HUB}" in out
    assert_no_secrets([out, err], app.client_secret, rt, code)
    assert "redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback" in browser.url()


def test_reauthorize_updates_the_existing_secret_guarded_by_resource_version(running_sim, sim, app):
    sim.consent(HUB)
    api = fake_api(app, oauth_token(status={"grantFingerprint": "old-grant"}))
    api.secrets[(NS, "crm-install")] = {"metadata": {"name": "crm-install", "namespace": NS, "resourceVersion": "7",
                                                     "labels": {"hubspot-operator.dev/consent": "true"}},
                                        "data": {"refresh_token": base64.b64encode(b"na1-dead").decode()}}
    rc, out, err, _ = run_authorize(running_sim, api, "--headless")
    assert rc == 0, out + err
    (_, _, _, body), = api.writes("replace_secret")
    assert body["metadata"]["resourceVersion"] == "7"
    assert stored_refresh_token(api) != "na1-dead"


def test_wrong_hub_is_refused_before_writing_and_the_new_grant_revoked(running_sim, sim, app):
    sim.consent(999)
    api = fake_api(app)
    rc, out, err, _ = run_authorize(running_sim, api, "--headless")
    assert rc == 2
    assert "hub 999" in err and f"hub {HUB}" in err and "nothing was written" in err
    assert not api.writes("create_secret") and not api.writes("replace_secret")
    assert not any(r.active for r in running_sim.state.refresh_tokens.values())


def test_missing_scope_is_refused_before_writing(running_sim, sim, app):
    sim.consent(HUB, scopes=["oauth"])
    api = fake_api(app)
    rc, out, err, _ = run_authorize(running_sim, api, "--headless")
    assert rc == 2 and "crm.objects.contacts.read" in err
    assert not api.writes("create_secret")


def test_state_mismatch_is_refused_and_the_code_never_exchanged(running_sim, sim, app):
    sim.consent(HUB)
    sim.reset_stats()
    api = fake_api(app)
    rc, out, err, _ = run_authorize(running_sim, api, "--headless",
                                    tamper=lambda loc: re.sub(r"state=[^&]+", "state=forged", loc))
    assert rc == 1 and "state" in err
    assert not api.writes("create_secret")
    assert sim.count("POST /oauth/2026-03/token") == 0


def test_denied_consent_writes_nothing(running_sim, sim, app):
    sim.consent(HUB, approve=False)
    api = fake_api(app)
    rc, out, err, _ = run_authorize(running_sim, api, "--headless")
    assert rc == 1 and "access_denied" in err
    assert not api.writes("create_secret")


def test_terminal_stdin_reads_the_redirect_without_echo(running_sim, sim, app):
    sim.consent(HUB)
    api = fake_api(app)
    out = io.StringIO()
    browser = Browser(running_sim.url, out)
    prompts = []

    def getpass(prompt):
        prompts.append(prompt)
        return browser.consent()

    rc, _, err, _ = run_authorize(running_sim, api, "--headless", stdout=out, stdin=TTYInput(""), getpass=getpass)
    assert rc == 0, err
    assert prompts == [az.PROMPT]


def test_loopback_listener_receives_the_redirect(running_sim, sim, app):
    sim.consent(HUB)
    api = fake_api(app)
    out = WatchingStdout(running_sim.url)
    rc, text, err, browser = run_authorize(running_sim, api, "--no-browser", "--port", "0", stdout=out)
    assert rc == 0, text + err
    assert re.match(r"http://127\.0\.0\.1:\d+/callback\?code=", browser.locations[0])
    assert_no_secrets([text, err], app.client_secret, stored_refresh_token(api))


def test_json_result_names_the_outcome_and_no_secret(running_sim, sim, app):
    sim.consent(HUB)
    api = fake_api(app)
    rc, out, err, browser = run_authorize(running_sim, api, "--headless", "-o", "json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["kind"] == "AuthorizeResult" and doc["outcome"] == "Ready"
    assert doc["hubId"] == HUB and doc["secret"] == "crm-install" and doc["write"] == "created"
    assert_no_secrets([out, err], app.client_secret, stored_refresh_token(api))


def test_refusal_in_json_mode_is_a_document(running_sim, sim, app):
    sim.consent(4)
    rc, out, err, _ = run_authorize(running_sim, fake_api(app), "--headless", "-o", "yaml")
    assert rc == 2
    assert "kind: AuthorizeResult" in out and "reason: HubMismatch" in out and "outcome: Refused" in out


def test_no_wait_returns_after_writing(running_sim, sim, app):
    sim.consent(HUB)
    api = fake_api(app)
    api.operator = None
    rc, out, err, _ = run_authorize(running_sim, api, "--headless", "--no-wait")
    assert rc == 0 and "not waiting" in out
    assert (NS, "crm-install") in api.secrets


def test_timeout_when_the_operator_never_answers(running_sim, sim, app):
    sim.consent(HUB)
    api = fake_api(app)
    api.operator = None
    rc, out, err, _ = run_authorize(running_sim, api, "--headless", "--timeout", "3s")
    assert rc == 3 and "timed out" in err


def test_private_app_tokens_and_missing_app_secret_are_errors(running_sim, sim, app):
    api = FakeAPI(oauth_token(), secrets={})
    rc, out, err, _ = run_authorize(running_sim, api, "--headless", stdin=io.StringIO(""))
    assert rc == 1 and "hubspot-app" in err and "not found" in err
    tok = oauth_token()
    tok["spec"]["type"] = "PrivateApp"
    rc, out, err, _ = run_authorize(running_sim, FakeAPI(tok), "--headless", stdin=io.StringIO(""))
    assert rc == 1 and "rotate" in err


def test_non_loopback_redirect_needs_headless(running_sim, sim, app):
    rc, out, err, _ = run_authorize(running_sim, fake_api(app), "--redirect-uri", "https://app.example.com/cb",
                                    stdin=io.StringIO(""))
    assert rc == 1 and "--headless" in err


def test_a_failed_secret_write_revokes_the_new_grant_instead_of_leaving_it_live(running_sim, sim, app):
    from hubspot_token_operator.kubectl_plugin.api import ApiError

    sim.consent(HUB)
    api = fake_api(app)

    def forbidden(*_a, **_k):
        raise ApiError(403, 'secrets "crm-install" is forbidden: User "dev" cannot create resource "secrets"')

    api.create_secret = forbidden
    rc, out, err, _ = run_authorize(running_sim, api, "--headless")
    assert rc != 0
    assert "writing the refresh token into Secret" in err and "was revoked" in err, err
    assert not any(r.active for r in running_sim.state.refresh_tokens.values()), "the unstored grant is still live"
    assert_no_secrets([out, err], app.client_secret)


def test_a_failed_read_of_the_refresh_token_secret_revokes_the_new_grant_too(running_sim, sim, app):
    """The Secret is read before it is written (to warn of a missing consent label). If that read fails
    (RBAC, API server), the new grant is stored nowhere: it is revoked, as for a failed write."""
    from hubspot_token_operator.kubectl_plugin.api import ApiError

    sim.consent(HUB)
    api = fake_api(app)
    real_read = api.read_secret

    def read(ns, name):
        if name == "crm-install":
            raise ApiError(403, 'secrets "crm-install" is forbidden: User "dev" cannot get resource "secrets"')
        return real_read(ns, name)

    api.read_secret = read
    rc, out, err, _ = run_authorize(running_sim, api, "--headless")
    assert rc != 0 and "was revoked" in err, err
    assert not any(r.active for r in running_sim.state.refresh_tokens.values()), "the unstored grant is still live"
    assert_no_secrets([out, err], app.client_secret)


def test_a_write_whose_answer_was_lost_but_landed_is_kept_not_revoked(running_sim, sim, app):
    """The create reached the API server, but its answer did not come back (a read timeout). Revoking then
    would leave a dead refresh token in the Secret: the plugin reads the Secret again and, finding the new
    token there, goes on."""
    from hubspot_token_operator.kubectl_plugin.api import ApiError

    sim.consent(HUB)
    api = fake_api(app)
    real_create = api.create_secret

    def create_then_time_out(*a, **k):
        real_create(*a, **k)
        raise ApiError(None, "cannot reach the Kubernetes API server: ReadTimeoutError")

    api.create_secret = create_then_time_out
    rc, out, err, _ = run_authorize(running_sim, api, "--headless", "--no-wait")
    assert rc == 0, err
    stored = stored_refresh_token(api)
    assert running_sim.state.refresh_tokens[stored].active, "a refresh token that was stored got revoked"
    assert_no_secrets([out, err], app.client_secret)


def test_the_listener_turns_away_a_request_without_this_authorizations_state():
    """Any local process (or a web page's image tag) could reach the callback first; before, that request
    took the one place and HubSpot's real redirect got "Already answered". Only the expected state counts."""
    import urllib.error
    import urllib.request

    listener = az.Listener(port=0)
    listener.expect_state = "the-state"
    try:
        base = f"http://127.0.0.1:{listener.port}/callback"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{base}?state=forged&code=x", timeout=5)
        assert e.value.code == 400
        assert urllib.request.urlopen(f"{base}?state=the-state&code=real", timeout=5).status == 200
        assert listener.wait(5).endswith("code=real")
    finally:
        listener.close()
