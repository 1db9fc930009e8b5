"""The /_sim/ control API: faults, config, clock, stats, reset, persistence and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hubspot_token_operator.simulator import SimControl, start_in_thread

from .conftest import HUB_ID, Grant


def refresh(http: httpx.Client, grant: Grant, gen: str = "2026-03") -> httpx.Response:
    form = {"grant_type": "refresh_token", "client_id": grant.client_id, "client_secret": grant.client_secret,
            "refresh_token": grant.refresh_token}
    return http.post(f"/oauth/{gen}/token", data=form)


def test_health(http, sim):
    assert http.get("/_sim/health").json() == {"status": "ok"}


class TestFaults:
    def test_count_limited_ten_secondly_429(self, http, sim: SimControl, grant):
        sim.add_fault("rate_limit", "/oauth/", count=2, retry_after=3)
        first, second, third = (refresh(http, grant) for _ in range(3))
        assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
        assert first.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert first.json()["message"] == "You have reached your ten_secondly_rolling limit."
        assert first.headers["Retry-After"] == "3"
        assert sim.faults() == []  # retired after its count

    def test_daily_429(self, http, sim: SimControl, grant):
        sim.add_fault("rate_limit", "/oauth/2026-03/token", policy="DAILY", count=1)
        body = refresh(http, grant).json()
        assert (body["policyName"], body["status"]) == ("DAILY", "error")

    def test_share_is_deterministic(self, http, sim: SimControl, grant):
        sim.add_fault("server_error", "/oauth/", share=0.25, status=502)
        statuses = [refresh(http, grant).status_code for _ in range(8)]
        assert statuses == [200, 200, 200, 502, 200, 200, 200, 502]

    def test_method_and_prefix_matching(self, http, sim: SimControl, grant):
        sim.add_fault("server_error", "/oauth/v1/", method="GET")
        assert refresh(http, grant, "v1").status_code == 200
        assert http.get(f"/oauth/v1/refresh-tokens/{grant.refresh_token}").status_code == 503
        assert refresh(http, grant, "v3").status_code == 200

    def test_latency(self, http, sim: SimControl, grant):
        sim.add_fault("latency", "/oauth/", delay_ms=300, count=1)
        started = time.perf_counter()
        assert refresh(http, grant).status_code == 200
        assert time.perf_counter() - started >= 0.3

    def test_a_delayed_request_is_processed_even_if_its_client_gave_up(self, http, sim: SimControl, grant):
        sim.configure(refresh_token_mode="rotating")
        sim.add_fault("latency", "/oauth/", delay_ms=300, count=1)
        with pytest.raises(httpx.ReadTimeout):
            refresh(httpx.Client(base_url=str(http.base_url), timeout=0.05), grant)
        deadline = time.monotonic() + 5
        while sim.count("POST /oauth/2026-03/token") == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sim.stats()["requests"]["POST /oauth/2026-03/token"] == {"200": 1}
        # the abandoned refresh happened: the old refresh token was rotated out
        assert refresh(http, grant).json()["status"] == "BAD_REFRESH_TOKEN"

    def test_latency_stacks_with_an_error(self, http, sim: SimControl, grant):
        sim.add_fault("latency", "/oauth/", delay_ms=100, count=1)
        sim.add_fault("server_error", "/oauth/", count=1)
        started = time.perf_counter()
        assert refresh(http, grant).status_code == 503
        assert time.perf_counter() - started >= 0.1

    def test_dropped_connection(self, http, sim: SimControl, grant):
        sim.add_fault("drop", "/oauth/", count=1)
        with pytest.raises(httpx.RemoteProtocolError):
            refresh(http, grant)
        assert refresh(http, grant).status_code == 200
        assert sim.stats()["requests"]["POST /oauth/2026-03/token"] == {"dropped": 1, "200": 1}

    def test_delete_one_and_clear(self, http, sim: SimControl, grant):
        rule = sim.add_fault("server_error", "/oauth/")
        assert http.delete(f"/_sim/faults/{rule['id']}").status_code == 204
        assert refresh(http, grant).status_code == 200
        sim.add_fault("server_error", "/oauth/")
        sim.clear_faults()
        assert refresh(http, grant).status_code == 200

    @pytest.mark.parametrize(
        "body",
        [{"kind": "explode"}, {"kind": "drop", "path": "oauth"}, {"kind": "drop", "path": "/_sim/apps"},
         {"kind": "drop", "share": 2}, {"kind": "server_error", "status": 404}, {"kind": "drop", "bogus": 1}],
    )
    def test_invalid_fault_specs_are_rejected(self, http, sim, body):
        assert http.post("/_sim/faults", json=body).status_code == 400

    def test_control_api_is_never_faulted_or_counted(self, http, sim: SimControl):
        sim.add_fault("server_error", "/")
        assert http.get("/_sim/health").status_code == 200
        assert sim.stats()["total"] == 0


class TestConfigAndClock:
    def test_config_merges_nested_rate_limits(self, http, sim: SimControl):
        config = sim.configure(rate_limits={"daily_max": 5})
        assert config["rate_limits"] == {"ten_secondly_max": 100, "daily_max": 5, "token_endpoint_ten_secondly_max": None}
        assert http.get("/_sim/config").json()["refresh_token_mode"] == "stable"

    @pytest.mark.parametrize(
        "patch",
        [{"refresh_token_mode": "sometimes"}, {"access_token_lifetime_seconds": 0}, {"nope": 1},
         {"rate_limits": {"ten_secondly_max": -1}}, [1, 2]],
    )
    def test_invalid_config_is_rejected_without_partial_apply(self, http, sim, patch):
        assert http.post("/_sim/config", json=patch).status_code == 400
        assert http.get("/_sim/config").json()["access_token_lifetime_seconds"] == 1800

    def test_clock(self, http, sim: SimControl):
        before = http.get("/_sim/clock").json()
        assert before["offset_seconds"] == 0 and abs(before["now"] - time.time()) < 5
        after = http.post("/_sim/clock", json={"advance_seconds": 3600}).json()
        assert after["offset_seconds"] == 3600 and after["now"] - before["now"] >= 3600

    def test_reset_forgets_everything(self, http, sim: SimControl, grant):
        sim.configure(refresh_token_mode="rotating")
        sim.advance(100)
        sim.reset()
        assert refresh(http, grant).json()["status"] == "BAD_CLIENT_ID"
        assert http.get("/_sim/config").json()["refresh_token_mode"] == "stable"
        assert http.get("/_sim/clock").json()["offset_seconds"] == 0

    def test_malformed_control_bodies(self, http, sim):
        assert http.post("/_sim/installs", json={"client_id": "x"}).status_code == 400
        assert http.post("/_sim/installs", json={"client_id": "x", "hub_id": 1}).status_code == 404
        assert http.post("/_sim/apps", content=b"{").status_code == 400
        assert http.post("/_sim/private-apps/abc/rotate", json={}).status_code == 404
        assert http.delete("/_sim/installs/na1-unknown").status_code == 404


class TestStats:
    def test_requests_in_flight_across_a_reset_are_not_counted(self, http, sim: SimControl, grant):
        sim.add_fault("latency", "/oauth/", delay_ms=300, count=1)
        with pytest.raises(httpx.ReadTimeout):
            http.post("/oauth/2026-03/token", data={"grant_type": "refresh_token"}, timeout=0.05)
        sim.reset_stats()
        time.sleep(0.4)
        assert sim.stats()["total"] == 0

    def test_counts_group_by_route_template_and_status(self, http, sim: SimControl, grant):
        refresh(http, grant)
        refresh(http, grant, "v3")
        bad = Grant(grant.client_id, grant.client_secret, "na1-dead", HUB_ID)
        refresh(http, bad)
        access = refresh(http, grant, "v1").json()["access_token"]
        http.get(f"/oauth/v1/access-tokens/{access}")
        http.get("/no/such/route")
        stats = sim.stats()
        assert stats["requests"]["POST /oauth/2026-03/token"] == {"200": 1, "400": 1}
        assert stats["requests"]["GET /oauth/v1/access-tokens/{token}"] == {"200": 1}
        assert stats["requests"]["GET (unmatched)"] == {"404": 1}
        assert stats["total"] == 6
        assert access not in json.dumps(stats)
        http.post("/_sim/stats/reset")
        assert sim.stats() == {"requests": {}, "hosts": {}, "total": 0, "refresh_token_reuses": 0,
                               "refreshes_by_install": {}, "concurrent_refreshes_of_one_grant": 0,
                               "audit_log_reads_by_app": {}}

    def test_refreshes_of_one_grant_in_flight_at_once_are_counted(self, http, sim: SimControl, grant):
        """How the HA tests prove that two operator replicas never refresh one grant at the same time."""
        import threading

        refresh(http, grant)
        assert sim.stats()["concurrent_refreshes_of_one_grant"] == 0
        http.post("/_sim/faults", json={"kind": "latency", "path": "/oauth/2026-03/token", "delay_ms": 300})
        threads = [threading.Thread(target=refresh, args=(http, grant)) for _ in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        http.delete("/_sim/faults")
        stats = sim.stats()
        assert stats["concurrent_refreshes_of_one_grant"] == 1
        assert list(stats["refreshes_by_install"].values()) == [3]


def test_state_file_survives_a_restart(tmp_path: Path):
    state_file = tmp_path / "sim-state.json"
    with start_in_thread(state_file=state_file) as first, SimControl(first.url) as control:
        app = control.create_app()
        refresh_token = control.install(app.client_id, HUB_ID, ["oauth"])
        pat = control.create_private_app(HUB_ID)
        control.configure(access_token_lifetime_seconds=900)
        control.advance(50)
    assert oct(state_file.stat().st_mode & 0o777) == "0o600"
    with start_in_thread(state_file=state_file) as second, httpx.Client(base_url=second.url) as http:
        form = {"grant_type": "refresh_token", "client_id": app.client_id, "client_secret": app.client_secret,
                "refresh_token": refresh_token}
        body = http.post("/oauth/2026-03/token", data=form).json()
        assert body["expires_in"] == 900
        assert http.get("/account-info/v3/details", headers={"Authorization": f"Bearer {pat.token}"}).status_code == 200
        assert http.get("/_sim/clock").json()["offset_seconds"] == 50


def test_cli_picks_a_free_port_and_prints_it(tmp_path: Path):
    script = Path(sys.executable).parent / "hubspot-sim"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hubspot_token_operator.simulator.cli"]
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", "0", "--state", str(tmp_path / "s.json")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("hubspot-sim listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert httpx.get(f"{url}/_sim/health").status_code == 200
        httpx.post(f"{url}/_sim/apps", json={})
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    assert json.loads((tmp_path / "s.json").read_text())["apps"]  # flushed on SIGTERM
