"""The hostile-input catalogue over REST, through the real sidecar: each
case gets the contract's status and JSON error, tokend stays up, and the
stored tokens are unchanged afterwards. (The same catalogue over gRPC is
tests/api/hostile.rs.)"""

import json
import urllib.parse

import pytest

from vendor import error_of
from conftest import ORG, SECRET, call, call_large, create, ok, tokens_path, unique

CREATE = f"/iam/v1beta1/organizations/{ORG}/tokens"
SQL = ["' OR 1=1 --", '"; DROP TABLE api_tokens; --', "%", "_", "\\", "*", "') OR ('a'='a", "1; SELECT pg_sleep(10)"]
VOLATILE = {"lastUsedAt"}


def snapshot():
    """Every token of the organization as the owner sees it, minus fields
    that authenticated calls change on their own (the caller's last use)."""
    tokens = ok(call("GET", tokens_path() + "?limit=1000&sorts=createdAt:asc"))["tokens"]
    return [{k: v for k, v in t.items() if k not in VOLATILE} for t in tokens]


@pytest.fixture(scope="module", autouse=True)
def unchanged():
    victim = create(name=unique("victim"), entity=unique("ws-victim"))
    before = snapshot()
    yield victim
    assert call("GET", "/" + tokens_path().lstrip("/") + "?limit=1").status == 200, "tokend is down"
    assert snapshot() == before, "hostile input changed the stored tokens"


def refused(response, status, code, field=None):
    """Refused with `status` in the vendor's error shape (`code`: the gRPC
    code tokend answers behind it, which vendor bodies do not carry)."""
    del code
    assert response.status == status, response
    body = error_of(response)
    assert body["status"] == status, response
    if field:
        assert field in body["message"], response
    return body


def create_body(**fields):
    body = {"name": unique("h"), "type": "WORKSPACE", "role": "WORKSPACE_MEMBER", "entityId": "ws-h"}
    body.update(fields)
    return body


def test_oversized_bodies_and_strings():
    ten_mb = "x" * (10 * 1024 * 1024)
    refused(call_large("POST", CREATE, json.dumps(create_body(name=ten_mb)).encode()), 413, 8)
    refused(call_large("POST", "/api/v2/apiTokens/lookup", json.dumps({"token": ten_mb}).encode()), 413, 8)
    # Under the sidecar's cap, over tokend's field limits: the field is named.
    refused(call("POST", CREATE, create_body(name="n" * 60000)), 400, 3, "name")
    refused(call("POST", CREATE, create_body(description="d" * 60000)), 400, 3, "description")
    refused(call("POST", CREATE, create_body(entityId="e" * 60000)), 400, 3, "entityId")
    # A 10 MB query string is over the header cap.
    refused(call("GET", tokens_path() + "?workspaceId=" + "w" * 20000), 431, 8)
    refused(call("GET", tokens_path() + "?workspaceId=" + "w" * 5000), 400, 3, "workspaceId")


def test_invalid_utf8_and_nul_bytes():
    refused(call("POST", CREATE, raw=b'{"name":"\xff\xfe","type":"ORGANIZATION","role":"ORGANIZATION_MEMBER"}'), 400, 3)
    refused(call("GET", tokens_path() + "?workspaceId=%ff%fe"), 400, 3, "workspace")
    refused(call("GET", tokens_path() + "?dagTags=%c3%28"), 400, 3, "dag")
    refused(call("POST", CREATE, create_body(name="a\u0000b")), 400, 3, "name")
    refused(call("POST", CREATE, create_body(entityId="ws\u0000")), 400, 3, "entityId")
    refused(call("GET", tokens_path() + "?workspaceId=a%00b"), 400, 3, "workspaceId")
    refused(call("POST", "/api/v2/apiTokens/lookup", {"token": "tokend.\u0000"}), 400, 3, "token")


@pytest.mark.parametrize("payload", SQL)
def test_sql_metacharacters_in_every_filter_match_nothing(payload, unchanged):
    quoted = urllib.parse.quote(payload, safe="")
    for parameter in ["workspaceId", "deploymentId", "dagId", "dagTags"]:
        got = ok(call("GET", tokens_path() + f"?{parameter}={quoted}"))
        assert got["tokens"] == [] and got["totalCount"] == 0, (parameter, payload, got)
    # As path ids: no such token, and nothing of the victim leaks.
    for path in [f"/iam/v1beta1/organizations/{ORG}/tokens/{quoted}",
                 f"/iam/v1beta1/organizations/{quoted}/tokens/{unchanged['id']}"]:
        response = call("GET", path)
        assert response.status in (400, 404), (path, response)
        assert unchanged["id"] not in response.raw.decode(errors="replace")


def test_like_wildcards_are_literal(unchanged):
    workspace = unchanged["roles"][0]["entityId"]
    for pattern in ["ws-%", workspace[:-1] + "_", "%" + workspace[3:], workspace[:-2] + "%", "%"]:
        got = ok(call("GET", tokens_path() + "?workspaceId=" + urllib.parse.quote(pattern, safe="")))
        assert got["totalCount"] == 0, (pattern, got)
    assert ok(call("GET", tokens_path() + "?workspaceId=" + workspace))["totalCount"] == 1


def test_negative_and_huge_numbers():
    for query, field in [("offset=-1", "offset"), ("limit=-1", "limit"), ("limit=1001", "limit"),
                         ("limit=2147483648", "limit"), ("offset=99999999999", "offset"),
                         ("limit=1e3", "limit"), ("offset=0x10", "offset")]:
        refused(call("GET", tokens_path() + "?" + query), 400, 3, field)
    huge = ok(call("GET", tokens_path() + "?offset=2147483647"))
    assert huge["tokens"] == [] and huge["offset"] == 2147483647
    for days in [-5, 0, 3651, 2147483647]:
        refused(call("POST", CREATE, create_body(tokenExpiryPeriodInDays=days)), 400, 3, "tokenExpiryPeriodInDays")
    refused(call("POST", CREATE, create_body(tokenExpiryPeriodInDays=99999999999)), 400, 3)
    refused(call("POST", CREATE, create_body(startAt="9999-12-31T23:59:59Z")), 400, 3, "startAt")
    refused(call("POST", CREATE, create_body(startAt="0001-01-01T00:00:00Z")), 400, 3, "startAt")
    refused(call("GET", f"/iam/v1beta1/organizations/{ORG}/tokens/x/events?limit=-1"), 400, 3)


def test_unknown_enum_values():
    refused(call("GET", tokens_path() + "?kind=NOPE"), 400, 3, "kind")
    refused(call("GET", tokens_path() + "?kind=99"), 400, 3, "kind")
    refused(call("POST", CREATE, create_body(type="NOPE")), 400, 3, "type")
    refused(call("POST", CREATE, create_body(type=99)), 400, 3, "type")
    refused(call("POST", CREATE, create_body(kind=7)), 400, 3, "kind")
    refused(call("POST", CREATE, create_body(role="WORKSPACE_GOD")), 400, 3, "role")
    refused(call("GET", tokens_path() + "?includeOnlyOrganizationTokens=maybe"), 400, 3)


def test_duplicated_query_parameters(unchanged):
    for query, field in [("limit=1&limit=2", "limit"), ("offset=0&offset=1", "offset"),
                         ("workspaceId=a&workspaceId=ws-victim", "workspaceId"),
                         ("lim%69t=1&limit=2", "limit"),
                         ("includeOnlyOrganizationTokens=true&includeOnlyOrganizationTokens=false", None)]:
        refused(call("GET", tokens_path() + "?" + query), 400, 3, field)
    # Lists repeat by design.
    assert ok(call("GET", tokens_path() + "?dagTags=a&dagTags=b&sorts=name:asc&sorts=createdAt:desc"))


def test_hostile_sorts_and_tag_counts():
    for sorts in ["name:sideways", "name", ":asc", "name:asc:extra", "NAME:ASC", "name:asc;drop", "name%3Aasc%00"]:
        refused(call("GET", tokens_path() + "?sorts=" + sorts), 400, 3, "sorts")
    many = "&".join(f"sorts=name:asc" for _ in range(1000))
    refused(call("GET", tokens_path() + "?" + many), 400, 3, "sorts")
    tags = "&".join(f"dagTags=t{i}" for i in range(1000))
    refused(call("GET", tokens_path() + "?" + tags), 400, 3, "dagTags")


def test_bearer_headers_of_every_wrong_shape(unchanged):
    path = f"/iam/v1beta1/organizations/{ORG}/tokens/{unchanged['id']}"
    public, secret_part = SECRET.rsplit(".", 1)
    flipped = secret_part[:-1] + ("A" if secret_part[-1] != "A" else "B")
    shapes = [
        "Bearer", "Bearer ", "Bearer  ", "Basic " + SECRET, "Token " + SECRET, SECRET,
        "Bearer " + public, "Bearer " + public + "." + flipped, "Bearer " + SECRET + "x",
        "Bearer " + SECRET.replace("tokend.", "other."), "Bearer " + SECRET[:-1],
        "Bearer\t" + SECRET, "Bearer " + SECRET + " " + SECRET, "Bearer " + "A" * 10000,
        "Bearer " + ".".join([public.split(".")[0], unchanged["id"], secret_part]),
        "Bearer %s" % SECRET.upper() if SECRET.upper() != SECRET else "Bearer " + SECRET.lower(),
    ]
    for header in shapes:
        body = refused(call("GET", path, secret="", headers={"authorization": header}), 401, 16)
        assert secret_part not in body["message"]
    refused(call("GET", path, secret=""), 401, 16)
    # Non-ASCII bytes in the header value.
    refused(call("GET", path, secret="", headers={"authorization": "Bearer tökend.x.y".encode().decode("latin-1")}), 401, 16)
    # The scheme is case-insensitive (RFC 9110 11.1): that is not an error.
    assert call("GET", path, secret="", headers={"authorization": "bearer " + SECRET}).status == 200


def test_path_binding_beats_the_body():
    """A body naming another organization does not move the call there."""
    made = ok(call("POST", CREATE, {"organizationId": "org-rest-other", "name": unique("bound"),
                                    "type": "ORGANIZATION", "role": "ORGANIZATION_MEMBER"}))
    assert ok(call("GET", f"/iam/v1beta1/organizations/{ORG}/tokens/{made['id']}"))["id"] == made["id"]
    ok(call("DELETE", f"/iam/v1beta1/organizations/{ORG}/tokens/{made['id']}"), 204)


def test_not_json_at_all():
    for raw in [b"[1,2]", b"null", b"\"str\"", b"{", b"{}" * 1000, json.dumps({"name": {"nested": 1}}).encode()]:
        refused(call("POST", CREATE, raw=raw), 400, 3)
