"""Command line of ``kubectl-hubspot`` (run by kubectl as ``kubectl hubspot ...``)."""

from __future__ import annotations

import argparse
import getpass as _getpass
import re
import sys
import time
from datetime import datetime, timezone
from typing import Callable, TextIO

from .. import __version__
from . import refresh, rotate, status
from .api import KubeAPI, PluginAPI, PluginError
from .common import EXIT_ERROR, EXIT_INTERRUPTED, POLL_INTERVAL, Ctx, Output

# Anything in argv that looks like a private-app token (or an OAuth refresh token) is refused unseen.
_TOKENISH = re.compile(
    r"pat-[a-z]{2}[0-9]{1,2}-[0-9a-f-]{8,}|\b[a-z]{2}[0-9]-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    re.I,
)
_NO_TOKEN_ARGS = (
    "the token is never accepted on the command line (it would land in shell history and process "
    "listings): pipe it on stdin or use --from-file PATH. If you typed a real token, treat it as exposed"
)

COMMANDS: dict[str, Callable[[Ctx, argparse.Namespace], int]] = {
    "rotate": rotate.run,
    "status": status.run,
    "refresh": refresh.run,
}


class UsageError(Exception):
    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _parser_class(out: Output) -> type[argparse.ArgumentParser]:
    class Parser(argparse.ArgumentParser):
        def error(self, message: str):  # never exit the process from inside main()
            raise UsageError(message, self.format_usage())

        def exit(self, status: int = 0, message: str | None = None):
            if message:
                out.raw_stderr(message)
            raise _Exit(status)

        def _print_message(self, message: str, file=None) -> None:
            if message:
                (out.raw_stderr if file is sys.stderr else out.raw_stdout)(message)

    return Parser


def build_parser(out: Output) -> argparse.ArgumentParser:
    parser_cls = _parser_class(out)
    common = parser_cls(add_help=False)
    # SUPPRESS: options given before the subcommand are not reset by the subcommand's defaults.
    common.add_argument("-n", "--namespace", default=argparse.SUPPRESS,
                        help="namespace (default: the kubeconfig context's namespace, else 'default')")
    common.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    common.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context (default: the current one)")

    parser = parser_cls(
        prog="kubectl hubspot",
        description="Operate HubSpotToken objects of the hubspot-token-operator.",
        parents=[common],
        epilog="Exit codes: 0 ok, 1 error, 2 rejected (rotate) or refresh failed (refresh --wait), 3 timed out.",
    )
    parser.add_argument("--version", action="version", version=f"kubectl-hubspot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "rotate", parents=[common], help="put a new private-app token into the source Secret and wait for the verdict",
        description="Reads the new token from stdin (prompting without echo on a terminal) or --from-file, writes "
                    "it into the Secret named by spec.privateApp.tokenSecretRef and waits until the operator has "
                    "verified and published, or rejected, it. The token is never accepted as an argument.",
    )
    p.add_argument("name", metavar="NAME", help="HubSpotToken name (spec.type PrivateApp)")
    p.add_argument("--from-file", metavar="PATH", help="read the token from this file ('-' means stdin)")
    p.add_argument("--timeout", default="120s", help="how long to wait for the operator (default 120s)")
    p.add_argument("--no-wait", action="store_true", help="write the Secret and return without waiting")
    p.add_argument("--force", action="store_true",
                   help="write a token that does not look like pat-<region>-<uuid> (with a warning)")

    p = sub.add_parser("status", parents=[common], help="show a HubSpotToken's status, conditions and recent Events")
    p.add_argument("name", metavar="NAME")

    p = sub.add_parser(
        "refresh", parents=[common], help="ask the operator to refresh OAuth tokens now",
        description="Sets the hubspot-operator.dev/refresh-requested-at annotation to the current time on one "
                    "HubSpotToken (NAME), all of them in the namespace (--all) or those matching -l SELECTOR.",
    )
    p.add_argument("name", metavar="NAME", nargs="?")
    p.add_argument("--all", action="store_true", help="every HubSpotToken in the namespace")
    p.add_argument("-l", "--selector", help="label selector, e.g. team=crm")
    p.add_argument("--wait", action="store_true", help="wait until the operator has handled the request")
    p.add_argument("--timeout", default="120s", help="how long --wait waits (default 120s)")
    return parser


def main(
    argv: list[str] | None = None,
    *,
    api: PluginAPI | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    getpass: Callable[[str], str] | None = None,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
    now: Callable[[], datetime] | None = None,
    poll_interval: float = POLL_INTERVAL,
) -> int:
    """Entry point. Everything with side effects can be injected (tests pass a fake ``api`` and clocks)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = Output(stdout or sys.stdout, stderr or sys.stderr)
    tokenish = [m.group(0) for a in argv for m in _TOKENISH.finditer(a)]
    out.add_secret(*tokenish, *[a for a in argv if _TOKENISH.search(a)])
    parser = build_parser(out)
    try:
        if tokenish:
            raise UsageError("an argument looks like a token; " + _NO_TOKEN_ARGS, parser.format_usage())
        args, extras = parser.parse_known_args(argv)
        if extras:
            if args.command == "rotate":
                raise UsageError("unexpected extra argument(s), not shown; " + _NO_TOKEN_ARGS, parser.format_usage())
            raise UsageError("unrecognized arguments: " + " ".join(extras), parser.format_usage())
        if not args.command:
            parser.print_help()
            return EXIT_ERROR
        if args.command == "refresh":
            chosen = sum([bool(args.name), bool(args.all), bool(args.selector)])
            if chosen != 1:
                raise UsageError("refresh needs exactly one of NAME, --all or -l SELECTOR", parser.format_usage())
        if api is None:
            api = KubeAPI.from_kubeconfig(getattr(args, "kubeconfig", None), getattr(args, "context", None))
        namespace = getattr(args, "namespace", None) or api.default_namespace() or "default"
        ctx = Ctx(
            api=api,
            out=out,
            namespace=namespace,
            stdin=stdin if stdin is not None else sys.stdin,
            getpass=getpass or _getpass.getpass,
            clock=clock or time.monotonic,
            sleep=sleep or time.sleep,
            now=now or (lambda: datetime.now(timezone.utc)),
            poll_interval=poll_interval,
        )
        return COMMANDS[args.command](ctx, args)
    except _Exit as e:
        return e.code
    except UsageError as e:
        out.raw_stderr(e.usage)
        out.error(str(e))
        return EXIT_ERROR
    except PluginError as e:
        out.error(str(e))
        return EXIT_ERROR
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - report, never a traceback (it could show local values)
        out.error(f"unexpected {type(e).__name__}: {e}")
        return EXIT_ERROR
