"""No secret ever reaches a log line, an outcome's str/repr, or a failure message.

Every client operation runs (successes and every failure path, all three API generations, including v1
introspection which puts the token in the URL path) with the root, httpx and httpcore loggers at DEBUG.
Then the captured log text and the str/repr of every outcome are searched for every secret involved.
"""

from __future__ import annotations

import logging

import httpx

from hubspot_token_operator.hubspot import ApiGeneration, Secret
from hubspot_token_operator.simulator import SimControl

from .conftest import HUB_ID, Grant

REDIRECT = "https://app.example.com/cb"


def test_no_secret_in_logs_outcomes_or_messages(run, make_client, sim: SimControl, grant: Grant, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "hubspot_token_operator", "aiohttp"):
        caplog.set_level(logging.DEBUG, logger=name)

    secrets: set[str] = {grant.client_secret, grant.refresh_token}
    outcomes: list[object] = []
    pat = sim.create_private_app(HUB_ID, ["crm.objects.contacts.read"], hublet="eu1")
    secrets.add(pat.token)
    code = sim.auth_code(grant.client_id, HUB_ID, REDIRECT)
    secrets.add(code)

    async def exercise(gen: ApiGeneration) -> None:
        async with make_client(gen, timeout=httpx.Timeout(1.0, read=0.1)) as client:
            cid, csec, rt = grant.client_id, grant.client_secret, grant.refresh_token
            ok = await client.refresh(cid, csec, rt)
            access = ok.access_token.reveal()
            secrets.add(access)
            outcomes.extend([
                ok,
                await client.introspect(cid, csec, access),
                await client.introspect(cid, csec, rt),
                await client.introspect(cid, csec, access + "x", "access_token"),
                await client.introspect(cid, Secret(csec), rt + "x", "refresh_token"),
                await client.check_liveness(access),
                await client.check_liveness(Secret(access)),
                await client.check_liveness(access + "x"),
                await client.private_app_token_info(pat.token),
                await client.private_app_token_info(pat.token + "x"),
                await client.refresh(cid, csec + "x", rt),
                await client.refresh(cid, csec, rt + "x"),
            ])
            for fault in ({"kind": "drop"}, {"kind": "rate_limit"}, {"kind": "server_error"},
                          {"kind": "latency", "delay_ms": 300}):
                sim.add_fault(path="/", count=4, **fault)
                outcomes.extend([
                    await client.refresh(cid, csec, rt),
                    await client.introspect(cid, csec, access),
                    await client.check_liveness(access),
                    await client.private_app_token_info(pat.token),
                ])
                sim.clear_faults()
            outcomes.append(await client.revoke(cid, csec, access, "access_token"))

    for gen in ApiGeneration:
        run(exercise(gen))

    async def code_and_rotation() -> None:
        sim.configure(refresh_token_mode="rotating")
        async with make_client() as client:
            exchanged = await client.exchange_code(grant.client_id, grant.client_secret, code, REDIRECT)
            secrets.update({exchanged.access_token.reveal(), exchanged.refresh_token.reveal()})
            rotated = await client.refresh(grant.client_id, grant.client_secret, exchanged.refresh_token)
            secrets.update({rotated.access_token.reveal(), rotated.refresh_token.reveal()})
            outcomes.extend([exchanged, rotated,
                             await client.exchange_code(grant.client_id, grant.client_secret, code, REDIRECT),
                             await client.revoke(grant.client_id, grant.client_secret, rotated.refresh_token)])
            outcomes.append(repr(client))

    run(code_and_rotation())

    reasons = {getattr(o, "reason", "ok") for o in outcomes}
    assert {"ok", "InvalidGrant", "InvalidClient", "InvalidToken", "ConnectionError", "RateLimited",
            "ServerError", "Timeout"} <= reasons, reasons
    assert any(r.name == "httpx" for r in caplog.records), "httpx request logging was not captured"
    assert any("/oauth/v1/access-tokens/{token}" in r.getMessage() for r in caplog.records)

    rendered = [caplog.text] + [str(o) for o in outcomes] + [repr(o) for o in outcomes]
    rendered += [getattr(o, "message", "") for o in outcomes]
    haystack = "\n".join(rendered)
    for secret in secrets:
        assert secret not in haystack, f"secret sha256:{Secret(secret).fingerprint} leaked"
