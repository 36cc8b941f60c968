"""The OpenAPI's error rows that no other REST test sent through Envoy
(issue 14.5): 409 on a duplicate name, and 400 / 403 from Update, Roles and
Rotate on a token that exists (a 404 would come before validation and prove
nothing)."""

from conftest import call, create, ok, unique
from test_rest import ORG, error, lookup, token_path


def violations(body):
    return [v["field"] for d in body.get("details", []) for v in d.get("fieldViolations", [])]


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
