"""``kubectl hubspot authorize NAME``: HubSpot's OAuth authorization-code flow for an OAuth HubSpotToken.

1. builds the install URL from the token's app (client id from spec.oauth.clientSecretRef, scopes from
   spec.requiredScopes plus ``oauth``, a random ``state``) and a redirect URI: a one-shot listener on
   ``http://127.0.0.1:<port>/callback``, or (``--headless``) whatever the app registered, the user pasting the
   redirect URL back on stdin (hidden on a terminal);
2. checks ``state``, then exchanges the code at the token endpoint of the token's API version (2026-03 by
   default) with the client secret, which is read from the Secret and never shown;
3. checks the hub pin (spec.hubId) and the required scopes against what HubSpot issued BEFORE writing: a
   mismatch writes nothing (and the refresh token just obtained is revoked);
4. writes the refresh token into the refresh-token Secret (compare-and-swap, created with the consent label
   if missing) and waits for the operator's verdict (Ready, or why not).

The decisions are pure functions (``build_authorize_url``, ``parse_redirect``, ``refusal``, ``verdict``, ...),
unit-tested in tests/unit/test_kubectl_authorize.py. No secret (client secret, code, tokens) reaches argv,
output, logs or exception messages: each one is registered with ``Output`` for redaction as soon as it is read.
"""

from __future__ import annotations

import re

import asyncio
import base64
import hmac
import http.server
import os
import queue
import secrets
import socket
import sys
import threading
import webbrowser
from typing import Iterable, Mapping
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from .. import __version__
from .api import ApiError, NotFound, PluginError
from .common import (
    EXIT_ERROR, EXIT_OK, EXIT_REJECTED, EXIT_TIMEOUT, Ctx, condition, describe_condition, get_token, parse_timeout,
    timed_out_tail,
)
from .operator_info import warn_if_absent
from .output import document
from .rotate import write_source
from .token_input import _isatty

DEFAULT_AUTHORIZE_URL = "https://app.hubspot.com/oauth/authorize"
DEFAULT_HUBSPOT_BASE_URL = "https://api.hubapi.com"
CALLBACK_PATH = "/callback"
DEFAULT_PORT = 8765  # register http://127.0.0.1:8765/callback as a redirect URL of the app once
REQUIRED_SCOPE = "oauth"  # HubSpot requires it in every install URL
MAX_REDIRECT_CHARS = 8192
MAX_CODE_CHARS = 2048
NOTE_EVERY = 15.0  # seconds between "still waiting" lines
PROMPT = "Paste the URL your browser was sent to after you approved (input hidden): "
_LOOPBACK = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1"}


class AuthorizeError(PluginError):
    reason = "AuthorizeFailed"

    def __init__(self, message: str, reason: str | None = None, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        if reason:
            self.reason = reason  # type: ignore[misc]
        self.exit_code = exit_code


class StateMismatch(AuthorizeError):
    def __init__(self, message: str) -> None:
        super().__init__(message, "StateMismatch")


# ---- pure decisions -----------------------------------------------------------------------------------

def install_scopes(required: Iterable[str]) -> list[str]:
    """``oauth`` first, then spec.requiredScopes in their order, each once."""
    out: list[str] = []
    for s in [REQUIRED_SCOPE, *required]:
        s = str(s).strip()
        if s and s not in out:
            out.append(s)
    return out


def build_authorize_url(base: str, client_id: str, scopes: Iterable[str], optional_scopes: Iterable[str],
                        redirect_uri: str, state: str) -> str:
    """HubSpot's install URL: ``client_id``, ``scope`` (space-separated, %20-encoded), ``optional_scope`` (only
    scopes not already required), ``redirect_uri`` and ``state``."""
    scopes = install_scopes(scopes)
    optional = [s for s in dict.fromkeys(str(o).strip() for o in optional_scopes) if s and s not in scopes]
    params = [("client_id", client_id), ("scope", " ".join(scopes))]
    if optional:
        params.append(("optional_scope", " ".join(optional)))
    params += [("redirect_uri", redirect_uri), ("state", state)]
    sep = "&" if urlsplit(base).query else "?"
    return base + sep + urlencode(params, quote_via=quote)


def parse_redirect(text: str, expected_state: str) -> str:
    """The ``code`` of the URL HubSpot redirected to (a full URL, or just its ``?query``), after checking that
    its ``state`` is ours. Denied consent (``error=...``) and a missing code are errors. Messages never carry
    the code."""
    text = (text or "").strip().lstrip("\ufeff").strip()
    if not text:
        raise AuthorizeError("no redirect URL was given (the input is empty); nothing was written", "NoRedirect")
    if len(text) > MAX_REDIRECT_CHARS or any(ch.isspace() for ch in text) or not text.isprintable():
        raise AuthorizeError("the input is not one URL (too long, several words or lines, or non-printable "
                             "characters); nothing was written", "NoRedirect")
    parts = urlsplit(text)
    query = parts.query if (parts.scheme or parts.query) else text.lstrip("?")
    params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    got_state = params.get("state")
    if not got_state or not hmac.compare_digest(got_state.encode(), expected_state.encode()):
        raise StateMismatch(
            "the redirect's state " + ("is missing" if not got_state else "does not match the one this command sent")
            + ": refused (it belongs to another authorize attempt, or was forged); nothing was written. Run "
            "`kubectl hubspot authorize` again and use the URL it prints")
    if "error" in params:
        desc = _printable(params.get("error_description") or "")
        raise AuthorizeError(f"HubSpot did not authorize the app: {_printable(params['error'])}"
                             f"{': ' + desc if desc else ''}; nothing was written", "ConsentDenied")
    code = params.get("code") or ""
    if not code:
        raise AuthorizeError("the redirect URL has no code parameter (was it copied whole?); nothing was written",
                             "NoCode")
    if len(code) > MAX_CODE_CHARS or not code.isascii() or not code.isprintable():
        raise AuthorizeError("the code in the redirect URL is malformed; nothing was written", "NoCode")
    return code


def _printable(text: str, limit: int = 200) -> str:
    return "".join(ch for ch in text if ch.isprintable())[:limit]


def refusal(pinned_hub: int | None, required_scopes: Iterable[str], hub_id: int | None,
            scopes: Iterable[str]) -> tuple[str, str] | None:
    """(reason, message) when what HubSpot issued does not fit the HubSpotToken, the same rules the operator
    applies before publishing (oauth_refresh.refusal_of); None when it fits."""
    if pinned_hub is not None and hub_id != pinned_hub:
        return "HubMismatch", (f"the consent was given for hub {hub_id if hub_id is not None else '(unknown)'}, "
                               f"but spec.hubId pins hub {pinned_hub}")
    missing = sorted(set(required_scopes) - set(scopes))
    if missing:
        return "ScopesMissing", "HubSpot granted the app without required scopes: " + ", ".join(missing)
    return None


def loopback_target(redirect_uri: str) -> tuple[str, int, str] | None:
    """(bind address, port, path) when ``redirect_uri`` is an ``http://`` loopback URL with a port that this
    machine can listen on; None otherwise (the plugin cannot receive that redirect itself)."""
    parts = urlsplit(redirect_uri)
    if parts.scheme != "http" or parts.hostname not in _LOOPBACK:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    if not port:
        return None
    return _LOOPBACK[parts.hostname], port, parts.path or "/"


def is_hubspot_api_host(url: str) -> bool:
    """HubSpot's own API hosts over https: api.hubapi.com and its regional twins (api-eu1.hubapi.com)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and (host == "api.hubapi.com" or bool(re.fullmatch(r"api-[a-z0-9]+\.hubapi\.com", host)))


def token_base_url(spec_url: str | None, flag_url: str | None) -> str:
    """Where the code is exchanged (with the app's client secret): the token's spec.hubspot.baseURL (the operator
    refreshes there too), else --hubspot-base-url, else HubSpot's API host.

    The spec is written by whoever may write HubSpotTokens, the person running `authorize` may be someone
    else (an admin holding the client secret), so a spec URL that is not HubSpot's own API host is used only
    when the flag names the same URL: the runner vouches for it. A flag that contradicts the spec is an error,
    and plain http is refused except on loopback (the simulator, a local proxy)."""
    spec_url = (spec_url or "").rstrip("/") or None
    flag_url = (flag_url or "").rstrip("/") or None
    if spec_url and flag_url and spec_url != flag_url:
        raise AuthorizeError(f"--hubspot-base-url {flag_url} differs from spec.hubspot.baseURL {spec_url}, where the "
                             "operator will refresh the token; drop the flag (or fix the spec)", "BadConfiguration")
    if spec_url and not flag_url and not is_hubspot_api_host(spec_url):
        raise AuthorizeError(f"spec.hubspot.baseURL {spec_url} is not a HubSpot API host (https://api.hubapi.com or "
                             "https://api-<region>.hubapi.com); the app's client secret and the new refresh token would "
                             f"be sent there. If you trust it, say so: --hubspot-base-url {spec_url}", "BadConfiguration")
    url = spec_url or flag_url or DEFAULT_HUBSPOT_BASE_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AuthorizeError(f"HubSpot base URL {url!r} is not an http(s) URL", "BadConfiguration")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise AuthorizeError(f"HubSpot base URL {url} is plain http to a host that is not loopback: the client secret "
                             "would cross the network unencrypted; use https", "BadConfiguration")
    return url


def verdict(obj: Mapping, prior_grant: str | None) -> tuple[str, str, str] | None:
    """The operator's answer to the refresh token just written: (outcome, reason, message) with outcome
    ``Ready`` or ``Rejected``; None while the operator has not judged it yet (status.grantFingerprint still
    the one from before the write) or is retrying a transient failure."""
    st = obj.get("status") or {}
    grant = st.get("grantFingerprint")
    if not grant or grant == prior_grant:
        return None
    reauth = condition(dict(obj), "ReauthRequired") or {}
    if reauth.get("status") == "True" and st.get("reauthRequiredFor") in (None, grant):
        return "Rejected", str(reauth.get("reason") or "ReauthRequired"), str(reauth.get("message") or "")
    refused = st.get("refusal") or {}
    if refused and refused.get("grantFingerprint") in (None, grant):
        return "Rejected", str(refused.get("reason") or "Refused"), str(refused.get("message") or "")
    ready = condition(dict(obj), "Ready") or {}
    if ready.get("status") == "True":
        return "Ready", str(ready.get("reason") or "Ready"), str(ready.get("message") or "")
    return None


# ---- receiving the redirect ----------------------------------------------------------------------------

class Listener:
    """A one-shot HTTP server on a loopback address that waits for HubSpot's redirect to ``path``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = CALLBACK_PATH) -> None:
        self.path = path
        self._got: queue.Queue[str] = queue.Queue(maxsize=1)
        # The state this authorization sent: a request to the callback without it (another local process, a
        # web page's image tag) is turned away instead of taking the one place HubSpot's redirect needs.
        self.expect_state: str | None = None
        got, want, listener = self._got, path, self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                if parts.path != want:
                    self.send_error(404)
                    return
                sent = (parse_qs(parts.query).get("state") or [""])[0]
                if listener.expect_state and not hmac.compare_digest(sent.encode(), listener.expect_state.encode()):
                    self.send_error(400, "not the answer to this authorization")
                    return
                try:
                    got.put_nowait(self.path)
                    body = b"<html><body><p>kubectl hubspot authorize received HubSpot's answer. You can close this " \
                           b"tab and go back to the terminal.</p></body></html>"
                    status = 200
                except queue.Full:
                    body, status = b"<html><body><p>Already answered.</p></body></html>", 409
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:  # noqa: A002 - the request line holds the code
                pass

        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            daemon_threads = True

        try:
            self._server = Server((host, port), Handler)
        except OSError as e:
            raise AuthorizeError(f"cannot listen on {host}:{port} for the redirect: {e.strerror or e}; choose "
                                 "another --port (and register that redirect URL with the app) or use --headless",
                                 "ListenFailed") from None
        self.host = host
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="authorize-callback", daemon=True)
        self._thread.start()

    @property
    def redirect_uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    def wait(self, timeout: float) -> str | None:
        """The request target (``/callback?code=..&state=..``) of the first redirect, or None after ``timeout``."""
        try:
            return self._got.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def read_pasted(ctx: Ctx) -> str:
    """The redirect URL from stdin: hidden (getpass) on a terminal, else one line of the pipe."""
    if _isatty(ctx.stdin):
        return ctx.getpass(PROMPT)
    line = ctx.stdin.readline(MAX_REDIRECT_CHARS + 1)
    return line or ""


def _can_open_browser(environ: Mapping[str, str]) -> bool:
    if sys.platform.startswith("linux") or "bsd" in sys.platform:
        return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))
    return True


# ---- HubSpot calls -------------------------------------------------------------------------------------

async def _exchange(base: str, api_version: str, client_id: str, client_secret: str, code: str,
                    redirect_uri: str):
    """(outcome of the code exchange, introspection of the refresh token when the answer named no hub)."""
    from ..hubspot import HubSpotClient, TokenGrant

    async with HubSpotClient(base, api_generation=api_version, user_agent=f"kubectl-hubspot/{__version__}") as hs:
        outcome = await hs.exchange_code(client_id, client_secret, code, redirect_uri)
        info = None
        if isinstance(outcome, TokenGrant) and outcome.hub_id is None and outcome.refresh_token is not None:
            info = await hs.introspect(client_id, client_secret, outcome.refresh_token, "refresh_token")
        return outcome, info


async def _revoke(base: str, api_version: str, client_id: str, client_secret: str, refresh_token: str) -> bool:
    from ..hubspot import HubSpotClient, Revoked

    async with HubSpotClient(base, api_generation=api_version, user_agent=f"kubectl-hubspot/{__version__}") as hs:
        return isinstance(await hs.revoke(client_id, client_secret, refresh_token, "refresh_token"), Revoked)


# ---- the command ---------------------------------------------------------------------------------------

def run(ctx: Ctx, args) -> int:
    """``-o json|yaml``: an AuthorizeResult document (docs/kubectl-plugin.md); never a secret."""
    result = {"name": args.name, "namespace": ctx.namespace, "hubId": None, "scopes": None, "redirectUri": None,
              "secret": None, "key": None, "write": None, "resourceVersion": None, "outcome": None,
              "reason": None, "message": None}
    ctx.extra["authorize"] = result
    try:
        rc = _run(ctx, args, result)
    except AuthorizeError as e:
        ctx.out.error(str(e))
        result.update(outcome="Refused" if e.exit_code == EXIT_REJECTED else "Failed", reason=e.reason,
                      message=str(e))
        rc = e.exit_code
    if ctx.out.machine:
        ctx.out.emit(document("AuthorizeResult", **result))
    return rc


def _secret_value(secret: dict, key: str) -> str | None:
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        return (secret.get("stringData") or {}).get(key)
    try:
        return base64.b64decode(raw).decode("utf-8").strip()
    except (ValueError, UnicodeDecodeError):
        return None


def _run(ctx: Ctx, args, result: dict) -> int:
    out = ctx.out
    timeout = parse_timeout(args.timeout)
    consent_timeout = parse_timeout(args.consent_timeout)
    obj = get_token(ctx, args.name)
    spec = obj.get("spec") or {}
    if spec.get("type") != "OAuth" or not spec.get("oauth"):
        raise PluginError(f"hubspottoken {args.name!r} has spec.type {spec.get('type')!r}; authorize works only for "
                          "OAuth tokens (private-app tokens are rotated with `kubectl hubspot rotate`)")
    oauth = spec["oauth"]
    cref, rref = oauth.get("clientSecretRef") or {}, oauth.get("refreshTokenSecretRef") or {}
    if not cref.get("name") or not rref.get("name"):
        raise PluginError(f"hubspottoken {args.name!r} lacks spec.oauth.clientSecretRef.name or "
                          "spec.oauth.refreshTokenSecretRef.name")
    api_version = oauth.get("apiVersion") or "2026-03"
    base = token_base_url((spec.get("hubspot") or {}).get("baseURL"), args.hubspot_base_url)

    client_secret_name = cref["name"]
    app_secret = ctx.api.read_secret(ctx.namespace, client_secret_name)
    if app_secret is None:
        raise PluginError(f"Secret {ctx.namespace}/{client_secret_name} (spec.oauth.clientSecretRef) not found: "
                          "create it with the app's client_id and client_secret first")
    id_key, secret_key = cref.get("clientIdKey") or "client_id", cref.get("clientSecretKey") or "client_secret"
    client_id = _secret_value(app_secret, id_key)
    client_secret = _secret_value(app_secret, secret_key)
    if client_secret:
        out.add_secret(client_secret, base64.b64encode(client_secret.encode()).decode())
    if not client_id or not client_secret:
        raise PluginError(f"Secret {ctx.namespace}/{client_secret_name} lacks key {id_key if not client_id else secret_key!r} "
                          "(spec.oauth.clientSecretRef)")

    state = secrets.token_urlsafe(24)
    listener: Listener | None = None
    redirect_uri = args.redirect_uri
    if not args.headless:
        if redirect_uri:
            target = loopback_target(redirect_uri)
            if target is None:
                raise AuthorizeError(f"--redirect-uri {redirect_uri} is not an http:// loopback URL with a port, so "
                                     "this command cannot receive the redirect; add --headless and paste the "
                                     "redirect URL instead", "BadConfiguration")
            listener = Listener(*target)
        else:
            listener = Listener(port=args.port)
            redirect_uri = listener.redirect_uri
        listener.expect_state = state
    elif not redirect_uri:
        redirect_uri = f"http://127.0.0.1:{args.port or DEFAULT_PORT}{CALLBACK_PATH}"
    result["redirectUri"] = redirect_uri
    try:
        url = build_authorize_url(args.authorize_url, client_id, spec.get("requiredScopes") or [],
                                  args.optional_scope or [], redirect_uri, state)
        returned = _consent(ctx, args, url, listener, consent_timeout)
    finally:
        if listener is not None:
            listener.close()
    code = parse_redirect(returned, state)
    out.add_secret(code)

    out.line(f"exchanging the code at {base} (OAuth {api_version})...")
    outcome, info = asyncio.run(_exchange(base, api_version, client_id, client_secret, code, redirect_uri))
    from ..hubspot import Failure

    if isinstance(outcome, Failure):
        raise AuthorizeError(f"HubSpot refused the code exchange: {outcome.reason}: {outcome.message}; nothing was "
                             "written (codes are single-use and short-lived: run the command again)", outcome.reason)
    if outcome.refresh_token is None:
        raise AuthorizeError("HubSpot's answer carried no refresh token; nothing was written", "NoRefreshToken")
    refresh_token = outcome.refresh_token.reveal()
    out.add_secret(refresh_token, base64.b64encode(refresh_token.encode()).decode(), outcome.access_token.reveal())
    hub_id, scopes = outcome.hub_id, list(outcome.scopes or ())
    if hub_id is None and info is not None and not isinstance(info, Failure):
        hub_id, scopes = info.hub_id, list(info.scopes or scopes)
    result.update(hubId=hub_id, scopes=sorted(scopes))
    def revoke_unstored() -> str:
        """The refresh token just issued is stored nowhere: revoke it (best effort) and say what happened."""
        try:
            revoked = asyncio.run(_revoke(base, api_version, client_id, client_secret, refresh_token))
        except Exception:  # noqa: BLE001 - best effort; the failure that led here is what matters
            revoked = False
        return ("the refresh token HubSpot just issued was revoked" if revoked
                else "revoking the refresh token HubSpot just issued failed (it was not stored anywhere)")

    refused = refusal(spec.get("hubId"), spec.get("requiredScopes") or [], hub_id, scopes)
    if refused is not None:
        left = revoke_unstored()
        raise AuthorizeError(f"refused: {refused[1]}; nothing was written ({left}; the app may stay installed in "
                             f"hub {hub_id}: uninstall it there if that was a mistake)", refused[0], EXIT_REJECTED)
    out.line(f"HubSpot authorized the app for hub {hub_id} with scopes {' '.join(sorted(scopes)) or '-'}")

    secret_name, key = rref["name"], rref.get("key") or "refresh_token"
    result.update(secret=secret_name, key=key)
    prior_grant = (obj.get("status") or {}).get("grantFingerprint")
    try:
        prior_grant = (ctx.api.get_token(ctx.namespace, args.name).get("status") or {}).get("grantFingerprint")
    except ApiError:
        pass
    try:  # from here until the write, any failure leaves the new grant stored nowhere: revoke it then
        existing = ctx.api.read_secret(ctx.namespace, secret_name)
        if existing is not None and ((existing.get("metadata") or {}).get("labels") or {}).get(
                "hubspot-operator.dev/consent") != "true":
            out.warn(f"Secret {ctx.namespace}/{secret_name} lacks the label hubspot-operator.dev/consent=true, so the "
                     f"operator will not use it; add it with: kubectl -n {ctx.namespace} label secret {secret_name} "
                     "hubspot-operator.dev/consent=true")
        version, what = write_source(ctx, secret_name, key, refresh_token)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - the new grant must not stay live and unstored
        # An answer lost after the request was sent (a timeout, a reset, a 5xx) may hide a write that landed:
        # revoking then would leave a dead refresh token in the Secret. Look before revoking.
        version = _holding(ctx, secret_name, key, refresh_token) if _unclear(e) else None
        if version is None:
            left = revoke_unstored()
            raise AuthorizeError(f"writing the refresh token into Secret {ctx.namespace}/{secret_name} failed "
                                 f"({e or type(e).__name__}); {left}; fix the cause and run the command again",
                                 "WriteFailed") from None
        what = "wrote (confirmed after an unclear answer)"
    result.update(write=what, resourceVersion=version)
    out.line(f"{what} key {key!r} of Secret {ctx.namespace}/{secret_name} (resourceVersion {version})")
    if spec.get("suspend"):
        out.warn(f"hubspottoken {args.name} has spec.suspend: true; the operator will not use the new refresh "
                 "token until it is resumed")
    if args.no_wait:
        out.line(f"not waiting (--no-wait); follow with: kubectl hubspot status {args.name} -n {ctx.namespace}")
        result["outcome"] = "NotWaited"
        return EXIT_OK
    warn_if_absent(ctx)
    return _wait(ctx, args.name, prior_grant, timeout, result)


def _unclear(e: BaseException) -> bool:
    """A failure after which the write may still have landed: no answer, or a server error."""
    status = e.status if isinstance(e, ApiError) else 0
    return status is None or status >= 500


def _holding(ctx: Ctx, secret_name: str, key: str, value: str) -> str | None:
    """The Secret's resourceVersion if it holds `value` under `key` (read again), else None."""
    try:
        secret = ctx.api.read_secret(ctx.namespace, secret_name) or {}
        held = base64.b64decode((secret.get("data") or {}).get(key) or "").decode()
    except Exception:  # noqa: BLE001 - unknown is "not held": the grant is revoked, as for any failed write
        return None
    if not hmac.compare_digest(held.encode(), value.encode()):
        return None
    return (secret.get("metadata") or {}).get("resourceVersion") or ""


def _consent(ctx: Ctx, args, url: str, listener: Listener | None, timeout: float) -> str:
    out = ctx.out
    if listener is None:
        out.line("Open this URL in a browser (on any machine), pick the HubSpot account and approve:")
        out.line(url)
        out.line("The browser then goes to the redirect URL (it may fail to load: that is expected). Copy that "
                 "URL from the address bar and paste it here.")
        return read_pasted(ctx)
    out.line("Opening HubSpot's install page; if no browser opens, open this URL yourself:")
    out.line(url)
    if not args.no_browser:
        if _can_open_browser(os.environ):
            try:
                webbrowser.open(url)
            except Exception:  # noqa: BLE001 - printing the URL is enough
                pass
        else:
            out.line("(no graphical display found: not starting a browser; use --headless on a remote machine)")
    out.line(f"waiting up to {int(timeout)}s for HubSpot's redirect to {listener.redirect_uri} ...")
    got = listener.wait(timeout)
    if got is None:
        raise AuthorizeError(f"no redirect reached {listener.redirect_uri} within {int(timeout)}s (--consent-timeout); "
                             "nothing was written", "ConsentTimedOut", EXIT_TIMEOUT)
    return listener.redirect_uri.split(listener.path, 1)[0] + got


def _wait(ctx: Ctx, name: str, prior_grant: str | None, timeout: float, result: dict) -> int:
    out = ctx.out
    start = ctx.clock()
    deadline, last_note = start + timeout, start
    obj: dict | None = None
    said_error = False
    out.line("waiting for the operator to refresh with the new grant...")
    while True:
        try:
            obj = ctx.api.get_token(ctx.namespace, name)
        except NotFound:
            raise PluginError(f"hubspottoken {name!r} was deleted while waiting") from None
        except ApiError as e:
            if not said_error:
                out.warn(f"reading hubspottoken {name} failed ({e}); retrying")
                said_error = True
        else:
            v = verdict(obj, prior_grant)
            if v is not None:
                outcome, reason, message = v
                result.update(outcome=outcome, reason=reason, message=message)
                if outcome == "Ready":
                    reauth = condition(obj, "ReauthRequired") or {}
                    out.line(f"Ready: the operator refreshed with the new grant; ReauthRequired: "
                             f"{reauth.get('status', 'Unknown')}")
                    return EXIT_OK
                out.error(f"the operator did not accept the new grant: {reason}: {message}")
                out.error(f"check with: kubectl hubspot status {name} -n {ctx.namespace}")
                return EXIT_REJECTED
        now = ctx.clock()
        if now >= deadline:
            result.update(outcome="TimedOut", message=f"no verdict within {int(timeout)}s")
            out.error(f"timed out after {int(timeout)}s waiting for the operator to use the new refresh token")
            if obj is not None:
                out.error(f"Ready: {describe_condition(condition(obj, 'Ready'))}")
                out.error(f"ReauthRequired: {describe_condition(condition(obj, 'ReauthRequired'))}")
            timed_out_tail(ctx, name, "the refresh token stays in the Secret and the operator will still use it")
            return EXIT_TIMEOUT
        if now - last_note >= NOTE_EVERY:
            out.line(f"still waiting ({int(now - start)}s of {int(timeout)}s)...")
            last_note = now
        ctx.sleep(max(0.0, min(ctx.poll_interval, deadline - now)))
