"""Pure helpers of `make demo` (hubspot_token_operator.demo). The demo itself is proven by running it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from hubspot_token_operator.demo import procs
from hubspot_token_operator.demo import resources as r
from hubspot_token_operator.demo.narrate import (
    REDACTED, Narrator, Redactor, clock, condition_line, refresh_line, stats_lines,
)
from hubspot_token_operator.model import parse_spec


def test_redactor_hides_every_known_secret_longest_first():
    red = Redactor()
    red.add("pat-na1-11111111-2222", "pat-na1-11111111-2222-3333", None, "short")
    out = red("a pat-na1-11111111-2222-3333 and pat-na1-11111111-2222 but short stays")
    assert out == f"a {REDACTED} and {REDACTED} but short stays"


def test_narrator_redacts_all_output_and_indents_steps():
    buf, red = io.StringIO(), Redactor()
    red.add("CJsecretaccesstoken")
    n = Narrator(2, stream=buf, redact=red)
    n.step("first")
    n.say("token CJsecretaccesstoken")
    n.output("line1\nCJsecretaccesstoken\n\n")
    text = buf.getvalue()
    assert "CJsecretaccesstoken" not in text
    assert "[1/2] first" in text and f"      token {REDACTED}" in text and f"        {REDACTED}" in text


def test_refresh_line_uses_status_fields_only():
    st = {"lastRefreshTime": "2026-03-01T12:00:00Z", "expiresAt": "2026-03-01T12:01:00Z",
          "nextRefreshAt": "2026-03-01T12:00:30Z", "tokenFingerprint": "1a2b3c4d", "lastRefreshReason": "Expiring"}
    assert refresh_line(st) == ("refreshed at 12:00:00, expires 12:01:00 (60s later), next refresh 12:00:30 "
                                "(after 30s), token 1a2b3c4d, reason Expiring")
    assert refresh_line({}).startswith("refreshed at -, expires -, next refresh -, token -")
    assert clock("2026-03-01T12:00:00.123+00:00") == "12:00:00" and clock("garbage") == "-"


def test_condition_and_stats_lines():
    assert condition_line({}) == "(not set)"
    assert condition_line({"type": "Ready", "status": "True", "reason": "TokenPublished", "message": "ok"}) == \
        "Ready=True (TokenPublished): ok"
    lines = stats_lines({"requests": {"POST /oauth/2026-03/token": {"200": 3, "429": 1}, "GET /x": {"200": 1}}})
    assert lines == ["GET /x                     1 x 200", "POST /oauth/2026-03/token  3 x 200, 1 x 429"]
    assert stats_lines({}) == ["(no HubSpot calls)"]


def test_demo_resources_parse_with_the_operators_model():
    oauth, pa = parse_spec(r.oauth_token()["spec"]), parse_spec(r.private_app_token()["spec"])
    assert oauth.type == "OAuth" and oauth.hub_id == r.HUB_ID and oauth.refresh.percent == r.REFRESH_PERCENT
    assert pa.type == "PrivateApp" and pa.rollout.targets[0].name == r.deployment()["metadata"]["name"]
    assert r.secret("s", {"token": "x"})["data"] == {"token": "eA=="}


def test_is_ours_needs_the_exact_marker(tmp_path: Path):
    state = tmp_path / "demo-state"
    sleep = [sys.executable, "-c", "import time; time.sleep(30)"]
    mine = procs.spawn(sleep, tmp_path / "a.log", {**os.environ, procs.MARKER: str(state)}, tmp_path)
    other = procs.spawn(sleep, tmp_path / "b.log", {**os.environ, procs.MARKER: str(state) + "-other"}, tmp_path)
    try:
        assert procs.is_ours(mine.pid, state)
        assert not procs.is_ours(other.pid, state)
        assert mine.pid in procs.find_ours(state) and other.pid not in procs.find_ours(state)
        assert procs.stop([mine.pid, other.pid], state, grace=5) == [mine.pid]
        mine.wait(timeout=5)
        assert other.poll() is None  # not ours: untouched
    finally:
        for p in (mine, other):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert not procs.is_ours(mine.pid, state)


def test_pid_files_roundtrip(tmp_path: Path):
    procs.write_pid(tmp_path / "x.pid", 123)
    assert procs.read_pid(tmp_path / "x.pid") == 123
    assert procs.read_pid(tmp_path / "missing.pid") is None
    assert subprocess.run([sys.executable, "-m", "hubspot_token_operator.demo", "--help"],
                          capture_output=True, text=True).returncode == 0
