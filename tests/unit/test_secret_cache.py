"""The watch-fed Secret cache: reads without GETs, never staler than the API server lets it be."""

import asyncio
import base64

from hubspot_token_operator.kube import SecretView
from hubspot_token_operator.secret_cache import SecretCache, view_from_body


def body(name, rv, value=b"v", ns="ns"):
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv), "labels": {"a": "b"},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u1"}]},
            "type": "Opaque", "data": {"k": base64.b64encode(value).decode()}}


class Server:
    """The API server's answer to a GET, with a hook to let a watch event land while the GET is in flight."""

    def __init__(self):
        self.objects: dict = {}
        self.gets = 0
        self.during_get = None

    async def get(self, ns, name):
        self.gets += 1
        answer = self.objects.get((ns, name))
        if self.during_get:
            hook, self.during_get = self.during_get, None
            hook()
        await asyncio.sleep(0)
        return view_from_body(answer) if answer else None


def make(wanted=lambda ns, name: True):
    server = Server()
    cache = SecretCache(server.get)
    cache.wanted = wanted
    return server, cache


def test_a_watched_secret_is_read_without_a_get():
    server, cache = make()
    cache.observe(None, body("s", 5))  # from the listing
    got = asyncio.run(cache.get("ns", "s"))
    assert got.text("k") == "v" and got.labels == {"a": "b"} and got.owner_uids == ["u1"]
    assert server.gets == 0 and cache.hits == 1


def test_a_miss_is_one_get_then_remembered():
    server, cache = make()
    server.objects[("ns", "s")] = body("s", 3)

    async def twice():
        return await cache.get("ns", "s"), await cache.get("ns", "s")

    a, b = asyncio.run(twice())
    assert a.resource_version == b.resource_version == "3" and server.gets == 1


def test_an_absent_secret_is_remembered_absent_until_the_watch_shows_it():
    server, cache = make()

    async def scenario():
        assert await cache.get("ns", "s") is None
        assert await cache.get("ns", "s") is None
        cache.observe("ADDED", body("s", 9))
        return await cache.get("ns", "s")

    assert asyncio.run(scenario()).resource_version == "9" and server.gets == 1


def test_a_get_racing_a_creation_event_does_not_hide_the_secret():
    server, cache = make()
    # the GET was answered 404 before the Secret existed, but the creation event lands before the answer
    server.during_get = lambda: cache.observe("ADDED", body("s", 11))
    assert asyncio.run(cache.get("ns", "s")) is None  # that read saw the old world...
    assert asyncio.run(cache.get("ns", "s")).resource_version == "11"  # ...the cache does not keep it


def test_our_write_is_kept_and_its_late_echo_or_an_older_event_does_not_undo_it():
    _, cache = make()
    cache.observe(None, body("s", 5, b"old"))
    cache.wrote(view_from_body(body("s", 8, b"new")))
    cache.observe("MODIFIED", body("s", 7, b"between"))  # an older event arriving late
    assert asyncio.run(cache.get("ns", "s")).text("k") == "new"
    cache.observe("MODIFIED", body("s", 8, b"new"))  # the echo
    cache.observe("MODIFIED", body("s", 12, b"user"))  # someone else, later
    assert asyncio.run(cache.get("ns", "s")).text("k") == "user"


def test_deletion_and_invalidation():
    server, cache = make()
    cache.observe(None, body("s", 5))
    cache.observe("DELETED", body("s", 6))
    assert asyncio.run(cache.get("ns", "s")) is None and server.gets == 0
    cache.observe("ADDED", body("s", 7))
    cache.invalidate("ns", "s")  # a write was refused with 409: read fresh next time
    server.objects[("ns", "s")] = body("s", 10)
    assert asyncio.run(cache.get("ns", "s")).resource_version == "10" and server.gets == 1


def test_only_secrets_some_token_uses_are_kept():
    used = {("ns", "used")}
    server, cache = make(lambda ns, name: (ns, name) in used)
    for i in range(1000):
        cache.observe(None, body(f"unrelated-{i}", i))
    cache.observe(None, body("used", 1))
    assert len(cache) == 1
    used.clear()  # the token that used it was deleted
    assert cache.prune("ns") == 1 and len(cache) == 0


def test_secret_view_never_prints_values():
    v = SecretView("s", "ns", {"token": b"pat-na1-secret"}, "1")
    assert "pat-na1" not in repr(v)


def test_a_stored_token_body_drops_managed_fields_and_the_last_applied_copy():
    """What the runtime keeps per token (memory grows with it): no managedFields, no kubectl copy, and the
    body it was given is left as it was."""
    import types

    from hubspot_token_operator.clock import Clock
    from hubspot_token_operator.fingerprint import Fingerprinter
    from hubspot_token_operator.runtime import Runtime
    from hubspot_token_operator.settings import Settings

    rt = Runtime(settings=Settings(), kube=types.SimpleNamespace(), clock=Clock(), fingerprints=Fingerprinter(b"k" * 32))
    body = {"metadata": {"namespace": "ns", "name": "t", "resourceVersion": "3",
                         "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}",
                                         "hubspot-operator.dev/rotate": "now"}},
            "spec": {"type": "oauth"}}
    assert rt.remember(body)
    kept = rt.tokens[("ns", "t")]
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["annotations"] == {"hubspot-operator.dev/rotate": "now"}
    assert kept["metadata"]["resourceVersion"] == "3" and kept["spec"] == {"type": "oauth"}
    assert "managedFields" in body["metadata"]  # the caller's body is untouched
    assert not rt.remember(dict(body))  # same version: nothing new


def test_a_secret_seen_before_its_token_is_read_without_a_get_and_kept_current():
    """GitOps order: the Secrets arrive on the watch first, the token a moment later."""
    used = set()
    server, cache = make(wanted=lambda ns, name: (ns, name) in used)
    cache.observe("ADDED", body("app", 4, b"old"))
    cache.observe("MODIFIED", body("app", 5, b"new"))  # still held, and updated
    assert len(cache) == 0  # held, not cached: no token uses it yet
    used.add(("ns", "app"))
    got = asyncio.run(cache.get("ns", "app"))
    assert got.text("k") == "new" and got.resource_version == "5" and server.gets == 0
    assert len(cache) == 1


def test_a_held_secret_that_is_deleted_is_read_from_the_server():
    used = set()
    server, cache = make(wanted=lambda ns, name: (ns, name) in used)
    cache.observe("ADDED", body("gone", 4))
    cache.observe("DELETED", body("gone", 6))
    used.add(("ns", "gone"))
    assert asyncio.run(cache.get("ns", "gone")) is None and server.gets == 1


def test_the_secrets_no_token_uses_are_held_only_up_to_a_fixed_number():
    from hubspot_token_operator.secret_cache import RECENT_MAX

    server, cache = make(wanted=lambda ns, name: False)
    for i in range(RECENT_MAX + 500):
        cache.observe("ADDED", body(f"s{i}", i + 1))
    assert len(cache._recent) == RECENT_MAX and len(cache) == 0
    cache.wanted = lambda ns, name: True
    asyncio.run(cache.get("ns", "s0"))  # the oldest was let go: one GET
    asyncio.run(cache.get("ns", f"s{RECENT_MAX + 499}"))  # the newest is held: no GET
    assert server.gets == 1


def test_our_own_write_replaces_what_is_held():
    used = set()
    server, cache = make(wanted=lambda ns, name: (ns, name) in used)
    cache.observe("ADDED", body("t", 4, b"held"))
    cache.wrote(view_from_body(body("t", 9, b"written")))  # not wanted: the held copy is dropped
    used.add(("ns", "t"))
    server.objects[("ns", "t")] = body("t", 9, b"written")
    assert asyncio.run(cache.get("ns", "t")).text("k") == "written" and server.gets == 1


def test_stored_tokens_and_secrets_share_their_keys_and_short_strings():
    """Each decoded response has its own copy of every string; what the runtime keeps shares one copy of
    each key and short value across objects (shared_strings), and is equal to what it was made from."""
    import json

    from hubspot_token_operator.runtime import slim
    from hubspot_token_operator.shared_strings import SHORT, shared

    message = "access token valid until 2026-12-03T18:00:00Z; next refresh at 2026-12-03T18:20:00Z"
    raw = json.dumps({"metadata": {"name": "t", "namespace": "team-a"}, "status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "Refreshed", "message": message}], "hubId": 4242}})
    a, b = slim(json.loads(raw)), slim(json.loads(raw))
    assert a == json.loads(raw) == b
    (ka, va), (kb, vb) = next(iter(a["status"]["conditions"][0].items())), next(iter(b["status"]["conditions"][0].items()))
    assert ka is kb and va is vb  # "type", "Ready": one copy
    assert a["metadata"]["namespace"] is b["metadata"]["namespace"]
    assert a["status"]["conditions"][0]["message"] is not b["status"]["conditions"][0]["message"]  # long: not worth it
    assert len(message) > SHORT and shared([1, None, 2.5, True]) == [1, None, 2.5, True]
    raw = json.dumps({"metadata": {"name": "s", "namespace": "team-a", "labels": {"app.kubernetes.io/name": "crm"}},
                      "data": {"access_token": base64.b64encode(b"v").decode()}})
    va, vb = view_from_body(json.loads(raw)), view_from_body(json.loads(raw))
    assert next(iter(va.labels)) is next(iter(vb.labels)) and va.labels["app.kubernetes.io/name"] is vb.labels["app.kubernetes.io/name"]
    assert next(iter(va.data)) is next(iter(vb.data)) and va.namespace is vb.namespace


def test_after_an_election_the_refresh_token_is_read_from_the_api_server_once():
    """A new leader's cache may hold a refresh-token Secret from a moment before the former leader wrote
    back the refresh token HubSpot rotated (its watch lags). The read that feeds a refresh is confirmed with
    a GET once per leadership; later ones, and Secrets we wrote ourselves since, are served from memory."""
    from hubspot_token_operator.secret_cache import SecretCache

    server = {("ns", "install"): "rt-2"}  # the former leader's write-back
    gets = []

    async def fetch(ns, name):
        gets.append(name)
        return SecretView(name, ns, {"refresh_token": server[(ns, name)].encode()}, str(len(gets) + 10))

    async def main():
        cache = SecretCache(fetch)
        cache.wanted = lambda ns, name: True
        old = body("install", 5, b"rt-1")
        old["data"] = {"refresh_token": old["data"]["k"]}
        cache.observe(None, old)  # what the watch showed
        assert (await cache.get("ns", "install")).text("refresh_token") == "rt-1" and gets == []
        cache.distrust()  # elected
        assert (await cache.confirmed("ns", "install")).text("refresh_token") == "rt-2"
        assert (await cache.confirmed("ns", "install")).text("refresh_token") == "rt-2" and gets == ["install"]
        assert (await cache.get("ns", "install")).text("refresh_token") == "rt-2"
        cache.wrote(SecretView("mine", "ns", {"refresh_token": b"rt-9"}, "30"))
        server[("ns", "mine")] = "never read"
        assert (await cache.confirmed("ns", "mine")).text("refresh_token") == "rt-9" and gets == ["install"]

    asyncio.run(main())
