"""Authentication on every REST path, read from the OpenAPI file: each path
and method of deploy/openapi/tokend.swagger.json answers 401 through the
sidecar for every unusable credential, with one message, and the same
request with the owner's secret succeeds. A new operation fails
`request_for` until it has a request here; an RPC without a REST operation
fails `test_every_rpc_has_a_rest_operation`."""

import base64
import json
import os
import re
import secrets
import zlib
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import ORG, SECRET, call, create, ok, unique

SWAGGER = Path(__file__).resolve().parents[2] / "deploy" / "openapi" / "tokend.swagger.json"
GRPC = os.environ.get("GRPC_ADDR", "127.0.0.1:50051")


def operations():
    """(METHOD, path template, RPC name) for every operation of the file."""
    spec = json.loads(SWAGGER.read_text())
    found = []
    for path, item in sorted(spec["paths"].items()):
        for method, operation in sorted(item.items()):
            # protoc-gen-swagger numbers additional bindings: ListApiTokens2.
            rpc = re.sub(r"\d+$", "", operation["operationId"])
            found.append((method.upper(), path, rpc))
    return found


def request_for(rpc, target):
    """A minimal valid body for `rpc` (None for none) aimed at `target`, a
    WORKSPACE_OPERATOR token of its own workspace."""
    bodies = {
        "GetApiToken": None,
        "ListApiTokens": None,
        "DeleteApiToken": None,
        "ListAuditEvents": None,
        "LookupApiToken": {"token": SECRET},
        "CreateApiToken": {
            "name": unique("authn"),
            "type": "WORKSPACE",
            "role": "WORKSPACE_MEMBER",
            "entityId": target["workspace"],
        },
        "UpdateApiToken": {"description": "changed"},
        "UpdateApiTokenRoles": {
            "roles": [{"entityType": "WORKSPACE", "entityId": target["workspace"], "role": "WORKSPACE_OPERATOR"}]
        },
        "RotateApiToken": {},
    }
    if rpc not in bodies:
        pytest.fail(f"{rpc} has no request in test_auth.py's request_for: add one, so that its 401 is tested")
    return bodies[rpc]


def fill(path, target):
    try:
        return path.format(organizationId=ORG, tokenId=target["id"])
    except KeyError as missing:
        pytest.fail(f"{path}: no value for path parameter {missing} in test_auth.py's fill")


def new_target():
    workspace = unique("ws")
    token = create(entity=workspace, role="WORKSPACE_OPERATOR")
    return {"id": token["id"], "workspace": workspace}


def owner(**extra):
    return create(name=unique("authn-owner"), type_="ORGANIZATION", role="ORGANIZATION_OWNER", **extra)


def days_from_now(days):
    moment = datetime.now(timezone.utc) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def used(token):
    """Authenticates with `token` once, so it sits in the credential cache
    before it is revoked."""
    ok(call("GET", f"/platform/v1beta1/organizations/{ORG}/tokens?limit=1", secret=token["token"]))
    return token


CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def well_formed(token_id):
    """A secret of this deployment's shape for `token_id` (right prefix, id
    and CRC-32 checksum) with a random key: a forgery only the store (or the
    live-id set) can tell from a real one."""
    key = secrets.token_bytes(32)
    total = key + zlib.crc32(token_id.encode() + key).to_bytes(4, "big")
    prefix = SECRET.split(".")[0]
    return f"{prefix}.{token_id}." + base64.b32encode(total).decode().rstrip("=")


def error_message(response):
    """The message of an error body: `{"message"}` (gRPC status and
    Astronomer shape) or `{"error": {"message"}}` (Dynatrace shape)."""
    body = response.json if isinstance(response.json, dict) else {}
    nested = body.get("error")
    return nested.get("message") if isinstance(nested, dict) else body.get("message")


@pytest.fixture(scope="module")
def unusable():
    """Each class of unusable credential, as the `authorization` header it
    sends ("" for none)."""
    disabled = used(owner())
    ok(call("POST", f"/iam/v1beta1/organizations/{ORG}/tokens/{disabled['id']}", {"enabled": False}))
    rotated = used(owner())
    ok(call("POST", f"/iam/v1beta1/organizations/{ORG}/tokens/{rotated['id']}/rotate", {"gracePeriodSeconds": 0}))
    deleted = used(owner())
    assert call("DELETE", f"/iam/v1beta1/organizations/{ORG}/tokens/{deleted['id']}").status == 204
    expired = owner(startAt=days_from_now(-2), tokenExpiryPeriodInDays=1)
    later = owner(startAt=days_from_now(1))
    return {
        "no header": "",
        "another scheme": f"Basic {SECRET}",
        "Bearer alone": "Bearer",
        "no scheme": SECRET,
        "not a secret": "Bearer not-a-token",
        "bad checksum": "Bearer " + SECRET[:-1] + ("A" if SECRET[-1] != "A" else "B"),
        "disabled": f"Bearer {disabled['token']}",
        "expired": f"Bearer {expired['token']}",
        "not yet valid": f"Bearer {later['token']}",
        "rotated out, grace 0": f"Bearer {rotated['token']}",
        "deleted": f"Bearer {deleted['token']}",
        # An id no token has (minted now, so it waits for the feed's
        # confirmation before it is refused), and a live id with a wrong key.
        "unknown, well-formed": "Bearer " + well_formed(
            SECRET.split(".")[1][:10] + "".join(secrets.choice(CROCKFORD) for _ in range(16))),
        "live id, wrong key": "Bearer " + well_formed(SECRET.split(".")[1]),
    }


@pytest.mark.parametrize("method,path,rpc", operations(), ids=lambda v: v if isinstance(v, str) else None)
def test_every_rest_operation_refuses_unusable_credentials(method, path, rpc, unusable):
    target = new_target()
    url = fill(path, target)
    messages = {}
    for what, header in unusable.items():
        headers = {"authorization": header} if header else {}
        response = call(method, url, request_for(rpc, target), secret="", headers=headers)
        assert response.status == 401, (what, method, url, response)
        message = error_message(response)
        assert isinstance(message, str) and message, (what, response)
        assert SECRET.rsplit(".", 1)[-1] not in response.raw.decode(errors="replace"), what
        messages[what] = message
    assert len(set(messages.values())) == 1, messages
    # The same request with a valid secret is served: the 401s were the
    # credential's, not the request's.
    served = call(method, url, request_for(rpc, target))
    assert 200 <= served.status < 300, (method, url, served)


def test_every_rpc_has_a_rest_operation():
    described = subprocess.run(
        ["grpcurl", "-plaintext", GRPC, "describe", "tokend.v1.ApiTokenService"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    rpcs = set(re.findall(r"\brpc (\w+) \(", described))
    assert rpcs, described
    assert {rpc for _, _, rpc in operations()} == rpcs


@pytest.mark.parametrize("scheme", ["Api-Token", "api-token", "API-TOKEN", "bearer"])
def test_the_api_token_scheme_is_accepted_wherever_bearer_is(scheme):
    """Dynatrace's `Authorization: Api-Token <secret>` (scheme names are
    case-insensitive, RFC 7235) on both path families."""
    auth = {"authorization": f"{scheme} {SECRET}"}
    looked_up = call("POST", "/api/v2/apiTokens/lookup", {"token": SECRET}, secret="", headers=auth)
    assert looked_up.status == 200, looked_up
    listed = call("GET", f"/iam/v1beta1/organizations/{ORG}/tokens?limit=1", secret="", headers=auth)
    assert listed.status == 200, listed
    made = call("POST", f"/iam/v1beta1/organizations/{ORG}/tokens",
                {"name": unique("api-token"), "type": "WORKSPACE", "role": "WORKSPACE_MEMBER",
                 "entityId": unique("ws")}, secret="", headers=auth)
    assert made.status == 200, made
    refused = call("GET", f"/iam/v1beta1/organizations/{ORG}/tokens", secret="",
                   headers={"authorization": f"{scheme} {SECRET[:-1]}"})
    assert refused.status == 401, refused
