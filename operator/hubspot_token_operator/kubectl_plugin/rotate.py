"""``kubectl hubspot rotate``: put a new private-app token into the source Secret and wait for the verdict."""

from __future__ import annotations

import base64

from .api import ApiError, Conflict, NotFound, PluginError
from .common import (
    EXIT_OK, EXIT_REJECTED, EXIT_TIMEOUT, Ctx, condition, describe_condition, get_token, parse_timeout,
    timed_out_tail, when,
)
from .operator_info import warn_if_absent
from .output import document
from .token_input import TokenInputError, looks_like_private_app_token, read_token, secret_forms

WRITE_ATTEMPTS = 5  # on 409 conflicts
NOTE_EVERY = 15.0  # seconds between "still waiting" lines


def run(ctx: Ctx, args) -> int:
    """``-o json|yaml``: a RotateResult document (docs/kubectl-plugin.md); never the token."""
    result = {"name": args.name, "namespace": ctx.namespace, "secret": None, "key": None, "write": None,
              "resourceVersion": None, "outcome": None, "reason": None, "message": None, "previousUntil": None,
              "restartProgress": None}
    ctx.extra["rotate"] = result
    rc = _run(ctx, args, result)
    if ctx.out.machine:
        ctx.out.emit(document("RotateResult", **result))
    return rc


def _run(ctx: Ctx, args, result: dict) -> int:
    timeout = parse_timeout(args.timeout)
    obj = get_token(ctx, args.name)
    spec = obj.get("spec") or {}
    if spec.get("type") != "PrivateApp":
        raise PluginError(
            f"hubspottoken {args.name!r} has spec.type {spec.get('type')!r}; rotate works only for PrivateApp "
            "tokens (the operator refreshes OAuth tokens itself; see `kubectl hubspot refresh`)"
        )
    source = (spec.get("privateApp") or {}).get("tokenSecretRef") or {}
    secret_name, key = source.get("name"), source.get("key") or "token"
    if not secret_name:
        raise PluginError(f"hubspottoken {args.name!r} has no spec.privateApp.tokenSecretRef.name")

    token = read_token(args.from_file, ctx.stdin, ctx.getpass)
    ctx.out.add_secret(*secret_forms(token))
    if not looks_like_private_app_token(token):
        if not args.force:
            raise TokenInputError(
                "the input does not look like a HubSpot private-app token or service key "
                "(pat-<region>-<uuid>, such as pat-na1-...); nothing was written. "
                "If HubSpot really issued it in another format, run again with --force"
            )
        ctx.out.warn("the input does not look like a HubSpot private-app token (pat-<region>-<uuid>); "
                     "writing it anyway because of --force")
    if spec.get("suspend"):
        ctx.out.warn(f"hubspottoken {args.name} has spec.suspend: true; the operator will not verify the new "
                     "token until it is resumed")

    result.update(secret=secret_name, key=key)
    version, what = write_source(ctx, secret_name, key, token)
    result.update(write=what, resourceVersion=version)
    where = f"key {key!r} of Secret {ctx.namespace}/{secret_name}"
    if what == "unchanged":
        ctx.out.line(f"{where} already holds this token (resourceVersion {version}); not written again")
    else:
        ctx.out.line(f"{what} {where} (resourceVersion {version})")
    if args.no_wait:
        ctx.out.line(f"not waiting (--no-wait); follow with: kubectl hubspot status {args.name} -n {ctx.namespace}")
        result["outcome"] = "NotWaited"
        return EXIT_OK
    warn_if_absent(ctx)
    return wait_for_verdict(ctx, args.name, secret_name, version, timeout)


def write_source(ctx: Ctx, secret_name: str, key: str, token: str) -> tuple[str, str]:
    """Writes ``token`` under ``key``: create if missing, else replace guarded by resourceVersion, retrying
    409s. Returns (new resourceVersion, "created" | "updated" | "unchanged")."""
    ns = ctx.namespace
    encoded = base64.b64encode(token.encode()).decode()
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        current = ctx.api.read_secret(ns, secret_name)
        try:
            if current is None:
                body = {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    # Created by the person rotating, for this token: it consents to being read by it.
                    "metadata": {"name": secret_name, "namespace": ns,
                                 "labels": {"hubspot-operator.dev/consent": "true"}},
                    "type": "Opaque",
                    "data": {key: encoded},
                }
                return _version(ctx.api.create_secret(ns, body)), "created"
            if current.get("immutable"):
                raise PluginError(f"Secret {ns}/{secret_name} is immutable; it cannot be updated in place")
            data = dict(current.get("data") or {})
            if data.get(key) == encoded:
                return _version(current), "unchanged"
            metadata = {k: v for k, v in (current.get("metadata") or {}).items() if k != "managedFields"}
            if not metadata.get("resourceVersion"):
                raise PluginError(f"Secret {ns}/{secret_name} was read without a resourceVersion")
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": metadata,
                "type": current.get("type") or "Opaque",
                "data": {**data, key: encoded},
            }
            return _version(ctx.api.replace_secret(ns, secret_name, body)), "updated"
        except (Conflict, NotFound) as e:
            # 409: someone else wrote (or created) it between our read and write; 404: deleted meanwhile.
            if isinstance(e, NotFound) and current is None:
                raise PluginError(f"cannot create Secret {ns}/{secret_name}: {e}") from None
            if attempt == WRITE_ATTEMPTS:
                break
            ctx.out.line(f"Secret {ns}/{secret_name} changed while writing (conflict); retrying ({attempt}/{WRITE_ATTEMPTS - 1})")
            ctx.sleep(0.2 * attempt)
    raise PluginError(f"Secret {ns}/{secret_name} kept changing while writing; gave up after {WRITE_ATTEMPTS} "
                      "attempts. Nothing else was changed; try again")


def _version(secret: dict) -> str:
    return str((secret.get("metadata") or {}).get("resourceVersion") or "")


def version_reached(seen: object, written: str) -> bool:
    """The operator evaluated our write: same resourceVersion, or (numerically) a later one."""
    if seen is None or seen == "":
        return False
    if str(seen) == str(written):
        return True
    try:
        return int(str(seen)) > int(str(written))
    except ValueError:
        return False


def wait_for_verdict(ctx: Ctx, name: str, secret_name: str, version: str, timeout: float) -> int:
    out = ctx.out
    start = ctx.clock()
    deadline = start + timeout
    last_note = start
    said_pending = said_newer = said_api_error = False
    obj: dict | None = None
    out.line("waiting for the operator to verify the new token...")
    while True:
        try:
            obj = ctx.api.get_token(ctx.namespace, name)
        except NotFound:
            raise PluginError(f"hubspottoken {name!r} was deleted while waiting") from None
        except ApiError as e:  # a busy or restarting API server: keep trying until the deadline
            if not said_api_error:
                out.warn(f"reading hubspottoken {name} failed ({e}); retrying")
                said_api_error = True
        else:
            pa = (obj.get("status") or {}).get("privateApp") or {}
            seen = pa.get("sourceVersion")
            if version_reached(seen, version):
                if str(seen) != str(version) and not said_newer:
                    out.line(f"note: Secret {secret_name} changed again after this write (resourceVersion {seen}); "
                             "the result below is for its newer content")
                    said_newer = True
                outcome = pa.get("lastOutcome")
                if outcome == "Published":
                    _published(ctx, obj, name)
                    return EXIT_OK
                if outcome == "Rejected":
                    _rejected(ctx, obj, name, secret_name)
                    return EXIT_REJECTED
                if outcome == "Pending" and not said_pending:
                    out.line(f"HubSpot could not verify the token yet: {_pending_message(obj)}; "
                             "the operator retries, still waiting...")
                    said_pending = True
        now = ctx.clock()
        if now >= deadline:
            _timed_out(ctx, obj, name, secret_name, version, timeout)
            return EXIT_TIMEOUT
        if now - last_note >= NOTE_EVERY:
            out.line(f"still waiting ({int(now - start)}s of {int(timeout)}s)...")
            last_note = now
        ctx.sleep(max(0.0, min(ctx.poll_interval, deadline - now)))


def _published(ctx: Ctx, obj: dict, name: str) -> None:
    pa = (obj.get("status") or {}).get("privateApp") or {}
    ctx.extra.get("rotate", {}).update(outcome="Published", reason=pa.get("lastOutcomeReason"),
                                       previousUntil=pa.get("previousUntil"), restartProgress=restart_progress(obj))
    now = ctx.now()
    if pa.get("previousUntil"):
        kept = f"previous token kept until {when(pa['previousUntil'], now)}"
    else:
        kept = "no previous token was published, so none is kept"
    ctx.out.line(f"verified and published; {kept}; restart progress: {restart_progress(obj)}")
    if pa.get("previousUntil"):
        ctx.out.line("expire the previous token in HubSpot only once PreviousTokenRetirable is True "
                     f"(kubectl hubspot status {name} -n {ctx.namespace})")


def _rejected(ctx: Ctx, obj: dict, name: str, secret_name: str) -> None:
    status = obj.get("status") or {}
    pa = status.get("privateApp") or {}
    c = condition(obj, "RotationAccepted") or {}
    reason = pa.get("lastOutcomeReason") or c.get("reason") or "Rejected"
    message = str(c.get("message") or "no message")
    for suffix in ("; the current token stays published", "; no token is published"):
        message = message.removesuffix(suffix)
    kept = "the previous token is still published" if status.get("tokenFingerprint") else "no token is published yet"
    ctx.extra.get("rotate", {}).update(outcome="Rejected", reason=reason, message=message)
    ctx.out.line(f"rejected: {reason}: {message}; {kept}")
    ctx.out.line(f"Secret {secret_name} still holds the rejected token; run `kubectl hubspot rotate {name}` "
                 "again with a valid one")


def _pending_message(obj: dict) -> str:
    c = condition(obj, "Degraded")
    if c and c.get("status") == "True" and c.get("message"):
        return f"{c.get('reason') or 'VerifyFailed'}: {c['message']}"
    return str((obj.get("status") or {}).get("lastFailureReason") or "VerifyFailed")


def _timed_out(ctx: Ctx, obj: dict | None, name: str, secret_name: str, version: str, timeout: float) -> None:
    out = ctx.out
    ctx.extra.get("rotate", {}).update(outcome="TimedOut", message=f"no verdict within {int(timeout)}s")
    out.error(f"timed out after {int(timeout)}s waiting for the operator to verify the token written to Secret "
              f"{secret_name} (resourceVersion {version})")
    if obj is None:
        out.error(f"could not read hubspottoken {name}")
    else:
        pa = (obj.get("status") or {}).get("privateApp") or {}
        seen = pa.get("sourceVersion")
        if (obj.get("spec") or {}).get("suspend"):
            out.error("spec.suspend is true: the operator does not verify suspended tokens")
        if not version_reached(seen, version):
            out.error(f"the operator has not evaluated this write yet (last evaluated resourceVersion {seen or '-'}); "
                      f"is it running and watching namespace {ctx.namespace}?")
        elif pa.get("lastOutcome") == "Pending":
            out.error(f"verification with HubSpot is still pending: {_pending_message(obj)}")
        out.error(f"Ready: {describe_condition(condition(obj, 'Ready'))}")
    timed_out_tail(ctx, name, "the token stays in the Secret and the operator will still act on it")


_KEEP_STATES = {"Missing", "Deferred", "Paused", "Failed"}


def restart_progress(obj: dict) -> str:
    """One line on the workload restarts for the current credential revision (status.rollout.targets)."""
    spec_rollout = (obj.get("spec") or {}).get("rollout") or {}
    status = obj.get("status") or {}
    if spec_rollout.get("restartOn") == "Never":
        return "restarts disabled (spec.rollout.restartOn is Never)"
    targets = ((status.get("rollout") or {}).get("targets")) or []
    if not targets:
        if spec_rollout.get("targets") or spec_rollout.get("selector"):
            return "restarts pending (no target reported yet)"
        return "no restart targets"
    revision = status.get("restartRevision")
    parts, done = [], 0
    for t in targets:
        state = t.get("state") or "Unknown"
        if revision and t.get("revision") != revision and state not in _KEEP_STATES:
            state = "Waiting"  # not yet restarted for this revision (spec.rollout.delay / minInterval)
        done += state == "Complete"
        parts.append(f"{t.get('kind')}/{t.get('name')} {state}")
    return f"{done}/{len(targets)} complete ({', '.join(parts)})"
