"""``hubspot-sim``: run the HubSpot simulator as a process.

Prints ``hubspot-sim listening on http://HOST:PORT`` (flushed) once the socket is bound, so a parent
process that passed ``--port 0`` can read the chosen port from the first line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from .app import build_app
from .server import start_site


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hubspot-sim", description="Local HubSpot OAuth/private-app simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--state", metavar="FILE", help="persist apps, installs and tokens in this JSON file")
    parser.add_argument("--access-log", action="store_true", help="log one line per request (route templates only)")
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    app = build_app(state_file=args.state)
    runner, port = await start_site(app, args.host, args.port, access_log=args.access_log)
    print(f"hubspot-sim listening on http://{args.host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
