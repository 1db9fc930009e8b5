"""Scrape-time token metrics, the JSON log format, and the run command's flags."""

import json
import logging

from prometheus_client import CollectorRegistry, generate_latest

from hubspot_token_operator.cli import JsonFormatter, build_parser
from hubspot_token_operator.metrics import TokenCollector


def token(name, ready="True", reauth="False", published=None):
    status = {
        "expiresAt": "2026-11-22T12:30:00Z",
        "nextRefreshAt": "2026-11-22T12:20:00Z",
        "conditions": [{"type": "Ready", "status": ready}, {"type": "ReauthRequired", "status": reauth}],
    }
    if published:
        status["privateApp"] = {"publishedAt": published}
    return {"metadata": {"namespace": "ns", "name": name}, "spec": {"type": "OAuth"}, "status": status}


def test_token_gauges_are_computed_at_scrape_time():
    tokens = [token("a"), token("b", ready="False", reauth="True", published="2026-11-22T00:00:00Z")]
    reg = CollectorRegistry()
    reg.register(TokenCollector(lambda: tokens, lambda: 1795305600.0 + 3600))
    text = generate_latest(reg).decode()
    assert 'hubspot_token_expiry_timestamp_seconds{name="a",namespace="ns",type="OAuth"} 1.7953506e+09' in text
    assert 'hubspot_token_status_condition{condition="Ready",name="b",namespace="ns",status="False"} 1.0' in text
    assert 'hubspot_token_status_condition{condition="Ready",name="b",namespace="ns",status="True"} 0.0' in text
    assert 'hubspot_token_status_condition{condition="ReauthRequired",name="b",namespace="ns",status="True"} 1.0' in text
    assert 'hubspot_token_private_app_token_age_seconds{name="b",namespace="ns",type="OAuth"} 3600.0' in text
    tokens.pop()  # a deleted token disappears from the next scrape
    assert 'name="b"' not in generate_latest(reg).decode()


def test_json_log_lines():
    rec = logging.LogRecord("hto", logging.INFO, __file__, 1, "refreshed %s", ("ns/a",), None)
    line = json.loads(JsonFormatter().format(rec))
    assert line["msg"] == "refreshed ns/a" and line["level"] == "info" and line["logger"] == "hto"


def test_run_flags():
    args = build_parser().parse_args(["run", "-n", "a", "-n", "b", "--log-format", "json"])
    assert args.namespace == ["a", "b"] and not args.all_namespaces and args.log_format == "json"
