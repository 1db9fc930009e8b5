"""`kubectl hubspot authorize`, the real executable, against the real local control plane, the real operator
and the HubSpot simulator: first install, re-authorization after ReauthRequired, the refusals that must write
nothing (wrong hub, forged state), and the loopback listener.

The test plays the person at the browser: it reads the install URL the plugin prints, "consents" by GETting it
at the simulator (which answers 302 to the redirect URI with code and state), and either pastes the redirect URL
on the plugin's stdin (--headless) or follows the redirect to the plugin's own 127.0.0.1 listener. Every secret
seen is remembered (tokens.remember) for the end-of-session leak check, and every output is checked here too.
"""

from __future__ import annotations

import base64
import json
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.cluster import tokens as t
from tests.helpers import wait_for

PLUGIN = Path(sys.executable).parent / "kubectl-hubspot"
HUB = 6161
OTHER_HUB = 999
SCOPES = ["crm.objects.contacts.read"]
URL_LINE = re.compile(r"^(http://\S+/oauth/authorize\?\S+)$")


def _leaks(text: str) -> list[str]:
    return [f"{s[:4]}... ({len(s)} chars)" for s in t.SEEN_SECRETS
            if len(s) >= 8 and (s in text or base64.b64encode(s.encode()).decode() in text)]


class Run:
    """The plugin as a child process whose stdout and stderr are read line by line while it runs."""

    def __init__(self, kubeconfig, *args: str) -> None:
        assert PLUGIN.exists(), f"{PLUGIN} is missing: the package must be installed in the venv (make venv)"
        self.args = args
        self.proc = subprocess.Popen(
            [str(PLUGIN), *args, "--kubeconfig", str(kubeconfig)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
        self.seen = {"stdout": [], "stderr": []}
        self.lines = {"stdout": queue.Queue(), "stderr": queue.Queue()}
        self.pumps = [threading.Thread(target=self._pump, args=(name,), daemon=True) for name in self.seen]
        for th in self.pumps:
            th.start()

    def _pump(self, name: str) -> None:
        for line in getattr(self.proc, name):
            self.seen[name].append(line)
            self.lines[name].put(line)
        self.lines[name].put(None)

    def install_url(self, stream: str = "stdout", timeout: float = 60) -> str:
        """The install URL the plugin printed (on stderr with -o json|yaml, where stdout holds the document)."""
        while True:
            line = self.lines[stream].get(timeout=timeout)
            if line is None:
                self.finish()
                raise AssertionError(f"the plugin printed no install URL:\n{self.out}\n{self.stderr}")
            m = URL_LINE.match(line.strip())
            if m:
                return m.group(1)

    def paste(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        self.proc.stdin.close()

    def finish(self, timeout: float = 150) -> "Run":
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for th in self.pumps:
            th.join(timeout=10)
        self.out, self.stderr = "".join(self.seen["stdout"]), "".join(self.seen["stderr"])
        leaks = _leaks(self.out + self.stderr)
        assert not leaks, f"secret values in the output of kubectl-hubspot {' '.join(self.args)}: {leaks}"
        return self

    @property
    def rc(self) -> int:
        return self.proc.returncode


def authorize_headless(cluster, simulator, namespace, name, tamper=None) -> tuple[Run, str]:
    run = Run(cluster.kubeconfig, "authorize", name, "-n", namespace, "--headless",
              "--authorize-url", f"{simulator.url}/oauth/authorize", "--hubspot-base-url", simulator.url,
              "--timeout", "60s")
    url = run.install_url()
    location = simulator.consent_redirect(url)
    t.remember(*parse_qs(urlsplit(location).query).get("code", []))
    run.paste(tamper(location) if tamper else location)
    return run.finish(), url


def ready(custom, ns, name):
    obj = t.get(custom, ns, name)
    return obj if t.condition(obj, "Ready").get("status") == "True" else None


def test_first_install_from_scratch(operator, simulator, core, custom, namespace, app, cluster):
    simulator.consent(HUB)
    t.create(custom, namespace, t.oauth_token("crm", hubId=HUB, requiredScopes=SCOPES))
    assert t.read_secret(core, namespace, "crm-install") is None
    run, url = authorize_headless(cluster, simulator, namespace, "crm")
    assert run.rc == 0, f"stdout:\n{run.out}\nstderr:\n{run.stderr}"
    q = parse_qs(urlsplit(url).query)
    assert q["scope"] == ["oauth crm.objects.contacts.read"] and q["client_id"] == [app["client_id"]]
    assert "Ready" in run.out and f"hub {HUB}" in run.out

    secret = core.read_namespaced_secret("crm-install", namespace)
    assert secret.metadata.labels == {"hubspot-operator.dev/consent": "true"}
    stored = t.read_secret(core, namespace, "crm-install")["refresh_token"]  # remembered for the leak check
    assert stored.startswith("na1-")
    obj = ready(custom, namespace, "crm")
    assert obj and obj["status"]["hubId"] == HUB
    assert simulator.bearer_ok(t.read_secret(core, namespace, "hubspot-access")["access_token"])


def test_reauthorize_after_reauth_required(operator, simulator, core, custom, namespace, app, cluster):
    rt = simulator.install(app["client_id"], HUB, ["oauth", *SCOPES])
    t.put_secret(core, namespace, "crm-install", {"refresh_token": rt})
    t.create(custom, namespace, t.oauth_token("crm", hubId=HUB, requiredScopes=SCOPES))
    wait_for(lambda: ready(custom, namespace, "crm"), timeout=30, what="Ready")
    simulator.uninstall(rt)
    t.patch(custom, namespace, "crm", {"metadata": {"annotations": {"hubspot-operator.dev/refresh-requested-at": "1"}}})
    wait_for(lambda: t.condition(t.get(custom, namespace, "crm"), "ReauthRequired").get("status") == "True",
             timeout=30, what="ReauthRequired=True")

    simulator.consent(HUB)
    run, _ = authorize_headless(cluster, simulator, namespace, "crm")
    assert run.rc == 0, f"stdout:\n{run.out}\nstderr:\n{run.stderr}"
    assert "updated key 'refresh_token'" in run.out
    new = t.read_secret(core, namespace, "crm-install")["refresh_token"]
    assert new != rt
    obj = ready(custom, namespace, "crm")
    assert obj, "the plugin reported Ready but the token is not"
    assert t.condition(obj, "ReauthRequired")["status"] == "False"
    assert obj["status"]["lastRefreshReason"] == "GrantChanged"


def test_wrong_hub_is_refused_before_anything_is_written(operator, simulator, core, custom, namespace, app, cluster):
    simulator.consent(OTHER_HUB)
    t.create(custom, namespace, t.oauth_token("crm", hubId=HUB, requiredScopes=SCOPES))
    run, _ = authorize_headless(cluster, simulator, namespace, "crm")
    assert run.rc == 2, f"stdout:\n{run.out}\nstderr:\n{run.stderr}"
    assert f"hub {OTHER_HUB}" in run.stderr and f"hub {HUB}" in run.stderr and "nothing was written" in run.stderr
    assert t.read_secret(core, namespace, "crm-install") is None


def test_wrong_hub_leaves_an_existing_secret_unchanged(operator, simulator, core, custom, namespace, app, cluster):
    rt = simulator.install(app["client_id"], HUB, ["oauth", *SCOPES])
    t.put_secret(core, namespace, "crm-install", {"refresh_token": rt})
    t.create(custom, namespace, t.oauth_token("crm", hubId=HUB, requiredScopes=SCOPES))
    wait_for(lambda: ready(custom, namespace, "crm"), timeout=30, what="Ready")
    before = core.read_namespaced_secret("crm-install", namespace).metadata.resource_version
    simulator.consent(OTHER_HUB)
    run, _ = authorize_headless(cluster, simulator, namespace, "crm")
    assert run.rc == 2, run.stderr
    assert core.read_namespaced_secret("crm-install", namespace).metadata.resource_version == before
    assert t.read_secret(core, namespace, "crm-install")["refresh_token"] == rt


def test_state_mismatch_is_refused(operator, simulator, core, custom, namespace, app, cluster):
    simulator.consent(HUB)
    t.create(custom, namespace, t.oauth_token("crm", hubId=HUB, requiredScopes=SCOPES))
    run, _ = authorize_headless(cluster, simulator, namespace, "crm",
                                tamper=lambda loc: re.sub(r"state=[^&]+", "state=forged", loc))
    assert run.rc == 1, run.stderr
    assert "state" in run.stderr and "nothing was written" in run.stderr
    assert t.read_secret(core, namespace, "crm-install") is None
    assert "exchanging the code" not in run.out  # refused before the code went anywhere


def test_loopback_listener(operator, simulator, core, custom, namespace, app, cluster):
    simulator.consent(HUB)
    t.create(custom, namespace, t.oauth_token("crm", hubId=HUB, requiredScopes=SCOPES))
    run = Run(cluster.kubeconfig, "authorize", "crm", "-n", namespace, "--no-browser", "--port", "0",
              "--authorize-url", f"{simulator.url}/oauth/authorize", "--hubspot-base-url", simulator.url,
              "--timeout", "60s", "-o", "json")
    url = run.install_url("stderr")  # with -o json, progress (and the URL) goes to stderr
    location = simulator.consent_redirect(url)
    assert re.match(r"http://127\.0\.0\.1:\d+/callback\?code=", location)
    t.remember(*parse_qs(urlsplit(location).query).get("code", []))
    page = httpx.get(location, timeout=10)  # the browser lands on the plugin's own listener
    assert page.status_code == 200 and "close this tab" in page.text
    run.proc.stdin.close()
    run.finish()
    assert run.rc == 0, f"stdout:\n{run.out}\nstderr:\n{run.stderr}"
    doc = json.loads(run.out)
    assert doc["kind"] == "AuthorizeResult" and doc["outcome"] == "Ready" and doc["hubId"] == HUB
    assert doc["write"] == "created" and doc["redirectUri"].startswith("http://127.0.0.1:")
    t.read_secret(core, namespace, "crm-install")
    assert ready(custom, namespace, "crm")

