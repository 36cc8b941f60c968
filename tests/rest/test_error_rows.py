"""The OpenAPI's error rows that no other REST test sent through Envoy
(issue 14.5): 409 on a duplicate name; 400 / 403 from Update, Roles and
Rotate on a token that exists (a 404 would come before validation and prove
nothing); 429 for a client over its in-flight share and 504 for a call past
its deadline, both while the database holds every write back."""

from concurrent.futures import ThreadPoolExecutor

from conftest import call, create, ok, unique, writes_held
from test_rest import ORG, error, lookup, token_path

# tokend's --max-in-flight-per-client, as .ci/rest leaves it (the default).
PER_CLIENT = 64


def violations(body):
    return body["fields"]


def test_a_duplicate_name_in_the_same_scope_is_409():
    workspace = unique("ws")
    first = create(name="twice", entity=workspace)
    body = error(
        call("POST", f"/iam/v1beta1/organizations/{ORG}/tokens",
             {"name": "twice", "type": "WORKSPACE", "role": "WORKSPACE_MEMBER", "entityId": workspace}),
        409, 6)
    assert "name" in body["message"], body
    # Renaming another token of the scope onto it conflicts too.
    other = create(name="once", entity=workspace)
    error(call("POST", token_path(other["id"]), {"name": "twice"}), 409, 6)
    # The same name in another scope is fine.
    create(name="twice", entity=unique("ws"))
    assert ok(call("GET", token_path(first["id"])))["name"] == "twice"


def test_update_roles_and_rotate_name_the_bad_field_with_400():
    workspace = unique("ws")
    token = create(type_="WORKSPACE", role="WORKSPACE_MEMBER", entity=workspace)
    path = token_path(token["id"])
    body = error(call("POST", path, {"name": "x" * 300}), 400, 3)
    assert violations(body) == ["name"], body
    body = error(call("POST", path, {"description": "d" * 1001}), 400, 3)
    assert violations(body) == ["description"], body
    body = error(call("POST", path + "/roles", {"roles": [
        {"entityType": "WORKSPACE", "entityId": workspace, "role": "NOT_A_ROLE"}]}), 400, 3)
    assert [v.split(".")[0] for v in violations(body)] == ["roles[0]"], body
    body = error(call("POST", path + "/rotate", {"gracePeriodSeconds": -1}), 400, 3)
    assert violations(body) == ["gracePeriodSeconds"], body
    body = error(call("POST", path + "/rotate", {"gracePeriodSeconds": 86401}), 400, 3)
    assert violations(body) == ["gracePeriodSeconds"], body
    # Nothing changed.
    after = ok(call("GET", path))
    assert (after["name"], after["shortToken"]) == (token["name"], token["shortToken"])


def test_update_roles_and_rotate_refuse_a_caller_that_may_not_with_403():
    workspace = unique("ws")
    deployment = unique("dep")
    # The organization owner gives a workspace token a role on a deployment
    # that the workspace's owner may not grant, then disables it.
    target = create(type_="WORKSPACE", role="WORKSPACE_MEMBER", entity=workspace)
    path = token_path(target["id"])
    roles = [
        {"entityType": "WORKSPACE", "entityId": workspace, "role": "WORKSPACE_MEMBER"},
        {"entityType": "DEPLOYMENT", "entityId": deployment, "role": "DEPLOYMENT_ADMIN"},
    ]
    ok(call("POST", path + "/roles", {"roles": roles}))
    ok(call("POST", path, {"enabled": False}))
    owner = create(type_="WORKSPACE", role="WORKSPACE_OWNER", entity=workspace)
    # It may see and rename the token, but not hand its secret back out or
    # out anew, and not grant the deployment role itself.
    assert ok(call("GET", path, secret=owner["token"]))["id"] == target["id"]
    error(call("POST", path + "/rotate", {}, secret=owner["token"]), 403, 7)
    error(call("POST", path, {"enabled": True}, secret=owner["token"]), 403, 7)
    error(call("POST", path + "/roles", {"roles": roles}, secret=owner["token"]), 403, 7)
    # A member of the workspace may read but manage nothing.
    member = create(type_="WORKSPACE", role="WORKSPACE_MEMBER", entity=workspace)
    plain = create(type_="WORKSPACE", role="WORKSPACE_MEMBER", entity=workspace)
    plain_path = token_path(plain["id"])
    for method, suffix, body in [("POST", "", {"name": "renamed"}),
                                 ("POST", "/roles", {"roles": roles[:1]}),
                                 ("POST", "/rotate", {})]:
        response = call(method, plain_path + suffix, body, secret=member["token"])
        error(response, 403, 7)
    assert ok(call("GET", path))["shortToken"] == target["shortToken"], "not rotated"
    assert ok(lookup(target["token"]))["enabled"] is False, "still disabled"


def test_a_client_over_its_in_flight_share_is_429():
    # Every REST call reaches tokend from the sidecar with the same
    # forwarded address, so they all count against one client's share. The
    # writes wait on the lock (until --database-timeout, then 503), holding
    # their slots; the ones past the share are refused at once. Nothing in
    # between caps them first: Envoy's circuit breakers allow 1024 requests
    # and opens another upstream connection past 100 streams, tokend allows
    # 128 streams per connection and 256 calls in flight.
    calls = PER_CLIENT + 36
    path = f"/iam/v1beta1/organizations/{ORG}/tokens"

    def one(i):
        return call("POST", path, {"name": unique(f"share-{i}"), "type": "WORKSPACE",
                                   "role": "WORKSPACE_MEMBER", "entityId": unique("ws")})

    with writes_held():
        with ThreadPoolExecutor(max_workers=calls) as pool:
            responses = list(pool.map(one, range(calls)))
    by_status = {}
    for response in responses:
        by_status.setdefault(response.status, []).append(response)
    assert set(by_status) <= {200, 429, 503}, {s: r[:1] for s, r in by_status.items()}
    refused = by_status.get(429, [])
    assert refused, {s: len(r) for s, r in by_status.items()}
    assert len(refused) <= calls - PER_CLIENT, {s: len(r) for s, r in by_status.items()}
    for response in refused:
        body = error(response, 429, 8)
        assert "in flight" in body["message"], body
    for response in by_status.get(503, []):
        error(response, 503, 14)
    # The slots came back: the same client is served again.
    token = create()
    assert ok(call("GET", token_path(token["id"])))["id"] == token["id"]


def test_a_call_past_its_deadline_is_504():
    # The client's grpc-timeout reaches tokend through the sidecar; it is
    # shorter than --database-timeout, so the deadline ends the call, not
    # the database's 503.
    name = unique("late")
    with writes_held():
        response = call("POST", f"/iam/v1beta1/organizations/{ORG}/tokens",
                        {"name": name, "type": "ORGANIZATION", "role": "ORGANIZATION_MEMBER"},
                        headers={"grpc-timeout": "500m"})
    body = error(response, 504, 4)
    assert "deadline" in body["message"], body
    # The abandoned write did not land (the name would be taken: 409), and
    # the service writes again.
    create(name=name, type_="ORGANIZATION", role="ORGANIZATION_MEMBER")
