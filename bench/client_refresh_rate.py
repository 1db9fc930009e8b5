"""How many refreshes per second the HubSpot client sustains against the simulator.

The simulator runs as a subprocess (``hubspot-sim --port 0``) so it does not share the client's GIL.
50 grants (one app, 50 installs) are refreshed concurrently, each by its own worker in a loop, for
~10 seconds; the loop is bounded by time and by a total request cap. Localhost only.

    .venv/bin/python bench/client_refresh_rate.py [--seconds 10] [--grants 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from hubspot_token_operator.hubspot import HubSpotClient
from hubspot_token_operator.simulator import SimControl

MAX_REQUESTS = 2_000_000


def start_simulator() -> tuple[subprocess.Popen, str]:
    script = Path(sys.executable).parent / "hubspot-sim"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hubspot_token_operator.simulator.cli"]
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = proc.stdout.readline().strip()
    if not line.startswith("hubspot-sim listening on "):
        proc.kill()
        raise RuntimeError(f"simulator did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1]


async def hammer(url: str, grants: list[tuple[str, str, str]], seconds: float) -> dict:
    latencies: list[float] = []
    failures: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    budget = MAX_REQUESTS

    async def worker(client_id: str, secret: str, refresh_token: str) -> None:
        nonlocal budget
        while time.perf_counter() < deadline and budget > 0:
            budget -= 1
            started = time.perf_counter()
            outcome = await client.refresh(client_id, secret, refresh_token)
            latencies.append(time.perf_counter() - started)
            if not outcome.ok:
                failures[outcome.reason] = failures.get(outcome.reason, 0) + 1

    async with HubSpotClient(url, timeout=10.0) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(*grant) for grant in grants))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "failures": failures,
        "elapsed": elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--grants", type=int, default=50)
    args = parser.parse_args()

    proc, url = start_simulator()
    try:
        with SimControl(url) as sim:
            app = sim.create_app()
            grants = [
                (app.client_id, app.client_secret, sim.install(app.client_id, 1000 + i, ["oauth"]))
                for i in range(args.grants)
            ]
            result = asyncio.run(hammer(url, grants, args.seconds))
            served = sim.count("POST /oauth/2026-03/token", "200")
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    ok = result["requests"] - sum(result["failures"].values())
    rate = ok / result["elapsed"]
    print(
        f"grants={args.grants} seconds={result['elapsed']:.1f} refreshes={result['requests']} ok={ok} "
        f"failures={result['failures'] or 0} server_200s={served} "
        f"p50={result['p50_ms']:.1f}ms p99={result['p99_ms']:.1f}ms"
    )
    print(f"refreshes/s: {rate:.0f}")
    return 0 if not result["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
