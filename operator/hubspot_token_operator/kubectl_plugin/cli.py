"""Command line of ``kubectl-hubspot`` (run by kubectl as ``kubectl hubspot ...``)."""

from __future__ import annotations

import argparse
import getpass as _getpass
import os
import re
import sys
import time
from datetime import datetime, timezone
from typing import Callable, Mapping, TextIO

from .. import __version__
from . import authorize, check, completion, inspect, refresh, rotate, status, version
from .api import KubeAPI, PluginAPI, PluginError
from .common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, POLL_INTERVAL, Ctx, Output
from .operator_info import DEFAULT_SELECTOR
from .output import FORMATS, document, use_color

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
    "authorize": authorize.run,
    "status": status.run,
    "list": status.run_list,
    "refresh": refresh.run,
    "version": version.run,
    "check": check.run,
    "inspect": inspect.run,
}
OFFLINE = {"completion"}  # commands that need no Kubernetes API client


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
    common.add_argument("-o", "--output", default=argparse.SUPPRESS, choices=FORMATS,
                        help="machine-readable output on stdout (progress and errors go to stderr)")
    common.add_argument("--operator-namespace", default=argparse.SUPPRESS, metavar="NS",
                        help="where the operator Deployment runs (default: look in every namespace)")
    common.add_argument("--operator-selector", default=argparse.SUPPRESS, metavar="SELECTOR",
                        help=f"label selector of the operator Deployment (default {DEFAULT_SELECTOR})")

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

    p = sub.add_parser(
        "authorize", parents=[common],
        help="OAuth install / re-authorization: get a refresh token from HubSpot's consent page into the Secret",
        description="Prints (and opens) HubSpot's install URL for the token's app, receives the redirect on a "
                    "loopback listener (or, with --headless, reads the pasted redirect URL from stdin), checks "
                    "state, exchanges the code, checks spec.hubId and spec.requiredScopes BEFORE writing, then "
                    "writes the refresh token into spec.oauth.refreshTokenSecretRef and waits for Ready.",
    )
    p.add_argument("name", metavar="NAME", help="HubSpotToken name (spec.type OAuth)")
    p.add_argument("--optional-scope", action="append", metavar="SCOPE",
                   help="also ask for this optional scope (repeatable)")
    p.add_argument("--redirect-uri", metavar="URL",
                   help="the redirect URL registered with the app (default http://127.0.0.1:PORT/callback)")
    p.add_argument("--port", type=int, default=authorize.DEFAULT_PORT,
                   help=f"loopback listener port (default {authorize.DEFAULT_PORT}; 0 = any free port)")
    p.add_argument("--headless", action="store_true",
                   help="no listener: print the URL and read the redirect URL you paste on stdin")
    p.add_argument("--no-browser", action="store_true", help="do not try to open a browser; just print the URL")
    p.add_argument("--authorize-url", default=authorize.DEFAULT_AUTHORIZE_URL, metavar="URL",
                   help=f"HubSpot's install page (default {authorize.DEFAULT_AUTHORIZE_URL})")
    p.add_argument("--hubspot-base-url", metavar="URL",
                   help="token endpoint host when spec.hubspot.baseURL is unset (default https://api.hubapi.com)")
    p.add_argument("--consent-timeout", default="5m", help="how long to wait for the redirect (default 5m)")
    p.add_argument("--timeout", default="120s", help="how long to wait for the operator (default 120s)")
    p.add_argument("--no-wait", action="store_true", help="write the Secret and return without waiting")

    p = sub.add_parser("status", parents=[common],
                       help="show one HubSpotToken's status and recent Events, or (no NAME) list them",
                       description="With NAME: status, conditions, rollout and the last Events of one "
                                   "HubSpotToken. Without NAME: a table of the HubSpotTokens in the namespace "
                                   "(-A: in every namespace; -l: only those matching a label selector).")
    p.add_argument("name", metavar="NAME", nargs="?")
    _list_flags(p)

    p = sub.add_parser("list", parents=[common], help="list HubSpotTokens (same as status without NAME)")
    _list_flags(p)

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

    sub.add_parser("version", parents=[common], help="the plugin's version and the operator running in the cluster",
                   description="Prints the plugin's version, the API server's and those of the operator "
                               "Deployments found (by label). Exit code 0 even when none is found.")
    sub.add_parser("check", parents=[common],
                   help="check the CRD, the operator Deployment and your RBAC for the plugin's commands",
                   description="One line per check, OK or FAIL with what to do; exit code 1 if any fails.")
    p = sub.add_parser("inspect", parents=[common], help="what a Secret holds, by key (never the values)",
                       description="inspect secret NAME: per key its size and a SHA-256 fingerprint (never the "
                                   "value), the expiry and which HubSpotToken owns the Secret.")
    p.add_argument("what", metavar="KIND", choices=["secret"], help="secret")
    p.add_argument("name", metavar="NAME")
    p = sub.add_parser("completion", parents=[common], help="print a shell completion script (bash or zsh)")
    p.add_argument("shell", metavar="SHELL", choices=sorted(completion.SCRIPTS), help="bash or zsh")
    return parser


def _list_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-A", "--all-namespaces", action="store_true", help="HubSpotTokens of every namespace")
    p.add_argument("-l", "--selector", help="label selector, e.g. team=crm (passed to the API server)")


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
    environ: Mapping[str, str] | None = None,
) -> int:
    """Entry point. Everything with side effects can be injected (tests pass a fake ``api`` and clocks)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    stdout = stdout or sys.stdout
    out = Output(stdout, stderr or sys.stderr, color=use_color(stdout, environ))
    tokenish = [m.group(0) for a in argv for m in _TOKENISH.finditer(a)]
    out.add_secret(*tokenish, *[a for a in argv if _TOKENISH.search(a)])
    parser = build_parser(out)
    if argv[:1] == ["__complete"]:  # the shell scripts and kubectl_complete-hubspot ask here
        names = (lambda what, options: []) if tokenish else completion.api_names
        for line in completion.complete(argv[1:], parser, names if api is None else _names_from(api)):
            out.line(line)
        return EXIT_OK
    try:
        if tokenish:
            raise UsageError("an argument looks like a token; " + _NO_TOKEN_ARGS, parser.format_usage())
        args, extras = parser.parse_known_args(argv)
        if extras:
            if args.command in ("rotate", "authorize"):
                raise UsageError("unexpected extra argument(s), not shown; " + _NO_TOKEN_ARGS, parser.format_usage())
            raise UsageError("unrecognized arguments: " + " ".join(extras), parser.format_usage())
        if not args.command:
            parser.print_help()
            return EXIT_ERROR
        out.fmt = getattr(args, "output", None)
        out.color = out.color and out.fmt is None
        if args.command == "completion":
            out.raw_stdout(completion.script(args.shell))
            return EXIT_OK
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
            all_namespaces=bool(getattr(args, "all_namespaces", False)),
            operator_namespace=getattr(args, "operator_namespace", None) or None,
            operator_selector=getattr(args, "operator_selector", None) or DEFAULT_SELECTOR,
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
        if out.machine:
            out.emit(document("Error", reason=e.reason, message=str(e)))
        return EXIT_ERROR
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - report, never a traceback (it could show local values)
        out.error(f"unexpected {type(e).__name__}: {e}")
        if out.machine:
            out.emit(document("Error", reason="Unexpected", message=f"{type(e).__name__}: {e}"))
        return EXIT_ERROR


def _names_from(api: PluginAPI) -> Callable[[str, dict], list[str]]:
    """Completion names through an injected API (tests)."""

    def names(what: str, options: dict) -> list[str]:
        ns = options.get("-n") or options.get("--namespace") or api.default_namespace() or "default"
        try:
            items = api.list_tokens(ns)
        except Exception:  # noqa: BLE001
            return []
        if what == "targets":
            return sorted({((i.get("spec") or {}).get("target") or {}).get("name") for i in items} - {None})
        return sorted((i.get("metadata") or {}).get("name") for i in items)

    return names


def complete_main() -> int:
    """``kubectl_complete-hubspot ARGS... PARTIAL``: what kubectl >= 1.26 runs to complete ``kubectl hubspot``."""
    return main(["__complete", *sys.argv[1:]])
