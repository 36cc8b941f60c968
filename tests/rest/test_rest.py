"""Every REST path of the contract through the real sidecar, every List
query parameter in the seed's spelling, the seeds' key sets and types, and
every error row of the contract by HTTP status."""

import re

import pytest

from vendor import error_of
from conftest import (
    ORG,
    SECRET,
    call,
    create,
    eventually,
    ok,
    seed_examples,
    shape,
    tokens_path,
    unique,
)

PREFIXES = ["iam", "platform"]
DYNATRACE_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
OTHER_ORG = "org-rest-other"


def token_path(token_id, prefix="iam", org=ORG):
    return f"/{prefix}/v1beta1/organizations/{org}/tokens/{token_id}"


def listing(query="", prefix="platform", secret=None):
    return call("GET", tokens_path(prefix) + (f"?{query}" if query else ""), secret=secret)


def seed_object(name):
    return seed_examples(name)[-1]


def lookup(token, secret=None):
    return call("POST", "/api/v2/apiTokens/lookup", {"token": token}, secret=secret)


@pytest.fixture(scope="module")
def used_token():
    """A WORKSPACE token with an expiry and DAG / DAG_TAG bindings that has
    been used once (so lastUsedAt, lastUsedDate and lastUsedIpAddress exist):
    every optional field of the seeds is present."""
    workspace = unique("ws")
    token = create(entity=workspace, tokenExpiryPeriodInDays=30, description="for the seeds")
    ok(
        call(
            "POST",
            token_path(token["id"]) + "/roles",
            {
                "roles": [
                    {"entityType": "WORKSPACE", "entityId": workspace, "role": "WORKSPACE_OPERATOR"},
                    {"entityType": "DAG", "entityId": "dag-1", "role": "DAG_VIEWER", "deploymentId": "dep-1"},
                ]
            },
        )
    )
    ok(lookup(token["token"], secret=token["token"]))
    eventually(
        "the use to be flushed",
        lambda: ok(call("GET", token_path(token["id"]))).get("lastUsedAt"),
    )
    return token


# ---------------------------------------------------------------- the seeds


# The fields Astronomer's ApiToken requires (astronomer_iam_v1beta1_current.yaml).
REQUIRED = {"createdAt", "description", "id", "kind", "name", "shortToken", "startAt", "type", "updatedAt"}
# What the seeds' examples leave out but the vendor spec defines.
NOT_IN_SEEDS = {"lastRotatedAt": "datetime"}


def within(got, seed, where="token"):
    """Closed world against a seed example: every key of `got` is one the
    seed shows (or NOT_IN_SEEDS), with the seed's type, recursively; the
    seed may show more (optional fields, filled in its example)."""
    for key, value in got.items():
        expected = seed.get(key, NOT_IN_SEEDS.get(key))
        assert expected is not None, f"{where}.{key} is not in the seed"
        if isinstance(value, dict):
            within(value, expected, f"{where}.{key}")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                within(item, expected[0], f"{where}.{key}[]")
        else:
            assert shape(value) == expected, f"{where}.{key}: {shape(value)} != {expected}"


def assert_absent_not_empty(token):
    """Issue 18.10: what the vendor leaves out is absent, not "" or null."""
    assert "token" not in token, "the secret only in Create and Rotate"
    for subject in (token["createdBy"], token["updatedBy"]):
        if subject["subjectType"] == "SERVICEKEY":
            assert set(subject) == {"id", "apiTokenName", "subjectType"}, subject
        else:
            assert "apiTokenName" not in subject, subject
    for role in token["roles"]:
        assert ("deploymentId" in role) == (role["entityType"] in ("DAG", "DAG_TAG")), role


def test_get_matches_the_seeds_key_sets_and_types(used_token):
    seed_get = shape(seed_object("000_6256657fade3294e.txt"))
    seed_list_token = shape(seed_object("001_0faf8d4e54682395.txt"))["tokens"][0]
    for prefix in PREFIXES:
        got = ok(call("GET", token_path(used_token["id"], prefix)))
        # Get returns the same ApiToken as List's items: within seed 001's
        # token shape (seed 000's plus kind and roles[].deploymentId, see
        # tests/rest/seeds/README.md), with what a vendor leaves out absent.
        within(got, seed_list_token, prefix)
        assert REQUIRED <= set(got), prefix
        assert_absent_not_empty(got)
        assert {"lastUsedAt", "endAt", "expiryPeriodInDays"} <= set(got)
        for key, kind in seed_get.items():
            if key in got and key not in ("roles", "createdBy", "updatedBy"):
                assert shape(got)[key] == kind, key


def test_list_matches_seed_001_envelope_and_items(used_token):
    seed = shape(seed_object("001_0faf8d4e54682395.txt"))
    workspace = used_token["roles"][0]["entityId"]
    for prefix in PREFIXES:
        got = ok(listing(f"workspaceId={workspace}", prefix))
        assert [t["id"] for t in got["tokens"]] == [used_token["id"]]
        assert set(got) == set(seed), prefix
        within(got, seed, prefix)
        assert_absent_not_empty(got["tokens"][0])


def test_lookup_matches_seed_002(used_token):
    seed = shape(seed_object("002_bcfb778593b6b137.txt"))
    # Lookup answers from the credential cache (--auth-cache-ttl), so the
    # flushed use shows up within that bound, not at once.
    got = eventually("lastUsedDate in Lookup", lambda: (r := ok(lookup(used_token["token"]))).get("lastUsedDate") and r)
    # tokend's documented extensions of Dynatrace's shape: the tenant, the
    # start of validity and the qualified scopes (proto comments of
    # ApiTokenMetadata); modifiedDate is Dynatrace's, not in the seed.
    extensions = {"organizationId": "string", "startDate": "datetime", "resourceScopes": "string[]",
                  "modifiedDate": "datetime"}
    # A WORKSPACE_OPERATOR reads one workspace's tokens, not the
    # organization's: no plain Dynatrace scope (issue 18.12).
    assert got["scopes"] == []
    assert shape(got) == {**seed, **extensions, "scopes": "[]"}
    assert got["organizationId"] == ORG
    for scope in got["resourceScopes"]:
        assert scope.split(":")[-1].startswith(f"organizations/{ORG}"), scope
    assert got["id"] == used_token["shortToken"].split(".")[0] + "." + used_token["id"]
    assert got["enabled"] is True
    assert got["lastUsedIpAddress"]
    # Dynatrace's date form, milliseconds kept (issue 18.7).
    for key in ("lastUsedDate", "expirationDate", "creationDate", "modifiedDate", "startDate"):
        assert DYNATRACE_DATE.match(got[key]), (key, got[key])
    token = ok(call("GET", token_path(used_token["id"])))
    assert got["creationDate"] == token["createdAt"].replace("Z", ".000Z")
    assert got["modifiedDate"] == token["updatedAt"].replace("Z", ".000Z")


def test_lookup_scopes_give_dynatrace_clients_plain_names():
    """Issue 18.12: `apiTokens.read` / `apiTokens.write` in `scopes` only for
    what holds across the whole organization; the rest in resourceScopes."""
    cases = [
        (create(type_="ORGANIZATION", role="ORGANIZATION_OWNER"), ["apiTokens.read", "apiTokens.write"]),
        (create(type_="ORGANIZATION", role="ORGANIZATION_BILLING_ADMIN"), ["apiTokens.read"]),
        (create(type_="ORGANIZATION", role="ORGANIZATION_OBSERVE_ADMIN"), []),
        (create(type_="WORKSPACE", role="WORKSPACE_OWNER"), []),
    ]
    for token, plain in cases:
        got = ok(lookup(token["token"]))
        assert got["scopes"] == plain, (token["roles"], got)
        assert got["resourceScopes"][0].startswith("role:" + token["roles"][0]["role"] + ":organizations/" + ORG)
    # A token never looked up before: each Lookup above was a use of its
    # token, which the next usage flush (every 200 ms here) makes visible.
    never = ok(lookup(create(type_="ORGANIZATION", role="ORGANIZATION_OWNER")["token"]))
    assert "lastUsedIpAddress" not in never and "lastUsedDate" not in never, "never used: absent"
    assert "expirationDate" not in never, "never expires: absent"


def test_empty_list_prints_every_envelope_field():
    got = ok(listing(f"workspaceId={unique('nobody')}"))
    assert got == {"limit": 20, "offset": 0, "tokens": [], "totalCount": 0}


# ------------------------------------------------------------ every path


def test_create_update_roles_rotate_events_delete_round_trip():
    workspace = unique("ws")
    created = create(entity=workspace, description="d1")
    assert created["token"].startswith(created["shortToken"].split(".")[0] + "." + created["id"] + ".")
    path = token_path(created["id"])

    updated = ok(call("POST", path, {"name": "renamed", "description": "d2", "enabled": False}))
    assert (updated["name"], updated["description"]) == ("renamed", "d2")
    assert lookup(created["token"], secret=created["token"]).status == 401, "disabled"
    ok(call("POST", path, {"enabled": True}))
    eventually("re-enabled token to work", lambda: lookup(created["token"], secret=created["token"]).status == 200)

    roles = [{"entityType": "WORKSPACE", "entityId": workspace, "role": "WORKSPACE_AUTHOR"}]
    with_roles = ok(call("POST", path + "/roles", {"roles": roles}))
    # Astronomer's SubjectRoles, not the token (issue 18.2).
    assert with_roles == {"workspaceRoles": [{"workspaceId": workspace, "role": "WORKSPACE_AUTHOR"}],
                          "deploymentRoles": [], "dagRoles": []}, with_roles
    assert ok(call("GET", path))["roles"] == roles

    assert "lastRotatedAt" not in created and "lastRotatedAt" not in updated, "never rotated yet"
    rotated = ok(call("POST", path + "/rotate", {}))
    assert rotated["token"] and rotated["token"] != created["token"]
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", rotated["lastRotatedAt"]), rotated
    assert ok(call("GET", path))["lastRotatedAt"] == rotated["lastRotatedAt"]
    assert ok(lookup(rotated["token"]))["name"] == "renamed"
    eventually("the old secret to stop working", lambda: lookup(created["token"]).status == 404)

    events = ok(call("GET", path + "/events"))
    actions = [e["action"] for e in events["events"]]
    # The refused use of the disabled token is audited as an aggregate,
    # written when the failure counters are flushed: it may not be there yet.
    failed = actions.count("AUTHENTICATION_FAILED")
    actions = [a for a in actions if a != "AUTHENTICATION_FAILED"]
    assert actions == ["ROTATE", "UPDATE_ROLES", "UPDATE", "UPDATE", "CREATE"], actions
    assert events["totalCount"] == 5 + failed
    # A failure aggregate flushed between two reads shifts the newest-first
    # listing by one, so the page is compared with a full listing read right
    # after it, and read again if an aggregate landed in between.
    def page_matching_the_full_listing():
        page = ok(call("GET", path + "/events?limit=2&offset=1"))
        full = ok(call("GET", path + "/events"))
        return page if page["events"] == full["events"][1:3] else None

    page = eventually("a page equal to the full listing's events 1..3", page_matching_the_full_listing)
    assert (page["limit"], page["offset"], len(page["events"])) == (2, 1, 2)

    # Astronomer's DeleteApiToken: 204 and no body (gRPC keeps Empty).
    deleted = call("DELETE", path)
    assert (deleted.status, deleted.raw) == (204, b""), deleted
    assert deleted.headers.get("content-type") is None, dict(deleted.headers)
    assert call("GET", path).status == 404
    assert call("DELETE", path).status == 404
    assert lookup(rotated["token"]).status == 404


def test_every_write_is_also_under_the_platform_prefix():
    """Issue 18.8: Astronomer's docs show the writes under /platform/v1beta1 too."""
    base = tokens_path("platform")
    created = ok(call("POST", base, {"name": unique("plat"), "type": "WORKSPACE", "role": "WORKSPACE_OPERATOR",
                                     "entityId": unique("ws")}))
    path = f"{base}/{created['id']}"
    assert ok(call("POST", path, {"description": "via platform"}))["description"] == "via platform"
    roles = ok(call("POST", path + "/roles", {"roles": [dict(created["roles"][0], role="WORKSPACE_MEMBER")]}))
    assert roles["workspaceRoles"] == [{"workspaceId": created["roles"][0]["entityId"], "role": "WORKSPACE_MEMBER"}]
    rotated = ok(call("POST", path + "/rotate", {}))
    assert rotated["token"] != created["token"] and rotated["lastRotatedAt"]
    deleted = call("DELETE", path)
    assert (deleted.status, deleted.raw) == (204, b""), deleted
    assert call("GET", path).status == 404


def test_rotate_with_a_grace_period_keeps_the_old_secret_for_a_while():
    created = create()
    rotated = ok(call("POST", token_path(created["id"]) + "/rotate", {"gracePeriodSeconds": 60}))
    assert ok(lookup(created["token"]))["name"] == created["name"]
    assert ok(lookup(rotated["token"]))["name"] == created["name"]


def test_create_with_every_body_field():
    body = {
        "name": unique("full"),
        "description": "all fields",
        "type": "DEPLOYMENT",
        "role": "DEPLOYMENT_ADMIN",
        "entityId": unique("dep"),
        "tokenExpiryPeriodInDays": 7,
        "kind": "DIRECT_ACCESS",
        "startAt": "2026-01-01T00:00:00Z",
    }
    got = ok(call("POST", f"/iam/v1beta1/organizations/{ORG}/tokens", body))
    assert got["kind"] == "DIRECT_ACCESS"
    assert got["expiryPeriodInDays"] == 7
    assert got["startAt"] == "2026-01-01T00:00:00Z"
    assert got["endAt"] == "2026-01-08T00:00:00Z"
    assert got["roles"] == [
        {"entityId": body["entityId"], "entityType": "DEPLOYMENT", "role": "DEPLOYMENT_ADMIN"}
    ]
    assert got["createdBy"]["subjectType"] == "SERVICEKEY"


# --------------------------------------------------- List query parameters


@pytest.fixture(scope="module")
def family():
    """Tokens with known bindings, in workspaces and deployments of their own."""
    ws, dep = unique("ws"), unique("dep")
    tag_a, tag_b, tag_c = unique("tag"), unique("tag"), unique("tag")
    dag = unique("dag")

    def with_roles(token, roles):
        own = {"entityType": "DEPLOYMENT", "entityId": dep, "role": "DEPLOYMENT_ADMIN"}
        ok(call("POST", token_path(token["id"]) + "/roles", {"roles": [own] + roles}))
        return token

    names = {}
    names["b"] = create(name="b-" + ws, entity=ws)
    names["a1"] = create(name="a1-" + ws, entity=ws, description="same")
    names["a2"] = create(name="a2-" + ws, entity=ws, kind="DIRECT_ACCESS", description="same")
    names["tag_a"] = with_roles(
        create(type_="DEPLOYMENT", role="DEPLOYMENT_ADMIN", entity=dep),
        [{"entityType": "DAG_TAG", "entityId": tag_a, "role": "DAG_AUTHOR", "deploymentId": dep}],
    )
    names["tag_b"] = with_roles(
        create(type_="DEPLOYMENT", role="DEPLOYMENT_ADMIN", entity=dep),
        [{"entityType": "DAG_TAG", "entityId": tag_b, "role": "DAG_VIEWER", "deploymentId": dep}],
    )
    names["tag_c"] = with_roles(
        create(type_="DEPLOYMENT", role="DEPLOYMENT_ADMIN", entity=dep),
        [{"entityType": "DAG_TAG", "entityId": tag_c, "role": "DAG_VIEWER", "deploymentId": dep}],
    )
    names["dag"] = with_roles(
        create(type_="DEPLOYMENT", role="DEPLOYMENT_ADMIN", entity=dep),
        [{"entityType": "DAG", "entityId": dag, "role": "DAG_AUTHOR", "deploymentId": dep}],
    )
    names["dep"] = create(type_="DEPLOYMENT", role="DEPLOYMENT_ADMIN", entity=dep)
    names["org"] = create(type_="ORGANIZATION", role="ORGANIZATION_MEMBER")
    return dict(ids={k: v["id"] for k, v in names.items()}, ws=ws, dep=dep, dag=dag, tags=(tag_a, tag_b, tag_c))


def ids_of(response):
    return [t["id"] for t in ok(response)["tokens"]]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_list_filters_in_the_seeds_spelling(family, prefix):
    ids = family["ids"]
    tag_a, tag_b, _ = family["tags"]

    assert set(ids_of(listing(f"workspaceId={family['ws']}", prefix))) == {ids["b"], ids["a1"], ids["a2"]}
    assert set(ids_of(listing(f"deploymentId={family['dep']}", prefix))) == {
        ids[k] for k in ("tag_a", "tag_b", "tag_c", "dag", "dep")
    }
    assert ids_of(listing(f"dagId={family['dag']}", prefix)) == [ids["dag"]]
    assert set(ids_of(listing(f"dagTags={tag_a}&dagTags={tag_b}", prefix))) == {ids["tag_a"], ids["tag_b"]}
    assert ids_of(listing(f"deploymentId={family['dep']}&dagTags={tag_a}", prefix)) == [ids["tag_a"]]
    assert ids_of(listing(f"workspaceId={family['ws']}&kind=DIRECT_ACCESS", prefix)) == [ids["a2"]]

    only_org = ok(listing("includeOnlyOrganizationTokens=true&limit=1000", prefix))
    assert only_org["tokens"] and all(t["type"] == "ORGANIZATION" for t in only_org["tokens"])
    assert ids["org"] in [t["id"] for t in only_org["tokens"]]
    everything = ok(listing("includeOnlyOrganizationTokens=false&limit=1000", prefix))
    assert {t["type"] for t in everything["tokens"]} >= {"ORGANIZATION", "WORKSPACE", "DEPLOYMENT"}


def test_list_sorts_offset_and_limit(family):
    ws = family["ws"]
    got = ok(listing(f"workspaceId={ws}&sorts=name:asc&sorts=createdAt:desc"))["tokens"]
    names = [t["name"] for t in got]
    assert names == sorted(names)
    # A second key breaks ties of the first: two tokens share a description.
    by_description = ok(listing(f"workspaceId={ws}&sorts=description:desc&sorts=name:desc"))["tokens"]
    assert [t["name"][:2] for t in by_description] == ["a2", "a1", "b-"]
    by_description = ok(listing(f"workspaceId={ws}&sorts=description:desc&sorts=name:asc"))["tokens"]
    assert [t["name"][:2] for t in by_description] == ["a1", "a2", "b-"]
    assert [t["name"] for t in ok(listing(f"workspaceId={ws}&sorts=name:desc"))["tokens"]][0].startswith("b-")

    page = ok(listing(f"workspaceId={ws}&sorts=name:asc&offset=1&limit=1"))
    assert (page["offset"], page["limit"], page["totalCount"], len(page["tokens"])) == (1, 1, 3, 1)
    assert page["tokens"][0]["id"] == got[1]["id"]
    count_only = ok(listing(f"workspaceId={ws}&limit=0"))
    assert (count_only["tokens"], count_only["totalCount"], count_only["limit"]) == ([], 3, 0)
    past_end = ok(listing(f"workspaceId={ws}&offset=3"))
    assert (past_end["tokens"], past_end["totalCount"]) == ([], 3)


def test_every_seed_sort_field_is_accepted(family):
    for field in ["name", "description", "createdAt", "updatedAt", "tokenStartAt"]:
        for direction in ["asc", "desc"]:
            response = listing(f"workspaceId={family['ws']}&sorts={field}:{direction}")
            assert response.status == 200, (field, response)


# ------------------------------------------------------------ error rows


def error(response, status, grpc_code):
    """An error answer: `status`, JSON in the vendor's shape of the path
    (validated against its spec by conftest.call), the HTTP status inside
    it. `grpc_code` is the gRPC code tokend answers behind this status (the
    contract's table); the vendor bodies carry the HTTP status only, so it
    documents the row rather than being read back. Returns the body
    normalized by vendor.error_of: status, message, fields, requestId."""
    assert response.status == status, response
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = error_of(response)
    assert body["status"] == status and isinstance(body["message"], str), response
    del grpc_code
    return body


def test_unauthenticated_is_401(used_token):
    owner_path = token_path(used_token["id"])
    disabled = create()
    ok(call("POST", token_path(disabled["id"]), {"enabled": False}))
    expired = create(startAt="2020-01-01T00:00:00Z", tokenExpiryPeriodInDays=1)
    future = create(startAt="2030-01-01T00:00:00Z")
    wrong_shapes = {
        "no header": "",
        "malformed": "not-a-token",
        "unknown": SECRET[:-6] + ("A" if SECRET[-6] != "A" else "B") + SECRET[-5:],
        "disabled": disabled["token"],
        "expired": expired["token"],
        "not yet valid": future["token"],
    }
    for what, secret in wrong_shapes.items():
        body = error(call("GET", owner_path, secret=secret), 401, 16)
        assert SECRET not in body["message"], what
        if secret:
            assert secret not in body["message"], what
    # Scheme and header shapes outside the secret.
    for header in ["Basic abc", "Bearer", "Bearer  " + SECRET + "x", "bearer-" + SECRET]:
        error(call("GET", owner_path, secret="", headers={"authorization": header}), 401, 16)


def test_permission_denied_is_403():
    workspace = unique("ws")
    member = create(type_="WORKSPACE", role="WORKSPACE_MEMBER", entity=workspace)
    body = error(call("POST", tokens_path("iam"), {"name": "x", "type": "WORKSPACE", "role": "WORKSPACE_OWNER", "entityId": workspace}, secret=member["token"]), 403, 7)
    assert "token" not in body["message"].lower() or member["token"] not in body["message"]


def test_not_found_is_404(used_token):
    error(call("GET", token_path("01m00000000000000000000000")), 404, 5)
    # Another organization's token path: the caller cannot see it, so it is absent.
    error(call("GET", token_path(used_token["id"], org=OTHER_ORG)), 404, 5)
    for method, suffix, body in [("POST", "", {"name": "x"}), ("POST", "/roles", {"roles": []}), ("POST", "/rotate", {}), ("DELETE", "", None), ("GET", "/events", None)]:
        error(call(method, token_path(used_token["id"], org=OTHER_ORG) + suffix, body), 404, 5)
    gone = create()
    ok(call("DELETE", token_path(gone["id"])), 204)
    error(lookup(gone["token"]), 404, 5)


def test_bad_arguments_are_400_and_name_the_field():
    cases = {
        "limit=1001": "limit",
        "limit=-1": "limit",
        "offset=-1": "offset",
        "sorts=name:sideways": "sorts",
        "sorts=secret:asc": "sorts",
    }
    for query, field in cases.items():
        body = error(listing(query), 400, 3)
        assert field in body["message"], (query, body)
        assert [f.split("[")[0] for f in body["fields"]] == [field], (query, body)
    body = error(call("POST", tokens_path("iam"), {"name": "", "type": "WORKSPACE", "role": "WORKSPACE_MEMBER", "entityId": "w"}), 400, 3)
    assert "name" in body["message"]
    body = error(call("POST", tokens_path("iam"), {"name": "x" * 10000, "type": "WORKSPACE", "role": "WORKSPACE_MEMBER", "entityId": "w"}), 400, 3)
    assert "name" in body["message"]
    body = error(lookup("tokend.not-a-token"), 400, 3)
    assert body["fields"] == ["token"], body


def test_envoys_own_refusals_are_json_too():
    error(listing("noSuchParameter=1"), 400, 3)
    error(listing("limit=ten"), 400, 3)
    error(call("GET", "/iam/v1beta1/nothing-here"), 404, 5)
    error(call("POST", tokens_path("iam"), raw=b"{not json"), 400, 3)
    error(call("PUT", tokens_path("iam"), {"name": "x"}), 404, 5)


# ------------------------------------------------------ sidecar behaviour


def test_request_id_is_echoed_and_generated():
    response = call("GET", tokens_path() + "?limit=1", headers={"x-request-id": "req-rest-42"})
    assert response.status == 200
    assert response.headers.get("x-request-id") == "req-rest-42"
    generated = call("GET", tokens_path() + "?limit=1")
    assert generated.headers.get("x-request-id")


def test_a_client_written_x_forwarded_for_is_not_believed():
    created = ok(
        call(
            "POST",
            tokens_path("iam"),
            {"name": unique("xff"), "type": "ORGANIZATION", "role": "ORGANIZATION_MEMBER"},
            headers={"x-forwarded-for": "6.6.6.6"},
        )
    )
    events = ok(call("GET", token_path(created["id"]) + "/events"))
    assert events["events"][0]["ipAddress"] not in ("", "6.6.6.6"), events
    ok(call("POST", "/api/v2/apiTokens/lookup", {"token": created["token"]}, secret=created["token"], headers={"x-forwarded-for": "6.6.6.6"}))
    got = eventually("the use to be flushed", lambda: ok(lookup(created["token"])).get("lastUsedIpAddress"))
    assert got != "6.6.6.6"


def test_secrets_are_never_cacheable():
    """Issue 13.14: the answers that carry a secret say `no-store`."""
    created_response = call(
        "POST",
        f"/iam/v1beta1/organizations/{ORG}/tokens",
        {"name": unique("nocache"), "type": "WORKSPACE", "role": "WORKSPACE_MEMBER", "entityId": unique("ws")},
    )
    created = ok(created_response)
    assert created["token"]
    assert created_response.headers.get("cache-control") == "no-store", created_response.headers
    rotated = call("POST", f"/iam/v1beta1/organizations/{ORG}/tokens/{created['id']}/rotate", {})
    assert ok(rotated)["token"]
    assert rotated.headers.get("cache-control") == "no-store", rotated.headers
    got = call("GET", f"/iam/v1beta1/organizations/{ORG}/tokens/{created['id']}")
    assert got.headers.get("cache-control") == "no-store", got.headers
