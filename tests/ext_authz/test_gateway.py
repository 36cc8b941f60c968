"""tokend as Envoy's external authorizer, through a real Envoy (see
conftest.py). Each test sends from its own loopback source address, so
that its failures are its own client's in tokend's throttle."""

import time

from conftest import ORG, REFUSED_GATEWAY, create, eventually, get, grpcurl, metric, unique, usage_of

DAY = 86_400


def rfc3339(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def reached(upstream, marker):
    return [r for r in upstream.seen if marker in r["path"]]


def assert_401(response, case):
    assert response.status == 401, f"{case}: {response}"
    assert response.header("www-authenticate") == "Bearer", f"{case}: {response}"
    assert response.json == {"error": "unauthenticated"}, f"{case}: {response}"


def test_refused_credentials_are_401_and_never_reach_the_upstream(gateway, tokend, upstream, unknown_secret):
    owner = tokend.owner
    disabled, deleted, rotated = (create(owner, "ORGANIZATION_OWNER", "ORGANIZATION") for _ in range(3))
    for t in (disabled, deleted, rotated):
        assert get(f"/warm/{unique('w')}", f"Bearer {t['token']}", source="127.0.0.3").status == 200
    grpcurl("tokend.v1.ApiTokenService/UpdateApiToken",
            {"organizationId": ORG, "tokenId": disabled["id"], "enabled": False}, owner)
    grpcurl("tokend.v1.ApiTokenService/DeleteApiToken", {"organizationId": ORG, "tokenId": deleted["id"]}, owner)
    grpcurl("tokend.v1.ApiTokenService/RotateApiToken",
            {"organizationId": ORG, "tokenId": rotated["id"], "gracePeriodSeconds": 0}, owner)
    now = int(time.time())
    expired = create(owner, "ORGANIZATION_OWNER", "ORGANIZATION", startAt=rfc3339(now - 2 * DAY),
                     tokenExpiryPeriodInDays=1)
    not_yet = create(owner, "ORGANIZATION_OWNER", "ORGANIZATION", startAt=rfc3339(now + DAY))
    head, _, key = owner.rpartition(".")
    unknown = f"{head}.{'A' if key[0] != 'A' else 'B'}{key[1:]}"  # checksum off: malformed
    cases = [
        ("no header", None),
        ("empty header", ""),
        ("malformed", "Bearer garbage"),
        ("another scheme", f"Basic {owner}"),
        ("bad checksum", f"Bearer {unknown}"),
        ("unknown", f"Bearer {unknown_secret}"),
        ("deleted", f"Bearer {deleted['token']}"),
        ("disabled", f"Bearer {disabled['token']}"),
        ("expired", f"Bearer {expired['token']}"),
        ("not yet valid", f"Api-Token {not_yet['token']}"),
        ("rotated out", f"Bearer {rotated['token']}"),
    ]
    # 11 failures from one address pass the gateway's threshold of 10:
    # spread them over two clients.
    for i, (case, authorization) in enumerate(cases):
        marker = unique("refused")
        response = get(f"/{marker}", authorization, source=f"127.0.0.{3 + i % 2}")
        assert_401(response, case)
        for secret in (owner, deleted["token"], disabled["token"]):
            assert secret not in response.raw.decode(), f"{case}: a secret in the body"
        assert not reached(upstream, marker), f"{case}: the upstream saw it"


def test_a_valid_token_reaches_the_upstream_with_its_identity_only(gateway, tokend, upstream):
    ws = create(tokend.owner, "WORKSPACE_OPERATOR", entity="ws-1")
    for scheme in ("Bearer", "Api-Token"):
        marker = unique("ok")
        response = get(f"/{marker}", f"{scheme} {ws['token']}", source="127.0.0.5", headers={
            "x-tokend-token-id": "forged", "x-tokend-organization-id": "org-forged",
            "x-tokend-admin": "true", "x-other": "kept"})
        assert response.status == 200, response
        seen = reached(upstream, marker)
        assert len(seen) == 1
        headers = seen[0]["headers"]
        assert headers["x-tokend-token-id"] == ws["id"]
        assert headers["x-tokend-organization-id"] == ORG
        assert headers["x-tokend-token-type"] == "WORKSPACE"
        assert headers["x-tokend-roles"] == f"WORKSPACE_OPERATOR:organizations/{ORG}/workspaces/ws-1"
        assert "authorization" not in headers, headers
        assert "x-tokend-admin" not in headers, headers
        assert headers["x-other"] == "kept"
        assert ws["token"] not in str(headers)
    # The use is recorded, under the client's address (not Envoy's).
    at, ip = eventually("the use to be flushed", lambda: (u := usage_of(ws["id"]))[1] and u)
    assert ip == "127.0.0.5"
    assert at >= int(time.time()) - 60


def test_disabling_or_deleting_through_the_api_refuses_the_next_request(gateway, tokend, upstream):
    for change in ("disable", "delete"):
        t = create(tokend.owner, "ORGANIZATION_MEMBER", "ORGANIZATION")
        assert get(f"/{unique('before')}", f"Bearer {t['token']}", source="127.0.0.6").status == 200
        if change == "disable":
            grpcurl("tokend.v1.ApiTokenService/UpdateApiToken",
                    {"organizationId": ORG, "tokenId": t["id"], "enabled": False}, tokend.owner)
        else:
            grpcurl("tokend.v1.ApiTokenService/DeleteApiToken", {"organizationId": ORG, "tokenId": t["id"]},
                    tokend.owner)
        marker = unique("after")
        assert_401(get(f"/{marker}", f"Bearer {t['token']}", source="127.0.0.6"), change)
        assert not reached(upstream, marker)


def test_route_requirements(gateway, tokend, upstream):
    operator = create(tokend.owner, "WORKSPACE_OPERATOR", entity="ws-1")["token"]
    member = create(tokend.owner, "WORKSPACE_MEMBER", entity="ws-1")["token"]
    elsewhere = create(tokend.owner, "WORKSPACE_OWNER", entity="ws-2")["token"]
    other_org = create_other_org_owner(tokend)
    for path, secret, status, case in [
        ("/authors/x", operator, 200, "an including role"),
        ("/authors/x", tokend.owner, 200, "the organization's owner"),
        ("/authors/x", member, 403, "a lesser role"),
        ("/authors/x", elsewhere, 403, "another workspace"),
        ("/authors/x", other_org, 403, "another organization"),
        ("/org/x", member, 200, "a token of the organization"),
        ("/org/x", other_org, 403, "a token of another organization"),
        ("/open/x", other_org, 200, "no requirement: any valid token"),
    ]:
        marker = unique("route")
        response = get(f"{path}/{marker}", f"Bearer {secret}", source="127.0.0.7")
        assert response.status == status, f"{case}: {response}"
        if status == 403:
            assert response.json == {"error": "forbidden"}, f"{case}: {response}"
        assert bool(reached(upstream, marker)) == (status == 200), case


def create_other_org_owner(tokend):
    import subprocess
    from conftest import DB_URL, TOKEND
    out = subprocess.run([TOKEND, "--database-url", DB_URL, "token", "create", "--org", "org-2",
                          "--name", unique("other"), "--type", "ORGANIZATION", "--role", "ORGANIZATION_OWNER"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_a_misconfigured_route_is_refused(gateway, tokend, upstream, misconfigured_gateway):
    # The owner meets any requirement; the route's is broken, so 403.
    for path in misconfigured_gateway:
        marker = unique("misconfigured")
        response = get(f"{path}/{marker}", f"Bearer {tokend.owner}", source="127.0.0.8",
                       gateway=("127.0.0.1", 8093))
        assert response.status == 403, f"{path}: {response}"
        assert response.json == {"error": "route_misconfigured"}, f"{path}: {response}"
        assert not reached(upstream, marker)


def test_failures_are_throttled_per_client(gateway, tokend, upstream):
    statuses = [get(f"/{unique('t')}", "Bearer nonsense", source="127.0.0.9").status for _ in range(12)]
    assert statuses[:10] == [401] * 10, statuses
    assert statuses[10:] == [429, 429], statuses
    marker = unique("throttled")
    response = get(f"/{marker}", f"Bearer {tokend.owner}", source="127.0.0.9")
    assert response.status == 429 and response.json == {"error": "throttled"}, response
    assert response.header("retry-after")
    assert not reached(upstream, marker)
    # Another client behind the same gateway is served.
    assert get(f"/{unique('fine')}", f"Bearer {tokend.owner}", source="127.0.0.10").status == 200


CHECK_DENIED = ('tokend_grpc_requests_total{method="envoy.service.auth.v3.Authorization/Check",'
                'code="PERMISSION_DENIED"}')


def test_a_gateway_tokend_does_not_admit_is_refused(gateway, tokend, upstream):
    marker = unique("peer")
    before = metric(CHECK_DENIED)
    response = get(f"/{marker}", f"Bearer {tokend.owner}", gateway=REFUSED_GATEWAY)
    # tokend answers PERMISSION_DENIED to the Check (not to the request:
    # to its caller); Envoy fails closed.
    assert response.status == 403, response
    assert not reached(upstream, marker)
    assert metric(CHECK_DENIED) == before + 1


def test_zz_fail_closed_when_tokend_is_down_and_recovers(gateway, tokend, upstream):
    good = f"Bearer {tokend.owner}"
    assert get(f"/{unique('up')}", good, source="127.0.0.11").status == 200
    tokend.stop()
    try:
        marker = unique("down")
        response = get(f"/{marker}", good, source="127.0.0.11")
        assert response.status == 403, response
        assert not reached(upstream, marker)
    finally:
        tokend.start()
    eventually("the gateway to recover",
               lambda: get(f"/{unique('back')}", good, source="127.0.0.11").status == 200)
