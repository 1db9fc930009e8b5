"""`hubspot-token-operator run`: start the operator against the current kubeconfig (or in-cluster config)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from . import __version__
from .logs import JsonFormatter, configure_logging  # noqa: F401 - JsonFormatter: the JSON log format
from .settings import Settings


def build_parser() -> argparse.ArgumentParser:
    d = Settings()
    p = argparse.ArgumentParser(prog="hubspot-token-operator", description=__doc__)
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run the operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[], help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace (the default)")
    run.add_argument("--hubspot-base-url", default=d.hubspot_base_url, help="default HubSpot API base URL")
    run.add_argument("--default-oauth-api", default=d.default_oauth_api, choices=["2026-03", "v3", "v1"])
    run.add_argument("--operator-namespace", default=d.operator_namespace, help="where the fingerprint key Secret lives")
    run.add_argument("--workers", type=int, default=d.workers)
    run.add_argument("--app-refresh-rate", type=float, default=d.refreshes_per_second_per_app,
                     help="refreshes per second per HubSpot app (token bucket)")
    run.add_argument("--metrics-port", type=int, default=d.metrics_port, help="0 disables the metrics endpoint")
    run.add_argument("--health-port", type=int, default=d.health_port, help="0 disables /healthz")
    run.add_argument("--log-level", default=d.log_level)
    run.add_argument("--log-format", default=d.log_format, choices=["text", "json"],
                     help="json: one object per line (time, level, logger, msg; namespace, name and reconcile_id "
                          "on lines about a token), as the chart sets it")
    run.add_argument("--allow-hubspot-url", action="append", default=None, metavar="URL",
                     help="a HubSpot endpoint tokens may name in spec.hubspot.baseURL (repeatable; default: "
                          + ", ".join(d.allowed_hubspot_urls) + "; --hubspot-base-url is always allowed)")
    run.add_argument("--tenancy", default=d.tenancy, choices=["consent", "trusted"],
                     help="consent: Secrets and workloads a token did not create need the label "
                          "hubspot-operator.dev/consent=true; trusted: single-team clusters only")
    run.add_argument("--leader-elect", default=d.leader_elect, action=argparse.BooleanOptionalAction,
                     help="run as one of several replicas: only the holder of the lease does the work")
    run.add_argument("--lease-name", default=d.lease,
                     help="Lease (in --operator-namespace) for leader election; default: one per shard")
    run.add_argument("--lease-duration", type=float, default=d.lease_duration,
                     help="seconds a standby waits for an unrenewed lease before taking over")
    run.add_argument("--lease-renew-deadline", type=float, default=d.lease_renew_deadline)
    run.add_argument("--lease-retry-period", type=float, default=d.lease_retry_period)
    run.add_argument("--hubspot-call-deadline", type=float, default=d.hubspot_call_deadline,
                     help="seconds one HubSpot call may take in all (must be shorter than the lease duration)")
    run.add_argument("--token-selector", default=d.token_selector, metavar="SELECTOR",
                     help="shard: serve only HubSpotTokens whose labels match (e.g. 'shard=a' or 'shard in (a,b)')")
    run.add_argument("--time-source", default=d.time_source, choices=["system", "simulator"],
                     help="'simulator' follows the HubSpot simulator's clock (tests and the demo only)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings(
        namespaces=list(args.namespace),
        all_namespaces=args.all_namespaces or not args.namespace,
        hubspot_base_url=args.hubspot_base_url,
        default_oauth_api=args.default_oauth_api,
        operator_namespace=args.operator_namespace,
        workers=args.workers,
        refreshes_per_second_per_app=args.app_refresh_rate,
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        log_level=args.log_level,
        log_format=args.log_format,
        time_source=args.time_source,
        allowed_hubspot_urls=args.allow_hubspot_url if args.allow_hubspot_url is not None else Settings().allowed_hubspot_urls,
        tenancy=args.tenancy,
        leader_elect=args.leader_elect,
        lease=args.lease_name,
        lease_duration=args.lease_duration,
        lease_renew_deadline=args.lease_renew_deadline,
        lease_retry_period=args.lease_retry_period,
        token_selector=args.token_selector,
        hubspot_call_deadline=args.hubspot_call_deadline,
    )
    configure_logging(settings.log_level, settings.log_format)
    problems = settings.problems()
    if problems:
        for p in problems:
            print(f"hubspot-token-operator: {p}", file=sys.stderr)
        return 2
    return run(settings)


def run(settings: Settings) -> int:
    import kopf

    from .operator_main import OperatorContext, install

    ctx = OperatorContext(settings)
    install(ctx)
    from . import handlers  # noqa: F401 - registers the Kopf handlers

    from .leadership import identity

    asyncio.run(
        kopf.operator(
            standalone=True,  # no Kopf peering: leader election is ours (leadership.py says why)
            # Kopf's own default identity calls getpass.getuser(), which raises in an image whose uid has no
            # /etc/passwd entry (65532 here, as in distroless): found by running the image on a real node.
            identity=identity(),
            clusterwide=settings.all_namespaces,
            namespaces=settings.namespaces,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
